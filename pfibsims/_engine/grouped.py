"""Statistics of values grouped by an integer label, streamed chunk by chunk.

Used for per-phase statistics (group = phase label) and for profiles versus
distance (group = distance bin).  Two streaming passes of the one statistics
engine (:mod:`.reduce`: each chunk pair read and reduced in one task, the
partials merged in a tree, so only a few tables are held at once):

1. per group: count, mean, sum of squared deviations (within a block two
   passes over it, so exact; blocks merged exactly as Chan, Golub & LeVeque
   1979, :func:`.moments.merge_group_moments`), minimum and maximum;
2. per group: a histogram of ``bins`` equal bins between that group's minimum
   and maximum (summed, :func:`.moments.sum_blocks`), from which quantiles
   are interpolated linearly within a bin (so they are exact to
   ``(max - min) / bins``).

:func:`grouped_plan` is the two passes as a plan of :func:`.reduce.evaluate`,
so they can run together with other statistics of the same volume;
:func:`grouped_statistics` runs it alone.

Groups are integers ``0 .. n - 1``; a negative group, or a non-finite value,
excludes the voxel.  Raw labels can be mapped to groups on the fly by a lookup
table ``lut`` (group of raw value ``g`` is ``lut[g]``; raw values outside the
table or mapped to a negative group are excluded), so uint8 labels are never
expanded to an int64 group array.

The block kernels are compiled loops (numba, ``nogil``: dask threads run
blocks in parallel) that read the values in their own dtype (float32 stays
float32 in memory; each value is widened to float64 in a register) and the
groups in theirs (uint8, uint16, int64, ...).  Without numba the same
statistics come from numpy (:func:`_moments_numpy`, :func:`_histogram_numpy`,
the previous implementation, also the reference of tests/test_grouped.py and
benchmarks/bench_grouped.py).  Nothing here knows about xarray.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from ..errors import PfibsimsError
from .moments import GROUP_FIELDS, merge_group_moments, sum_blocks
from .numba import compiled as _numba_compiled
from .numba import njit
from .reduce import SPLIT, Plan, Reduction, evaluate

__all__ = [
    "MAX_CELLS",
    "grouped_moments",
    "grouped_moments_plan",
    "grouped_plan",
    "grouped_statistics",
    "histogram_block",
    "moments_block",
    "quantiles_from_histograms",
]

#: Columns of a moments table.
FIELDS = GROUP_FIELDS

#: Most groups, and most histogram cells (groups x bins), of one table: 2^24 int64 counts are 128 MiB, and a
#: pass holds a table per block being reduced plus the partials merged (as ``pfibsims.normalization.MAX_BINS``).
MAX_CELLS = 1 << 24

#: Value dtypes the kernels read as they are (others are converted to float64).
_VALUE_KINDS = "fiu"
# Partial tables merged per task of the tree (the engine's).
_SPLIT = SPLIT


# -- inputs ------------------------------------------------------------------------
def _table(n: int, lut: np.ndarray | None) -> np.ndarray:
    """The raw value -> group table as int64; entries outside ``0 .. n-1`` become -1 (excluded)."""
    if lut is None:
        return np.arange(n, dtype=np.int64)
    t = np.asarray(lut).astype(np.int64).ravel()
    return np.where((t >= 0) & (t < n), t, -1)


def _flat_values(values: np.ndarray) -> np.ndarray:
    v = np.ravel(np.asarray(values))
    if v.dtype == bool:
        return v.view(np.uint8)
    if v.dtype.kind not in _VALUE_KINDS or v.dtype == np.float16:
        return v.astype(np.float64)
    return v


def _flat_groups(groups: np.ndarray) -> np.ndarray:
    g = np.ravel(np.asarray(groups))
    if g.dtype == bool:
        return g.view(np.uint8)
    if g.dtype.kind not in "iu":
        return g.astype(np.int64)  # as before: float groups are truncated
    return g


# -- compiled kernels --------------------------------------------------------------
# The sums go to _LANES interleaved accumulators per group (voxel i adds to lane
# i % _LANES), merged after the loop: consecutive voxels of one group then do
# not wait on each other's store-load-add of the same memory slot, which made a
# single accumulator 2x slower (benchmarks/README.md, issue 11).
_LANES = 4


@njit(nogil=True, cache=True, inline="always")
def _voxel(v, g, lut, i):  # pragma: no cover - compiled
    """(group, value as float64) of voxel ``i``; group -1 if it is excluded (bad group or non-finite value)."""
    x = np.float64(v[i])
    j = np.int64(g[i])
    k = lut[j] if (j >= 0) & (j < lut.size) else -1
    return (k if x - x == 0.0 else -1), x


@njit(nogil=True, cache=True)
def _count_sum_range(v, g, lut, count, total, lo, hi):  # pragma: no cover - compiled
    """Add count and sum (``(n, _LANES)``), min and max (``(n,)``) per group of the valid voxels of flat ``v``, ``g``."""
    for i in range(v.size):
        k, x = _voxel(v, g, lut, i)
        if k >= 0:
            lane = i % _LANES
            count[k, lane] += 1
            total[k, lane] += x
            if x < lo[k]:
                lo[k] = x
            if x > hi[k]:
                hi[k] = x


@njit(nogil=True, cache=True)
def _squared_deviations(v, g, lut, mean, m2):  # pragma: no cover - compiled
    """Add ``(x - mean[k])**2`` per group ``k`` (to ``m2``, ``(n, _LANES)``) of the valid voxels of flat ``v``, ``g``."""
    for i in range(v.size):
        k, x = _voxel(v, g, lut, i)
        if k >= 0:
            d = x - mean[k]
            m2[k, i % _LANES] += d * d


@njit(nogil=True, cache=True)
def _group_counts(v, g, lut, lo, width, bins, out):  # pragma: no cover - compiled
    """Add to ``out[k, b]`` (int64) the valid voxels of group ``k`` in bin ``b`` of ``[lo[k], lo[k] + width[k]]``.

    The bin is ``floor((x - lo) / width * bins)`` clipped to ``0 .. bins-1``,
    in float64 and in this order, as the numpy reference computes it, so the
    counts are identical.
    """
    last = np.float64(bins - 1)
    for i in range(v.size):
        k, x = _voxel(v, g, lut, i)
        if k >= 0:
            f = np.floor((x - lo[k]) / width[k] * bins)
            f = f if f >= 0.0 else 0.0  # also NaN (only from an infinite lo or width)
            f = f if f <= last else last
            out[k, np.int64(f)] += 1


def _moments_compiled(v: np.ndarray, g: np.ndarray, t: np.ndarray, n: int) -> np.ndarray:
    count, total = np.zeros((n, _LANES), dtype=np.int64), np.zeros((n, _LANES))
    lo, hi = np.full(n, np.inf), np.full(n, -np.inf)
    _count_sum_range(v, g, t, count, total, lo, hi)
    count = count.sum(axis=1).astype(np.float64)
    mean = total.sum(axis=1) / np.maximum(count, 1)
    m2 = np.zeros((n, _LANES))
    if count.any():
        _squared_deviations(v, g, t, mean, m2)
    return np.stack([count, mean, m2.sum(axis=1), lo, hi], axis=-1)


# -- numpy reference (the previous implementation; used without numba) -------------
def _valid(v: np.ndarray, g: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(v, dtype=np.float64)
    g = g.astype(np.int64)
    inside = (g >= 0) & (g < t.size)
    if not np.array_equal(t, np.arange(t.size)):  # a table: map (without one, this is the previous code)
        g = np.where(inside, t[np.clip(g, 0, t.size - 1)], -1)
        inside = g >= 0
    keep = np.isfinite(v) & inside
    return v[keep], g[keep]


def _moments_numpy(v: np.ndarray, g: np.ndarray, t: np.ndarray, n: int) -> np.ndarray:
    v, g = _valid(v, g, t)
    out = np.zeros((n, 5))
    out[:, 3], out[:, 4] = np.inf, -np.inf
    if v.size == 0:
        return out
    count = np.bincount(g, minlength=n).astype(np.float64)
    mean = np.bincount(g, weights=v, minlength=n) / np.maximum(count, 1)
    m2 = np.bincount(g, weights=(v - mean[g]) ** 2, minlength=n)
    present = np.flatnonzero(count)
    out[:, 0], out[:, 1], out[:, 2] = count, mean, m2
    out[present, 3] = ndi.minimum(v, g + 1, present + 1)
    out[present, 4] = ndi.maximum(v, g + 1, present + 1)
    return out


def _histogram_numpy(v, g, t, lo, width, bins) -> np.ndarray:
    n = len(lo)
    v, g = _valid(v, g, t)
    idx = np.clip(np.floor((v - lo[g]) / width[g] * bins), 0, bins - 1).astype(np.int64)
    return np.bincount(g * bins + idx, minlength=n * bins).reshape(n, bins)


# -- block functions the graph maps over chunks -------------------------------------
def _compiled(compiled: bool | None) -> bool:
    return _numba_compiled() if compiled is None else bool(compiled)


def moments_block(values: np.ndarray, groups: np.ndarray, n: int, *, lut: np.ndarray | None = None,
                  compiled: bool | None = None) -> np.ndarray:
    """Per-group ``(count, mean, m2, min, max)`` of one block, shape ``(n, 5)``.

    ``m2`` is the sum of squared deviations from the block's group mean
    (computed in a second pass over the block, so exact to float64 rounding);
    an empty group has ``(0, 0, 0, inf, -inf)``.  ``lut`` maps raw group
    values to groups (see :func:`grouped_statistics`); ``compiled=False``
    runs the numpy reference (default: compiled when numba is installed).

    Examples
    --------
    >>> moments_block(np.array([1.0, 3.0, 10.0]), np.array([0, 0, 1]), 2)
    array([[ 2.,  2.,  2.,  1.,  3.],
           [ 1., 10.,  0., 10., 10.]])
    """
    v, g, t = _flat_values(values), _flat_groups(groups), _table(n, lut)
    return (_moments_compiled if _compiled(compiled) else _moments_numpy)(v, g, t, n)


def histogram_block(values: np.ndarray, groups: np.ndarray, lo: np.ndarray, hi: np.ndarray, bins: int, *,
                    lut: np.ndarray | None = None, compiled: bool | None = None) -> np.ndarray:
    """Per-group histograms of one block, int64 of shape ``(n, bins)``; group ``k`` spans ``[lo[k], hi[k]]``.

    A value's bin is ``floor((x - lo) / (hi - lo) * bins)`` clipped to the
    table (``hi`` falls in the last bin; a group with ``hi <= lo`` puts all in
    bin 0).

    Examples
    --------
    >>> histogram_block(np.array([0.0, 1.0, 1.0]), np.array([0, 0, 0]), np.array([0.0]), np.array([1.0]), 2)
    array([[1, 2]])
    """
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    n = len(lo)
    width = np.where(hi > lo, hi - lo, 1.0)
    v, g, t = _flat_values(values), _flat_groups(groups), _table(n, lut)
    if not _compiled(compiled):
        return _histogram_numpy(v, g, t, lo, width, int(bins))
    out = np.zeros((n, int(bins)), dtype=np.int64)
    _group_counts(v, g, t, lo, width, int(bins), out)
    return out


def quantiles_from_histograms(
    hist: np.ndarray, lo: np.ndarray, hi: np.ndarray, q: Sequence[float]
) -> np.ndarray:
    """Quantiles ``q`` per group (``(n, len(q))``), interpolated within histogram bins; NaN for empty groups.

    Examples
    --------
    >>> quantiles_from_histograms(np.array([[1.0, 1.0]]), np.array([0.0]), np.array([2.0]), [0.5])
    array([[1.]])
    """
    hist = np.asarray(hist, dtype=np.float64)
    n, bins = hist.shape
    out = np.full((n, len(q)), np.nan)
    for k in range(n):
        total = hist[k].sum()
        if total == 0:
            continue
        if hi[k] <= lo[k]:
            out[k] = lo[k]
            continue
        edges = np.linspace(lo[k], hi[k], bins + 1)
        cum = np.concatenate([[0.0], np.cumsum(hist[k])]) / total
        out[k] = np.interp(q, cum, edges)
    return out


def _moments_chunk(values: np.ndarray, groups: np.ndarray, *, n: int, lut) -> np.ndarray:
    return moments_block(values, groups, n, lut=lut)


def _histogram_chunk(values: np.ndarray, groups: np.ndarray, *, lo, hi, bins: int, lut) -> np.ndarray:
    return histogram_block(values, groups, lo, hi, bins, lut=lut)


def _check_size(n, bins: int | None = None) -> tuple[int, int | None]:
    """``n`` (and ``bins``) as ints, checked before any table is allocated: at most :data:`MAX_CELLS` groups
    and ``n * bins`` cells (Python ints: the product does not overflow)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0 or \
            (bins is not None and (isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1)):
        raise PfibsimsError(f"n, bins: expected n >= 0 groups and bins >= 1, got n={n!r}, bins={bins!r}")
    n = int(n)
    if bins is None:
        if n > MAX_CELLS:
            raise PfibsimsError(f"n: expected at most {MAX_CELLS} groups, got {n} groups")
        return n, None
    bins = int(bins)
    if n > MAX_CELLS or n * bins > MAX_CELLS:
        raise PfibsimsError(f"n, bins: expected at most {MAX_CELLS} groups and groups x bins histogram cells, got "
                            f"{n} groups x {bins} bins = {n * bins} cells; give fewer bins or groups")
    return n, bins


