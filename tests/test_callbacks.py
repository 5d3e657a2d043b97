"""The picture callbacks: what they draw, where, and that they only read the module."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from PIL import Image

from panda_lightning import PandA
from panda_lightning.callbacks import CheckpointOnInterrupt, EditGrid, PartsOverlay, RefinedParts, SaliencyMaps
from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.images import HEADER_HEIGHT, label_width


def _fit(tmp_path, generator, callbacks, logger):
    datamodule = GeneratorActivations(generator, layer="main.3", batch_size=8)
    model = PandA(datamodule.feature_shape, parts_rank=3, init_samples=16)
    trainer = L.Trainer(
        max_steps=4, default_root_dir=tmp_path, logger=logger, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks,
    )
    trainer.fit(model, datamodule)
    return model, trainer


def test_each_callback_writes_its_png_and_tensorboard_image(tmp_path, tiny_generator):
    pictures = [PartsOverlay(num_samples=2, every_n_steps=2), SaliencyMaps(num_samples=2, num_appearances=3, every_n_steps=2), EditGrid(num_appearances=2)]
    _, trainer = _fit(tmp_path, tiny_generator, pictures, TensorBoardLogger(tmp_path, name="tb"))
    # 16x16 images enlarged 8 times, with 2 px padding on each side: 132 px a cell; a header of
    # column labels, and the edits' row labels at the left.
    expected = {"parts.png": (2 + 3, 2, 0), "saliency.png": (1 + 3, 2, 0), "edits.png": (1 + 2, 3, label_width(["part 0"]))}
    for callback in pictures:
        with Image.open(callback.last_path) as picture:
            columns, rows, left = expected[callback.last_path.name]
            assert picture.size == (left + 132 * columns, HEADER_HEIGHT + 132 * rows)
        assert callback.last_path.parent == tmp_path / "tb" / "version_0"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(trainer.log_dir, size_guidance={"images": 0}).Reload()
    assert {"parts", "saliency", "edits"} <= set(events.Tags()["images"])
    assert [event.step for event in events.Images("parts")] == [2, 4, 4]  # every 2 steps, and at the end


class Enlarged(torch.nn.Module):
    """The tiny generator with its 16 px images enlarged to 1024 px, as a large generator's."""

    def __init__(self, generator):
        super().__init__()
        self.main, self.sample_latents = generator.main, generator.sample_latents

    def forward(self, latents):
        return torch.nn.functional.interpolate(self.main(latents), scale_factor=64)


def test_a_1024_px_generators_pictures_have_256_px_cells(tmp_path, tiny_generator):
    pictures = [PartsOverlay(num_samples=2), EditGrid(num_appearances=2), RefinedParts(num_samples=2, num_neighbours=4, steps=2)]
    _fit(tmp_path, Enlarged(tiny_generator), pictures, False)
    cell = 2 + 256 + 2
    expected = {"parts.png": (0, 2 + 3, HEADER_HEIGHT, 2), "edits.png": (label_width(["part 0"]), 1 + 2, HEADER_HEIGHT, 3),
                "refined_parts.png": (label_width(["refined: mutual_knn"]), 2, 0, 4)}
    for callback in pictures:
        left, columns, top, rows = expected[callback.last_path.name]
        with Image.open(callback.last_path) as picture:
            assert picture.size == (left + cell * columns, top + cell * rows)


def test_a_checkpoint_left_in_the_working_directory_is_not_resumed_from(tmp_path, tiny_generator, monkeypatch):
    # Lightning resumes from an OnExceptionCheckpoint's file when fit() is given no ckpt_path,
    # looking before the run's folder is known: a stray ./interrupted.ckpt would be taken.
    monkeypatch.chdir(tmp_path)
    _, earlier = _fit(tmp_path, tiny_generator, [], False)
    earlier.save_checkpoint(tmp_path / "interrupted.ckpt")  # at step 4
    datamodule = GeneratorActivations(tiny_generator, layer="main.3", batch_size=8)
    trainer = L.Trainer(max_steps=2, default_root_dir=tmp_path / "next", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[CheckpointOnInterrupt()])
    trainer.fit(PandA(datamodule.feature_shape, parts_rank=3, init_samples=16), datamodule)
    assert trainer.global_step == 2  # a fresh fit: resumed at step 4, it would have taken none


def test_callbacks_skip_tensorboard_quietly_with_another_logger_and_leave_the_module_as_it_was(tmp_path, tiny_generator):
    model, _ = _fit(tmp_path, tiny_generator, [EditGrid(every_n_steps=1)], CSVLogger(tmp_path))
    before = (model.parts.clone(), model.appearances.clone(), model.training)
    EditGrid(num_appearances=2).picture(model.trainer.datamodule.generator, model, torch.randn(1, 8, 1, 1))
    assert torch.equal(model.parts, before[0]) and torch.equal(model.appearances, before[1])
    assert model.training == before[2]


def test_a_zero_strength_edit_leaves_the_generated_image_unchanged(tmp_path, tiny_generator):
    model, trainer = _fit(tmp_path, tiny_generator, [], False)
    datamodule = trainer.datamodule
    latent = datamodule.generator.preview_latents(1, 0)
    original = datamodule.generator.generate(latent)
    edited = datamodule.generator.generate(latent, edit=lambda z: model.local_edit(z, [(0, 1, 0.0)]))
    torch.testing.assert_close(edited, original)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: PartsOverlay(num_samples=0), "num_samples=0 must be a positive integer"),
        (lambda: SaliencyMaps(every_n_steps=-1), r"every_n_steps=-1 must be a non-negative integer \(0: only at the end of the fit\)"),
        (lambda: SaliencyMaps(num_appearances=0), "num_appearances=0 must be a positive integer"),
        (lambda: EditGrid(alpha=float("inf")), "alpha=inf must be a finite number"),
    ],
)
def test_bad_arguments_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()
