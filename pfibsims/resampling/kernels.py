"""Numpy layer of resampling: interpolation kernels, weights, one slab in, one slab out.

Nothing here knows about xarray, dask, units or grids.  Positions are
*fractional source indices*: ``u = 2.0`` is the centre of source sample 2,
``u = -0.5`` and ``u = n - 0.5`` are the outer edges of a field of ``n``
samples.  This is Pillow's convention (``center = (i + 0.5) * scale`` in
pixel-edge units is ``u = center - 0.5`` here), so the weights below are
Pillow's weights.

Two evaluators:

* ``axis_weights`` + ``pass_axis``: one 1-D pass along one axis with a
  precomputed banded weight table (exact kernel values, float64 weights,
  Pillow's tap selection and normalisation).  Used for axis-aligned maps.
* ``warp2d``: a general 2-D windowed evaluation for rotations and shears: at
  each output pixel the source point ``(u, v)`` is computed and the separable
  product kernel ``k(dy / fy) k(dx / fx)`` is summed over the full 2-D
  neighbourhood.  The kernel is read from a table with linear interpolation
  (4096 samples per unit; kernel error below 1e-6).  In the fixed-size
  interior path the ``2a`` taps of an axis share one fractional part, so
  their weights are two contiguous rows of a phase table
  (:func:`phase_table`) interpolated once: ``2 x 2a`` weights per pixel, not
  ``(2a)^2``, and no per-tap branches.

Compiled with numba (``nogil``, so dask threads run blocks in parallel) when
it is installed; without it the same loops run as plain Python (correct, slow).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from .._engine.numba import njit, stack_array

__all__ = [
    "KERNELS",
    "AxisWeights",
    "axis_weights",
    "kernel_lut",
    "kernel_radius",
    "kernel_values",
    "nearest_index",
    "pass_axis",
    "phase_table",
    "warp2d",
    "warp2d_nearest",
    "warp_source_index",
]

#: Kernel names resample() accepts.
KERNELS = ("lanczos", "cubic", "linear", "nearest")

# Tolerance (in source samples) under which a point on the field edge is inside.
EDGE_TOL = 1e-6
_LUT_PER_UNIT = 4096


def kernel_radius(kernel: str, a: int) -> float:
    """Support radius of a kernel in samples (before antialias widening)."""
    return {"lanczos": float(a), "cubic": 2.0, "linear": 1.0, "nearest": 0.5}[kernel]


def kernel_values(kernel: str, a: int, x: np.ndarray) -> np.ndarray:
    """The kernel at offsets ``x`` (samples), float64; Pillow's definitions.

    ``lanczos``: ``sinc(x) sinc(x / a)`` for ``|x| < a``; ``cubic``: Keys with
    ``a = -0.5`` (Pillow's BICUBIC); ``linear``: the triangle.
    """
    x = np.abs(np.asarray(x, dtype=np.float64))
    if kernel == "lanczos":  # exact zeros at whole offsets (np.sinc gives ~1e-17 there: a NaN would leak)
        return np.where((x < a) & ((x == 0.0) | (x != np.round(x))), np.sinc(x) * np.sinc(x / a), 0.0)
    if kernel == "cubic":
        c = -0.5
        inner = ((c + 2.0) * x - (c + 3.0)) * x * x + 1.0
        outer = (((x - 5.0) * x + 8.0) * x - 4.0) * c
        return np.where(x < 1.0, inner, np.where(x < 2.0, outer, 0.0))
    if kernel == "linear":
        return np.maximum(1.0 - x, 0.0)
    raise ValueError(f"kernel: no weights for {kernel!r}")


def kernel_lut(kernel: str, a: int) -> np.ndarray:
    """The kernel on ``[0, radius]`` sampled ``4096`` times per unit (plus a zero)."""
    r = kernel_radius(kernel, a)
    x = np.arange(int(r * _LUT_PER_UNIT) + 2, dtype=np.float64) / _LUT_PER_UNIT
    lut = kernel_values(kernel, a, x)
    knots = np.arange(1, int(r) + 1) * _LUT_PER_UNIT  # exact zeros at integer offsets
    if kernel == "lanczos":
        lut[knots[knots < lut.size]] = 0.0
    lut[0] = 1.0
    return lut


def filter_scale(step: np.ndarray | float) -> np.ndarray:
    """Antialias widening: source samples per output sample, at least 1 (as Pillow)."""
    f = np.maximum(np.abs(np.asarray(step, dtype=np.float64)), 1.0)
    return np.where(f - 1.0 < 1e-9, 1.0, f)


@dataclass(frozen=True)
class AxisWeights:
    """A banded weight table along one axis.

    Output sample ``i`` is ``sum_t weights[i, t] * src[start[i] + t]``;
    ``valid[i]`` is False where the output's source point lies outside the field.
    """

    start: np.ndarray  # (m,) int64
    weights: np.ndarray  # (m, K) float64
    valid: np.ndarray  # (m,) bool

    def rows(self, sl: slice) -> AxisWeights:
        return AxisWeights(self.start[sl], self.weights[sl], self.valid[sl])

    def window(self) -> tuple[int, int]:
        """``(lo, hi)``: the source samples the valid rows read (empty if none)."""
        if not self.valid.any():
            return 0, 0
        k = self.weights.shape[1]
        return int(self.start[self.valid].min()), int(self.start[self.valid].max()) + k

    def shifted(self, lo: int) -> AxisWeights:
        return AxisWeights(self.start - lo, self.weights, self.valid)


def axis_weights(u: np.ndarray, f: np.ndarray, n: int, kernel: str, a: int) -> AxisWeights:
    """Weights resampling ``n`` source samples at fractional indices ``u``.

    Parameters
    ----------
    u : (m,) float
        Source position of every output sample, in source samples.
    f : (m,) float or float
        Filter scale (>= 1): the kernel is stretched by ``f`` when the output
        is coarser than the source (antialiasing, as Pillow does).
    n : int
        Number of source samples.

    Notes
    -----
    Pillow's taps: ``floor(u + 1 - r f) <= j < floor(u + 1 + r f)``, clipped
    to the field, weights ``k((j - u) / f)`` normalised to sum 1 over the
    taps inside the field.  Taps are shifted inwards so that ``start + K``
    never passes ``n`` (the extra taps get weight 0).

    Examples
    --------
    >>> w = axis_weights(np.array([0.0, 1.5]), 1.0, 3, "linear", 3)
    >>> w.start.tolist(), w.weights.round(3).tolist()
    ([0, 1], [[1.0, 0.0], [0.5, 0.5]])
    """
    u = np.asarray(u, dtype=np.float64)
    f = np.broadcast_to(filter_scale(f), u.shape)
    valid = (u >= -0.5 - EDGE_TOL) & (u <= n - 0.5 + EDGE_TOL)
    uc = np.where(valid, u, 0.0)
    support = kernel_radius(kernel, a) * f
    lo = np.clip(np.floor(uc + 1.0 - support), 0, n).astype(np.int64)
    hi = np.clip(np.floor(uc + 1.0 + support), 0, n).astype(np.int64)
    hi = np.maximum(hi, np.minimum(lo + 1, n))
    k = int(max((hi - lo)[valid].max(initial=1), 1))
    start = np.clip(np.minimum(lo, n - k), 0, None)
    j = start[:, None] + np.arange(k)
    inside = (j >= lo[:, None]) & (j < hi[:, None]) & valid[:, None]
    w = np.where(inside, kernel_values(kernel, a, (j - uc[:, None]) / f[:, None]), 0.0)
    total = w.sum(axis=1, keepdims=True)
    w = w / np.where(total == 0.0, 1.0, total)
    return AxisWeights(start, w, valid)


def nearest_index(u: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest source sample (ties round up) and the validity mask."""
    u = np.asarray(u, dtype=np.float64)
    valid = (u >= -0.5 - EDGE_TOL) & (u <= n - 0.5 + EDGE_TOL)
    idx = np.clip(np.floor(np.where(valid, u, 0.0) + 0.5), 0, n - 1).astype(np.int64)
    return idx, valid


# -- compiled loops ------------------------------------------------------------
# Array indices in the hot loops are unsigned (``uint64``): numba then skips the
# negative-index wraparound test, which otherwise blocks LLVM's vectoriser (2x).
_TILE = 16  # source rows transposed at once by the horizontal pass


@njit(nogil=True, cache=True)
def _pass_last(src, start, w, out):  # pragma: no cover - compiled
    """Along the last axis of ``src`` (P, R, N), any strides -> ``out`` (P, R, M).

    ``_TILE`` rows at a time are transposed into a float64 buffer so that the
    taps of one output sample run over the rows in SIMD lanes; every row's sum
    is the same ``sum_t w[i, t] src[r, start[i] + t]`` (ascending ``t``, zero
    weights skipped) whatever the tiling, so chunking never changes a result.
    """
    p_n, r_n, n = src.shape
    m = out.shape[2]
    k = w.shape[1]
    tile = min(_TILE, r_n)
    buf = np.empty((n, tile), dtype=np.float64)
    acc = np.empty(tile, dtype=np.float64)
    for p in range(p_n):
        r0 = 0
        while r0 < r_n:
            if r0 + tile > r_n:  # last tile overlaps the previous one: same sums, rewritten
                r0 = r_n - tile
            for c in range(n):
                for r in range(tile):
                    buf[c, r] = src[p, r0 + r, c]
            for i in range(m):
                s = np.uint64(start[i])
                for r in range(tile):
                    acc[r] = 0.0
                for t in range(k):
                    wt = w[i, t]
                    if wt != 0.0:
                        row = s + np.uint64(t)
                        for r in range(tile):
                            acc[r] += wt * buf[row, r]
                for r in range(tile):
                    out[p, r0 + r, i] = acc[r]
            r0 += tile


@njit(nogil=True, cache=True)
def _pass_mid(src, start, w, out):  # pragma: no cover - compiled
    p_n, m, q_n = out.shape
    k = w.shape[1]
    acc = np.empty(q_n, dtype=np.float64)
    for p in range(p_n):
        for i in range(m):
            s = start[i]
            acc[:] = 0.0
            for t in range(k):
                wt = w[i, t]
                if wt != 0.0:
                    for q in range(q_n):
                        acc[q] += wt * src[p, s + t, q]
            for q in range(q_n):
                out[p, i, q] = acc[q]


def pass_axis(src: np.ndarray, axis: int, w: AxisWeights, dtype: np.dtype) -> np.ndarray:
    """Resample ``src`` along ``axis`` with the weight table ``w`` (window-local starts).

    ``src`` may be a strided view (a window cut from a chunk) of any real
    dtype: it is read in place, not copied.
    """
    shape = src.shape
    pre, n, post = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1 :])
    m = w.start.size
    start = np.ascontiguousarray(w.start, dtype=np.int64)
    weights = np.ascontiguousarray(w.weights, dtype=np.float64)
    if src.dtype.kind not in "fiu" or src.dtype == np.float16:
        src = src.astype(dtype)
    if post == 1:  # along the last (non-trivial) axis: rows of the axis before it, in place
        rows = shape[axis - 1] if axis else 1
        out = np.empty((pre // rows, rows, m), dtype=dtype)
        _pass_last(src.reshape(pre // rows, rows, n), start, weights, out)
    else:
        out = np.empty((pre, m, post), dtype=dtype)
        _pass_mid(src.reshape(pre, n, post), start, weights, out)
    return out.reshape(shape[:axis] + (m,) + shape[axis + 1 :])


@njit(nogil=True, cache=True)
def _lut_at(lut, x):  # pragma: no cover - compiled
    x = abs(x) * 4096.0
    i = np.uint64(x)
    if i >= lut.size - 1:
        return 0.0
    fr = x - i
    a = lut[i]
    return a + fr * (lut[i + np.uint64(1)] - a)


@njit(nogil=True, cache=True)
def _coord(m, r, gi, gj):  # pragma: no cover - compiled
    """Source index along axis ``r`` of global output pixel ``(gi, gj)``.

    Not fastmath (no fused multiply-add): the same rounding as
    :func:`warp_source_index` in numpy, so inside/outside never disagrees
    with :func:`pfibsims.resampling.coverage`, and the same in every chunk.
    """
    return (m[r, 0] * gi + m[r, 2]) + m[r, 1] * gj


# Longer than the ~80-line rule on purpose: the per-pixel loop of a compiled
# kernel stays in one function. Calling a compiled helper per pixel with array
# arguments (views, refcounts) cost ~4x the arithmetic in the EDS fit kernels
# (issue 17, benchmarks/README), and splitting the interior fast path from the
# clipped general path would gather each neighbourhood twice.
@njit(nogil=True, cache=True, fastmath={"contract", "reassoc"})
def _warp2d_k(src, out, m, i0, j0, lo_y, lo_x, ny, nx, fy, fx, radius, lut, phase, phase_x, fill, one,
              K):  # pragma: no cover
    """The 2-D gather; ``K`` (a compile-time literal) > 0 enables the fixed ``K x K`` interior path.

    A pixel whose whole ``K x K`` neighbourhood lies in the field runs loops
    of constant length (unrolled by LLVM; their weights and column sums in
    stack buffers, which it keeps in registers), with the weights of
    an axis from two rows of its phase table (``phase`` along y, ``phase_x``
    along x; :func:`phase_table`); the others run the general clipped loops.
    ``K = 2 radius`` when the kernel is not widened (``fy = fx = 1``); a
    widened kernel (support ``R = radius f``) takes ``K = 2 floor(R) + 2``
    taps, of which those beyond the support weigh 0: a pixel whose sum is
    NaN (a NaN under a zero weight) is evaluated again by the general loops,
    which skip zero-weight rows, as when ``u`` falls on a sample.  ``one``
    sets the accumulation type (float32 for float32 output, else float64).
    """
    nb, h, wd = out.shape
    sup_y = radius * fy
    sup_x = radius * fx
    wy = np.empty(int(2 * math.ceil(sup_y)) + 2, dtype=np.float64)
    wxd = np.empty(int(2 * math.ceil(sup_x)) + 2, dtype=np.float64)
    wx = np.zeros(wxd.size, dtype=type(one))
    # the fixed path's taps and column sums on the stack: LLVM keeps them in registers (heap arrays may alias src)
    wyk = stack_array(max(K, 1), type(one))
    wxk = stack_array(max(K, 1), type(one))
    col = stack_array(max(K, 1), type(one))
    zero = one * 0
    tol = 1e-6
    ify = 1.0 / fy
    ifx = 1.0 / fx
    half = K // 2 - 1
    widened = fy != 1.0 or fx != 1.0
    for i in range(h):
        gi = float(i0 + i)
        for j in range(wd):
            gj = float(j0 + j)
            u = _coord(m, 0, gi, gj)
            v = _coord(m, 1, gi, gj)
            if u < -0.5 - tol or u > ny - 0.5 + tol or v < -0.5 - tol or v > nx - 0.5 + tol:
                for b in range(nb):
                    out[b, i, j] = fill
                continue
            if K > 0:
                fu = math.floor(u)
                fv = math.floor(v)
                y0 = int(fu) - half
                x0 = int(fv) - half
                # u or v on a sample (fractional part 0): rows or columns of weight 0, which
                # the general loops skip (a NaN there must not leak); every other weight is
                # nonzero unless the kernel is widened (then a NaN result is evaluated again below)
                if (u != fu and v != fv or widened) and y0 >= 0 and x0 >= 0 and y0 + K <= ny and x0 + K <= nx:
                    # all K taps of an axis share one phase: one row pair of the phase table
                    pu = (u - fu) * 4096.0
                    pv = (v - fv) * 4096.0
                    iu = np.uint64(pu)
                    iv = np.uint64(pv)
                    ru = pu - iu
                    rv = pv - iv
                    sy = 0.0
                    sx = 0.0
                    for t in range(K):
                        a0 = phase[iu, t]
                        a_ = a0 + ru * (phase[iu + np.uint64(1), t] - a0)
                        b0 = phase_x[iv, t]
                        b_ = b0 + rv * (phase_x[iv + np.uint64(1), t] - b0)
                        wyk[t] = a_
                        wxk[t] = b_
                        sy += a_
                        sx += b_
                    inv = 1.0 / (sy * sx)
                    yy = np.uint64(y0 - lo_y)
                    xx = np.uint64(x0 - lo_x)
                    finite = True
                    for b in range(nb):
                        # columns first (K-wide vector adds), one dot product with the x weights at the end
                        for s in range(K):
                            col[s] = zero
                        for t in range(K):
                            wt = wyk[t]
                            for s in range(K):
                                col[s] += wt * src[np.uint64(b), yy + np.uint64(t), xx + np.uint64(s)]
                        acc = zero
                        for s in range(K):
                            acc += wxk[s] * col[s]
                        out[b, i, j] = acc * inv
                        finite &= acc - acc == 0.0
                    if finite or not widened:
                        continue
            y0 = max(int(math.floor(u + 1.0 - sup_y)), 0)
            y1 = min(int(math.floor(u + 1.0 + sup_y)), ny)
            x0 = max(int(math.floor(v + 1.0 - sup_x)), 0)
            x1 = min(int(math.floor(v + 1.0 + sup_x)), nx)
            if y1 <= y0:
                y1 = y0 + 1
            if x1 <= x0:
                x1 = x0 + 1
            nyt = y1 - y0
            nxt = x1 - x0
            sy = 0.0
            for t in range(nyt):
                wv = _lut_at(lut, (y0 + t - u) * ify)
                wy[t] = wv
                sy += wv
            sx = 0.0
            for s in range(nxt):
                wv = _lut_at(lut, (x0 + s - v) * ifx)
                wx[s] = wv
                sx += wv
            norm = sy * sx
            if norm == 0.0:
                norm = 1.0
            inv = 1.0 / norm
            yy = np.uint64(y0 - lo_y)
            xx = np.uint64(x0 - lo_x)
            for b in range(nb):
                acc = zero
                for t in range(nyt):
                    wt = wy[t]
                    if wt == 0.0:
                        continue
                    row = zero
                    for s in range(nxt):
                        if wx[s] != 0.0:
                            row += wx[s] * src[np.uint64(b), yy + np.uint64(t), xx + np.uint64(s)]
                    acc += wt * row
                out[b, i, j] = acc * inv


_WARP2D: dict = {}


def _warp2d_for(k: int):
    """The gather compiled with ``K = k`` a compile-time constant, one entry point per ``k``.

    (A closure constant, not ``numba.literally``: literal dispatch re-runs
    part of the compiler on every call, ~3 ms, i.e. ~50 ms per 4000^2 image.)
    Cached on disk like every other kernel: numba keys a closure's cache
    entry by its cell values, so each ``k`` is compiled once, ever, not once
    per process.
    """
    fn = _WARP2D.get(k)
    if fn is None:

        @njit(nogil=True, cache=True)
        def fn(src, out, m, i0, j0, lo_y, lo_x, ny, nx, fy, fx, radius, lut, phase, phase_x, fill,
               one):  # pragma: no cover
            _warp2d_k(src, out, m, i0, j0, lo_y, lo_x, ny, nx, fy, fx, radius, lut, phase, phase_x, fill, one, k)

        fn = _WARP2D.setdefault(k, fn)
    return fn


def phase_table(lut: np.ndarray, k: int, f: float = 1.0) -> np.ndarray:
    """The table's knots seen from every phase: ``(4097 + 1, max(k, 1))`` float64.

    Row ``p``, column ``t`` is the kernel at ``(t - (k/2 - 1) - p / 4096) / f``
    source samples, so the ``k`` taps of a source point with fractional part
    ``d`` interpolate linearly between rows ``floor(4096 d)`` and the next:
    read as two contiguous rows.  Unwidened (``f = 1``), the rows are knots
    of the table: the same two knots and weights (up to rounding) as ``k``
    separate look-ups; widened, each entry is the table interpolated as a
    look-up does (the weights then differ from ``k`` look-ups by the
    second-order term of the interpolation, below 1e-7 of a weight).
    """
    k = max(int(k), 1)
    p = np.arange(_LUT_PER_UNIT + 2)
    offsets = (np.arange(k) - (k // 2 - 1))[None, :] * _LUT_PER_UNIT - p[:, None]
    if f == 1.0:
        idx = np.abs(offsets)
        return np.where(idx < lut.size - 1, lut[np.minimum(idx, lut.size - 1)], 0.0)
    x = np.abs(offsets / _LUT_PER_UNIT) / f * _LUT_PER_UNIT
    i = np.floor(x).astype(np.int64)
    inside = i < lut.size - 1
    i = np.minimum(i, lut.size - 2)
    return np.where(inside, lut[i] + (x - i) * (lut[i + 1] - lut[i]), 0.0)


#: Largest tap count of the fixed interior path of a widened kernel (stronger downsampling runs the general loops).
_MAX_FIXED_TAPS = 12
#: ... and of a kernel that is not widened (Lanczos up to a = 8; more lobes take the general loops).
_MAX_TAPS = 16


def fixed_taps(radius: float, f: tuple[float, float]) -> int:
    """Taps per axis of the gather's fixed interior path (0: the general loops only)."""
    if f[0] == 1.0 and f[1] == 1.0:
        k = int(2 * radius) if float(radius).is_integer() else 0
        return k if k <= _MAX_TAPS else 0
    k = 2 * int(math.floor(radius * max(f))) + 2
    return k if k <= _MAX_FIXED_TAPS else 0


def warp_source_index(m: np.ndarray, shape: tuple[int, int], start: tuple[int, int] = (0, 0)):
    """Source fractional indices ``(u, v)`` of every pixel of an output block.

    ``m`` is the 2x3 map from global output indices ``(i, j, 1)`` to global
    source indices; the block's first pixel is global ``start``.  Rounded as
    the compiled gather rounds (see ``_coord``).
    """
    gi = np.arange(start[0], start[0] + shape[0], dtype=np.float64)[:, None]
    gj = np.arange(start[1], start[1] + shape[1], dtype=np.float64)[None, :]
    return (m[0, 0] * gi + m[0, 2]) + m[0, 1] * gj, (m[1, 0] * gi + m[1, 2]) + m[1, 1] * gj


@functools.lru_cache(maxsize=32)
def _phase_cached(kernel: str, a: int, k: int, f: float) -> np.ndarray:
    """:func:`phase_table` of a kernel, made once per (kernel, taps, widening) in a process (read-only)."""
    table = phase_table(kernel_lut(kernel, a), k, f)
    table.flags.writeable = False
    return table


def warp2d(
    src: np.ndarray,
    m: np.ndarray,
    out_shape: tuple[int, int],
    origin: tuple[int, int],
    n_src: tuple[int, int],
    f: tuple[float, float],
    kernel: str,
    a: int,
    fill: float,
    dtype: np.dtype,
    start: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """General 2-D resampling of the last two axes of ``src`` (a source window).

    Parameters
    ----------
    src : (..., H, W) array
        The source window whose first sample is global source index ``origin``
        (a strided view is fine: it is read in place).
    m : (2, 3) float
        Global output index -> global source fractional index.
    out_shape : (h, w)
    n_src : (ny, nx)
        Size of the whole source field (points outside it get ``fill``).
    f : (fy, fx)
        Antialias filter scales along the source axes (>= 1).
    start : (i0, j0)
        Global output index of the block's first pixel.
    """
    lead = src.shape[:-2]
    s3 = src.reshape((-1,) + src.shape[-2:])
    if s3.dtype != dtype:
        s3 = s3.astype(dtype)
    out = np.empty((s3.shape[0],) + tuple(out_shape), dtype=dtype)
    radius = kernel_radius(kernel, a)
    k = fixed_taps(radius, f)
    one = np.float32(1) if dtype == np.float32 else 1.0
    lut = kernel_lut(kernel, a)
    phase_y = _phase_cached(kernel, a, k, float(f[0]))
    phase_x = phase_y if f[1] == f[0] else _phase_cached(kernel, a, k, float(f[1]))
    _warp2d_for(k)(
        s3, out, np.ascontiguousarray(m, dtype=np.float64), int(start[0]), int(start[1]), int(origin[0]),
        int(origin[1]), int(n_src[0]), int(n_src[1]), float(f[0]), float(f[1]), radius, lut, phase_y, phase_x,
        float(fill), one,
    )
    return out.reshape(lead + tuple(out_shape))


def warp2d_nearest(src: np.ndarray, m: np.ndarray, out_shape: tuple[int, int], origin: tuple[int, int],
                   n_src: tuple[int, int], fill, start: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Nearest-neighbour 2-D resampling of the last two axes; keeps the dtype."""
    u, v = warp_source_index(m, out_shape, start)
    iy, vy = nearest_index(u, n_src[0])
    ix, vx = nearest_index(v, n_src[1])
    ok = vy & vx
    iy = np.clip(iy - origin[0], 0, src.shape[-2] - 1)
    ix = np.clip(ix - origin[1], 0, src.shape[-1] - 1)
    out = src[..., iy, ix]
    if not ok.all():
        out = np.where(ok, out, np.asarray(fill).astype(src.dtype) if src.dtype.kind != "f" else fill)
    return out
