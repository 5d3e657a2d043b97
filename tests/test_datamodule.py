"""The activation stream: shapes, seeding, rank and worker independence, resume position."""

from __future__ import annotations

import itertools
import sys

import pytest
import torch
from torch import nn

from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.datamodules.latent_stream import LatentStream
from panda_lightning.generators import FaceDCGAN, GaussianLatents


def _batches(datamodule, count):
    loader = datamodule.train_dataloader()
    return [datamodule.on_after_batch_transfer(batch, 0) for batch in itertools.islice(loader, count)]


def test_face_dcgan_layers_have_the_documented_shapes():
    generator = FaceDCGAN(pretrained=False)
    for layer, shape in [("main.5", (256, 8, 8)), ("main.8", (128, 16, 16)), ("main.11", (64, 32, 32))]:
        assert GeneratorActivations(generator, layer=layer).feature_shape == shape


def test_face_dcgan_loads_the_pretrained_weights():
    pretrained, random = FaceDCGAN(), FaceDCGAN(pretrained=False)
    weight = "main.0.weight"
    assert not torch.equal(pretrained.state_dict()[weight], random.state_dict()[weight])
    images = pretrained(torch.randn(2, 100, 1, 1))
    assert images.shape == (2, 3, 64, 64) and images.abs().max() <= 1


def test_stream_is_seeded_and_streams_new_samples(tiny_generator):
    streaming = dict(layer="main.3", batch_size=4, pool_bytes=0)
    first = _batches(GeneratorActivations(tiny_generator, seed=7, **streaming), 3)
    again = _batches(GeneratorActivations(tiny_generator, seed=7, **streaming), 3)
    other = _batches(GeneratorActivations(tiny_generator, seed=8, **streaming), 1)
    assert first[0].shape == (4, 8, 8, 8)
    for a, b in zip(first, again):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(first[0], first[1])
    assert not torch.allclose(first[0], other[0])


def test_generator_is_frozen(tiny_generator):
    datamodule = GeneratorActivations(tiny_generator, layer="main.3")
    assert not any(p.requires_grad for p in datamodule.generator.network.parameters())
    assert not datamodule.generator.network.training


# main.3 of the tiny generator: 8 x 8 x 8 float32 numbers, 2 KiB a sample; a pool of 3 batches of 2.
@pytest.mark.parametrize("pool_bytes", [0, 3 * 2 * 2048], ids=["streaming", "pool of 3 batches"])
def test_resume_continues_the_stream_where_it_stopped(tiny_generator, pool_bytes):
    options = dict(layer="main.3", batch_size=2, pool_bytes=pool_bytes, fresh_every=2)
    datamodule = GeneratorActivations(tiny_generator, **options)
    whole = _batches(datamodule, 11)
    assert datamodule.state_dict() == {"next_step": 11}

    interrupted = GeneratorActivations(tiny_generator, **options)
    _batches(interrupted, 7)  # the pool is full and has replaced its first batch
    resumed = GeneratorActivations(tiny_generator, **options)
    resumed.load_state_dict(interrupted.state_dict())
    for a, b in zip(_batches(resumed, 4), whole[7:], strict=True):
        assert torch.equal(a, b)


def test_a_checkpoint_of_a_version_without_the_pool_resumes_at_its_step(tiny_generator):
    datamodule = GeneratorActivations(tiny_generator, layer="main.3", batch_size=2)
    datamodule.load_state_dict({"next_batch": 9})
    assert datamodule.next_step == 9


def test_two_ranks_see_what_one_rank_with_twice_the_batch_sees():
    latents = GaussianLatents([3])
    one = LatentStream(latents, batch_size=4, seed=0)
    ranks = [LatentStream(latents, batch_size=2, seed=0, rank=r, world_size=2) for r in (0, 1)]
    for b in range(3):
        torch.testing.assert_close(torch.cat([rank.batch(b) for rank in ranks]), one.batch(b))
    assert not torch.allclose(ranks[0].batch(0), ranks[1].batch(0))


def test_workers_do_not_change_the_stream(tiny_generator):
    single = [latents for _, latents in itertools.islice(LatentStream(tiny_generator.sample_latents, 2, 0), 4)]
    datamodule = GeneratorActivations(tiny_generator, layer="main.3", batch_size=2, num_workers=2, pool_bytes=0)
    pooled = [batch for batch in itertools.islice(datamodule.train_dataloader(), 4)]
    assert [index for index, _ in pooled] == [0, 1, 2, 3]
    for a, (_, b) in zip(single, pooled):
        torch.testing.assert_close(a, b)


def test_held_out_batches_are_their_own_stream_and_split_over_ranks(tiny_generator):
    datamodule = GeneratorActivations(tiny_generator, layer="main.3", batch_size=4)
    batches = list(datamodule.held_out_batches(10))
    assert [b.shape[0] for b in batches] == [4, 4, 2]
    assert not torch.allclose(batches[0], _batches(datamodule, 1)[0])


