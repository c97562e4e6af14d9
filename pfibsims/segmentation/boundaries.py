"""A channel versus distance from a phase boundary, and the depth of a surface depletion."""

from __future__ import annotations

import inspect
import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import dask.array as darr
import numpy as np
import xarray as xr
from scipy.optimize import curve_fit

from .._engine.grouped import grouped_plan
from .._engine.reduce import Plan, evaluate
from .._xr import as_array, ascending, check_real, check_same_grid, spacing_nm, spatial_dims
from ..dataset import history, history_attrs, record
from ..errors import DataModelError, EstimationWarning, PfibsimsError
from ..normalization import check_bins
from ..units import LENGTH_UNIT, length_nm, lengths_nm
from .distance import signed_distance
from .labels import phase_value
from .statistics import QUANTILES, stats_vars


# -- profiles versus distance from a boundary -------------------------------------------
def _bin_block(dist: np.ndarray, *, lo: float, width: float, n: int) -> np.ndarray:
    """Distance bin of every voxel (-1: outside the range), in the smallest integer type that holds ``n``."""
    k = np.floor((np.asarray(dist) - lo) / width)
    ok = np.isfinite(k) & (k >= 0) & (k < n)
    return np.where(ok, k, -1).astype(np.min_scalar_type(-max(n, 1)))


#: Most distance bins of a boundary profile.
MAX_BINS = 1 << 20


def _bins(bins: Any, lo: float, hi: float) -> tuple[float, int]:
    if isinstance(bins, numbers.Integral) and not isinstance(bins, bool):
        if not 1 <= bins <= MAX_BINS:
            raise PfibsimsError(f"bins: expected a positive number of bins (at most {MAX_BINS}) or a bin width such as '20 nm', got {bins}")
        return (hi - lo) / int(bins), int(bins)
    width = length_nm(bins, name="bins")
    if not width > 0 or (hi - lo) / width > MAX_BINS:
        raise PfibsimsError(f"bins: expected a positive bin width giving at most {MAX_BINS} bins over "
                            f"{hi - lo:.6g} nm, got {bins!r}")
    if width > (hi - lo) * (1 + 1e-12):  # one bin would reach past the distances asked for
        raise PfibsimsError(f"bins: expected a bin width at most the span of distances, {hi - lo:.6g} nm (from "
                            f"{lo:.6g} to {hi:.6g} nm), got {bins!r} ({width:.6g} nm); give a narrower width or a number of bins")
    return width, max(1, round((hi - lo) / width))


