"""Local refinement of a registration: Powell on the model's parameters, and quadratic peak fits.

From a start found by the global search (:mod:`.search`), :func:`refine` polishes the
parameters of a model (translation, rigid, similarity, affine) on one pyramid level by
the metric that found them; :func:`quadratic_peak` finds the maximum of a smooth 2-D
function (a translation score) from 3 x 3 stencils, far cheaper near the optimum.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.fft
import scipy.optimize

from ..transform import Affine
from .levels import Level
from .search import LOG_SCALE_BOUND, MODELS, ROTATION_BOUND, SHEAR_BOUND, evaluate_pooled, model_matrix

__all__ = ["bounds_for", "match_peak", "quadratic_peak", "refine"]

# The mirrored margin (px) around the window in match_peak: the wrap-around of the Fourier shift stays in it.
_MARGIN = 16


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
    ftol: float = 1e-5,
    maxfev: int = 400,
) -> tuple[np.ndarray, float, int]:
    """Local refinement of the parameters (Powell); (params, score, evaluations).

    ``level`` is one level, or several on the same fixed grid pooled through the
    same transform (:func:`~.search.evaluate_pooled`: the means of groups of slices).
    """
    levels = level if isinstance(level, list) else [level]
    g = levels[0].fixed_grid
    radius = 0.5 * math.hypot(*(n * s for n, s in zip(g.shape, g.spacing, strict=False)))
    unit = _units(model, levels[0], radius)

    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    start_matrix = initial.matrix

    def cost(x: np.ndarray) -> float:
        p = x * unit
        # Outside the bounds: a penalty rising with the distance (Powell runs
        # unbounded, because scipy's bounded line search scans the whole
        # interval and can leave the local basin).
        over = float(np.sum(np.maximum(p - hi, 0) / unit + np.maximum(lo - p, 0) / unit))
        value, _ = evaluate_pooled(levels, start_matrix @ model_matrix(np.clip(p, lo, hi), model, center), metric)
        return (-value if np.isfinite(value) else 1e3) + over

    x0 = np.clip(start, lo, hi) / unit
    res = scipy.optimize.minimize(
        cost, x0, method="Powell", options={"xtol": xtol, "ftol": ftol, "maxfev": maxfev}
    )
    return np.clip(np.asarray(res.x) * unit, lo, hi), -float(res.fun), int(res.nfev)


def quadratic_peak(fun, x0: np.ndarray, step: float, *, iterations: int = 2) -> tuple[np.ndarray, float, int]:
    """Maximum of a smooth 2-D function near ``x0``: (x, value, evaluations).

    Each iteration evaluates ``fun`` on a 3 x 3 stencil of spacing ``step``
    around the current point (one call with the nine points, ``(9, 2)``:
    ``fun`` returns their nine values), fits a quadratic (least squares, 6 terms) and
    moves to its vertex, clamped to one step, or to the best stencil point
    when the fit has no maximum. Far fewer evaluations than a general
    optimiser for a translation near the optimum (9 per iteration).

    Examples
    --------
    >>> x, v, n = quadratic_peak(lambda p: -((p[:, 0] - 0.3) ** 2) - 2 * (p[:, 1] + 0.2) ** 2, np.zeros(2), 0.5)
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
        vals = np.asarray(fun(x + step * np.column_stack([u, v])), dtype=np.float64)
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


def match_peak(template: np.ndarray, window: np.ndarray, peak: tuple[int, int], *, block: int = 16
               ) -> tuple[np.ndarray, float]:
    """(position, spread): sub-pixel place (px) of ``template`` in ``window`` near the integer ``peak``, and its
    standard error (px).

    ``peak`` is the template's top-left pixel in the window at the best integer
    match (e.g. the argmax of scikit-image's ``match_template``).  Position:
    :func:`quadratic_peak` (one step of 0.5 px, two of 0.2 px) of the normalised
    cross-correlation of the template with the window moved by sub-pixel
    offsets, every pixel weighted alike (no apodising window, which weights a
    few central pixels and so raises the noise).  The window is moved by a
    Fourier phase ramp (a mirrored margin of ``_MARGIN`` px against
    wrap-around), which keeps the noise's variance at every offset: a spline or
    linear interpolation lowers it half-way between pixels and so pulls a
    noisy correlation's peak there.  Spread: the template's pixels are dealt
    into 4 interleaved sets of ``block`` x ``block`` blocks (independent noise,
    the structure spread over the region); each set's place is found alike
    (three steps of 0.5 px from the position); the spread is the standard error
    of their mean, ``sqrt(var_y + var_x) / 2`` (blocks of a quarter of the
    template's side when that is smaller; inf for a template of one pixel's
    width).  It sees the noise, not a bias every set shares (e.g. measured, up
    to 0.3 px on a real SEM image at 20 counts a pixel whose Poisson noise is
    stronger on its brighter side, where the crop's variance grows).
    """
    h, w = template.shape
    m = _MARGIN
    padded = np.pad(np.asarray(window, dtype=np.float64), m, mode="symmetric")
    part = padded[peak[0]:peak[0] + h + 2 * m, peak[1]:peak[1] + w + 2 * m]
    spectrum = scipy.fft.rfft2(part)
    ky = 2j * np.pi * np.fft.fftfreq(part.shape[0])[:, None]
    kx = 2j * np.pi * np.fft.rfftfreq(part.shape[1])[None, :]
    yy, xx = (a.ravel() for a in np.mgrid[0:h, 0:w])
    block = max(1, min(block, min(h, w) // 4))  # at least 2 x 2 blocks of each set
    sets = yy // block % 2 * 2 + xx // block % 2
    parts = [np.flatnonzero(sets == s) for s in range(4)] if min(h, w) >= 2 else []
    t = template.ravel() - template.mean()
    ts = [template.ravel()[i] - template.ravel()[i].mean() for i in parts]

    def ncc(points: np.ndarray, k: int = -1) -> np.ndarray:  # the whole template's (k = -1) or set k's
        a, idx = (t, slice(None)) if k < 0 else (ts[k], parts[k])
        out = []
        for p in points - np.asarray(peak):
            moved = scipy.fft.irfft2(spectrum * np.exp(ky * p[0] + kx * p[1]), part.shape)
            c = moved[m:m + h, m:m + w].ravel()[idx]
            c -= c.mean()
            out.append(float(np.vdot(a, c)) / (math.sqrt(float(np.vdot(a, a) * np.vdot(c, c))) or 1.0))
        return np.array(out)

    position, _, _ = quadratic_peak(ncc, np.asarray(peak, dtype=np.float64), 0.5, iterations=1)
    position, _, _ = quadratic_peak(ncc, position, 0.2, iterations=2)
    if not parts:
        return position, math.inf
    places = np.array([quadratic_peak(functools.partial(ncc, k=k), position, 0.5, iterations=3)[0] for k in range(4)])
    return position, math.sqrt(float(np.var(places, axis=0, ddof=1).sum())) / 2.0
