"""Per-slice drift of a stack: slice to slice, against a drift-free region (a fiducial), an image, or another modality.

Slice-to-slice correlation sees the drift *and* the apparent motion of
structures that lean through the stack, and cannot tell them apart: only the
part that changes from slice to slice (the jitter) is observable.  So by
default the smooth trend of such an estimate is removed and reported; a
``fiducial`` region (a milled mark or another drift-free feature) or a
drift-free reference modality measures the whole drift.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import dask
import dask.array as darr
import numpy as np
import scipy.ndimage as ndi
import xarray as xr

from .._engine.smooth import gaussian
from .._engine.views import MAX_PIXELS, check_max_pixels
from .._xr import as_dataarray, ascending, block_mean, check_dims, plane_grid
from ..dataset import history_attrs, record
from ..errors import DataModelError, EstimationWarning, GridError, PfibsimsError
from ..grid import Grid
from ..progress import compute
from ..resampling.drift import drift_nm
from ..transform import Affine
from ..units import LENGTH_UNIT
from . import phase as _phase
from . import refine as _refine
from .crossdrift import _XDRIFT_GRIDS, _cross_shift, _warn_weak_linear
from .pairwise import initial_transform, noise_floor
from .report import Registration
from .views import fixed_channels

_REFERENCES = ("previous", "first", "mean")
_TRENDS = ("remove", "keep")
# A smooth trend (removed or kept) of more than this many pixels anywhere is reported: it may be drift or
# structures leaning through the stack.
_TREND_WARN_PX = 1.0


# Smoothing (px) of each slice before phase correlation: Poisson noise is
# white, the microstructure is not, so a light Gaussian raises the SNR of the
# cross-correlation peak.
_DRIFT_SIGMA = 1.0
# A fiducial slice whose place has a larger standard error (px, refine.match_peak's spread) is flagged.
_FIDUCIAL_SPREAD_PX = 0.25


def _roi_index(grid: Grid, roi: Any, name: str = "roi") -> tuple[slice, slice]:
    if roi is None:
        return slice(None), slice(None)
    if not isinstance(roi, Mapping) or not set(roi) <= {"y", "x"}:
        raise PfibsimsError(
            f"{name}: expected a mapping of 'y' and/or 'x' to (lower, upper) lengths, e.g. "
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


def _fiducial_shift(template: np.ndarray, window: np.ndarray, offset: tuple[int, int], upsample: int,
                    sigma: float) -> np.ndarray:
    """(dy, dx, quality, spread): displacement (px) of the fiducial ``template`` found in ``window``.

    ``offset``: the template's top-left pixel in the window's frame when
    nothing moved.  Normalised cross-correlation over every placement
    (scikit-image's ``match_template``) finds the pixel;
    :func:`pfibsims.registration.refine.match_peak` the sub-pixel place and its
    standard error ``spread`` (px; inf at the window's edge).  Quality: the
    normalised cross-correlation at the peak, in [0, 1].  ``upsample`` is not
    used (the place is not on a grid).  Module-level so that dask can ship it to workers.
    """
    from skimage.feature import match_template  # here: skimage.feature loads scipy.signal and scipy.stats (~20 MB)

    t = gaussian(template, sigma)
    w = gaussian(window, sigma)
    if t.shape[0] > w.shape[0] or t.shape[1] > w.shape[1] or not np.ptp(t) > 0:
        return np.array([np.nan, np.nan, 0.0, np.inf])
    ncc = match_template(w, t)
    i, j = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
    place, spread = np.array([i, j], dtype=np.float64), np.inf
    if 0 < i < ncc.shape[0] - 1 and 0 < j < ncc.shape[1] - 1:
        place, spread = _refine.match_peak(t, w, (int(i), int(j)))
    return np.array([place[0] - offset[0], place[1] - offset[1], max(0.0, float(ncc[i, j])), spread])


def _fiducial_pixels(grid: Grid, fiducial: Any) -> int:
    """The number of pixels of the ``fiducial`` region (what each slice's quality is measured on)."""
    iy, ix = _roi_index(grid, fiducial, "fiducial")
    return (iy.stop - iy.start) * (ix.stop - ix.start)


def _fiducial_tasks(data: Any, ref_img: Any, grid: Grid, fiducial: Any, upsample: int) -> list:
    """One delayed :func:`_fiducial_shift` a slice: the region of ``ref_img`` found in a window of each slice
    (the region grown by its own size on every side, within the field)."""
    iy, ix = _roi_index(grid, fiducial, "fiducial")
    ny, nx = grid.shape
    wy = slice(max(iy.start - (iy.stop - iy.start), 0), min(iy.stop + (iy.stop - iy.start), ny))
    wx = slice(max(ix.start - (ix.stop - ix.start), 0), min(ix.stop + (ix.stop - ix.start), nx))
    fn = dask.delayed(_fiducial_shift, pure=True)
    offset = (iy.start - wy.start, ix.start - wx.start)
    template = ref_img[iy, ix]
    return [fn(template, data[k][wy, wx], offset, upsample, _DRIFT_SIGMA) for k in range(data.shape[0])]


def _trend(positions: np.ndarray, outlier: np.ndarray) -> np.ndarray:
    """The smooth trend of per-slice positions (px): a least-squares polynomial in the slice index, of
    degree 2 from 8 slices, 1 from 3, none below (outliers excluded from the fit)."""
    n = positions.shape[0]
    degree = 2 if n >= 8 else 1 if n >= 3 else -1
    if degree < 0:
        return np.zeros_like(positions)
    k = np.arange(n, dtype=np.float64)
    use = ~outlier if (~outlier).sum() > degree + 1 else np.ones(n, bool)
    coef = np.polynomial.polynomial.polyfit(k[use], positions[use], degree)
    return np.polynomial.polynomial.polyval(k, coef).T


def _split_trend(positions: np.ndarray, outlier: np.ndarray, mode: str, relative: bool, ambiguous: bool,
                 spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(drift, trend) in nm from positions in px: ``mode="remove"`` takes the smooth trend out of the drift,
    ``"keep"`` leaves it in; ``trend`` holds it either way (relative to slice 0 when ``relative``).  When it
    is ``ambiguous`` (measured between slices of the stack) and exceeds ``_TREND_WARN_PX`` pixels, warns."""
    smooth = _trend(positions, outlier)
    if relative:
        smooth = smooth - smooth[0]
    drift = positions - smooth if mode == "remove" else positions
    worst = float(np.abs(smooth).max()) if smooth.size else 0.0
    if ambiguous and worst > _TREND_WARN_PX and (~outlier).sum() >= 3:  # a trend of trusted slices
        what = ("it was removed (the 'trend' coordinate holds it: add it back with drift + drift.trend if it is "
                "drift)" if mode == "remove" else "it was kept (trend='keep'), though it may be such structures")
        warnings.warn(
            f"estimate_drift: the slices' shifts hold a smooth trend of up to {worst:.3g} px "
            f"({worst * float(np.max(spacing)):.4g} nm) over the stack; correlating slices with each other cannot "
            f"tell drift from structures that lean through the stack, so {what}; to measure the whole drift give "
            f"fiducial= (a drift-free region, e.g. a milled mark) or reference= a drift-free stack with transform=",
            EstimationWarning, stacklevel=4,
        )
    return drift * spacing, smooth * spacing


def _bridge(data: Any, steps: np.ndarray, quality: np.ndarray, outlier: np.ndarray, upsample: int) -> np.ndarray:
    """Slice to slice, a bad slice ``k`` spoils both steps into and out of it (both flagged) and so every
    later position.  Such a slice is bridged: slice ``k + 1`` measured against ``k - 1`` directly, slice
    ``k`` put half-way; ``k`` stays flagged, ``k + 1`` takes the bridge's quality (both in place).  Bridges do
    not overlap: in a run of flagged steps, ``k + 1`` is not bridged again after ``k`` (its step is the first
    bridge's half; a second would overwrite it)."""
    ks: list[int] = []
    for k in range(1, len(steps) - 1):
        if outlier[k] and outlier[k + 1] and not (ks and ks[-1] == k - 1):
            ks.append(k)
    if not ks:
        return steps
    spectra, shift = dask.delayed(_phase.spectra, pure=True), dask.delayed(_phase.shift_of, pure=True)
    (res,) = dask.compute([shift(spectra(data[k - 1], _DRIFT_SIGMA), spectra(data[k + 1], _DRIFT_SIGMA), upsample)
                           for k in ks])
    steps = steps.copy()
    for k, r in zip(ks, res, strict=True):
        steps[k] = steps[k + 1] = 0.5 * np.asarray(r[:2])
        outlier[k + 1], quality[k + 1] = False, r[2]
    return steps


def _check_options(reference: Any, transform: Any, initial: Any, fiducial: Any, trend: Any, upsample: Any) -> str:
    """The kind of estimate ("previous", "first", "mean", "image", "cross-modal"), or a PfibsimsError."""
    if isinstance(upsample, bool) or not isinstance(upsample, (int, np.integer)) or not 1 <= upsample <= 1000:
        raise PfibsimsError(f"upsample: expected a whole number from 1 to 1000 (a precision of 1/upsample pixel), "
                            f"got {upsample!r:.60}")
    if trend is not None and trend not in _TRENDS:
        raise PfibsimsError(f"trend: expected one of {_TRENDS} or None, got {trend!r}")
    cross = isinstance(reference, xr.Dataset) or (isinstance(reference, xr.DataArray) and "z" in reference.dims)
    if cross:
        if fiducial is not None:
            raise PfibsimsError("fiducial: expected no 3-D reference (a reference modality already measures every "
                                "slice against a drift-free frame), got both")
        return "cross-modal"
    if transform is not None or initial is not None:
        raise PfibsimsError(
            "transform, initial: expected only with a 3-D (z, y, x) reference (cross-modal drift), got reference="
            f"{reference if reference is None or isinstance(reference, str) else 'a 2-D image'}"
        )
    if isinstance(reference, xr.DataArray):
        return "image"
    if reference is None:
        return "first" if fiducial is not None else "previous"
    if not (isinstance(reference, str) and reference in _REFERENCES):
        raise PfibsimsError(f"reference: expected one of {_REFERENCES}, a (y, x) DataArray or a (z, y, x) "
                            f"reference with a transform, got {reference!r}")
    if fiducial is not None and reference != "first":
        raise PfibsimsError(f"fiducial: measures every slice against the first slice's region (reference='first') "
                            f"or a 2-D reference image, got reference={reference!r}")
    return reference


def estimate_drift(
    da: xr.DataArray,
    *,
    reference: str | xr.DataArray | xr.Dataset | None = None,
    transform: Affine | None = None,
    initial: xr.DataArray | None = None,
    fiducial: Mapping[str, tuple[Any, Any]] | None = None,
    trend: str | None = None,
    upsample: int = 20,
    roi: Mapping[str, tuple[Any, Any]] | None = None,
    max_pixels: int = MAX_PIXELS,
) -> xr.DataArray:
    """Per-slice drift of a stack, in nm: slice to slice, against a fiducial region, an image or a modality.

    Parameters
    ----------
    da : xarray.DataArray
        One channel, dims ``(z, y, x)`` (e.g. ``sims.Li6``) or a single
        ``(y, x)`` map; a one-channel Dataset is accepted. A ``y`` or ``x``
        running high -> low (rows stored top down) is read at its own
        positions (the drift is the sorted image's), as is a reference's.
    reference : {"previous", "first", "mean"}, DataArray or Dataset, optional
        What each slice is compared with.  ``"previous"`` (the default): the
        slice before (robust to the slow change of the microstructure with
        depth; the steps are summed, relative to slice 0).  ``"first"``:
        slice 0 (the default with ``fiducial``).  ``"mean"``: the z-mean of
        the stack.  A 2-D ``(y, x)`` DataArray on the same grid: that image.
        A 3-D ``(z, y, x)`` Dataset or DataArray on its own grid (e.g. the
        whole EDS dataset, whose frame has no drift) with ``transform``:
        *cross-modal* drift, slice ``k`` against reference slice ``k`` (see
        Notes).
    transform : Affine, optional
        Cross-modal only (required there): the in-plane reference-to-``da``
        transform (reference point -> ``da`` point, nm), e.g.
        ``register(...).transform``.  The drift returned is relative to it:
        slice ``k``'s reference point ``p`` is at ``transform(p) + drift[k]``.
    initial : DataArray, optional
        Cross-modal only: a starting drift ``(z, component)`` (e.g. the
        slice-to-slice estimate), each slice's row taken at its depth ``z``
        (as :func:`~pfibsims.resample`'s ``drift``); the search covers about
        +/- 14 reference pixels around it.  Default: zero.
    fiducial : mapping, optional
        A drift-free region of the reference slice (a milled mark, the top
        surface), as :meth:`pfibsims.Grid.crop` takes bounds:
        ``{"y": ("850 nm", "1850 nm"), "x": ("0.85 um", "1.85 um")}``.  Every
        slice is searched for that region (within its own size on every side)
        and the whole drift is measured, trend included, with no error
        accumulating along the stack.
    trend : {"remove", "keep"}, optional
        What to do with the smooth trend of an estimate from the stack itself
        (``"previous"``, ``"first"``, ``"mean"`` without ``fiducial``), a
        polynomial in the slice index (degree 2 from 8 slices, 1 from 3):
        ``"remove"`` (the default there) returns only the jitter, the part of
        the drift that correlating slices can tell from structures leaning
        through the stack; ``"keep"`` returns it all (e.g. when the sample
        is known to have no leaning structures, or as the start of a
        cross-modal estimate).  Other references keep the trend (they
        measure it).  Left to the default, a trend above one pixel warns.
    upsample : int
        Sub-pixel precision is ``1 / upsample`` pixel (matrix-multiply DFT of
        scikit-image's ``phase_cross_correlation``).
    roi : mapping, optional
        ``{"y": (lo, hi), "x": (lo, hi)}`` in lengths: use only this window,
        e.g. to avoid a region that changes.
    max_pixels : int
        Estimate from at most about this many pixels a slice (default
        :data:`pfibsims._engine.views.MAX_PIXELS`): larger slices (and
        references) are reduced to ``f x f`` block means first, lazily, slice
        by slice (the precision is then a fraction of ``f`` pixels); a
        ``roi`` or ``fiducial`` is used at full resolution.

    Returns
    -------
    xarray.DataArray
        dims ``(z, component)`` (``(component,)`` for a 2-D map),
        ``component = ["y", "x"]``, values in nm, ``drift[0] == 0`` for
        ``"previous"``/``"first"``; coords ``quality`` (the normalised
        cross-correlation at the peak, 0..1), ``outlier`` (bool) and
        ``trend`` (``(z, component)`` nm: the smooth trend, removed from or
        kept in the drift).  ``units`` attr "nm"; history records the step.

    Warns
    -----
    EstimationWarning
        When the smooth trend exceeds a pixel anywhere (removed or kept, it
        is ambiguous: the message says what to give to measure it); and
        naming the outlier slices: a step far from its neighbours' (running
        median, 5 robust sigma and more than half a pixel) or a quality far
        below the others.  Outliers are flagged; slice to slice, a bad slice
        (both its steps flagged) is bridged: the next slice is measured
        against the one before it, the bad one put half-way.

    Notes
    -----
    Computes only what it needs: each task reads one slice and its reference
    (within ``roi``), smooths it (Gaussian, 1 px, against Poisson noise),
    removes its mean and applies a Hann window, then cross-correlates
    (``normalization=None``), twice (the second time after shifting the
    slice back by the first estimate, which the window pulls towards zero).
    Only the small table of shifts is returned to the caller.

    Slice-to-slice correlation measures the displacement of whatever is in
    both slices; features that lean through the stack (e.g. particle
    boundaries crossing the milled slices obliquely) move from slice to slice
    as drift would, and their apparent motion adds up along the stack (16-22
    px over 40 slices of a real FIB-SEM run).  What it can measure is the
    jitter: hence ``trend="remove"``.

    Fiducial: the region of the reference slice (Gaussian 1 px) is matched in
    each slice by normalised cross-correlation, then refined by phase
    correlation of the region and the matching crop.

    Cross-modal (a 3-D ``reference`` and a ``transform``): each task reads
    slice ``k`` of ``da`` and of every reference channel and finds the
    translation ``d`` (nm, ``da`` frame) for which ``da`` sampled at
    ``transform(p) + d`` is best predicted by a linear combination of the
    reference channels at ``p`` (multiple correlation): grid searches on
    levels of 4 and 2 reference pixels, then quadratic peak fits at 1
    reference pixel.  ``quality`` is that correlation.

    Raises
    ------
    DataModelError
        When the input has no ``(y, x)`` or a reference image does not match.
    PfibsimsError
        For an unknown ``reference`` or ``trend``, a ``fiducial`` with
        another reference than the first slice or an image, or a bad
        ``upsample``.

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
    # rows stored top down (y high -> low): the same points at the same positions, taken in increasing order
    arr = ascending(as_dataarray(da, "da", one_channel=True), ("y", "x"))[0]
    if isinstance(reference, (xr.DataArray, xr.Dataset)):
        reference = ascending(reference, ("y", "x"))[0]
    check_dims(arr, "da", ("y", "x"))
    check_max_pixels(max_pixels)
    kind = _check_options(reference, transform, initial, fiducial, trend, upsample)
    flat = "z" not in arr.dims
    if flat:
        arr = arr.expand_dims("z").assign_coords(z=("z", [0.0], {"units": LENGTH_UNIT}))
    if roi is None and fiducial is None:  # a roi or fiducial is used at full resolution
        arr = block_mean(arr, max_pixels)
        if isinstance(reference, (xr.DataArray, xr.Dataset)):
            reference = block_mean(reference, max_pixels)
    arr = arr.transpose("z", "y", "x")
    grid = plane_grid(arr, "da")
    if kind == "cross-modal":
        out = _cross_drift(arr, grid, reference, transform, initial, roi)
    else:
        out = _own_drift(arr, grid, reference, kind, fiducial, trend, int(upsample), roi)
    return out.squeeze("z").drop_vars("z") if flat else out


def _check_on_grid(ref: Grid, grid: Grid) -> None:
    """A DataModelError unless an image reference lies on the stack's in-plane grid (to 1 % of a pixel)."""
    if not grid.isclose(ref, rtol=0.01):
        raise DataModelError(f"reference: expected an image on the stack's (y, x) grid (spacing {grid.spacing} nm, first "
                             f"pixel at {grid.origin} nm), got spacing {ref.spacing} nm, first pixel at {ref.origin} nm; "
                             f"resample it onto the stack first (pfibsims.resample)")


def _own_drift(arr: xr.DataArray, grid: Grid, reference: Any, kind: str, fiducial: Any, trend: Any,
               upsample: int, roi: Any) -> xr.DataArray:
    """estimate_drift against the stack itself, an image, or a fiducial region (see its Notes)."""
    iy, ix = _roi_index(grid, roi) if fiducial is None else (slice(None), slice(None))
    data = arr.data[:, iy, ix]
    nz = data.shape[0]
    if kind == "image":
        check_dims(reference, "reference", ("y", "x"))
        if "z" in reference.dims or reference.sizes["y"] != arr.sizes["y"] or reference.sizes["x"] != arr.sizes["x"]:
            raise DataModelError(
                f"reference: expected a 2-D (y, x) image of shape {(arr.sizes['y'], arr.sizes['x'])}, "
                f"got dims {tuple(reference.dims)} and shape {reference.shape}"
            )
        _check_on_grid(plane_grid(reference, "reference"), grid)
        ref_img = reference.transpose("y", "x").data[iy, ix]
    elif kind == "mean":
        ref_img = data.mean(axis=0) if isinstance(data, darr.Array) else np.nanmean(data, axis=0)
    else:
        ref_img = data[0]
    if fiducial is not None:
        tasks = _fiducial_tasks(data, ref_img, grid, fiducial, upsample)
    else:  # one spectrum a slice (and one of the reference), one pair task a slice
        spectra = dask.delayed(_phase.spectra, pure=True)
        shift = dask.delayed(_phase.shift_of, pure=True)
        spec = [spectra(data[k], _DRIFT_SIGMA) for k in range(nz)]
        refs = [spec[max(k - 1, 0)] for k in range(nz)] if kind == "previous" else [spectra(ref_img, _DRIFT_SIGMA)] * nz
        tasks = [shift(r, spec[k], upsample) for k, r in enumerate(refs)]
    (results,) = compute(tasks, step="estimate_drift: slices")
    res = np.asarray(results, dtype=np.float64).reshape(nz, -1)  # a fiducial's adds the spread
    steps, quality = res[:, :2], res[:, 2]
    bad = ~np.all(np.isfinite(steps), axis=1)
    steps[bad] = 0.0
    if kind == "previous":
        quality[0] = np.median(quality[1:]) if nz > 1 else 1.0
        outlier = np.concatenate([[False], _flag_outliers(steps[1:], quality[1:]) if nz > 2 else np.zeros(nz - 1, bool)])
        steps = _bridge(data, steps, quality, outlier, upsample)
        positions = np.cumsum(steps, axis=0)
    else:
        positions = steps
        outlier = _flag_outliers(np.diff(steps, axis=0, prepend=steps[:1]), quality)
    outlier |= bad
    # the noise floor of the pixels each slice's estimate compares: the fiducial region's, else the slice's
    compared = _fiducial_pixels(grid, fiducial) if fiducial is not None else data.shape[-2] * data.shape[-1]
    noise, why = _below_noise(quality, compared, kind)
    outlier |= noise
    if fiducial is not None and np.any(vague := res[:, 3] > _FIDUCIAL_SPREAD_PX):
        why = "; ".join(filter(None, [why, f"slices {np.flatnonzero(vague).tolist()} have a place no better than "
                                      f"+/- {float(res[vague, 3].max()):.2g} px (refine.match_peak's spread)"]))
        outlier |= vague
    mode = trend or ("remove" if kind in _REFERENCES and fiducial is None else "keep")
    own = kind in _REFERENCES and fiducial is None and trend is None  # warned unless the caller chose
    drift, smooth = _split_trend(positions, outlier, mode, kind in ("previous", "first"), own, np.asarray(grid.spacing))
    name = "normalised cross-correlation at the peak"
    out = _drift_array(arr, drift, quality, outlier, name, why).assign_coords(
        trend=(("z", "component"), smooth, {"units": LENGTH_UNIT, "long_name": "smooth trend of the shifts"}))
    return record(out, "estimate_drift", reference=kind, fiducial=fiducial, trend=mode, upsample=upsample, roi=roi,
                  sigma_px=_DRIFT_SIGMA)


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
    transform = transform.transform if isinstance(transform, Registration) else transform
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
    start = np.zeros((nz, 2)) if initial is None else drift_nm(initial, arr, name="initial", of="da")
    if any(isinstance(c.data, darr.Array) for c in chans):
        ref = darr.stack([c.transpose("z", "y", "x").data[:, iy, ix] for c in chans])
        slices = [ref[:, k] for k in range(nz)]
    else:  # in memory: each task's (C, y, x) slice made in the task (no copy of the whole stack here)
        ref = [c.transpose("z", "y", "x").values for c in chans]
        slices = [[a[k, iy, ix] for a in ref] for k in range(nz)]
    fn = dask.delayed(_cross_shift, pure=True)
    tasks = [fn(arr.data[k], slices[k], grid, rgrid, T, tuple(start[k])) for k in range(nz)]
    (results,) = compute(tasks, step="estimate_drift: slices against the reference")
    res = np.asarray(results, dtype=np.float64).reshape(nz, 3)
    drift, quality = res[:, :2], res[:, 2]
    bad = ~np.all(np.isfinite(drift), axis=1)
    if bad.all():
        raise GridError("reference: no slice of da overlaps its reference slice through the transform; check it")
    drift[bad] = 0.0
    # positions (px) against their running median: one bad slice is one outlier; so is one at the search bound
    fs = float(np.mean(rgrid.spacing))
    reach = fs * sum(step * n for _, step, n in _XDRIFT_GRIDS)
    at_bound = np.any(np.abs(drift - start) >= reach - 0.5 * fs, axis=1) & ~bad
    outlier = _flag_outliers(drift / float(np.mean(grid.spacing)), quality) | bad | at_bound
    why = (f"slices {np.flatnonzero(at_bound).tolist()} at the search bound, {reach:.4g} nm from their start"
           if at_bound.any() else "")
    out = _drift_array(arr, drift, quality, outlier, "multiple correlation with the reference channels", why)
    _warn_weak_linear(quality[~bad])
    out = out.assign_coords(trend=(("z", "component"), np.zeros_like(drift), {"units": LENGTH_UNIT}))
    return record(out, "estimate_drift", reference="cross-modal", channels=[str(c.name) for c in chans],
                  transform=Affine(T.matrix, T.dims), roi=roi)
