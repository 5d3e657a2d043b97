"""PandA as a LightningModule: the factors as parameters, one step of Algorithm 1 per batch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn

from panda_lightning.fitting.contract import HeldOutActivations
from panda_lightning.fitting.optimizer import BlockCoordinateDescent
from panda_lightning.functional.algorithm import (
    GramRelativeError,
    Iteration,
    RelativeReconstructionError,
    algorithm_1_step,
)
from panda_lightning.functional.convergence import ConvergenceTracker
from panda_lightning.functional.editing import local_edit, mask_at_layer, part_mask
from panda_lightning.functional.factorization import (
    PositionsGram,
    channel_scatter,
    hosvd_appearances,
    orthogonality_error,
    parts_scale_terms,
    random_parts,
    scaled_initial_parts,
    sparsity,
    unfold,
)
from panda_lightning.functional.refinement import refine_parts
from panda_lightning.functional.validation import check_float, check_int
from panda_lightning.metrics import RelativeError


class PandA(L.LightningModule):
    """Parts and appearances of a generator's layer (Oldfield et al., TPAMI 2024).

    Learns ``A: (C, R_C)`` (``appearances``) with orthonormal columns and ``P >= 0: (S, R_S)``
    (``parts``) such that each sample's activations ``Z_i: (C, S)`` are close to
    ``A (A^T Z_i P) P^T`` (Eq. 3), by projected block-coordinate descent (Algorithm 1) on the
    streamed activations: a P step projected onto ``P >= 0``, then an A step projected onto
    ``A^T A = I``. ``A`` is initialised by HOSVD from ``init_samples`` streamed samples when the
    fit starts. With ``R_C = C`` (the default) ``A A^T = I`` and the objective does not depend
    on ``A``: it stays the HOSVD basis, whose first columns are the most prominent appearances,
    and a step needs a batch only through ``sum_i Z_i^T Z_i``: a training batch may then come
    as that :class:`PositionsGram` (as ``GeneratorActivations``' pool gives it) or as activations.

    The objective is divided by the batch's activation energy ``sum_i ||Z_i||^2``, so it is
    the relative reconstruction error and one step size suits every layer and generator.
    One ``global_step`` is one iteration of Algorithm 1. Each validation measures the relative
    error on held-out samples (``val/relative_error``, also TensorBoard's ``hp_metric``), and
    the fit is converged once that error has not fallen by a fraction ``tol`` in ``patience``
    validations in a row, the largest step size halved at each.

    Args:
        feature_shape: ``(C, H, W)`` of the activations; the CLI takes it from the data.
        layer: the generator layer factorised, kept to check later uses of a checkpoint; the
            CLI takes it from the data.
        parts_rank: ``R_S``, the number of parts, at most ``H * W``.
        appearance_rank: ``R_C``, the number of appearances, at most ``C``; ``None`` for ``C``.
        lr: the largest step size of projected gradient descent on the relative error. Each
            step's size is found by backtracking (halved until the batch's error falls enough,
            doubled up to ``lr`` after a step that needed no halving), and ``lr`` itself is
            halved at each validation that shows no progress.
        init_samples: samples whose channel scatter gives the HOSVD initialisation of ``A``.
        tol: relative decrease of the held-out error below which a validation shows no progress.
        patience: validations without progress after which the fit is converged.
        stop_when_converged: end the fit at convergence instead of running to ``max_steps``.
        seed: seed of the random parts initialisation.
    """

    def __init__(
        self,
        feature_shape: tuple[int, int, int],
        layer: str | None = None,
        parts_rank: int = 8,
        appearance_rank: int | None = None,
        lr: float = 8.0,
        init_samples: int = 256,
        tol: float = 1e-3,
        patience: int = 4,
        stop_when_converged: bool = True,
        seed: int = 0,
    ):
        super().__init__()
        channels, height, width = _check_feature_shape(feature_shape)
        appearance_rank = channels if appearance_rank is None else appearance_rank
        check_int("appearance_rank", appearance_rank, low=1, high=channels, why=f"at most the number of channels C = {channels}")
        check_int("parts_rank", parts_rank, low=1, high=height * width, why=f"at most the number of positions H*W = {height}*{width}")
        check_float("lr", lr, low=0, low_inclusive=False, why="the largest step size")
        check_int("init_samples", init_samples, low=1)
        check_int("patience", patience, low=1)
        check_float("tol", tol, low=0, high=1, high_inclusive=False, why="a fraction of the held-out error")
        self.save_hyperparameters()
        self.automatic_optimization = False

        self.appearances = nn.Parameter(torch.zeros(channels, appearance_rank))
        self.parts = nn.Parameter(
            random_parts(height * width, parts_rank, torch.Generator().manual_seed(seed))
        )
        self.register_buffer("initialised", torch.tensor(False))
        self.register_buffer("activation_scale", torch.tensor(1.0))
        self.convergence = ConvergenceTracker(tol=tol, patience=patience)
        self.held_out_error = RelativeError()
        self._held_out: HeldOutActivations | None = None  # the data tell it at set-up

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
        rank_zero_info(self._describe_fit())

    def _describe_fit(self) -> str:
        channels, height, width = self.hparams.feature_shape
        layer = "" if self.hparams.layer is None else f" of {self.hparams.layer}"
        every = self.trainer.val_check_interval
        validations = f"every {every} steps" if isinstance(every, int) else "at each validation"
        stop = (
            f"until its held-out error has not fallen by tol={self.hparams.tol} of its best in "
            f"{self.hparams.patience} validations ({validations}; 'stalled' on the progress bar counts them), or "
            if self.hparams.stop_when_converged else ""
        )
        limit = f"for at most max_steps={self.trainer.max_steps} steps" if self.trainer.max_steps > 0 else "with no limit on the steps"
        return (
            f"PandA: {self.parts.shape[1]} parts and {self.appearances.shape[1]} appearances{layer} "
            f"({channels} x {height} x {width}), fitted {stop}{limit}."
        )

    def setup(self, stage: str) -> None:
        # What the fit takes from its data (fitting.contract): the held-out activations of the initialisation.
        datamodule = self.trainer.datamodule
        self._held_out = datamodule if isinstance(datamodule, HeldOutActivations) else None

    @torch.no_grad()
    def _initialise_appearances(self) -> None:
        if self._held_out is None:
            raise TypeError(
                "PandA initialises its appearances from streamed activations: fit it with a "
                "DataModule that has held_out_batches(num_samples), such as "
                "panda_lightning.datamodules.GeneratorActivations."
            )
        batches = self._held_out.held_out_batches
        channels = self.appearances.shape[0]
        scatter = torch.zeros(channels, channels, device=self.device)
        scale_terms = torch.zeros(2, device=self.device)
        for activations in batches(self.hparams.init_samples):
            Z = unfold(activations)
            scatter += channel_scatter(Z)
            scale_terms += parts_scale_terms(Z, self.parts.detach())
        scatter, scale_terms = self._sum_over_devices(scatter), self._sum_over_devices(scale_terms)
        _check_finite_activations(scatter.trace(), "the initialisation samples")
        appearances = self.trainer.strategy.broadcast(hosvd_appearances(scatter, self.appearances.shape[1]))
        self.appearances.copy_(appearances)
        # With A's full basis: only where the random parts fit worse than none (many positions).
        self.parts.copy_(scaled_initial_parts(self.parts.detach(), scale_terms))
        _, height, width = self.hparams.feature_shape
        # The RMS norm of one position's channel fibre: the unit of edit strengths.
        self.activation_scale.copy_((scatter.trace() / (self.hparams.init_samples * height * width)).sqrt())
        self.initialised.fill_(True)

    @property
    def fits_on_positions_gram(self) -> bool:
        """Whether a training batch may come as its :class:`PositionsGram` (``R_C = C``: the
        objective depends on the batch only through ``sum_i Z_i^T Z_i``)."""
        return self.appearances.shape[0] == self.appearances.shape[1]

    @torch.no_grad()
    def training_step(self, batch: Tensor | PositionsGram, batch_idx: int) -> None:
        optimizer = self.optimizers()
        # Our sums lose accuracy in 16 bits, whatever autocast the Trainer set.
        with torch.autocast(self.device.type, enabled=False):
            if isinstance(batch, PositionsGram):
                objective = GramRelativeError(batch.gram.float(), reduce=self._sum_over_devices)
                batch_size = batch.num_samples
            else:
                objective = RelativeReconstructionError(unfold(batch), reduce=self._sum_over_devices)
                batch_size = batch.shape[0]
            # One iteration of Algorithm 1: a P step projected onto P >= 0, then an A step projected
            # onto A^T A = I. It writes nothing until it has finished, so an error or Ctrl+C midway
            # leaves the factors (and a checkpoint written then) at step `global_step`.
            try:
                iteration = algorithm_1_step(
                    objective, self.appearances, self.parts, optimizer.step_sizes(), optimizer.max_step_sizes()
                )
            except FloatingPointError:
                _check_finite_activations(objective.energy, f"batch {batch_idx}")  # the likelier cause, named
                raise
        optimizer.step(iteration=iteration)  # writes the factors and step sizes: one global_step
        every = self.trainer.log_every_n_steps
        if every and self.global_step % every == 0:
            # Only the steps Lightning logs compute (and wait for) the diagnostics.
            self._log_iteration(iteration, objective, batch_size)

    def _log_iteration(self, iteration: Iteration, objective: RelativeReconstructionError | GramRelativeError, batch_size: int) -> None:
        self.log_dict(
            {
                "train/relative_error": iteration.relative_error,
                "train/loss": iteration.relative_error * objective.energy / (batch_size * self.trainer.world_size),
                "train/parts_orthogonality_error": orthogonality_error(self.parts),
                "train/parts_sparsity": sparsity(self.parts),
                "train/appearances_orthogonality_error": orthogonality_error(self.appearances),
                **{f"train/{block}_step_size": size for block, size in iteration.step_sizes._asdict().items() if size is not None},
            },
            batch_size=batch_size,
        )
        self.log("error", iteration.relative_error, prog_bar=True, logger=False, batch_size=batch_size)

    def configure_optimizers(self) -> BlockCoordinateDescent:
        # The appearances are a block only when R_C < C: with R_C = C and A orthonormal,
        # A A^T = I and no A step can change the fit.
        channels, appearance_rank = self.appearances.shape
        return BlockCoordinateDescent(
            self.parts, self.appearances if appearance_rank < channels else None, lr=self.hparams.lr
        )

    # -- the held-out error, and stopping on it --------------------------------------------------

    @torch.no_grad()
    def validation_step(self, activations: Tensor, batch_idx: int) -> None:
        with torch.autocast(self.device.type, enabled=False):
            self.held_out_error.update(unfold(activations), self.appearances, self.parts)

    def on_validation_epoch_end(self) -> None:
        error = self.held_out_error.compute()  # summed over devices
        self.held_out_error.reset()
        self.log_dict({"val/relative_error": error, "hp_metric": error})
        self.log("held_out", error, prog_bar=True, logger=False)  # on the progress bar, beside "error"
        if self.trainer.sanity_checking:
            return
        if not self.convergence.update(error.item()):
            # No progress: the steps are too long for the batches' noise. Halving the largest
            # step size lets the factors settle (a stochastic fit at a fixed step never does).
            self.optimizers().optimizer.halve_max_step_sizes()
        # How close the stop rule is: the best so far, and the validations since it fell.
        self.log_dict(
            {"best": self.convergence.best, "stalled": float(self.convergence.checks_without_progress)},
            prog_bar=True, logger=False,
        )
        if self.convergence.converged and self.hparams.stop_when_converged:
            rank_zero_info(self.outcome())
            self.trainer.should_stop = True

    def outcome(self) -> str:
        """One sentence: whether the fit has converged, and why it says so."""
        if math.isinf(self.convergence.best):
            return (
                f"PandA ran {self.global_step} steps without measuring its held-out error, so it could "
                "not tell whether it converged: set trainer.val_check_interval to a number of steps "
                "(the panda command's default is 50)."
            )
        if self.convergence.converged:
            return (
                f"PandA converged at step {self.global_step}: the held-out relative error has not fallen below "
                f"(1 - tol) x its best {self.convergence.best:.5f} (tol={self.hparams.tol}) in "
                f"{self.hparams.patience} validations."
            )
        return (
            f"PandA did not converge in {self.global_step} steps: the held-out relative error "
            f"(best {self.convergence.best:.5f}) was still falling by more than tol={self.hparams.tol} "
            f"in {self.hparams.patience} validations. Raise trainer.max_steps to fit further."
        )

    def on_train_end(self) -> None:
        if not self.convergence.converged:
            rank_zero_warn(self.outcome())

    def teardown(self, stage: str) -> None:
        # End a several-process fit together: each process destroys its process group after the
        # others have finished, rather than at interpreter exit, where a gloo thread still alive
        # can abort the process ("terminate called without an active exception").
        if stage == "fit" and torch.distributed.is_available() and torch.distributed.is_initialized():
            self.trainer.strategy.barrier("panda-fit-end")
            torch.distributed.destroy_process_group()

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
                :func:`panda_lightning.functional.refinement.refine_parts`.

        Returns:
            ``(N, S, R_S)``, non-negative; pass as ``parts`` to :meth:`local_edit` and :meth:`mask`.
        """
        if tuple(activations.shape[1:]) != tuple(self.hparams.feature_shape):
            layer = "" if self.hparams.layer is None else f" {self.hparams.layer!r}"
            raise ValueError(
                f"activations of shape {tuple(activations.shape)} are not of the layer{layer} this model was "
                f"fitted to, whose activations are (N, {', '.join(map(str, self.hparams.feature_shape))})."
            )
        Z = unfold(activations)
        return refine_parts(Z, self.appearances.detach().to(Z), self.parts.detach().to(Z), affinity, **options)

    # -- helpers -----------------------------------------------------------------------------

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
    shape = tuple(feature_shape)
    if len(shape) != 3:
        raise ValueError(f"feature_shape={shape} must be (C, H, W), three positive sizes.")
    return tuple(check_int(f"feature_shape[{i}]", size, low=1, why="(C, H, W), three positive sizes") for i, size in enumerate(shape))


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
