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
   by FFT (:func:`.metrics.mi_surface`); the placements are then tested by
   :mod:`.significance`;
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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.ndimage as ndi

from .._engine.numba import compiled
from .._engine.threads import thread_map
from ..transform import Affine
from . import kernels
from .levels import Level
from .metrics import (
    correlation_from_moments,
    correlation_moments,
    mi_from_joint,
    mi_surface,
    mutual_information,
)

__all__ = [
    "MODELS", "Candidate", "SearchResult", "coverable", "evaluate", "evaluate_many", "evaluate_pooled", "evaluate_shifts",
    "global_search", "model_affine", "model_matrix", "n_params",
    "rotation_grid",
]

#: Parameters of each model, in order: translation (nm), rotation (deg), log scale, shear.
MODELS = {
    "translation": ("ty", "tx"),
    "rigid": ("ty", "tx", "rotation"),
    "similarity": ("ty", "tx", "rotation", "log_scale"),
    "affine": ("ty", "tx", "rotation", "log_scale_y", "log_scale_x", "shear"),
}

#: Search bounds: rotation +/- 5 deg, scales within 10 %, shear within 0.1.
ROTATION_BOUND = 5.0
#: Angle step (deg) of the global search.
ROTATION_STEP = 1.0
LOG_SCALE_BOUND = math.log(1.1)
#: Log scales of the global search of the similarity and affine models: 0.94, 1, 1.06 (3 % off the nearest still
#: places; the remap of a real SEM image at 0.95-1.07 registered from scale 1 alone).
SEARCH_LOG_SCALES = (math.log(0.94), 0.0, math.log(1.06))
SHEAR_BOUND = 0.1

def n_params(model: str) -> int:
    return len(MODELS[model])


def model_affine(params: np.ndarray, model: str, center: tuple[float, float]) -> Affine:
    """``P`` of the module docstring from a parameter vector (nm, deg, log scale, shear)."""
    return Affine(model_matrix(params, model, center), ("y", "x"))


def model_matrix(params: np.ndarray, model: str, center: tuple[float, float]) -> np.ndarray:
    """The homogeneous 3 x 3 matrix of :func:`model_affine` (no `Affine` built: the search's inner loops)."""
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
    return m