def _pair(values, groups):
    """``values`` and ``groups`` as arrays of one shape (0-d as 1-d); dask stays dask."""
    values = values if hasattr(values, "chunks") else np.asarray(values)
    groups = groups if hasattr(groups, "chunks") else np.asarray(groups)
    if values.ndim == 0:
        values, groups = values.reshape(1), groups.reshape(1)
    return values, groups


def _moments_pass(values, groups, n: int, lut) -> Reduction:
    return Reduction(_moments_chunk, (values, groups), (n, 5), merge_group_moments, np.float64, {"n": n, "lut": lut})


def _summary(mom: np.ndarray) -> dict[str, np.ndarray]:
    """Count, mean, std (population), min, max per group from a merged moments table (NaN: empty group)."""
    count, mean, m2, lo, hi = mom.T
    nan = np.where(count == 0, np.nan, 1.0)
    return {"count": count.astype(np.int64), "mean": mean * nan, "std": np.sqrt(m2 / np.maximum(count, 1)) * nan,
            "min": lo * nan, "max": hi * nan}


def grouped_moments_plan(values, groups, n: int, *, lut=None) -> Plan:
    """:func:`grouped_moments` as a plan of :func:`~pfibsims._engine.reduce.evaluate` (one pass)."""
    n, _ = _check_size(n)
    lut = None if lut is None else np.asarray(lut)
    values, groups = _pair(values, groups)
    (mom,) = yield [_moments_pass(values, groups, n, lut)]
    return _summary(mom)


