"""``panda app``: a local web page to pick a part (or paint a mask), pick an appearance and see the
edit live. :mod:`~panda_lightning.app.editor` does the work, :mod:`~panda_lightning.app.api` answers
the page's requests, :mod:`~panda_lightning.app.guard` decides who may ask and how much,
:mod:`~panda_lightning.app.server` serves it, ``static/`` is the page."""

from panda_lightning.app.editor import EditRequest, Editor
from panda_lightning.app.guard import Limits
from panda_lightning.app.server import make_server

__all__ = ["EditRequest", "Editor", "Limits", "make_server"]
