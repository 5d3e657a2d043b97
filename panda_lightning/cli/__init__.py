"""The ``panda`` command: LightningCLI over PandA and the generator-activations DataModule."""

from __future__ import annotations

from typing import Any

from jsonargparse import ArgumentParser
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from panda_lightning.cli.errors import one_line_errors, read_checkpoint
from panda_lightning.cli.inspection import ConfiguredGenerator
from panda_lightning.cli.messages import fit_summary, quiet_third_party_noise
from panda_lightning.cli.trainer import PandATrainer
from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.fitting.module import PandA
from panda_lightning.generators import GaussianLatents

LIGHTNING_CKPT_PATHS = ("last", "best", "hpc", "registry")  # names Trainer.fit resolves itself

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
        pictures = {name: {"model", "datamodule"} for name in ("edit", "remove", "saliency", "rewrite", "rank", "refine")}
        return {"fit": LightningCLI.subcommands()["fit"], **pictures, "layers": {"model", "datamodule"}}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # The parameters' shapes come from the generator's layer, not from the user.
        parser.link_arguments("data.feature_shape", "model.feature_shape", apply_on="instantiate")
        parser.link_arguments("data.layer", "model.layer")

    def _parse_ckpt_path(self) -> None:
        # Lightning reads a given checkpoint's hyper-parameters here, first of all: a file that
        # is no checkpoint of ours is named in one line rather than by the unpickler's traceback.
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and ckpt_path not in LIGHTNING_CKPT_PATHS:
            read_checkpoint(ckpt_path, weights_only=True)
        super()._parse_ckpt_path()

    def after_fit(self) -> None:
        if self.trainer.is_global_zero and not self.trainer.interrupted:
            rank_zero_info(fit_summary(self.trainer, self.model))

    def instantiate_classes(self) -> None:
        if self.subcommand != "layers":
            super().instantiate_classes()
            return
        # `panda layers` is how a user chooses data.layer, so the configured one may be wrong:
        # build the generator and its latents alone, as the DataModule and the model need the layer.
        data = self.config.layers.data
        parser = ArgumentParser()
        parser.add_argument("--generator", type=nn.Module)
        parser.add_argument("--latents", type=GaussianLatents | None)
        built = parser.instantiate(parser.parse_object({"generator": data.generator, "latents": data.latents}))
        sampler = GeneratorActivations.latent_sampler(built.generator, built.latents)
        self.config_init, self.model = self.config, None
        self.datamodule = ConfiguredGenerator(built.generator.eval(), sampler, data.layer)
        self.trainer = self.trainer_class(logger=False, enable_checkpointing=False, enable_model_summary=False)


def run(args: list[str] | None = None, **options: Any) -> PandACLI:
    """Run the CLI on ``args`` (``sys.argv[1:]`` when None) and return it, with its trainer,
    model and datamodule; ``options`` go to :class:`PandACLI` (``trainer_defaults``, ...)."""
    quiet_third_party_noise()
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


