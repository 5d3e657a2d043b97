"""The generator adapters: each fits and edits locally, samples its own conditioning, loads its
weights or names what does not match; the configs run through `panda layers` and `panda fit`."""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
import yaml

from panda_lightning import PandA
from panda_lightning.cli import run
from panda_lightning.datamodules import GeneratorActivations
from panda_lightning.generators import (
    EYE_COLOURS, BigGAN, FaceDCGAN, OmniartEyes, PhotoFaceDCGAN, StyleGAN2, StyleGAN3, StyleGenerator, load_weights,
)
from panda_lightning.generators.adapters.photo_faces import WEIGHTS, sequential_names
from panda_lightning.generators.formats.weights import installed_file
from panda_lightning.loading import RefusedFile
from panda_lightning.generators.layers import activations_at
from panda_lightning.metrics import roir

from conftest import Exploit

CONFIGS = Path(__file__).parents[1] / "configs"
SMALL_BIGGAN = {"channel_width": 8}  # the 128 px layout with 1/16 of the channels
SMALL_STYLEGAN2, SMALL_STYLEGAN3 = (
    yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())["data"]["generator"]["init_args"]
    for name in ("stylegan2", "stylegan3")
)


@pytest.fixture(autouse=True)
def _no_pytest_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["panda"])  # run(args) is then the whole command line
    monkeypatch.chdir(CONFIGS.parent)  # configs name files relative to the repository, as users run them


def _fit(generator, layer, max_steps, parts_rank=8):
    datamodule = GeneratorActivations(generator, layer=layer, batch_size=8)
    model = PandA(datamodule.feature_shape, parts_rank=parts_rank, init_samples=32, stop_when_converged=False)
    trainer = L.Trainer(
        max_steps=max_steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", devices=1,
    )
    trainer.fit(model, datamodule)
    return model, datamodule


# Random BigGAN features at 64 x 64 are close to white noise over space, so the parts found
# there are speckled, not regions; at 16 x 16 the random network's 4 x 4 input grid shows.
@pytest.mark.parametrize(
    "make_generator, layer, max_steps",
    [
        (FaceDCGAN, "main.8", 150),
        (lambda: BigGAN(config=SMALL_BIGGAN), "generator.layers.3", 200),
        (StyleGenerator, "synthesis.b16[0]", 150),
        (OmniartEyes, "main.12", 150),
        (PhotoFaceDCGAN, "main.8", 150),
        (lambda: StyleGAN2(**SMALL_STYLEGAN2), "layer5", 150),
        (lambda: StyleGAN3(**SMALL_STYLEGAN3), "layer5", 150),
    ],
    ids=["face_dcgan", "biggan", "style_generator", "omniart_eyes", "photo_faces", "stylegan2", "stylegan3"],
)
def test_each_architecture_fits_and_edits_a_part_locally(make_generator, layer, max_steps):
    model, datamodule = _fit(make_generator(), layer, max_steps)
    latents = datamodule.generator.preview_latents(4, seed=0)
    masks = [model.mask(k) for k in range(model.parts.shape[1])]  # (H, W) in [0, 1] each
    small = [k for k, mask in enumerate(masks) if mask.mean() < 0.5]  # covering less than half the image
    assert small
    edits = [lambda Z, k=k: model.local_edit(Z, [(k, 0, 3.0)]) for k in small]
    original, edited = datamodule.generator.generate_with_edits(latents, edits)
    # The same images with the layer's output replaced by a hook (which the face DCGAN's forward_from skips).
    torch.testing.assert_close(edited[0], datamodule.generator.generate(latents, edit=edits[0]))

    def locality(k: int, images: torch.Tensor) -> torch.Tensor:
        region = F.interpolate(masks[k][None, None], size=original.shape[-2:], mode="bilinear")[0, 0]
        assert (images - original).abs().mean() > 1e-3
        return roir(original, images, region)

    # A short fit: not every part edits locally yet (nor ever does the face DCGAN's checkerboard
    # part), but among the parts found there is one whose edit changes the image more inside it
    # than outside.
    assert min(locality(k, images) for k, images in zip(small, edited)) < 1


def test_omniart_latents_hold_noise_and_the_named_eye_colour():
    blue = OmniartEyes(eye_colour="blue", pretrained=False).sample_latents(5, torch.Generator().manual_seed(0))
    assert blue.shape == (5, 108, 1, 1)
    assert torch.equal(blue[:, 100:, 0, 0], F.one_hot(torch.full((5,), EYE_COLOURS.index("blue")), 8).float())
    mixed = OmniartEyes(eye_colour=None, pretrained=False).sample_latents(64, torch.Generator().manual_seed(0))
    codes = mixed[:, 100:, 0, 0]
    assert torch.equal(codes.sum(1), torch.ones(64)) and len(set(codes.argmax(1).tolist())) == 8  # every colour drawn
    with pytest.raises(ValueError, match=r"eye_colour='purple' is not one of the generator's classes: amber, blue, brown, gray, grayscale, green, hazel, red"):
        OmniartEyes(eye_colour="purple", pretrained=False)


