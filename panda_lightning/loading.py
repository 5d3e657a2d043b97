"""Reading files of tensors (checkpoints, generator weights) without running any code in them."""

from __future__ import annotations

import os
import pickle
import re
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
