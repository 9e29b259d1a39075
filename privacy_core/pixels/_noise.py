"""The cryptographically secure noise source for the pixel mechanisms.

:class:`CellNoise` turns bytes from the operating system's CSPRNG (``os.urandom``) into Laplace draws. It
never uses NumPy's PRNG and holds no seed or state: every call reads fresh bytes, so noise is independent
across cells, chunks, runs and workers, and there is nothing an observer could correlate. The byte source
can be swapped for a deterministic one in tests; it must then be picklable (a module-level function or an
instance of a module-level class, not a lambda), because Dask ships the object to its workers.

Known limit: this is the textbook floating-point inverse-CDF sampler. Mironov (2012, "On significance of
the least significant bits for differential privacy") showed such samplers can leak through the low-order
bits of the output; DP-Pix returns float32, which coarsens those bits but is not a proof against it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike, NDArray

__all__ = ["CellNoise"]

#: A uniform is k / 2**53 with k in 1 .. 2**53 - 1: 53-bit resolution (all a float64 mantissa holds near 1),
#: never exactly 0 or 1, so the inverse CDF never takes log(0).
_BITS = 53
#: k == 0 happens with probability 2**-53 per draw and is redrawn; this many zero rounds means the source is broken.
_MAX_REDRAWS = 8


class CellNoise:
    """Laplace noise for a block of cells, from a cryptographically secure byte source.

    :param source: returns ``n`` random bytes when called with ``n``. Defaults to ``os.urandom``, the only
        choice for a release; pass a deterministic, picklable function only in tests.

    >>> noise = CellNoise()
    >>> u = noise.uniform((2, 3))
    >>> u.shape, bool(((u > 0) & (u < 1)).all())
    ((2, 3), True)
    >>> noise.laplace(4, scale=2.0).dtype
    dtype('float64')
    """

    def __init__(self, source: Callable[[int], bytes] = os.urandom) -> None:
        if not callable(source):
            raise TypeError(f"source: {source!r} is not callable; pass a function n -> n bytes, e.g. os.urandom")
        self.source = source

    def __repr__(self) -> str:
        name = getattr(self.source, "__qualname__", type(self.source).__qualname__)
        return f"CellNoise(source={getattr(self.source, '__module__', '?')}.{name})"

    def _words(self, count: int) -> NDArray[np.uint64]:
        """``count`` 64-bit unsigned integers from fresh source bytes (little-endian on every platform)."""
        import numpy as np

        data = self.source(8 * count)
        if not isinstance(data, bytes | bytearray) or len(data) != 8 * count:
            got = len(data) if isinstance(data, bytes | bytearray) else type(data).__name__
            raise RuntimeError(f"source {self.source!r} returned {got} for {8 * count} bytes; it must return exactly n")
        return np.frombuffer(data, dtype="<u8").astype(np.uint64)

    def uniform(self, shape: int | tuple[int, ...]) -> NDArray[np.float64]:
        """Uniform draws in the open interval (0, 1) on the grid ``k / 2**53``, ``k`` from 1 to ``2**53 - 1``.

        :param shape: the output shape.
        :raises RuntimeError: the source keeps returning zeros, so it is not random.
        """
        import numpy as np

        size = int(np.prod(shape, dtype=np.int64))
        k = self._words(size) >> np.uint64(64 - _BITS)
        for _ in range(_MAX_REDRAWS):
            zero = np.flatnonzero(k == 0)
            if zero.size == 0:
                break
            k[zero] = self._words(zero.size) >> np.uint64(64 - _BITS)
        else:
            if np.any(k == 0):
                raise RuntimeError(f"source {self.source!r} returned only zero bits {_MAX_REDRAWS} times; it is broken")
        return (k.astype(np.float64) / float(2**_BITS)).reshape(shape)

    def laplace(self, shape: int | tuple[int, ...], scale: ArrayLike = 1.0) -> NDArray[np.float64]:
        """Laplace(0, ``scale``) draws by inverse CDF of :meth:`uniform`; ``scale`` may be an array per draw.

        :param shape: the output shape.
        :param scale: the Laplace scale b (variance ``2 * b**2``); broadcast against ``shape``.
        """
        import numpy as np

        u = self.uniform(shape)
        # Both branches are exact in their halves: 2u for u < 1/2, and 1 - u (Sterbenz) for u >= 1/2.
        unit = np.where(u < 0.5, np.log(2.0 * u), -np.log(2.0 * (1.0 - u)))
        result: NDArray[np.float64] = unit * np.asarray(scale, dtype=np.float64)
        return result
