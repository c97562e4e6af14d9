"""The refinement stages of :func:`~pfibsims.registration.register`, after the search has placed the images.

* :func:`pyramid` -- every level of a registration, made together: the search's, the refinement's, and the
  last refinement's at the fixed pixel size on jittered samples, of the z-mean or of each group of slices;
* :func:`refine_stage` -- Powell refinement (:func:`.refine.refine`, the optimiser of one level) from the
  search's answer, level by level down to the fixed pixel size;
* :func:`polish_two_valued` -- on a nearly two-valued image, the mutual information's answer polished by the
  correlation where the relation is linear (:data:`TWO_VALUED`, :data:`LINEAR_R`).

What each stage did is the report's ``refinement``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._engine.threads import thread_map
from ..transform import Affine
from . import levels as _lv
from . import refine as _refine
from .views import View

__all__ = ["polish_two_valued", "pyramid", "refine_stage", "two_valued_share"]


def pyramid(view: View, levels: list[float], metric: str, *, search: bool = True
            ) -> tuple[_lv.Level | None, list[_lv.Level], list[_lv.Level]]:
    """Every level of a registration at the spacings ``levels`` (nm, coarse to fine), made together on the
    machine's cores: the search's (``levels[0]``, for mutual information), the refinement's in between
    (``levels[1:-1]``) and the last refinement's, at ``levels[-1]`` on jittered samples: one of the z-mean, or one
    of each group of slices (``view.groups``), the sample budget shared among them; without ``search`` only
    the last (scipy.ndimage and the kernels release the GIL)."""
    parts = view.groups or [(view.moving, view.fixed)]
    cap = max(_lv.MAX_SAMPLES // len(parts), 1)
    labels = metric == "mi"
    jobs = [lambda mf=mf: _lv.make_level(mf[0], view.moving_grid, mf[1], view.fixed_grid, levels[-1], labels=labels,
                                         jitter=True, max_samples=cap, shared=True) for mf in parts]
    if search:
        jobs.append(lambda: _lv.make_level(view.moving, view.moving_grid, view.fixed, view.fixed_grid, levels[0],
                                           shared=True))
        jobs += [lambda h=h: _lv.make_level(view.moving, view.moving_grid, view.fixed, view.fixed_grid, h,
                                            labels=labels, max_samples=_lv.MAX_SAMPLES // 4, shared=True)
                 for h in levels[1:-1]]
    made = thread_map(lambda job: job(), jobs)
    n = len(parts)
    return (made[n] if search else None), made[n + 1:], made[:n]


def refine_stage(coarse: _lv.Level, middle: list[_lv.Level], finest: list[_lv.Level], init: Affine, centre: Any,
                 start: np.ndarray, model: str, metric: str, bounds: list) -> tuple[np.ndarray, int]:
    """Powell refinement of ``start`` on the coarse level, then on each level of ``middle``, then on the fixed
    pixel size (``finest``: jittered samples)."""
    params, _, nfev = _refine.refine(coarse, init, centre, start, model, metric, bounds, xtol=0.2, ftol=1e-4)
    for level in middle:
        params, _, n = _refine.refine(level, init, centre, params, model, metric, bounds, xtol=0.1, ftol=1e-4)
        nfev += n
    # the fixed pixel size, on jittered samples (also when the coarse level was already at it)
    params, _, n = _refine.refine(finest, init, centre, params, model, metric, bounds, xtol=0.03, ftol=1e-5)
    return params, nfev + n


#: A moving image whose two fullest of 20 equal-width intensity bins hold this share of its pixels or more is
#: nearly two-valued (measured: the JEOL view image 0.95-0.96, the Hitachi TM3030Plus image 0.92-0.94; 0.37-0.40
#: for the Hitachi image with Poisson noise at 10-50 counts a pixel: then a one-channel fixed image is tested).  Its mutual
#: information with the fixed image changes by a few parts in a thousand over a pixel and peaks where the two
#: pixel grids align (interpolation blurs its edges least there): 0.5-1.3 px off on both images, shifted by a
#: known sub-pixel amount, where the correlation is within 0.1 px.
TWO_VALUED = 0.8
#: ... and at the correlation's answer the moving image's correlation with the fixed channels (``"ncc"``, the
#: multiple correlation) reaches this share of what its Poisson noise allows (:func:`.levels.correlation_ceiling`,
#: 1 for an image that is not counts): a linear relation, so the correlation's optimum is the same placement,
#: found precisely.  Measured on the saturated Hitachi image (89 % of it at the top grey level) under Poisson
#: noise at 5-100 counts a pixel: 0.99-1.04 of the ceiling in linear and monotonic (cubed) contrasts, 0.82-0.85
#: in a non-monotonic one, where the correlation moved the answer 6-8 px.
LINEAR_R = 0.9
#: ... unless the noise holds so much of the moving variance (ceiling below this) that no correlation says much.
MIN_CEILING = 0.3
#: ... and the correlation moves the answer by at most this many fixed pixels (measured: the mutual information
#: 0.3-1.6 px off noise-free, 2.2-3.8 px with Gaussian noise of 2 % of the range on the JEOL image).
POLISH_REACH = 5.0


def two_valued_share(img: np.ndarray) -> float:
    """The share of the finite pixels of ``img`` in its two fullest of 20 equal-width intensity bins."""
    v = np.asarray(img, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0 or not np.ptp(v) > 0:
        return 1.0
    counts = np.histogram(v, bins=20)[0]
    return float(np.sort(counts)[-2:].sum()) / v.size


def polish_two_valued(view: View, finest: list[_lv.Level], init: Affine, centre: Any, params: np.ndarray,
                      model: str, bounds: list) -> tuple[np.ndarray, str, int] | None:
    """A mutual-information answer on a nearly two-valued moving or one-channel fixed image (:data:`TWO_VALUED`)
    refined by the correlation, kept when the relation is linear there (:data:`LINEAR_R`): (params, what the report's
    refinement adds, evaluations), or None (not such a case, a count map sparse enough to be smoothed by more
    than a pixel, a weaker correlation, or a move of more than :data:`POLISH_REACH` fixed pixels)."""
    share, which = two_valued_share(view.moving), "moving"
    if len(view.fixed) == 1 and _lv.count_sigma(view.fixed[0]) <= 0.5 and share < TWO_VALUED:
        share, which = two_valued_share(view.fixed[0]), "fixed"  # e.g. a saturated SEM image, noisy counts onto it
    if share < TWO_VALUED or _lv.count_sigma(view.moving) > 1.0:  # a sparse count map is smoothed, and its
        return None  # smoothed correlation is high whatever the noise: it says nothing of a linear relation
    msig = max(0.5 * finest[0].spacing / float(np.mean(view.moving_grid.spacing)), _lv.count_sigma(view.moving))
    ceiling = _lv.correlation_ceiling(view.moving, msig)  # what Poisson noise leaves of a linear relation
    polished, r, n = _refine.refine(finest, init, centre, params, model, "ncc", bounds, xtol=0.03, ftol=1e-5)
    h = float(np.mean(view.fixed_grid.spacing))
    moved = np.hypot(*(polished[:2] - params[:2])) / h
    if ceiling < MIN_CEILING or not r >= LINEAR_R * ceiling or moved > POLISH_REACH:
        return None
    return polished, (f"; then ncc (the {which} image is nearly two-valued, {share:.0%} of it in 2 of 20 "
                      f"intensity bins, where mutual information favours the pixel grid and, with noise, "
                      f"misses by pixels; correlation {r:.3f})"), n
