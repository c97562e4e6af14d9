"""Normalisation to [0, 1] and 8-bit, and intensity histograms, over whole volumes.

The two normalisations of Sun et al. (Micron 2024, section 2.3), exactly as
published, plus a robust percentile variant:

* ``"minmax"`` (eq. 1): ``x* = (x - x_min) / (x_max - x_min)``;
* ``"log"`` (eq. 2): ``x* = log10(x) / log10(x_max)`` (note: no ``x_min``;
  counts between 0 and 1 give negative values, counts of 0 are handled by the
  ``zeros=`` policy);
* ``"percentile"``: ``x* = (x - p_low) / (p_high - p_low)`` clipped to [0, 1].

Statistics (``x_min``, ``x_max``, percentiles) ignore NaN (outside the field).
They are computed when :func:`normalize` is called: a reduced result, one
small number per group, in one pass over the data; the normalised volume
itself stays lazy.  (Keeping the statistics lazy would make dask hold every
input chunk in memory until the reduction ends.)
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ._engine import moments as _moments
from ._engine.reduce import Plan, Reduction, block_reduce, evaluate, reduce_blocks
from ._xr import as_dataarray, dequantify, is_intensity, mask_data, warn_infinite
from .dataset import history, record
from .errors import PfibsimsError

__all__ = ["from_uint8", "histogram", "normalize", "to_uint8"]

_METHODS = ("log", "minmax", "percentile")
_ZEROS = ("raise", "nan", "clip")


# -- value ranges and bins (also used by pfibsims.correlate) -----------------
def range_reduction(x: xr.DataArray, mask: da.Array | None = None) -> Reduction:
    """``[min, max]`` of the finite values of ``x`` where ``mask``, as a reduction of the one statistics engine
    (in memory, without dask, when ``x`` and ``mask`` are)."""
    return Reduction(_moments.range_block, (x.data, mask), (2,), _moments.merge_ranges, np.float64)


def infinite_reduction(x: Any, mask: da.Array | None = None) -> Reduction:
    """How many values of ``x`` (a DataArray or an array) are +-inf where ``mask``: a reduction (int64, shape (1,)).

    Evaluated with the pass a statistic makes anyway, it costs no extra read of the data.
    """
    data = x.data if isinstance(x, xr.DataArray) else x
    return Reduction(_moments.infinite_block, (data, mask), (1,), _moments.sum_blocks, np.int64)


def ranges_plan(xs: list[xr.DataArray], mask: da.Array | None, names: list[str], step: str) -> Plan:
    """Finite ``(min, max)`` of each of ``xs`` where ``mask`` as a plan (one pass); the inf values it
    leaves out are counted in the same pass and named in a :class:`~pfibsims.errors.DataWarning`."""
    found = yield [range_reduction(x, mask) for x in xs] + [infinite_reduction(x, mask) for x in xs]
    warn_infinite([int(n[0]) for n in found[len(xs):]], names, step)
    return checked_ranges(found[: len(xs)], names, masked=mask is not None)


def checked_ranges(found: Any, names: list[str], masked: bool = False) -> list[tuple[float, float]]:
    """The ``(min, max)`` found, as floats; an error naming the input that has no finite value (and ``mask``)."""
    for (lo, hi), name in zip(found, names, strict=False):
        if not (math.isfinite(lo) and math.isfinite(hi)):
            if masked:
                raise PfibsimsError(f"mask: expected True at some finite values of {name} to take a range from, found none")
            raise PfibsimsError(f"{name}: expected some finite values to take a range from, found none")
    return [(float(lo), float(hi)) for lo, hi in found]


def value_ranges(xs: list[xr.DataArray], mask: da.Array | None = None,
                 names: list[str] | None = None, step: str = "range") -> list[tuple[float, float]]:
    """Finite ``(min, max)`` of each of ``xs`` where ``mask``, computed together (a reduced result).

    inf values are left out and counted in the same pass; a :class:`~pfibsims.errors.DataWarning`
    names ``step`` and the count.
    """
    names = names or [str(x.name or "data") for x in xs]
    (found,) = evaluate(ranges_plan(xs, mask, names, step))
    return found


def value_range(x: xr.DataArray, mask: da.Array | None = None, name: str = "data", step: str = "range") -> tuple[float, float]:
    """Finite ``(min, max)`` of ``x`` where ``mask``; computed (a reduced result)."""
    return value_ranges([x], mask, [name], step)[0]


def uniform_edges(lo: float, hi: float, bins: int) -> np.ndarray:
    """``numpy.histogram``'s edges for ``bins`` equal bins over ``[lo, hi]`` (widened if ``lo == hi``)."""
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    check_span(lo, hi)
    edges = np.linspace(lo, hi, bins + 1)
    if not bool(np.all(edges[1:] > edges[:-1])):  # as numpy.histogram: "Too many bins for data range"
        raise PfibsimsError(f"bins: {bins} equal bins from {lo:.17g} to {hi:.17g} are narrower than the float64 "
                            f"spacing of values there (some would have no width); give fewer bins or a wider range")
    return edges


