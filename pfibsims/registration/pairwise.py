"""`register`: the in-plane transform of one modality onto another, found by search, refined, tested.

Stages (each recorded in the :class:`~pfibsims.registration.report.RegistrationReport`):

1. a reduced view (:mod:`.views`): the z-mean of each modality at its own
   pixel size, NaN and masked pixels kept as NaN (excluded from every metric);
2. a search on a coarse level (:mod:`.search`): mutual information of every
   translation at once by FFT, at each angle of a rotation grid
   (``search="global"``) or around ``initial`` only (``search="local"``);
3. the significance test of the best placements (:func:`.significance.agreement`):
   the tiles of the fixed field must agree on it;
4. local refinement (Powell; :mod:`.refinement`) level by level down to the
   fixed pixel size with the chosen metric, at the finest level on 2 x 2
   jittered samples a fixed pixel (no interpolation bias; the draw of the
   positions averaged out) and, for a stack of more than
   :data:`GROUP_SLICES` slices, pooled over the means of groups of
   consecutive slices rather than the z-mean.

Every stage maximises the requested metric (the search: mutual information):
no stage of another metric moves the answer.
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
from .._xr import ascending, block_mean, check_dims, dequantify, mask_data
from ..errors import DataModelError, EstimationWarning, GridError, PfibsimsError
from ..grid import Grid
from ..progress import steps
from ..resampling.drift import drift_nm
from ..transform import Affine
from . import flags as _flags
from . import levels as _lv
from . import refine as _refine
from . import search as _search
from . import significance as _significance
from .refinement import polish_two_valued, pyramid, refine_stage
from .report import Registration, RegistrationReport
from .views import View, fixed_channels, reduced_view

__all__ = ["initial_transform", "register"]

_METRICS = ("mi", "ncc", "phase")
_SEARCHES = ("global", "local")

#: A local search covers this many coarse pixels around ``initial`` on each side, and at least this
#: fraction of the smaller field.
_LOCAL_REACH_PX = 4
_LOCAL_REACH_FRACTION = 0.1


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


def _masked(fixed: Any, mask: Any) -> Any:
    """``fixed`` with NaN where ``mask`` is False (lazily); ``mask`` checked against the fixed channels."""
    if mask is None:
        return fixed
    first = fixed_channels(fixed)[0]
    if not isinstance(mask, xr.DataArray) or not {"y", "x"} <= set(mask.dims):
        raise DataModelError(f"mask: expected a boolean DataArray with dims (y, x) on the fixed grid (True = use), "
                             f"got {type(mask).__name__} with dims {getattr(mask, 'dims', None)}")
    data = mask_data(mask, first, "mask")
    keep = xr.DataArray(data, dims=first.dims, coords={d: first.coords[d] for d in first.dims if d in first.coords})
    return fixed.where(keep)


def initial_transform(initial: Any, mg: Grid, fg: Grid) -> Affine:
    """``initial`` as an in-plane Affine; by default the translation that puts the field centres together."""
    if initial is None:
        return Affine.translation(tuple(np.asarray(mg.center) - np.asarray(fg.center)))
    if not isinstance(initial, Affine):
        raise PfibsimsError(f"initial: expected a pfibsims.Affine (fixed point -> moving point) or None, got "
                            f"{type(initial).__name__}")
    if initial.dims == ("y", "x"):
        return Affine(initial.matrix, initial.dims)
    try:
        inner = initial.restrict(("y", "x"))
    except (PfibsimsError, ValueError):
        inner = None
    m, n = np.asarray(initial.matrix, dtype=np.float64), len(initial.dims)
    out_of_plane = [i for i, d in enumerate(initial.dims) if d not in ("y", "x")]
    unit = np.eye(n + 1)
    if inner is None or not all(np.allclose(m[i], unit[i]) and np.allclose(m[:, i], unit[:, i]) for i in out_of_plane):
        raise PfibsimsError(f"initial: expected an in-plane (y, x) transform, got one on {initial.dims} that "
                            f"moves z")
    return inner


#: The last refinement of a stack pools the means of groups of at most this many consecutive slices, not the
#: z-mean of the whole stack: a mean over a depth as large as the particles mixes the phases, and the mutual
#: information of such mixtures is biased.  Measured (benchmarks/README.md, issue 22) on 24-slice phantoms
#: (60 nm slices, EDS 160 x 256 px), true drift given: the z-mean's MI optimum 0.03-0.18 deg off the true
#: rotation (seeds 0, 1, 3; worst corner 25-41 nm), the pooled means of 4 groups of 6 slices 0.002-0.038 deg
#: (2-12 nm); 6-slice stacks: 3-18 nm from the z-mean.
GROUP_SLICES = 6


def slice_groups(n_slices: int) -> list[np.ndarray] | None:
    """Consecutive runs of at most ``GROUP_SLICES`` slices covering ``n_slices``, as even as possible; None
    when one run holds them all.

    Examples
    --------
    >>> [g.tolist() for g in slice_groups(14)]
    [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12, 13]]
    >>> slice_groups(6) is None
    True
    """
    if n_slices <= GROUP_SLICES:
        return None
    return np.array_split(np.arange(n_slices), math.ceil(n_slices / GROUP_SLICES))


def _levels(view: View) -> list[float]:
    """Pyramid spacings (nm), coarse to fine: from ``max(pixel sizes, largest field / 128)`` halving to the fixed pixel."""
    fs = float(np.mean(view.fixed_grid.spacing))
    ms = float(np.mean(view.moving_grid.spacing))
    size = max(hi - lo for g in (view.fixed_grid, view.moving_grid) for lo, hi in g.extent)
    levels = [max(fs, ms, size / 128.0)]
    while levels[-1] / 2 > 1.5 * fs:
        levels.append(levels[-1] / 2)
    if levels[-1] > fs * 1.01:
        levels.append(fs)
    return levels


def _search_range(view: View, search: str, coarse: float) -> tuple[float, float]:
    """Translations searched around the initial (nm per axis): half the fixed field (a smaller moving field
    anywhere over it), or the local reach (a fraction of the smaller field)."""
    fixed = [0.5 * (f[1] - f[0]) for f in view.fixed_grid.extent]
    if search == "global":
        return tuple(fixed)  # type: ignore[return-value]
    half = [min(h, 0.5 * (m[1] - m[0])) for h, m in zip(fixed, view.moving_grid.extent, strict=True)]
    return tuple(min(h, max(_LOCAL_REACH_PX * coarse, 2 * _LOCAL_REACH_FRACTION * min(half))) for h in half)  # type: ignore[return-value]


def _check_reachable(view: View, init: Affine, search: tuple[float, float]) -> None:
    """GridError when no translation in the search range makes the fields overlap."""
    corners = np.array([[a, b] for a in view.fixed_grid.extent[0] for b in view.fixed_grid.extent[1]])
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


def _params_from_search(model: str, found: np.ndarray) -> np.ndarray:  # from (ty, tx, rotation, log_scale)
    p = np.zeros(_search.n_params(model))
    p[:2] = found[:2]
    if model != "translation":
        p[2] = found[2]
    if model in ("similarity", "affine"):
        p[3:5 if model == "affine" else 4] = found[3]  # log_scale, or log_scale_y and log_scale_x
    return p


def _parameters(T: Affine) -> dict[str, Any]:
    d = T.decompose()
    return {"rotation_deg": d["rotation"], "scale": list(d["scale"]), "shear": d["shear"],
            "shift_nm": list(d["shift"])}


def _candidate_dicts(found: _search.SearchResult, init: Affine, centre: Any) -> tuple[dict, ...]:
    out = []
    for c in found.candidates:
        T = init @ _search.model_affine(c.params, "similarity", centre)
        out.append({"shift_nm": [float(v) for v in T.offset], "centre_shift_nm": [float(v) for v in T([centre])[0] - centre],
                    "rotation_deg": float(c.params[2]), "scale": math.exp(c.log_scale), "mi": float(c.score), "agreement": list(c.agreement)})
    return tuple(out)


def noise_floor(n_pixels: int) -> float:
    """The phase-correlation quality two images of pure noise reach, with margin: ``30 / sqrt(n_pixels)``.

    Measured on independent Poisson noise: 0.19-0.27 at 64^2, 0.06-0.07 at 256^2, 0.04 at 500^2 pixels
    (about ``13.5 / sqrt(n)``); real slice-and-view data give 0.95-0.97 (0.70 at a twentieth of the counts).
    """
    return min(0.5, 30.0 / math.sqrt(max(int(n_pixels), 1)))


def _phase_only(view: View, initial: Affine) -> np.ndarray:
    """Translation (nm) by phase correlation of gradient magnitudes on the fixed grid (the baseline)."""
    fg = view.fixed_grid
    pts = np.stack(np.meshgrid(*fg.coords().values(), indexing="ij"), axis=-1)
    level = _lv.make_level(view.moving, view.moving_grid, view.fixed, fg, fg.spacing[0], labels=False)
    vals, inside = _search.sample_moving(level, initial, pts.reshape(-1, 2))
    mov = np.full(pts.shape[:2], np.nan)
    mov.reshape(-1)[inside] = vals

    def gradient(img: np.ndarray) -> np.ndarray:
        img = gaussian(img, 1.0)
        img = (img - img.mean()) / (img.std() or 1.0)
        return np.hypot(ndi.sobel(img, 0), ndi.sobel(img, 1))

    fix = sum(gradient(c) for c in view.fixed)
    shift, _, _ = phase_cross_correlation(fix, gradient(mov), upsample_factor=20)
    # shift registers the pulled moving image onto fixed: fixed(p) = mov(p - shift)
    return -np.asarray(shift) * np.asarray(fg.spacing)


def _search_stage(view: View, coarse: _lv.Level, init: Affine, centre: Any, model: str,
                  search: str) -> tuple[_search.SearchResult, list[_search.Candidate]]:
    """The first of the search's two best candidates that passes the significance test (or none)."""
    rng = _search_range(view, search, coarse.spacing)
    _check_reachable(view, init, rng)
    angles = _search.rotation_grid(model != "translation" and search == "global")
    scales = _search.SEARCH_LOG_SCALES if model in ("similarity", "affine") and search == "global" else (0.0,)
    found = _search.global_search(coarse, init, centre, rng, angles, log_scales=scales)
    if not found.candidates:
        raise GridError("moving, fixed: no translation within the search range overlaps a quarter of the fixed "
                        "field; give an initial transform")
    return found, _significance.significant(coarse, init, centre, _search_range(view, "global", coarse.spacing), found)


