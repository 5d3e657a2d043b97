"""Images that people hand over (a mask painted in the editor, a mask file, a photo), decoded
safely: in the formats asked for only, and only once their declared size has been checked.

Pillow identifies a file by its bytes, whatever its name or a ``data:`` URL says, and knows
dozens of formats; some hand the file to another program (EPS to Ghostscript). A file of a few
hundred bytes may declare 100000 x 100000 pixels. So every image from outside goes through
:func:`decode_image`: ``Image.open(..., formats=...)`` reads the header alone, the declared size is
checked against what the caller allows, and only then are the pixels decoded.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

from PIL import Image, UnidentifiedImageError

MAX_PIXELS = 50_000_000  # a 48-megapixel phone photo's 8064 x 6048 fits; 150 MB decoded as RGB


def decode_image(
    source: bytes | str | os.PathLike,
    what: str,
    formats: Sequence[str] = ("PNG",),
    size: tuple[int, int] | None = None,
    max_pixels: int = MAX_PIXELS,
) -> Image.Image:
    """The image in ``source`` (its bytes, or a file's path), decoded.

    Args:
        source: the file's bytes or its path.
        what: how errors name it (``"mask"``, ``"photo 'me.jpg'"``).
        formats: Pillow's names of the formats accepted (``"PNG"``, ``"JPEG"``); any other is
            refused before a decoder sees it.
        size: the only ``(width, height)`` accepted, when there is one (a canvas's).
        max_pixels: the most pixels accepted.

    Raises:
        ValueError: naming ``what``, when the file is of another format, declares a size not
            accepted, or cannot be decoded (truncated, corrupt).
    """
    accepted = " or ".join(formats)
    allowed = f"it must be {size[0]} x {size[1]}" if size is not None else f"at most {max_pixels} pixels are accepted"
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source, formats=list(formats))
    except FileNotFoundError as error:
        raise ValueError(f"{what} cannot be read: no such file.") from error
    except UnidentifiedImageError as error:
        raise ValueError(f"{what} is not a {accepted} image.") from error
    except Image.DecompressionBombError as error:  # past Pillow's own limit, checked as it reads the header
        raise ValueError(f"{what} declares more than {2 * Image.MAX_IMAGE_PIXELS} pixels; {allowed}.") from error
    except OSError as error:  # a header Pillow could not parse
        raise ValueError(f"{what} cannot be read as a {accepted} image: {error}") from error
    try:
        width, height = image.size
        if (width, height) != (size or (width, height)) or width * height > max_pixels:
            raise ValueError(f"{what} is {width} x {height} pixels; {allowed}.")
        image.load()
    except ValueError:
        image.close()
        raise
    except (OSError, SyntaxError, EOFError) as error:  # truncated or corrupt data
        image.close()
        raise ValueError(f"{what} cannot be decoded as a {accepted} image: {error}") from error
    return image
