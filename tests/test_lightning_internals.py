"""What ``panda_lightning.lightning_internals`` takes from Lightning's private parts still does
what it did in the release it was checked against."""

from __future__ import annotations

import lightning as L
import torch

from panda_lightning import PandA
from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.lightning_internals import CHECKED_AGAINST, checkpoint_contents

CHANGED = (
    f"Lightning {L.__version__} changed what panda_lightning/lightning_internals.py reaches into "
    f"(checked against {CHECKED_AGAINST}): mend it there."
)


def test_the_checkpoint_contents_are_what_save_checkpoint_writes(tmp_path, tiny_generator):
    datamodule = GeneratorActivations(tiny_generator, layer="main.3", batch_size=8, val_samples=8)
    model = PandA(datamodule.feature_shape, parts_rank=4, init_samples=16)
    trainer = L.Trainer(max_steps=3, default_root_dir=tmp_path, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1)
    trainer.fit(model, datamodule)
    trainer.save_checkpoint(tmp_path / "saved.ckpt")
    saved = torch.load(tmp_path / "saved.ckpt", weights_only=False)
    try:
        ours = checkpoint_contents(trainer)
    except AttributeError as error:
        raise AssertionError(CHANGED) from error
    assert set(ours) == set(saved), CHANGED
    assert ours["global_step"] == saved["global_step"] == 3, CHANGED
    assert ours["GeneratorActivations"] == saved["GeneratorActivations"] == {"next_step": 3}, CHANGED  # (for an exact resume)
    for name, tensor in saved["state_dict"].items():
        assert torch.equal(ours["state_dict"][name], tensor), CHANGED