def boundary_profile(
    da: xr.DataArray,
    labels: xr.DataArray,
    phase: Any,
    *,
    distances: Sequence[Any] = ("-0.5 um", "1 um"),
    bins: Any = "20 nm",
    mask: xr.DataArray | None = None,
    hist_bins: int = 1024,
    distance: xr.DataArray | None = None,
) -> xr.Dataset:
    """A channel's mean, spread and count versus signed distance from a phase boundary.

    The signed distance of a voxel is the Euclidean distance, in nm, from its
    centre to the nearest centre of a voxel face shared by the phase and
    another phase (so a voxel next to a flat boundary is half a spacing from
    it), negative inside the phase. It comes from
    :func:`scipy.ndimage.distance_transform_edt` with ``sampling=`` the
    physical voxel size (anisotropic voxels, e.g. 60 x 81.4 x 81.4 nm, are
    honoured) on a grid refined twice per axis. On dask arrays it is computed
    chunk by chunk with :func:`dask.array.map_overlap`, each chunk extended
    by at least the largest ``|distance|`` plus a bin (so distances in range
    are exact); the volume border is not a boundary (the phase is not assumed
    to continue or stop beyond it), so voxels near the border may lie
    farther from the true surface than measured. Measured, uneven slice
    depths (``z`` increasing in unequal steps) are taken at their median
    step along ``z``, as :func:`classify_phases` smooths them: the distances
    across slices are then approximate, those in-plane exact.

    Computes: two streaming passes (per-bin moments, then per-bin histograms
    for median and quartiles; see :func:`phase_statistics`).

    Parameters
    ----------
    da : xarray.DataArray
        The channel (e.g. Li counts, or Li in atomic percent from
        :func:`pfibsims.quantify`); non-finite voxels (outside the SIMS
        field, or a phase that is not quantified) are left out.
    labels : xarray.DataArray
        Phase labels with CF flags, on the grid of ``da``.
    phase : str or int
        The phase whose boundary is measured from, e.g. ``"LLZTO"``.
    distances : (length, length)
        The range of signed distance, e.g. ``("-0.5 um", "1 um")``: negative
        inside the phase.
    bins : length or int
        Bin width (``"20 nm"``, at most the span of ``distances``) or number
        of bins over ``distances``.
    mask : xarray.DataArray of bool, optional
        Only voxels where True count (e.g. the SIMS coverage); the distance
        is still measured in the whole volume.
    hist_bins : int
        Histogram bins per distance bin for median and quartiles (distance
        bins x ``hist_bins`` at most 2^24).
    distance : xarray.DataArray, optional
        The signed distance already computed by :func:`boundary_distance`
        (for the same phase, reaching at least as far), e.g. once for the
        profiles of several channels; default computed here.

    Returns
    -------
    xarray.Dataset
        Along ``distance`` (bin centres, nm): ``mean``, ``std``, ``sem``
        (std / sqrt(count)), ``count``, ``min``, ``q25``, ``median``, ``q75``,
        ``max``; coordinates ``distance_lower`` and ``distance_upper`` (bin
        edges, nm); attrs ``phase`` and ``sign`` ("negative inside the phase").

    Raises
    ------
    DataModelError
        On an unknown phase, or labels without flags.
    GridError
        When ``labels`` or ``mask`` is not on the grid of the data.
    UnitsError
        When ``distances`` or ``bins`` are not lengths.
    PfibsimsError
        When the distance range is empty.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from pfibsims.dataset import stack
    >>> x = np.arange(10) * 100.0 + 50          # nm; the phase fills x < 500
    >>> ds = stack({"Li6": np.tile(x, (1, 3, 1))}, pixel_size="100 nm")
    >>> lab = (ds.Li6 < 500).astype(np.uint8)
    >>> lab.attrs.update(flag_values=[0, 1], flag_meanings="matrix LLZTO")
    >>> p = boundary_profile(ds.Li6, lab, "LLZTO", distances=("-200 nm", "200 nm"), bins="100 nm")
    >>> p.distance.values.tolist(), p["mean"].values.tolist()
    ([-150.0, -50.0, 50.0, 150.0], [350.0, 450.0, 550.0, 650.0])
    """
    (out,) = evaluate(_checked_plan(da, labels, phase, distances, bins, mask, hist_bins, distance))
    return out


def boundary_distance(labels: xr.DataArray, phase: Any, *, distances: Sequence[Any] = ("-0.5 um", "1 um"),
                      bins: Any = "20 nm") -> xr.DataArray:
    """The signed distance (nm) from the boundary of ``phase`` that :func:`boundary_profile` bins, lazy as ``labels``.

    Compute it once (and persist it, if it fits in memory) to profile
    several channels from one distance transform: pass it as
    ``boundary_profile(..., distance=)`` with the same ``distances`` and
    ``bins`` (or a narrower range). Exact up to the reach the profile needs,
    the largest ``|distance|`` plus a bin; ``+/-inf`` beyond (attr
    ``reach_nm``). Uneven slice depths: as :func:`boundary_profile`.

    Examples
    --------
    >>> import numpy as np
    >>> from pfibsims.dataset import stack
    >>> lab = stack({"p": (np.arange(6) < 2).astype(np.uint8)[None, None]}, pixel_size="100 nm", modality="EDS").p
    >>> lab.attrs.update(flag_values=[0, 1], flag_meanings="matrix LLZTO")
    >>> boundary_distance(lab, "LLZTO", distances=("-200 nm", "200 nm"), bins="100 nm").values.ravel().tolist()
    [-150.0, -50.0, 50.0, 150.0, 250.0, inf]
    """
    dims = spatial_dims(labels, "labels")
    value, name = phase_value(labels, phase)
    lo, hi, width, _ = _range(distances, bins)
    reach = max(abs(lo), abs(hi)) + width
    given = labels
    labels, flipped = ascending(labels)  # a decreasing axis: measured ascending, returned in the input's order
    dist = signed_distance(as_array(labels.transpose(*dims).data) == value, sampling=spacing_nm(labels, "labels", uneven_z="median"), reach=reach)
    if flipped:
        dist = dist[tuple(slice(None, None, -1) if d in flipped else slice(None) for d in dims)]
    coords = {k: v for k, v in given.coords.items() if set(v.dims) <= set(dims)}
    return xr.DataArray(dist, dims=dims, coords=coords, name="distance",
                        attrs={"units": LENGTH_UNIT, "phase": name, "reach_nm": reach, "sign": "negative inside the phase"})