def sample_moving(level: Level, transform: Affine, points: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Moving values at ``transform(points)`` and a mask of those inside the moving field (and its data)."""
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
    if level.moving_valid is not None:
        ok = ndi.map_coordinates(level.moving_valid, [iy[inside], ix[inside]], order=1, mode="nearest") > 0.999
        inside[inside] = ok
    vals = ndi.map_coordinates(level.moving_coef, [iy[inside], ix[inside]], order=3, mode="mirror", prefilter=False)
    return vals, inside


def evaluate(level: Level, transform: Affine, metric: str) -> tuple[float, float]:
    """(metric value, overlap fraction) of a transform at a level."""
    return evaluate_many([level], [transform], metric)


def evaluate_many(levels: list[Level], transforms: list[Affine | np.ndarray], metric: str) -> tuple[float, float]:
    """(metric, overlap) of the samples of several levels pooled, each through its own transform.

    Several slices, each with its own transform (a registration composed with
    that slice's drift), give one metric: for ``"mi"`` the mean of each
    slice's mutual information (with its own label map and bins) weighted by
    its samples; for ``"ncc"`` one least-squares prediction of the moving
    values from the fixed channels over all samples.  A transform is an
    `Affine` or its homogeneous 3 x 3 matrix (the search's inner loops pass
    matrices: no `Affine` is built per evaluation).  The compiled kernels
    (:mod:`.kernels`) evaluate in one pass; the numpy path below is their twin.
    """
    if compiled():
        return _evaluate_compiled(levels, transforms, metric)
    moments, n_in, n_all, mi = None, 0, 0, 0.0
    for level, transform in zip(levels, transforms, strict=True):
        v, inside = sample_moving(level, transform if isinstance(transform, Affine) else Affine(transform, ("y", "x")))
        k = int(inside.sum())
        n_in += k
        n_all += inside.size
        if metric == "mi":
            if k >= 16:
                mi += k * mutual_information(v, level.labels[inside], level.edges, level.n_labels)
        else:
            dt = level.design.T  # (C, N) C-contiguous: the design is stored channel-major
            mom = correlation_moments(v, dt if inside.all() else dt[:, inside])
            moments = mom if moments is None else tuple(a + b for a, b in zip(moments, mom, strict=True))
    overlap = n_in / n_all if n_all else 0.0
    if n_in < 16:
        return -np.inf, overlap
    if metric == "mi":
        return mi / n_in, overlap
    return correlation_from_moments(*moments), overlap


def evaluate_pooled(levels: list[Level], transform: Affine | np.ndarray, metric: str) -> tuple[float, float]:
    """(metric, overlap) of the samples of ``levels`` pooled, all through one ``transform`` (:func:`evaluate_many`)."""
    return evaluate_many(levels, [transform] * len(levels), metric)


def _evaluate_compiled(levels: list[Level], transforms: list, metric: str) -> tuple[float, float]:
    """:func:`evaluate_many` by the compiled kernels: the same numbers as the numpy path, to rounding.

    The levels are evaluated on the machine's cores (:func:`~pfibsims._engine.threads.thread_map`: the
    kernels release the GIL) and their terms added in the levels' order, so the numbers do not depend on
    the number of threads."""
    terms = thread_map(lambda lt: _level_terms(lt[0], lt[1], metric), list(zip(levels, transforms, strict=True)))
    n_in, n_all, mi = 0, 0, 0.0
    s = zz = None
    for k, n, part in terms:
        n_in += k
        n_all += n
        if metric == "mi":
            mi += part
        else:
            s, zz = part if s is None else (s + part[0], zz + part[1])
    overlap = n_in / n_all if n_all else 0.0
    if n_in < 16:
        return -np.inf, overlap
    if metric == "mi":
        return mi / n_in, overlap
    return correlation_from_moments(n_in, s, zz), overlap


def _level_terms(level: Level, transform: Any, metric: str) -> tuple[int, int, Any]:
    """(samples inside, samples, term) of one level: the term is ``k`` times its mutual information for
    ``"mi"`` (0.0 under 16 samples inside), else its sums and cross products (:func:`_moments`)."""
    matrix = transform.matrix if isinstance(transform, Affine) else transform
    g = level.moving_grid
    m = kernels.index_map(matrix, g.spacing, g.origin)
    n = level.points.shape[0]
    vals, inside = np.empty(n), np.empty(n, np.bool_)
    valid = level.moving_valid if level.moving_valid is not None else _NO_MASK
    k = kernels.sample(level.moving_coef, valid, level.moving_valid is not None, m, level.points, vals, inside)
    if metric != "mi":
        return k, n, _moments(level, vals, inside, k)
    if k < 16:
        return k, n, 0.0
    n_bins = level.edges.size - 1
    joint = np.zeros(level.n_labels * n_bins)
    centres = 0.5 * (level.edges[:-1] + level.edges[1:])
    kernels.joint_histogram(vals, inside, level.labels, centres, n_bins, joint)
    return k, n, k * mi_from_joint(joint.reshape(level.n_labels, n_bins) / k, k)


_NO_MASK = np.ones((1, 1))


def evaluate_shifts(level: Level, matrix: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """The ``"ncc"`` metric of ``translation(shift) @ matrix`` for each row of ``shifts`` (K, 2) nm: the values
    :func:`evaluate_many` gives one at a time (the same numbers), in one compiled pass over the samples."""
    shifts = np.asarray(shifts, dtype=np.float64).reshape(-1, 2)
    moved = np.repeat(matrix[None], shifts.shape[0], axis=0)
    moved[:, :2, 2] += shifts
    if not compiled():
        return np.array([evaluate_many([level], [m], "ncc")[0] for m in moved])
    g = level.moving_grid
    m = kernels.index_map(matrix, g.spacing, g.origin)
    off = [(moved[:, ax, 2] - g.origin[ax]) / g.spacing[ax] for ax in range(2)]  # as index_map of each
    dt = level.design.T
    n, c, k = level.points.shape[0], dt.shape[0], shifts.shape[0]
    s, zz, count = np.zeros((k, c + 1)), np.zeros((k, c + 1, c + 1)), np.zeros(k, np.int64)
    grid = _product_grid(shifts)
    if grid is not None and level.moving_valid is None:  # a grid of translations: weights and rows shared
        nx_ = grid[1]
        kernels.grid_moments(level.moving_coef, m, off[0][::nx_].copy(), off[1][:nx_].copy(), level.points, dt,
                             s, zz, count)
    else:
        valid = level.moving_valid if level.moving_valid is not None else _NO_MASK
        kernels.shifted_moments(level.moving_coef, valid, level.moving_valid is not None, m, off[0], off[1],
                                level.points, dt, s, zz, count)
    if level.channel_moments is None:
        level.channel_moments = (dt.sum(axis=1), np.einsum("in,jn->ij", dt, dt))
    fs, fzz = level.channel_moments
    out = np.empty(k)
    for j in range(k):
        if count[j] < 16:
            out[j] = -np.inf
        elif 2 * count[j] < n:  # mostly outside: the channel sums of the inside points directly
            out[j] = evaluate_many([level], [moved[j]], "ncc")[0]
        else:
            s[j, :c] = fs - s[j, :c]
            zz[j, :c, :c] = fzz - zz[j, :c, :c]
            out[j] = correlation_from_moments(int(count[j]), s[j], zz[j])
    return out


def _product_grid(shifts: np.ndarray) -> tuple[int, int] | None:
    """``(Ky, Kx)`` when the rows of ``shifts`` are the grid of ``Ky`` y by ``Kx`` x values in ``ij`` order (each
    y with every x; a search grid, a 3 x 3 stencil), else None."""
    ys, xs = np.unique(shifts[:, 0]), np.unique(shifts[:, 1])
    if ys.size * xs.size != shifts.shape[0] or ys.size * xs.size < 2:
        return None
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    if not (np.array_equal(shifts[:, 0], yy.ravel()) and np.array_equal(shifts[:, 1], xx.ravel())):
        return None
    return ys.size, xs.size


def _moments(level: Level, vals: np.ndarray, inside: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The sums and cross products of ``[channels..., moving]`` over the inside samples (compiled): with most
    samples inside, the channel terms are the level's totals less those of the samples outside."""
    dt = level.design.T
    c = dt.shape[0]
    s, zz = np.zeros(c + 1), np.zeros((c + 1, c + 1))
    direct = 2 * k < vals.size
    kernels.moments(vals, inside, dt, s, zz, direct)
    if not direct:
        if level.channel_moments is None:
            level.channel_moments = (dt.sum(axis=1), np.einsum("in,jn->ij", dt, dt))
        fs, fzz = level.channel_moments
        s[:c] = fs - s[:c]
        zz[:c, :c] = fzz - zz[:c, :c]
    return s, zz


@dataclass
class Candidate:
    """One distinct peak of the search surface: its MI, the ``"similarity"`` parameters of ``P``, its angle
    (deg), log scale and translation before the rotation and scale, in whole level pixels."""

    score: float
    params: np.ndarray
    angle: float
    offset: tuple[int, int]
    agreement: tuple[int, int] = (0, 0)
    log_scale: float = 0.0


@dataclass
class SearchResult:
    """The kept candidates (best first) and the surface's median and prominence."""

    candidates: list[Candidate]
    median: float
    prominence: float
    angles: np.ndarray
    pad: tuple[int, int]
    log_scales: tuple[float, ...] = (0.0,)


def _canvas(level: Level, initial: Affine, angle: float, pad: tuple[int, int], center,
            log_scale: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The moving image rotated by ``angle`` (deg) and scaled by ``exp(log_scale)`` (about ``center``) and
    pulled onto the fixed grid grown by ``pad`` pixels on every side; NaN where there is no moving data."""
    g = level.fixed_grid
    axes = [o + (np.arange(n + 2 * p) - p) * h for o, n, p, h in zip(g.origin, g.shape, pad, g.spacing, strict=True)]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    rot = initial @ model_affine(np.array([0.0, 0.0, angle, log_scale]), "similarity", center)
    vals, inside = sample_moving(level, rot, pts.reshape(-1, 2))
    canvas = np.full(pts.shape[:2], np.nan)
    canvas.reshape(-1)[inside] = vals
    return canvas, np.isfinite(canvas)


def coverable(level: Level) -> float:
    """The largest fraction of the fixed field the moving field can cover (1 unless the moving field is
    smaller along an axis): the product over the axes of ``min(1, moving extent / fixed extent)``.

    Examples
    --------
    >>> from pfibsims import Grid
    >>> lv = Level(1.0, Grid((100, 100), 10.0), np.zeros((0, 2)), np.zeros(0, np.intp), np.zeros((0, 1)), 1,
    ...            np.zeros((40, 200)), Grid((40, 200), 10.0), np.array([0.0, 1.0]))
    >>> coverable(lv)
    0.4
    """
    fixed, moving = level.fixed_grid.extent, level.moving_grid.extent
    return float(np.prod([min(1.0, (m[1] - m[0]) / (f[1] - f[0])) for f, m in zip(fixed, moving, strict=True)]))


def _label_image(level: Level) -> np.ndarray:
    """The level's labels on its grid, ``-1`` where no valid sample (the level keeps only valid points)."""
    g = level.fixed_grid
    labels = np.full(g.shape, -1)
    idx = np.rint(g.to_index(level.points)).astype(int)
    labels.reshape(-1)[idx[:, 0] * g.shape[1] + idx[:, 1]] = level.labels
    return labels


def rotation_grid(rotations: bool) -> np.ndarray:
    """Angles (deg) of the global search: +/- ``ROTATION_BOUND`` in steps of ``ROTATION_STEP``; ``[0]``
    without rotations.  Half a step off moves the corner of a 128-pixel level by about half a pixel:
    the peak is still found, and the refinement fits the angle."""
    if not rotations:
        return np.array([0.0])
    n = max(1, math.ceil(ROTATION_BOUND / ROTATION_STEP))
    return np.linspace(-ROTATION_BOUND, ROTATION_BOUND, 2 * n + 1)


def global_search(
    level: Level,
    initial: Affine,
    center: tuple[float, float],
    search: tuple[float, float],
    angles: np.ndarray,
    *,
    log_scales: Sequence[float] = (0.0,),
    min_overlap: float = 0.25,
    keep: int = 4,
) -> SearchResult:
    """Best (scale, rotation, translation) placements by FFT mutual information on one level.

    Translations up to ``search`` (nm per axis) around ``initial`` (at least
    ``min_overlap`` of the fixed samples the moving field can cover
    overlapping: :func:`coverable`), at each of ``angles`` (deg) and
    ``log_scales``; the ``keep`` best distinct local maxima (more than 3 level
    pixels apart) are returned best first, with the median of the surface and
    the prominence of the best, ``(best - runner-up) / (best - median)``.
    """
    g = level.fixed_grid
    h = np.asarray(g.spacing)
    pad = tuple(int(round(s / hh)) for s, hh in zip(search, h, strict=False))
    labels = _label_image(level)
    need = min_overlap * coverable(level) * level.n_fixed

    def surface(pose: tuple[float, float]) -> np.ndarray:
        canvas, ok = _canvas(level, initial, pose[1], pad, center, pose[0])
        mi, count = mi_surface(canvas, ok, labels, level.edges, level.n_labels)
        return np.where(count >= need, mi, -np.inf)

    # each pose on the machine's cores (the FFTs, map_coordinates and numpy's large ufuncs release the GIL)
    surfaces = thread_map(surface, [(float(s), float(a)) for s in log_scales for a in angles])
    surf = np.stack(surfaces).reshape(len(log_scales), len(angles), *surfaces[0].shape)
    finite = surf[np.isfinite(surf)]
    if finite.size == 0:
        return SearchResult([], -np.inf, 0.0, angles, pad, tuple(log_scales))
    med = float(np.median(finite))
    peaks = (surf == ndi.maximum_filter(surf, size=(3, 3, 5, 5), mode="nearest")) & np.isfinite(surf)
    order = np.argsort(surf[peaks])[::-1]
    cands: list[Candidate] = []
    for a, k, i, j in np.argwhere(peaks)[order][:200]:
        # distinct: more than 3 level pixels apart (the same peak at a neighbouring angle or scale is no rival)
        off = (int(i) - pad[0], int(j) - pad[1])
        if any(abs(off[0] - c.offset[0]) <= 3 and abs(off[1] - c.offset[1]) <= 3 for c in cands):
            continue
        th, ls = math.radians(float(angles[k])), float(log_scales[a])
        rot = np.array([[math.cos(th), math.sin(th)], [-math.sin(th), math.cos(th)]])
        t = math.exp(ls) * rot @ (np.asarray(off) * h)
        cands.append(Candidate(float(surf[a, k, i, j]), np.array([t[0], t[1], float(angles[k]), ls]),
                               float(angles[k]), off, log_scale=ls))
        if len(cands) == keep:
            break
    second = cands[1].score if len(cands) > 1 else med
    prominence = (cands[0].score - second) / max(cands[0].score - med, 1e-12)
    return SearchResult(cands, med, float(prominence), angles, pad, tuple(log_scales))
