"""``assert_real_png(path)``: the file is a PNG a viewer would show with
something drawn on it, checked without looking at it: the PNG signature and
IHDR chunk, a plausible size, a full decode (Pillow, which matplotlib
brings), and more than one colour."""

from __future__ import annotations

import struct
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_real_png(path: Path, min_width: int = 200, min_height: int = 150) -> tuple[int, int]:
    """Returns (width, height)."""
    from PIL import Image

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path}: not a PNG (starts {data[:8]!r})"
    # The first chunk is IHDR: length 13, then width and height (big-endian).
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR"), f"{path}: first chunk {kind!r}"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= min_width and height >= min_height, (width, height)
    assert len(data) > 5_000, f"{path}: {len(data)} bytes is too small for a plot"
    with Image.open(path) as img:
        img.load()  # decodes every row: a truncated or corrupt file raises here
        assert img.size == (width, height)
        colours = img.convert("RGB").getcolors(maxcolors=1 << 16)
    # None: more colours than maxcolors, which is plenty.
    assert colours is None or len(colours) > 8, f"{path}: {len(colours)} colours, a blank image"
    return width, height