def grouped_moments(values, groups, n: int, *, lut=None) -> dict[str, np.ndarray]:
    """Count, mean, std (population), min and max of ``values`` per group, in one pass.

    The first pass of :func:`grouped_statistics` (same arguments), for callers
    that need no quantiles.

    Examples
    --------
    >>> grouped_moments(np.array([1.0, 3.0, 7.0, np.nan]), np.array([0, 0, 1, 1]), 2)["mean"].tolist()
    [2.0, 7.0]
    """
    (out,) = evaluate(grouped_moments_plan(values, groups, n, lut=lut))
    return out


def grouped_plan(values, groups, n: int, *, bins: int = 1024, quantiles: Sequence[float] = (0.25, 0.5, 0.75),
                 lut=None) -> Plan:
    """The two passes of :func:`grouped_statistics` as a plan of :func:`~pfibsims._engine.reduce.evaluate`.

    Yields pass 1 (per-group moments, minimum and maximum), then pass 2
    (per-group histograms between those extremes); returns the dict of
    :func:`grouped_statistics`.
    """
    n, bins = _check_size(n, bins)  # the kernels index by them
    lut = None if lut is None else np.asarray(lut)
    values, groups = _pair(values, groups)
    (mom,) = yield [_moments_pass(values, groups, n, lut)]
    out = _summary(mom)
    empty = out["count"] == 0
    lo, hi = np.where(empty, 0.0, mom[:, 3]), np.where(empty, 0.0, mom[:, 4])
    (hist,) = yield [Reduction(_histogram_chunk, (values, groups), (n, bins), sum_blocks, np.int64,
                               {"lo": lo, "hi": hi, "bins": bins, "lut": lut})]
    return {**out, "quantiles": quantiles_from_histograms(hist, lo, hi, quantiles)}


