"""The time of a fit with its pictures: `make fit`'s (`panda fit --config configs/photo_faces.yaml`),
or another config's given with ``--config``.

    python -m benchmarks.speed.make_fit [--config CONFIG] [panda fit options ...]

Prints the steps, the fit's own time (``on_fit_start`` to ``on_fit_end``: the HOSVD
initialisation, steps, validations, checkpoints and pictures) and the whole command's. Logs go to
a temporary folder.
"""

from __future__ import annotations

import sys
import tempfile
import time

import lightning as L

from panda_lightning.cli import run as panda


class Clock(L.Callback):
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seconds = time.perf_counter() - self.start


def main() -> None:
    clock, start = Clock(), time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        options = sys.argv[1:]
        # The config first: the overrides below apply to its logger.
        config, options = (options[:2], options[2:]) if options[:1] == ["--config"] else (["--config", "configs/photo_faces.yaml"], options)
        cli = panda(
            ["fit", *config, "--trainer.enable_progress_bar=false",
             "--trainer.logger.init_args.save_dir", directory, *options],
            trainer_defaults={"callbacks": [clock]},
        )
    print(f"FIT {cli.trainer.global_step} steps, fit {clock.seconds:.1f} s, command {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
