"""PandA as a LightningModule: one step is Algorithm 1, planted parts are found, bad input and
divergence stop the run, and a resumed fit ends where an uninterrupted one does."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from einops import rearrange
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.strategies import SingleDeviceStrategy

from panda_lightning import PandA
from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.functional.editing import part_mask
from panda_lightning.functional.factorization import (
    channel_scatter,
    hosvd_appearances,
    orthogonality_error,
    project_orthonormal_,
    random_parts,
    reconstruction_loss,
)


def _trainer(tmp_path, max_steps, **kwargs):
    defaults = dict(
        max_steps=max_steps, default_root_dir=tmp_path, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1,
        num_sanity_val_steps=0,
    )
    return L.Trainer(**{**defaults, **kwargs})


def _fit(tmp_path, generator, max_steps, layer="features", batch_size=8, model_kwargs=None, data_kwargs=None, **trainer_kwargs):
    datamodule = GeneratorActivations(generator, layer=layer, batch_size=batch_size, **(data_kwargs or {}))
    model = PandA(datamodule.feature_shape, **{"parts_rank": 4, "init_samples": 32, **(model_kwargs or {})})
    trainer = _trainer(tmp_path, max_steps, **trainer_kwargs)
    trainer.fit(model, datamodule)
    return model, datamodule, trainer


def _autograd_step(Z, A, P, lr):
    """One iteration of Algorithm 1 on the relative error, gradients by autograd in float64."""
    Z, A, P = Z.double(), A.double(), P.double()
    energy = Z.square().sum()

    def gradient(A, P, wrt):
        A, P = A.clone().requires_grad_(wrt == "A"), P.clone().requires_grad_(wrt == "P")
        loss = (Z - A @ (A.T @ Z @ P) @ P.T).square().sum() / energy
        loss.backward()
        return (A if wrt == "A" else P).grad

    P = (P - lr * gradient(A, P, "P")).clamp(min=0)
    A = project_orthonormal_(A - lr * gradient(A, P, "A"))  # the polar factor: nearest orthonormal
    return A, P


def test_one_training_step_is_one_iteration_of_algorithm_1(tmp_path, tiny_generator):
    lr = 0.3
    model, datamodule, trainer = _fit(
        tmp_path, tiny_generator, max_steps=1, layer="main.3",
        model_kwargs={"lr": lr, "init_samples": 16, "seed": 3, "appearance_rank": 5},
    )
    unfold = lambda z: rearrange(z, "n c h w -> n c (h w)")
    scatter = sum(channel_scatter(unfold(z)) for z in datamodule.held_out_batches(16))
    A0 = hosvd_appearances(scatter, 5)
    P0 = random_parts(64, 4, torch.Generator().manual_seed(3))
    first = GeneratorActivations(tiny_generator, layer="main.3", batch_size=8)
    Z = unfold(first.on_after_batch_transfer(next(iter(first.train_dataloader())), 0))

    A1, P1 = _autograd_step(Z, A0, P0, lr)
    torch.testing.assert_close(model.parts.detach().double(), P1, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(model.appearances.detach().double(), A1, rtol=1e-4, atol=1e-6)
    assert trainer.optimizers[0].step_sizes() == (lr, lr)  # accepted at once, and never beyond lr
    assert trainer.global_step == 1 and datamodule.next_step == 1


def test_with_a_full_basis_a_step_on_the_pooled_gram_matrix_is_the_step_on_the_activations(tmp_path, tiny_generator):
    lr = 0.3
    model, datamodule, trainer = _fit(
        tmp_path, tiny_generator, max_steps=1, layer="main.3", model_kwargs={"lr": lr, "init_samples": 16, "seed": 3},
    )
    assert datamodule.pool.grams  # S = 64 positions, N * C = 8 * 8: the pool keeps Gram matrices
    unfold = lambda z: rearrange(z, "n c h w -> n c (h w)")
    A0 = hosvd_appearances(sum(channel_scatter(unfold(z)) for z in datamodule.held_out_batches(16)), 8)
    P0 = random_parts(64, 4, torch.Generator().manual_seed(3))
    first = GeneratorActivations(tiny_generator, layer="main.3", batch_size=8)  # (no model: activations)
    Z = unfold(first.on_after_batch_transfer(next(iter(first.train_dataloader())), 0))

    _, P1 = _autograd_step(Z, A0, P0, lr)
    torch.testing.assert_close(model.parts.detach().double(), P1, rtol=1e-4, atol=1e-6)
    assert torch.equal(model.appearances.detach(), A0)


def test_appearances_stay_orthonormal_and_a_full_basis_stays_the_hosvd_basis(tmp_path, tiny_generator):
    fewer, _, fewer_trainer = _fit(tmp_path, tiny_generator, max_steps=20, layer="main.3", model_kwargs={"appearance_rank": 4})
    assert fewer_trainer.optimizers[0].blocks == ("parts", "appearances")
    assert orthogonality_error(fewer.appearances.detach()) < 1e-5

    full, datamodule, full_trainer = _fit(tmp_path, tiny_generator, max_steps=20, layer="main.3")
    assert full_trainer.optimizers[0].blocks == ("parts",)  # with A square and orthonormal, A A^T = I: no A step
    unfold = lambda z: rearrange(z, "n c h w -> n c (h w)")
    scatter = sum(channel_scatter(unfold(z)) for z in datamodule.held_out_batches(32))
    assert torch.equal(full.appearances.detach(), hosvd_appearances(scatter, 8))


def test_global_step_counts_iterations_and_each_takes_one_step_of_the_stream(tmp_path, tiny_generator):
    model, datamodule, trainer = _fit(tmp_path, tiny_generator, max_steps=5, layer="main.3")
    assert trainer.global_step == 5
    assert datamodule.next_step == 5
    assert (model.parts >= 0).all()
    assert bool(model.initialised)


def test_planted_parts_and_appearances_are_recovered(tmp_path, planted):
    model, datamodule, _ = _fit(tmp_path, planted, max_steps=300, batch_size=16, model_kwargs={"stop_when_converged": False})
    Z = rearrange(next(datamodule.held_out_batches(16)), "n c h w -> n c (h w)")
    assert reconstruction_loss(Z, model.appearances.detach(), model.parts.detach()) < 1e-5 * Z.square().sum()
    learnt = model.parts.detach() / model.parts.detach().norm(dim=0)
    cosines = planted.planted_parts.T @ learnt  # (planted, learnt)
    assert (cosines.max(dim=1).values > 0.999).all()  # every planted part is found...
    assert sorted(cosines.argmax(dim=1).tolist()) == [0, 1, 2, 3]  # ...by a different learnt part


def test_a_fit_that_ends_unconverged_warns(tmp_path, tiny_generator):
    with pytest.warns(UserWarning, match=r"PandA did not converge in 3 steps.*Raise trainer.max_steps"):
        _fit(tmp_path, tiny_generator, max_steps=3, layer="main.3", val_check_interval=1)


def test_a_fit_without_validation_says_it_cannot_tell_convergence(tmp_path, tiny_generator):
    with pytest.warns(UserWarning, match=r"ran 3 steps without measuring its held-out error.*val_check_interval"):
        _fit(tmp_path, tiny_generator, max_steps=3, layer="main.3")


def test_a_converged_fit_stops_before_max_steps(tmp_path, planted):
    model, _, trainer = _fit(tmp_path, planted, max_steps=2000, batch_size=16, val_check_interval=10)
    assert model.convergence.converged
    assert trainer.global_step < 2000


def test_each_validation_without_progress_halves_the_largest_step_and_patience_of_them_stop(tmp_path, tiny_generator):
    # tol = 0.9: after the first validation no fall of the error counts as progress.
    model, _, trainer = _fit(
        tmp_path, tiny_generator, max_steps=100, layer="main.3", val_check_interval=2,
        model_kwargs={"tol": 0.9, "patience": 3, "lr": 4.0, "appearance_rank": 4},
    )
    assert trainer.global_step == 8  # validations at steps 2 (progress), 4, 6, 8 (none)
    assert trainer.optimizers[0].max_step_sizes() == (0.5, 0.5)
    # The progress bar says how close the stop rule is: the best error, and 3 of 3 stalled validations.
    assert trainer.progress_bar_metrics["best"] == pytest.approx(model.convergence.best)
    assert trainer.progress_bar_metrics["stalled"] == 3


def test_the_held_out_error_is_measured_on_samples_apart_from_training(tmp_path, tiny_generator):
    model, datamodule, trainer = _fit(
        tmp_path, tiny_generator, max_steps=4, layer="main.3", val_check_interval=4, num_sanity_val_steps=2
    )
    loader = datamodule.val_dataloader()
    assert sum(len(latents) for _, latents in loader) == datamodule.val_samples == 512
    Z = torch.cat([rearrange(datamodule.on_after_batch_transfer(batch, 0), "n c h w -> n c (h w)") for batch in loader]).double()
    A, P = model.appearances.detach().double(), model.parts.detach().double()
    expected = (Z - A @ A.T @ Z @ P @ P.T).square().sum() / Z.square().sum()
    logged = trainer.callback_metrics
    torch.testing.assert_close(logged["val/relative_error"].double(), expected, rtol=1e-5, atol=0)
    assert logged["hp_metric"] == logged["val/relative_error"]
    assert trainer.progress_bar_metrics["held_out"] == pytest.approx(logged["val/relative_error"].item())
    assert datamodule.next_step == 4  # validation batches (and the sanity check's) are no training batches
    assert model.convergence.best == pytest.approx(expected.item(), rel=1e-5)  # the sanity check is not tracked


def test_exact_resume_ends_with_the_factors_of_an_uninterrupted_fit(tmp_path, tiny_generator):
    # Validations at steps 2, 4, 6 halve the largest step sizes (tol 0.5: no progress after the first).
    model_kwargs = {"appearance_rank": 5, "tol": 0.5, "patience": 5}
    # A pool of 2 batches of 8 (main.3: 2 KiB a sample), batch 2 replacing batch 0 at step 4.
    pool = {"pool_bytes": 2 * 8 * 2048, "fresh_every": 2}
    whole, _, whole_trainer = _fit(tmp_path / "whole", tiny_generator, max_steps=6, layer="main.3", model_kwargs=model_kwargs, data_kwargs=pool, val_check_interval=2)

    _, _, first = _fit(tmp_path / "first", tiny_generator, max_steps=3, layer="main.3", model_kwargs=model_kwargs, data_kwargs=pool, val_check_interval=2)
    checkpoint = tmp_path / "interrupted.ckpt"
    first.save_checkpoint(checkpoint)
    datamodule = GeneratorActivations(tiny_generator, layer="main.3", batch_size=8, **pool)
    resumed = PandA(datamodule.feature_shape, parts_rank=4, init_samples=32, seed=99, **model_kwargs)  # seed must not matter
    resumed_trainer = _trainer(tmp_path / "second", max_steps=6, val_check_interval=2)
    resumed_trainer.fit(resumed, datamodule, ckpt_path=checkpoint)

    assert torch.equal(resumed.parts, whole.parts)
    assert torch.equal(resumed.appearances, whole.appearances)
    assert resumed.convergence.state_dict() == whole.convergence.state_dict()
    assert whole.convergence.checks_without_progress == 2
    assert resumed_trainer.optimizers[0].max_step_sizes() == whole_trainer.optimizers[0].max_step_sizes() == (2.0, 2.0)
    assert resumed_trainer.optimizers[0].step_sizes() == whole_trainer.optimizers[0].step_sizes()


def test_checkpoint_loads_for_inference(tmp_path, tiny_generator):
    model, _, trainer = _fit(tmp_path, tiny_generator, max_steps=2, layer="main.3")
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    loaded = PandA.load_from_checkpoint(tmp_path / "model.ckpt")
    assert torch.equal(loaded.parts, model.parts) and torch.equal(loaded.appearances, model.appearances)
    assert loaded.hparams.feature_shape == (8, 8, 8)


def test_too_large_a_step_size_is_halved_instead_of_diverging(tmp_path, tiny_generator):
    model, _, trainer = _fit(
        tmp_path, tiny_generator, max_steps=30, layer="main.3", model_kwargs={"lr": 1000.0, "appearance_rank": 4},
        log_every_n_steps=10,  # (the error of step 30 logged)
    )
    assert max(trainer.optimizers[0].step_sizes()) < 100
    assert trainer.callback_metrics["train/relative_error"] < 0.5 and torch.isfinite(model.parts).all()


class NaNAfter(torch.nn.Module):
    """Passes activations through until ``calls`` forward passes, then returns NaN."""

    def __init__(self, calls):
        super().__init__()
        self.calls = calls

    def forward(self, x):
        self.calls -= 1
        return x if self.calls >= 0 else x * float("nan")


def test_activations_that_turn_non_finite_stop_the_run_without_a_broken_checkpoint(tmp_path, tiny_generator):
    tiny_generator.main[3] = NaNAfter(calls=1 + 4 + 3)  # feature shape, 32 init samples in 4 batches, 3 steps
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=1, save_top_k=-1)
    with pytest.raises(FloatingPointError, match=r"activations in batch 3 are not usable: their sum of squares is nan"):
        _fit(  # (pool_bytes=0: every step runs the generator)
            tmp_path, tiny_generator, max_steps=10, layer="main.3", data_kwargs={"pool_bytes": 0},
            enable_checkpointing=True, callbacks=[checkpoints],
        )
    saved = sorted((tmp_path / "ckpt").glob("*.ckpt"))
    assert len(saved) == 3
    for path in saved:
        state = torch.load(path, weights_only=True)["state_dict"]
        assert all(torch.isfinite(tensor).all() for tensor in state.values())


class NaNLayer(torch.nn.Module):
    def forward(self, x):
        return x * float("nan")


def test_non_finite_activations_stop_the_run(tmp_path, tiny_generator):
    tiny_generator.main[3] = NaNLayer()
    with pytest.raises(FloatingPointError, match="activations in the initialisation samples are not usable"):
        _fit(tmp_path, tiny_generator, max_steps=2, layer="main.3")


def test_sixteen_bit_mixed_precision_is_refused(tmp_path, tiny_generator):
    datamodule = GeneratorActivations(tiny_generator, layer="main.3", batch_size=8)
    model = PandA(datamodule.feature_shape, parts_rank=4)
    model.trainer = type("FakeTrainer", (), {"precision": "16-mixed"})()
    with pytest.raises(ValueError, match=r"precision='16-mixed' is not supported.*'32-true'"):
        model.on_fit_start()


def test_bf16_mixed_precision_fits(tmp_path, tiny_generator):
    model, _, _ = _fit(tmp_path, tiny_generator, max_steps=3, layer="main.3", precision="bf16-mixed")
    assert model.parts.dtype == torch.float32 and torch.isfinite(model.parts).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"appearance_rank": 9}, r"appearance_rank=9 must be an integer from 1 to 8 \(at most the number of channels C = 8\)"),
        ({"appearance_rank": 0}, r"appearance_rank=0 must be an integer from 1"),
        ({"parts_rank": 65}, r"parts_rank=65 must be an integer from 1 to 64 \(at most the number of positions H\*W = 8\*8\)"),
        ({"lr": 0.0}, r"lr=0.0 must be a positive finite number"),
        ({"lr": float("nan")}, r"lr=nan must be a positive finite number"),
        ({"lr": float("inf")}, r"lr=inf must be a positive finite number"),
        ({"init_samples": 0}, r"init_samples=0 must be a positive integer"),
        ({"patience": 0}, r"patience=0 must be a positive integer"),
        ({"tol": -1.0}, r"tol=-1.0 must be a finite number in \[0, 1\) \(a fraction of the held-out error\)"),
        ({"tol": 1.0}, r"tol=1.0 must be a finite number in \[0, 1\)"),
        ({"feature_shape": (8, 8)}, r"feature_shape=\(8, 8\) must be \(C, H, W\)"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PandA(**{"feature_shape": (8, 8, 8), **kwargs})


def test_fitting_without_the_streaming_datamodule_explains_what_is_needed(tmp_path):
    loader = torch.utils.data.DataLoader(torch.randn(4, 2, 3, 3), batch_size=2)
    with pytest.raises(TypeError, match="held_out_batches"):
        _trainer(tmp_path, 1).fit(PandA((2, 3, 3), parts_rank=2), loader)


def test_edit_strength_is_in_units_of_the_typical_activation(tmp_path, tiny_generator):
    model, datamodule, _ = _fit(tmp_path, tiny_generator, max_steps=2, layer="main.3", model_kwargs={"init_samples": 16})
    Z = torch.cat(list(datamodule.held_out_batches(16)))
    rms_fibre_norm = Z.square().sum(dim=1).mean().sqrt()  # over samples and positions
    torch.testing.assert_close(model.activation_scale, rms_fibre_norm, rtol=1e-5, atol=0)

    mask = torch.zeros(8, 8)
    mask[2, 5] = 1
    change = model.local_edit(Z[:2], [(mask, 3, 1.0)]) - Z[:2]
    # alpha = 1 adds, where the mask is 1, a vector as long as a typical position's activations.
    torch.testing.assert_close(change[:, :, 2, 5].norm(dim=1), rms_fibre_norm.expand(2), rtol=1e-3, atol=0)
    by_part = model.local_edit(Z[:2], [(1, 3, 2.0)]) - Z[:2]
    expected = 2.0 * model.activation_scale * torch.einsum("c,hw->chw", model.appearances[:, 3], part_mask(model.parts, 1, 8, 8))
    torch.testing.assert_close(by_part, expected.expand_as(by_part).detach())


def test_same_seed_same_factors_and_another_seed_other_factors(tmp_path, tiny_generator):
    first, _, _ = _fit(tmp_path / "first", tiny_generator, max_steps=4, layer="main.3")
    again, _, _ = _fit(tmp_path / "again", tiny_generator, max_steps=4, layer="main.3")
    other, _, _ = _fit(tmp_path / "other", tiny_generator, max_steps=4, layer="main.3", model_kwargs={"seed": 1})
    assert torch.equal(again.parts, first.parts) and torch.equal(again.appearances, first.appearances)
    assert not torch.allclose(other.parts, first.parts)


def test_an_error_mid_iteration_leaves_the_factors_of_the_last_whole_step(tmp_path, tiny_generator):
    class LosesAProcess(SingleDeviceStrategy):
        def reduce(self, tensor, *args, **kwargs):
            # The sum of the A step's gradient (C, R_C) of step 3, after its P step.
            model = self.lightning_module
            if model.global_step == 2 and tensor.shape == model.appearances.shape:
                raise RuntimeError("Connection reset by peer")
            return super().reduce(tensor, *args, **kwargs)

    after_each_step = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, model, *args):
            after_each_step.append((model.parts.clone(), model.appearances.clone(), model.optimizers().step_sizes()))

    datamodule = GeneratorActivations(tiny_generator, layer="main.3", batch_size=8)
    model = PandA(datamodule.feature_shape, parts_rank=4, init_samples=32, lr=1e3, appearance_rank=4)  # lr: backtracks
    with pytest.raises(RuntimeError, match="Connection reset"):
        strategy = LosesAProcess(torch.device("cpu"))
        _trainer(tmp_path, max_steps=5, callbacks=[Record()], strategy=strategy).fit(model, datamodule)
    parts, appearances, step_sizes = after_each_step[-1]
    assert model.global_step == 2
    assert torch.equal(model.parts, parts) and torch.equal(model.appearances, appearances)
    assert model.optimizers().step_sizes() == step_sizes


def test_resuming_with_another_layer_or_rank_names_both(tmp_path, tiny_generator):
    _, _, trainer = _fit(tmp_path, tiny_generator, max_steps=2, layer="main.3")
    trainer.save_checkpoint(tmp_path / "four_parts.ckpt")
    datamodule = GeneratorActivations(tiny_generator, layer="main.3", batch_size=8)
    six_parts = PandA(datamodule.feature_shape, parts_rank=6, init_samples=32)
    with pytest.raises(ValueError, match=r"parts \(64, 4\).*than this model \(parts \(64, 6\)"):
        _trainer(tmp_path, max_steps=4).fit(six_parts, datamodule, ckpt_path=tmp_path / "four_parts.ckpt")


def test_refined_parts_are_each_samples_own_and_edit_there(tmp_path, tiny_generator):
    model, datamodule, _ = _fit(tmp_path, tiny_generator, max_steps=4, layer="main.3")
    activations = datamodule.generator.activations(datamodule.generator.preview_latents(3, seed=0))
    refined = model.refine(activations, "mutual_knn", num_neighbours=5, steps=20)
    assert refined.shape == (3, 64, 4) and (refined >= 0).all()
    assert not torch.allclose(refined[0], refined[1])  # each sample has parts of its own
    edited = model.local_edit(activations, [(1, 2, 3.0)], parts=refined)
    for i in range(3):
        own_mask = part_mask(refined[i], 1, 8, 8)
        expected = activations[i] + 3.0 * model.activation_scale * model.appearances[:, 2, None, None] * own_mask
        torch.testing.assert_close(edited[i], expected)


def test_refining_activations_of_another_layer_names_the_layers_shape(tmp_path, tiny_generator):
    model, datamodule, _ = _fit(tmp_path, tiny_generator, max_steps=1, layer="main.3")
    with pytest.raises(ValueError, match=r"shape \(2, 16, 4, 4\) are not of the layer this model was fitted to, whose activations are \(N, 8, 8, 8\)"):
        model.refine(torch.zeros(2, 16, 4, 4))


def test_only_the_steps_lightning_logs_compute_the_diagnostics(tmp_path, tiny_generator):
    from lightning.pytorch.loggers import Logger

    class Collected(Logger):
        name, version = "collected", 0

        def __init__(self):
            super().__init__()
            self.rows = []

        def log_hyperparams(self, *args, **kwargs):
            pass

        def log_metrics(self, metrics, step):
            self.rows.append((step, metrics))

    logger = Collected()
    _fit(tmp_path, tiny_generator, max_steps=12, layer="main.3", logger=logger, log_every_n_steps=4, limit_val_batches=0)
    logged = [metrics for _, metrics in logger.rows if "train/relative_error" in metrics]
    assert len(logged) == 3  # steps 4, 8 and 12
    for metrics in logged:
        assert {"train/loss", "train/parts_orthogonality_error", "train/parts_sparsity", "train/parts_step_size"} <= set(metrics)


class _ManyPositions(torch.nn.Module):
    """Non-negative features, smooth over space, at 128 x 128 positions: a layer where 8 random
    parts of a fixed scale fit worse than none (relative error 4.8; as StyleGAN3's 148 x 148 layers)."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Identity()
        self.head = torch.nn.Conv2d(4, 3, 1)

    def sample_latents(self, num_samples, generator):
        return torch.randn(num_samples, 4, 8, 8, generator=generator)

    def forward(self, latents):
        features = self.features(torch.nn.functional.softplus(torch.nn.functional.interpolate(latents, size=(128, 128), mode="bilinear")))
        return torch.tanh(self.head(features))


def test_a_layer_of_many_positions_fits_from_parts_scaled_back_rather_than_collapsing(tmp_path):
    model, _, trainer = _fit(tmp_path, _ManyPositions(), max_steps=30, val_check_interval=10,
                             model_kwargs={"parts_rank": 8, "stop_when_converged": False}, data_kwargs={"val_samples": 16})
    # Unscaled, the first step lands on P = 0, where the gradient vanishes: the error stays 1.
    assert model.convergence.best < 0.5 and model.parts.sum() > 0
