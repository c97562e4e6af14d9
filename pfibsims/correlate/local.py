"""Pearson's r in a moving window, lazily."""

from __future__ import annotations

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


def _local_corr_block(a: np.ndarray, b: np.ndarray, size: tuple[int, ...], min_pairs: int) -> np.ndarray:
    """Pearson r in a ``size`` window around each voxel (windows clipped at the block edge)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    valid = np.isfinite(a) & np.isfinite(b)
    cnt = valid.sum()
    a0 = np.where(valid, a, 0.0)
    b0 = np.where(valid, b, 0.0)
    if cnt:  # shift by the block means: the window's r does not change, its rounding does
        a0 = np.where(valid, a0 - a0.sum() / cnt, 0.0)
        b0 = np.where(valid, b0 - b0.sum() / cnt, 0.0)
    u = partial(ndi.uniform_filter, size=size, mode="constant", cval=0.0)
    w = u(valid.astype(np.float64))
    sa, sb = u(a0), u(b0)
    saa, sbb, sab = u(a0 * a0), u(b0 * b0), u(a0 * b0)
    vol = float(np.prod(size))
    ok = valid & (w * vol > min_pairs - 0.5)
    safe = np.where(ok, w, 1.0)
    ma, mb = sa / safe, sb / safe
    va, vb = saa / safe - ma * ma, sbb / safe - mb * mb
    cab = sab / safe - ma * mb
    tiny_a = 1e-10 * (saa / safe)
    tiny_b = 1e-10 * (sbb / safe)
    ok &= (va > tiny_a) & (vb > tiny_b) & (va > 0) & (vb > 0)
    r = np.full(a.shape, np.nan)
    r[ok] = np.clip(cab[ok] / np.sqrt(va[ok] * vb[ok]), -1.0, 1.0)
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
    # a window wider than an axis is clipped to it: the overlap never exceeds the axis (dask refuses that)
    depth = {i: max(0, min(s // 2, n - 1)) for i, (s, n) in enumerate(zip(size, a_.shape, strict=True))}
    # a chunk must be at least as deep as the overlap
    chunks = tuple(min(max(max(c), s), sum(c)) if min(c) < s // 2 else c
                   for c, s in zip(a_.chunks, size, strict=False))
    if chunks != a_.chunks:
        a_, b_ = a_.rechunk(chunks), b_.rechunk(chunks)
    r = da.map_overlap(
        partial(_local_corr_block, size=size, min_pairs=int(min_pairs)), a_, b_, depth=depth, boundary="none",
        dtype=np.float64, meta=np.empty((0,) * a_.ndim, np.float64),
        name=f"pfibsims-local-correlation-{tokenize(a_, b_, size, min_pairs)}",
    )
    if not is_lazy(xa, xb):
        r = r.compute()
    out = xr.DataArray(r, dims=xa.dims, coords=xa.coords, name=f"r({name_of(xa, 'a')}, {name_of(xb, 'b')})",
                       attrs={"units": "1", "long_name": "local Pearson r", "window": list(size)})
    return record(out, "local_correlation", window=dict(zip(xa.dims, size, strict=False)), min_pairs=int(min_pairs))