def test_validation_samples_are_fixed_their_own_and_split_over_ranks(tiny_generator):
    # (pool_bytes=0: every step streams its own batch; a pool holds batches of the same stream)
    datamodule = GeneratorActivations(tiny_generator, layer="main.3", batch_size=4, val_samples=10, pool_bytes=0)
    latents = torch.cat([latents for _, latents in datamodule.val_dataloader()])
    again = torch.cat([latents for _, latents in datamodule.val_dataloader()])
    assert latents.shape[0] == 10 and torch.equal(latents, again)
    trained = torch.cat([latents for _, latents in itertools.islice(datamodule.train_dataloader(), 3)])
    initialised = datamodule.generator.held_out_latents(range(10))
    assert not (latents[:, None] == trained[None]).all(-1).all(-1).all(-1).any()  # no training sample
    assert not (latents[:, None] == initialised[None]).all(-1).all(-1).all(-1).any()  # no HOSVD sample

    class Rank:  # the two processes of a 2-device fit
        def __init__(self, rank):
            self.global_rank, self.world_size, self.training = rank, 2, False

    shares = []
    for rank in range(2):
        datamodule.trainer = Rank(rank)
        shares.append(torch.cat([latents for _, latents in datamodule.val_dataloader()]))
    assert [len(share) for share in shares] == [5, 5]
    assert torch.equal(torch.stack(shares, 1).flatten(0, 1), latents)  # together, the same samples


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, "batch_size=0 must be a positive integer"),
        ({"num_workers": -1}, "num_workers=-1 must be a non-negative integer"),
        ({"seed": -3}, "seed=-3 must be a non-negative integer"),
        ({"val_samples": 0}, r"val_samples=0 must be a positive integer \(to fit without validation, set trainer.limit_val_batches=0\)"),
        ({"layer": "main.99"}, r"layer='main\.99' is not a sub-module.*Valid layers"),
    ],
)
def test_bad_arguments_are_named(tiny_generator, kwargs, message):
    with pytest.raises(ValueError, match=message):
        GeneratorActivations(tiny_generator, **{"layer": "main.3", **kwargs})


def test_a_generator_without_a_sampler_needs_latents():
    generator = nn.Sequential(nn.ConvTranspose2d(5, 4, 4), nn.ReLU())
    with pytest.raises(ValueError, match=r"latents=None.*Sequential has no sample_latents.*GaussianLatents"):
        GeneratorActivations(generator, layer="1")
    datamodule = GeneratorActivations(generator, layer="1", latents=GaussianLatents([5, 1, 1]))
    assert datamodule.feature_shape == (4, 4, 4)
    with pytest.raises(ValueError, match=r"shape=\[5, 0\] must be a non-empty list of positive sizes"):
        GaussianLatents([5, 0])


def test_missing_face_generator_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "gan_face_generate", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install --no-deps gan-face-generate==1\.1\.1"):
        FaceDCGAN()


def test_edits_with_an_adapter_run_the_layers_before_the_edited_one_once():
    generator = FaceDCGAN(pretrained=False)
    datamodule = GeneratorActivations(generator, layer="main.8", batch_size=4)
    calls = []
    generator.main[0].register_forward_hook(lambda *_: calls.append(1))
    latents = datamodule.generator.preview_latents(4, seed=0)
    edits = [lambda z: z * 0.5, lambda z: z + 1.0, lambda z: z.flip(-1)]

    original, edited = datamodule.generator.generate_with_edits(latents, edits)
    assert len(calls) == 1  # one pass up to the layer, for the original and all three edits

    torch.testing.assert_close(original, datamodule.generator.generate(latents))
    for edit, images in zip(edits, edited):
        torch.testing.assert_close(images, datamodule.generator.generate(latents, edit=edit))  # the hook path


def test_generators_without_forward_from_rerun_the_whole_generator(tiny_generator):
    datamodule = GeneratorActivations(tiny_generator, layer="main.3", batch_size=2)
    latents = datamodule.generator.preview_latents(2, seed=0)
    original, (edited,) = datamodule.generator.generate_with_edits(latents, [lambda z: z * 0])
    torch.testing.assert_close(original, tiny_generator(latents))
    assert not torch.allclose(edited, original)


def test_forward_from_names_the_valid_layers():
    with pytest.raises(ValueError, match=r"layer='head' must be one of main\.0 to main\.13"):
        FaceDCGAN(pretrained=False).forward_from("head", torch.zeros(1, 128, 16, 16))


def test_a_fit_whose_activations_do_not_fit_in_memory_says_so_before_it_starts(tmp_path, tiny_generator, monkeypatch):
    import lightning as L

    from panda_lightning import PandA
    from panda_lightning.datamodules import memory

    datamodule = GeneratorActivations(tiny_generator, layer="main.3", batch_size=8, val_samples=64, pool_bytes=0)
    plan = datamodule.memory_plan()  # main.3: 8 x 8 x 8 float32, 2 KiB a sample
    assert plan["kept validation activations"][0] == 64 * 2048 and plan["a batch"][0] == 8 * 2048 and plan["the pool"][0] == 0
    assert memory.free_bytes(torch.device("cpu")) > 0  # (Linux: MemAvailable)
    monkeypatch.setattr(memory, "free_bytes", lambda device: 100 * 2**10)  # 100 KiB free
    model = PandA(datamodule.feature_shape, parts_rank=3, init_samples=16)
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    message = (r"the fit's activations would take 144 KiB of cpu, more than 80% of its 100 KiB free: "
               r"kept validation activations 128 KiB \(data\.val_samples=64, or data\.keep_validation=false\); "
               r"a batch 16 KiB \(data\.batch_size=8\)\.")
    with pytest.raises(MemoryError, match=message):
        trainer.fit(model, datamodule)
    assert not bool(model.initialised)  # before the initialisation
