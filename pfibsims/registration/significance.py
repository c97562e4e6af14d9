"""The significance test of a registration's placements: do the tiles of the covered field agree on it?

A placement from :func:`.search.global_search` is significant when the tiles of the part of the fixed field it
covers, each searched alone, agree on it (:func:`agreement`), it stands out from the distinct runner-up
(:data:`MIN_PROMINENCE`) and it covers enough of what the moving field can cover (:data:`MIN_COVER`).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import RegistrationError
from ..transform import Affine
from .levels import Level
from .metrics import mi_surface
from .report import RegistrationReport
from .search import Candidate, SearchResult, _canvas, _label_image, coverable

__all__ = ["AGREE_PX", "AGREE_SCORE", "MIN_AGREE", "MIN_COVER", "MIN_PROMINENCE", "TILES", "agreement", "failure",
           "significant"]

#: The significance test (:func:`agreement`): the part of the fixed field a candidate covers with moving data
#: is cut into ``TILES x TILES`` tiles; a tile agrees with the candidate when its own best placement is within
#: ``AGREE_PX`` level pixels of the candidate's, or the candidate scores at least ``AGREE_SCORE`` of the way
#: from the tile surface's median to its best (a broad peak); a candidate is significant when ``MIN_AGREE``
#: tiles agree.
#:
#: Calibration (``benchmarks/bench_register.py --calibrate``: register on real files of ../shared/data, these
#: rules, 2026-12-03): 17 pairs with no true placement -- 7 unrelated real pairs (NanoSIMS, SEM, JEOL,
#: Coloc 2 images of other samples or non-overlapping fields) and 10 Poisson noise images (0.5-30 counts,
#: white and smoothed) against real images -- all refused: their best placement covers less than
#: ``MIN_COVER`` of what the moving field can cover, and no tile agreed on it either.  28 matching pairs
#: (same raster, same scan, or a known transform of a real image): 19 agreed in 2-4 tiles and were kept, all
#: within 3.2 fixed px of the truth.  The 9 refused hold no placeable structure: sparse maps (STEM-EDS at
#: 0.02-0.8 counts a pixel, JEOL C_Ka), a 50 x 50 map whose only structure is one smooth edge, and two
#: NanoSIMS species of unlike distributions (surface prominence 0.02-0.03).  With the tiles cut from the
#: whole fixed field (before), JEOL C_Ka onto S_Ka was accepted 43 px off (2 tiles, prominence 0.29) and 3 of
#: the 17 agreed in 1 tile; with the tiles of the covered part, 1 tile and 0.  ``MIN_AGREE = 2``: 3 would
#: have refused three right answers (JEOL S_Ka onto Fe_Ka 0.79 px, O_Ka onto S_Ka 3.1 px, O_Ka onto the
#: view image).
TILES = 2
AGREE_PX = 1.5
AGREE_SCORE = 0.9
MIN_AGREE = 2
#: ... and its prominence over the runner-up (:class:`SearchResult`) at least this: two distinct placements that
#: score alike cannot be told apart, whatever the tiles say.  Measured: matching real pairs 0.22-0.89 (the
#: calibration above), phantoms 0.87-0.92; unrelated crops of real SEM images smaller than the fixed field that
#: 2 tiles agreed on (3 of 72, scratch sweep of 2026-12-03, benchmarks/README.md) 0.01-0.05.
MIN_PROMINENCE = 0.1
#: A placement covering less than this fraction of what the moving field can cover of the fixed one
#: (:func:`coverable`: half of the smaller field hangs outside the other) is not tested: too little is shared.
MIN_COVER = 0.5


def agreement(level: Level, initial: Affine, center: tuple[float, float], search: tuple[float, float],
              cand: Candidate) -> tuple[int, int]:
    """(agreeing, tested) tiles for ``cand``: each tile of the fixed field searched alone over translations
    up to ``search`` (nm per axis; the global range, also for a candidate of a local search, so that the
    test means the same thing), at the candidate's angle.

    The tiles split the valid fixed samples that the candidate puts on moving
    data at the quantiles of their rows and columns (the field's quarters when
    the moving field covers it and nothing is masked; the quarters of the part
    it covers when it is smaller).  A candidate that covers less than
    :data:`MIN_COVER` of what the moving field can cover (:func:`coverable`)
    is not tested: ``(0, 0)``.  A tile is tested
    when it holds a tenth of its share of samples in two or more labels (a
    featureless tile can agree with nothing).  Unrelated
    images and noise agree in at most one tile: their best placement is a
    coincidence of one region of the field, which the other regions do not
    share.
    """
    pad = tuple(int(round(r / h)) for r, h in zip(search, level.fixed_grid.spacing, strict=True))
    i0, j0 = cand.offset[0] + pad[0], cand.offset[1] + pad[1]
    labels = _label_image(level)
    canvas, ok = _canvas(level, initial, cand.angle, pad, center, cand.log_scale)
    h, w = labels.shape
    if not (0 <= i0 <= ok.shape[0] - h and 0 <= j0 <= ok.shape[1] - w):
        return 0, 0
    valid = (labels >= 0) & ok[i0:i0 + h, j0:j0 + w]  # the fixed samples the candidate covers
    rows, cols = np.nonzero(valid)
    if rows.size == 0 or rows.size < MIN_COVER * coverable(level) * level.n_fixed:
        return 0, 0
    # tiles of the valid samples (quantiles of their rows and columns): a mask or NaN leaves them balanced
    qs = np.linspace(0.0, 1.0, TILES + 1)[1:-1]
    ycut = np.r_[-np.inf, np.quantile(rows, qs), np.inf]
    xcut = np.r_[-np.inf, np.quantile(cols, qs), np.inf]
    yy, xx = np.indices(labels.shape)
    tiles = []
    for a in range(TILES):
        for b in range(TILES):
            inside = valid & (yy >= ycut[a]) & (yy < ycut[a + 1]) & (xx >= xcut[b]) & (xx < xcut[b + 1])
            part = labels[inside]
            if part.size >= max(16, 0.1 * rows.size / TILES**2) and np.unique(part).size > 1:
                tiles.append(np.where(inside, labels, -1))
    if not tiles:
        return 0, 0
    agree = 0
    for tile, (mi, count) in zip(tiles, mi_surface(canvas, ok, tiles, level.edges, level.n_labels), strict=True):
        mi = np.where(count >= 0.5 * (tile >= 0).sum(), mi, -np.inf)
        finite = mi[np.isfinite(mi)]
        if finite.size == 0 or not (0 <= i0 < mi.shape[0] and 0 <= j0 < mi.shape[1]) or not np.isfinite(mi[i0, j0]):
            continue
        i, j = np.unravel_index(np.argmax(mi), mi.shape)
        med = float(np.median(finite))
        rel = (mi[i0, j0] - med) / max(float(mi[i, j]) - med, 1e-12)
        agree += math.hypot(i - i0, j - j0) <= AGREE_PX or rel >= AGREE_SCORE
    return int(agree), len(tiles)


def significant(level: Level, initial: Affine, center: tuple[float, float], search: tuple[float, float],
                found: SearchResult) -> list[Candidate]:
    """The first of the search's two best candidates that passes :func:`agreement` (its ``agreement`` set),
    as a list of one, or ``[]``; also ``[]`` when the best's prominence is below :data:`MIN_PROMINENCE`."""
    passed = []
    for cand in found.candidates[:2]:  # the runner-up is tested only when the best fails
        cand.agreement = agreement(level, initial, center, search, cand)
        if cand.agreement[0] >= MIN_AGREE:
            passed.append(cand)
            break
    if found.prominence < MIN_PROMINENCE:
        passed = []  # two distinct placements score alike: neither is decidable
    return passed