def _register_view(view: View, model: str, metric: str, initial: Any, search: str,
                   advance: Any = lambda n=1: None) -> Registration:
    init = initial_transform(initial, view.moving_grid, view.fixed_grid)
    centre = view.fixed_grid.center
    levels = _levels(view)
    ev = "ncc" if metric == "phase" else metric
    coarse, middle, finest = pyramid(view, levels, ev, search=metric != "phase")
    before, _ = _search.evaluate_pooled(finest, init, ev)
    bounds = _refine.bounds_for(model, np.zeros(_search.n_params(model)), _search_range(view, "global", levels[0]))
    found, nfev, used, passed, fev = None, 0, levels, [True], ev
    if metric == "phase":
        params, refinement, used = _phase_only(view, init), "none (phase correlation)", [levels[-1]]
    else:
        found, passed = _search_stage(view, coarse, init, centre, model, search)
        advance()
        if passed:
            start = _params_from_search(model, passed[0].params)
            params, nfev = refine_stage(coarse, middle, finest, init, centre, start, model, metric, bounds)
            refinement = (f"{metric} at {float(np.mean(view.fixed_grid.spacing)):.4g} nm on jittered samples"
                          + (f", pooled over the means of {len(finest)} groups of slices" if view.groups else ""))
            polish = polish_two_valued(view, finest, init, centre, params, model, bounds) if ev == "mi" else None
            if polish is not None:  # the flags test the metric that placed it
                params, nfev, refinement, fev = polish[0], nfev + polish[2], refinement + polish[1], "ncc"
        else:
            params = _params_from_search(model, found.candidates[0].params)
            refinement = "none: no significant placement in the search"
    advance()
    T = init @ _search.model_affine(params, model, centre)
    after, overlap = _search.evaluate_pooled(finest, T, ev)
    prominence = found.prominence if found is not None else float("nan")
    step = max(finest[0].spacing, 2.0 * _lv.count_sigma(view.moving) * float(np.mean(view.moving_grid.spacing)))
    score = after if fev == ev else _search.evaluate_pooled(finest, T, fev)[0]
    flags, scale = _flags.flags(model, params, bounds, finest, init, centre, fev, score, overlap,
                                prominence if np.isfinite(prominence) else 1.0, step)
    floor = noise_floor(math.prod(view.fixed_grid.shape))
    # "phase" has no search to test: a correlation no higher than noise gives is no registration (issue 21)
    failed = not after >= floor if metric == "phase" else not passed or not after > 0
    if failed:
        flags.append("failed")
    best = found.candidates[0] if found is not None else None
    report = RegistrationReport(
        model=model, metric=metric, success=not failed, metric_before=float(before), metric_after=float(after),
        overlap=float(overlap), iterations=int(nfev), levels=tuple(float(h) for h in used),
        agreement=(passed[0].agreement if passed and found is not None else best.agreement if best else (0, 0)),
        prominence=float(prominence), search=search,
        candidates=() if found is None else _candidate_dicts(found, init, centre),
        parameters=_parameters(T), flags=tuple(flags), reduced_view=view.description, refinement=refinement,
    )
    if failed:
        raise _significance.failure(report, found, search, floor)
    warn = [f for f in flags if f in ("at_bound", "flat", "ambiguous", "low_overlap")]
    if warn:
        warnings.warn(f"register: the result is doubtful ({', '.join(warn)}); see the report: {report.to_dict()}",
                      EstimationWarning, stacklevel=3)
    if scale is not None:
        warnings.warn(f"register: the images fit a scale of {scale:g} (about the field centre; of those tried, "
                      f"{_flags.SCALE_PROBES}) better than the {model} model's 1: are both pixel sizes right? The "
                      f"{model} answer is off by a growing amount towards the field's edges; give "
                      f"model='similarity' to fit the scale",
                      EstimationWarning, stacklevel=3)
    return Registration(T, report)


