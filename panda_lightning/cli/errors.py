"""How the ``panda`` command reports errors: a bad value, file or setting from the user is one
line, ``error: ...``, and exit status 2 (as argparse does); anything else is a bug and keeps its
traceback. ``--debug`` (or ``PANDA_DEBUG=1``) keeps the traceback of every error."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TypeVar

from lightning.pytorch.utilities.exceptions import MisconfigurationException

# What checks of the user's input raise: argument checks, missing files, optional packages not
# installed, impossible devices, unusable activations, unreadable checkpoints, a fit too large for memory.
USER_ERRORS = (ValueError, FileNotFoundError, ImportError, MisconfigurationException, FloatingPointError, MemoryError)
DEBUG_FLAG, DEBUG_VARIABLE = "--debug", "PANDA_DEBUG"

Result = TypeVar("Result")


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
