"""What the page of ``panda app`` can ask, and the answers: JSON in, JSON-ready dicts out, over an
:class:`~panda_lightning.app.editor.Editor`. No HTTP here (:mod:`~panda_lightning.app.server`).

A request's body is decoded as the page sends it and nothing more: a JSON object of the known
fields, whose numbers are ordinary (no ``NaN``, no integer of hundreds of digits), and whose mask
is a PNG of the sample's size, checked before it is decoded.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from torch import Tensor

from panda_lightning.app.editor import EditRequest, Editor
from panda_lightning.decoding import decode_image
from panda_lightning.functional.validation import SHOWN, shown
from panda_lightning.images import at_most, image_bytes, mask_from_image, mask_png, part_colours

ENCODERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="panda-app-png")
PREVIEW_SIZE = 512  # images larger are shown shrunk, as JPEG (the page shows them smaller still); downloads are whole PNG
MAX_DIGITS = 20  # of an integer in a request: seeds are below 2**53, 16 digits
FIELDS = ("seed", "action", "parts", "part", "mask", "appearance", "alpha", "source")


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


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise ValueError(f"the request holds an integer of {len(text)} digits; at most {MAX_DIGITS} are read.")
    return int(text)


def _no_constant(name: str) -> None:
    raise ValueError(f"the request holds {name}, which is not a number JSON knows.")


def read_request(body: bytes) -> dict[str, Any]:
    """A request's body as the JSON object it must be; a one-line ``ValueError`` otherwise."""
    try:
        payload = json.loads(body.decode("utf-8") or "{}", parse_int=_integer, parse_constant=_no_constant)
    except UnicodeDecodeError as error:
        raise ValueError("the request is not UTF-8 text.") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"the request is not JSON: {error.msg} at line {error.lineno} column {error.colno}.") from error
    except RecursionError as error:
        raise ValueError("the request's JSON is nested too deep.") from error
    if not isinstance(payload, dict):
        raise ValueError(f"the request must be a JSON object, not {type(payload).__name__}.")
    return payload


def mask_from_data_url(url: Any, size: tuple[int, int]) -> Tensor:
    """A brush's strokes, a PNG ``data:`` URL of a clear canvas of ``size = (H, W)``, as a mask: its
    opacity in ``[0, 1]``. Anything but a PNG of that size is refused before it is decoded."""
    prefix = "data:image/png;base64,"
    if not isinstance(url, str) or not url.startswith(prefix):
        raise ValueError("mask must be a PNG data: URL of the canvas the brush draws on.")
    try:
        content = base64.b64decode(url[len(prefix):], validate=True)
    except binascii.Error as error:
        raise ValueError(f"mask is not base64: {error}") from error
    height, width = size
    with decode_image(content, "mask", formats=("PNG",), size=(width, height)) as canvas:
        # As load_mask reads a file, so that the exported mask gives the same values.
        return mask_from_image(canvas.getchannel("A") if canvas.mode in ("RGBA", "LA") else canvas)


class EditorAPI:
    """The answers to the page's requests, as JSON-ready dicts, by route."""

    def __init__(self, editor: Editor):
        self.editor = editor
        self.routes: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "/api/info": self.info,
            "/api/sample": self.sample,
            "/api/part": self.part,
            "/api/gallery": self.gallery,
            "/api/edit": self.edit,
        }

    def edit_request(self, payload: dict[str, Any]) -> EditRequest:
        """The :class:`EditRequest` of a page's JSON; the editor checks its values."""
        unknown = ", ".join(sorted(set(payload) - set(FIELDS)))
        if unknown:
            named = unknown if len(unknown) <= SHOWN else shown(unknown)
            raise ValueError(f"unknown request field(s) {named}; the fields are {', '.join(FIELDS)}.")
        if "seed" not in payload:
            raise ValueError("the request needs a seed.")
        values = dict(payload)
        if values.get("mask") is not None:
            values["mask"] = mask_from_data_url(values["mask"], self.editor.image_size)
        return EditRequest(**values)

    def info(self, payload: dict[str, Any]) -> dict[str, Any]:
        editor = self.editor
        colours = ["#" + "".join(f"{round(255 * float(c)):02x}" for c in colour) for colour in part_colours(editor.num_parts)]
        return {
            "num_parts": editor.num_parts, "num_appearances": editor.num_appearances, "colours": colours,
            "layer": editor.fitted.hparams.get("layer"), "generator": type(editor.generator.network).__name__,
        }

    def sample(self, payload: dict[str, Any]) -> dict[str, Any]:
        request = self.edit_request({"seed": payload.get("seed"), "parts": payload.get("parts", "global")})
        image = self.editor.sample(request.seed).image.cpu()
        overlay = self.editor.overlay(request.seed, request.parts)
        size, shrunk = list(image.shape[1:]), max(image.shape[1:]) > PREVIEW_SIZE
        image, overlay = (at_most(each, PREVIEW_SIZE) for each in (image, overlay))
        return {"seed": request.seed, "size": size, "image": preview_url(image, shrunk), "overlay": preview_url(overlay, shrunk)}

    def part(self, payload: dict[str, Any]) -> dict[str, Any]:
        request = self.edit_request({"seed": payload.get("seed"), "parts": payload.get("parts", "global")})
        return {"part": self.editor.part_at(request.seed, request.parts, payload.get("x"), payload.get("y"))}

    def gallery(self, payload: dict[str, Any]) -> dict[str, Any]:
        items = self.editor.gallery(self.edit_request(payload))
        return {"items": [{"appearance": j, "spread": score, "image": data_url(image)} for j, score, image in items]}

    def edit(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The edited image and its difference, shrunk to :data:`PREVIEW_SIZE`, with the command that
        makes it; with ``"full": true``, the edited image alone at full size (for the download)."""
        whole = payload.get("full", False) is True
        request = self.edit_request({key: value for key, value in payload.items() if key != "full"})
        if whole:
            return {"edited": data_url(self.editor.edit(request)[0])}
        edited, difference = self.editor.edit(request, largest=PREVIEW_SIZE)
        shrunk = max(self.editor.image_size) > PREVIEW_SIZE
        # Two encodings at once: Pillow lets go of the interpreter while it compresses.
        edited_url, difference_url = ENCODERS.map(preview_url, (edited, difference), (shrunk, shrunk))
        answer = {
            "edited": edited_url, "difference": difference_url, "shrunk": shrunk,
            "command": self.editor.command(request), "options": self.editor.options(request),
            "output": self.editor.output_file(request),
        }
        if request.mask is not None:
            answer["mask"] = encoded(mask_png(request.mask))
            answer["mask_file"] = self.editor.mask_file(request.mask)
        return answer
