"""Drift correction and cross-modal SIMS-to-EDS registration, automatic and sub-pixel.

Four steps, each measured and recorded:

- :func:`estimate_drift`: per-slice stage drift of a stack, by sub-pixel
  phase correlation (scikit-image), or cross-modally against the drift-free
  EDS slices through a registration; with a quality score and outlier flags;
- :func:`correct_drift`: removes it, lazily, through :func:`pfibsims.resampling.resample`;
- :func:`register`: the in-plane `Affine` that maps the fixed (EDS) frame onto
  the moving (SIMS) frame, found by a global search then a local refinement of
  a cross-modal metric; the result carries a :class:`RegistrationReport`;
- :func:`slice_transforms`, :func:`warp`: the registration composed with each
  slice's drift, and :func:`pfibsims.resampling.resample` through it (one
  interpolation), recorded.

For the best accuracy (the phantom's targets) chain them::

    rough = estimate_drift(sims.Li6)                          # slice to slice
    T0 = register(sims.Li6, eds, drift=rough)                 # global search + refinement
    drift = estimate_drift(sims.Li6, reference=eds, transform=T0, initial=rough)
    T = register(sims.Li6, eds, drift=drift)                  # sharper z-mean, same raw slices
    fused = warp(sims, T, eds, drift=drift)

Conventions (see :mod:`pfibsims.transform`): lengths in nm, points ordered
``(y, x)``; the transform *pulls* (fixed point -> moving point), so
``resample(moving, onto=fixed, transform=T)`` uses it directly.  Drift is the
displacement of the sample in the image frame: the feature at ``q`` in the
reference slice is at ``q + drift[k]`` in slice ``k``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import scipy.ndimage as ndi
import xarray as xr
from skimage.registration import phase_cross_correlation

from .._engine.smooth import gaussian
from .._engine.views import MAX_PIXELS, check_max_pixels
from .._xr import block_mean, check_dims, dequantify
from ..errors import DataModelError, EstimationWarning, GridError, PfibsimsError, RegistrationError
from ..grid import Grid
from ..progress import steps
from ..resampling.drift import drift_nm
from ..transform import Affine
from . import search as _search
from .report import RegisteredAffine, RegistrationReport
from .views import View, reduced_view

# --------------------------------------------------------------------------
# registration
# --------------------------------------------------------------------------
_METRICS = ("mi", "ncc", "phase")


# A registration fails (RegistrationError) when the global optimum is not
# significant: its robust z-score against the whole search surface is below
# _MIN_ZSCORE, or it barely beats the best distinct runner-up (prominence
# below _MIN_PROMINENCE).  Calibrated on the phantom against Poisson and
# smoothed noise (z-scores 6-8.3, prominences up to 0.16, default and smaller
# fields) and true pairs (z-scores from 19.6, a 160 x 256 px EDS field, to
# over 40); see tests/test_register.py.
_MIN_ZSCORE = 15.0


_MIN_PROMINENCE = 0.15


_AMBIGUOUS_PROMINENCE = 0.5


_LOW_OVERLAP = 0.5


_FINAL_MIN_R = 0.3


def _check_pair(moving: Any, fixed: Any) -> None:
    for obj, name in ((moving, "moving"), (fixed, "fixed")):
        if not isinstance(obj, (xr.DataArray, xr.Dataset)):
            raise DataModelError(f"{name}: expected an xarray DataArray or Dataset, got {type(obj).__name__}")
        check_dims(obj, name, ("y", "x"))
    mz, fz = "z" in moving.dims, "z" in fixed.dims
    if mz != fz:
        raise DataModelError(
            f"moving, fixed: expected both 2-D (y, x) or both 3-D (z, y, x), got moving dims {tuple(moving.dims)} "
            f"and fixed dims {tuple(fixed.dims)}; select a slice (.isel(z=k)) or add one (.expand_dims('z'))"
        )
    if mz and moving.sizes["z"] != fixed.sizes["z"]:
        raise DataModelError(
            f"moving, fixed: expected the same number of slices, got {moving.sizes['z']} and {fixed.sizes['z']}"
        )


def initial_transform(initial: Any, mg: Grid, fg: Grid) -> Affine:
    if initial is None:
        centre = lambda g: np.array([0.5 * (lo + hi) for lo, hi in g.extent])  # noqa: E731
        return Affine.translation(tuple(centre(mg) - centre(fg)))
    if not isinstance(initial, Affine):
        raise PfibsimsError(f"initial: expected a pfibsims.Affine (fixed point -> moving point) or None, got "
                            f"{type(initial).__name__}")
    if initial.dims == ("y", "x"):
        return Affine(initial.matrix, initial.dims)
    try:
        inner = initial.restrict(("y", "x"))
    except (PfibsimsError, ValueError):
        inner = None
    if inner is None or not initial.restrict(tuple(d for d in initial.dims if d not in ("y", "x"))).is_identity():
        raise PfibsimsError(f"initial: expected an in-plane (y, x) transform, got one on {initial.dims} that "
                            f"moves z")
    return inner


def _levels(view: View) -> list[float]:
    fs = float(np.mean(view.fixed_grid.spacing))
    ms = float(np.mean(view.moving_grid.spacing))
    size = max(hi - lo for g in (view.fixed_grid, view.moving_grid) for lo, hi in g.extent)
    coarse = max(fs, ms, size / 128.0)
    levels = [coarse]
    while levels[-1] / 2 > 1.5 * fs:
        levels.append(levels[-1] / 2)
    if levels[-1] > fs * 1.01:
        levels.append(fs)
    return levels


def _params_from_search(model: str, found: np.ndarray) -> np.ndarray:
    p = np.zeros(_search.n_params(model))
    p[:2] = found[:2]
    if model != "translation":
        p[2] = found[2]
    return p


def _flags(model, params, bounds, level, initial, centre, metric, score, overlap, prominence) -> list[str]:
    flags = []
    for _name, v, (lo, hi) in zip(_search.MODELS[model], params, bounds, strict=False):
        tol = 0.005 * (hi - lo)
        if v <= lo + tol or v >= hi - tol:
            flags.append("at_bound")
            break
    # Flat: moving one fixed pixel in y or x must lower the metric measurably.
    h = level.spacing
    drops = []
    for dy, dx in ((h, 0), (-h, 0), (0, h), (0, -h)):
        p = params.copy()
        p[0] += dy
        p[1] += dx
        v, _ = _search.evaluate(level, initial @ _search.model_affine(p, model, centre), metric)
        drops.append(score - v)
    if min(drops) <= 1e-3 * abs(score):
        flags.append("flat")
    if prominence < _AMBIGUOUS_PROMINENCE:
        flags.append("ambiguous")
    if overlap < _LOW_OVERLAP:
        flags.append("low_overlap")
    return flags


def noise_floor(n_pixels: int) -> float:
    """The phase-correlation quality two images of pure noise reach, with margin: ``30 / sqrt(n_pixels)``.

    Measured on independent Poisson noise: 0.19-0.27 at 64^2, 0.06-0.07 at 256^2, 0.04 at 500^2 pixels
    (about ``13.5 / sqrt(n)``); real slice-and-view data give 0.95-0.97 (0.70 at a twentieth of the counts).
    """
    return min(0.5, 30.0 / math.sqrt(max(int(n_pixels), 1)))


def _phase_only(view: View, initial: Affine) -> tuple[np.ndarray, float]:
    """Translation by phase correlation of gradient magnitudes on the fixed grid (the baseline)."""
    fg = view.fixed_grid
    pts = np.stack(np.meshgrid(*fg.coords().values(), indexing="ij"), axis=-1)
    level = _search.make_level(view.moving, view.moving_grid, view.fixed, fg, fg.spacing[0])
    vals, inside = _search.sample_moving(level, initial, pts.reshape(-1, 2))
    mov = np.zeros(pts.shape[:2])
    mov.reshape(-1)[inside] = vals

    def gradient(img: np.ndarray) -> np.ndarray:
        img = (img - img.mean()) / (img.std() or 1.0)
        return np.hypot(ndi.sobel(img, 0), ndi.sobel(img, 1))

    fix = sum(gradient(gaussian(c, 1.0)) for c in view.fixed)
    shift, error, _ = phase_cross_correlation(fix, gradient(mov), upsample_factor=20)
    # shift registers the pulled moving image onto fixed: fixed(p) = mov(p - shift)
    t = -np.asarray(shift) * np.asarray(fg.spacing)
    return t, math.sqrt(max(0.0, 1.0 - float(error) ** 2))


def register(
    moving: xr.DataArray | xr.Dataset,
    fixed: xr.DataArray | xr.Dataset,
    *,
    model: str = "rigid",
    metric: str = "mi",
    initial: Affine | None = None,
    per_slice: bool = False,
    drift: xr.DataArray | None = None,
    max_pixels: int = MAX_PIXELS,
) -> RegisteredAffine | list[RegisteredAffine]:
    """The in-plane transform that maps the fixed frame onto the moving frame.

    Parameters
    ----------
    moving : xarray.DataArray or Dataset
        E.g. ``sims.Li6``: the raw stack with its ``drift``, or a stack
        already drift-corrected (:func:`correct_drift`).  A Dataset's
        channels are summed, each divided by its mean.
    fixed : xarray.DataArray or Dataset
        One channel or a whole multi-channel dataset (e.g. ``eds``).
    model : {"translation", "rigid", "similarity", "affine"}
        ``similarity`` also fits one scale (pixel sizes are estimates);
        ``affine`` fits scales per axis and a shear.
    metric : {"mi", "ncc", "phase"}
        ``"mi"`` (default): mutual information between the moving intensity
        and a label map of the fixed channels (quantile bins of one channel,
        or k-means clusters of several: a data-driven phase map), Mattes-style
        (Parzen-smoothed joint histogram), which needs no linear relation
        between SIMS Li and any EDS element. ``"ncc"``: correlation of the
        moving image with its least-squares prediction from all fixed
        channels (linear in the channels). ``"phase"``: scikit-image's phase
        correlation of gradient magnitudes, translation only, no global
        search bound or rotation: the baseline, weak across modalities.
    initial : Affine, optional
        Starting transform (fixed -> moving, nm); by default the one that
        puts the centres of the two fields together. The search is around it.
    per_slice : bool
        Also refine the transform on every slice (from the global result):
        returns a list, one transform per slice (each including that
        slice's drift when ``drift`` is given).
    drift : xarray.DataArray, optional
        The moving stack's drift ``(z, component)`` nm (:func:`estimate_drift`):
        slice ``k``'s fixed point ``p`` is at ``T(p) + drift[k]``.  The
        z-mean is then of the drift-corrected stack and the final refinement
        samples each raw slice through its own drift (no resampled data).
        The transform returned excludes the drift: warp with
        ``warp(moving, T, fixed, drift=drift)``.
    max_pixels : int
        Register at most about this many pixels a slice per modality
        (default 2048^2): a larger moving or fixed field is first reduced to
        ``f x f`` block means, lazily (coordinates are block centres, so the
        transform is in the full data's nm frame; its precision is a fraction
        of the reduced pixel).  At 700 um (8600^2 EDS, 9722^2 SIMS px) the
        z-means and final slices at full resolution would need several GB.

    Returns
    -------
    RegisteredAffine or list of RegisteredAffine
        An `Affine` on ``("y", "x")`` in nm with a ``.report``
        (:class:`RegistrationReport`); ``resample(moving, onto=fixed,
        transform=T)`` puts the moving data on the fixed grid.

    Raises
    ------
    RegistrationError
        When no significant optimum exists (e.g. unrelated images); the
        exception's ``report`` attribute holds the report.
    GridError
        When the fields cannot overlap within the search range.
    DataModelError
        2-D against 3-D data, different slice counts, missing dims.
    UnitsError
        Coordinates without length units.
    PfibsimsError
        Unknown ``model`` / ``metric``, or ``metric="phase"`` with another
        model than ``"translation"``.

    Warns
    -----
    EstimationWarning
        When the optimum is flat, at a search bound, ambiguous (a distinct
        runner-up almost as good) or the overlap is below half the fixed field.

    Notes
    -----
    Only a reduced view is computed (of the block means when a field has more
    than ``max_pixels`` pixels a slice), in one pass: the z-mean of the moving
    image (drift-corrected through :func:`pfibsims.resampling.resample` when
    ``drift`` is given) and of each fixed channel, at their own pixel sizes,
    plus up to 6 evenly spaced raw slices of both for the final stage (with
    ``per_slice``, then each slice in turn).  Coarse to fine:

    1. global search on a grid of ``max(pixel sizes, largest field / 128)``:
       translations up to half the smaller field (per axis) around
       ``initial`` and rotations over +/- 5 deg (step: half a coarse pixel at
       the field's corner), mutual information of every translation at once by
       FFT of bin-indicator images; the four best distinct peaks are kept;
    2. local refinement of each (Powell, scipy) at halving spacings down to
       the fixed pixel size, with the chosen metric; the moving image is
       Gaussian-smoothed to each level and sampled with a cubic B-spline of
       the in-memory reduced view (``scipy.ndimage.map_coordinates``), not
       with :func:`pfibsims.resampling.resample` (the path for data);
    3. final sub-pixel refinement (Powell) of the multiple correlation of the
       moving values with their least-squares prediction from all fixed
       channels (``"ncc"``: smooth and well conditioned where the binned MI
       is not), pooled over the raw slices at the fixed pixel size, each
       slice sampled through its drift (for 2-D data: on the map itself).
       After ``"mi"`` it runs only when that prediction explains the moving
       image (correlation >= 0.3); otherwise MI is refined at the fixed pixel
       size.  The report's ``refinement`` says which ran.

    On the phantom (``pfibsims.synthetic.cathode``, default dose, true drift
    given) the rigid transform is within 2-15 nm over the EDS field and
    0.02 deg; see ``benchmarks/README.md``.

    Bounds: rotation +/- 5 deg, scales within 10 %, shear within 0.1.

    Examples
    --------
    >>> import numpy as np, scipy.ndimage as ndi
    >>> from pfibsims import stack
    >>> rng = np.random.default_rng(0)
    >>> scene = ndi.gaussian_filter(rng.random((160, 160)), 3)
    >>> fixed = stack({"Zr_La": scene[30:126, 20:116]}, pixel_size="80 nm")
    >>> moving = stack({"Li6": np.exp(-8 * scene)}, pixel_size="80 nm")   # a nonlinear relation
    >>> T = register(moving.Li6, fixed, model="translation")
    >>> (T.offset / 80).round(1).tolist(), T.report.flags
    ([30.0, 20.0], ())
    """
    moving = dequantify(moving, "moving")
    fixed = dequantify(fixed, "fixed")
    if model not in _search.MODELS:
        raise PfibsimsError(f"model: expected one of {tuple(_search.MODELS)}, got {model!r}")
    if metric not in _METRICS:
        raise PfibsimsError(f"metric: expected one of {_METRICS}, got {metric!r}")
    if metric == "phase" and model != "translation":
        raise PfibsimsError(f"metric: 'phase' estimates a translation only; use model='translation' or "
                            f"metric='mi' for model={model!r}")
    _check_pair(moving, fixed)
    check_max_pixels(max_pixels)
    moving, fixed = block_mean(moving, max_pixels), block_mean(fixed, max_pixels)
    if per_slice and "z" not in moving.dims:
        raise DataModelError("per_slice: expected 3-D (z, y, x) data, got 2-D maps")
    shifts = None
    if drift is not None:
        if "z" not in moving.dims:
            raise DataModelError(f"drift: expected 3-D (z, y, x) data to apply a per-slice drift to, got dims "
                                 f"{tuple(moving.dims)}")
        shifts = drift_nm(drift, moving.sizes["z"])
    view = reduced_view(moving, fixed, drift=shifts, slices=metric != "phase")
    with steps("register: search and refinement levels", len(_levels(view)) + 1) as advance:
        T, report = _register_view(view, model, metric, initial, advance)
    if not per_slice:
        return RegisteredAffine(T.matrix, T.dims, report)
    return [_refine_slice(moving, fixed, k, T if shifts is None else Affine.translation(tuple(shifts[k])) @ T,
                          model, metric) for k in range(moving.sizes["z"])]


def _search_range(view: View) -> tuple[float, float]:
    return tuple(  # type: ignore[return-value]
        0.5 * min(f[1] - f[0], m[1] - m[0]) for f, m in zip(view.fixed_grid.extent, view.moving_grid.extent, strict=False)
    )


def _check_reachable(view: View, init: Affine, search: tuple[float, float]) -> None:
    """GridError when no translation in the search range makes the fields overlap."""
    corners = np.array([[lo, lo2] for lo in view.fixed_grid.extent[0] for lo2 in view.fixed_grid.extent[1]])
    mapped = init(corners)
    for ax, d in enumerate("yx"):
        lo, hi = mapped[:, ax].min() - search[ax], mapped[:, ax].max() + search[ax]
        mlo, mhi = view.moving_grid.extent[ax]
        if hi <= mlo or lo >= mhi:
            raise GridError(
                f"moving, fixed: the fields do not overlap along {d}, even with the search range of "
                f"+/- {search[ax]:.6g} nm: the fixed field maps to {mapped[:, ax].min():.6g}..{mapped[:, ax].max():.6g}"
                f" nm, the moving field spans {mlo:.6g}..{mhi:.6g} nm; give an initial transform"
            )


def _register_view(view: View, model: str, metric: str, initial: Any,
                   advance: Any = lambda n=1: None) -> tuple[Affine, RegistrationReport]:
    init = initial_transform(initial, view.moving_grid, view.fixed_grid)
    centre = view.fixed_grid.center
    search = _search_range(view)
    _check_reachable(view, init, search)
    levels = _levels(view)
    finest = _search.make_level(view.moving, view.moving_grid, view.fixed, view.fixed_grid, levels[-1])
    ev_metric = "ncc" if metric == "phase" else metric
    before, _ = _search.evaluate(finest, init, ev_metric)
    bounds = _search.bounds_for(model, np.zeros(_search.n_params(model)), search)
    if metric == "phase":
        t, quality = _phase_only(view, init)
        params = np.array(t)
        after, overlap = _search.evaluate(finest, init @ _search.model_affine(params, model, centre), ev_metric)
        zscore, prominence, nfev, used = float("nan"), float("nan"), 0, [levels[-1]]
        refinement = "none (phase correlation)"
    else:
        coarse = _search.make_level(view.moving, view.moving_grid, view.fixed, view.fixed_grid, levels[0])
        found = _search.global_search(coarse, init, centre, search, rotations=model != "translation")
        advance()
        if not np.isfinite(found.score):
            raise GridError(
                "moving, fixed: no translation within the search range overlaps a quarter of the fixed field; "
                "give an initial transform"
            )
        zscore = float(found.zscore)
        prominence = float((found.score - found.second) / max(found.score - found.median, 1e-12))
        nfev = 0
        if zscore < _MIN_ZSCORE or prominence < _MIN_PROMINENCE:
            # no significant optimum: nothing worth refining (reported as failed below)
            params = _params_from_search(model, found.candidates[0][1])
            refinement = "none: no significant optimum in the global search"
        else:
            best = None
            pyramid = [coarse] + [
                _search.make_level(view.moving, view.moving_grid, view.fixed, view.fixed_grid, h) for h in levels[1:-1]
            ]
            # Refine the best candidates on the coarse level; keep the best; then go fine.
            for _, cand in found.candidates[:2]:
                p, score, n = _search.refine(coarse, init, centre, _params_from_search(model, cand), model, metric,
                                             bounds, xtol=0.1)
                nfev += n
                if best is None or score > best[1]:
                    best = (p, score)
            params = best[0]
            for level in pyramid[1:]:
                params, _, n = _search.refine(level, init, centre, params, model, metric, bounds, xtol=0.05)
                nfev += n
                advance()
            params, refinement, n = _final_refine(view, finest, init, centre, params, model, metric, bounds)
            nfev += n
            if not n and len(levels) > 1:  # no final "ncc" stage: finish with the metric itself
                params, _, n = _search.refine(finest, init, centre, params, model, metric, bounds, xtol=0.01)
                nfev += n
        after, overlap = _search.evaluate(finest, init @ _search.model_affine(params, model, centre), metric)
        used = levels
    advance()
    T = init @ _search.model_affine(params, model, centre)
    flags = _flags(model, params, bounds, finest, init, centre, ev_metric, after, overlap,
                   prominence if np.isfinite(prominence) else 1.0)
    floor = noise_floor(math.prod(view.fixed_grid.shape))
    if metric == "phase":  # a correlation no higher than noise gives is no registration (issue 21)
        failed = not after >= floor
    else:
        failed = zscore < _MIN_ZSCORE or prominence < _MIN_PROMINENCE or not after > 0
    if failed:
        flags.append("failed")
    report = RegistrationReport(
        model=model, metric=metric, success=not failed, metric_before=float(before), metric_after=float(after),
        overlap=float(overlap), iterations=int(nfev), levels=tuple(float(h) for h in used), zscore=zscore,
        prominence=prominence, parameters=_parameters(T), flags=tuple(flags), reduced_view=view.description,
        refinement=refinement,
    )
    if failed:
        why = (f"no correlation above noise at the phase-correlation peak (NCC {after:.3g}, needs >= {floor:.3g})" if metric == "phase"
               else f"no significant optimum (z-score {zscore:.3g}, needs >= {_MIN_ZSCORE:g}; prominence {prominence:.3g}, "
                    f"needs >= {_MIN_PROMINENCE:g}; metric {after:.3g})")
        exc = RegistrationError(
            f"moving, fixed: expected images that share structure, found {why}; check that the channels show the "
            "same region, or give an initial transform"
        )
        exc.report = report  # type: ignore[attr-defined]
        raise exc
    warn = [f for f in flags if f in ("at_bound", "flat", "ambiguous", "low_overlap")]
    if warn:
        warnings.warn(
            f"register: the result is doubtful ({', '.join(warn)}); see the report: {report.to_dict()}",
            EstimationWarning, stacklevel=3,
        )
    return T, report


def _final_refine(view: View, finest: _search.Level, init: Affine, centre: Any, params: np.ndarray, model: str,
                  metric: str, bounds: list) -> tuple[np.ndarray, str, int]:
    """Sub-pixel refinement by the pooled least-squares prediction ("ncc", smooth and well conditioned).

    On the raw slices of the view (each through its drift) at the fixed pixel
    size, or on the finest level of a 2-D view.  After ``"mi"`` it runs only
    when the linear prediction explains the moving image (multiple correlation
    >= ``_FINAL_MIN_R``), else the MI result stands.
    """
    if view.slice_moving:
        fs = float(np.mean(view.fixed_grid.spacing))
        lv = [_search.make_level(m, view.moving_grid, f, view.fixed_grid, fs, labels=False)
              for m, f in zip(view.slice_moving, view.slice_fixed, strict=True)]
        pre = view.slice_drift
        where = f"slices {list(view.slice_index)} (raw, each through its drift) at {fs:.4g} nm"
    else:
        lv, pre = [finest], None
        where = f"the reduced view at {finest.spacing:.4g} nm"

    def value(p: np.ndarray) -> float:
        T = init @ _search.model_affine(p, model, centre)
        return _search.evaluate_many(lv, [T if d is None else d @ T for d in (pre or [None] * len(lv))], "ncc")[0]

    r0 = value(params)
    if metric == "mi" and not r0 >= _FINAL_MIN_R:
        return params, (f"mi at {finest.spacing:.4g} nm (the linear prediction explains too little for ncc: "
                        f"r = {r0:.3g} < {_FINAL_MIN_R})"), 0
    out, r1, n = _search.refine(lv, init, centre, params, model, "ncc", bounds, xtol=0.01, pre=pre)
    return out, f"ncc (multiple correlation {r0:.4f} -> {r1:.4f}) over {where}", n


def _parameters(T: Affine) -> dict[str, Any]:
    d = T.decompose()
    return {"rotation_deg": d["rotation"], "scale": list(d["scale"]), "shear": d["shear"],
            "shift_nm": list(d["shift"])}


def _refine_slice(moving: Any, fixed: Any, k: int, T: Affine, model: str, metric: str) -> RegisteredAffine:
    view = reduced_view(moving, fixed, z=k)
    centre = view.fixed_grid.center
    search = _search_range(view)
    level = _search.make_level(view.moving, view.moving_grid, view.fixed, view.fixed_grid, view.fixed_grid.spacing[0])
    ev_metric = "ncc" if metric == "phase" else metric
    before, _ = _search.evaluate(level, T, ev_metric)
    bounds = _search.bounds_for(model, np.zeros(_search.n_params(model)), search)
    params, after, n = _search.refine(level, T, centre, np.zeros(_search.n_params(model)), model, ev_metric, bounds)
    Tk = T @ _search.model_affine(params, model, centre)
    after, overlap = _search.evaluate(level, Tk, ev_metric)
    ok = bool(after > 0)
    report = RegistrationReport(
        model=model, metric=ev_metric, success=ok, metric_before=float(before), metric_after=float(after),
        overlap=float(overlap), iterations=int(n), levels=(float(level.spacing),), zscore=float("nan"),
        prominence=float("nan"), parameters=_parameters(Tk), flags=() if ok else ("failed",),
        reduced_view=view.description,
    )
    if not ok:
        warnings.warn(f"register: slice {k} found no structure to register on; its report says failed",
                      EstimationWarning, stacklevel=3)
    return RegisteredAffine(Tk.matrix, Tk.dims, report)
