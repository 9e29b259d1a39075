"""The noise of DP-Pix: exact discrete Laplace draws for integer cell sums.

DP-Pix adds its noise to each cell's sum of integer pixel values (float data is first put on an integer
grid), so the noise is an integer too: discrete Laplace, ``P(x) ∝ exp(-|x| / t)``, drawn exactly by
:func:`privacy_core.dp.noise.discrete_laplace`. Integer noise on integer sums is exactly epsilon-DP, with none
of the low-order-bit leaks of textbook floating-point Laplace samplers (Mironov 2012).

The random bits come from the DP library's :class:`~privacy_core.dp.random.SecureRandom` of the process that
draws: ChaCha20 keyed from ``os.urandom``, re-keyed in forked children, never seeded, never pickled. A
:class:`CellNoise` holds no random state, so Dask ships it to workers and each worker draws from its own
keystream: noise is fresh per call, independent across cells, chunks, workers and runs. Tests may pass a
deterministic, picklable ``source`` instead.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["CellNoise"]

#: ``source(shape, scale)`` returns int64 draws of that shape for the exact discrete Laplace scale.
NoiseSource = Callable[[tuple[int, ...], Fraction], "NDArray[np.int64]"]


def _discrete_laplace(shape: tuple[int, ...], scale: Fraction) -> NDArray[np.int64]:
    """Exact draws from this process's ChaCha20 source (module level, so a CellNoise pickles)."""
    from privacy_core.dp.noise import discrete_laplace

    return discrete_laplace(scale, shape)


class CellNoise:
    """Integer noise for a block of cell sums: exact discrete Laplace from a cryptographically secure source.

    :param source: ``source(shape, scale) -> int64 array``. None (the only choice for a release) draws exact
        discrete Laplace from the process's ChaCha20 keystream; tests may pass a deterministic, picklable
        function (module level, not a lambda: Dask ships it to its workers).

    >>> from fractions import Fraction
    >>> draws = CellNoise().draw((2, 3), Fraction(255))
    >>> draws.shape, draws.dtype
    ((2, 3), dtype('int64'))
    """

    def __init__(self, source: NoiseSource | None = None) -> None:
        if source is not None and not callable(source):
            raise TypeError(
                f"source: {source!r} is not callable; pass None, or a function (shape, scale) -> int64 array"
            )
        self.source = source

    def __repr__(self) -> str:
        if self.source is None:
            return "CellNoise(discrete Laplace, ChaCha20)"
        name = getattr(self.source, "__qualname__", type(self.source).__qualname__)
        return f"CellNoise(source={getattr(self.source, '__module__', '?')}.{name})"

    @property
    def description(self) -> str:
        """What the lineage record says about the noise source."""
        if self.source is None:
            return "exact discrete Laplace; ChaCha20 keystream keyed from os.urandom per process"
        return f"test source {self!r}"

    def draw(self, shape: tuple[int, ...], scale: Fraction) -> NDArray[np.int64]:
        """Independent integer draws of ``shape`` for the exact discrete Laplace ``scale`` (fresh every call).

        :raises RuntimeError: a test source returned something other than an int64 array of ``shape``.
        """
        import numpy as np

        draws = (self.source or _discrete_laplace)(tuple(shape), scale)
        if not isinstance(draws, np.ndarray) or draws.dtype != np.int64 or draws.shape != tuple(shape):
            got = f"{draws.dtype} {draws.shape}" if isinstance(draws, np.ndarray) else type(draws).__name__
            raise RuntimeError(f"noise source {self!r} returned {got}; it must return int64 of shape {tuple(shape)}")
        return draws
