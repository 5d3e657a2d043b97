"""panda-lightning: parts and appearances of a pretrained GAN's layers (PandA) in Lightning.

From a fitted run, everything in one line: ``run = panda_lightning.load_run("runs/panda/version_0")``
(:mod:`panda_lightning.run`).

Rooms: ``functional`` (the math on tensors, no Lightning), ``fitting`` (the LightningModule and
its optimiser), ``datamodules`` (the frozen generator's activations), ``callbacks`` (pictures),
``generators`` (pretrained generators and layer hooks), ``cli`` (the ``panda`` command), ``run`` (a fitted run from Python),
``metrics`` (torchmetrics metrics) and ``images`` (picture helpers).
"""

from typing import Any

__all__ = ["PandA", "GeneratorActivations", "Run", "load_run"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import panda_lightning.functional` does not import Lightning.
    if name == "PandA":
        from panda_lightning.fitting.module import PandA

        return PandA
    if name == "GeneratorActivations":
        from panda_lightning.datamodules import GeneratorActivations

        return GeneratorActivations
    if name in ("Run", "load_run"):
        from panda_lightning import run

        return getattr(run, name)
    raise AttributeError(f"module 'panda_lightning' has no attribute {name!r}")