def test_omniart_pretrained_eyes_take_the_colour_asked_for_and_run_from_a_layer():
    eyes = OmniartEyes().eval()
    z = torch.randn(8, 100, 1, 1, generator=torch.Generator().manual_seed(0))

    def images(colour: str) -> torch.Tensor:
        one_hot = eyes.colour_one_hot(torch.full((8,), EYE_COLOURS.index(colour)))
        with torch.no_grad():
            return eyes(torch.cat([z, one_hot], 1))

    blue = images("blue")
    assert blue.shape == (8, 3, 128, 128) and blue.abs().max() <= 1
    blueness = {colour: (images(colour)[:, 2] - images(colour)[:, 0]).mean().item() for colour in EYE_COLOURS}
    assert max(blueness, key=blueness.get) == "blue"  # blue minus red, the same noise: the classes' order is right
    assert blueness["blue"] > blueness["brown"] + 0.2
    latents = torch.cat([z, eyes.colour_one_hot(torch.zeros(8, dtype=torch.long))], 1)
    with torch.no_grad():
        torch.testing.assert_close(eyes.forward_from("main.12", activations_at(eyes, "main.12", lambda: eyes(latents))), eyes(latents))


def test_photo_faces_load_the_packages_weights_by_their_names_and_run_from_a_layer():
    faces = PhotoFaceDCGAN().eval()
    state = torch.load(installed_file("generateme", WEIGHTS, "test", ""), map_location="cpu", weights_only=True)
    assert torch.equal(faces.main[3].weight, state["convTr2.weight"])  # block 2's transposed convolution
    assert torch.equal(faces.main[10].running_var, state["batchNorm4.running_var"])
    assert sequential_names({"convTr5.weight": 1, "batchNorm1.bias": 2, "extra": 3}) == {"main.12.weight": 1, "main.1.bias": 2, "extra": 3}
    latents = faces.sample_latents(16, torch.Generator().manual_seed(0))
    with torch.no_grad():
        images = faces(latents)
        assert images.shape == (16, 3, 64, 64) and images.abs().max() <= 1
        torch.testing.assert_close(faces.forward_from("main.8", activations_at(faces, "main.8", lambda: faces(latents))), images)
    # Photos, not noise: neighbouring pixels alike (random weights give a transposed convolution's speckle).
    smoothness = lambda x: (x[..., 1:] - x[..., :-1]).abs().mean() / (x - x.mean()).abs().mean()  # noqa: E731
    with torch.no_grad():
        assert smoothness(images) < 0.5 * smoothness(PhotoFaceDCGAN(pretrained=False).eval()(latents))


def test_a_weights_file_that_holds_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "ran"
    path = _saved(tmp_path, {**StyleGenerator().state_dict(), "extra": Exploit(marker)})
    with pytest.raises(RefusedFile, match=rf"checkpoint='{path}' was not loaded: it holds code \(it asks for (posix|os)\.system\)"):
        StyleGenerator(checkpoint=path)
    assert not marker.exists()


def test_biggan_latents_hold_truncated_noise_and_one_hot_classes():
    generator = BigGAN(classes=["golden retriever", 985], truncation=0.5, config=SMALL_BIGGAN)
    latents = generator.sample_latents(64, torch.Generator().manual_seed(0))
    noise, one_hot = latents.split([128, 1000], dim=1)
    assert latents.shape == (64, 1128) and noise.abs().max() <= 2 * 0.5
    assert set(one_hot.argmax(1).tolist()) == {207, 985} and (one_hot.sum(1) == 1).all()
    torch.testing.assert_close(latents, generator.sample_latents(64, torch.Generator().manual_seed(0)))
    images = generator.eval()(latents[:2])
    assert images.shape == (2, 3, 128, 128) and images.abs().max() <= 1


def test_biggan_64x64_layer_has_the_documented_shape():
    datamodule = GeneratorActivations(BigGAN(), layer="generator.layers.7")
    assert datamodule.feature_shape == (256, 64, 64)


def test_random_initialisation_is_seeded():
    for make in (lambda seed: BigGAN(config=SMALL_BIGGAN, seed=seed), lambda seed: StyleGenerator(seed=seed)):
        first, again, other = make(0).state_dict(), make(0).state_dict(), make(1).state_dict()
        assert all(torch.equal(first[name], again[name]) for name in first)
        assert not all(torch.equal(first[name], other[name]) for name in first)


