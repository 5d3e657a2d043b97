"""One installed package: ``pip install .`` puts ``panda_lightning`` (with its DataModule and
callbacks) into site-packages and nothing else; the math imports no Lightning."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

SUBPACKAGES = ("app", "callbacks", "cli", "datamodules", "fitting", "functional", "generators", "generators/adapters",
               "generators/formats", "generators/networks")


@pytest.mark.slow
def test_pip_install_puts_one_top_level_package_with_every_room(tmp_path):
    # From a copy of the checkout: setuptools builds in the source tree (build/).
    source, target = tmp_path / "source", tmp_path / "site-packages"
    ignored = shutil.ignore_patterns(".*", "build", "runs", "scratch", "*.egg-info", "__pycache__", "*.ckpt")
    shutil.copytree(ROOT, source, ignore=ignored)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(target), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    installed = {path.name for path in target.iterdir() if not path.name.endswith((".dist-info", ".egg-info"))} - {"bin"}
    assert installed == {"panda_lightning"}
    (dist_info,) = target.glob("panda_lightning-*.dist-info")
    assert (dist_info / "top_level.txt").read_text().split() == ["panda_lightning"]
    for subpackage in SUBPACKAGES:
        assert (target / "panda_lightning" / subpackage / "__init__.py").is_file(), subpackage
    for page in ("index.html", "editor.js", "editor.css"):  # panda app's page, package data
        assert (target / "panda_lightning" / "app" / "static" / page).is_file(), page
    # Imported from the installed copy, away from the checkout: the DataModule and callbacks
    # are panda_lightning's, and the configs' class paths resolve.
    probe = (
        "import panda_lightning.datamodules as d, panda_lightning.callbacks as c, panda_lightning.cli.trainer;"
        "print(d.GeneratorActivations.__module__, c.PartsOverlay.__module__, d.__file__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(target)}, capture_output=True, text=True, check=True
    )
    modules_and_file = result.stdout.split()
    assert modules_and_file[:2] == ["panda_lightning.datamodules.activations", "panda_lightning.callbacks.parts_overlay"]
    assert Path(modules_and_file[2]).is_relative_to(target)


def test_every_subpackage_is_declared_for_installation():
    package = ROOT / "panda_lightning"
    folders = {path.parent.relative_to(package).as_posix() for path in package.glob("*/**/__init__.py")}
    declared = (ROOT / "setup.cfg").read_text()
    for subpackage in folders | {"callbacks", "datamodules"}:
        dotted = subpackage.replace("/", ".")
        assert f"panda_lightning.{dotted}\n" in declared, f"panda_lightning.{dotted} is missing from setup.cfg's packages"
    assert folders | {"callbacks", "datamodules"} == set(SUBPACKAGES)


def test_the_math_imports_no_lightning():
    probe = (
        "import sys, pkgutil, importlib, panda_lightning.functional as f\n"
        "for module in pkgutil.iter_modules(f.__path__): importlib.import_module(f'panda_lightning.functional.{module.name}')\n"
        "print(sorted({name.split('.')[0] for name in sys.modules} & {'lightning', 'pytorch_lightning', 'torchmetrics'}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "[]"
    assert len(list((ROOT / "panda_lightning" / "functional").glob("*.py"))) >= 6  # the probe imported something
