"""How the ``panda`` command reports errors: a bad value, file or setting from the user is one
line, ``error: ...``, and exit status 2 (as argparse does); anything else is a bug and keeps its
traceback. ``--debug`` (or ``PANDA_DEBUG=1``) keeps the traceback of every error."""

from __future__ import annotations

import os
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from lightning.pytorch.utilities.exceptions import MisconfigurationException

from panda_lightning.loading import RefusedFile, load_tensors

# What checks of the user's input raise: argument checks, missing files, optional packages not
# installed, impossible devices, unusable activations, unreadable checkpoints, a fit too large for memory.
USER_ERRORS = (ValueError, FileNotFoundError, ImportError, MisconfigurationException, FloatingPointError, MemoryError)
DEBUG_FLAG, DEBUG_VARIABLE = "--debug", "PANDA_DEBUG"

Result = TypeVar("Result")


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


def one_line_errors(command: Callable[[], Result]) -> Result:
    """Run ``command()`` on the command line ``sys.argv`` less ``--debug``; a user error prints
    ``error: <message>`` and exits with status 2."""
    debug = DEBUG_FLAG in sys.argv[1:] or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")
    sys.argv = [arg for arg in sys.argv if arg != DEBUG_FLAG]
    try:
        return command()
    except USER_ERRORS as error:
        if debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
