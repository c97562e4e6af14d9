"""Cross-modal drift of one slice: the translation through which a drift-free reference modality best predicts it.

:func:`pfibsims.registration.estimate_drift` with a 3-D ``reference`` runs
:func:`_cross_shift` once a slice (grid searches, then quadratic peak fits, on
the multiple correlation of the slice with the reference channels) and
:func:`weak_linear` says when that correlation is too low for the answer to be
trusted (:func:`pfibsims.fuse` then keeps the slice-to-slice drift).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..errors import EstimationWarning
from ..grid import Grid
from ..transform import Affine
from . import levels as _lv
from . import refine as _refine
from . import search as _search

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
    of 2), then quadratic peak fits (:func:`pfibsims.registration.refine.quadratic_peak`)
    at the fixed pixel size.  Quality: the multiple correlation at the optimum, in [0, 1].
    Module-level so that dask can ship it to workers.
    """
    fixed = np.asarray(fixed, dtype=np.float64)
    fixed = fixed[None] if fixed.ndim == 2 else fixed
    moving = np.asarray(moving, dtype=np.float64)
    fs = float(np.mean(fixed_grid.spacing))
    centre = fixed_grid.center
    zero = np.zeros(2)
    # homogeneous matrices, no Affine per evaluation: translation(d) @ base is base with d added to its shift
    base = transform.matrix.copy()
    base[:2, 2] += np.asarray(start, dtype=np.float64)

    def shifted(d: np.ndarray) -> np.ndarray:
        m = base.copy()
        m[:2, 2] += d
        return m

    for factor, step, reach in _XDRIFT_GRIDS:
        level = _lv.make_level(moving, moving_grid, fixed, fixed_grid, factor * fs, labels=False)
        offsets = np.arange(-reach, reach + 1) * step * fs
        grid = np.stack(np.meshgrid(offsets, offsets, indexing="ij"), axis=-1).reshape(-1, 2)
        values = _search.evaluate_shifts(level, base, grid)  # every translation of the grid in one pass
        values[np.isnan(values)] = -np.inf
        best = int(np.argmax(values))  # the first of equal maxima, row by row
        if not np.isfinite(values[best]):
            return np.array([np.nan, np.nan, 0.0])
        base = shifted(grid[best])
    level = _lv.make_level(moving, moving_grid, fixed, fixed_grid, fs, labels=False)
    params, score, _ = _refine.quadratic_peak(lambda x: _search.evaluate_shifts(level, base, x), zero, 0.5 * fs,
                                              iterations=2)
    final = Affine(shifted(params), ("y", "x"))
    d = np.asarray(final([centre])[0]) - np.asarray(transform([centre])[0])
    return np.array([d[0], d[1], max(0.0, float(score))])


#: Below this median multiple correlation, the reference channels explain less than a quarter of the
#: slices' variance linearly: measured, 0.90-0.92 on the phantom (4 EDS channels), 0.78-0.83 for a real SEM
#: image against itself through a rigid transform (same or inverted contrast, 30 counts a pixel), 0.36 against a
#: non-monotonic remap of it, where the drift came out up to 15 px off.
WEAK_LINEAR = 0.5


def weak_linear(quality: Any) -> bool:
    """True when the median multiple correlation of a cross-modal drift is below :data:`WEAK_LINEAR`: the
    reference channels predict the slices too poorly by a linear relation for its answer to be trusted."""
    q = np.asarray(quality, dtype=np.float64)
    return bool(q.size) and float(np.median(q)) < WEAK_LINEAR


def _warn_weak_linear(quality: np.ndarray) -> None:
    if weak_linear(quality):
        warnings.warn(
            f"estimate_drift: the reference channels predict the slices poorly by a linear relation (median "
            f"multiple correlation {float(np.median(quality)):.2f}, below {WEAK_LINEAR}): where the contrast of "
            "the two modalities is not linear (e.g. non-monotonic) the cross-modal drift can be pixels off; compare "
            "it with the slice-to-slice drift (reference=None) or give reference channels that share the contrast",
            EstimationWarning, stacklevel=4)
