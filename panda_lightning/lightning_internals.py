"""What Lightning offers no public way to do, held here alone, each checked against the Lightning
release named; ``tests/test_lightning_internals.py`` fails loudly, naming this file, if a release
changes it.
"""

from __future__ import annotations

from typing import Any

import lightning as L

CHECKED_AGAINST = "2.6.6"


def checkpoint_contents(trainer: L.Trainer) -> dict[str, Any]:
    """The checkpoint ``trainer.save_checkpoint`` would write (weights, optimiser, loops, callbacks,
    the DataModule's state), without its collective save: what one process writes alone when the
    others may be gone. Lightning's public ``save_checkpoint`` waits for every process."""
    return trainer._checkpoint_connector.dump_checkpoint()
