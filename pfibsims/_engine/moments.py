"""Block kernels for one-pass statistics: per-block partial sums and their merging.

One block (a numpy array, or a pair of them) in, a tiny array of partial sums
out, and the merges of those partials; :mod:`.reduce` (the one statistics
engine) maps the kernels over dask chunks and merges the partials in a tree.
Nothing here knows about xarray or dask.

Moments of a pair ``(a, b)`` are stored as a length-6 float64 vector
``[n, mean_a, mean_b, M2_a, M2_b, C_ab]`` where ``M2`` are sums of squared
deviations from the mean and ``C`` the sum of co-deviations (the "co-moment").
Partials merge exactly (Chan, Golub & LeVeque 1979, generalised to many
partials at once), so a volume's moments do not depend on its chunking beyond
float64 rounding.  Within a block, values are accumulated in float64 after a
shift by one of the block's own values, which keeps the sums of squares free of
catastrophic cancellation when the mean is large compared with the spread.

The block kernels (:func:`pair_moments_block`, :func:`histogram_block`,
:func:`joint_histogram_block`) run compiled single-pass loops when numba is
installed (``nogil``: dask threads run chunks in parallel; no ``prange``, the
parallelism is dask's) and the equivalent numpy code otherwise; both give the
same counts and moments to float64 rounding (tests/test_moments.py).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .numba import INSTALLED, compiled, njit

__all__ = [
    "GROUP_FIELDS",
    "MOMENT_FIELDS",
    "bin_index",
    "histogram_block",
    "joint_histogram_block",
    "merge_group_moments",
    "merge_moments",
    "merge_ranges",
    "pair_moments_block",
    "range_block",
    "sum_blocks",
]

#: The order of the fields of a moment vector.
MOMENT_FIELDS = ("n", "mean_a", "mean_b", "m2_a", "m2_b", "c_ab")

# Elements per piece of the moment kernel: small enough for two float64 copies
# to stay in cache and for OpenBLAS to keep its dot products on the calling
# thread (it spawns threads above 10000 elements, which under dask's own
# threads oversubscribes the cores and was measured 10-30x slower).
_PIECE = 1 << 13
# Elements per piece of the histogram kernels (no BLAS involved).
_HIST_PIECE = 1 << 16


def _shift(x: np.ndarray) -> float:
    """A value of ``x`` near its centre (the first finite one of a small sample), or 0."""
    head = np.asarray(x[:1024], dtype=np.float64)
    finite = head[np.isfinite(head)]
    return float(finite[0]) if finite.size else 0.0


def _sums(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float, float]:
    return float(x.sum()), float(y.sum()), float(x @ x), float(y @ y), float(x @ y)


def _pair_moments_numpy(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """:func:`pair_moments_block` in numpy (without numba): float64 pieces, BLAS dots.

    Each piece is summed about a shift (the block's first finite values, then
    the previous piece's means) and the pieces' moments merged exactly.
    """
    fa, fb = a.reshape(-1), b.reshape(-1)
    fm = None if mask is None else np.broadcast_to(mask, a.shape).reshape(-1)
    ka, kb = _shift(fa), _shift(fb)
    size = min(_PIECE, fa.size)
    xbuf, ybuf = np.empty(size), np.empty(size)
    parts = [np.zeros(6)]
    for start in range(0, fa.size, _PIECE):
        pa, pb = fa[start : start + _PIECE], fb[start : start + _PIECE]
        pm = None if fm is None else fm[start : start + _PIECE]
        x, y = xbuf[: pa.size], ybuf[: pa.size]
        x[:] = pa
        x -= ka
        y[:] = pb
        y -= kb
        sums = _sums(x, y) if pm is None else (np.nan,) * 5
        n = pa.size
        if not (np.isfinite(sums[4]) and np.isfinite(sums[2]) and np.isfinite(sums[3])):
            keep = np.isfinite(x) & np.isfinite(y)
            if pm is not None:
                keep &= pm
            x, y = x[keep], y[keep]
            sums, n = _sums(x, y), x.size
        if n:
            sx, sy, sxx, syy, sxy = sums
            parts.append(np.array([n, ka + sx / n, kb + sy / n, sxx - sx * sx / n, syy - sy * sy / n,
                                   sxy - sx * sy / n]))
            ka, kb = parts[-1][1], parts[-1][2]
    return merge_moments(np.array(parts), axis=0).reshape((1,) * a.ndim + (6,))


def _axes(parts: np.ndarray, axis: int | tuple[int, ...] | None, trailing: int) -> tuple[int, ...]:
    """``axis`` as a tuple of non-negative axes; ``None``: every axis but the ``trailing`` ones."""
    if axis is None:
        return tuple(range(parts.ndim - trailing))
    axis = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    return tuple(int(ax) % parts.ndim for ax in axis)


def _pooled(n_i: np.ndarray, mean_i: np.ndarray, red: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pooled count and mean over ``red`` (kept as length-1 axes), and each part's deviation from the pooled mean."""
    n = n_i.sum(axis=red, keepdims=True)
    mean = (n_i * mean_i).sum(axis=red, keepdims=True) / np.where(n > 0, n, 1.0)
    return n, mean, mean_i - mean


def merge_moments(parts: np.ndarray, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> np.ndarray:
    """Merge pair-moment vectors (last axis of length 6) over ``axis`` exactly.

    ``n = sum n_i``, ``mean = sum n_i mean_i / n``, ``M2 = sum M2_i + sum n_i
    (mean_i - mean)^2`` and ``C = sum C_i + sum n_i (mean_a_i - mean_a)
    (mean_b_i - mean_b)``: Chan's update for any number of partials (the same
    update merges per-group tables, :func:`merge_group_moments`).

    Examples
    --------
    >>> a, b = np.arange(6.0), np.array([1.0, 0, 4, 2, 8, 3])
    >>> parts = np.concatenate([pair_moments_block(a[:2], b[:2]), pair_moments_block(a[2:], b[2:])])
    >>> np.allclose(merge_moments(parts, axis=0), pair_moments_block(a, b)[0])
    True
    """
    parts = np.asarray(parts, dtype=np.float64)
    red = _axes(parts, axis, 1)
    n_i = parts[..., 0]
    n, ma, da_ = _pooled(n_i, parts[..., 1], red)
    _, mb, db_ = _pooled(n_i, parts[..., 2], red)
    m2a = parts[..., 3].sum(axis=red, keepdims=True) + (n_i * da_ * da_).sum(axis=red, keepdims=True)
    m2b = parts[..., 4].sum(axis=red, keepdims=True) + (n_i * db_ * db_).sum(axis=red, keepdims=True)
    cab = parts[..., 5].sum(axis=red, keepdims=True) + (n_i * da_ * db_).sum(axis=red, keepdims=True)
    out = np.stack([n, ma, mb, m2a, m2b, cab], axis=-1)
    return out if keepdims else out.squeeze(axis=red)


#: The columns of a per-group moment table (:func:`merge_group_moments`).
GROUP_FIELDS = ("count", "mean", "m2", "min", "max")


def merge_group_moments(parts: np.ndarray, axis: int | tuple[int, ...] | None = None,
                        keepdims: bool = False) -> np.ndarray:
    """Merge per-group moment tables (last axes ``(groups, 5)``: :data:`GROUP_FIELDS`) over ``axis`` exactly.

    Count, mean and ``m2`` (sum of squared deviations) by the update of
    :func:`merge_moments` (Chan et al.), minimum and maximum as they are; an
    empty group is ``(0, 0, 0, inf, -inf)`` and stays so.

    Examples
    --------
    >>> p = np.array([[[2.0, 2.0, 2.0, 1.0, 3.0]], [[1.0, 10.0, 0.0, 10.0, 10.0]]])  # {1, 3} and {10}
    >>> merge_group_moments(p, axis=0).round(4).tolist()
    [[3.0, 4.6667, 44.6667, 1.0, 10.0]]
    """
    parts = np.asarray(parts, dtype=np.float64)
    red = _axes(parts, axis, 2)
    n_i = parts[..., 0]
    n, mean, d = _pooled(n_i, parts[..., 1], red)
    m2 = parts[..., 2].sum(axis=red, keepdims=True) + (n_i * d * d).sum(axis=red, keepdims=True)
    lo = parts[..., 3].min(axis=red, keepdims=True, initial=np.inf)
    hi = parts[..., 4].max(axis=red, keepdims=True, initial=-np.inf)
    out = np.stack([n, mean, m2, lo, hi], axis=-1)
    return out if keepdims else out.squeeze(axis=red)


def range_block(x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """``[min, max]`` of the finite values of a block where ``mask``; ``[inf, -inf]`` if none.

    Shape ``(1,) * x.ndim + (2,)``, float64; merged by :func:`merge_ranges`.

    Examples
    --------
    >>> range_block(np.array([3.0, np.nan, -1.0, np.inf])).tolist()
    [[-1.0, 3.0]]
    """
    if compiled():
        lo, hi = _finite_extremes(_flat(x), _flat_mask(mask, x.shape))
    else:
        v = np.asarray(x, dtype=np.float64)
        ok = np.isfinite(v) if mask is None else np.isfinite(v) & np.broadcast_to(mask, v.shape)
        lo = float(v.min(where=ok, initial=np.inf))
        hi = float(v.max(where=ok, initial=-np.inf))
    out = np.empty((1,) * x.ndim + (2,))
    out[..., 0], out[..., 1] = lo, hi
    return out


def infinite_block(x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """How many values of a block are +-inf where ``mask``: int64, shape ``(1,)``; merged by :func:`sum_blocks`.

    Examples
    --------
    >>> infinite_block(np.array([1.0, np.inf, -np.inf, np.nan])).tolist()
    [2]
    """
    v = np.asarray(x)
    if v.dtype.kind not in "fc":
        return np.zeros(1, np.int64)
    hit = np.isinf(v)
    if mask is not None:
        hit &= np.broadcast_to(np.asarray(mask, dtype=bool), v.shape)
    return np.array([np.count_nonzero(hit)], np.int64)


def merge_ranges(parts: np.ndarray, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> np.ndarray:
    """Merge ``[min, max]`` partials (last axis of length 2) over ``axis``."""
    parts = np.asarray(parts, dtype=np.float64)
    if axis is None:
        axis = tuple(range(parts.ndim - 1))
    return np.stack([parts[..., 0].min(axis=axis, keepdims=keepdims, initial=np.inf),
                     parts[..., 1].max(axis=axis, keepdims=keepdims, initial=-np.inf)], axis=-1)


def sum_blocks(parts: np.ndarray, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> np.ndarray:
    """Sum partial counts over ``axis`` (the merge of histograms)."""
    return np.sum(parts, axis=axis, keepdims=keepdims)


def _edge_tolerance(lo: float, hi: float, bins: int) -> float:
    """Bound, in bin widths, of the rounding error of ``(x - lo) * bins / (hi - lo)`` and of the edges."""
    return 64 * np.finfo(np.float64).eps * (max(abs(lo), abs(hi)) * bins / (hi - lo) + bins + 1)


def bin_index(x: np.ndarray, lo: float, hi: float, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin indices of ``x`` in ``bins`` equal bins over ``[lo, hi]``, as ``numpy.histogram``.

    Returns ``(index, keep)``: ``index`` (intp) is valid where ``keep``; values
    outside ``[lo, hi]`` or not finite are not kept; ``hi`` falls in the last
    bin. Edge cases are settled against the edges ``numpy.linspace(lo, hi,
    bins + 1)`` exactly as ``numpy.histogram`` does.
    """
    x = np.asarray(x, dtype=np.float64)
    keep = (x >= lo) & (x <= hi)
    f = (np.where(keep, x, lo) - lo) * (bins / (hi - lo))  # rejected values (NaN, inf) as lo
    idx = f.astype(np.intp)
    np.minimum(idx, bins - 1, out=idx)
    # numpy.histogram's correction for rounding at the edges: only voxels whose
    # scaled value sits within rounding error of an integer can be off by one.
    near = keep & (np.abs(f - np.rint(f)) < _edge_tolerance(lo, hi, bins))
    if near.any():
        edges = np.linspace(lo, hi, bins + 1)
        xi, ii = x[near], idx[near]
        ii = ii - (xi < edges[ii])
        ii = ii + ((xi >= edges[ii + 1]) & (ii != bins - 1))
        idx[near] = ii
    return idx, keep


def _histogram_numpy(x: np.ndarray, mask: np.ndarray | None, lo: float, hi: float, bins: int) -> np.ndarray:
    """:func:`histogram_block` in numpy (without numba): bin indices, then ``numpy.bincount``."""
    flat = x.reshape(-1)
    fm = None if mask is None else np.broadcast_to(mask, x.shape).reshape(-1)
    counts = np.zeros(bins, dtype=np.int64)
    for start in range(0, flat.size, _HIST_PIECE):
        idx, keep = bin_index(flat[start : start + _HIST_PIECE], lo, hi, bins)
        if fm is not None:
            keep &= fm[start : start + _HIST_PIECE]
        counts += np.bincount(idx[keep], minlength=bins)
    return counts.reshape((1,) * x.ndim + (bins,))


def _joint_histogram_numpy(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None, range_a: tuple[float, float],
                           range_b: tuple[float, float], bins: tuple[int, int]) -> np.ndarray:
    """:func:`joint_histogram_block` in numpy (without numba): bin indices, then ``numpy.bincount``."""
    fa, fb = a.reshape(-1), b.reshape(-1)
    fm = None if mask is None else np.broadcast_to(mask, a.shape).reshape(-1)
    na, nb = bins
    counts = np.zeros(na * nb, dtype=np.int64)
    for start in range(0, fa.size, _HIST_PIECE):
        ia, ka = bin_index(fa[start : start + _HIST_PIECE], *range_a, na)
        ib, kb = bin_index(fb[start : start + _HIST_PIECE], *range_b, nb)
        ka &= kb
        if fm is not None:
            ka &= fm[start : start + _HIST_PIECE]
        ia *= nb
        ia += ib
        counts += np.bincount(ia[ka] if not ka.all() else ia, minlength=na * nb)
    return counts.reshape((1,) * a.ndim + (na, nb))


# -- compiled kernels (numba, nogil: dask threads run chunks in parallel) -------
# Moments: one branch-free loop with float64 accumulators, which LLVM
# vectorises ("reassoc" lets it keep one partial sum per SIMD lane).  A pair is
# valid when both values are finite (``x - x == 0`` is False for NaN and inf)
# and the mask is True; invalid pairs add zeros.  Sums are of values shifted by
# the block's first valid pair (the pivot).
_SUM_PIECE = 4096


def _mask_at(mask, i):  # pragma: no cover - replaced by the overload below under numba
    """``mask[i]``, or True when there is no mask (compiled per case, no branch in the loop)."""
    return True if mask is None else bool(mask[i])


def _mask_piece(mask, s, e):  # pragma: no cover - replaced by the overload below under numba
    """``mask[s:e]``, or None when there is no mask."""
    return None if mask is None else mask[s:e]


if INSTALLED:
    from numba import types
    from numba.extending import overload

    @overload(_mask_at)
    def _mask_at_overload(mask, i):
        if isinstance(mask, types.NoneType):
            return lambda mask, i: True
        return lambda mask, i: mask[i]

    @overload(_mask_piece)
    def _mask_piece_overload(mask, s, e):
        if isinstance(mask, types.NoneType):
            return lambda mask, s, e: None
        return lambda mask, s, e: mask[s:e]


@njit(nogil=True, cache=True)
def _pivot(a, b, mask):  # pragma: no cover - compiled
    """The first valid pair of the flat blocks, or (0, 0) if there is none."""
    for i in range(a.size):
        x, y = np.float64(a[i]), np.float64(b[i])
        if x - x == 0.0 and y - y == 0.0 and _mask_at(mask, i):
            return x, y
    return 0.0, 0.0


@njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def _piece_sums(pa, pb, pm, ka, kb):  # pragma: no cover - compiled
    """``n`` and the sums of x, y, x*x, y*y, x*y over the valid pairs, x = a - ka, y = b - kb."""
    n = 0
    sx = sy = sxx = syy = sxy = 0.0
    for i in range(pa.size):
        x = np.float64(pa[i]) - ka
        y = np.float64(pb[i]) - kb
        ok = (x - x == 0.0) & (y - y == 0.0) & _mask_at(pm, i)
        x = x if ok else 0.0
        y = y if ok else 0.0
        n += ok
        sx += x
        sy += y
        sxx += x * x
        syy += y * y
        sxy += x * y
    return n, sx, sy, sxx, syy, sxy


@njit(nogil=True, cache=True)
def _moments_flat(a, b, mask, out):  # pragma: no cover - compiled
    """``out[:] = [n, mean_a, mean_b, M2_a, M2_b, C_ab]`` of the valid pairs of the flat blocks.

    Per piece of _SUM_PIECE values: a vectorised sum about a pivot (the
    block's first valid pair, then the running means), turned into the
    piece's moments and merged into the running ones by Chan's formula, so
    rounding error depends on neither the block size nor an outlying first
    value.  Loops run over views from index 0 (a loop ``range(s, e)`` was
    measured 6x slower: LLVM did not vectorise it).
    """
    ka, kb = _pivot(a, b, mask)
    n = 0.0
    ma = mb = m2a = m2b = cab = 0.0
    for s in range(0, a.size, _SUM_PIECE):
        e = min(s + _SUM_PIECE, a.size)
        k, sx, sy, sxx, syy, sxy = _piece_sums(a[s:e], b[s:e], _mask_piece(mask, s, e), ka, kb)
        if k == 0:
            continue
        k = np.float64(k)
        pa, pb = ka + sx / k, kb + sy / k
        da, db = pa - ma, pb - mb
        tot = n + k
        w = n * k / tot
        m2a += sxx - sx * sx / k + da * da * w
        m2b += syy - sy * sy / k + db * db * w
        cab += sxy - sx * sy / k + da * db * w
        ma += da * k / tot
        mb += db * k / tot
        n = tot
        ka, kb = ma, mb
    out[0], out[1], out[2], out[3], out[4], out[5] = n, ma, mb, m2a, m2b, cab


# Histograms: per piece of _BIN_PIECE values, a branch-free (vectorised) loop
# computes the flat bin index of every value (rejected ones go to an extra
# last slot), then a scalar loop increments the table.  The bin of x is
# settled against the edges ``lo + i * step`` exactly as numpy.linspace
# rounds them (the caller checks that identity, see _compiled_edges_ok), so
# counts equal numpy.histogram / numpy.histogram2d: the estimate
# floor((x - lo) * scale) is moved down when x is below its lower edge and up
# when x reaches its upper edge, except in the last bin, which includes hi.
_BIN_PIECE = 2048


@njit(nogil=True, cache=True)
def _bin_of(x, lo, scale, step, last):  # pragma: no cover - compiled
    f = min(math.floor((x - lo) * scale), last)
    f = f - 1.0 if x < f * step + lo else f
    f = f + 1.0 if (x >= (f + 1.0) * step + lo) & (f < last) else f
    return f


@njit(nogil=True, cache=True)
def _counts_1d(x, mask, lo, hi, bins, out):  # pragma: no cover - compiled
    """Add the counts of ``x`` (flat) to ``out`` (int64, ``bins + 1``; the last slot collects rejects)."""
    scale, step, last, dump = bins / (hi - lo), (hi - lo) / bins, np.float64(bins - 1), np.float64(bins)
    buf = np.empty(_BIN_PIECE, np.int64)
    for s in range(0, x.size, _BIN_PIECE):
        e = min(s + _BIN_PIECE, x.size)
        px, pm = x[s:e], _mask_piece(mask, s, e)
        for i in range(px.size):
            v = np.float64(px[i])
            ok = (v >= lo) & (v <= hi) & _mask_at(pm, i)
            buf[i] = np.int64(_bin_of(v, lo, scale, step, last) if ok else dump)
        for j in range(px.size):
            out[buf[j]] += 1


@njit(nogil=True, cache=True)
def _counts_2d(a, b, mask, lo_a, hi_a, n_a, lo_b, hi_b, n_b, out):  # pragma: no cover - compiled
    """Add the joint counts of ``(a, b)`` (flat) to ``out`` (int64, ``n_a * n_b + 1``, row-major; last = rejects)."""
    scale_a, step_a, last_a = n_a / (hi_a - lo_a), (hi_a - lo_a) / n_a, np.float64(n_a - 1)
    scale_b, step_b, last_b = n_b / (hi_b - lo_b), (hi_b - lo_b) / n_b, np.float64(n_b - 1)
    dump, nbf = np.float64(n_a * n_b), np.float64(n_b)
    buf = np.empty(_BIN_PIECE, np.int64)
    for s in range(0, a.size, _BIN_PIECE):
        e = min(s + _BIN_PIECE, a.size)
        pa, pb, pm = a[s:e], b[s:e], _mask_piece(mask, s, e)
        for i in range(pa.size):
            x, y = np.float64(pa[i]), np.float64(pb[i])
            ok = (x >= lo_a) & (x <= hi_a) & (y >= lo_b) & (y <= hi_b) & _mask_at(pm, i)
            f = _bin_of(x, lo_a, scale_a, step_a, last_a) * nbf + _bin_of(y, lo_b, scale_b, step_b, last_b)
            buf[i] = np.int64(f if ok else dump)
        for j in range(pa.size):
            out[buf[j]] += 1


@njit(nogil=True, cache=True)
def _finite_extremes(x, mask):  # pragma: no cover - compiled
    """(min, max) of the finite values of ``x`` (flat) where ``mask``; (inf, -inf) if none."""
    lo, hi = np.inf, -np.inf
    for s in range(0, x.size, _SUM_PIECE):
        e = min(s + _SUM_PIECE, x.size)
        px, pm = x[s:e], _mask_piece(mask, s, e)
        for i in range(px.size):
            v = np.float64(px[i])
            ok = (v - v == 0.0) & _mask_at(pm, i)
            lo = min(lo, v if ok else np.inf)
            hi = max(hi, v if ok else -np.inf)
    return lo, hi


@functools.lru_cache(maxsize=256)
def _compiled_edges_ok(lo: float, hi: float, bins: int) -> bool:
    """True if ``lo + i * ((hi - lo) / bins)`` are ``numpy.linspace(lo, hi, bins + 1)[:-1]`` bit for bit."""
    return bool(np.array_equal(np.arange(bins) * ((hi - lo) / bins) + lo, np.linspace(lo, hi, bins + 1)[:-1]))


def _flat(x: np.ndarray) -> np.ndarray:
    """``x`` flattened without a copy when it is contiguous; booleans as uint8."""
    x = np.ravel(x)
    return x.view(np.uint8) if x.dtype == bool else x


def _flat_mask(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    return None if mask is None else np.ravel(np.broadcast_to(np.asarray(mask, dtype=bool), shape))


# -- the block kernels graph builders map over chunks ------------------------------
def pair_moments_block(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Moments of the pairs ``(a_i, b_i)`` with both finite (and ``mask_i`` True).

    Parameters
    ----------
    a, b : numpy.ndarray
        Blocks of one shape, any real dtype.
    mask : numpy.ndarray of bool, optional
        Voxels to include.

    Returns
    -------
    numpy.ndarray
        Shape ``(1,) * a.ndim + (6,)``: ``[n, mean_a, mean_b, M2_a, M2_b, C_ab]``
        (means are 0 when ``n`` is 0).

    Examples
    --------
    >>> m = pair_moments_block(np.array([1.0, 2, 3, np.nan]), np.array([2.0, 4, 7, 1]))
    >>> m.ravel().round(4).tolist()
    [3.0, 2.0, 4.3333, 2.0, 12.6667, 5.0]
    """
    if not compiled():
        return _pair_moments_numpy(a, b, mask)
    out = np.zeros(6)
    _moments_flat(_flat(a), _flat(b), _flat_mask(mask, a.shape), out)
    return out.reshape((1,) * a.ndim + (6,))


def histogram_block(x: np.ndarray, mask: np.ndarray | None, lo: float, hi: float, bins: int) -> np.ndarray:
    """Counts of one block in ``bins`` equal bins over ``[lo, hi]``, as ``numpy.histogram``.

    NaN, inf and values outside ``[lo, hi]`` are not counted; ``hi`` is in the
    last bin. Returns int64 of shape ``(1,) * x.ndim + (bins,)``.

    Examples
    --------
    >>> histogram_block(np.array([0.0, 0.5, 1.0, np.nan, 2.0]), None, 0.0, 1.0, 2).tolist()
    [[1, 2]]
    """
    if not (compiled() and _compiled_edges_ok(lo, hi, bins)):
        return _histogram_numpy(x, mask, lo, hi, bins)
    out = np.zeros(bins + 1, dtype=np.int64)
    _counts_1d(_flat(x), _flat_mask(mask, x.shape), float(lo), float(hi), int(bins), out)
    return out[:bins].reshape((1,) * x.ndim + (bins,))


def joint_histogram_block(
    a: np.ndarray,
    b: np.ndarray,
    mask: np.ndarray | None,
    range_a: tuple[float, float],
    range_b: tuple[float, float],
    bins: tuple[int, int],
) -> np.ndarray:
    """2-D counts of one block pair, as ``numpy.histogram2d``; int64, shape ``(1,) * a.ndim + bins``.

    Pairs with a value not finite or outside its range are not counted; the
    upper edge of each range is in its last bin.

    Examples
    --------
    >>> a, b = np.array([0.0, 1.0, 1.0, np.nan]), np.array([1.0, 0.0, 0.2, 0.0])
    >>> joint_histogram_block(a, b, None, (0.0, 1.0), (0.0, 1.0), (2, 2))[0].tolist()
    [[0, 1], [2, 0]]
    """
    na, nb = bins
    if not (compiled() and _compiled_edges_ok(*range_a, na) and _compiled_edges_ok(*range_b, nb)):
        return _joint_histogram_numpy(a, b, mask, range_a, range_b, bins)
    out = np.zeros(na * nb + 1, dtype=np.int64)
    _counts_2d(_flat(a), _flat(b), _flat_mask(mask, a.shape), float(range_a[0]), float(range_a[1]), int(na),
               float(range_b[0]), float(range_b[1]), int(nb), out)
    return out[: na * nb].reshape((1,) * a.ndim + (na, nb))