def test_biggan_loads_a_weights_file_of_its_architecture(tmp_path):
    trained = BigGAN(config=SMALL_BIGGAN, seed=1).eval()
    torch.save(trained.state_dict(), tmp_path / "pytorch_model.bin")
    loaded = BigGAN(config=SMALL_BIGGAN, weights=str(tmp_path / "pytorch_model.bin")).eval()
    latents = trained.sample_latents(2, torch.Generator().manual_seed(0))
    torch.testing.assert_close(loaded(latents), trained(latents))


def test_biggan_weights_of_another_architecture_are_refused_naming_the_difference(tmp_path):
    torch.save(BigGAN(config={"channel_width": 4}).state_dict(), tmp_path / "small.bin")
    with pytest.raises(ValueError, match=r"weights='.*small\.bin' does not match the architecture of BigGAN: "
                       r"generator\.gen_z\.bias: expected \(2048,\), found \(1024,\); .* \(and \d+ more\)\. Check"):
        BigGAN(config=SMALL_BIGGAN, weights=str(tmp_path / "small.bin"))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"classes": "golden retreiver"}, r"class 'golden retreiver' is not a known ImageNet class name\. Did you mean 'golden retriever'.*"
         r"Give any class by its index \(0 to 999\); known names: goldfish, "),
        ({"classes": [1000]}, r"class 1000 is out of range: ImageNet indices are 0 to 999"),
        ({"classes": []}, r"classes=\[\] must name at least one ImageNet class"),
        ({"truncation": 1.5}, r"truncation=1\.5 must be a finite number in \(0, 1\]"),
        ({"config": {"chanel_width": 8}}, r"config has unknown fields \['chanel_width'\]; BigGANConfig's are \[.*'channel_width'"),
    ],
)
def test_biggan_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BigGAN(**{"config": SMALL_BIGGAN, **kwargs})


def test_biggan_classes_by_name_or_index_are_the_same():
    assert BigGAN(classes=["Golden Retriever", "daisy"], config=SMALL_BIGGAN).classes == [207, 985]
    assert BigGAN(classes=207, config=SMALL_BIGGAN).classes == [207]


def test_missing_biggan_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorch_pretrained_biggan", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install 'panda-lightning\[biggan\]'"):
        BigGAN()


def test_style_generator_blocks_return_features_and_rgb():
    generator = StyleGenerator().eval()
    latents = generator.sample_latents(3, torch.Generator().manual_seed(0))
    features = activations_at(generator, "synthesis.b16[0]", lambda: generator(latents))
    torch.testing.assert_close(features, activations_at(generator, "synthesis.b16.conv1", lambda: generator(latents)))
    assert features.shape == (3, 64, 16, 16)
    rgb = activations_at(generator, "synthesis.b16[1]", lambda: generator(latents))
    assert rgb.shape == (3, 3, 16, 16)
    images = generator(latents)
    assert images.shape == (3, 3, 32, 32) and images.abs().max() <= 1
    with pytest.raises(ValueError, match=r"resolution=48 must be a power of 2 from 4 on"):
        StyleGenerator(resolution=48)


def test_own_generator_weights_are_those_its_config_describes():
    loaded = StyleGenerator(latent_dim=32, channels=32, checkpoint=str(CONFIGS.parent / "tests" / "data" / "own_generator_weights.pt"))
    expected = StyleGenerator(latent_dim=32, channels=32, seed=1).state_dict()
    assert all(torch.equal(tensor, expected[name]) for name, tensor in loaded.state_dict().items())


def _saved(tmp_path, state, name="checkpoint.pt"):
    torch.save(state, tmp_path / name)
    return str(tmp_path / name)


def test_a_checkpoint_of_another_architecture_is_refused_naming_the_difference(tmp_path):
    state = StyleGenerator(channels=32).state_dict()
    path = _saved(tmp_path, state)
    with pytest.raises(ValueError, match=r"checkpoint='.*checkpoint\.pt' does not match the architecture of StyleGenerator: "
                       r"synthesis\.b4\.const: expected \(1, 64, 4, 4\), found \(1, 32, 4, 4\)"):
        StyleGenerator(checkpoint=path)
    state = StyleGenerator(resolution=16).state_dict()  # one block fewer than 32 px
    with pytest.raises(ValueError, match=r"does not match .*: missing synthesis\.b32\.conv0\.weight, .*(and \d+ more)"):
        StyleGenerator(checkpoint=_saved(tmp_path, state, "fewer.pt"))
    with pytest.raises(ValueError, match=r"does not match .*: unexpected synthesis\.b32\.conv0\.weight"):
        StyleGenerator(resolution=16, checkpoint=_saved(tmp_path, StyleGenerator().state_dict(), "more.pt"))


