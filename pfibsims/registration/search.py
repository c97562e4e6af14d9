"""Coarse-to-fine search of an in-plane transform between two small images.

The images are a *reduced view*: one moving image and the fixed channels, numpy
arrays with their (y, x) `Grid`s, already computed by the caller.  Nothing here
knows xarray or dask.

The transform searched is ``T = initial @ P`` with ``P(p) = L (p - c) + c + t``,
``c`` the centre of the fixed field and ``L`` from the model's parameters
(rotation, scale, shear).  Stages:

1. global search (:func:`global_search`) on a coarse grid: for each angle of
   a rotation grid, the moving image is pulled into a canvas of the fixed frame
   and the mutual information of every integer translation is computed at once
   by FFT (:func:`pfibsims._metrics.mi_surface`);
2. local refinement (:func:`refine`), level by level from the coarse spacing
   down to the fixed pixel size, with ``scipy.optimize.minimize(method="Powell")``
   on the chosen metric.  At every level the moving image is Gaussian-smoothed
   to the level's spacing and sampled with a cubic B-spline
   (``scipy.ndimage.map_coordinates``, order 3) of that in-memory image: a
   cheap sampler of the reduced view, not :func:`pfibsims.resampling.resample`,
   which is the path for data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.ndimage as ndi
import scipy.optimize

from .._engine.smooth import gaussian
from ..grid import Grid
from ..transform import Affine
from .metrics import (
    bin_edges,
    correlation_from_moments,
    correlation_moments,
    fixed_labels,
    mi_surface,
    mutual_information,
)

__all__ = ["MODELS", "Level", "evaluate", "evaluate_many", "global_search", "make_level", "model_affine", "n_params", "quadratic_peak", "refine"]

#: Parameters of each model, in order: translation (nm), rotation (deg), log scale, shear.
MODELS = {
    "translation": ("ty", "tx"),
    "rigid": ("ty", "tx", "rotation"),
    "similarity": ("ty", "tx", "rotation", "log_scale"),
    "affine": ("ty", "tx", "rotation", "log_scale_y", "log_scale_x", "shear"),
}

#: Search bounds: rotation +/- 5 deg, scales within 10 %, shear within 0.1.
ROTATION_BOUND = 5.0
LOG_SCALE_BOUND = math.log(1.1)
SHEAR_BOUND = 0.1

N_MOVING_BINS = 16
N_LABELS = 8


def n_params(model: str) -> int:
    return len(MODELS[model])


def model_affine(params: np.ndarray, model: str, center: tuple[float, float]) -> Affine:
    """``P`` of the module docstring from a parameter vector (nm, deg, log scale, shear)."""
    names = MODELS[model]
    v = dict(zip(names, (float(x) for x in params), strict=False))
    if "log_scale" in v:
        sy = sx = math.exp(v["log_scale"])
    else:
        sy, sx = math.exp(v.get("log_scale_y", 0.0)), math.exp(v.get("log_scale_x", 0.0))
    # Affine.from_parameters(rotation, scale, shear, shift, center) without its
    # unit parsing (this runs for every metric evaluation): p -> R Sh S (p - c) + c + t.
    th = math.radians(v.get("rotation", 0.0))
    c, s = math.cos(th), math.sin(th)
    lin = np.array([[c, s], [-s, c]]) @ np.array([[1.0, 0.0], [v.get("shear", 0.0), 1.0]]) @ np.diag([sy, sx])
    cen = np.asarray(center, dtype=np.float64)
    m = np.eye(3)
    m[:2, :2] = lin
    m[:2, 2] = cen - lin @ cen + np.array([v["ty"], v["tx"]])
    return Affine(m, ("y", "x"))


@dataclass
class Level:
    """One level of the pyramid: the fixed samples and the prepared moving image."""

    spacing: float
    fixed_grid: Grid
    points: np.ndarray  # (N, 2) fixed sample points in nm
    labels: np.ndarray  # (N,) fixed labels
    design: np.ndarray  # (N, C) fixed channel values (a transposed view of a C-contiguous (C, N) array)
    n_labels: int
    moving_coef: np.ndarray  # cubic B-spline coefficients of the smoothed moving image
    moving_grid: Grid
    edges: np.ndarray  # moving bin edges
    n_fixed: int = field(default=0)




def _sample_linear(img: np.ndarray, grid: Grid, points: np.ndarray) -> np.ndarray:
    idx = grid.to_index(points)
    return ndi.map_coordinates(img, [idx[..., 0], idx[..., 1]], order=1, mode="nearest")


def make_level(
    moving: np.ndarray, moving_grid: Grid, fixed: np.ndarray, fixed_grid: Grid, spacing: float, *,
    labels: bool = True,
) -> Level:
    """Prepare the fixed samples and the moving spline at one pyramid spacing (nm).

    ``labels=False`` skips the k-means label map (enough for the ``"ncc"`` metric).
    """
    grid = fixed_grid.with_spacing(spacing) if spacing > fixed_grid.spacing[0] * 1.01 else fixed_grid
    pts = np.stack(np.meshgrid(*grid.coords().values(), indexing="ij"), axis=-1)
    chans = []
    for c in fixed:
        sig = 0.5 * spacing / np.asarray(fixed_grid.spacing)
        sm = gaussian(c, float(sig.mean()))
        chans.append(sm if grid is fixed_grid else _sample_linear(sm, fixed_grid, pts))
    chans = np.stack(chans)
    # Only where every fixed channel has data (NaN outside a drift-corrected
    # field); the smoothing above fills NaN, so the mask comes from the input.
    ok = np.all(np.isfinite(fixed), axis=0)
    if ok.all():
        ok = np.True_
    elif grid is not fixed_grid:
        ok = _sample_linear(ok.astype(np.float64), fixed_grid, pts) > 0.999
    valid = np.all(np.isfinite(chans), axis=0) & ok
    lab = fixed_labels(chans, valid, n_labels=N_LABELS) if labels else np.zeros(valid.shape, np.intp)
    n_labels = int(lab.max()) + 1
    msig = 0.5 * spacing / float(np.mean(moving_grid.spacing))
    msm = gaussian(moving, msig)
    coef = ndi.spline_filter(msm, order=3, mode="mirror")
    return Level(
        spacing=spacing,
        fixed_grid=grid,
        points=pts[valid],
        labels=lab[valid],
        design=chans[:, valid].T,
        n_labels=n_labels,
        moving_coef=coef,
        moving_grid=moving_grid,
        edges=bin_edges(msm, N_MOVING_BINS),
        n_fixed=int(valid.sum()),
    )


def sample_moving(level: Level, transform: Affine, points: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Moving values at ``transform(points)`` and a mask of those inside the moving field."""
    pts = level.points if points is None else points
    # Moving pixel indices of transform(pts), in one affine map per axis and
    # without a BLAS product (an (N, 2) x (2, 2) matmul is multi-threaded by
    # OpenBLAS and much slower on a loaded machine).
    g = level.moving_grid
    m = transform.matrix
    idx = []
    for ax in range(2):
        h, o = g.spacing[ax], g.origin[ax]
        idx.append(pts[..., 0] * (m[ax, 0] / h) + pts[..., 1] * (m[ax, 1] / h) + (m[ax, 2] - o) / h)
    iy, ix = idx
    inside = (iy >= -0.5) & (iy <= g.shape[0] - 0.5) & (ix >= -0.5) & (ix <= g.shape[1] - 0.5)
    vals = ndi.map_coordinates(level.moving_coef, [iy[inside], ix[inside]], order=3, mode="mirror", prefilter=False)
    return vals, inside


