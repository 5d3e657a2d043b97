"""The notebooks of ``examples/``: each runs top to bottom in a fresh kernel, unedited, as a reader
runs it after the README's set-up; each is committed without outputs; the README names each."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from PIL import Image

from benchmarks.speed.notebooks import execute, layout, notebooks

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def examples(tmp_path_factory, converged) -> Path:
    """A copy of the repository's layout to run them in, with the run of ``make fit`` where a reader
    who ran it has it (without one, the photo notebook fits it first, as ``python -m
    benchmarks.speed.notebooks`` runs it)."""
    directory = tmp_path_factory.mktemp("layout")
    (directory / "runs" / "panda").mkdir(parents=True)
    (directory / "runs" / "panda" / "version_0").symlink_to(converged, target_is_directory=True)
    return layout(directory)


def test_there_are_the_four_notebooks():
    assert [path.name for path in notebooks()] == [
        "01_tour.ipynb", "02_your_generator.ipynb", "03_stylegan2_pickle.ipynb", "04_your_photo.ipynb"]


with Image.open(ROOT / "tests" / "data" / "astronaut.png") as photo:
    PHOTO_SIZE = photo.size
# What a notebook leaves for its reader, at the size it should have.
WRITES = {"04_your_photo": [("runs/photo/astronaut-edited.png", PHOTO_SIZE)]}


@pytest.mark.slow
@pytest.mark.parametrize("notebook", notebooks(), ids=lambda path: path.stem)
def test_each_notebook_runs_top_to_bottom_and_shows_its_pictures(notebook, examples):
    # (A cell that raises, or runs past benchmarks.speed.notebooks.CELL_TIMEOUT seconds, fails here with its traceback.)
    executed, _ = execute(notebook, examples)
    pictures = [output for cell in executed.cells for output in cell.get("outputs", []) if "image/png" in output.get("data", {})]
    assert len(pictures) >= 2, f"{notebook.name} shows {len(pictures)} pictures"
    for written, size in WRITES.get(notebook.stem, []):
        with Image.open(examples.parent / written) as image:
            assert image.size == size, written


def test_notebooks_are_committed_without_outputs():
    for path in notebooks():
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        code = [(i, cell) for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
        dirty = [i for i, cell in code if cell.outputs or cell.execution_count or "execution" in cell.metadata]
        assert not dirty, f"{path.name}: cells {dirty} hold outputs or run timings; clear them: make clear-notebooks"
        assert notebook.metadata.kernelspec.name == "python3", path.name


def test_the_readme_names_each_notebook():
    readme = (ROOT / "README.md").read_text()
    assert [path.name for path in notebooks() if f"examples/{path.name}" not in readme] == []
