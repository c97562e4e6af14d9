"""The reduced in-memory views a registration works on: z-means and a few raw slices, at each modality's own pixel size."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from .._engine.numba import compiled
from .._engine.threads import cores, thread_map
from .._xr import dask_data, plane_grid
from ..errors import DataModelError
from ..grid import Grid
from . import kernels


@dataclass
class View:
    """The reduced view: one moving image and the fixed channels, numpy, with their grids."""

    moving: np.ndarray
    moving_grid: Grid
    fixed: np.ndarray  # (C, H, W)
    fixed_grid: Grid
    description: str
    #: with ``groups``: (moving mean, fixed channel means) of each group of slices, same grids
    groups: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)


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


#: Views of at most this many values (moving and fixed together) are reduced in memory with numpy: a
#: paper-size view (39 slices of 500 x 500 and 4 x 39 of 216 x 352 px) does not pay for a dask graph of
#: a few hundred small tasks (0.3-0.4 s of CPU a view).
IN_MEMORY_VALUES = 32 * 2**20


def _shifted(image: np.ndarray, shift: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """One (y, x) slice shifted back by its drift (px): bilinear, NaN where it leaves the field; float32 (into
    ``out`` when given)."""
    return kernels.shift_bilinear(image, shift, out)


def _shift_slice(block: np.ndarray, shifts: np.ndarray, block_info: Any = None) -> np.ndarray:
    """One (1, y, x) chunk of a stack shifted back by its slice's drift (:func:`_shifted`)."""
    return _shifted(block[0], shifts[block_info[0]["chunk-location"][0]])[None]


def _drift_corrected(m: xr.DataArray, shifts: np.ndarray) -> Any:
    """The stack ``m`` (lazy, ``(z, y, x)``) with each slice shifted back by its drift ``shifts`` (px, one row a
    slice): bilinear, NaN where a slice leaves the field.

    An estimate's view, not data: bilinear interpolation of whole slices (a
    reduced view holds at most ``MAX_PIXELS`` a slice), averaged NaN-aware by
    the caller.  The data path is :func:`pfibsims.resampling.resample` with ``drift=``.
    """
    if not isinstance(m.data, da.Array):  # in memory: the slices on the machine's cores
        stack = np.asarray(m.transpose("z", "y", "x").values)
        out = np.empty(stack.shape, np.float32)
        thread_map(lambda k: _shifted(stack[k], shifts[k], out[k]), range(stack.shape[0]))
        return out
    data = dask_data(m.transpose("z", "y", "x")).rechunk({0: 1, 1: -1, 2: -1})
    return data.map_blocks(_shift_slice, shifts, dtype=np.float32)


def _nanmean(stack: np.ndarray) -> np.ndarray:
    """The mean over the first axis of the finite values (NaN where there are none, without a warning)."""
    ok = np.isfinite(stack)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, stack, 0).sum(axis=0) / ok.sum(axis=0)


def _nanmeans(stack: np.ndarray, groups: list[np.ndarray]) -> list[np.ndarray]:
    """:func:`_nanmean` of an in-memory stack and of each group of its slices (``stack[g]``): compiled, one pass
    over the stack for all of them, column bands on the machine's cores (the same numbers); numpy when the
    kernels are off, the stack is not float32 or the groups are not disjoint runs in increasing order."""
    run_of = np.full(stack.shape[0], -1, np.int64)
    for k, g in enumerate(groups):
        g = np.asarray(g)
        if g.size == 0 or np.any(np.diff(g) <= 0) or np.any(run_of[g] >= 0):
            run_of = None
            break
        run_of[g] = k
    if not compiled() or stack.dtype != np.float32 or run_of is None or stack.ndim < 2:
        return [_nanmean(stack), *[_nanmean(stack[np.asarray(g)]) for g in groups]]
    flat = np.ascontiguousarray(stack).reshape(stack.shape[0], -1)
    total, runs = np.empty(flat.shape[1]), np.empty((len(groups), flat.shape[1]))
    edges = np.linspace(0, flat.shape[1], 4 * cores() + 1).astype(np.int64)
    thread_map(lambda k: kernels.nanmean_band(flat, run_of, edges[k], edges[k + 1], total, runs), range(edges.size - 1))
    return [a.reshape(stack.shape[1:]) for a in (total, *runs)]


