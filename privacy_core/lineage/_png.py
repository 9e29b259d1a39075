"""A minimal PNG encoder (8-bit greyscale, zlib and struct only) and the thumbnails the report embeds.

No imaging library: a thumbnail is a plane, decimated to at most :data:`THUMBNAIL_SIZE` pixels on its
long side, windowed to 8 bits, and written as one IDAT chunk with filter 0 on every row.
"""

from __future__ import annotations

import base64
import struct
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

SIGNATURE = b"\x89PNG\r\n\x1a\n"
THUMBNAIL_SIZE = 256


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(pixels: NDArray[np.uint8]) -> bytes:
    """A 2-D uint8 array as greyscale PNG bytes.

    >>> import numpy as np
    >>> data = encode_png(np.zeros((3, 5), dtype=np.uint8))
    >>> data[:8] == SIGNATURE, struct.unpack(">II", data[16:24])
    (True, (5, 3))
    """
    if pixels.ndim != 2 or pixels.dtype.name != "uint8":
        raise ValueError(f"need a 2-D uint8 array, got {pixels.ndim}-D {pixels.dtype}")
    height, width = pixels.shape
    raw = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale, no interlace
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def to_grey(plane: NDArray[np.generic]) -> NDArray[np.float64]:
    """One (y, x) or (y, x, c) plane as float64 grey (colour averaged)."""
    import numpy as np

    data = np.asarray(plane, dtype=np.float64)
    if data.ndim == 3:
        data = data.mean(axis=-1)
    if data.ndim != 2:
        raise ValueError(f"need a 2-D plane, got {data.ndim}-D")
    return data


def downsample(image: NDArray[np.float64], size: int = THUMBNAIL_SIZE) -> NDArray[np.float64]:
    """Every n-th pixel, n the smallest step that fits the long side into ``size``."""
    step = max(1, -(-max(image.shape) // size))
    return image[::step, ::step]


def window(low_high: tuple[float, float], image: NDArray[np.float64]) -> NDArray[np.uint8]:
    """``image`` mapped linearly from [low, high] to 0..255, clipped."""
    import numpy as np

    low, high = low_high
    span = high - low if high > low else 1.0
    scaled = np.clip((image - low) / span * 255.0, 0.0, 255.0)
    return np.nan_to_num(scaled).round().astype(np.uint8)


def auto_window(image: NDArray[np.float64]) -> tuple[float, float]:
    """The 1st to 99th percentile of ``image``'s finite values (its min and max when those coincide)."""
    import numpy as np

    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(finite, [1.0, 99.0]))
    if high <= low:
        low, high = float(finite.min()), float(finite.max())
    return low, high
