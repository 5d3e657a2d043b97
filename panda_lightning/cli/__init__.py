"""The ``panda`` command: LightningCLI over PandA and the generator-activations DataModule."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_info

from panda_lightning.cli.errors import one_line_errors
from panda_lightning.cli.inspection import ConfiguredGenerator
from panda_lightning.cli.messages import fit_summary, quiet_third_party_noise
from panda_lightning.cli.trainer import PandATrainer
from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.fitting.module import PandA
from panda_lightning.loading import check_is_file, read_checkpoint
from panda_lightning.run import network_and_sampler

LIGHTNING_CKPT_PATHS = ("last", "best", "hpc", "registry")  # names Trainer.fit resolves itself
CHECKPOINT_SUBCOMMANDS = ("app", "edit", "remove", "rewrite", "saliency", "rank", "refine", "invert")

DESCRIPTION = (
    "Fit PandA (parts and appearances of a pretrained GAN's layer) with Lightning. "
    "Start with: panda fit --config configs/photo_faces.yaml. "
    "An error in what you asked for prints one line; --debug (or PANDA_DEBUG=1) prints its traceback."
)


class PandACLI(LightningCLI):
    """``panda fit --config configs/photo_faces.yaml``; ``panda fit --help`` lists every option."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        # No validation or test data: fit, then the picture subcommands of PandATrainer.
        pictures = {name: {"model", "datamodule"} for name in ("edit", "remove", "saliency", "rewrite", "rank", "refine", "invert")}
        return {
            "fit": LightningCLI.subcommands()["fit"], **pictures, "layers": {"model", "datamodule"},
            "app": {"model", "datamodule", "config_files"},  # the app is told the config files, not the user
        }

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # The parameters' shapes come from the generator's layer, not from the user.
        parser.link_arguments("data.feature_shape", "model.feature_shape", apply_on="instantiate")
        parser.link_arguments("data.layer", "model.layer")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        # Lightning reads a given checkpoint's hyper-parameters next, first of all: a file that
        # is no checkpoint of ours is named in one line rather than by the unpickler's traceback.
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and ckpt_path not in LIGHTNING_CKPT_PATHS:
            read_checkpoint(ckpt_path, weights_only=True)

    def after_fit(self) -> None:
        if self.trainer.is_global_zero and not self.trainer.interrupted:
            rank_zero_info(fit_summary(self.trainer, self.model))

    def app(self, **options: Any) -> None:
        # The commands the app exports name the config files this run was given.
        configs = [str(path) for path in self.config.app.get("config") or []]
        self.trainer.app(config_files=configs, **options)

    def instantiate_classes(self) -> None:
        if self.subcommand != "layers":
            super().instantiate_classes()
            return
        # `panda layers` is how a user chooses data.layer, so the configured one may be wrong:
        # build the generator and its latents alone, as the DataModule and the model need the layer.
        data = self.config.layers.data
        network, sampler = network_and_sampler({"generator": data.generator, "latents": data.latents})
        self.config_init, self.model = self.config, None
        self.datamodule = ConfiguredGenerator(network, sampler, data.layer)
        self.trainer = self.trainer_class(logger=False, enable_checkpointing=False, enable_model_summary=False)


def config_beside_checkpoint(args: list[str]) -> list[str]:
    """``args`` of a subcommand on a checkpoint given without ``--config``, with the config the fit
    wrote beside the checkpoint's folder (``RUN/config.yaml`` for ``RUN/checkpoints/last.ckpt``)."""
    if not args or args[0] not in CHECKPOINT_SUBCOMMANDS or any(a == "--config" or a.startswith("--config=") for a in args):
        return args
    given = [a.split("=", 1)[1] for a in args if a.startswith("--ckpt_path=")]
    given += [value for flag, value in zip(args, args[1:]) if flag == "--ckpt_path"]
    if not given or given[-1] in LIGHTNING_CKPT_PATHS:
        return args
    check_is_file(given[-1])
    config = Path(given[-1]).parent.parent / "config.yaml"
    if not config.is_file():
        raise FileNotFoundError(
            f"no --config given, and no config.yaml beside ckpt_path={given[-1]!r} (looked for {str(config)!r}): "
            "pass the config the checkpoint was fitted with, --config RUN/config.yaml."
        )
    return [args[0], "--config", str(config), *args[1:]]


def run(args: list[str] | None = None, **options: Any) -> PandACLI:
    """Run the CLI on ``args`` (``sys.argv[1:]`` when None) and return it, with its trainer,
    model and datamodule; ``options`` go to :class:`PandACLI` (``trainer_defaults``, ...).
    A subcommand on a checkpoint finds the config beside it when none is given."""
    quiet_third_party_noise()
    if args is None:
        # The command line itself, amended: Lightning warns when given args beside a command line.
        sys.argv[1:] = config_beside_checkpoint(sys.argv[1:])
        return _cli(None, options)
    # Given args, the process's own command line (a notebook kernel's, say) is none of ours.
    own, sys.argv[1:] = sys.argv[1:], []
    try:
        return _cli(config_beside_checkpoint(list(args)), options)
    finally:
        sys.argv[1:] = own


def _cli(args: list[str] | None, options: dict[str, Any]) -> PandACLI:
    return PandACLI(
        PandA,
        GeneratorActivations,
        trainer_class=PandATrainer,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"description": DESCRIPTION},
        args=args,
        **options,
    )


def main() -> None:
    """The ``panda`` console script."""
    one_line_errors(run)