def evaluate(level: Level, transform: Affine, metric: str) -> tuple[float, float]:
    """(metric value, overlap fraction) of a transform at a level."""
    return evaluate_many([level], [transform], metric)


def evaluate_many(levels: list[Level], transforms: list[Affine], metric: str) -> tuple[float, float]:
    """(metric, overlap) of the samples of several levels pooled, each through its own transform.

    Several slices, each with its own transform (a registration composed with
    that slice's drift), give one metric: one joint histogram, or one
    least-squares prediction of the moving values from the fixed channels.
    Pooled ``"mi"`` assumes the levels share one label map (their k-means
    labels are numbered independently): use ``"ncc"`` across slices.
    """
    vals, labels, moments, n_in, n_all = [], [], None, 0, 0
    for level, transform in zip(levels, transforms, strict=True):
        v, inside = sample_moving(level, transform)
        n_in += int(inside.sum())
        n_all += inside.size
        if metric == "mi":
            vals.append(v)
            labels.append(level.labels[inside])
        else:
            dt = level.design.T  # (C, N) C-contiguous: the design is stored channel-major
            mom = correlation_moments(v, dt if inside.all() else dt[:, inside])
            moments = mom if moments is None else tuple(a + b for a, b in zip(moments, mom, strict=True))
    overlap = n_in / n_all if n_all else 0.0
    if n_in < 16:
        return -np.inf, overlap
    if metric == "mi":
        moving = np.concatenate(vals)
        return mutual_information(moving, np.concatenate(labels), levels[0].edges, levels[0].n_labels), overlap
    return correlation_from_moments(*moments), overlap


@dataclass
class SearchResult:
    params: np.ndarray
    score: float
    zscore: float
    second: float  # score of the best distinct runner-up candidate
    median: float = 0.0  # median score over the whole search surface
    candidates: list = field(default_factory=list)


