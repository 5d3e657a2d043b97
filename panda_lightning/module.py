"""PandA as a LightningModule: the factors as parameters, one step of Algorithm 1 per batch."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import lightning as L
import torch
from einops import rearrange
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn

from panda_lightning.convergence import ConvergenceTracker
from panda_lightning.editing import local_edit, mask_at_layer, part_mask
from panda_lightning.factorization import (
    channel_scatter,
    hosvd_appearances,
    loss_and_appearance_gradient,
    loss_and_parts_gradient,
    orthogonality_error,
    random_parts,
    sparsity,
)
from panda_lightning.optim import ProjectedGradientDescent
from panda_lightning.refinement import refine_parts


class PandA(L.LightningModule):
    """Parts and appearances of a generator's layer (Oldfield et al., TPAMI 2024).

    Learns ``A: (C, R_C)`` (``appearances``) and ``P >= 0: (S, R_S)`` (``parts``) such that
    each sample's activations ``Z_i: (C, S)`` are close to ``A (A^T Z_i P) P^T`` (Eq. 3), by
    projected block-coordinate descent (Algorithm 1) on the streamed activations. ``A`` is
    initialised by HOSVD from ``init_samples`` streamed samples when the fit starts.

    The objective is divided by the batch's activation energy ``sum_i ||Z_i||^2``, so it is
    the relative reconstruction error and one step size suits every layer and generator.
    One ``global_step`` is one iteration of Algorithm 1 (a P step and an A step).

    Args:
        feature_shape: ``(C, H, W)`` of the activations; the CLI takes it from the data.
        layer: the generator layer factorised, kept to check later uses of a checkpoint; the
            CLI takes it from the data.
        parts_rank: ``R_S``, the number of parts, at most ``H * W``.
        appearance_rank: ``R_C``, the number of appearances, at most ``C``; ``None`` for ``C``.
        lr: first step size of projected gradient descent on the relative error; halved
            whenever a step would raise the error (so too large a value is safe, only slower).
        init_samples: samples whose channel scatter gives the HOSVD initialisation of ``A``.
        tol: decrease of the smoothed relative error below which a step makes no progress.
        patience: steps without progress after which the fit is converged.
        stop_when_converged: end the fit at convergence instead of running to ``max_steps``.
        seed: seed of the random parts initialisation.
    """

    def __init__(
        self,
        feature_shape: tuple[int, int, int],
        layer: str | None = None,
        parts_rank: int = 8,
        appearance_rank: int | None = None,
        lr: float = 0.5,
        init_samples: int = 1024,
        tol: float = 1e-4,
        patience: int = 100,
        stop_when_converged: bool = True,
        seed: int = 0,
    ):
        super().__init__()
        channels, height, width = _check_feature_shape(feature_shape)
        appearance_rank = channels if appearance_rank is None else appearance_rank
        _check_rank("appearance_rank", appearance_rank, channels, f"the number of channels C={channels}")
        _check_rank("parts_rank", parts_rank, height * width, f"the number of positions H*W={height}*{width}={height * width}")
        _check_positive("lr", lr)
        _check_positive("init_samples", init_samples)
        _check_positive("patience", patience)
        if not tol >= 0:
            raise ValueError(f"tol={tol} must be 0 or more.")
        self.save_hyperparameters()
        self.automatic_optimization = False

        self.appearances = nn.Parameter(torch.zeros(channels, appearance_rank))
        self.parts = nn.Parameter(
            random_parts(height * width, parts_rank, torch.Generator().manual_seed(seed))
        )
        self.register_buffer("initialised", torch.tensor(False))
        self.register_buffer("activation_scale", torch.tensor(1.0))
        self.convergence = ConvergenceTracker(tol=tol, patience=patience)

    # -- the algorithm -----------------------------------------------------------------------

    def on_fit_start(self) -> None:
        precision = str(self.trainer.precision)
        if precision.startswith("16"):
            raise ValueError(
                f"precision={precision!r} is not supported: PandA writes its own gradients, which "
                "16-bit mixed precision would unscale. Use '32-true', 'bf16-mixed' or '64-true'."
            )
        if not bool(self.initialised):
            self._initialise_appearances()

    @torch.no_grad()
    def _initialise_appearances(self) -> None:
        batches = getattr(self.trainer.datamodule, "held_out_batches", None)
        if batches is None:
            raise TypeError(
                "PandA initialises its appearances from streamed activations: fit it with a "
                "DataModule that has held_out_batches(num_samples), such as "
                "datamodules.GeneratorActivations."
            )
        channels = self.appearances.shape[0]
        scatter = torch.zeros(channels, channels, device=self.device)
        for activations in batches(self.hparams.init_samples):
            scatter += channel_scatter(self._unfold(activations))
        scatter = self._sum_over_devices(scatter)
        _check_finite_activations(scatter.trace(), "the initialisation samples")
        appearances = self.trainer.strategy.broadcast(hosvd_appearances(scatter, self.appearances.shape[1]))
        self.appearances.copy_(appearances)
        _, height, width = self.hparams.feature_shape
        # The RMS norm of one position's channel fibre: the unit of edit strengths.
        self.activation_scale.copy_((scatter.trace() / (self.hparams.init_samples * height * width)).sqrt())
        self.initialised.fill_(True)

    @torch.no_grad()
    def training_step(self, activations: Tensor, batch_idx: int) -> None:
        steps_done, start = self.global_step, self._snapshot()
        try:
            # Our sums lose accuracy in 16 bits, whatever autocast the Trainer set.
            with torch.autocast(self.device.type, enabled=False):
                self._algorithm_1_iteration(self._unfold(activations), batch_idx)
        except BaseException:
            # Ctrl+C, a lost process or an error mid-iteration: undo the half-done iteration, so
            # that a checkpoint written now holds the factors of step `global_step`.
            if self.global_step == steps_done:
                self._restore(start)
            raise

    def _snapshot(self) -> tuple[Tensor, Tensor, list[float]]:
        step_sizes = [optimizer.optimizer.step_size for optimizer in self.optimizers()]
        return self.parts.clone(), self.appearances.clone(), step_sizes

    def _restore(self, snapshot: tuple[Tensor, Tensor, list[float]]) -> None:
        parts, appearances, step_sizes = snapshot
        self.parts.copy_(parts)
        self.appearances.copy_(appearances)
        for optimizer, step_size in zip(self.optimizers(), step_sizes):
            optimizer.optimizer.step_size = step_size

    def _algorithm_1_iteration(self, Z: Tensor, batch_idx: int) -> None:
        parts_optimizer, appearances_optimizer = self.optimizers()
        local_energy = Z.square().sum()  # this device's samples; every evaluation below reuses it
        energy = self._sum_over_devices(local_energy.clone())  # (the reduction is in place)
        _check_finite_activations(energy, f"batch {batch_idx}")
        objective = partial(self._objective, Z, local_energy, energy)

        # P step with the current A, projected onto P >= 0. Stepped past Lightning's counter
        # so that one global_step is one whole iteration of Alg. 1.
        loss = parts_optimizer.optimizer.step(closure=partial(objective, "parts"))
        # A step with the updated P.
        appearances_optimizer.step(closure=partial(objective, "appearances"))

        converged = self.convergence.update(loss.item())
        samples = Z.shape[0] * self.trainer.world_size
        self.log_dict(
            {
                "train/relative_error": loss,
                "train/loss": loss * energy / samples,
                "train/relative_error_smoothed": self.convergence.average,
                "train/parts_orthogonality_error": orthogonality_error(self.parts),
                "train/parts_sparsity": sparsity(self.parts),
                "train/parts_step_size": parts_optimizer.optimizer.step_size,
                "train/appearances_step_size": appearances_optimizer.optimizer.step_size,
            },
            prog_bar=False,
            batch_size=Z.shape[0],
        )
        self.log("error", loss, prog_bar=True, logger=False, batch_size=Z.shape[0])
        if converged and self.hparams.stop_when_converged:
            rank_zero_info(
                f"PandA converged at step {self.global_step}: the smoothed relative error "
                f"{self.convergence.average:.5f} fell by less than tol={self.hparams.tol} "
                f"in {self.hparams.patience} steps."
            )
            self.trainer.should_stop = True

    def _objective(self, Z: Tensor, local_energy: Tensor, energy: Tensor, block: str) -> Tensor:
        """The relative error ``L / sum_i ||Z_i||^2`` over all devices; sets ``block``'s gradient."""
        loss_and_gradient = loss_and_parts_gradient if block == "parts" else loss_and_appearance_gradient
        loss, gradient = loss_and_gradient(Z, self.appearances, self.parts, local_energy)
        getattr(self, block).grad = self._sum_over_devices(gradient) / energy
        return self._sum_over_devices(loss) / energy

    def configure_optimizers(self) -> list[ProjectedGradientDescent]:
        lr = self.hparams.lr
        return [
            ProjectedGradientDescent([self.parts], lr=lr, nonnegative=True),
            ProjectedGradientDescent([self.appearances], lr=lr),
        ]

    def on_train_end(self) -> None:
        if not self.convergence.converged:
            rank_zero_warn(
                f"PandA did not converge in {self.global_step} steps: the smoothed relative error "
                f"({self.convergence.average:.5f}) was still falling by more than tol="
                f"{self.hparams.tol}. Raise trainer.max_steps to fit further."
            )

    # -- using the factors ---------------------------------------------------------------------

    @torch.no_grad()
    def local_edit(
        self, activations: Tensor, edits: Sequence[tuple[int | Tensor, int, float]], parts: Tensor | None = None
    ) -> Tensor:
        """Edit activations ``(N, C, H, W)`` at parts or masks with chosen appearances (Sec. 3.3.1).

        Args:
            edits: ``(where, appearance, alpha)`` triples. ``where`` is a part index or a mask
                in ``[0, 1]`` (pixel-level control), as :meth:`mask` takes it.
                ``alpha`` is relative to the layer's typical activation: ``alpha = 1`` adds, at a
                position where the mask is 1, a vector as long as a typical position's activations.
            parts: each sample's refined parts ``(N, S, R_S)`` from :meth:`refine`, for part
                indices; ``None``: the global parts.
        """
        scale = self.activation_scale.item()
        scaled = [(self.mask(where, parts), appearance, alpha * scale) for where, appearance, alpha in edits]
        return local_edit(activations, self.appearances.detach(), scaled)

    def mask(self, where: int | Tensor, parts: Tensor | None = None) -> Tensor:
        """Mask at the layer: the normalised part ``where`` (``(H, W)``, or ``(N, H, W)`` of refined
        ``parts``), or a hand-drawn mask at the layer's or a whole multiple of its resolution (such
        as the image's) averaged to it."""
        _, height, width = self.hparams.feature_shape
        if isinstance(where, Tensor):
            return mask_at_layer(where, height, width)
        return part_mask(self.parts.detach() if parts is None else parts, where, height, width)

    @torch.no_grad()
    def refine(self, activations: Tensor, affinity: str = "full", **options: Any) -> Tensor:
        """Each sample's own parts (Sec. 4.2-4.3, Alg. 2), refined from the global parts.

        Args:
            activations: ``(N, C, H, W)`` at this model's layer.
            affinity: ``"full"`` (the Gram matrix of the fibres) or ``"mutual_knn"`` (Alg. 2).
            options: ``num_neighbours``, ``steps``, ``lr``, ... of
                :func:`panda_lightning.refinement.refine_parts`.

        Returns:
            ``(N, S, R_S)``, non-negative; pass as ``parts`` to :meth:`local_edit` and :meth:`mask`.
        """
        if tuple(activations.shape[1:]) != tuple(self.hparams.feature_shape):
            layer = "" if self.hparams.layer is None else f" {self.hparams.layer!r}"
            raise ValueError(
                f"activations of shape {tuple(activations.shape)} are not of the layer{layer} this model was "
                f"fitted to, whose activations are (N, {', '.join(map(str, self.hparams.feature_shape))})."
            )
        Z = self._unfold(activations)
        return refine_parts(Z, self.appearances.detach().to(Z), self.parts.detach().to(Z), affinity, **options)

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _unfold(activations: Tensor) -> Tensor:
        return rearrange(activations.float(), "n c h w -> n c (h w)")

    def _sum_over_devices(self, tensor: Tensor) -> Tensor:
        # Manual optimisation: nothing all-reduces our hand-written sums but us.
        return self.trainer.strategy.reduce(tensor, reduce_op="sum")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["panda_convergence"] = self.convergence.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        _check_same_factorisation(checkpoint, self)
        if "panda_convergence" in checkpoint:
            self.convergence.load_state_dict(checkpoint["panda_convergence"])


