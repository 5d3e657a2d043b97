"""What the tests of ``panda app`` share: a server of the editor in a thread, requests as the page
sends them, and images as the page reads them."""

from __future__ import annotations

import base64
import io
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from panda_lightning.app import Editor, make_server
from panda_lightning.app.guard import TOKEN_HEADER
from panda_lightning.app.server import EditorServer


def pixels(data_url: str) -> np.ndarray:
    """The pixels ``(H, W, 3)`` uint8 of an image ``data:`` URL, as the page gets them."""
    with Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))) as picture:
        return np.array(picture.convert("RGB"))


def file_pixels(path: Path) -> np.ndarray:
    """The pixels ``(H, W, 3)`` uint8 of a PNG file."""
    with Image.open(path) as picture:
        return np.array(picture.convert("RGB"))


def canvas_data_url(mask: np.ndarray) -> str:
    """A brush's strokes as the page sends them: red on a clear canvas, the mask in its opacity."""
    rgba = np.zeros((*mask.shape, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, mask
    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def square_mask(size: int = 64, top: int = 8, left: int = 36, side: int = 20) -> np.ndarray:
    """A square with soft edges (opacities between 0 and 255, as a brush leaves them)."""
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[top - 1 : top + side + 1, left - 1 : left + side + 1] = 90
    mask[top : top + side, left : left + side] = 255
    return mask


@dataclass
class Served:
    """A server of the editor on a free port, in a thread: its address, token and server."""

    url: str
    token: str
    server: EditorServer

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def page(self) -> str:
        """The address ``panda app`` prints: the page, with the token."""
        return self.server.url


@contextmanager
def serving(editor: Editor, **options) -> Iterator[Served]:
    """``make_server(editor, port=0, **options)`` serving in a thread until the block ends."""
    server = make_server(editor, port=0, **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{server.server_address[1]}", server.guard.token, server)
    finally:
        server.shutdown()
        server.server_close()


def post(served: Served, path: str, payload: dict | bytes) -> tuple[int, dict]:
    """``payload`` posted as the page posts it (JSON, with the launch's token): the status and answer."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", TOKEN_HEADER: served.token}
    request = urllib.request.Request(served.url + path, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
