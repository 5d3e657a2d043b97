"""Two processes with half the batch each fit the same factors as one process (marked slow)."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from datamodules import GeneratorActivations
from panda_lightning import PandA


def _fit(tmp_path, generator, devices, batch_size, strategy="auto"):
    datamodule = GeneratorActivations(generator, layer="main.3", batch_size=batch_size, seed=5)
    model = PandA(datamodule.feature_shape, parts_rank=4, init_samples=24, stop_when_converged=False)
    trainer = L.Trainer(
        accelerator="cpu", devices=devices, strategy=strategy, max_steps=6, default_root_dir=tmp_path,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(model, datamodule)
    return model


@pytest.mark.slow
def test_two_processes_fit_the_factors_of_one_with_the_same_global_batch(tmp_path, tiny_generator):
    one = _fit(tmp_path / "one", tiny_generator, devices=1, batch_size=8)
    two = _fit(tmp_path / "two", tiny_generator, devices=2, batch_size=4, strategy="ddp_spawn")
    # Sums over samples are split between processes and all-reduced: equal up to rounding.
    torch.testing.assert_close(two.appearances, one.appearances, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(two.parts, one.parts, rtol=1e-4, atol=1e-5)
    assert not torch.equal(one.parts, PandA(one.hparams.feature_shape, parts_rank=4).parts)  # it did fit
