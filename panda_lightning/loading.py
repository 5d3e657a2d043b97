"""Reading files of tensors (checkpoints, generator weights) without running any code in them."""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch


class RefusedFile(ValueError):
    """A file not loaded because loading it would run code that it holds."""


def load_tensors(path: str | os.PathLike, argument: str, weights_only: bool = True) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``; a file that asks for
    anything but tensors and plain containers is refused with a :class:`RefusedFile` that names
    ``argument=path`` and what it asked for, in one line. Globals allowed by
    ``torch.serialization.safe_globals`` around the call are read as usual."""
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except pickle.UnpicklingError as error:
        # torch names what the pickle asked for as "... unsupported GLOBAL posix.system ...".
        found = re.search(r"GLOBAL (\S+)", str(error))
        if found is None:
            raise
        raise RefusedFile(
            f"{argument}={str(path)!r} was not loaded: it holds code (it asks for {found.group(1)}), which "
            "loading it would run; nothing of it was run. A file of tensors needs none."
        ) from error


class CheckpointError(ValueError):
    """A file given as a checkpoint that ``panda fit`` did not write, or that is not whole."""


def check_is_file(path: str | os.PathLike, argument: str = "ckpt_path") -> None:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{argument}={str(path)!r} is not a file; pass a checkpoint written by `panda fit` (checkpoints/last.ckpt).")


def read_checkpoint(path: str | os.PathLike, argument: str = "ckpt_path", weights_only: bool = False) -> dict[str, Any]:
    """The checkpoint at ``path`` as a dict, or a :class:`CheckpointError` that names the file
    and what was expected (a :class:`RefusedFile` with ``weights_only`` if it holds code)."""
    check_is_file(path, argument)
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{argument}={str(path)!r} is not a checkpoint written by `panda fit`: torch.save writes a zip "
            f"archive, and this file of {Path(path).stat().st_size} bytes is none, or has been cut short."
        )
    try:
        checkpoint = load_tensors(path, argument, weights_only=weights_only)
    except RefusedFile:
        raise
    except Exception as error:  # torch.load fails in many ways on a file that is not one of its own
        reason = str(error).strip().splitlines()[0][:100] if str(error).strip() else ""
        raise CheckpointError(
            f"{argument}={str(path)!r} cannot be read as a checkpoint ({type(error).__name__}: {reason}); "
            "it is not a whole file written by `panda fit` (checkpoints/last.ckpt)."
        ) from error
    missing = [key for key in ("state_dict", "hyper_parameters") if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        raise CheckpointError(
            f"{argument}={str(path)!r} is not a checkpoint of `panda fit`: it has no {' or '.join(missing)} "
            "(a Lightning checkpoint of PandA has both)."
        )
    return checkpoint
