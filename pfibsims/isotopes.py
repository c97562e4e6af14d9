"""Isotope ratios of two SIMS count channels.

:func:`isotope_ratio` gives isotope-ratio maps and per-phase ratios with
counting-statistics confidence intervals (exact Clopper-Pearson), optional
dead-time correction and the delta notation against natural abundances
(:mod:`pfibsims._chemistry`). :mod:`pfibsims.quantification` re-exports it.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from scipy.special import betaincinv

from ._chemistry import natural_ratio, nuclide_label
from ._engine.grouped import grouped_moments
from ._xr import as_array, as_counts, check_same_grid, spatial_dims
from .dataset import history, history_attrs, record
from .errors import PfibsimsError
from .segmentation.labels import flags, nonnegative
from .units import parse_quantity

__all__ = ["isotope_ratio"]


def _time_s(value: Any, name: str) -> float:
    t = float(parse_quantity(value, "s", name=name).magnitude)
    if not t > 0:
        raise PfibsimsError(f"{name}: expected a positive time such as '20 ns', got {value!r}")
    return t


def _dead_time_corrected(x: Any, fraction: float) -> Any:
    """Non-paralysable dead time: true counts ``n / (1 - n tau / t)``; NaN where the detector saturates."""
    loss = x * fraction
    return (x / (1.0 - loss)) if not hasattr(loss, "where") else (x / (1.0 - loss)).where(loss < 1)


def _clopper_pearson(k: Any, m: Any, confidence: float) -> tuple[Any, Any]:
    """Exact (Clopper-Pearson) interval of the ratio ``k / m`` of two Poisson counts, given ``k + m``.

    ``k`` of ``k + m`` events are of the first kind: ``p = k / (k + m)`` is
    binomial, its Clopper-Pearson bounds are beta quantiles, and the ratio is
    ``p / (1 - p)``. Real-valued counts (resampled, dead-time corrected) use
    the same beta quantiles.
    """
    alpha = 1.0 - confidence
    k, m = np.asarray(k, dtype=np.float64), np.asarray(m, dtype=np.float64)
    ok = np.isfinite(k) & np.isfinite(m) & (k >= 0) & (m >= 0) & (k + m > 0)
    k1, m1 = np.where(ok, k, 1.0), np.where(ok, m, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = np.where(k1 > 0, betaincinv(np.maximum(k1, 1e-300), m1 + 1, alpha / 2), 0.0)
        hi = np.where(m1 > 0, betaincinv(k1 + 1, np.maximum(m1, 1e-300), 1 - alpha / 2), 1.0)
        r_lo, r_hi = lo / (1 - lo), np.where(hi < 1, hi / (1 - hi), np.inf)
    return np.where(ok, r_lo, np.nan), np.where(ok, r_hi, np.nan)


def _ci_block(a: np.ndarray, b: np.ndarray, *, confidence: float) -> np.ndarray:
    return np.stack(_clopper_pearson(a, b, confidence)).astype(np.float32)


def _isotope_label(x: xr.DataArray) -> str:
    return str(x.attrs.get("isotope") or x.name or "?")


def _natural_ratio(natural: Any, a: xr.DataArray, b: xr.DataArray) -> float | None:
    if natural is None:
        return None
    if isinstance(natural, str) and natural == "auto":  # the isotope attr ('6Li', '12C 15N'), else mass + element
        return natural_ratio(nuclide_label(a.attrs), nuclide_label(b.attrs))
    if isinstance(natural, bool) or not isinstance(natural, numbers.Real) or not 0 < natural < math.inf:
        raise PfibsimsError(f"natural: expected 'auto', None or a positive reference ratio such as 0.0821, got {natural!r}")
    return float(natural)


def isotope_ratio(
    a: xr.DataArray,
    b: xr.DataArray,
    *,
    phases: xr.DataArray | None = None,
    natural: Any = "auto",
    dead_time: Any = None,
    dwell_time: Any = None,
    background: Any = (0.0, 0.0),
    confidence: float = 0.95,
) -> xr.Dataset:
    """Isotope-ratio map ``a / b`` with counting-statistics intervals, per voxel and per phase.

    For isotope-exchange and tracer studies (e.g. 6Li enrichment of LLZO):
    the ratio of two count channels, e.g. ``isotope_ratio(vol.Li6, vol.Li7)``.

    * Dead time (optional, both ``dead_time`` and ``dwell_time`` given): a
      non-paralysable detector loses counts at high rates; the true counts
      are ``n / (1 - n tau / t_dwell)`` (``n`` counts in a pixel dwell
      ``t_dwell``). Voxels where ``n tau / t_dwell >= 1`` (saturated) are NaN.
    * Intervals: exact Clopper-Pearson on the binomial split of ``A + B``
      counts (``A / (A + B)``), transformed to the ratio; counting
      statistics only (no instrumental mass fractionation, which a standard
      of known ratio would calibrate).
    * Delta notation against the reference ratio ``R_ref`` (``natural``):
      ``delta = (R / R_ref - 1) * 1000`` in per mil. ``"auto"`` takes the
      natural abundances of the channels' ``isotope`` (else ``element`` and
      ``mass``) attrs (IUPAC 2009: H, Li, B, C, N, O, Si, S; molecular ions
      too: 12C15N/12C14N is 15N/14N, 16O18O/16O2 twice 18O/16O; an unknown
      element or a mass the table lacks is an error, other elements no delta)
      (6Li 7.59 %, 7Li 92.41 %: 6Li/7Li = 0.08213); note that the lithium
      literature usually reports delta-7Li, of 7Li/6Li.

    Computes: the map is lazy when the inputs are; per-phase totals (with
    ``phases``) are computed now, in one pass of grouped sums.

    Parameters
    ----------
    a, b : xarray.DataArray
        Counts (units ``counts``) on one grid, e.g. ``Li6`` and ``Li7``.
    phases : xarray.DataArray, optional
        Phase labels with CF flags: adds per-phase ratios from the summed
        counts of each phase (voxels where both channels are finite).
    natural : "auto", float or None
        The reference ratio ``a / b`` for the delta values; None: no delta.
    dead_time, dwell_time : time, optional
        E.g. ``"25 ns"`` and ``"1.2 ms"``; a NanoSIMS ``.im`` channel read by
        :func:`pfibsims.read_sims` holds its own in the attrs ``dead_time``
        and ``dwell_time`` (``dead_time_corrected`` says if the file's counts
        are corrected already).
    background : (float, float)
        Counts of ``a`` and ``b`` without the isotopes (detector background),
        subtracted after the dead-time correction; the intervals then treat
        the net counts as counts (a background small next to the signal).
    confidence : float
        Level of the intervals.

    Returns
    -------
    xarray.Dataset
        ``ratio``, ``ratio_low``, ``ratio_high`` (and ``delta``, per mil) on
        the grid; with ``phases``, along ``phase``: ``phase_ratio``,
        ``phase_ratio_low``, ``phase_ratio_high``, ``phase_counts_a``,
        ``phase_counts_b`` (and ``phase_delta``, ``phase_delta_low``,
        ``phase_delta_high``). attrs ``ratio`` (e.g. ``"6Li/7Li"``),
        ``confidence`` (and, when given or known, ``natural_ratio``,
        ``dead_time``, ``dwell_time``).

    Examples
    --------
    >>> import numpy as np
    >>> from pfibsims.dataset import stack
    >>> ds = stack({"Li6": np.full((1, 2, 2), 82.0), "Li7": np.full((1, 2, 2), 1000.0)}, pixel_size="72 nm")
    >>> r = isotope_ratio(ds.Li6, ds.Li7)
    >>> r.attrs["ratio"], round(float(r.ratio[0, 0, 0]), 4), round(float(r.delta[0, 0, 0]), 1)
    ('6Li/7Li', 0.082, -1.6)
    """
    a, b = as_counts(a, "a"), as_counts(b, "b")
    dims = spatial_dims(a, "a")
    check_same_grid(a, b)
    if not isinstance(confidence, numbers.Real) or not 0 < confidence < 1:
        raise PfibsimsError(f"confidence: expected a level between 0 and 1 such as 0.95, got {confidence!r}")
    if (dead_time is None) != (dwell_time is None):
        raise PfibsimsError(f"dead_time, dwell_time: expected both (e.g. '25 ns', '1.2 ms') or neither, got {dead_time!r}, {dwell_time!r}")
    ref = _natural_ratio(natural, a, b)
    try:
        bg_a, bg_b = (float(v) for v in background)
    except (TypeError, ValueError):
        bg_a = bg_b = math.nan
    if not (math.isfinite(bg_a) and math.isfinite(bg_b) and bg_a >= 0 and bg_b >= 0):
        raise PfibsimsError(f"background: expected counts (background_a, background_b) >= 0, got {background!r}")
    xa, xb = a.transpose(*dims).astype(np.float64), b.transpose(*dims).astype(np.float64)
    if dead_time is not None:
        frac = _time_s(dead_time, "dead_time") / _time_s(dwell_time, "dwell_time")
        xa, xb = _dead_time_corrected(xa, frac), _dead_time_corrected(xb, frac)
    xa, xb = xa - bg_a, xb - bg_b
    ratio = (xa / xb.where((xb > 0) & np.isfinite(xa) & np.isfinite(xb))).astype(np.float32)  # inf: no count
    ca, cb = xa.data, xb.data
    if isinstance(ca, da.Array) or isinstance(cb, da.Array):
        ca, cb = da.asarray(ca), da.asarray(cb).rechunk(da.asarray(ca).chunks)
        ci = da.map_blocks(_ci_block, ca, cb, new_axis=0, chunks=((2,), *ca.chunks), dtype=np.float32,
                           meta=np.empty((0,) * (ca.ndim + 1), np.float32), confidence=float(confidence))
    else:
        ci = _ci_block(ca, cb, confidence=float(confidence))
    name = f"{_isotope_label(a)}/{_isotope_label(b)}"
    coords = {k: v for k, v in a.coords.items() if set(v.dims) <= set(dims)}
    out = xr.Dataset(coords=coords)
    out["ratio"] = (dims, ratio.data, {"units": "1", "long_name": f"{name} isotope ratio"})
    out["ratio_low"] = (dims, ci[0], {"units": "1", "long_name": f"lower {confidence:g} bound (Clopper-Pearson)"})
    out["ratio_high"] = (dims, ci[1], {"units": "1", "long_name": f"upper {confidence:g} bound (Clopper-Pearson)"})
    if ref is not None:
        out["delta"] = (dims, ((ratio / ref - 1) * 1000).data, {"units": "permille", "long_name": f"delta {name} vs {ref:.6g}"})
    if phases is not None:
        out = _phase_ratios(out, xa, xb, phases, dims, ref, float(confidence))
    optional = {"natural_ratio": ref, "dead_time": dead_time and str(dead_time), "dwell_time": dwell_time and str(dwell_time)}
    out.attrs = {"ratio": name, "confidence": float(confidence), **{k: v for k, v in optional.items() if v is not None},
                 **history_attrs(history(a))}
    return record(out, "isotope_ratio", natural=ref, dead_time=optional["dead_time"], dwell_time=optional["dwell_time"],
                  background=[bg_a, bg_b], confidence=float(confidence), phases=phases is not None)


def _phase_ratios(out: xr.Dataset, xa: xr.DataArray, xb: xr.DataArray, phases: xr.DataArray, dims: tuple[str, ...],
                  ref: float | None, confidence: float) -> xr.Dataset:
    values, names = flags(phases, "phases")
    check_same_grid(xa, phases, name="phases", ref="a")
    both = np.isfinite(xa) & np.isfinite(xb)
    lab, shifted = nonnegative(as_array(phases.transpose(*dims).data), values)
    lut = np.full(max(shifted) + 1, -1, dtype=np.int64)
    lut[shifted] = np.arange(len(values))
    sums = []
    for x in (xa, xb):
        s = grouped_moments(as_array(x.where(both).transpose(*dims).data), lab, len(values), lut=lut)
        sums.append(np.nan_to_num(s["mean"]) * s["count"])
    lo, hi = _clopper_pearson(sums[0], sums[1], confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(sums[1] > 0, sums[0] / sums[1], np.nan)
    out = out.assign_coords(phase=("phase", names), label=("phase", np.array(values)))
    out["phase_counts_a"] = ("phase", sums[0], {"units": "counts"})
    out["phase_counts_b"] = ("phase", sums[1], {"units": "counts"})
    out["phase_ratio"] = ("phase", r, {"units": "1"})
    out["phase_ratio_low"] = ("phase", lo, {"units": "1"})
    out["phase_ratio_high"] = ("phase", hi, {"units": "1"})
    if ref is not None:
        for key, v in (("phase_delta", r), ("phase_delta_low", lo), ("phase_delta_high", hi)):
            out[key] = ("phase", (v / ref - 1) * 1000, {"units": "permille"})
    return out