def _group_chunks(a: Any, groups: list[np.ndarray]) -> Any:
    """``a`` (a DataArray or a dask stack) chunked along ``z`` as the ``groups`` run (when they are consecutive
    runs covering every slice in order): a group's mean is then one task, not a reduction tree over each of
    its slices, and a chunk holds a group (a few slices), so memory is bounded at any field size."""
    runs = tuple(len(g) for g in groups)
    if not np.array_equal(np.concatenate(groups), np.arange(sum(runs))):
        return a
    if isinstance(a, xr.DataArray):
        return a.chunk({"z": runs}) if isinstance(a.data, da.Array) and a.sizes.get("z") == sum(runs) else a
    return a.rechunk({0: runs}) if isinstance(a, da.Array) and a.shape[0] == sum(runs) else a


def reduced_view(moving: Any, fixed: Any, z: int | None = None, drift: np.ndarray | None = None,
                 groups: list[np.ndarray] | None = None) -> View:
    """The z-mean (or slice ``z``) of each modality at its own pixel size, computed in one pass.

    With ``drift`` (nm, one row per slice) the z-mean is of the drift-corrected
    moving stack (each slice shifted back by its drift, :func:`_drift_corrected`).
    With ``groups`` (slice indices, e.g. consecutive runs) the view also holds
    the mean of each group, both modalities, in the same pass (``View.groups``).
    """
    m = moving_image(moving)
    f = fixed_channels(fixed)
    mg, fg = plane_grid(m, "moving"), plane_grid(fixed, "fixed")
    groups = list(groups) if groups is not None and z is None and "z" in m.dims else []

    def reduce(a: Any, sel: Any = None) -> Any:
        """Slice ``z``, or the mean of the slices ``sel`` (all by default) of a DataArray or a dask stack."""
        if not isinstance(a, xr.DataArray):  # the drift-corrected moving stack
            part = a if sel is None else a[np.asarray(sel)]
            return da.nanmean(part, axis=0) if isinstance(part, da.Array) else _nanmean(part)
        if "z" in a.dims:
            a = a.isel(z=z) if z is not None else (a if sel is None else a.isel(z=np.asarray(sel))).mean("z", skipna=True)
        return a.transpose("y", "x").data

    if z is None and m.size + sum(c.size for c in f) <= IN_MEMORY_VALUES:  # small: numpy from here on (one compute)
        m, *f = dask.compute(m, *f)
    mstack = m if drift is None or z is not None else _drift_corrected(m, drift / np.asarray(mg.spacing))
    if groups:
        mstack, f = _group_chunks(mstack, groups), [_group_chunks(c, groups) for c in f]
    # an in-memory drift-corrected stack: its means in one compiled pass (the groups' with it)
    means = _nanmeans(mstack, groups) if isinstance(mstack, np.ndarray) else None
    parts = [reduce(mstack) if means is None else means[0], *[reduce(c) for c in f]]
    for k, g in enumerate(groups):
        parts += [reduce(mstack, g) if means is None else means[k + 1], *[reduce(c, g) for c in f]]
    mi, *rest = (np.asarray(a, np.float64) for a in dask.compute(*parts))
    n = len(f)
    fi, rest = rest[:n], rest[n:]
    pairs = [(rest[k * (n + 1)], np.stack(rest[k * (n + 1) + 1:(k + 1) * (n + 1)])) for k in range(len(groups))]
    what = "the z-mean" if z is None and "z" in m.dims else (f"slice {z}" if z is not None else "the map")
    if drift is not None and z is None:
        what += " (drift-corrected)"
    if groups:
        what += f" and the means of {len(groups)} groups of {'-'.join(str(k) for k in sorted({len(g) for g in groups}))} slices"
    desc = (
        f"{what} of the moving image ({mg.shape[0]} x {mg.shape[1]} px) and of the {len(f)} fixed channel(s) "
        f"({fg.shape[0]} x {fg.shape[1]} px), each at its own pixel size"
    )
    return View(mi, mg, np.stack(fi), fg, desc, pairs)