def _refine_slice(moving: Any, fixed: Any, k: int, T: Affine, model: str, metric: str) -> Registration:
    view = reduced_view(moving, fixed, z=k)
    centre = view.fixed_grid.center
    ev = "ncc" if metric == "phase" else metric
    level = _lv.make_level(view.moving, view.moving_grid, view.fixed, view.fixed_grid,
                           view.fixed_grid.spacing[0], labels=ev == "mi", jitter=True)
    before, _ = _search.evaluate(level, T, ev)
    bounds = _refine.bounds_for(model, np.zeros(_search.n_params(model)), _search_range(view, "global", 0.0))
    params, after, n = _refine.refine(level, T, centre, np.zeros(_search.n_params(model)), model, ev, bounds)
    Tk = T @ _search.model_affine(params, model, centre)
    after, overlap = _search.evaluate(level, Tk, ev)
    ok = bool(after > 0)
    report = RegistrationReport(
        model=model, metric=ev, success=ok, metric_before=float(before), metric_after=float(after),
        overlap=float(overlap), iterations=int(n), levels=(float(level.spacing),), search="local",
        parameters=_parameters(Tk), flags=() if ok else ("failed",), reduced_view=view.description,
        refinement=f"{ev} at {level.spacing:.4g} nm on jittered samples, from the global result",
    )
    if not ok:
        warnings.warn(f"register: slice {k} found no structure to register on; its report says failed",
                      EstimationWarning, stacklevel=3)
    return Registration(Tk, report)


