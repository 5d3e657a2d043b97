"""A fit at the paper's size: StyleGAN2 config-f (or ProGAN, or StyleGAN3-R) at 1024 px (random
weights), at layer5 (StyleGAN2's and ProGAN's 512 x 16 x 16), with the pictures of
``configs/trainer.yaml``.

    python -m benchmarks.speed.full_size [--generator stylegan2|progan|stylegan3] [--max_steps 5000] [--batch_size 16]

Prints the steps and seconds per step of the fit (to convergence or ``--max_steps``), the time
of each end-of-fit picture and its file's size, the latency of one edit at full resolution, the
peak resident memory of the process and, on a GPU, its peak allocated memory.
"""

from __future__ import annotations

import argparse
import importlib
import resource
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import Timer

from panda_lightning import PandA
from panda_lightning.callbacks.rendering import FixedSamplePicture
from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.generators import ProGAN, StyleGAN2, StyleGAN3
from panda_lightning.generators.adapters.progan import PGAN_CHANNELS
from panda_lightning.generators.adapters.stylegan import CONFIG_F, CONFIG_R

TRAINER_CONFIG = Path(__file__).parents[2] / "configs" / "trainer.yaml"


def picture_callbacks() -> list[FixedSamplePicture]:
    """The picture callbacks of ``configs/trainer.yaml``, as the ``panda`` command builds them."""
    built = []
    for callback in yaml.safe_load(TRAINER_CONFIG.read_text())["callbacks"]:
        module, _, name = callback["class_path"].rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        if issubclass(cls, FixedSamplePicture):
            built.append(cls(**callback.get("init_args", {})))
    return built


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed.full_size", description=__doc__.splitlines()[0])
    parser.add_argument("--generator", choices=["stylegan2", "progan", "stylegan3"], default="stylegan2")
    parser.add_argument("--max_steps", type=int, default=5000)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--parts", type=int, default=8)
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--resolution", type=int, default=1024, help="of the shape (a smaller one to try it quickly)")
    parser.add_argument("--channel_max", type=int, default=512, help="channels at most, twice that for StyleGAN3-R (fewer to try it quickly)")
    args = parser.parse_args(argv)

    if args.generator == "stylegan3":
        architecture = {**CONFIG_R, "img_resolution": args.resolution, "channel_max": 2 * args.channel_max}
        generator, shape = StyleGAN3(architecture=architecture, truncation_psi=0.7), "StyleGAN3-R"
    elif args.generator == "progan":
        scales = args.resolution.bit_length() - 2  # 4 px, 8 px, ... up to the resolution
        generator, shape = ProGAN(architecture=dict(latent_dim=512, channels=[min(c, args.channel_max) for c in PGAN_CHANNELS[:scales]])), "ProGAN"
    else:
        synthesis = {**CONFIG_F["synthesis_kwargs"], "channel_max": args.channel_max}
        generator = StyleGAN2(architecture={**CONFIG_F, "img_resolution": args.resolution, "synthesis_kwargs": synthesis},
                              truncation_psi=0.7)
        shape = "StyleGAN2 config-f"
    data = GeneratorActivations(generator, layer="layer5", batch_size=args.batch_size)
    model = PandA(data.feature_shape, layer="layer5", parts_rank=args.parts)
    pictures, timer = picture_callbacks(), Timer(interval="step")
    with tempfile.TemporaryDirectory() as directory:
        trainer = L.Trainer(
            max_steps=args.max_steps, val_check_interval=50, accelerator=args.accelerator, devices=1,
            default_root_dir=directory, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, callbacks=[timer, *pictures],  # the timer stops before the last pictures
        )
        narrowed = "" if args.channel_max == 512 else f" (at most {args.channel_max} channels)"
        device = "cpu" if trainer.strategy.root_device.type == "cpu" else torch.cuda.get_device_name()
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device}; {shape} {args.resolution} px{narrowed}, "
              f"layer5 {tuple(data.feature_shape)}, batch {args.batch_size}, {args.parts} parts", flush=True)
        start = time.perf_counter()
        trainer.fit(model, data)
        whole = time.perf_counter() - start
        loop = timer.time_elapsed("train")
        print(f"fit: {trainer.global_step} steps ({'converged' if model.convergence.converged else 'not converged'}), "
              f"{loop:.1f} s in the training loop (pictures every 500 steps included), "
              f"{1000 * loop / max(trainer.global_step, 1):.0f} ms a step; {whole:.1f} s with the initialisation "
              "and the end-of-fit pictures", flush=True)
        model.to(data.generator.device).eval()  # (Lightning moves the module back to the CPU after the fit)
        for picture in pictures:  # drawn again, each on its own clock
            start = time.perf_counter()
            picture.render(trainer, model, directory)
            seconds = time.perf_counter() - start
            print(f"  {picture.last_path.name:18} {seconds:6.1f} s {picture.last_path.stat().st_size / 2**20:6.2f} MiB", flush=True)
    latents = data.generator.preview_latents(1, 0)
    edit = lambda Z: model.local_edit(Z, [(0, 1, 3.0)])  # noqa: E731
    times = []
    for _ in range(4):
        start = time.perf_counter()
        data.generator.generate(latents, edit).cpu()
        times.append(time.perf_counter() - start)
    print(f"one edit at {args.resolution} px (a whole generator pass, the layer's output replaced): {statistics.median(times[1:]) * 1000:.0f} ms")
    cuda = f", peak CUDA memory allocated {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if torch.cuda.is_available() else ""
    print(f"peak resident memory {peak_rss_gib():.2f} GiB{cuda}")


if __name__ == "__main__":
    main()
