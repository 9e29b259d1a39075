"""Content digests of arrays, computed chunk by chunk where the chunks live (on Dask), never by loading them.

The digest is SHA-256 over the shape, the dtype and each chunk's SHA-256 in C order of the chunk grid, so
it is cheap to recompute on a cluster. The chunk shape is hashed too, so the same values re-chunked give
another digest: an auditor recomputes it with the chunks recorded beside it.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dask.array as da
    import numpy as np


def _block_sha256(block: np.ndarray) -> bytes:
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(block).tobytes()).digest()


def array_digest(array: da.Array) -> str:
    """SHA-256 of a Dask array's values, one task per chunk (only 32-byte digests come back).

    >>> import dask.array as da, numpy as np
    >>> a = da.from_array(np.arange(12).reshape(3, 4), chunks=(2, 2))
    >>> array_digest(a) == array_digest(da.from_array(np.arange(12).reshape(3, 4), chunks=(2, 2)))
    True
    """
    from dask.base import compute
    from dask.delayed import delayed

    blocks = array.to_delayed().ravel()
    digests = compute(*[delayed(_block_sha256)(block) for block in blocks])
    outer = hashlib.sha256(f"{array.shape}|{array.dtype.str}|{array.chunksize}".encode())
    for digest in digests:
        outer.update(digest)
    return outer.hexdigest()
