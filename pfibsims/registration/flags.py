"""What a registration's report flags about an accepted answer (``RegistrationReport.flags``).

* ``"at_bound"``: a parameter at the edge of its search range;
* ``"flat"``: moving the answer by a step does not lower the metric;
* ``"ambiguous"``: a distinct placement scores almost as well (prominence);
* ``"low_overlap"``: the answer covers little of what the moving field can cover;
* ``"scale"``: the model has no scale (``translation``, ``rigid``) but the data
  fit a different one better (:func:`scale_probe`): a pixel size off by a few
  percent, which a rigid fit turns into an error that grows towards the edges
  of the field (a remapped real SEM image at scale 0.97: 6.7 px at a corner of
  a 300 px field, nothing flagged before).

The significance test itself (accept or refuse) is :mod:`.significance`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..transform import Affine
from . import levels as _lv
from . import search as _search
from . import significance as _significance

__all__ = ["AMBIGUOUS_PROMINENCE", "SCALE_PROBES", "flags", "scale_probe"]

#: A runner-up within this prominence is "ambiguous" (the tile test decides significance; this flags a
#: distinct placement almost as good: real matches measured 0.19-0.89; below
#: :data:`.significance.MIN_PROMINENCE` it is refused).
AMBIGUOUS_PROMINENCE = 0.2

#: Scales tried about the field centre on an answer of a model without scale (1 %: 1.5 px at the edge of a
#: 300 px field; 3 %: a pixel size plainly wrong). Wider mismatches are refused by the search (8 %).
SCALE_PROBES = (0.97, 0.99, 1.01, 1.03)

#: A probed scale must beat scale 1 by this fraction of the metric. Measured (benchmarks/README.md): a real SEM
#: texture remapped at scale 0.97-1.01 gains 0.41-0.68 at the best probe; 14 matching real pairs of one raster
#: (true scale 1: NanoSIMS species, JEOL maps, STEM-EDS) at most 0.015 when accepted (0.062 for a refused
#: STEM-EDS map at 0.02 counts a pixel).
SCALE_MARGIN = 0.05


def scale_probe(levels: list[_lv.Level], T: Affine, centre: Any, metric: str, score: float) -> float | None:
    """The scale (about ``centre``, nm) of :data:`SCALE_PROBES` that fits better than ``T``'s own, else None.

    ``T`` is a translation or rigid answer, ``score`` its metric on ``levels``
    (the pooled finest levels). Each probe is ``T`` composed with a scaling of
    the fixed frame about ``centre``, the rest held: the answer is a maximum
    along every direction the model has, so a probe that scores higher (by
    :data:`SCALE_MARGIN` of the metric) means the data ask for a scale the model
    lacks. Costs four evaluations of the metric.
    """
    best, best_value = None, score + SCALE_MARGIN * abs(score)
    for s in SCALE_PROBES:
        S = _search.model_matrix(np.array([0.0, 0.0, 0.0, math.log(s)]), "similarity", centre)
        v, _ = _search.evaluate_pooled(levels, T.matrix @ S, metric)
        if v > best_value:
            best, best_value = s, v
    return best


def flags(model: str, params: np.ndarray, bounds: list, levels: list[_lv.Level], initial: Affine, centre: Any,
          metric: str, score: float, overlap: float, prominence: float, step: float) -> tuple[list[str], float | None]:
    """The flags of an answer ``params`` of ``model`` (about ``centre``, composed after ``initial``) and the scale
    that fits better when ``"scale"`` is among them (else None).

    ``levels`` are the pooled finest levels on which ``score`` (the metric) and
    ``overlap`` were measured; ``step`` (nm) the move the ``"flat"`` test makes (a
    fixed pixel, or the smoothing of a sparse count map).
    """
    out = []
    for v, (lo, hi) in zip(params, bounds, strict=False):
        tol = 0.005 * (hi - lo)
        if v <= lo + tol or v >= hi - tol:
            out.append("at_bound")
            break
    # Flat: moving by ``step`` must lower the metric.
    drops = []
    for dy, dx in ((step, 0), (-step, 0), (0, step), (0, -step)):
        p = params.copy()
        p[0] += dy
        p[1] += dx
        drops.append(score - _search.evaluate_pooled(levels, initial @ _search.model_affine(p, model, centre), metric)[0])
    if min(drops) <= 1e-3 * abs(score):
        out.append("flat")
    if prominence < AMBIGUOUS_PROMINENCE:
        out.append("ambiguous")
    if overlap < _significance.MIN_COVER * _search.coverable(levels[0]):
        out.append("low_overlap")
    scale = None
    if model in ("translation", "rigid") and "flat" not in out:
        scale = scale_probe(levels, initial @ _search.model_affine(params, model, centre), centre, metric, score)
        if scale is not None:
            out.append("scale")
    return out, scale
