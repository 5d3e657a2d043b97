"""Nothing is lost: a process killed while it writes a checkpoint leaves the previous one whole
(marked slow: it kills a writing process a dozen times)."""

from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from panda_lightning.files import write_atomically

# Writes checkpoints of 16 MB (every value = the write's number) to one path, as fast as it can,
# through the checkpoint IO that the Trainer uses.
WRITER = textwrap.dedent(
    """
    import sys, torch
    from lightning.pytorch.plugins.io import TorchCheckpointIO
    io = TorchCheckpointIO()
    for write in range(1_000_000):
        io.save_checkpoint({"write": write, "parts": torch.full((4_000_000,), float(write))}, sys.argv[1])
    """
)


@pytest.mark.slow
def test_a_process_killed_mid_write_leaves_the_previous_checkpoint_whole(tmp_path):
    path = tmp_path / "last.ckpt"
    rng = random.Random(0)
    for _ in range(12):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
        deadline = time.monotonic() + 60
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))  # somewhere inside a write, most of the time
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        checkpoint = torch.load(path, weights_only=True)  # whole: it loads ...
        assert torch.equal(checkpoint["parts"], torch.full((4_000_000,), float(checkpoint["write"])))  # ... and is one write


def test_an_atomic_write_gets_a_new_files_permissions_and_leaves_nothing_on_failure(tmp_path):
    umask = os.umask(0o022)
    try:
        path = write_atomically(tmp_path / "out" / "result.json", lambda file: file.write("{}\n"), mode="w")
        assert path.read_text() == "{}\n" and stat.S_IMODE(path.stat().st_mode) == 0o644
        with pytest.raises(RuntimeError, match="disk full"):
            write_atomically(path, _write_then_fail, mode="w")
        assert path.read_text() == "{}\n" and os.listdir(path.parent) == ["result.json"]  # the old file, whole
    finally:
        os.umask(umask)


def _write_then_fail(file):
    file.write("{partial")
    raise RuntimeError("disk full")
