"""Pearson's r in a moving window, lazily."""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial
from typing import Any

import dask.array as da
import numpy as np
import scipy.ndimage as ndi
import xarray as xr
from dask.base import tokenize

from .._engine.reduce import aligned
from .._xr import as_dataarray, check_count, check_same_grid, dask_data
from ..dataset import record
from ..errors import GridError, PfibsimsError
from ..units import length_nm
from .pairs import (
    is_lazy,
    name_of,
)


# -- local correlation -------------------------------------------------------
def _window_sizes(x: xr.DataArray, window: Any) -> tuple[int, ...]:
    """Odd window sizes in voxels per dim from a physical window length."""
    if isinstance(window, Mapping):
        per = dict(window)
        unknown = [d for d in per if d not in x.dims]
        if unknown:
            raise PfibsimsError(f"window: expected dims among {x.dims}, got {unknown} (e.g. {{'y': '1 um', 'x': '1 um'}})")
    elif isinstance(window, (tuple, list)):
        if len(window) != x.ndim:
            raise PfibsimsError(f"window: expected one length or {x.ndim} lengths for dims {x.dims}, got {window!r}")
        per = dict(zip(x.dims, window, strict=False))
    else:
        per = dict.fromkeys(x.dims, window)
    sizes = []
    for d in x.dims:
        if d not in per:
            sizes.append(1)
            continue
        w = length_nm(per[d], name="window")
        if w <= 0:
            raise PfibsimsError(f"window: expected a positive length, got {per[d]!r}")
        if x.sizes[d] == 1:  # one slice: every window clipped to it, whatever its spacing
            sizes.append(1)
            continue
        if d not in x.coords or "units" not in x.coords[d].attrs or x.sizes[d] < 2:
            raise GridError(f"{d}: a physical window needs a coordinate with units along {d} (use pfibsims.stack)")
        c = np.asarray(x.coords[d].values, dtype=float) * length_nm(f"1 {x.coords[d].attrs['units']}", name=d)
        spacing = abs(c[-1] - c[0]) / (c.size - 1)
        n = max(1, int(round(w / spacing)))
        sizes.append(n if n % 2 else n + 1)
    return tuple(sizes)


#: Most re-centred passes of a block (one per intensity level of the windows whose rounding was too coarse).
_MAX_SHIFTS = 16


def _window_moments(a: np.ndarray, b: np.ndarray, valid: np.ndarray, safe: np.ndarray, shift: tuple[float, float],
                    u: Any) -> tuple[np.ndarray, ...]:
    """Window means (absolute), variances and covariance of ``a``, ``b`` summed about ``shift``, and where they
    are resolved: the variances above 1e-10 of the mean square about ``shift`` (rounding is ~1e-14 of it)."""
    a0 = np.where(valid, a - shift[0], 0.0)
    b0 = np.where(valid, b - shift[1], 0.0)
    sa, sb = u(a0), u(b0)
    saa, sbb, sab = u(a0 * a0), u(b0 * b0), u(a0 * b0)
    ma, mb = sa / safe, sb / safe
    va, vb = saa / safe - ma * ma, sbb / safe - mb * mb
    cab = sab / safe - ma * mb
    resolved = (va > 1e-7 * (saa / safe)) & (vb > 1e-7 * (sbb / safe)) & (va > 0) & (vb > 0)
    return ma + shift[0], mb + shift[1], va, vb, cab, resolved


