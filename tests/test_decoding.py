"""The gate every image from outside passes: only the formats asked for, the declared size checked
before a pixel is decoded."""

from __future__ import annotations

import io
import struct
import subprocess
import zlib

import pytest
from PIL import EpsImagePlugin, Image, PngImagePlugin

from panda_lightning.decoding import decode_image
from panda_lightning.images import load_mask

OTHER_FORMATS = ["GIF", "BMP", "TIFF", "JPEG", "WEBP", "ICO", "PPM", "TGA"]
# A PostScript loop: Pillow hands an EPS file to Ghostscript, which would run it.
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n{ } loop\nshowpage\n%%EOF\n"


def encoded(format: str, size: tuple[int, int] = (64, 64), mode: str = "RGB") -> bytes:  # noqa: A002
    buffer = io.BytesIO()
    Image.new(mode, size, 200).save(buffer, format=format)
    return buffer.getvalue()


def png_declaring(width: int, height: int, rows: int = 0) -> bytes:
    """A grey PNG whose header declares ``width x height`` pixels, with ``rows`` rows of zeros
    compressed in it (streamed: a 12800 x 12800 image compresses to about 160 KiB)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor, row = zlib.compressobj(9), bytes(1 + width)
    data = b"".join(compressor.compress(row) for _ in range(rows)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


@pytest.fixture
def decoded(monkeypatch) -> list[str]:
    """The PNG images whose pixels were decoded."""
    calls = []
    load = PngImagePlugin.PngImageFile.load

    def recorded(self):
        calls.append(self.size)
        return load(self)

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", recorded)
    return calls


def test_a_png_of_the_size_asked_for_is_decoded(decoded):
    with decode_image(encoded("PNG", mode="RGBA"), "mask", size=(64, 64)) as image:
        assert image.size == (64, 64) and image.mode == "RGBA"
    assert decoded == [(64, 64)]
    with decode_image(encoded("JPEG"), "photo", formats=("PNG", "JPEG")) as image:
        assert image.format == "JPEG"


@pytest.mark.parametrize("format", OTHER_FORMATS)
def test_every_other_format_is_refused(format):  # noqa: A002
    content = encoded(format)
    with Image.open(io.BytesIO(content)) as image:  # (Pillow alone would decode it)
        assert image.format == format
    with pytest.raises(ValueError, match=r"^mask is not a PNG image\.$"):
        decode_image(content, "mask")


def test_eps_never_reaches_ghostscript(monkeypatch):
    with Image.open(io.BytesIO(EPS)) as image:  # (Pillow alone takes it for EPS)
        assert image.format == "EPS"
    reached = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: reached.append("EPS decoder"))
    monkeypatch.setattr(subprocess, "Popen", lambda *args, **kwargs: reached.append(args))
    for formats in (("PNG",), ("PNG", "JPEG")):
        with pytest.raises(ValueError, match="is not a PNG"):
            decode_image(EPS, "mask", formats=formats)
    assert reached == []


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # (Pillow's, above 89 Mpixels)
@pytest.mark.parametrize("width, height, rows", [(100_000, 100_000, 0), (12_800, 12_800, 12_800)])
def test_a_declared_size_bomb_is_refused_before_any_pixel_is_decoded(decoded, width, height, rows):
    bomb = png_declaring(width, height, rows)
    assert len(bomb) < 200 * 1024
    declared = rf"(is {width} x {height}|declares more than {2 * Image.MAX_IMAGE_PIXELS}) pixels"
    with pytest.raises(ValueError, match=rf"^mask {declared}; it must be 64 x 64\.$"):
        decode_image(bomb, "mask", size=(64, 64))
    with pytest.raises(ValueError, match=rf"^photo {declared}; at most 50000000 pixels are accepted\.$"):
        decode_image(bomb, "photo", formats=("PNG", "JPEG"))
    assert decoded == []


def test_truncated_and_missing_files_say_so(tmp_path):
    whole = encoded("PNG", size=(64, 64), mode="RGBA")
    with pytest.raises(ValueError, match=r"mask cannot be (decoded|read) as a PNG image"):
        decode_image(whole[: len(whole) // 2], "mask")
    with pytest.raises(ValueError, match=r"mask 'x' cannot be read: no such file"):
        decode_image(tmp_path / "missing.png", "mask 'x'")


def test_a_mask_file_goes_through_the_gate(tmp_path):
    (tmp_path / "mask.png").write_bytes(encoded("PNG", mode="L"))
    assert load_mask(tmp_path / "mask.png").shape == (64, 64)
    (tmp_path / "mask.eps").write_bytes(EPS)
    with pytest.raises(ValueError, match=r"mask '.*mask\.eps' is not a PNG image"):
        load_mask(tmp_path / "mask.eps")
