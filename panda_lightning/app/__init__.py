"""``panda app``: a local web page to pick a part (or paint a mask), pick an appearance and see the
edit live. :mod:`~panda_lightning.app.editor` does the work, :mod:`~panda_lightning.app.server`
serves it, ``static/`` is the page."""

from panda_lightning.app.editor import EditRequest, Editor
from panda_lightning.app.server import make_server

__all__ = ["EditRequest", "Editor", "make_server"]
