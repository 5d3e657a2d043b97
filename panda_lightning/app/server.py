"""The web side of ``panda app``: a page and a JSON API over an :class:`~panda_lightning.app.editor.Editor`,
served by the standard library's threading HTTP server to this machine alone by default.

The page (``static/``) loads nothing from elsewhere, and its Content-Security-Policy forbids it
to. Each request carries the whole state of its tab, so tabs are independent. A request whose
values are bad is answered ``400 {"error": ...}`` with the message the page shows; a failure of
the server's own is answered ``500`` with one line, and the server goes on serving.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from PIL import Image
from torch import Tensor

from panda_lightning.app.editor import EditRequest, Editor
from panda_lightning.images import at_most, mask_from_image, mask_png, part_colours, image_bytes

log = logging.getLogger(__name__)

STATIC = {"/": ("index.html", "text/html"), "/editor.js": ("editor.js", "text/javascript"), "/editor.css": ("editor.css", "text/css")}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; connect-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
ENCODERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="panda-app-png")
MAX_BODY = 32 * 2**20  # a 1024 px mask is well under this
PREVIEW_SIZE = 512  # images larger are shown shrunk, as JPEG (the page shows them smaller still); downloads are whole PNG


def encoded(content: bytes, kind: str = "png") -> str:
    """A file's ``content`` as a ``data:image/<kind>`` URL."""
    return f"data:image/{kind};base64," + base64.b64encode(content).decode()


def data_url(image: Tensor) -> str:
    """``image: (3, H, W)`` in ``[0, 1]`` as a PNG ``data:`` URL, the pixels ``panda edit`` writes."""
    return encoded(image_bytes(image))


def preview_url(image: Tensor, shrunk: bool) -> str:
    """``image`` as :func:`data_url`; shrunk (to :data:`PREVIEW_SIZE`), as a JPEG instead, which
    encodes several times faster than a PNG: the slider waits for it."""
    if not shrunk:
        return data_url(image)
    return encoded(image_bytes(image, "JPEG", quality=90), "jpeg")


def mask_from_data_url(url: Any) -> Tensor:
    """A brush's strokes, a PNG ``data:`` URL of a clear canvas, as a mask: its opacity in ``[0, 1]``."""
    prefix = "data:image/png;base64,"
    if not isinstance(url, str) or not url.startswith(prefix):
        raise ValueError("mask must be a PNG data: URL of the canvas the brush draws on.")
    try:
        with Image.open(io.BytesIO(base64.b64decode(url[len(prefix):], validate=True))) as canvas:
            # As load_mask reads a file, so that the exported mask gives the same values.
            return mask_from_image(canvas.getchannel("A") if canvas.mode in ("RGBA", "LA") else canvas)
    except (binascii.Error, OSError) as error:
        raise ValueError(f"mask cannot be read as a PNG image: {error}") from error


def edit_request(payload: dict[str, Any]) -> EditRequest:
    """The :class:`EditRequest` of a page's JSON; the editor checks its values."""
    known = {"seed", "action", "parts", "part", "mask", "appearance", "alpha", "source"}
    unknown = sorted(set(payload) - known)
    if unknown:
        raise ValueError(f"unknown request field(s) {', '.join(unknown)}; the fields are {', '.join(sorted(known))}.")
    values = dict(payload)
    if values.get("mask") is not None:
        values["mask"] = mask_from_data_url(values["mask"])
    if "seed" not in values:
        raise ValueError("the request needs a seed.")
    return EditRequest(**values)