def _range(distances: Sequence[Any], bins: Any) -> tuple[float, float, float, int]:
    """``lo``, ``hi`` (nm, ``hi`` on the last bin edge), bin width (nm) and number of bins."""
    lo, hi = lengths_nm(distances, 2, name="distances")
    if not hi > lo:
        raise PfibsimsError(f"distances: expected (lower, upper) with lower < upper, got {distances!r}")
    width, n = _bins(bins, lo, hi)
    return lo, lo + n * width, width, n


def boundary_profile_plan(da: xr.DataArray, labels: xr.DataArray, phase: Any, **options: Any) -> Plan:
    """:func:`boundary_profile` as a plan of :func:`pfibsims._engine.reduce.evaluate` (two passes).

    ``options`` are those of :func:`boundary_profile`.  The inputs are
    checked and the distance graph is built at once; the passes run when the
    plan is evaluated, together with other plans.
    """
    args = inspect.signature(boundary_profile).bind(da, labels, phase, **options)
    args.apply_defaults()
    return _checked_plan(*args.arguments.values())


def _sorted(obj: Any, name: str) -> xr.DataArray:
    """``obj`` (checked spatial) with every decreasing axis reversed (:func:`ascending`)."""
    spatial_dims(obj, name)
    return ascending(obj)[0]


def _checked_plan(da, labels, phase, distances, bins, mask, hist_bins, distance=None) -> Plan:
    dims = spatial_dims(da, "da")
    # a decreasing axis: every input taken ascending (the profile does not depend on order)
    da, labels = _sorted(da, "da"), _sorted(labels, "labels")
    mask = None if mask is None else _sorted(mask, "mask")
    distance = None if distance is None or not isinstance(distance, xr.DataArray) else ascending(distance)[0]
    check_real(da, "da")
    value, name = phase_value(labels, phase)
    spacing = spacing_nm(da, "da", uneven_z="median")  # the grid of the data (no empty axis) before comparing
    check_same_grid(da, labels, name="labels", ref="the data")
    lo, hi, width, n = _range(distances, bins)
    hist_bins = check_bins(hist_bins, "hist_bins", cells=n)  # a histogram per distance bin
    if distance is None:
        distance = boundary_distance(labels, phase, distances=distances, bins=bins)
    elif not isinstance(distance, xr.DataArray) or distance.attrs.get("phase") != name or \
            not float(distance.attrs.get("reach_nm", -1)) >= max(abs(lo), abs(hi)) + width:
        raise PfibsimsError(f"distance: expected boundary_distance(labels, {name!r}) reaching at least "
                            f"{max(abs(lo), abs(hi)) + width:g} nm, got "
                            f"{getattr(distance, 'attrs', {}).get('phase')!r} reaching "
                            f"{getattr(distance, 'attrs', {}).get('reach_nm')!r} nm")
    check_same_grid(da, distance, name="distance", ref="the data")
    dist = as_array(distance.transpose(*dims).data)
    if isinstance(dist, darr.Array):
        groups = darr.map_blocks(_bin_block, dist, dtype=np.min_scalar_type(-max(n, 1)), lo=lo, width=width, n=n)
    else:
        groups = _bin_block(dist, lo=lo, width=width, n=n)
    values = as_array(da.transpose(*dims).data)
    if mask is not None:
        spatial_dims(mask, "mask")
        if mask.dtype.kind not in "biu":
            raise PfibsimsError(f"mask: expected booleans (True where a voxel counts), got dtype {mask.dtype}; "
                                "give e.g. ds.coverage or a comparison such as ds.Li6 > 0")
        check_same_grid(da, mask, name="mask", ref="the data")
        m = as_array(mask.transpose(*dims).data)
        groups = darr.where(m, groups, -1) if isinstance(groups, darr.Array) or isinstance(m, darr.Array) else np.where(m, groups, -1)
    return _profile_plan(da, values, groups, n, int(hist_bins), name, lo, hi, width, spacing)


