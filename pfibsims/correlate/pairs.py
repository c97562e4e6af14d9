"""Two channels on one grid: input checks and the helpers every two-channel statistic shares."""

from __future__ import annotations

import math
import numbers
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from scipy.special import ndtri

from .._engine import moments as _moments
from .._engine.reduce import Reduction, reduce_blocks
from .._xr import as_dataarray, check_same_grid, dask_data, is_intensity, mask_data
from ..errors import DataModelError, PfibsimsError
from ..units import ureg

__all__ = ["PAPER_PAIR", "channel_pair"]

#: The pair Sun et al. correlate (Fig. 6): SIMS 6Li (or 7Li) against EDS Zr La.
PAPER_PAIR = (("Li6", "Li7"), ("Zr_La",))


def _channels(ds: xr.Dataset) -> list[str]:
    """The data channels of a volume: numeric, spatial, not a label (``flag_values``) nor a mask (bool)."""
    return [str(n) for n, v in ds.data_vars.items() if is_intensity(v) and {"y", "x"} <= set(v.dims)]


def channel_pair(ds: xr.Dataset, channels: Any = None) -> tuple[str, str]:
    """The two channels to correlate in ``ds``: those given, else the paper's pair when present, else a guess.

    Without ``channels``: ``Li6`` (or ``Li7``) against ``Zr_La`` when ``ds``
    holds them (Fig. 6 of the paper); otherwise its first SIMS isotope (a
    channel with an ``isotope`` attr) against its first EDS line (a ``line``
    attr); otherwise its first two data channels. Labels, masks and
    ``coverage`` are never picked.

    Raises
    ------
    DataModelError
        When ``channels`` is not two channels of ``ds``, or ``ds`` has fewer
        than two data channels.

    Examples
    --------
    >>> import numpy as np
    >>> from pfibsims.dataset import stack
    >>> ds = stack({"O18": np.ones((2, 2)), "Fe_Ka": np.ones((2, 2)), "S_Ka": np.ones((2, 2))}, pixel_size="9 nm",
    ...            modality="fused")
    >>> channel_pair(ds), channel_pair(ds, ["S_Ka", "Fe_Ka"])
    (('O18', 'Fe_Ka'), ('S_Ka', 'Fe_Ka'))
    """
    if not isinstance(ds, xr.Dataset):
        raise DataModelError(f"ds: expected a Dataset of channels, got {type(ds).__name__}")
    have = _channels(ds)
    if channels is not None:
        pair = [channels] if isinstance(channels, str) else list(channels)
        if len(pair) != 2 or any(not isinstance(c, str) for c in pair) or pair[0] == pair[1]:
            raise DataModelError(f"channels: expected two different channel names, e.g. ('Li6', 'Zr_La'), got {channels!r}")
        missing = [c for c in pair if c not in have]
        if missing:
            raise DataModelError(f"channels: {missing} not among the channels of the volume {have}")
        return pair[0], pair[1]
    a = next((c for c in PAPER_PAIR[0] if c in have), None)
    b = next((c for c in PAPER_PAIR[1] if c in have), None)
    if a and b:
        return a, b
    sims = [c for c in have if "isotope" in ds[c].attrs]
    eds = [c for c in have if "line" in ds[c].attrs]
    a = a or (sims[0] if sims else None)
    b = b or next((c for c in eds if c != a), None)
    rest = [c for c in have if c not in (a, b)]
    a = a or (rest.pop(0) if rest else None)
    b = b or (rest.pop(0) if rest else None)
    if a is None or b is None:
        raise DataModelError(f"ds: expected two data channels to correlate, found {have}")
    return a, b


# -- inputs ------------------------------------------------------------------
def pair_inputs(a: Any, b: Any, mask: Any) -> tuple[xr.DataArray, xr.DataArray, da.Array, da.Array, da.Array | None]:
    xa, xb = as_dataarray(a, "a"), as_dataarray(b, "b")
    check_same_grid(xa, xb)
    m = mask_data(mask, xa)
    check_selects(mask)
    return xa, xb, dask_data(xa), dask_data(xb), m


def check_selects(mask: Any) -> None:
    """An error naming ``mask`` when it is in memory and all False (a dask mask is not computed here:
    the statistic's own pass finds it, :func:`too_few_pairs`)."""
    data = mask.data if isinstance(mask, xr.DataArray) else mask
    if data is not None and not isinstance(data, da.Array) and not np.any(data):
        raise PfibsimsError(f"mask: expected True where voxels count, got all False ({np.size(data)} voxels): "
                            "no voxel to compute a statistic of")


def too_few_pairs(what: str, n: int, masked: bool, need: int = 3) -> PfibsimsError:
    """The error for ``n < need`` valid pairs; it names ``mask`` when a mask left none."""
    if masked and n == 0:
        return PfibsimsError(f"mask: {what} needs voxels where mask is True and both channels are finite, found none")
    return PfibsimsError(f"a, b: {what} needs at least {need} valid voxel pair{'s' if need > 1 else ''}, found {n}")


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
    half = ndtri(0.5 + confidence / 2) * math.sqrt(se_factor / (n - 3))
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
    check_selects(mask)
    items = [xa, xb] + ([xr.DataArray(m, dims=xa.dims)] if m is not None else [])
    arrays, view, _ = in_memory_view(items, max_voxels)
    valid = np.isfinite(arrays[0]) & np.isfinite(arrays[1])
    if m is not None:
        valid &= arrays[2].astype(bool)
    return arrays[0], arrays[1], valid, view, xa, xb