class EditorAPI:
    """The answers to the page's requests, as JSON-ready dicts (served by :func:`serve`)."""

    def __init__(self, editor: Editor):
        self.editor = editor
        self.routes: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "/api/info": self.info,
            "/api/sample": self.sample,
            "/api/part": self.part,
            "/api/gallery": self.gallery,
            "/api/edit": self.edit,
        }

    def info(self, payload: dict[str, Any]) -> dict[str, Any]:
        editor = self.editor
        colours = ["#" + "".join(f"{round(255 * float(c)):02x}" for c in colour) for colour in part_colours(editor.num_parts)]
        return {
            "num_parts": editor.num_parts, "num_appearances": editor.num_appearances, "colours": colours,
            "layer": editor.fitted.hparams.get("layer"), "generator": type(editor.datamodule.generator).__name__,
        }

    def sample(self, payload: dict[str, Any]) -> dict[str, Any]:
        request = edit_request({"seed": payload.get("seed"), "parts": payload.get("parts", "global")})
        image = self.editor.sample(request.seed).image.cpu()
        overlay = self.editor.overlay(request.seed, request.parts)
        size, shrunk = list(image.shape[1:]), max(image.shape[1:]) > PREVIEW_SIZE
        image, overlay = (at_most(each, PREVIEW_SIZE) for each in (image, overlay))
        return {"seed": request.seed, "size": size, "image": preview_url(image, shrunk), "overlay": preview_url(overlay, shrunk)}

    def part(self, payload: dict[str, Any]) -> dict[str, Any]:
        request = edit_request({"seed": payload.get("seed"), "parts": payload.get("parts", "global")})
        return {"part": self.editor.part_at(request.seed, request.parts, payload.get("x"), payload.get("y"))}

    def gallery(self, payload: dict[str, Any]) -> dict[str, Any]:
        items = self.editor.gallery(edit_request(payload))
        return {"items": [{"appearance": j, "spread": score, "image": data_url(image)} for j, score, image in items]}

    def edit(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The edited image and its difference, shrunk to :data:`PREVIEW_SIZE`, with the command that
        makes it; with ``"full": true``, the edited image alone at full size (for the download)."""
        whole = payload.get("full", False) is True
        request = edit_request({key: value for key, value in payload.items() if key != "full"})
        if whole:
            return {"edited": data_url(self.editor.edit(request)[0])}
        edited, difference = self.editor.edit(request, largest=PREVIEW_SIZE)
        shrunk = max(self.editor.sample(request.seed).image.shape[1:]) > PREVIEW_SIZE
        # Two encodings at once: Pillow lets go of the interpreter while it compresses.
        edited_url, difference_url = ENCODERS.map(preview_url, (edited, difference), (shrunk, shrunk))
        answer = {
            "edited": edited_url, "difference": difference_url, "shrunk": shrunk,
            "command": self.editor.command(request), "options": self.editor.options(request),
        }
        if request.mask is not None:
            answer["mask"] = encoded(mask_png(request.mask))
        return answer


class _Handler(BaseHTTPRequestHandler):
    api: EditorAPI  # set on the subclass that serve() makes
    server_version = "panda-app"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = self.path.split("?", 1)[0]
        if path not in STATIC:
            self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
            return
        name, kind = STATIC[path]
        self._send(HTTPStatus.OK, resources.files("panda_lightning.app").joinpath("static", name).read_bytes(), f"{kind}; charset=utf-8")

    def do_POST(self) -> None:  # noqa: N802
        route = self.api.routes.get(self.path)
        if route is None:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such request {self.path!r}; they are {', '.join(self.api.routes)}."})
            return
        started = time.perf_counter()
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise ValueError(f"the request has {length} bytes; at most {MAX_BODY} are read.")
            payload = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(payload, dict):
                raise ValueError(f"the request must be a JSON object, not {type(payload).__name__}.")
            answer = route(payload)
        except json.JSONDecodeError as error:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"the request is not JSON: {error}"})
            return
        except ValueError as error:  # a bad value from the page, said by the checks
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(error)})
            return
        except Exception as error:  # the page says it and the server goes on: one request failed, not the app
            log.exception("request %s failed", self.path)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(error).__name__}: {error}".splitlines()[0]})
            return
        self._json(HTTPStatus.OK, {**answer, "milliseconds": round(1000 * (time.perf_counter() - started), 1)})

    def _json(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug(format, *args)


def make_server(editor: Editor, host: str = "127.0.0.1", port: int = 7860) -> ThreadingHTTPServer:
    """An HTTP server of the page and the API at ``host:port`` (``port=0``: a free one), not yet serving."""
    handler = type("EditorHandler", (_Handler,), {"api": EditorAPI(editor)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
