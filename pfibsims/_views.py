"""Block-mean views of large maps, for the steps that estimate (drift, registration).

A view keeps the physical frame: each coordinate is the mean of its block's
centres (nm), so an estimate made on it applies to the full-resolution data.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from dask.array.overlap import ensure_minimum_chunksize

from .grid import Grid

#: Default largest in-plane size (pixels a slice) that an estimate works on.
MAX_PIXELS = 2048 * 2048


def block_factor(ny: int, nx: int, max_pixels: int) -> int:
    """The block side ``f`` for which ``(ny / f) * (nx / f) <= max_pixels`` (1: no reduction)."""
    return max(1, math.ceil(math.sqrt(ny * nx / max_pixels)))


def _owned(chunks: tuple[int, ...], f: int, n: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per chunk along one axis: the offset of its first block start from the chunk start, and its block count.

    A chunk *owns* the full blocks (``f`` pixels, ``f * b + f <= n``) that start inside it.
    """
    starts = np.cumsum((0, *chunks[:-1]))
    first = [(-o) % f for o in starts]
    counts = [len(range(o + s, min(o + c, n - f + 1), f)) for o, c, s in zip(starts, chunks, first, strict=True)]
    return tuple(first), tuple(counts)


def _block_means(block: np.ndarray, *, f: int, axes: tuple[int, int], first: tuple, counts: tuple,
                 block_id: tuple[int, ...] | None = None) -> np.ndarray:
    """Block means (float32) of the blocks one chunk owns; ``block`` carries ``f - 1`` pixels of its next chunk."""
    index = [slice(None)] * block.ndim
    shape = list(block.shape)
    for ax, s, c in zip(axes, first, counts, strict=True):
        k = block_id[ax]
        index[ax] = slice(s[k], s[k] + c[k] * f)
        shape[ax] = c[k]
    part = block[tuple(index)]
    split, reduce_axes = [], []
    for ax, n in enumerate(shape):
        split.append(n)
        if ax in axes:
            split.append(f)
            reduce_axes.append(len(split) - 1)
    return part.reshape(split).mean(axis=tuple(reduce_axes), dtype=np.float64).astype(np.float32)


def _dask_block_mean(data: da.Array, f: int, axes: tuple[int, int]) -> da.Array:
    """Lazy ``f x f`` block means without re-chunking: each chunk reduces the blocks it owns, reading
    only ``f - 1`` pixels of its next chunk along each axis (a one-sided halo)."""
    small = {ax: ensure_minimum_chunksize(f - 1, data.chunks[ax]) for ax in axes if min(data.chunks[ax]) < f - 1}
    if small:  # as map_overlap would do: every chunk at least as large as the halo
        data = data.rechunk(small)
    owned = [_owned(data.chunks[ax], f, data.shape[ax]) for ax in axes]
    depth = {ax: (0, f - 1) for ax in axes}
    chunks = tuple(owned[axes.index(ax)][1] if ax in axes else c for ax, c in enumerate(data.chunks))
    func = partial(_block_means, f=f, axes=axes, first=tuple(o[0] for o in owned), counts=tuple(o[1] for o in owned))
    return da.map_overlap(func, data, depth=depth, boundary="none", trim=False, chunks=chunks, dtype=np.float32)


def _coord_means(c: xr.DataArray, f: int) -> np.ndarray:
    n = c.size // f * f
    return np.asarray(c.values[:n], dtype=np.float64).reshape(-1, f).mean(axis=1)


def block_mean(obj: Any, max_pixels: int = MAX_PIXELS) -> Any:
    """``f x f`` in-plane block means (float32, lazy with dask data) of a DataArray or Dataset with
    ``y`` and ``x``; ``obj`` itself when it has at most ``max_pixels`` pixels a slice.

    Trailing pixels that do not fill a block are dropped; coordinates are block-centre means (nm),
    their ``spacing`` attribute is updated; the attributes of the variables are kept. Dask data are
    reduced chunk by chunk as they are (no re-chunking to multiples of ``f``): each chunk averages
    the blocks that start in it, reading ``f - 1`` pixels of its neighbour.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> a = xr.DataArray(np.arange(16.0).reshape(4, 4), dims=("y", "x"),
    ...                  coords={d: (d, [5.0, 15, 25, 35], {"units": "nm"}) for d in ("y", "x")})
    >>> v = block_mean(a, max_pixels=4)
    >>> v.values.tolist(), v.y.values.tolist()
    ([[2.5, 4.5], [10.5, 12.5]], [10.0, 30.0])
    """
    if not isinstance(obj, (xr.DataArray, xr.Dataset)) or "y" not in obj.dims or "x" not in obj.dims:
        return obj
    ny, nx = obj.sizes["y"], obj.sizes["x"]
    f = block_factor(ny, nx, max_pixels)
    if f == 1:
        return obj
    fy, fx = min(f, ny), min(f, nx)
    if fy != fx:  # a field thinner than a block: plain coarsen
        return _finish(obj, obj.astype(np.float32).coarsen(y=fy, x=fx, boundary="trim").mean(), f)
    coords = {d: (d, _coord_means(obj[d], f)) for d in ("y", "x") if d in obj.coords}

    def reduce(v: xr.DataArray) -> xr.DataArray:
        if "y" not in v.dims or "x" not in v.dims:
            return v
        axes = (v.dims.index("y"), v.dims.index("x"))
        if isinstance(v.data, da.Array):
            data = _dask_block_mean(v.data, f, axes)
        else:
            data = v.coarsen(y=f, x=f, boundary="trim").mean().astype(np.float32).data
        keep = {k: c for k, c in v.coords.items() if "y" not in c.dims and "x" not in c.dims}
        return xr.DataArray(data, dims=v.dims, coords={**keep, **coords}, attrs=v.attrs, name=v.name)

    out = reduce(obj) if isinstance(obj, xr.DataArray) else obj.map(reduce, keep_attrs=True)
    return _finish(obj, out, f)


def _finish(obj: Any, out: Any, f: int) -> Any:
    for d in ("y", "x"):
        spacing = float(Grid.of(obj, dims=(d,)).spacing[0]) * f
        out[d].attrs = {**obj[d].attrs, "spacing": f"{spacing!r} nm"}
    if isinstance(obj, xr.Dataset):
        for name in out.data_vars:
            out[name].attrs = dict(obj[name].attrs)
    out.attrs = dict(obj.attrs)
    return out