def _canvas(level: Level, initial: Affine, angle: float, pad: tuple[int, int], center) -> tuple[np.ndarray, np.ndarray]:
    g = level.fixed_grid
    h = g.spacing
    cgrid = Grid(
        (g.shape[0] + 2 * pad[0], g.shape[1] + 2 * pad[1]),
        h,
        (g.origin[0] - pad[0] * h[0], g.origin[1] - pad[1] * h[1]),
    )
    pts = np.stack(np.meshgrid(*cgrid.coords().values(), indexing="ij"), axis=-1)
    rot = initial @ Affine.from_parameters(rotation=angle, center=center)
    vals, inside = sample_moving(level, rot, pts.reshape(-1, 2))
    canvas = np.full(pts.shape[:2], np.nan)
    canvas.reshape(-1)[inside] = vals
    return canvas, np.isfinite(canvas)


def global_search(
    level: Level,
    initial: Affine,
    center: tuple[float, float],
    search: tuple[float, float],
    *,
    rotations: bool,
    min_overlap: float = 0.25,
) -> SearchResult:
    """Best (rotation, translation) by FFT mutual information on a coarse level.

    Translations up to ``search`` (nm per axis) around ``initial``; rotations on
    a grid over +/- 5 deg (step: half a coarse pixel at the field's corner) when
    ``rotations``.  Returns the best candidate, its robust z-score against all
    candidates (median / MAD of the whole surface), and the runner-up's score.
    """
    g = level.fixed_grid
    h = np.asarray(g.spacing)
    pad = tuple(int(round(s / hh)) for s, hh in zip(search, h, strict=False))
    labels = np.full(g.shape, -1)
    flat = labels.reshape(-1)
    # The level keeps only valid points; rebuild the label image from the grid.
    idx = np.rint(g.to_index(level.points)).astype(int)
    flat[idx[:, 0] * g.shape[1] + idx[:, 1]] = level.labels
    if rotations:
        radius = 0.5 * math.hypot(*(n * s for n, s in zip(g.shape, g.spacing, strict=False)))
        step = math.degrees(0.5 * float(h.mean()) / radius)
        n = max(1, math.ceil(ROTATION_BOUND / step))
        angles = np.linspace(-ROTATION_BOUND, ROTATION_BOUND, 2 * n + 1)
    else:
        angles = np.array([0.0])
    need = min_overlap * level.n_fixed
    surfaces = []
    for angle in angles:
        canvas, ok = _canvas(level, initial, float(angle), pad, center)
        mi, count = mi_surface(canvas, ok, labels, level.edges, level.n_labels)
        surfaces.append(np.where(count >= need, mi, -np.inf))
    surf = np.stack(surfaces)
    finite = surf[np.isfinite(surf)]
    if finite.size == 0:
        return SearchResult(np.zeros(3), -np.inf, 0.0, -np.inf, -np.inf)
    med = float(np.median(finite))
    mad = float(np.median(np.abs(finite - med))) * 1.4826 or 1e-12
    # Distinct local maxima, best first.
    peaks = (surf == ndi.maximum_filter(surf, size=(3, 5, 5), mode="nearest")) & np.isfinite(surf)
    order = np.argsort(surf[peaks])[::-1]
    coords = np.argwhere(peaks)[order]
    cands = []
    kept: list[tuple[int, int]] = []
    for k, i, j in coords[:200]:
        # Distinct candidates differ in translation by more than 3 coarse pixels
        # (the same peak seen at a neighbouring angle is not a rival).
        if any(abs(i - a) <= 3 and abs(j - b) <= 3 for a, b in kept):
            continue
        kept.append((i, j))
        angle = float(angles[k])
        tprime = np.array([(i - pad[0]) * h[0], (j - pad[1]) * h[1]])
        th = math.radians(angle)
        rot = np.array([[math.cos(th), math.sin(th)], [-math.sin(th), math.cos(th)]])
        t = rot @ tprime
        cands.append((float(surf[k, i, j]), np.array([t[0], t[1], angle])))
        if len(cands) == 4:
            break
    best, second = cands[0][0], (cands[1][0] if len(cands) > 1 else med)
    return SearchResult(cands[0][1], best, (best - med) / mad, second, med, cands)


def bounds_for(model: str, start: np.ndarray, search: tuple[float, float]) -> list[tuple[float, float]]:
    """Parameter bounds: translation within ``search`` of the initial, rotation +/- 5 deg, ..."""
    b = [(-search[0], search[0]), (-search[1], search[1])]
    extra = {"rotation": ROTATION_BOUND, "log_scale": LOG_SCALE_BOUND, "log_scale_y": LOG_SCALE_BOUND,
             "log_scale_x": LOG_SCALE_BOUND, "shear": SHEAR_BOUND}
    b += [(-extra[n], extra[n]) for n in MODELS[model][2:]]
    return b


