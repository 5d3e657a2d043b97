"""The ``panda`` command: LightningCLI over PandA and the generator-activations DataModule."""

from __future__ import annotations

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from datamodules import GeneratorActivations
from panda_lightning.module import PandA


class PandACLI(LightningCLI):
    """``panda fit --config configs/dcgan_faces.yaml``; ``panda fit --help`` lists every option."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # The parameters' shapes come from the generator's layer, not from the user.
        parser.link_arguments("data.feature_shape", "model.feature_shape", apply_on="instantiate")


def main(args: list[str] | None = None) -> PandACLI:
    return PandACLI(
        PandA,
        GeneratorActivations,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        args=args,
    )


if __name__ == "__main__":
    main()
