"""Per-slice drift of a stack: slice to slice by phase correlation, or cross-modally against a drift-free reference."""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping
from typing import Any

import dask
import dask.array as darr
import numpy as np
import scipy.ndimage as ndi
import xarray as xr
from skimage.registration import phase_cross_correlation

from .._engine.smooth import gaussian
from .._engine.views import MAX_PIXELS, check_max_pixels
from .._xr import as_dataarray, block_mean, check_dims, plane_grid
from ..dataset import history_attrs, record
from ..errors import DataModelError, EstimationWarning, GridError, PfibsimsError
from ..grid import Grid
from ..progress import compute
from ..resampling.drift import drift_nm
from ..transform import Affine
from ..units import LENGTH_UNIT
from . import search as _search
from .pairwise import initial_transform, noise_floor
from .views import fixed_channels

_REFERENCES = ("previous", "first", "mean")


# Smoothing (px) of each slice before phase correlation: Poisson noise is
# white, the microstructure is not, so a light Gaussian raises the SNR of the
# cross-correlation peak.
_DRIFT_SIGMA = 1.0




def _windowed(a: np.ndarray) -> np.ndarray:
    """Mean removed and a Hann window applied (no edge jump in the periodic FFT)."""
    win = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    return (a - a.mean()) * win


def _pair_shift(reference: np.ndarray, moving: np.ndarray, upsample: int, sigma: float) -> np.ndarray:
    """(dy, dx, quality): displacement (px) of ``moving``'s content relative to ``reference``.

    Two passes: the window pulls the first estimate towards zero, so ``moving``
    is shifted back by it (cubic spline) and the small residual is measured
    again and added.  Module-level so that dask can ship it to workers.
    Quality is the normalised cross-correlation at the final peak, in [0, 1].
    """
    ref = gaussian(reference, sigma)
    mov = gaussian(moving, sigma)
    wref = _windowed(ref)
    if not np.any(wref) or not np.any(_windowed(mov)):
        return np.array([0.0, 0.0, 0.0])
    first, _, _ = phase_cross_correlation(wref, _windowed(mov), upsample_factor=upsample, normalization=None)
    back = ndi.shift(mov, first, order=3, mode="nearest")
    rest, error, _ = phase_cross_correlation(wref, _windowed(back), upsample_factor=upsample, normalization=None)
    shift = np.asarray(first) + np.asarray(rest)
    quality = math.sqrt(max(0.0, 1.0 - float(error) ** 2))
    return np.array([-shift[0], -shift[1], quality])


# Cross-modal drift search around the start, in fixed pixels: a grid of
# (2 * reach + 1)^2 translations at each (level, step, reach), then quadratic
# peak fits at the fixed pixel size.
_XDRIFT_GRIDS = ((4.0, 4.0, 3), (2.0, 1.0, 2))


def _cross_shift(
    moving: np.ndarray, fixed: np.ndarray, moving_grid: Grid, fixed_grid: Grid, transform: Affine,
    start: tuple[float, float],
) -> np.ndarray:
    """(dy, dx, quality): the translation ``d`` (nm, moving frame) for which the moving slice
    through ``translation(d) @ transform`` is best predicted, linearly, by the fixed channels.

    Grid searches around ``start`` (``_XDRIFT_GRIDS``: +/- 3 steps of 4 fixed
    pixels on a level of 4 fixed pixels, then +/- 2 steps of 1 pixel on a level
    of 2), then quadratic peak fits (:func:`pfibsims.registration.search.quadratic_peak`)
    at the fixed pixel size.  Quality: the multiple correlation at the optimum, in [0, 1].
    Module-level so that dask can ship it to workers.
    """
    fixed = np.asarray(fixed, dtype=np.float64)
    fixed = fixed[None] if fixed.ndim == 2 else fixed
    moving = np.asarray(moving, dtype=np.float64)
    fs = float(np.mean(fixed_grid.spacing))
    centre = fixed_grid.center
    zero = np.zeros(2)
    base = Affine.translation(tuple(float(v) for v in start)) @ transform
    for factor, step, reach in _XDRIFT_GRIDS:
        level = _search.make_level(moving, moving_grid, fixed, fixed_grid, factor * fs, labels=False)
        offsets = np.arange(-reach, reach + 1) * step * fs
        best, t = -np.inf, zero
        for dy in offsets:
            for dx in offsets:
                v, _ = _search.evaluate(level, Affine.translation((dy, dx)) @ base, "ncc")
                if v > best:
                    best, t = v, np.array([dy, dx])
        if not np.isfinite(best):
            return np.array([np.nan, np.nan, 0.0])
        base = Affine.translation(tuple(t)) @ base
    level = _search.make_level(moving, moving_grid, fixed, fixed_grid, fs, labels=False)

    def value(x: np.ndarray) -> float:
        return _search.evaluate(level, Affine.translation(tuple(x)) @ base, "ncc")[0]

    params, score, _ = _search.quadratic_peak(value, zero, 0.5 * fs, iterations=2)
    final = Affine.translation(tuple(params)) @ base
    d = np.asarray(final([centre])[0]) - np.asarray(transform([centre])[0])
    return np.array([d[0], d[1], max(0.0, float(score))])


