"""Pixel privacy transforms as Dask array operations: masking, blur, pixelation and DP-Pix.

Each transform has a single-process NumPy/SciPy definition in :mod:`privacy_core.pixels.reference` that it
matches on every chunk layout. Dask, NumPy and SciPy are imported only when a transform runs.
"""

from privacy_core.pixels._blur import gaussian_blur
from privacy_core.pixels._dp_pix import default_value_range, dp_pix, dp_pix_scale, dp_pix_sum_scale
from privacy_core.pixels._mask import mask_regions, stored_mask
from privacy_core.pixels._noise import CellNoise
from privacy_core.pixels._pixelate import pixelate
from privacy_core.pixels.reference import BOUNDARIES, RegionLike

__all__ = [
    "BOUNDARIES",
    "CellNoise",
    "RegionLike",
    "default_value_range",
    "dp_pix",
    "dp_pix_scale",
    "dp_pix_sum_scale",
    "gaussian_blur",
    "mask_regions",
    "pixelate",
    "stored_mask",
]
