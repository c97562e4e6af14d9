"""The reduced in-memory views a registration works on: z-means and a few raw slices, at each modality's own pixel size."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
import scipy.ndimage as ndi
import xarray as xr

from .._xr import dask_data, plane_grid
from ..errors import DataModelError
from ..grid import Grid


@dataclass
class View:
    """The reduced view: one moving image and the fixed channels, numpy, with their grids."""

    moving: np.ndarray
    moving_grid: Grid
    fixed: np.ndarray  # (C, H, W)
    fixed_grid: Grid
    description: str


def moving_image(moving: Any) -> xr.DataArray:
    """One moving image: a DataArray, or the sum of a Dataset's channels each divided by its mean."""
    if isinstance(moving, xr.DataArray):
        return moving
    if isinstance(moving, xr.Dataset):
        if not moving.data_vars:
            raise DataModelError("moving: expected at least one channel, got an empty Dataset")
        parts = [v / v.mean() for v in moving.data_vars.values()]
        return functools.reduce(lambda a, b: a + b, parts) if len(parts) > 1 else moving[next(iter(moving.data_vars))]
    raise DataModelError(f"moving: expected an xarray DataArray or Dataset, got {type(moving).__name__}")


def fixed_channels(fixed: Any) -> list[xr.DataArray]:
    if isinstance(fixed, xr.DataArray):
        return [fixed]
    if isinstance(fixed, xr.Dataset):
        chans = [v for v in fixed.data_vars.values() if {"y", "x"} <= set(v.dims)]
        if not chans:
            raise DataModelError(f"fixed: expected channels with dims (y, x), got {list(fixed.data_vars)}")
        return chans
    raise DataModelError(f"fixed: expected an xarray DataArray or Dataset, got {type(fixed).__name__}")


def _shift_slice(block: np.ndarray, shifts: np.ndarray, block_info: Any = None) -> np.ndarray:
    """One (1, y, x) slice shifted back by its drift (px): bilinear, NaN where it leaves the field."""
    k = block_info[0]["chunk-location"][0]
    out = ndi.shift(np.asarray(block[0], np.float64), -shifts[k], order=1, mode="constant", cval=np.nan)
    return out[None].astype(np.float32)


def _drift_mean(m: xr.DataArray, shifts: np.ndarray) -> Any:
    """The z-mean (lazy) of ``m`` with each slice shifted back by its drift ``shifts`` (px, one row a slice).

    An estimate's view, not data: bilinear interpolation of whole slices (a
    reduced view holds at most ``MAX_PIXELS`` a slice), NaN-aware mean.  The
    data path is :func:`pfibsims.resampling.resample` with ``drift=``.
    """
    data = dask_data(m.transpose("z", "y", "x")).rechunk({0: 1, 1: -1, 2: -1})
    shifted = data.map_blocks(_shift_slice, shifts, dtype=np.float32)
    return da.nanmean(shifted, axis=0)


def reduced_view(moving: Any, fixed: Any, z: int | None = None, drift: np.ndarray | None = None) -> View:
    """The z-mean (or slice ``z``) of each modality at its own pixel size, computed in one pass.

    With ``drift`` (nm, one row per slice) the z-mean is of the drift-corrected
    moving stack (each slice shifted back by its drift, :func:`_drift_mean`).
    """
    m = moving_image(moving)
    f = fixed_channels(fixed)
    mg, fg = plane_grid(m, "moving"), plane_grid(fixed, "fixed")

    def reduce(a: xr.DataArray) -> Any:
        if "z" in a.dims:
            a = a.isel(z=z) if z is not None else a.mean("z", skipna=True)
        return a.transpose("y", "x").data

    mean = reduce(m) if drift is None or z is not None else _drift_mean(m, drift / np.asarray(mg.spacing))

    mi, *fi = dask.compute(mean, *[reduce(c) for c in f])
    what = "the z-mean" if z is None and "z" in m.dims else (f"slice {z}" if z is not None else "the map")
    if drift is not None and z is None:
        what += " (drift-corrected)"
    desc = (
        f"{what} of the moving image ({mg.shape[0]} x {mg.shape[1]} px) and of the {len(f)} fixed channel(s) "
        f"({fg.shape[0]} x {fg.shape[1]} px), each at its own pixel size"
    )
    return View(np.asarray(mi, np.float64), mg, np.stack([np.asarray(a, np.float64) for a in fi]), fg, desc)