def _roi_index(grid: Grid, roi: Any) -> tuple[slice, slice]:
    if roi is None:
        return slice(None), slice(None)
    if not isinstance(roi, Mapping) or not set(roi) <= {"y", "x"}:
        raise PfibsimsError(
            f"roi: expected a mapping of 'y' and/or 'x' to (lower, upper) lengths, e.g. "
            f"{{'y': ('2 um', '10 um')}}, got {roi!r}"
        )
    sub = grid.crop(**{k: tuple(v) for k, v in roi.items()})
    start = [round((o2 - o1) / s) for o1, o2, s in zip(grid.origin, sub.origin, grid.spacing, strict=False)]
    return tuple(slice(a, a + n) for a, n in zip(start, sub.shape, strict=False))  # type: ignore[return-value]


def _below_noise(quality: np.ndarray, n_pixels: int, kind: str) -> tuple[np.ndarray, str]:
    """Slices whose correlation is no better than two images of pure noise would give, and why.

    The peak of the phase correlation of independent Poisson noise reaches a quality of about
    ``13.5 / sqrt(n_pixels)`` (measured: 0.19-0.27 at 64^2, 0.06-0.07 at 256^2, 0.04 at 500^2; a real
    slice-and-view stack gives 0.95-0.97, and 0.70 at a twentieth of its counts): a slice below
    ``30 / sqrt(n_pixels)`` has no structure to register, and its drift (up to the field size) is
    not an estimate. A constant slice gives 0.
    """
    floor = noise_floor(n_pixels)
    low = quality < floor
    if kind == "previous" and low.size > 1:
        low[0] = bool(low[1:].all())  # slice 0 is the origin: doubtful only when nothing else can be trusted
    if not low.any():
        return low, ""
    what = "every slice" if low.all() else f"slices {np.flatnonzero(low).tolist()}"
    why = ("has no contrast (quality 0: constant)" if not quality[low].max() > 0 else
           f"correlates no better than noise (quality {float(quality[low].max()):.3g} or less, below {floor:.3g}, "
           f"the noise level of a {n_pixels}-pixel view)")
    return low, f"{what} {why}"