def check_span(lo: float, hi: float) -> None:
    """An error if ``hi - lo`` overflows float64 (bins and scales over such a range are inf wide)."""
    if not math.isfinite(hi - lo):
        raise PfibsimsError(f"range: the span from {lo:.6g} to {hi:.6g} overflows float64; give a narrower range "
                            "or scale the data down")


#: Most bins (or joint-histogram cells) a histogram may have: 2^24 int64 counts are 128 MiB.
MAX_BINS = 1 << 24


def check_bins(bins: Any, name: str = "bins", cells: int = 1) -> int:
    """``bins`` as an int from 1 to :data:`MAX_BINS` (divided by ``cells``, the other axes' bins)."""
    limit = MAX_BINS // max(1, cells)
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or not 1 <= bins <= limit:
        raise PfibsimsError(
            f"{name}: expected a positive number of bins such as 256, at most {limit}, got {bins!r:.60}"
        )
    return int(bins)


def check_range(range_: Any, name: str = "range") -> tuple[float, float] | None:
    if range_ is None:
        return None
    try:
        lo, hi = (float(v) for v in range_)
    except (TypeError, ValueError):
        raise PfibsimsError(f"{name}: expected (low, high) numbers, got {range_!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise PfibsimsError(f"{name}: expected finite (low, high) with low < high, got {range_!r}")
    return lo, hi


def bin_coords(edges: np.ndarray, dim: str, units: Any, long_name: str) -> dict[str, tuple]:
    """Bin centre, lower and upper edge coordinates along ``dim``."""
    attrs = {"long_name": long_name}
    if units is not None:
        attrs["units"] = units
    return {
        dim: (dim, 0.5 * (edges[:-1] + edges[1:]), attrs),
        f"{dim}_lower": (dim, edges[:-1], dict(attrs)),
        f"{dim}_upper": (dim, edges[1:], dict(attrs)),
    }


# -- normalize ---------------------------------------------------------------
def _reduce_dims(x: xr.DataArray, over: Any) -> tuple[str, ...]:
    if over is None:
        keep: tuple[str, ...] = ()
    elif isinstance(over, str):
        keep = (over,)
    elif isinstance(over, (tuple, list)) and all(isinstance(d, str) for d in over):
        keep = tuple(over)
    else:
        raise PfibsimsError(f"over: expected None, a dim name such as 'z', or a tuple such as ('y', 'x'), got {over!r}")
    missing = [d for d in keep if d not in x.dims]
    if missing:
        raise PfibsimsError(f"over: expected dims of the data {x.dims}, got {missing}")
    return tuple(d for d in x.dims if d not in keep)


def _percentile_stats(x: xr.DataArray, red: tuple[str, ...], low: float, high: float, max_samples: int) -> tuple[Any, Any]:
    groups = math.prod(x.sizes[d] for d in x.dims if d not in red)
    per_group = math.prod(x.sizes[d] for d in red)
    budget = max(1, max_samples // max(groups, 1))
    step = max(1, math.ceil((per_group / budget) ** (1 / max(len(red), 1)))) if per_group > budget else 1
    sub = x.isel({d: slice(None, None, step) for d in red}).astype(np.float64).compute()
    warn_infinite([int(np.isinf(sub.values).sum())], [str(x.name or "data")], "normalize (in the percentile sample)")
    sub = sub.where(np.isfinite(sub))
    if sub.count() == 0:
        raise PfibsimsError(f"data: {x.name or 'the data'} has no finite values to take percentiles of")
    q = np.nanpercentile(sub.transpose(*[d for d in x.dims if d not in red], *red).values.reshape(
        (*[x.sizes[d] for d in x.dims if d not in red], -1)), [low, high], axis=-1)
    keep = [d for d in x.dims if d not in red]
    coords = {d: x.coords[d] for d in keep if d in x.coords}
    return xr.DataArray(q[0], dims=keep, coords=coords), xr.DataArray(q[1], dims=keep, coords=coords)


def _describe_group(bad: xr.DataArray) -> str:
    if bad.ndim == 0:
        return ""
    idx = np.argwhere(np.asarray(bad.values))
    first = dict(zip(bad.dims, (int(i) for i in idx[0]), strict=False))
    return f" in {idx.shape[0]} group(s) of over=, first at index {first}"


def _negatives_origin(x: xr.DataArray, records: Any) -> str:
    """Where negative values of ``x`` come from, for an error message (counts are never negative)."""
    steps = [h for h in (records or []) if isinstance(h, dict) and h.get("step") in ("resample", "fuse")]
    kernels = {str(h.get("params", {}).get("kernel")) for h in steps} & {"lanczos", "cubic"}
    if kernels:
        found = f"the history holds a resampling with kernel={sorted(kernels)[0]!r}"
    else:
        found = "a resampling with kernel='lanczos' or 'cubic' would make them"
    what = "counts cannot be negative: " if str(x.attrs.get("units", "")) in ("counts", "count") else ""
    return (f"; {what}negative values come from interpolation ringing next to sharp edges ({found}); resample with "
            f"clip=True (the default for channels in counts) or kernel='linear'")


def _normalize_array(x: xr.DataArray, method: str, red: tuple[str, ...], low: float, high: float,
                     zeros: str, max_samples: int, steps: Any = None) -> xr.DataArray:
    name = x.name or "data"
    work = x.astype(np.float64)
    work = work.where(np.isfinite(work))
    if method == "percentile":
        lo, hi = _percentile_stats(x, red, low, high, max_samples)
    else:
        n_inf = reduce_blocks([infinite_reduction(x)], name="pfibsims-infinite")[0]
        lo, hi, n_inf = dask.compute(work.min(red, skipna=True), work.max(red, skipna=True), n_inf) if work.chunks \
            else (work.min(red, skipna=True), work.max(red, skipna=True), n_inf)
        warn_infinite([int(np.asarray(n_inf)[0])], [str(name)], "normalize")
    if bool(np.isnan(hi).any()):
        raise PfibsimsError(f"data: {name} has no finite values{_describe_group(np.isnan(hi))}")
    if method == "log":
        if bool((lo <= 0).any()):
            if zeros == "raise":
                origin = _negatives_origin(x, steps or history(x)) if bool((lo < 0).any()) else ""
                raise PfibsimsError(
                    f"zeros='raise': {name} has values <= 0 (minimum {float(lo.min()):.6g}){_describe_group(lo <= 0)}, "
                    f"whose log10 is undefined; pass zeros='nan' (drop them) or zeros='clip' (count them as 1)"
                    f"{origin}"
                )
            work = work.clip(min=1.0) if zeros == "clip" else work.where(work > 0)
            hi = np.maximum(hi, 1.0) if zeros == "clip" else hi
        if bool((hi <= 1).any()):
            raise PfibsimsError(
                f"data: method='log' needs x_max > 1 (log10 x_max > 0), but {name} has x_max = "
                f"{float(hi.min()):.6g}{_describe_group(hi <= 1)}; use method='minmax' for data below 1"
            )
        out = np.log10(work) / np.log10(hi)
    else:
        if bool((hi <= lo).any()):
            what = "constant" if method == "minmax" else f"equal percentiles {low} and {high}"
            raise PfibsimsError(
                f"data: method={method!r} needs x_max > x_min, but {name} is {what} "
                f"(value {float(lo.where(hi <= lo).min()):.6g}){_describe_group(hi <= lo)}; "
                f"a constant image has no contrast to scale"
            )
        if bool(np.isinf(hi - lo).any()):
            raise PfibsimsError(f"data: {name} spans {float(lo.min()):.6g} to {float(hi.max()):.6g}, which overflows "
                                f"float64{_describe_group(np.isinf(hi - lo))}; scale the data down")
        out = (work - lo) / (hi - lo)
        if method == "percentile":
            out = out.clip(0.0, 1.0)
    out = out.astype(np.float32 if x.dtype == np.float32 else np.float64)
    out = out.drop_vars([c for c in out.coords if c not in x.coords])
    out.attrs = {**x.attrs, "units": "1", "normalization": method}
    out.name = x.name
    return out


def normalize(
    data: xr.DataArray | xr.Dataset,
    *,
    method: str = "log",
    over: Any = None,
    low: float = 1.0,
    high: float = 99.0,
    zeros: str = "raise",
    max_samples: int = 1 << 22,
) -> xr.DataArray | xr.Dataset:
    """Normalise intensities to [0, 1] by eq. 1 (min-max), eq. 2 (log) or percentiles.

    Parameters
    ----------
    data : xarray.DataArray or xarray.Dataset
        Raw intensities (counts); every data variable of a Dataset is
        normalised on its own statistics, but labels (CF ``flag_values``,
        e.g. ``phase``) and masks (bool, e.g. ``coverage``), kept as they are.
    method : {"log", "minmax", "percentile"}
        ``"log"``: ``log10(x) / log10(x_max)`` (eq. 2, the paper's choice);
        ``"minmax"``: ``(x - x_min) / (x_max - x_min)`` (eq. 1);
        ``"percentile"``: ``(x - p_low) / (p_high - p_low)`` clipped to [0, 1].
    over : None, str or tuple of str
        The dims along which the statistics are kept separate, one set of
        statistics per index of these dims, each taken over the remaining
        dims. ``None``: one global ``x_min``/``x_max`` over the whole volume;
        ``"z"``: per slice (statistics over ``y, x`` of each slice);
        ``("y", "x")``: per column (each pixel normalised over its depth).
    low, high : float
        Percentiles (0-100) for ``method="percentile"``.
    zeros : {"raise", "nan", "clip"}
        Values <= 0 under ``method="log"``: ``"raise"`` an error, make them
        ``"nan"``, or ``"clip"`` them to 1 count (log10 1 = 0).
    max_samples : int
        ``method="percentile"`` only: percentiles are exact when the volume
        has at most this many voxels, otherwise taken from a regular strided
        subsample of about this many voxels.

    Returns
    -------
    xarray.DataArray or xarray.Dataset
        Lazy when ``data`` is; float32 for float32 input, float64 otherwise;
        ``units`` ``"1"``; a ``normalize`` history record.

    Raises
    ------
    PfibsimsError
        On an unknown ``method``/``zeros``/``over``, a constant image under
        ``"minmax"``, values <= 0 under ``"log"`` with ``zeros="raise"``,
        ``x_max <= 1`` under ``"log"``, or no finite values.

    Notes
    -----
    ``x_min``/``x_max``/percentiles are computed at call time (NaN ignored):
    one pass, a result of one number per group.

    Negative values under ``"log"`` (with ``zeros="raise"``) are reported
    with their likely origin: counts are never negative, but a Lanczos or
    cubic resampling rings next to sharp edges (the error says so, and
    whether the history holds such a resampling);
    :func:`~pfibsims.resampling.resample` clips count channels at 0 by
    default.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> x = xr.DataArray(np.array([[1.0, 10.0], [100.0, 1000.0]]), dims=("y", "x"))
    >>> normalize(x, method="log").values.round(4).tolist()
    [[0.0, 0.3333], [0.6667, 1.0]]
    >>> normalize(x, method="minmax").values.round(4).tolist()
    [[0.0, 0.009], [0.0991, 1.0]]
    """
    data = dequantify(data, "data")
    if method not in _METHODS:
        raise PfibsimsError(f"method: expected one of {_METHODS}, got {method!r}")
    if zeros not in _ZEROS:
        raise PfibsimsError(f"zeros: expected one of {_ZEROS}, got {zeros!r}")
    numeric = all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in (low, high))
    if method == "percentile" and not (numeric and 0 <= low < high <= 100):
        raise PfibsimsError(f"low, high: expected percentiles with 0 <= low < high <= 100, got {low!r}, {high!r}")
    if isinstance(max_samples, bool) or not isinstance(max_samples, numbers.Integral) or max_samples < 1:
        raise PfibsimsError(f"max_samples: expected a positive number of voxels such as {1 << 22}, got {max_samples!r}")
    params = {"method": method, "over": over, "zeros": zeros}
    if method == "percentile":
        params.update(low=low, high=high)
    if isinstance(data, xr.Dataset):
        out = data.copy()
        for name, var in data.data_vars.items():
            if is_intensity(var) and var.ndim:  # labels (phase) and masks (coverage) are kept as they are
                out[name] = _normalize_array(var, method, _reduce_dims(var, over), low, high, zeros, max_samples,
                                             history(data))
        return record(out, "normalize", **params)
    x = as_dataarray(data, "data")
    return record(_normalize_array(x, method, _reduce_dims(x, over), low, high, zeros, max_samples), "normalize", **params)


# -- 8-bit -------------------------------------------------------------------
def _uint8_one(x: xr.DataArray, range_: tuple[float, float] | None, fill: int) -> xr.DataArray:
    if range_ is None:
        range_ = (0.0, 1.0) if x.attrs.get("units") == "1" else value_range(x, name=str(x.name or "data"))
    lo, hi = range_
    check_span(lo, hi)
    if hi == lo:
        raise PfibsimsError(f"range: {x.name or 'data'} is constant ({lo:.6g}); give range=(low, high) explicitly")
    scale = (hi - lo) / 255.0
    codes = ((x.astype(np.float64) - lo) / scale).round().clip(0, 255)
    codes = codes.fillna(fill).astype(np.uint8)
    codes.attrs = {
        **{k: v for k, v in x.attrs.items() if k != "units"},
        "units": "1",
        "uint8_scale": float(scale),
        "uint8_offset": float(lo),
        "uint8_units": x.attrs.get("units", "1"),
        "uint8_fill": int(fill),
    }
    codes.name = x.name
    return codes


def to_uint8(data: xr.DataArray | xr.Dataset, *, range: Any = None, fill: int = 0) -> xr.DataArray | xr.Dataset:
    """Quantise to 8-bit gray levels 0-255, recording the scaling in attrs.

    ``code = clip(round((x - low) / (high - low) * 255), 0, 255)``; NaN
    becomes ``fill``. The inverse, ``x ~= uint8_offset + uint8_scale * code``
    (to within half a gray level), is stored in the attrs ``uint8_scale``,
    ``uint8_offset`` and ``uint8_units`` and applied by :func:`from_uint8`.

    Parameters
    ----------
    data : xarray.DataArray or xarray.Dataset
        Values to quantise (each data variable of a Dataset on its own, but
        labels and masks, kept as they are).
    range : (low, high), optional
        Values mapped to 0 and 255. By default ``(0, 1)`` for normalised data
        (``units`` ``"1"``, as :func:`normalize` returns), else the data's
        finite minimum and maximum, computed at call time (one pass, two
        numbers).
    fill : int
        Gray level of NaN voxels.

    Returns
    -------
    xarray.DataArray or xarray.Dataset
        ``uint8``, lazy when ``data`` is, with a ``to_uint8`` history record.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> u8 = to_uint8(xr.DataArray(np.array([0.0, 0.5, 1.0, np.nan]), dims="x", attrs={"units": "1"}))
    >>> u8.values.tolist(), round(u8.attrs["uint8_scale"] * 255, 6)
    ([0, 128, 255, 0], 1.0)
    """
    data = dequantify(data, "data")
    rng = check_range(range)
    if not isinstance(fill, (int, np.integer)) or not 0 <= fill <= 255:
        raise PfibsimsError(f"fill: expected a gray level 0-255, got {fill!r}")
    if isinstance(data, xr.Dataset):
        out = data.copy()
        for name, var in data.data_vars.items():
            if is_intensity(var) and var.ndim:  # labels and masks are kept as they are
                out[name] = _uint8_one(var, rng, fill)
        return record(out, "to_uint8", range=rng, fill=fill)
    x = as_dataarray(data, "data")
    return record(_uint8_one(x, rng, fill), "to_uint8", range=rng, fill=fill)


def from_uint8(codes: xr.DataArray) -> xr.DataArray:
    """Undo :func:`to_uint8` (to within half a gray level): ``offset + scale * code``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> x = xr.DataArray(np.array([2.0, 4.0, 6.0]), dims="x", attrs={"units": "counts"})
    >>> back = from_uint8(to_uint8(x))
    >>> back.values.round(1).tolist(), back.attrs["units"]
    ([2.0, 4.0, 6.0], 'counts')
    """
    if not isinstance(codes, xr.DataArray) or "uint8_scale" not in codes.attrs:
        raise PfibsimsError("codes: expected a DataArray made by to_uint8 (with a 'uint8_scale' attr), got none")
    out = codes.attrs["uint8_offset"] + codes.astype(np.float64) * codes.attrs["uint8_scale"]
    out.attrs = {k: v for k, v in codes.attrs.items() if not k.startswith("uint8_")}
    out.attrs["units"] = codes.attrs.get("uint8_units", "1")
    out.name = codes.name
    return out


# -- histogram ---------------------------------------------------------------
def histogram(data: xr.DataArray, *, bins: int = 256, range: Any = None, mask: Any = None) -> xr.DataArray:
    """Counts of voxels per intensity bin, in one lazy pass over the chunks.

    Parameters
    ----------
    data : xarray.DataArray
        Intensities; NaN and inf are not counted.
    bins : int
        Number of equal bins.
    range : (low, high), optional
        Outer edges; values outside are not counted, ``high`` falls in the
        last bin (as ``numpy.histogram``). By default the finite minimum and
        maximum of the (masked) data, computed at call time.
    mask : boolean DataArray or array, optional
        Voxels to count (dims a subset of the data's, broadcast).

    Returns
    -------
    xarray.DataArray
        int64 counts along dim ``bin`` (lazy when ``data`` is), with
        coordinates ``bin`` (centres), ``bin_lower`` and ``bin_upper`` (edges)
        in the data's units.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> h = histogram(xr.DataArray(np.array([0.0, 1, 1, 2, 3, np.nan]), dims="x"), bins=3)
    >>> h.values.tolist(), h.bin_lower.values.tolist()
    ([1, 2, 2], [0.0, 1.0, 2.0])
    """
    x = as_dataarray(data, "data")
    nbins = check_bins(bins)
    m = mask_data(mask, x)
    rng = check_range(range) or value_range(x, m, name=str(x.name or "data"), step="histogram")
    edges = uniform_edges(*rng, nbins)
    counts = block_reduce(  # in memory, without dask, when the data and the mask are
        _moments.histogram_block, [x.data, m], out_shape=(nbins,), merge=_moments.sum_blocks,
        dtype=np.int64, name="pfibsims-histogram", lo=float(edges[0]), hi=float(edges[-1]), bins=nbins,
    )
    if not isinstance(x.data, da.Array) and isinstance(counts, da.Array):  # in memory, a lazy mask: computed
        counts = counts.compute()
    name = str(x.name) if x.name is not None else "data"
    out = xr.DataArray(
        counts, dims=("bin",), coords=bin_coords(edges, "bin", x.attrs.get("units"), name),
        name="count", attrs={"units": "1", "long_name": f"voxels per bin of {name}"},
    )
    return record(out, "histogram", bins=nbins, range=[float(edges[0]), float(edges[-1])], masked=mask is not None)