def _units(model: str, level: Level, radius: float) -> np.ndarray:
    """Per-parameter step worth about one level pixel of displacement at the field's edge."""
    h = level.spacing
    u = {"ty": h, "tx": h, "rotation": math.degrees(h / radius), "log_scale": h / radius,
         "log_scale_y": h / radius, "log_scale_x": h / radius, "shear": h / radius}
    return np.array([u[n] for n in MODELS[model]])


def refine(
    level: Level | list[Level],
    initial: Affine,
    center: tuple[float, float],
    start: np.ndarray,
    model: str,
    metric: str,
    bounds: list[tuple[float, float]],
    *,
    xtol: float = 0.01,
    pre: list[Affine] | None = None,
) -> tuple[np.ndarray, float, int]:
    """Local refinement of the parameters (Powell); (params, score, evaluations).

    ``level`` may be a list of levels (e.g. several slices) whose samples are
    pooled (:func:`evaluate_many`); level ``i`` is then sampled through
    ``pre[i] @ initial @ P`` (``pre``: e.g. each slice's drift translation).
    """
    levels = level if isinstance(level, list) else [level]
    pre = [None] * len(levels) if pre is None else list(pre)
    g = levels[0].fixed_grid
    radius = 0.5 * math.hypot(*(n * s for n, s in zip(g.shape, g.spacing, strict=False)))
    unit = _units(model, levels[0], radius)

    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])

    def cost(x: np.ndarray) -> float:
        p = x * unit
        # Outside the bounds: a penalty rising with the distance (Powell runs
        # unbounded, because scipy's bounded line search scans the whole
        # interval and can leave the local basin).
        over = float(np.sum(np.maximum(p - hi, 0) / unit + np.maximum(lo - p, 0) / unit))
        T = initial @ model_affine(np.clip(p, lo, hi), model, center)
        value, _ = evaluate_many(levels, [T if d is None else d @ T for d in pre], metric)
        return (-value if np.isfinite(value) else 1e3) + over

    x0 = np.clip(start, lo, hi) / unit
    res = scipy.optimize.minimize(
        cost, x0, method="Powell", options={"xtol": xtol, "ftol": 1e-7, "maxfev": 2000}
    )
    return np.clip(np.asarray(res.x) * unit, lo, hi), -float(res.fun), int(res.nfev)


def quadratic_peak(fun, x0: np.ndarray, step: float, *, iterations: int = 2) -> tuple[np.ndarray, float, int]:
    """Maximum of a smooth 2-D function near ``x0``: (x, value, evaluations).

    Each iteration evaluates ``fun`` on a 3 x 3 stencil of spacing ``step``
    around the current point, fits a quadratic (least squares, 6 terms) and
    moves to its vertex, clamped to one step, or to the best stencil point
    when the fit has no maximum. Far fewer evaluations than a general
    optimiser for a translation near the optimum (9 per iteration).

    Examples
    --------
    >>> x, v, n = quadratic_peak(lambda p: -((p[0] - 0.3) ** 2) - 2 * (p[1] + 0.2) ** 2, np.zeros(2), 0.5)
    >>> np.round(x, 6).tolist(), n
    ([0.3, -0.2], 18)
    """
    x = np.asarray(x0, dtype=np.float64).copy()
    u, v = np.meshgrid([-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0], indexing="ij")
    u, v = u.ravel(), v.ravel()
    design = np.column_stack([np.ones(9), u, v, u * u, v * v, u * v])
    best = -np.inf
    n = 0
    for _ in range(iterations):
        vals = np.array([fun(x + step * np.array([a, b])) for a, b in zip(u, v, strict=True)])
        n += 9
        if not np.all(np.isfinite(vals)):
            k = int(np.nanargmax(np.where(np.isfinite(vals), vals, -np.inf)))
            x, best = x + step * np.array([u[k], v[k]]), float(vals[k])
            continue
        c = np.linalg.lstsq(design, vals, rcond=None)[0]
        hess = np.array([[2 * c[3], c[5]], [c[5], 2 * c[4]]])
        k = int(np.argmax(vals))
        if np.all(np.linalg.eigvalsh(hess) < 0):
            off = np.clip(np.linalg.solve(hess, -c[1:3]), -1.0, 1.0)
            peak = float(c[0] + c[1:3] @ off + 0.5 * off @ hess @ off)
            x, best = x + step * off, max(peak, float(vals[k]))
        else:
            x, best = x + step * np.array([u[k], v[k]]), float(vals[k])
    return x, best, n
