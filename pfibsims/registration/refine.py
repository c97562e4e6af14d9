"""Local refinement of a registration: Powell on the model's parameters, and quadratic peak fits.

From a start found by the global search (:mod:`.search`), :func:`refine` polishes the
parameters of a model (translation, rigid, similarity, affine) on one pyramid level by
the metric that found them; :func:`quadratic_peak` finds the maximum of a smooth 2-D
function (a translation score) from 3 x 3 stencils, far cheaper near the optimum.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.optimize

from ..transform import Affine
from .search import LOG_SCALE_BOUND, MODELS, ROTATION_BOUND, SHEAR_BOUND, Level, evaluate_pooled, model_matrix

__all__ = ["bounds_for", "quadratic_peak", "refine"]


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
