"""The reduced in-memory views a registration works on: z-means and a few raw slices, at each modality's own pixel size."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import dask
import numpy as np
import xarray as xr

from .._xr import plane_grid
from ..errors import DataModelError
from ..grid import Grid
from ..resampling import resample
from ..resampling.drift import compose
from ..transform import Affine

# Final refinement: pooled least-squares prediction ("ncc") over this many
# evenly spaced raw slices at the fixed pixel size, each through its drift;
# used after "mi" only when that prediction explains the moving image at all.
_FINAL_SLICES = 6


@dataclass
class View:
    """The reduced view: one moving image and the fixed channels, numpy, with their grids."""

    moving: np.ndarray
    moving_grid: Grid
    fixed: np.ndarray  # (C, H, W)
    fixed_grid: Grid
    description: str
    # Final refinement data: slices of the moving stack (raw) and of the fixed
    # channels, and each slice's drift translation (None: no drift).
    slice_moving: list = field(default_factory=list)
    slice_fixed: list = field(default_factory=list)
    slice_drift: list = field(default_factory=list)
    slice_index: tuple = ()


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


def final_slices(nz: int) -> list[int]:
    """Evenly spaced slices for the final refinement (at most ``_FINAL_SLICES``)."""
    return sorted({int(round(v)) for v in np.linspace(0, nz - 1, min(nz, _FINAL_SLICES))})


def reduced_view(moving: Any, fixed: Any, z: int | None = None, drift: np.ndarray | None = None,
                  slices: bool = False) -> View:
    """The z-mean (or slice ``z``) of each modality at its own pixel size, computed in one pass.

    With ``drift`` (nm, one row per slice) the z-mean is of the drift-corrected
    moving stack (through :func:`correct_drift`'s resampling, lazily); with
    ``slices`` the same pass also computes the raw slices of
    :func:`final_slices` of both modalities.
    """
    m = moving_image(moving)
    f = fixed_channels(fixed)
    mg, fg = plane_grid(m, "moving"), plane_grid(fixed, "fixed")
    mean_source = m
    if drift is not None:
        mean_source = resample(m, mg, transform=compose(Affine.identity(("y", "x")), drift))

    def reduce(a: xr.DataArray) -> Any:
        if "z" in a.dims:
            a = a.isel(z=z) if z is not None else a.mean("z", skipna=True)
        return a.transpose("y", "x").data

    ks = final_slices(m.sizes["z"]) if slices and "z" in m.dims else []
    extra = [m.isel(z=ks).transpose("z", "y", "x").data] + [c.isel(z=ks).transpose("z", "y", "x").data for c in f]
    mi, *rest = dask.compute(reduce(mean_source), *[reduce(c) for c in f], *(extra if ks else []))
    fi, sl = rest[: len(f)], rest[len(f):]
    what = "the z-mean" if z is None and "z" in m.dims else (f"slice {z}" if z is not None else "the map")
    if drift is not None and z is None:
        what += " (drift-corrected)"
    desc = (
        f"{what} of the moving image ({mg.shape[0]} x {mg.shape[1]} px) and of the {len(f)} fixed channel(s) "
        f"({fg.shape[0]} x {fg.shape[1]} px), each at its own pixel size"
    )
    view = View(np.asarray(mi, np.float64), mg, np.stack([np.asarray(a, np.float64) for a in fi]), fg, desc)
    if ks:
        sm = np.asarray(sl[0], np.float64)
        sf = np.stack([np.asarray(a, np.float64) for a in sl[1:]], axis=1)  # (k, C, H, W)
        view.slice_moving = list(sm)
        view.slice_fixed = list(sf)
        view.slice_drift = [None if drift is None else Affine.translation(tuple(drift[k])) for k in ks]
        view.slice_index = tuple(ks)
        view.description += f"; slices {ks} of both, raw, for the final refinement"
    return view
