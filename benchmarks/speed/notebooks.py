"""The wall time of each notebook in ``examples/``, run top to bottom in a fresh kernel as a
reader runs it, in a copy of the repository's layout (so that what they write goes to a temporary
folder, and ``make fit``'s run is not there: the photo notebook fits its own).

    python -m benchmarks.speed.notebooks [NOTEBOOK ...]

Prints one line per notebook: its name, cells, and seconds from the kernel's start to its last
cell's end. ``tests/test_notebooks.py`` runs them the same way.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
# What the notebooks read from beside examples/ (configs, the test photo).
SHARED = ("configs", "tests")
CELL_TIMEOUT = 300  # seconds: a cell that runs longer has hung


def notebooks() -> list[Path]:
    return sorted(EXAMPLES.glob("*.ipynb"))


def layout(directory: Path) -> Path:
    """``directory`` made to look like the repository to a notebook in its ``examples/``: the
    folder to run notebooks in."""
    for name in SHARED:
        (directory / name).symlink_to(ROOT / name, target_is_directory=True)
    (directory / "examples").mkdir()
    return directory / "examples"


class ThisPython(KernelSpecManager):
    """The kernel of the Python running this (the project's environment), whatever kernels the
    machine's Jupyter knows by the notebooks' kernel name."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        return KernelSpec(argv=argv, display_name="Python 3", language="python", resource_dir=str(EXAMPLES))


def execute(path: Path, where: Path) -> tuple[nbformat.NotebookNode, float]:
    """The notebook at ``path`` executed in ``where`` in a fresh kernel of this Python, and its
    seconds; a cell's error raises nbclient's ``CellExecutionError`` with its traceback."""
    notebook = nbformat.read(path, as_version=4)
    kernel = KernelManager(kernel_name=notebook.metadata.kernelspec.name, kernel_spec_manager=ThisPython())
    start = time.perf_counter()
    NotebookClient(notebook, km=kernel, timeout=CELL_TIMEOUT, resources={"metadata": {"path": str(where)}}).execute()
    return notebook, time.perf_counter() - start


def main() -> None:
    chosen = [Path(arg) for arg in sys.argv[1:]] or notebooks()
    with tempfile.TemporaryDirectory() as directory:
        where = layout(Path(directory))
        for path in chosen:
            notebook, seconds = execute(path, where)
            print(f"NOTEBOOK {path.name}: {len(notebook.cells)} cells, {seconds:.1f} s", flush=True)


if __name__ == "__main__":
    main()