def _flag_outliers(steps: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Slices whose step deviates from a running median by > 5 robust sigma (and > 0.5 px),
    or whose quality is far below the others."""
    n = steps.shape[0]
    out = np.zeros(n, dtype=bool)
    if n < 4:
        return out
    smooth = ndi.median_filter(steps, size=(5, 1), mode="nearest")
    res = np.linalg.norm(steps - smooth, axis=1)
    mad = 1.4826 * np.median(np.abs(res - np.median(res)))
    out |= res > max(5.0 * mad + np.median(res), 0.5)
    qmed = np.median(quality)
    qmad = 1.4826 * np.median(np.abs(quality - qmed))
    out |= quality < min(qmed - 5.0 * qmad, 0.5 * qmed)
    return out


def estimate_drift(
    da: xr.DataArray,
    *,
    reference: str | xr.DataArray | xr.Dataset = "previous",
    transform: Affine | None = None,
    initial: xr.DataArray | None = None,
    upsample: int = 20,
    roi: Mapping[str, tuple[Any, Any]] | None = None,
    max_pixels: int = MAX_PIXELS,
) -> xr.DataArray:
    """Per-slice drift of a stack, in nm: by sub-pixel phase correlation, or against a drift-free reference.

    Parameters
    ----------
    da : xarray.DataArray
        One channel, dims ``(z, y, x)`` (e.g. ``sims.Li6``); a one-channel
        Dataset is accepted.
    reference : {"previous", "first", "mean"} or DataArray
        What each slice is compared with. ``"previous"``: the slice before
        (robust to the slow change of the microstructure with depth; the
        pairwise shifts are summed so the result is relative to slice 0).
        ``"first"``: slice 0. ``"mean"``: the z-mean of the stack (one pass;
        blurred by the drift itself). A 2-D ``(y, x)`` DataArray on the same
        grid: that image. A 3-D ``(z, y, x)`` Dataset or DataArray on its own
        grid (e.g. the whole EDS dataset, whose frame has no drift) with
        ``transform``: *cross-modal* drift, slice ``k`` against reference
        slice ``k`` (see Notes); no error accumulates along the stack.
    transform : Affine, optional
        Cross-modal only (required there): the in-plane reference-to-``da``
        transform (reference point -> ``da`` point, nm), e.g. :func:`register`'s
        result.  The drift returned is then relative to it: slice ``k``'s
        reference point ``p`` is at ``transform(p) + drift[k]`` in ``da``.
    initial : DataArray, optional
        Cross-modal only: a starting drift ``(z, component)`` (e.g. the
        slice-to-slice estimate); the search covers about +/- 1.1 um
        (14 reference pixels) around it. Default: zero.
    upsample : int
        Sub-pixel precision is ``1 / upsample`` pixel (matrix-multiply DFT of
        scikit-image's ``phase_cross_correlation``).
    roi : mapping, optional
        ``{"y": (lo, hi), "x": (lo, hi)}`` in lengths: use only this window,
        e.g. to avoid a region that changes.
    max_pixels : int
        Estimate from at most about this many pixels a slice (default
        2048^2): larger slices (and references) are reduced to ``f x f``
        block means first, lazily, slice by slice (a reduced view: the
        precision is then a fraction of ``f`` pixels). A 700 um SIMS slice
        (9722^2 px) phase-correlated at full resolution needs ~10 GB a task.

    Returns
    -------
    xarray.DataArray
        dims ``(z, component)``, ``component = ["y", "x"]``, values in nm,
        ``drift[0] == 0`` for ``"previous"``/``"first"``; coords ``quality``
        (the normalised cross-correlation at the peak, 0..1) and ``outlier``
        (bool).  ``units`` attr "nm"; history records the step.

    Warns
    -----
    EstimationWarning
        Naming the outlier slices: a step far from its neighbours' (running
        median, 5 robust sigma and more than half a pixel) or a quality far
        below the others.  They are flagged, not corrected: interpolate them
        or pass a ``roi`` if they are wrong.

    Notes
    -----
    Computes only what it needs: each task reads one slice and its reference
    (within ``roi``), smooths it (Gaussian, 1 px, against Poisson noise),
    removes its mean and applies a Hann window, then cross-correlates
    (``normalization=None``, the plain cross-correlation, which with the
    smoothing is more robust to shot noise than the phase-only form). Only the
    small table of shifts is returned to the caller. Shifts are in the pixel
    grid, converted with the pixel size to nm.

    Cross-modal (a 3-D ``reference`` and a ``transform``): each task reads
    slice ``k`` of ``da`` and of every reference channel (within ``roi`` of
    the reference grid) and finds the translation ``d`` (nm, ``da`` frame)
    for which ``da`` sampled at ``transform(p) + d`` is best predicted by a
    linear combination of the reference channels at ``p`` (multiple
    correlation; no linear relation to any single channel is needed): grid
    searches on levels of 4 and 2 reference pixels, then quadratic peak fits
    at 1 reference pixel (cubic B-spline of the lightly smoothed slice).
    ``quality`` is that correlation.  Slice-to-slice phase correlation
    accumulates the apparent shift of slanted features along the stack
    (on the phantom about 5 nm a slice); this measures each slice against
    the drift-free frame instead.

    Raises
    ------
    DataModelError
        When the input is not ``(z, y, x)`` or a reference image does not match.
    PfibsimsError
        For an unknown ``reference`` or a bad ``upsample``.

    Examples
    --------
    >>> import numpy as np, scipy.ndimage as ndi
    >>> from pfibsims import stack
    >>> rng = np.random.default_rng(0)
    >>> img = ndi.gaussian_filter(rng.random((64, 64)), 2)
    >>> moved = ndi.shift(img, (2, -1), mode="wrap")   # content moves +2 px in y, -1 px in x
    >>> ds = stack({"Li6": [img, moved]}, pixel_size="72 nm", slice_thickness="60 nm")
    >>> d = estimate_drift(ds.Li6, reference="first")
    >>> d.sel(component=["y", "x"]).values[1].round(1).tolist()
    [144.0, -72.0]
    """
    arr = as_dataarray(da, "da", one_channel=True)
    check_dims(arr, "da", ("z", "y", "x"))
    check_max_pixels(max_pixels)
    if roi is None:  # a roi is used at full resolution
        arr = block_mean(arr, max_pixels)
        if isinstance(reference, (xr.DataArray, xr.Dataset)):
            reference = block_mean(reference, max_pixels)
    arr = arr.transpose("z", "y", "x")
    grid = plane_grid(arr, "da")
    if isinstance(upsample, bool) or not isinstance(upsample, (int, np.integer)) or not 1 <= upsample <= 1000:
        raise PfibsimsError(f"upsample: expected a whole number from 1 to 1000 (a precision of 1/upsample pixel), got {upsample!r:.60}")
    cross = isinstance(reference, xr.Dataset) or (isinstance(reference, xr.DataArray) and "z" in reference.dims)
    if cross:
        return _cross_drift(arr, grid, reference, transform, initial, roi)
    if transform is not None or initial is not None:
        raise PfibsimsError(
            "transform, initial: expected only with a 3-D (z, y, x) reference (cross-modal drift), got reference="
            f"{reference if isinstance(reference, str) else 'a 2-D image'}"
        )
    if not (isinstance(reference, xr.DataArray) or (isinstance(reference, str) and reference in _REFERENCES)):
        raise PfibsimsError(f"reference: expected one of {_REFERENCES}, a (y, x) DataArray or a (z, y, x) "
                            f"reference with a transform, got {reference!r}")
    kind = "image" if isinstance(reference, xr.DataArray) else reference
    iy, ix = _roi_index(grid, roi)
    data = arr.data[:, iy, ix]
    nz = data.shape[0]
    fn = functools.partial(_pair_shift, upsample=int(upsample), sigma=_DRIFT_SIGMA)
    delayed = dask.delayed(fn, pure=True)
    if isinstance(reference, xr.DataArray):
        check_dims(reference, "reference", ("y", "x"))
        if "z" in reference.dims or reference.sizes["y"] != arr.sizes["y"] or reference.sizes["x"] != arr.sizes["x"]:
            raise DataModelError(
                f"reference: expected a 2-D (y, x) image of shape {(arr.sizes['y'], arr.sizes['x'])}, "
                f"got dims {tuple(reference.dims)} and shape {reference.shape}"
            )
        ref_img = reference.transpose("y", "x").data[iy, ix]
        pairs = [(ref_img, data[k]) for k in range(nz)]
    elif kind == "mean":
        ref_img = data.mean(axis=0) if isinstance(data, darr.Array) else np.nanmean(data, axis=0)
        pairs = [(ref_img, data[k]) for k in range(nz)]
    elif kind == "first":
        pairs = [(data[0], data[k]) for k in range(nz)]
    else:
        pairs = [(data[max(k - 1, 0)], data[k]) for k in range(nz)]
    (results,) = compute([delayed(a, b) for a, b in pairs], step="estimate_drift: slices")
    res = np.asarray(results, dtype=np.float64).reshape(nz, 3)
    steps_px, quality = res[:, :2], res[:, 2]
    if kind == "previous":
        quality[0] = np.median(quality[1:]) if nz > 1 else 1.0
        drift_px = np.cumsum(steps_px, axis=0)
        outlier = _flag_outliers(steps_px[1:], quality[1:]) if nz > 2 else np.zeros(nz - 1, bool)
        outlier = np.concatenate([[False], outlier])
    else:
        drift_px = steps_px
        outlier = _flag_outliers(np.diff(steps_px, axis=0, prepend=steps_px[:1]), quality)
    noise, why = _below_noise(quality, data.shape[-2] * data.shape[-1], kind)
    drift = drift_px * np.asarray(grid.spacing)
    out = _drift_array(arr, drift, quality, outlier | noise, "normalised cross-correlation at the peak", why)
    return record(out, "estimate_drift", reference=kind, upsample=int(upsample), roi=roi, sigma_px=_DRIFT_SIGMA)


def _drift_array(arr: xr.DataArray, drift: np.ndarray, quality: np.ndarray, outlier: np.ndarray,
                 quality_name: str, noise: str = "") -> xr.DataArray:
    if outlier.any():
        warnings.warn(
            f"estimate_drift: slices {np.flatnonzero(outlier).tolist()} look like outliers (a step far from "
            f"their neighbours' or a low correlation{'; ' + noise if noise else ''}); they are flagged in the "
            "'outlier' coordinate, not corrected, and their drift cannot be trusted",
            EstimationWarning,
            stacklevel=3,
        )
    zc = arr.coords["z"]
    out = xr.DataArray(
        drift,
        dims=("z", "component"),
        coords={
            "z": ("z", zc.values, dict(zc.attrs)),
            "component": ["y", "x"],
            "quality": ("z", quality, {"units": "1", "long_name": quality_name}),
            "outlier": ("z", outlier),
        },
        attrs={"units": LENGTH_UNIT, "long_name": "drift of the sample in the image frame", **history_attrs([])},
        name="drift",
    )
    return out


def _cross_drift(arr: xr.DataArray, grid: Grid, reference: Any, transform: Any, initial: Any,
                 roi: Any) -> xr.DataArray:
    """estimate_drift against a 3-D drift-free reference through ``transform`` (see its Notes)."""
    if not isinstance(transform, Affine):
        raise PfibsimsError(
            f"transform: a 3-D reference needs the reference-to-da transform (a pfibsims.Affine, e.g. register's "
            f"result), got {type(transform).__name__}"
        )
    T = initial_transform(transform, grid, grid)
    chans = fixed_channels(reference)
    check_dims(reference, "reference", ("z", "y", "x"))
    nz = arr.sizes["z"]
    if reference.sizes["z"] != nz:
        raise DataModelError(f"reference: expected {nz} slices (those of da), got {reference.sizes['z']}")
    rgrid = plane_grid(reference, "reference")
    iy, ix = _roi_index(rgrid, roi)
    rgrid = rgrid[iy, ix]
    start = np.zeros((nz, 2)) if initial is None else drift_nm(initial, nz)
    ref = darr.stack([c.transpose("z", "y", "x").data[:, iy, ix] for c in chans]) if any(
        isinstance(c.data, darr.Array) for c in chans) else np.stack([c.transpose("z", "y", "x").values[:, iy, ix]
                                                                      for c in chans])
    fn = dask.delayed(_cross_shift, pure=True)
    tasks = [fn(arr.data[k], ref[:, k], grid, rgrid, T, tuple(start[k])) for k in range(nz)]
    (results,) = compute(tasks, step="estimate_drift: slices against the reference")
    res = np.asarray(results, dtype=np.float64).reshape(nz, 3)
    drift, quality = res[:, :2], res[:, 2]
    bad = ~np.all(np.isfinite(drift), axis=1)
    if bad.all():
        raise GridError("reference: no slice of da overlaps its reference slice through the transform; check it")
    drift[bad] = 0.0
    # positions (px) against their running median: one bad slice is one outlier
    outlier = _flag_outliers(drift / float(np.mean(grid.spacing)), quality) | bad
    out = _drift_array(arr, drift, quality, outlier, "multiple correlation with the reference channels")
    return record(out, "estimate_drift", reference="cross-modal", channels=[str(c.name) for c in chans],
                  transform=Affine(T.matrix, T.dims), roi=roi)
