"""What the page of ``panda app`` can ask, and the answers: JSON in, JSON-ready dicts out, over an
:class:`~panda_lightning.app.editor.Editor`. No HTTP here (:mod:`~panda_lightning.app.server`).

A request's body is decoded as the page sends it and nothing more: a JSON object of the known
fields, whose numbers are ordinary (no ``NaN``, no integer of hundreds of digits), and whose mask
is a PNG of the sample's size, checked before it is decoded.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from torch import Tensor

from panda_lightning.app.editor import EditRequest, Editor
from panda_lightning.app.photo_jobs import PhotoJobs
from panda_lightning.decoding import decode_image
from panda_lightning.functional.validation import SHOWN, shown
from panda_lightning.images import at_most, image_bytes, mask_from_image, mask_png, part_colours
from panda_lightning.photos import Box, load_photo

ENCODERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="panda-app-png")
PREVIEW_SIZE = 512  # images larger are shown shrunk, as JPEG (the page shows them smaller still); downloads are whole PNG
MAX_DIGITS = 20  # of an integer in a request: seeds are below 2**53, 16 digits
FIELDS = ("seed", "action", "parts", "part", "mask", "appearance", "alpha", "source", "photo")
PHOTO_PREFIXES = {"data:image/png;base64,": "PNG", "data:image/jpeg;base64,": "JPEG"}


def encoded(content: bytes, kind: str = "png") -> str:
    """A file's ``content`` as a ``data:image/<kind>`` URL."""
    return f"data:image/{kind};base64," + base64.b64encode(content).decode()


def data_url(image: Tensor) -> str:
    """``image: (3, H, W)`` in ``[0, 1]`` as a PNG ``data:`` URL, the pixels ``panda edit`` writes."""
    return encoded(image_bytes(image))


