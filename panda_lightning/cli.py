"""The ``panda`` command: LightningCLI over PandA and the generator-activations DataModule."""

from __future__ import annotations

import warnings

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from datamodules import GeneratorActivations
from panda_lightning.commands import PandATrainer
from panda_lightning.module import PandA


DESCRIPTION = (
    "Fit PandA (parts and appearances of a pretrained GAN's layer) with Lightning. "
    "Start with: panda fit --config configs/dcgan_faces.yaml"
)


class PandACLI(LightningCLI):
    """``panda fit --config configs/dcgan_faces.yaml``; ``panda fit --help`` lists every option."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        # No validation or test data: fit, then the picture subcommands of PandATrainer.
        pictures = {name: {"model", "datamodule"} for name in ("edit", "remove", "saliency", "rewrite", "rank", "refine")}
        return {"fit": LightningCLI.subcommands()["fit"], **pictures}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # The parameters' shapes come from the generator's layer, not from the user.
        parser.link_arguments("data.feature_shape", "model.feature_shape", apply_on="instantiate")
        parser.link_arguments("data.layer", "model.layer")


def run(args: list[str] | None = None) -> PandACLI:
    """Run the CLI on ``args`` (``sys.argv[1:]`` when None) and return it, with its trainer,
    model and datamodule."""
    # Our checkpoints hold the factors after each step's update, as we want; Lightning's
    # warning about manual optimisation with every_n_train_steps does not apply.
    warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
    return PandACLI(
        PandA,
        GeneratorActivations,
        trainer_class=PandATrainer,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"description": DESCRIPTION},
        args=args,
    )


def main() -> None:
    """The ``panda`` console script."""
    run()


if __name__ == "__main__":
    main()