def register(
    moving: xr.DataArray | xr.Dataset,
    fixed: xr.DataArray | xr.Dataset,
    *,
    model: str = "rigid",
    metric: str = "mi",
    initial: Affine | None = None,
    search: str | None = None,
    mask: xr.DataArray | None = None,
    per_slice: bool = False,
    drift: xr.DataArray | None = None,
    max_pixels: int = MAX_PIXELS,
) -> Registration:
    """The in-plane transform that maps the fixed frame onto the moving frame, and how it was found.

    Parameters
    ----------
    moving : xarray.DataArray or Dataset
        ``(z, y, x)`` or ``(y, x)``, e.g. ``sims.Li6``: the raw stack with its
        ``drift``, or a stack already drift-corrected.  A Dataset's channels
        are summed, each divided by its mean.  NaN pixels are excluded.
    fixed : xarray.DataArray or Dataset
        One channel or a whole multi-channel dataset (e.g. ``eds``), with the
        same dims as ``moving`` (both maps or both stacks of as many slices).
        A ``y`` or ``x`` running high -> low (rows stored top down) is read at
        its own positions, in either image (a ``mask`` lies on ``fixed``'s
        pixels as given).
    model : {"translation", "rigid", "similarity", "affine"}
        ``similarity`` also fits one scale (pixel sizes are estimates);
        ``affine`` fits scales per axis and a shear.
    metric : {"mi", "ncc", "phase"}
        ``"mi"`` (default): mutual information between the moving intensity
        and a label map of the fixed channels (quantile bins of one channel,
        or k-means clusters of several: a data-driven phase map), Mattes-style
        (Parzen-smoothed joint histogram), which needs no linear relation
        between SIMS Li and any EDS element.  ``"ncc"``: the correlation of the
        moving image with its least-squares prediction from all fixed
        channels (a linear relation; the search itself still uses mutual
        information).  ``"phase"``: scikit-image's phase correlation of
        gradient magnitudes, translation only, no search bound, rotation or
        significance test: the baseline, weak across modalities.
    initial : Affine, optional
        Starting transform (fixed -> moving, nm); by default the one that puts
        the centres of the two fields together.  Given, the search is local.
    search : {"global", "local"}, optional
        ``"global"`` (default without ``initial``): translations up to half
        the smaller field and rotations over +/- 5 deg.  ``"local"`` (default
        with ``initial``): translations within 4 coarse pixels or a tenth of
        the smaller field around ``initial``, its rotation only.
    mask : xarray.DataArray, optional
        Booleans on the fixed grid, ``(y, x)`` or ``(z, y, x)``: where the fixed
        data are used (True).  Masked pixels are excluded from every metric,
        as NaN in either modality is; to exclude part of the moving field, set
        it to NaN.
    per_slice : bool
        Also refine the transform on every slice (from the global result),
        in the result's ``slices`` (each transform including that slice's
        drift when ``drift`` is given).
    drift : xarray.DataArray, optional
        The moving stack's drift ``(z, component)`` nm (:func:`estimate_drift`; rows matched to
        slices by ``z``): slice ``k``'s fixed point ``p`` is at ``T(p) + drift[k]``.  The z-mean
        is then of the drift-corrected stack (each slice shifted back by its
        drift; so are the means of the groups of slices of the last
        refinement).  The transform returned excludes the drift:
        ``resample(moving, onto=fixed, transform=T, drift=drift)``.
    max_pixels : int
        Register at most about this many pixels a slice per modality (default
        :data:`pfibsims._engine.views.MAX_PIXELS`): a larger field is first
        reduced to ``f x f`` block means, lazily (coordinates are block
        centres, so the transform is in the full data's nm frame; its
        precision is then a fraction of the reduced pixel).

    Returns
    -------
    Registration
        ``.transform``: an `Affine` on ``("y", "x")`` in nm, fixed point ->
        moving point, so ``resample(moving, onto=fixed,
        transform=reg.transform)`` puts the moving data on the fixed grid;
        ``.report``: a :class:`RegistrationReport`; ``.slices``: the
        per-slice results with ``per_slice=True``.

    Raises
    ------
    RegistrationError
        When the search finds no significant placement (e.g. unrelated images
        or noise); its ``report`` lists the candidates tried and their tile
        agreement, and its message names the best one.
    GridError
        When the fields cannot overlap within the search range.
    DataModelError
        2-D against 3-D data, different slice counts, missing dims, a bad mask.
    UnitsError
        Coordinates without length units.
    PfibsimsError
        Unknown ``model``, ``metric`` or ``search``, or ``metric="phase"``
        with another model than ``"translation"``.

    Warns
    -----
    EstimationWarning
        When the optimum is flat, at a search bound, ambiguous (a distinct
        runner-up almost as good) or the overlap is below half of what the
        moving field can cover; and when a ``"translation"`` or ``"rigid"``
        answer fits better at a scale 1-3 % off (flag ``"scale"``: a pixel
        size is probably wrong; :mod:`pfibsims.registration.flags`).

    Notes
    -----
    Only a reduced view is computed (of the block means when a field has more
    than ``max_pixels`` pixels a slice), in one pass: the z-mean of the moving
    image (each slice shifted back by its drift, bilinear, when ``drift`` is
    given) and of each fixed channel, at their own pixel sizes; 2-D maps as
    they are.  Then:

    1. search on a grid of ``max(pixel sizes, largest field / 128)``: the
       mutual information of every translation up to half the fixed field at
       once by FFT of bin-indicator images, at each angle (global: +/- 5 deg
       in steps of at most 1 deg) and, for the similarity and affine models,
       scale (0.94, 1, 1.06); the four best distinct peaks are kept;
    2. significance: the part of the fixed field that the placement covers
       with moving data is cut into 2 x 2 tiles (the quarters of the fixed
       field when the moving field covers it) and each is searched alone
       over the same translations; a placement is accepted when at least 2
       tiles agree on it (their own best within 1.5 coarse pixels, or the
       placement within 10 % of a broad tile peak), it stands out from the
       distinct runner-up (prominence ``(best - runner-up) / (best -
       median)`` at least 0.1) and it covers at least half of what the moving
       field can cover of the fixed one.  Of the best two placements the
       first significant one is refined.  Calibration
       (``benchmarks/bench_register.py --calibrate``, 45 real pairs): the
       7 unrelated real pairs and 10 noise images against real images were
       all refused (no tile agreed, or their best placement hung half off the
       field), 19 of 28 matching real pairs were accepted, all within 3.2
       fixed pixels of the truth; the refused matches hold no placeable
       structure (maps of 0.02-0.8 counts a pixel, a field with one smooth
       edge, a sparse JEOL C map whose best placement is 43 px off).
       The report's ``agreement`` is ``(agreeing, tested)`` tiles for the
       answer (``(0, 0)``: not tested), ``candidates`` each placement's,
       ``prominence`` the best's margin over the runner-up (below 0.2:
       flagged ``"ambiguous"``);
    3. refinement (Powell, scipy) at halving spacings down to the fixed pixel
       size with ``metric`` (``"mi"`` or ``"ncc"``: the search's mutual
       information finds the placement, every refinement maximises
       ``metric``, and no stage of another metric moves the answer; the
       report's ``refinement`` says what the last stage maximised).  At the
       fixed pixel size each fixed pixel is sampled at 2 x 2 random points,
       one in each quarter (stratified jitter, seeded; the fixed values by
       cubic B-spline): interpolating the moving image then does not favour
       half-pixel shifts of noisy maps, and the answer does not hang on one
       draw of the positions (with one point a pixel, the optimum's rotation
       on the 12-slice phantom scattered by 0.014-0.024 deg over draws; with
       four, 0.003-0.012 deg: :data:`.levels.JITTER_CELLS`).  The moving
       image is Gaussian-smoothed to each level's spacing (count maps to at
       least 20 counts under the kernel) and sampled with a cubic B-spline
       of the in-memory reduced view.  A stack of more than
       :data:`GROUP_SLICES` (6) slices is refined at that last level on the
       means of consecutive groups of at most 6 slices (both modalities, the
       metric pooled over the groups, the sample budget shared), not on the
       z-mean: a mean over a depth as large as the particles mixes phases,
       and the mutual information of the mixtures pulls the rotation (on the
       24-slice phantom the z-mean put it 0.17-0.18 deg off, the groups
       0.03-0.04 deg; on the demo's field 0.106 -> 0.014 deg).

    Bounds: rotation +/- 5 deg, scales within 10 %, shear within 0.1.

    Examples
    --------
    >>> import numpy as np, scipy.ndimage as ndi
    >>> from pfibsims import stack
    >>> rng = np.random.default_rng(0)
    >>> scene = ndi.gaussian_filter(rng.random((160, 160)), 3)
    >>> fixed = stack({"Zr_La": scene[30:126, 20:116]}, pixel_size="80 nm")
    >>> moving = stack({"Li6": np.exp(-8 * scene)}, pixel_size="80 nm")   # a nonlinear relation
    >>> reg = register(moving.Li6, fixed, model="translation")
    >>> (reg.transform.offset / 80).round(1).tolist(), reg.report.flags
    ([30.0, 20.0], ())
    >>> reg = register(moving.Li6.isel(z=0), fixed.Zr_La.isel(z=0), model="translation")   # 2-D maps
    >>> bool(reg)
    True
    """
    # rows stored top down (y high -> low): the same points at the same positions, taken in increasing order
    moving, _ = ascending(dequantify(moving, "moving"), ("y", "x"))
    fixed, flipped = ascending(dequantify(fixed, "fixed"), ("y", "x"))
    if flipped and isinstance(mask, xr.DataArray):  # the mask lies on the fixed pixels as given
        mask = mask.isel({d: slice(None, None, -1) for d in flipped if d in mask.dims})
    if not isinstance(model, str) or model not in _search.MODELS:
        raise PfibsimsError(f"model: expected one of {tuple(_search.MODELS)}, got {model!r}")
    if metric not in _METRICS:
        raise PfibsimsError(f"metric: expected one of {_METRICS}, got {metric!r}")
    if metric == "phase" and model != "translation":
        raise PfibsimsError(f"metric: 'phase' estimates a translation only; use model='translation' or "
                            f"metric='mi' for model={model!r}")
    search = search if search is not None else ("global" if initial is None else "local")
    if search not in _SEARCHES:
        raise PfibsimsError(f"search: expected one of {_SEARCHES} or None, got {search!r}")
    _check_pair(moving, fixed)
    check_max_pixels(max_pixels)
    fixed = _masked(fixed, mask)
    moving, fixed = block_mean(moving, max_pixels), block_mean(fixed, max_pixels)
    if per_slice and "z" not in moving.dims:
        raise DataModelError("per_slice: expected 3-D (z, y, x) data, got 2-D maps")
    shifts = None
    if drift is not None:
        if "z" not in moving.dims:
            raise DataModelError(f"drift: expected 3-D (z, y, x) data to apply a per-slice drift to, got dims "
                                 f"{tuple(moving.dims)}")
        shifts = drift_nm(drift, moving, name="drift", of="moving")  # each slice's row at its depth
    view = reduced_view(moving, fixed, drift=shifts, groups=slice_groups(moving.sizes.get("z", 1)))
    with steps("register: search and refinement levels", len(_levels(view)) + 1) as advance:
        result = _register_view(view, model, metric, initial, search, advance)
    if not per_slice:
        return result
    T = result.transform
    slices = [_refine_slice(moving, fixed, k, T if shifts is None else Affine.translation(tuple(shifts[k])) @ T,
                            model, metric) for k in range(moving.sizes["z"])]
    return Registration(T, result.report, tuple(slices))