def preview_url(image: Tensor, jpeg: bool) -> str:
    """``image`` as :func:`data_url`; or, a preview that is not the image a download gives (shrunk
    to :data:`PREVIEW_SIZE`, or a photo's), as a JPEG, which encodes several times faster than a
    PNG: the slider waits for it."""
    if not jpeg:
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
        self.photos = PhotoJobs(editor)
        self.routes: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "/api/info": self.info,
            "/api/sample": self.sample,
            "/api/part": self.part,
            "/api/gallery": self.gallery,
            "/api/edit": self.edit,
            "/api/photo": self.photo,
            "/api/photo/progress": self.photo_progress,
            "/api/photo/cancel": self.photo_cancel,
            "/api/photo/inversion": self.photo_inversion,
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
            values["mask"] = mask_from_data_url(values["mask"], self.editor.generator.image_size)
        return EditRequest(**values)

    def info(self, payload: dict[str, Any]) -> dict[str, Any]:
        editor = self.editor
        colours = ["#" + "".join(f"{round(255 * float(c)):02x}" for c in colour) for colour in part_colours(editor.num_parts)]
        return {
            "num_parts": editor.num_parts, "num_appearances": editor.num_appearances, "colours": colours,
            "layer": editor.fitted.hparams.get("layer"), "generator": type(editor.generator.network).__name__,
        }

    def _subject(self, payload: dict[str, Any]) -> EditRequest:
        """The request of a sample's or photo's picture: its seed or photo, and its parts."""
        return self.editor.check_subject(self.edit_request({
            "seed": payload.get("seed"), "parts": payload.get("parts", "global"), "photo": payload.get("photo"),
        }))

    def sample(self, payload: dict[str, Any]) -> dict[str, Any]:
        request = self._subject(payload)
        sample = self.editor.sample(request.subject)
        image = sample.image.cpu()
        overlay = self.editor.overlay(request.subject, request.parts)
        size, shrunk = list(image.shape[1:]), max(image.shape[1:]) > PREVIEW_SIZE
        image, overlay = (at_most(each, PREVIEW_SIZE) for each in (image, overlay))
        answer = {"seed": request.seed, "size": size, "image": preview_url(image, shrunk), "overlay": preview_url(overlay, shrunk)}
        photo = sample.photo
        if photo is not None:
            answer["photo"] = {"name": photo.name, "box": list(vars(photo.inversion.box).values()), "size": list(photo.pixels.shape[1:]),
                               "image": preview_url(at_most(photo.pixels, PREVIEW_SIZE), max(photo.pixels.shape[1:]) > PREVIEW_SIZE)}
        return answer

    def part(self, payload: dict[str, Any]) -> dict[str, Any]:
        request = self._subject(payload)
        return {"part": self.editor.part_at(request.subject, request.parts, payload.get("x"), payload.get("y"))}

    def gallery(self, payload: dict[str, Any]) -> dict[str, Any]:
        items = self.editor.gallery(self.edit_request(payload))
        return {"items": [{"appearance": j, "spread": score, "image": data_url(image)} for j, score, image in items]}

    def edit(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The edited image and its difference, shrunk to :data:`PREVIEW_SIZE` (``whole``: whether that is the download), with the command that
        makes it; with ``"full": true``, the edited image alone at full size (for the download)."""
        whole = payload.get("full", False) is True
        request = self.edit_request({key: value for key, value in payload.items() if key != "full"})
        if whole:
            return {"edited": data_url(self.editor.edit(request)[0])}
        edited, difference = self.editor.edit(request, largest=PREVIEW_SIZE)
        # A preview is the download itself only for a sample no larger than PREVIEW_SIZE; otherwise
        # the page asks for the whole image on a click.
        whole = request.photo is None and max(self.editor.picture_size(request)) <= PREVIEW_SIZE
        # Two encodings at once: Pillow lets go of the interpreter while it compresses.
        edited_url, difference_url = ENCODERS.map(preview_url, (edited, difference), (not whole, not whole))
        answer = {
            "edited": edited_url, "difference": difference_url, "whole": whole,
            "command": self.editor.command(request), "options": self.editor.options(request),
            "output": self.editor.output_file(request),
        }
        if request.mask is not None:
            answer["mask"] = encoded(mask_png(request.mask))
            answer["mask_file"] = self.editor.mask_file(request.mask)
        return answer

    # -- photos -----------------------------------------------------------------------------

    def photo(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Start inverting a photo the page sends: ``image`` (a PNG or JPEG ``data:`` URL), ``name``
        (its file's), ``box`` (``[x, y, size]``, or none for the middle square); the job's id."""
        unknown = sorted(set(payload) - {"image", "name", "box"})
        if unknown:
            raise ValueError(f"unknown photo field(s) {shown(', '.join(unknown))}; the fields are image, name, box.")
        name = photo_name(payload.get("name"))
        url = payload.get("image")
        prefix = next((prefix for prefix in PHOTO_PREFIXES if isinstance(url, str) and url.startswith(prefix)), None)
        if prefix is None:
            raise ValueError("image must be a PNG or JPEG data: URL of the photo.")
        try:
            content = base64.b64decode(url[len(prefix):], validate=True)
        except binascii.Error as error:
            raise ValueError(f"image is not base64: {error}") from error
        pixels = load_photo(content, f"photo {shown(name)}")
        box = payload.get("box")
        if box is not None:
            if not (isinstance(box, list) and len(box) == 3 and all(isinstance(v, int) and not isinstance(v, bool) for v in box)):
                raise ValueError(f"box={shown(box)} must be [x, y, size], three whole numbers of pixels.")
            box = Box(*box).check(*pixels.shape[1:])
        job = self.photos.start(pixels, name, box)
        return {"job": job, "size": list(pixels.shape[1:])}

    def photo_progress(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self.photos.job(payload.get("job")).state()

    def photo_cancel(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self.photos.cancel(payload.get("job")).state()

    def photo_inversion(self, payload: dict[str, Any]) -> dict[str, Any]:
        """An inverted photo's inversion file (what ``panda edit --image`` reads), as a ``data:`` URL, and its name."""
        request = self._subject({"seed": 0, "photo": payload.get("photo")})
        photo = self.editor.sample(request.subject).photo
        if photo is None:
            raise ValueError("photo is needed: the name of a photo inverted here.")
        buffer = io.BytesIO()
        photo.inversion.save_to(buffer)
        return {"inversion": "data:application/octet-stream;base64," + base64.b64encode(buffer.getvalue()).decode(), "file": photo.inversion_file}


def photo_name(name: Any) -> str:
    """The file name the page gives its photo, as the exported command will name it: a PNG or JPEG
    file's name alone, no folder, no control character."""
    if not isinstance(name, str) or not re.fullmatch(r"[^/\\\x00-\x1f\x7f]{1,100}\.(png|jpe?g)", name, re.IGNORECASE) or name.startswith("."):
        raise ValueError(f"name={shown(name)} must be the photo's file name: at most 100 characters ending in .png, .jpg or .jpeg, no folder.")
    return name