def _direct_mean(x: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """``uniform_filter`` by direct sums (``correlate1d`` per axis): each window's rounding depends on its own
    values only, not, as in a running sum, on the values earlier along the line."""
    for axis, s in enumerate(size):
        if s > 1:
            x = ndi.correlate1d(x, np.full(s, 1.0 / s), axis=axis, mode="constant", cval=0.0)
    return x


def _varies(x: np.ndarray, valid: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """Where the valid values of ``x`` in the window are not all equal (exact: window minimum < maximum)."""
    hi = ndi.maximum_filter(np.where(valid, x, -np.inf), size=size, mode="constant", cval=-np.inf)
    lo = ndi.minimum_filter(np.where(valid, x, np.inf), size=size, mode="constant", cval=np.inf)
    return lo < hi


def _local_corr_block(a: np.ndarray, b: np.ndarray, size: tuple[int, ...], min_pairs: int) -> np.ndarray:
    """Pearson r in a ``size`` window around each voxel (windows clipped at the block edge).

    Sums are taken about the block means; a window far from them (next to a large step in intensity) loses
    its variance to rounding, so windows left unresolved are summed again about their own means, a level at a
    time. Windows whose values are all equal (exactly) stay NaN.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    valid = np.isfinite(a) & np.isfinite(b)
    cnt = valid.sum()
    shift = (float(np.where(valid, a, 0.0).sum() / cnt), float(np.where(valid, b, 0.0).sum() / cnt)) if cnt \
        else (0.0, 0.0)
    u = partial(ndi.uniform_filter, size=size, mode="constant", cval=0.0)
    w = u(valid.astype(np.float64))
    ok = valid & (w * float(math.prod(size)) > min_pairs - 0.5)  # a Python int: np.prod overflows int64
    safe = np.where(ok, w, 1.0)
    r = np.full(a.shape, np.nan)
    todo = ok
    for k in range(_MAX_SHIFTS):
        ma, mb, va, vb, cab, resolved = _window_moments(a, b, valid, safe, shift, u)
        done = todo & resolved
        r[done] = np.clip(cab[done] / np.sqrt(va[done] * vb[done]), -1.0, 1.0)
        todo = todo & ~resolved
        if k == 0 and todo.any():  # constant windows are undefined, not unresolved
            todo &= _varies(a, valid, size) & _varies(b, valid, size)
        if not todo.any():
            break
        i = int(np.argmax(todo))  # the first unresolved window: its own means
        shift = (float(ma.flat[i]), float(mb.flat[i]))
        u = partial(_direct_mean, size=size)
    return r


def local_correlation(a: Any, b: Any, *, window: Any = "1 um", min_pairs: int = 3) -> xr.DataArray:
    """Pearson r in a moving window: a lazy map of where two channels co-vary.

    Parameters
    ----------
    a, b : xarray.DataArray
        Channels on one grid, with coordinates in length units.
    window : length, sequence of lengths or mapping dim -> length
        Window edge length, ``"1 um"`` on every axis by default; each axis
        gets the odd number of voxels nearest to it (at least 1, so a window
        thinner than the slice spacing stays in-plane). A mapping names the
        dims to window over (others get 1 voxel).
    min_pairs : int
        Fewer valid pairs in a window give NaN.

    Returns
    -------
    xarray.DataArray
        float64 r in [-1, 1], lazy (``map_overlap`` of box filters of the
        sums); NaN where either channel is NaN, the window has fewer than
        ``min_pairs`` valid pairs, or a channel is constant in it. Windows
        are clipped at the volume's edges. attrs ``window`` (voxels per dim).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> x = xr.DataArray(np.arange(5.0), dims="x", coords={"x": ("x", np.arange(5.0), {"units": "nm"})})
    >>> local_correlation(x, -x, window="3 nm").values.tolist()
    [nan, -1.0, -1.0, -1.0, nan]
    """
    xa, xb = as_dataarray(a, "a"), as_dataarray(b, "b")
    check_same_grid(xa, xb)
    min_pairs = check_count(min_pairs, "min_pairs", minimum=2, example=3)
    size = _window_sizes(xa, window)
    a_, b_ = aligned(dask_data(xa), dask_data(xb))
    # a window of 2n - 1 voxels reaches the whole axis from every voxel: wider ones give the same r (clipped at
    # the edges), computed with that size (box filters as long as the window itself were minutes at "1 m")
    reach = tuple(min(s, 2 * n - 1) for s, n in zip(size, a_.shape, strict=True))
    # a window wider than an axis is clipped to it: the overlap never exceeds the axis (dask refuses that)
    depth = {i: max(0, min(s // 2, n - 1)) for i, (s, n) in enumerate(zip(reach, a_.shape, strict=True))}
    # a chunk must be at least as deep as the overlap
    chunks = tuple(min(max(max(c), s), sum(c)) if min(c) < s // 2 else c
                   for c, s in zip(a_.chunks, reach, strict=False))
    if chunks != a_.chunks:
        a_, b_ = a_.rechunk(chunks), b_.rechunk(chunks)
    r = da.map_overlap(
        partial(_local_corr_block, size=reach, min_pairs=int(min_pairs)), a_, b_, depth=depth, boundary="none",
        dtype=np.float64, meta=np.empty((0,) * a_.ndim, np.float64),
        name=f"pfibsims-local-correlation-{tokenize(a_, b_, reach, min_pairs)}",
    )
    if not is_lazy(xa, xb):
        r = r.compute()
    out = xr.DataArray(r, dims=xa.dims, coords=xa.coords, name=f"r({name_of(xa, 'a')}, {name_of(xb, 'b')})",
                       attrs={"units": "1", "long_name": "local Pearson r", "window": list(size)})
    return record(out, "local_correlation", window=dict(zip(xa.dims, size, strict=False)), min_pairs=int(min_pairs))
