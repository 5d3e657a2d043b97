"""``python -m panda_lightning.cli``: the ``panda`` command."""

from panda_lightning.cli import main

main()