def _centre_shift(candidate: dict) -> list:
    """A candidate's displacement of the fixed field's centre (nm, 0.1 nm), read by a person (the offset about the
    frame's origin of a rotated answer is far off for a field at stage coordinates)."""
    return np.round(candidate.get("centre_shift_nm", candidate["shift_nm"]), 1).tolist()


def failure(report: RegistrationReport, found: SearchResult | None, search: str, floor: float) -> RegistrationError:
    """The RegistrationError of a failed registration: what was tried and the best candidate, why it is not
    significant, with the ``report`` (``found`` None: ``metric="phase"``, its correlation below ``floor``)."""
    if found is None:  # metric="phase": one correlation, no search
        why = (f"no correlation above noise at the phase-correlation peak (NCC {report.metric_after:.3g}, needs >= "
               f"{floor:.3g}); check that the channels show the same region, or use metric='mi'")
    else:
        tried = (f"a {search} search ({len(found.angles)} angle(s) x {len(found.log_scales)} scale(s), translations "
                 f"up to {found.pad[0] * report.levels[0]:.4g} x {found.pad[1] * report.levels[0]:.4g} nm around the "
                 f"start, mutual information at {report.levels[0]:.4g} nm)")
        best = report.candidates[0]
        said = (f"the best, moving the fixed field's centre by {_centre_shift(best)} nm with rotation "
                f"{best['rotation_deg']:.3g} deg (MI {best['mi']:.3g} nats), ")
        said += (f"is agreed on by {best['agreement'][0]} of {best['agreement'][1]} tiles of the fixed field (needs "
                 f"{MIN_AGREE})" if best["agreement"][1] else
                 f"could not be tested: it covers less than {MIN_COVER:g} of what the moving field can "
                 f"cover of the fixed field, or the part it covers has no structure")
        if report.prominence < MIN_PROMINENCE:
            rival = f", its centre moved by {_centre_shift(report.candidates[1])} nm" if len(report.candidates) > 1 else ""
            said += (f"; it scores alike with a distinct runner-up{rival} (prominence {report.prominence:.2g}, "
                     f"needs {MIN_PROMINENCE})")
        advice = ("or give initial= near the answer for a local search" if search == "global" else
                  "and that initial= is within the local reach of the answer, or search the whole field "
                  "(search='global')")
        why = f"no significant placement after {tried}: {said}; check that the channels show the same region, {advice}"
    exc = RegistrationError(f"moving, fixed: expected images that share structure, found {why}; the exception's "
                            f".report lists what was tried")
    exc.report = report  # type: ignore[attr-defined]
    return exc
