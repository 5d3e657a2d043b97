"""ProGAN from pytorch_GAN_zoo's PGAN checkpoints: equal to its code, read without running anything."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from panda_lightning.generators import ProGAN
from panda_lightning.generators.layers import activations_at
from panda_lightning.loading import RefusedFile

from conftest import Exploit, assert_equal_to_float32_rounding

DATA = Path(__file__).parent / "data"
CHECKPOINT = DATA / "progan_zoo.pth"  # written by pytorch_GAN_zoo's own save(), random weights
GOLDEN = torch.load(DATA / "progan_zoo_golden.pt", weights_only=True)  # its generator's outputs


def test_equal_to_pytorch_gan_zoos_code_read_from_its_checkpoint():
    generator = ProGAN(checkpoint=str(CHECKPOINT)).eval()
    assert generator.architecture["channels"] == [32, 32, 16] and generator.alpha == 0
    with torch.no_grad():
        assert_equal_to_float32_rounding(generator(GOLDEN["z"]), GOLDEN["outputs"]["images"])
        generator.alpha = 0.3  # the last scale faded in, as PGAN's training does
        assert_equal_to_float32_rounding(generator(GOLDEN["z"]), GOLDEN["outputs"]["blended"])
        assert not torch.allclose(generator(GOLDEN["z"]), GOLDEN["outputs"]["images"], atol=1e-2)
    assert ProGAN(checkpoint=str(CHECKPOINT), alpha=0.3).alpha == 0.3


def test_layers_count_the_convolutions_as_stylegan2s_do():
    generator = ProGAN(architecture=dict(latent_dim=8, channels=[16, 16, 8])).eval()
    assert generator.layer_aliases == {"layer1": "synthesis.b4.conv1", "layer2": "synthesis.b8.conv0", "layer3": "synthesis.b8.conv1",
                                       "layer4": "synthesis.b16.conv0", "layer5": "synthesis.b16.conv1"}
    latents = generator.sample_latents(3, torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = activations_at(generator, "layer5", lambda: generator(latents))
        assert features.shape == (3, 8, 16, 16) and generator(latents).shape == (3, 3, 16, 16)
    # after the pixel norm: each position's features have a root mean square of 1
    torch.testing.assert_close(features.square().mean(dim=1), torch.ones(3, 16, 16), rtol=1e-4, atol=1e-4)


def test_a_checkpoint_that_holds_code_or_is_of_another_kind_is_refused(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"config": {"latentVectorDim": 4, "extra": Exploit(marker)}, "avgG": {}}, tmp_path / "code.pth")
    with pytest.raises(RefusedFile, match=r"checkpoint='.*code\.pth' was not loaded: it holds code \(it asks for (posix|os)\.system\)"):
        ProGAN(checkpoint=str(tmp_path / "code.pth"))
    assert not marker.exists()
    torch.save({"config": {"latentVectorDim": 4, "depthScale0": 8, "categoryVectorDim": 2}, "avgG": {}}, tmp_path / "labels.pth")
    with pytest.raises(ValueError, match=r"is a conditional PGAN \(categoryVectorDim=2\); only unconditional ones are read"):
        ProGAN(checkpoint=str(tmp_path / "labels.pth"))
    torch.save({"g_ema": {}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"is no PGAN checkpoint of pytorch_GAN_zoo \(config and avgG\); it holds \['g_ema'\]"):
        ProGAN(checkpoint=str(tmp_path / "other.pth"))
    with pytest.raises(ValueError, match=r"network='G_ema' is not one of a PGAN checkpoint's generators: avgG, netG"):
        ProGAN(checkpoint=str(CHECKPOINT), network="G_ema")
    with pytest.raises(ValueError, match=r"architecture has unknown depth; valid: channels, equalized"):
        ProGAN(architecture=dict(latent_dim=8, channels=[8], depth=3))
    with pytest.raises(ValueError, match=r"ProGAN needs checkpoint .* or architecture"):
        ProGAN()


def test_one_flag_on_the_shipped_config_replaces_its_example_network(monkeypatch, capsys):
    from panda_lightning.cli import run

    monkeypatch.setattr(sys, "argv", ["panda"])
    config = Path(__file__).parents[1] / "configs" / "progan.yaml"
    run(["layers", "--config", str(config), "--data.generator.init_args.checkpoint", str(CHECKPOINT)])
    assert capsys.readouterr().out.rstrip().endswith("data.layer='layer5' outputs (1, 16, 16, 16): PandA can factorise it.")