def _profile_plan(da, values, groups, n, hist_bins, name, lo, hi, width, spacing) -> Plan:
    stats = yield from grouped_plan(values, groups, n, bins=hist_bins, quantiles=QUANTILES)
    edges = lo + width * np.arange(n + 1)
    data_vars = stats_vars(stats, "distance", da.attrs.get("units"))
    data_vars["sem"] = ("distance", stats["std"] / np.sqrt(np.maximum(stats["count"], 1)), data_vars["mean"][2])
    out = xr.Dataset(
        data_vars,
        coords={
            "distance": ("distance", (edges[:-1] + edges[1:]) / 2, {"units": LENGTH_UNIT}),
            "distance_lower": ("distance", edges[:-1], {"units": LENGTH_UNIT}),
            "distance_upper": ("distance", edges[1:], {"units": LENGTH_UNIT}),
        },
        attrs={
            "phase": name,
            "channel": str(da.name),
            "sign": "negative inside the phase",
            **history_attrs(history(da)),
        },
    )
    out = out[["mean", "std", "sem", "count", "min", "q25", "median", "q75", "max"]]
    return record(
        out,
        "boundary_profile",
        phase=name,
        distances=[f"{lo:.6g} nm", f"{hi:.6g} nm"],
        bin_width=f"{width:.6g} nm",
        spacing=[f"{s:.6g} nm" for s in spacing],
    )


# -- depletion depth ----------------------------------------------------------------------
def _ramp_mean(a: np.ndarray, b: np.ndarray, depth: float) -> np.ndarray:
    """Mean of ``min(d / depth, 1)`` over each depth interval ``[a, b]`` (nm)."""
    a, b, depth = np.maximum(a, 0.0), np.maximum(b, 1e-9), max(abs(depth), 1e-9)
    lo, hi = np.minimum(a, depth), np.minimum(b, depth)
    integral = (hi**2 - lo**2) / (2 * depth) + (b - np.maximum(a, depth)).clip(0)
    return integral / np.maximum(b - a, 1e-9)


def _exp_mean(a: np.ndarray, b: np.ndarray, depth: float) -> np.ndarray:
    """Mean of ``1 - exp(-d / depth)`` over each depth interval ``[a, b]`` (nm)."""
    a, b, depth = np.maximum(a, 0.0), np.maximum(b, 1e-9), max(abs(depth), 1e-9)
    return 1 - depth * (np.exp(-a / depth) - np.exp(-b / depth)) / np.maximum(b - a, 1e-9)


_MODELS = {"ramp": _ramp_mean, "exponential": _exp_mean}


#: A depletion is significant when bulk and surface differ by more than this many standard errors of the fit
#: (the weighted least squares' covariance, scaled by the residuals).
MIN_STEP_SE = 3.0


