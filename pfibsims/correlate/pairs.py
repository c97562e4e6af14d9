"""Two channels on one grid: input checks and the helpers every two-channel statistic shares."""

from __future__ import annotations

import math
import numbers
from typing import Any

import dask.array as da
import numpy as np
import scipy.stats as st
import xarray as xr

from .._engine import moments as _moments
from .._engine.reduce import Reduction, reduce_blocks
from .._xr import as_dataarray, check_same_grid, dask_data, mask_data
from ..errors import PfibsimsError
from ..units import ureg


# -- inputs ------------------------------------------------------------------
def pair_inputs(a: Any, b: Any, mask: Any) -> tuple[xr.DataArray, xr.DataArray, da.Array, da.Array, da.Array | None]:
    xa, xb = as_dataarray(a, "a"), as_dataarray(b, "b")
    check_same_grid(xa, xb)
    m = mask_data(mask, xa)
    return xa, xb, dask_data(xa), dask_data(xb), m


def is_lazy(*xs: xr.DataArray) -> bool:
    return any(isinstance(x.data, da.Array) for x in xs)


def product_units(xa: xr.DataArray, xb: xr.DataArray) -> str | None:
    ua, ub = xa.attrs.get("units"), xb.attrs.get("units")
    if ua is None or ub is None:
        return None
    try:
        return f"{ureg.Unit(ua) * ureg.Unit(ub):~}".strip() or "1"
    except Exception:
        return f"({ua}) * ({ub})"


def name_of(x: xr.DataArray, default: str) -> str:
    return str(x.name) if x.name is not None else default


def moments_reduction(a: da.Array, b: da.Array, m: da.Array | None) -> Reduction:
    """``[n, mean_a, mean_b, M2_a, M2_b, C_ab]`` of the valid pairs, as a reduction of the one engine."""
    return Reduction(_moments.pair_moments_block, (a, b, m), (6,), _moments.merge_moments, np.float64)


def pair_moments(a: da.Array, b: da.Array, m: da.Array | None) -> da.Array:
    """Lazy ``[n, mean_a, mean_b, M2_a, M2_b, C_ab]`` of the valid pairs, one pass."""
    return reduce_blocks([moments_reduction(a, b, m)], name="pfibsims-moments")[0]


def cov_of(m: np.ndarray) -> np.ndarray:
    n = m[..., 0]
    return np.where(n > 1, m[..., 5] / np.where(n > 1, n - 1, 1), np.nan)


def fisher_ci(r: float, n: int, confidence: float, se_factor: float = 1.0) -> tuple[float, float]:
    if n <= 3:
        return -1.0, 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.arctanh(r)
    half = st.norm.ppf(0.5 + confidence / 2) * math.sqrt(se_factor / (n - 3))
    return float(np.tanh(z - half)), float(np.tanh(z + half))


def check_confidence(confidence: Any) -> float:
    if not isinstance(confidence, numbers.Real) or not 0 < confidence < 1:
        raise PfibsimsError(f"confidence: expected a level between 0 and 1 such as 0.95, got {confidence!r}")
    return float(confidence)


def in_memory_view(xs: list[xr.DataArray], max_voxels: int) -> tuple[list[np.ndarray], str, tuple[int, ...]]:
    """In-memory float64 copies, every k-th index along the first dim if larger than ``max_voxels``."""
    x0 = xs[0]
    step = max(1, math.ceil(x0.size / max_voxels)) if x0.ndim > 1 else max(1, math.ceil(x0.size / max_voxels))
    step = min(step, x0.shape[0]) if x0.ndim > 1 else step
    sel = {x0.dims[0]: slice(None, None, step)}
    arrays = [np.asarray(x.isel(sel).data.compute() if isinstance(x.data, da.Array) else x.isel(sel).values,
                         dtype=np.float64) for x in xs]
    view = "all voxels" if step == 1 else f"every {step}th index along {x0.dims[0]} ({arrays[0].size} voxels)"
    return arrays, view, arrays[0].shape


def view_arrays(a: Any, b: Any, mask: Any, max_voxels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, xr.DataArray, xr.DataArray]:
    xa, xb = as_dataarray(a, "a"), as_dataarray(b, "b")
    check_same_grid(xa, xb)
    m = mask_data(mask, xa)
    items = [xa, xb] + ([xr.DataArray(m, dims=xa.dims)] if m is not None else [])
    arrays, view, _ = in_memory_view(items, max_voxels)
    valid = np.isfinite(arrays[0]) & np.isfinite(arrays[1])
    if m is not None:
        valid &= arrays[2].astype(bool)
    return arrays[0], arrays[1], valid, view, xa, xb
