"""Loading a generator's weights from a file, with an error that says what does not match."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from panda_lightning.loading import load_tensors


def _listed(items: list[str], limit: int = 8, separator: str = ", ") -> str:
    shown = separator.join(items[:limit])
    return f"{shown} (and {len(items) - limit} more)" if len(items) > limit else shown


def installed_file(package: str, relative_path: str, needed_by: str, install: str) -> Path:
    """The path of a file inside the installed ``package``, found without importing the package
    (the packages that ship pretrained weights may fail, or write files, when imported)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{needed_by} needs the package {package}; install it with `{install}`.")
    return Path(next(iter(spec.submodule_search_locations))) / relative_path


def load_weights(module: nn.Module, path: str, argument: str = "checkpoint") -> None:
    """Load the state dict saved at ``path`` (``torch.save(generator.state_dict(), path)``) into
    ``module``, or raise a ``ValueError`` naming, for ``argument=path``, the parameters whose names
    or shapes differ from the architecture's, so that a file of another model never half-loads.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"{argument}={path!r} is not a file.")
    state = load_tensors(path, argument)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"{argument}={path!r} holds a {type(state).__name__}, not a state dict of tensors; save one with "
            "torch.save(generator.state_dict(), path)."
        )
    load_state(module, state, f"{argument}={path!r}")


def load_state(module: nn.Module, state: dict[str, torch.Tensor], source: str, optional: Iterable[str] = ()) -> None:
    """Load the tensors ``state`` into ``module``, or raise a ``ValueError`` naming, for
    ``source``, the parameters whose names or shapes differ, so that another model never
    half-loads. ``optional`` names the module's tensors that ``state`` may lack (they keep theirs)."""
    expected = module.state_dict()
    optional = set(optional)
    problems = [
        f"{name}: expected {tuple(expected[name].shape)}, found {tuple(tensor.shape)}"
        for name, tensor in state.items()
        if name in expected and tensor.shape != expected[name].shape
    ]
    if not problems:
        # load_state_dict runs the modules' own upgrade hooks (spectral norm's) before it
        # compares names, so files of older PyTorch versions are not refused for that.
        result = module.load_state_dict({**{name: expected[name] for name in optional if name in expected}, **state},
                                        strict=False)
        if result.missing_keys:
            problems.append(f"missing {_listed(result.missing_keys)}")
        if result.unexpected_keys:
            problems.append(f"unexpected {_listed(result.unexpected_keys)}")
    if problems:
        raise ValueError(
            f"{source} does not match the architecture of {type(module).__name__}: "
            f"{_listed(problems, separator='; ')}. Check that the file and the architecture's arguments are "
            "those of the same model."
        )