def _check_feature_shape(feature_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    shape = tuple(int(d) for d in feature_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"feature_shape={tuple(feature_shape)} must be (C, H, W), three positive sizes.")
    return shape


def _check_rank(name: str, rank: int, limit: int, what: str) -> None:
    if not isinstance(rank, int) or not 1 <= rank <= limit:
        raise ValueError(f"{name}={rank} must be an integer from 1 to {what}.")


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name}={value} must be positive.")


def _check_finite_activations(energy: Tensor, where: str) -> None:
    if not torch.isfinite(energy) or energy <= 0:
        raise FloatingPointError(
            f"the generator's activations in {where} are not usable: their sum of squares is "
            f"{energy.item()} (it must be finite and positive). Check the generator's weights and the layer."
        )


def _check_same_factorisation(checkpoint: dict, model: PandA) -> None:
    """Refuse a checkpoint of another layer or other ranks, naming both, before loading it."""
    fitted_layer = checkpoint.get("hyper_parameters", {}).get("layer")
    here = {"layer": model.hparams.layer, **{name: tuple(getattr(model, name).shape) for name in ("parts", "appearances")}}
    there = {"layer": fitted_layer, **{name: tuple(checkpoint["state_dict"][name].shape) for name in ("parts", "appearances")}}
    if fitted_layer is None or model.hparams.layer is None:
        del here["layer"], there["layer"]
    if here != there:
        there, here = (", ".join(f"{name} {value}" for name, value in f.items()) for f in (there, here))
        raise ValueError(
            f"the checkpoint holds another factorisation ({there}) than this model "
            f"({here}). Resume it with the config it was fitted with (saved beside it "
            "as config.yaml or hparams.yaml), or leave out ckpt_path to start a new fit."
        )
