"""Imaging: DICOM series to volumes (:mod:`.series`) and volumes to OME-Zarr arrays (:mod:`.zarr_store`).

The modules import pydicom, numpy, zarr and dask inside their functions, so importing this package is cheap.
"""
