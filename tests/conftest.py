"""Shared fixtures: tiny generators whose activations are known exactly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from panda_lightning.generators import GaussianLatents


class PlantedGenerator(nn.Module):
    """A "generator" whose layer ``features`` outputs ``Z_i = A* Lambda_i P*^T`` exactly.

    ``P*`` are ``num_parts <= width`` disjoint vertical stripes of an ``H x W`` grid (each column has
    unit norm), ``A*`` a random orthonormal basis, and ``Lambda_i`` comes from the latent. After
    ``features``, ``head`` maps to 3-channel "images" so the whole generator also runs.
    """

    def __init__(self, channels: int = 6, height: int = 4, width: int = 4, num_parts: int = 4, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        appearances, _ = torch.linalg.qr(torch.randn(channels, channels, generator=generator))
        columns = torch.arange(height * width) % width
        stripe = (columns * num_parts) // width  # num_parts vertical stripes
        parts = torch.nn.functional.one_hot(stripe, num_parts).float()
        parts = parts / parts.norm(dim=0, keepdim=True)
        self.register_buffer("planted_appearances", appearances)
        self.register_buffer("planted_parts", parts)
        self.shape = (channels, height, width)
        self.num_parts = num_parts
        self.features = nn.Identity()
        self.head = nn.Conv2d(channels, 3, 1)

    def sample_latents(self, num_samples: int, generator: torch.Generator) -> Tensor:
        return torch.randn(num_samples, self.shape[0], self.num_parts, generator=generator)

    def forward(self, latents: Tensor) -> Tensor:
        channels, height, width = self.shape
        activations = self.planted_appearances @ latents @ self.planted_parts.T
        activations = self.features(activations.reshape(-1, channels, height, width))
        return torch.tanh(self.head(activations))


def assert_equal_to_float32_rounding(ours: Tensor, theirs: Tensor) -> None:
    """Equal to a reference code's output up to float32 rounding: outputs of magnitude ~10 from a
    few hundred float32 operations round at ~1e-6 of that."""
    assert ours.shape == theirs.shape
    difference = (ours - theirs).abs().max().item()
    assert difference <= 1e-5 * theirs.abs().max().item(), f"max abs difference {difference:.3g}"


class Exploit:
    """Unpickled, it runs ``touch marker``: what a file that holds code could do instead."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def planted() -> PlantedGenerator:
    return PlantedGenerator()


class TinyConvGenerator(nn.Module):
    """A small DCGAN-like generator (random weights) with a latent sampler."""

    def __init__(self, latent_dim: int = 8):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, 16, 4, 1, 0),
            nn.ReLU(),
            nn.ConvTranspose2d(16, 8, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(8, 3, 4, 2, 1),
            nn.Tanh(),
        )
        self.latents = GaussianLatents([latent_dim, 1, 1])

    def sample_latents(self, num_samples: int, generator: torch.Generator) -> Tensor:
        return self.latents(num_samples, generator)

    def forward(self, latents: Tensor) -> Tensor:
        return self.main(latents)


def _tiny_generator() -> TinyConvGenerator:
    torch.manual_seed(0)
    return TinyConvGenerator()


@pytest.fixture
def tiny_generator() -> TinyConvGenerator:
    return _tiny_generator()


@pytest.fixture(scope="module")
def module_tiny_generator() -> TinyConvGenerator:
    """The same generator, for module-scoped fixtures (an expensive fit shared by tests)."""
    return _tiny_generator()


ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def fit_args(tmp_path: Path, *extra: str) -> list[str]:
    """``panda fit`` of the README's face generator, as short as configs/debug.yaml makes it, in ``tmp_path``."""
    return [
        "fit", "--config", str(CONFIGS / "photo_faces.yaml"), "--config", str(CONFIGS / "debug.yaml"),
        "--trainer.enable_progress_bar", "false",
        "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"),
        "--trainer.default_root_dir", str(tmp_path),
        *extra,
    ]


def _fit_in(tmp_path: Path, args: list[str]) -> Path:
    panda = Path(sys.executable).parent / "panda"
    done = subprocess.run([str(panda), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    (tmp_path / "output.txt").write_text(done.stdout + done.stderr)  # what the user saw
    (log_dir,) = (tmp_path / "runs" / "panda").glob("version_*")
    return log_dir


@pytest.fixture(scope="session")
def fitted(tmp_path_factory) -> Path:
    """One short fit through the installed console script, as a user runs it: its log folder
    (``config.yaml``, ``checkpoints/last.ckpt``, the pictures, and ``../../output.txt``, what it printed)."""
    tmp_path = tmp_path_factory.mktemp("fit")
    return _fit_in(tmp_path, fit_args(tmp_path))


@pytest.fixture(scope="session")
def converged(tmp_path_factory) -> Path:
    """The README's main job, ``panda fit --config configs/photo_faces.yaml``, to convergence (~15 s):
    its log folder. Its parts are local, as a user's are; the short fit's are not yet."""
    tmp_path = tmp_path_factory.mktemp("converged")
    args = ["fit", "--config", str(CONFIGS / "photo_faces.yaml"), "--trainer.enable_progress_bar", "false",
            "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"), "--trainer.default_root_dir", str(tmp_path)]
    return _fit_in(tmp_path, args)


@pytest.fixture(scope="session")
def eval_python() -> Path:
    """The Python of the MediaPipe environment (``make eval-env``; ``.ci/run`` builds it), or skip.
    ``PANDA_EVAL_PYTHON`` names another."""
    path = Path(os.environ.get("PANDA_EVAL_PYTHON", ROOT / ".venv-eval" / "bin" / "python"))
    if not path.exists():
        pytest.skip(f"no MediaPipe environment at {path}: run `make eval-env` (CI builds it)")
    return path


@pytest.fixture(scope="session")
def editor(converged):
    """``panda app``'s editor on the README's fit of its face generator."""
    from panda_lightning import PandA
    from panda_lightning.app import Editor
    from panda_lightning.datamodules import GeneratorActivations
    from panda_lightning.generators import PhotoFaceDCGAN

    checkpoint = converged / "checkpoints" / "last.ckpt"
    model = PandA.load_from_checkpoint(checkpoint).eval()
    datamodule = GeneratorActivations(PhotoFaceDCGAN(), layer="main.8", batch_size=64)
    return Editor(model, datamodule.generator, f"--config {converged / 'config.yaml'} --ckpt_path {checkpoint}")
