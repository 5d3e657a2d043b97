"""Several processes: two with half the batch each fit the factors of one, and a two-process fit
resumed from its checkpoint, on two processes or on one, ends where an uninterrupted one does
(with an activation pool that replaces a batch on the way),
and the pictures are drawn without hanging the other process (marked slow: each fit spawns
processes)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from panda_lightning import PandA
from panda_lightning.callbacks import PartsOverlay, RefinedParts
from panda_lightning.datamodules import GeneratorActivations


def _fit(root, generator, devices, batch_size, max_steps=6, ckpt_path=None, callbacks=()):
    # A pool of 2 global batches of 8 (main.3: 2 KiB a sample), a fresh one every 2 steps.
    datamodule = GeneratorActivations(
        generator, layer="main.3", batch_size=batch_size, seed=5, pool_bytes=2 * 8 * 2048, fresh_every=2
    )
    model = PandA(datamodule.feature_shape, parts_rank=4, init_samples=24, stop_when_converged=False)
    trainer = L.Trainer(
        accelerator="cpu", devices=devices, strategy="ddp_spawn" if devices > 1 else "auto",
        max_steps=max_steps, default_root_dir=root, logger=False, enable_checkpointing=bool(callbacks),
        callbacks=list(callbacks), enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(model, datamodule, ckpt_path=ckpt_path)
    return model


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory, module_tiny_generator):
    """Six uninterrupted steps on two processes with 4 samples each."""
    return _fit(tmp_path_factory.mktemp("two"), module_tiny_generator, devices=2, batch_size=4)


@pytest.fixture(scope="module")
def step_3_checkpoint(tmp_path_factory, module_tiny_generator):
    """The checkpoint of the same two-process fit after 3 steps."""
    directory = tmp_path_factory.mktemp("step_3")
    at_step_3 = ModelCheckpoint(dirpath=directory, filename="step_3", every_n_train_steps=3, save_top_k=1)
    _fit(directory, module_tiny_generator, devices=2, batch_size=4, max_steps=3, callbacks=[at_step_3])
    return directory / "step_3.ckpt"


@pytest.mark.slow
def test_two_processes_fit_the_factors_of_one_with_the_same_global_batch(
    tmp_path, module_tiny_generator, two_processes
):
    one = _fit(tmp_path, module_tiny_generator, devices=1, batch_size=8)
    # Sums over samples are split between processes and all-reduced: equal up to rounding.
    torch.testing.assert_close(two_processes.appearances, one.appearances, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(two_processes.parts, one.parts, rtol=1e-4, atol=1e-5)
    assert not torch.equal(one.parts, PandA(one.hparams.feature_shape, parts_rank=4).parts)  # it did fit


@pytest.mark.slow
def test_a_resumed_two_process_fit_ends_with_the_factors_of_an_uninterrupted_one(
    tmp_path, module_tiny_generator, two_processes, step_3_checkpoint
):
    resumed = _fit(tmp_path, module_tiny_generator, devices=2, batch_size=4, ckpt_path=step_3_checkpoint)
    # Same processes, same order of sums: bit for bit, the stream position and step sizes included.
    assert torch.equal(resumed.parts, two_processes.parts)
    assert torch.equal(resumed.appearances, two_processes.appearances)


@pytest.mark.slow
def test_a_two_process_checkpoint_resumes_on_one_process_with_the_same_global_batch(
    tmp_path, module_tiny_generator, two_processes, step_3_checkpoint
):
    # The stream position counts global batches: one process with twice the batch goes on with
    # the very samples that the two would have drawn.
    resumed = _fit(tmp_path, module_tiny_generator, devices=1, batch_size=8, ckpt_path=step_3_checkpoint)
    torch.testing.assert_close(resumed.parts, two_processes.parts, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(resumed.appearances, two_processes.appearances, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_two_process_fit_with_pictures_ends_and_writes_them(tmp_path, module_tiny_generator):
    # Rank 0 draws; a collective inside its drawing alone (such as trainer.log_dir) would hang.
    datamodule = GeneratorActivations(module_tiny_generator, layer="main.3", batch_size=4, seed=5)
    model = PandA(datamodule.feature_shape, parts_rank=4, init_samples=24, stop_when_converged=False)
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_spawn", max_steps=2, default_root_dir=tmp_path,
        logger=TensorBoardLogger(tmp_path), callbacks=[PartsOverlay(num_samples=1), RefinedParts(num_samples=1)],
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(model, datamodule)
    assert (tmp_path / "lightning_logs" / "version_0" / "parts.png").is_file()
    assert (tmp_path / "lightning_logs" / "version_0" / "refined_parts.png").is_file()