def test_a_checkpoint_that_is_no_state_dict_is_refused(tmp_path):
    path = _saved(tmp_path, {"state_dict": StyleGenerator().state_dict(), "epoch": 3})
    with pytest.raises(ValueError, match=r"holds a dict, not a state dict of tensors; save one with torch\.save\(generator\.state_dict\(\), path\)"):
        load_weights(StyleGenerator(), path)
    with pytest.raises(FileNotFoundError, match=r"checkpoint='missing\.pt' is not a file"):
        StyleGenerator(checkpoint="missing.pt")


# -- the configs, through the command line ------------------------------------------------

CONFIGURED = {  # each config, with a small BigGAN to keep the tests quick, and its layer's shape
    "biggan": (["--data.generator.init_args.config", "{channel_width: 8}"], "generator.layers.7", "(1, 16, 64, 64)"),
    "style_generator": ([], "synthesis.b16[0]", "(1, 64, 16, 16)"),
    "own_generator": ([], "synthesis.b16.conv1", "(1, 32, 16, 16)"),
    "omniart_eyes": ([], "main.12", "(1, 128, 32, 32)"),
    "photo_faces": ([], "main.8", "(1, 128, 16, 16)"),
    "progan": ([], "layer5", "(1, 64, 16, 16)"),
    "stylegan2": ([], "layer5", "(1, 64, 16, 16)"),
    "stylegan3": ([], "layer5", "(1, 32, 32, 32)"),
}


@pytest.mark.parametrize("config", list(CONFIGURED))
def test_panda_layers_lists_each_configs_layers_with_their_shapes(config, capsys):
    small, layer, shape = CONFIGURED[config]
    run(["layers", "--config", str(CONFIGS / f"{config}.yaml"), *small])
    listing = capsys.readouterr().out
    assert (f"* {layer} " in listing or f"  also {layer}; <- data.layer" in listing) and "<- data.layer" in listing
    assert listing.rstrip().endswith(f"data.layer={layer!r} outputs {shape}: PandA can factorise it.")


def test_panda_layers_works_when_the_configured_layer_is_wrong(capsys):
    run(["layers", "--config", str(CONFIGS / "style_generator.yaml"), "--data.layer", "synthesis.b16"])
    listing = capsys.readouterr().out
    assert "* synthesis.b16[0]  " in listing and "  mapping.0  " in listing
    assert "data.layer='synthesis.b16' outputs several tensors: name one, such as 'synthesis.b16[0]'." in listing


@pytest.mark.slow
@pytest.mark.parametrize("config", list(CONFIGURED))
def test_panda_fit_runs_each_config(config, tmp_path, capsys):
    small, layer, shape = CONFIGURED[config]
    cli = run([
        "fit", "--config", str(CONFIGS / f"{config}.yaml"), "--config", str(CONFIGS / "debug.yaml"), *small,
        "--trainer.enable_progress_bar", "false", "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"),
        "--trainer.default_root_dir", str(tmp_path),
    ])
    assert cli.trainer.global_step == 12 and cli.model.hparams.layer == layer
    (log_dir,) = (tmp_path / "runs" / "panda").glob("version_*")
    assert (log_dir / "checkpoints" / "last.ckpt").is_file() and (log_dir / "parts.png").is_file()
    capsys.readouterr()
    run(["layers", "--config", str(log_dir / "config.yaml")])  # the config a fit writes lists its layers too
    assert capsys.readouterr().out.rstrip().endswith(f"data.layer={layer!r} outputs {shape}: PandA can factorise it.")


def test_a_generator_class_that_cannot_be_imported_is_named(capsys):
    with pytest.raises(SystemExit):
        run(["layers", "--config", str(CONFIGS / "own_generator.yaml"), "--data.generator.class_path", "my_package.MyGenerator"])
    error = capsys.readouterr().err
    assert "Problem with given class_path 'my_package.MyGenerator'" in error and "No module named 'my_package'" in error


def test_every_generators_config_shares_one_trainer(capsys):
    """The trainer, its logger and its callbacks are written once (configs/trainer.yaml) and
    every generator's config resolves to exactly them."""
    trainers = {}
    for config in ["dcgan_faces", *CONFIGURED]:
        with pytest.raises(SystemExit):
            run(["fit", "--config", str(CONFIGS / f"{config}.yaml"), "--print_config"])
        trainers[config] = yaml.safe_load(capsys.readouterr().out)["trainer"]
    shared = yaml.safe_load((CONFIGS / "trainer.yaml").read_text())
    assert all(trainer == trainers["dcgan_faces"] for trainer in trainers.values())
    assert [c["class_path"] for c in trainers["dcgan_faces"]["callbacks"]] == [c["class_path"] for c in shared["callbacks"]]
    assert trainers["dcgan_faces"]["logger"]["init_args"]["name"] == shared["logger"]["init_args"]["name"]
