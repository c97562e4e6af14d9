"""One level of a registration pyramid: the fixed samples and the prepared moving image.

A :class:`Level` holds what a metric evaluation reads (:mod:`.search`): the fixed
channels smoothed to the level's spacing and taken at its sample points (with
their k-means labels for mutual information), and the moving image smoothed to
that spacing as cubic B-spline coefficients. :func:`make_level` prepares one.

The fixed side depends only on the fixed channels, their grid and the level's
options; inside :func:`shared_fixed_sides` it is prepared once and shared by
every level asked for with ``shared=True`` (``fuse``'s two registrations on the
same EDS view: the second one's fixed sides cost nothing).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import scipy.ndimage as ndi

from .._engine.numba import compiled
from .._engine.smooth import gaussian
from ..grid import Grid
from . import kernels
from .metrics import bin_edges, fixed_labels

__all__ = ["JITTER_CELLS", "JITTER_SEED", "MAX_SAMPLES", "N_LABELS", "N_MOVING_BINS", "Level", "correlation_ceiling",
           "count_sigma", "make_level", "shared_fixed_sides"]

N_MOVING_BINS = 16
N_LABELS = 8


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
    # where the moving image has data (float 0/1), None when it has data everywhere
    moving_valid: np.ndarray | None = None
    # sums and cross products of the fixed channels over all samples (the compiled "ncc" evaluation)
    channel_moments: tuple[np.ndarray, np.ndarray] | None = None


def _sample(img: np.ndarray, idx: np.ndarray, order: int = 1) -> np.ndarray:
    """``img`` at the fractional indices ``idx`` (``(..., 2)``: a grid's ``to_index`` of the points)."""
    return ndi.map_coordinates(img, [idx[..., 0], idx[..., 1]], order=order, mode="nearest")


#: Count maps (non-negative integers: EDS, SIMS counts) are smoothed at every level to at least this many
#: counts under the Gaussian, ``sigma >= sqrt(MIN_COUNTS / (4 pi mean))`` pixels (at most ``MAX_COUNT_SIGMA``):
#: a map of a few counts a pixel holds its structure at that scale, not in single pixels.
MIN_COUNTS = 20.0
MAX_COUNT_SIGMA = 4.0


def count_sigma(img: np.ndarray) -> float:
    """The smoothing (px) a count map needs (see ``MIN_COUNTS``); 0 for anything that is not counts.

    Examples
    --------
    >>> round(count_sigma(np.tile([0.0, 1.0], (8, 4))), 3), count_sigma(np.full((8, 8), 0.7))  # counts, not counts
    (1.784, 0.0)
    """
    a = np.asarray(img)
    if compiled() and a.dtype.kind == "f":  # one pass, no temporaries
        n, counts, total = kernels.count_stats(a.ravel())
        mean = total / n if n else 0.0
        if not counts or not mean > 0:
            return 0.0
        return min(MAX_COUNT_SIGMA, math.sqrt(MIN_COUNTS / (4.0 * math.pi * mean)))
    a = a[np.isfinite(a)]
    if a.size == 0 or a.min() < 0 or not np.array_equal(a, np.round(a)) or not a.mean() > 0:
        return 0.0
    return min(MAX_COUNT_SIGMA, math.sqrt(MIN_COUNTS / (4.0 * math.pi * float(a.mean()))))


def correlation_ceiling(img: np.ndarray, sigma: float) -> float:
    """The highest correlation any noise-free image can reach with ``img`` smoothed by ``sigma`` px, when
    ``img`` is a count map (:func:`count_sigma`): ``sqrt(1 - noise / var)``, the Poisson noise's variance after
    the smoothing ``mean(img) * sum(k**2)`` (``k`` the Gaussian kernel); 1 for an image that is not counts.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> bool(correlation_ceiling(rng.poisson(20.0, (256, 256)).astype(float), 1.0) < 0.2)  # noise only
    True
    >>> correlation_ceiling(np.full((8, 8), 0.7), 1.0)
    1.0
    """
    if not count_sigma(img) > 0:
        return 1.0
    delta = np.zeros((1, 2 * math.ceil(4.0 * sigma) + 1))
    delta[0, delta.shape[1] // 2] = 1.0
    k2 = float((gaussian(delta, (0.0, sigma)) ** 2).sum()) ** 2  # the 2-D kernel is the product of two 1-D ones
    var = float(np.nanvar(gaussian(img, sigma)))
    return math.sqrt(max(var - float(np.nanmean(img)) * k2, 0.0) / var) if var > 0 else 0.0


#: Seed of the jittered sample positions and of the sample subset (:func:`make_level`): fixed, so a
#: result is reproducible.
JITTER_SEED = 0
#: Refinement levels sample at most this many fixed points (a seeded random subset, as ITK's sampling
#: percentage): the metric's precision is set by tens of thousands of samples, its cost by all of them.
MAX_SAMPLES = 1 << 16


#: A jittered level (:func:`make_level`) cuts each fixed pixel into ``JITTER_CELLS x JITTER_CELLS`` cells
#: and samples each at a random point (stratified jitter).  With one random point a pixel the optimum
#: of the mutual information depends on that draw: on the 12-slice phantom (true drift given, eight
#: draws of ``JITTER_SEED``) its rotation scattered by 0.014 deg (SD; seed 1) and 0.024 deg (seed 0), the
#: worst field corner 11.4-22.7 nm off (seed 1); with 2 x 2 cells 0.0026 and 0.012 deg, 8.9-13.0 nm,
#: for about 30 % more CPU a registration (benchmarks/README.md, issue 22).
JITTER_CELLS = 2


def _sample_points(grid: Grid, cells: int) -> np.ndarray:
    """Fixed sample points (nm), ``(ny, nx, 2)``: the pixel centres of ``grid`` (``cells=0``), or one random
    point (seed ``JITTER_SEED``) in each of ``cells x cells`` cells of every pixel, ``(ny * cells, nx * cells, 2)``.
    Read-only; up to ``_POINTS_CACHED`` bytes made once per grid, cells and seed (the levels of every slice of a
    drift share them)."""
    if math.prod(grid.shape) * max(cells, 1) ** 2 * 16 > _POINTS_CACHED:
        return _new_points(grid, cells, JITTER_SEED)
    return _points(grid, cells, JITTER_SEED)


#: Largest sample-point array :func:`_sample_points` keeps (bytes; 8 of them at most).
_POINTS_CACHED = 8 << 20


@functools.lru_cache(maxsize=8)
def _points(grid: Grid, cells: int, seed: int) -> np.ndarray:
    pts = _new_points(grid, cells, seed)
    pts.flags.writeable = False
    return pts


def _new_points(grid: Grid, cells: int, seed: int) -> np.ndarray:
    if not cells:
        return np.stack(np.meshgrid(*grid.coords().values(), indexing="ij"), axis=-1)
    h = np.asarray(grid.spacing)
    sub = (np.arange(cells) + 0.5) / cells - 0.5  # cell centres in a pixel, in pixels
    axes = [(c[:, None] + sub[None, :] * hh).ravel() for c, hh in zip(grid.coords().values(), h, strict=True)]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    rng = np.random.default_rng(seed)
    return pts + rng.uniform(-0.5, 0.5, pts.shape) * (h / cells)


@dataclass(frozen=True)
class _FixedSide:
    """The fixed half of a :class:`Level` (read-only arrays: shared between levels)."""

    grid: Grid
    points: np.ndarray
    labels: np.ndarray
    design: np.ndarray
    n_labels: int
    n_fixed: int


def _fixed_side(fixed: np.ndarray, fixed_grid: Grid, spacing: float, labels: bool, jitter: bool,
                max_samples: int | None) -> _FixedSide:
    """The fixed samples of :func:`make_level`: the channels smoothed to ``spacing``, at the level's points."""
    grid = fixed_grid.with_spacing(spacing) if spacing > fixed_grid.spacing[0] * 1.01 else fixed_grid
    pts = _sample_points(grid, JITTER_CELLS if jitter else 0)
    if jitter and max_samples is not None:
        max_samples *= JITTER_CELLS**2
    sig = float(np.mean(0.5 * spacing / np.asarray(fixed_grid.spacing)))
    chans = np.stack([gaussian(c, max(sig, count_sigma(c))) for c in fixed])
    interpolate = grid is not fixed_grid or jitter
    order = 3 if jitter else 1
    # Only where every fixed channel has data; the smoothing fills NaN, so the mask comes from the input.
    ok = np.all(np.isfinite(fixed), axis=0)
    if ok.all():
        ok = np.True_
    elif interpolate:
        ok = _sample(ok.astype(np.float64), fixed_grid.to_index(pts)) > 0.999
    # Interpolating finite channels gives finite values: then the subset of samples is drawn first and only it
    # is interpolated (the same samples as interpolating all of them, a fraction of the work).
    late = interpolate and bool(np.isfinite(chans).all())
    if interpolate and not late:
        idx = fixed_grid.to_index(pts)
        chans = np.stack([_sample(c, idx, order=order) for c in chans])
    valid = np.broadcast_to(ok, pts.shape[:-1]) if late else np.all(np.isfinite(chans), axis=0) & ok
    if max_samples is not None and valid.sum() > max_samples:
        rng = np.random.default_rng(JITTER_SEED + 1)
        keep = np.zeros(valid.size, bool)
        keep[rng.choice(np.flatnonzero(valid), max_samples, replace=False)] = True
        valid = keep.reshape(valid.shape)
    # (C, N) channel-major, as the kernels read it; every point kept: the arrays as they are (no copies)
    every = not late and bool(valid.all())
    pts = pts.reshape(-1, 2) if every else pts[valid]
    if late:
        idx = fixed_grid.to_index(pts)
        chans = np.stack([_sample(c, idx, order=order) for c in chans])
    else:
        chans = chans.reshape(chans.shape[0], -1) if every else np.ascontiguousarray(chans[:, valid])
    lab = fixed_labels(chans, np.ones(chans.shape[1], bool), n_labels=N_LABELS) if labels else \
        np.zeros(chans.shape[1], np.intp)
    side = _FixedSide(grid, pts, lab, chans.T, int(lab.max(initial=-1)) + 1 if labels else 1, pts.shape[0])
    for a in (side.points, side.labels, side.design):
        a.flags.writeable = False
    return side


_shared: dict = {"depth": 0, "sides": {}}
_shared_lock = threading.Lock()


@contextlib.contextmanager
def shared_fixed_sides() -> Iterator[None]:
    """Within this block, :func:`make_level` with ``shared=True`` prepares the fixed side of a level once per
    fixed image (by content: a hash of its bytes), grid and options, and reuses it; forgotten when the last
    open block ends (the blocks nest, and may be open in several threads: a hit is the same content)."""
    with _shared_lock:
        _shared["depth"] += 1
    try:
        yield
    finally:
        with _shared_lock:
            _shared["depth"] -= 1
            if not _shared["depth"]:
                _shared["sides"].clear()


def _fixed_side_shared(fixed: np.ndarray, fixed_grid: Grid, *options) -> _FixedSide:
    if not _shared["depth"]:
        return _fixed_side(fixed, fixed_grid, *options)
    a = np.ascontiguousarray(fixed)
    key = (hashlib.blake2b(a.view(np.uint8).ravel(), digest_size=20).digest(), a.shape, a.dtype.str, fixed_grid.shape,
           tuple(map(float, fixed_grid.origin)), tuple(map(float, fixed_grid.spacing)), JITTER_SEED, *options)
    with _shared_lock:
        side = _shared["sides"].get(key)
    if side is None:
        side = _fixed_side(a, fixed_grid, *options)
        with _shared_lock:
            if _shared["depth"]:
                _shared["sides"][key] = side
    return side


def make_level(
    moving: np.ndarray, moving_grid: Grid, fixed: np.ndarray, fixed_grid: Grid, spacing: float, *,
    labels: bool = True, jitter: bool = False, max_samples: int | None = None, shared: bool = False,
) -> Level:
    """Prepare the fixed samples and the moving spline at one pyramid spacing (nm).

    NaN in ``moving`` or ``fixed`` (outside a field, a ``mask``) is excluded:
    fixed samples where any channel is NaN are dropped, and moving samples
    whose interpolation reaches a NaN pixel count as outside the field.
    ``labels=False`` skips the k-means label map and the moving bins (enough
    for the ``"ncc"`` metric).  ``jitter=True`` takes ``JITTER_CELLS**2``
    fixed samples a pixel, each at a random point of its cell of the pixel
    (stratified, seed ``JITTER_SEED``; fixed values by cubic B-spline)
    instead of one at its centre: the fractional positions at which the moving
    image is interpolated are then spread evenly whatever the transform, so
    the smoothing by interpolation, largest half-way between pixels, no longer
    rewards half-pixel shifts of a noisy image (the interpolation bias of MI
    and correlation), and the several cells a pixel average out the draw of
    the positions.  ``max_samples`` keeps a seeded random subset of the
    valid fixed samples, ``JITTER_CELLS**2`` times as many when jittered (not
    for the FFT search, which needs the whole grid).  ``shared=True`` takes the
    fixed side from :func:`shared_fixed_sides` when a block of it is open.
    """
    side = (_fixed_side_shared if shared else _fixed_side)(fixed, fixed_grid, spacing, labels, jitter, max_samples)
    msig = max(0.5 * spacing / float(np.mean(moving_grid.spacing)), count_sigma(moving))
    msm = gaussian(moving, msig)
    mok = np.isfinite(moving)
    return Level(
        spacing=spacing,
        fixed_grid=side.grid,
        points=side.points,
        labels=side.labels,
        design=side.design,
        n_labels=side.n_labels,
        moving_coef=ndi.spline_filter(msm, order=3, mode="mirror"),
        moving_grid=moving_grid,
        # the moving bins serve mutual information only (a level without labels scores "ncc")
        edges=bin_edges(np.where(mok, msm, np.nan), N_MOVING_BINS) if labels else np.array([0.0, 1.0]),
        n_fixed=side.n_fixed,
        moving_valid=None if mok.all() else mok.astype(np.float64),
    )