def depletion_depth(profile: xr.Dataset, *, model: str = "ramp", exclude: Any = "0 nm") -> xr.Dataset:
    """The depth of a surface depletion (or enrichment) fitted to a :func:`boundary_profile`.

    Only the bins inside the phase (``distance < 0``, and wholly:
    ``distance_upper <= 0``) are used; depth is
    ``d = -distance`` (nm). The value is modelled as rising from the surface
    value ``S`` to the bulk value ``B``:

    * ``"ramp"`` (default): linearly, reaching ``B`` at the depletion depth
      ``delta`` and constant beyond, ``S + (B - S) * min(d / delta, 1)``.
      This is how :func:`pfibsims.synthetic.cathode` sets its
      ``depletion_depth`` (the thickness of the depleted layer of LLZTO);
    * ``"exponential"``: ``B - (B - S) * exp(-d / delta)``; ``delta`` is the
      e-folding length (the value has recovered 63 % of the way at ``delta``).

    ``S``, ``B`` and ``delta`` are fitted by weighted least squares (weights
    ``count``), comparing each bin's ``mean`` with the model averaged over
    the bin's depth interval.

    Parameters
    ----------
    profile : xarray.Dataset
        From :func:`boundary_profile` (``mean``, ``count`` along ``distance``,
        bin edges ``distance_lower`` / ``distance_upper``).
    model : {"ramp", "exponential"}
    exclude : length
        Bins shallower than this are left out of the fit (``S`` is then the
        model extrapolated to the surface). Set it to about twice the blur of
        the channel (probe, interaction volume, resampling), which mixes the
        neighbouring phase into the first bins, e.g. ``"150 nm"`` for SIMS.

    Returns
    -------
    xarray.Dataset
        Scalars ``depth`` (nm), ``surface`` and ``bulk`` (in the profile's
        units, e.g. ``percent`` for a quantified map); attrs ``model``.

    Raises
    ------
    PfibsimsError
        On an unknown model, a negative ``exclude``, a profile with fewer than 4 populated bins
        inside the phase, or a fit that fails.
    DataModelError
        When ``profile`` is not a boundary profile.

    Warns
    -----
    EstimationWarning
        When the fitted depth reaches the profile's depth range, so it is a
        bound rather than an estimate; when ``bulk - surface`` is within
        :data:`MIN_STEP_SE` standard errors of the fit (a flat profile: no
        significant depletion, the depth undetermined).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> d = -np.arange(5.0, 1000.0, 10.0)
    >>> prof = xr.Dataset({"mean": ("distance", 0.15 + 0.4 * np.minimum(-d / 300.0, 1)),
    ...                    "count": ("distance", np.full(d.size, 100))},
    ...                   coords={"distance": d, "distance_lower": ("distance", d - 5),
    ...                           "distance_upper": ("distance", d + 5)})
    >>> round(float(depletion_depth(prof).depth))
    300
    """
    if not isinstance(model, str) or model not in _MODELS:
        raise PfibsimsError(f"model: expected one of {tuple(_MODELS)}, got {model!r}")
    if not isinstance(profile, xr.Dataset) or "mean" not in profile or "count" not in profile or "distance" not in profile.coords:
        raise DataModelError("profile: expected the Dataset boundary_profile returns (mean, count along distance)")
    if profile["mean"].dims != ("distance",) or profile["count"].dims != ("distance",):
        raise DataModelError(f"profile: expected mean and count along 'distance' only, found dims {profile['mean'].dims} "
                             f"and {profile['count'].dims}")
    skip = length_nm(exclude, name="exclude")
    if not skip >= 0:  # a negative depth would take bins outside the phase into the fit
        raise PfibsimsError(f"exclude: expected a length of 0 nm or more, got {exclude!r}")
    inside = (profile.distance < -skip) & (profile["count"] > 0) & np.isfinite(profile["mean"])
    if "distance_upper" in profile.coords:  # a bin across the boundary mixes in the other phase
        inside = inside & (profile["distance_upper"] <= 0)
    p = profile.where(inside, drop=True).sortby("distance", ascending=False)
    if p.sizes["distance"] < 4:
        raise PfibsimsError(f"profile: expected at least 4 populated bins inside the phase, found {p.sizes['distance']}")
    d = -p.distance.values
    lower = -p["distance_upper"].values if "distance_upper" in p.coords else d
    upper = -p["distance_lower"].values if "distance_lower" in p.coords else d
    y, w = p["mean"].values.astype(float), p["count"].values.astype(float)
    shape = _MODELS[model]

    def binned(_d, bulk, surface, depth):
        return surface + (bulk - surface) * shape(lower, upper, depth)

    span = float(upper.max())
    quarter = max(1, y.size // 4)
    guess = (float(np.average(y[-quarter:], weights=w[-quarter:])), float(y[0]), span / 4)
    try:
        popt, pcov = curve_fit(binned, d, y, p0=guess, sigma=1 / np.sqrt(np.maximum(w, 1)), maxfev=20000)
    except (RuntimeError, ValueError) as exc:
        raise PfibsimsError(f"profile: the {model} model did not fit ({exc})") from None
    bulk, surface, depth = float(popt[0]), float(popt[1]), abs(float(popt[2]))
    units = {"units": profile["mean"].attrs["units"]} if "units" in profile["mean"].attrs else {}
    step_se = float(np.sqrt(max(pcov[0, 0] + pcov[1, 1] - 2 * pcov[0, 1], 0.0))) if np.all(np.isfinite(pcov)) else np.inf
    if not abs(bulk - surface) > MIN_STEP_SE * step_se:
        warnings.warn(
            f"depletion_depth: the bulk and surface values differ by {bulk - surface:.4g} +/- {step_se:.4g} (the fit's "
            f"standard error), less than {MIN_STEP_SE:g} standard errors: the profile shows no significant depletion "
            f"and the depth {depth:.4g} nm is not determined",
            EstimationWarning,
            stacklevel=2,
        )
    if depth >= span:
        warnings.warn(
            f"depletion_depth: the fitted depth {depth:.4g} nm reaches the profile's depth range {span:.4g} nm; "
            "widen distances= in boundary_profile",
            EstimationWarning,
            stacklevel=2,
        )
    return xr.Dataset(
        {
            "depth": ((), depth, {"units": LENGTH_UNIT, "long_name": "depletion depth"}),
            "surface": ((), surface, units),
            "bulk": ((), bulk, units),
        },
        attrs={"model": model, "exclude": f"{skip:.6g} {LENGTH_UNIT}"},
    )