def grouped_statistics(values, groups, n: int, *, bins: int = 1024, quantiles: Sequence[float] = (0.25, 0.5, 0.75),
                       lut=None):
    """Count, mean, std, min, max and quantiles of ``values`` per group.

    Computes: two streaming passes over ``values`` and ``groups`` (numpy or
    dask, same shape), each holding only one chunk pair a thread and small
    partials (per-block moment tables of ``n x 5``; histogram tables of
    ``n x bins`` merged 16 at a time); numpy inputs are reduced in place,
    without dask.

    Parameters
    ----------
    values, groups : array
        Values (any real dtype, read as they are; non-finite ones are skipped)
        and integer groups ``0 .. n-1`` (any integer dtype; negative or
        ``>= n``: skipped), or raw labels mapped by ``lut``.
    n : int
        Number of groups.
    bins : int
        Histogram bins per group for the quantiles.
    quantiles : sequence of float
        Fractions in ``[0, 1]``.
    lut : array of int, optional
        Group of each raw value of ``groups``: a voxel whose ``groups`` value
        is ``g`` counts in group ``lut[g]``; ``g`` outside ``0 .. len(lut)-1``
        or ``lut[g]`` outside ``0 .. n-1`` excludes it.  Applied inside the
        block kernels, so no group array is made.

    Returns
    -------
    dict of numpy.ndarray
        ``count``, ``mean``, ``std`` (population), ``min``, ``max`` of shape
        ``(n,)`` and ``quantiles`` of shape ``(n, len(quantiles))``; NaN for
        empty groups.

    Examples
    --------
    >>> s = grouped_statistics(np.array([1.0, 2.0, 3.0, 7.0]), np.array([0, 0, 0, 1]), 2)
    >>> s["mean"].tolist(), round(float(s["quantiles"][0, 1]), 2)
    ([2.0, 7.0], 2.0)
    >>> grouped_statistics(np.array([1.0, 2.0, 4.0]), np.array([7, 7, 9], np.uint8), 1, lut=[-1] * 9 + [0])["mean"]
    array([4.])
    """
    (out,) = evaluate(grouped_plan(values, groups, n, bins=bins, quantiles=quantiles, lut=lut))
    return out
