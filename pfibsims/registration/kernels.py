"""Compiled metric kernels of the registration search: sample the moving spline and reduce, in one loop.

A metric evaluation (:func:`pfibsims.registration.search.evaluate_many`)
maps the fixed sample points through a transform, samples the moving image's
cubic B-spline there and reduces the values to a metric: the Parzen joint
histogram of mutual information or the moments of the multiple correlation.
In numpy that is a chain of temporaries (indices, masks, ``map_coordinates``,
``interp``, ``bincount``, ``einsum``) over tens of thousands of points,
evaluated hundreds of times a slice; here each is one pass with no
temporaries.  The numpy chain stays the twin (``use_compiled(False)``) and
gives the same numbers to rounding (tests/registration/test_registration_kernels.py):

- :func:`sample` -- moving values and the inside mask, as
  ``scipy.ndimage.map_coordinates(coef, order=3, mode="mirror", prefilter=False)``
  (and the order-1 ``"nearest"`` validity test) of
  :func:`~pfibsims.registration.search.sample_moving`;
- :func:`joint_histogram` -- the soft-binned joint histogram of
  :func:`~pfibsims.registration.metrics.mutual_information`;
- :func:`moments` -- the sums of
  :func:`~pfibsims.registration.metrics.correlation_moments`;
- :func:`shifted_moments` and :func:`grid_moments` -- those sums for many
  translations of one transform in one pass (the cross-modal drift's search
  grids and peak stencils; a grid shares the B-spline weights and row sums);
- :func:`shift_bilinear` -- a slice shifted back by its drift for a reduced
  view, as ``scipy.ndimage.shift(order=1)`` to the bit;
- :func:`nanmean_band` -- the NaN-aware z-means of such a stack and of its
  groups of slices in one pass, as numpy's to the bit.

``m`` is the transform in the moving image's *index* space: row ``r`` of the
2 x 3 array gives the moving index ``m[r, 0] * y + m[r, 1] * x + m[r, 2]`` of
the fixed point ``(y, x)`` (nm), the same products and sums as the numpy path.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi

from .._engine.numba import STACK_MAX, compiled, njit, stack_array

__all__ = [
    "count_stats", "grid_moments", "index_map", "joint_histogram", "moments", "nanmean_band", "sample",
    "shift_bilinear",
    "shifted_moments", "upsampled_correlation",
]


def index_map(matrix: np.ndarray, spacing: tuple[float, float], origin: tuple[float, float]) -> np.ndarray:
    """The 2 x 3 map (fixed nm -> moving index) of a homogeneous 3 x 3 ``matrix`` on a moving grid."""
    m = np.empty((2, 3))
    for ax in range(2):
        h, o = spacing[ax], origin[ax]
        m[ax, 0], m[ax, 1], m[ax, 2] = matrix[ax, 0] / h, matrix[ax, 1] / h, (matrix[ax, 2] - o) / h
    return m


@njit(nogil=True, cache=True)
def _mirror(i, n):  # pragma: no cover - compiled
    """scipy's ``mirror`` extension of an index (``d c b | a b c d | c b a``)."""
    if n == 1:
        return 0
    period = 2 * n - 2
    i = abs(i) % period
    return period - i if i >= n else i


@njit(nogil=True, cache=True)
def _valid_at(valid, fy, fx):  # pragma: no cover - compiled
    """Bilinear ``nearest``-mode value of the 0/1 validity image at index (fy, fx)."""
    ny, nx = valid.shape
    y = min(max(fy, 0.0), ny - 1.0)
    x = min(max(fx, 0.0), nx - 1.0)
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    y1, x1 = min(y0 + 1, ny - 1), min(x0 + 1, nx - 1)
    ty, tx = y - y0, x - x0
    return ((1.0 - ty) * ((1.0 - tx) * valid[y0, x0] + tx * valid[y0, x1])
            + ty * ((1.0 - tx) * valid[y1, x0] + tx * valid[y1, x1]))


@njit(nogil=True, cache=True, inline="always")
def _weights(t):  # pragma: no cover - compiled
    """The four cubic B-spline weights of the taps at offsets -1, 0, 1, 2 for the fraction ``t`` in [0, 1)."""
    s = 1.0 - t
    t2 = t * t
    return (s * s * s / 6.0, (3.0 * t2 * t - 6.0 * t2 + 4.0) / 6.0, (-3.0 * t2 * t + 3.0 * t2 + 3.0 * t + 1.0) / 6.0,
            t2 * t / 6.0)


@njit(nogil=True, cache=True, inline="always")
def _row(a, c0, wx0, wx1, wx2, wx3):  # pragma: no cover - compiled
    """One row's weighted sum of the four taps from column ``c0`` (no extension)."""
    return wx0 * a[c0] + wx1 * a[c0 + 1] + wx2 * a[c0 + 2] + wx3 * a[c0 + 3]


@njit(nogil=True, cache=True)
def _at(coef, fy, fx):  # pragma: no cover - compiled
    """The cubic B-spline of ``coef`` at index (fy, fx), mirror extension (weights in registers)."""
    ny, nx = coef.shape
    y0, x0 = int(np.floor(fy)), int(np.floor(fx))
    wy0, wy1, wy2, wy3 = _weights(fy - y0)
    wx0, wx1, wx2, wx3 = _weights(fx - x0)
    if y0 >= 1 and y0 + 2 < ny and x0 >= 1 and x0 + 2 < nx:  # interior: no extension
        acc = wy0 * _row(coef[y0 - 1], x0 - 1, wx0, wx1, wx2, wx3)
        acc += wy1 * _row(coef[y0], x0 - 1, wx0, wx1, wx2, wx3)
        acc += wy2 * _row(coef[y0 + 1], x0 - 1, wx0, wx1, wx2, wx3)
        acc += wy3 * _row(coef[y0 + 2], x0 - 1, wx0, wx1, wx2, wx3)
        return acc
    c0, c1, c2, c3 = _mirror(x0 - 1, nx), _mirror(x0, nx), _mirror(x0 + 1, nx), _mirror(x0 + 2, nx)
    acc = 0.0
    for k in range(4):
        a = coef[_mirror(y0 - 1 + k, ny)]
        row = wx0 * a[c0] + wx1 * a[c1] + wx2 * a[c2] + wx3 * a[c3]
        acc += (wy0 if k == 0 else wy1 if k == 1 else wy2 if k == 2 else wy3) * row
    return acc


@njit(nogil=True, cache=True)
def sample(coef, valid, has_valid, m, points, values, inside):  # pragma: no cover - compiled
    """Moving values at the mapped ``points`` (N, 2) into ``values``; ``inside`` marks those in the field
    (and, with ``has_valid``, where the order-1 validity exceeds 0.999); returns how many are inside."""
    ny, nx = coef.shape
    k = 0
    for i in range(points.shape[0]):
        py, px = points[i, 0], points[i, 1]
        fy = py * m[0, 0] + px * m[0, 1] + m[0, 2]
        fx = py * m[1, 0] + px * m[1, 1] + m[1, 2]
        ok = fy >= -0.5 and fy <= ny - 0.5 and fx >= -0.5 and fx <= nx - 0.5
        if ok and has_valid:
            ok = _valid_at(valid, fy, fx) > 0.999
        inside[i] = ok
        if ok:
            values[i] = _at(coef, fy, fx)
            k += 1
    return k


@njit(nogil=True, cache=True)
def joint_histogram(values, inside, labels, centres, n_bins, joint):  # pragma: no cover - compiled
    """Add the inside ``values`` to ``joint`` (labels x bins, flat), each shared between the two nearest
    bin ``centres`` (linear weights, ``np.interp`` positions: :func:`~.metrics.soft_bins`)."""
    nc = centres.size
    inv = np.empty(max(nc - 1, 1))  # each bin's 1 / width, as np.interp computes it
    for j in range(nc - 1):
        inv[j] = 1.0 / (centres[j + 1] - centres[j])
    top = 1  # the largest power of two below nc: the first step of the search
    while top * 2 <= nc - 1:
        top *= 2
    for i in range(values.shape[0]):
        if not inside[i]:
            continue
        v = values[i]
        if v <= centres[0]:
            pos = 0.0
        elif v >= centres[nc - 1]:
            pos = nc - 1.0
        else:  # the last centre <= v (searchsorted(side="right") - 1), by halving steps
            j = 0
            step = top
            while step > 0:
                if j + step < nc and centres[j + step] <= v:
                    j += step
                step //= 2
            pos = (v - centres[j]) * inv[j] + j
        lo = min(max(int(np.floor(pos)), 0), max(n_bins - 2, 0))
        w = min(max(pos - lo, 0.0), 1.0) if n_bins > 1 else 0.0
        hi = min(lo + 1, n_bins - 1)
        base = labels[i] * n_bins
        joint[base + lo] += 1.0 - w
        joint[base + hi] += w


@njit(nogil=True, cache=True)
def moments(values, inside, design_t, s, zz, direct):  # pragma: no cover - compiled
    """Add the moving terms of the sums and cross products of ``[channels..., value]`` over the inside
    points to ``s``, ``zz`` (``s[C]``, ``zz[:, C]``); the channel terms (``s[:C]``, ``zz[:C, :C]``) over the
    inside points when ``direct``, else over the *outside* points (the caller subtracts them from the
    level's totals: most points are inside, and the channel sums do not change with the transform)."""
    c = design_t.shape[0]
    for i in range(values.shape[0]):
        if inside[i]:
            v = values[i]
            s[c] += v
            zz[c, c] += v * v
            for a in range(c):
                zz[a, c] += design_t[a, i] * v
        if inside[i] == direct:
            for a in range(c):
                d = design_t[a, i]
                s[a] += d
                for b in range(a, c):
                    zz[a, b] += d * design_t[b, i]
    for a in range(c + 1):
        for b in range(a):
            zz[a, b] = zz[b, a]


# -- phase correlation: the upsampled cross-correlation near its peak ------------------------------
def upsampled_correlation(product: np.ndarray, nx: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """The cross-correlation ``irfft2(product)`` at the fractional lags ``ys`` x ``xs`` (px): a ``(len(ys),
    len(xs))`` real array, by the matrix-multiply DFT of scikit-image's ``phase_cross_correlation``
    (Guizar-Sicairos et al. 2008) on the half spectrum.

    ``product`` is the half (``rfft2``) layout ``(ny, nx // 2 + 1)`` of a Hermitian spectrum (the cross
    power spectrum of two real images): each column ``0 < kx < nx / 2`` stands for itself and its mirror,
    so the sum is twice its real part; rows take signed frequencies (``fftfreq``).  Compiled loops (no
    BLAS: a multi-threaded BLAS product of this shape costs 5-40x more CPU on a loaded machine), or numpy.
    """
    ny, h = product.shape
    fy = np.fft.fftfreq(ny) * ny
    kx = np.arange(h, dtype=np.float64)
    cx = np.full(h, 2.0)
    cx[0] = 1.0
    if nx % 2 == 0:
        cx[-1] = 1.0
    ex = cx[None, :] * np.exp(2j * np.pi * np.asarray(xs, np.float64)[:, None] * kx[None, :] / nx)  # (X, h)
    ey = np.exp(2j * np.pi * np.asarray(ys, np.float64)[:, None] * fy[None, :] / ny)  # (Y, ny)
    if not compiled():
        return (ey @ (product.astype(np.complex128) @ ex.T)).real
    out = np.empty((ys.size, xs.size))
    _upsampled(np.ascontiguousarray(product.real, np.float64), np.ascontiguousarray(product.imag, np.float64),
               np.ascontiguousarray(ex.real), np.ascontiguousarray(ex.imag),
               np.ascontiguousarray(ey.real), np.ascontiguousarray(ey.imag), out)
    return out


@njit(nogil=True, cache=True, fastmath={"contract", "reassoc"})
def _upsampled(pr, pi, exr, exi, eyr, eyi, out):  # pragma: no cover - compiled
    """``out = Re(ey @ (p @ ex.T))`` in real arithmetic, rows of ``p`` streamed once."""
    ny, h = pr.shape
    nxo, nyo = exr.shape[0], eyr.shape[0]
    ar = np.empty(nxo)
    ai = np.empty(nxo)
    out[:] = 0.0
    for r in range(ny):
        for j in range(nxo):
            sr = 0.0
            si = 0.0
            for k in range(h):
                sr += pr[r, k] * exr[j, k] - pi[r, k] * exi[j, k]
                si += pr[r, k] * exi[j, k] + pi[r, k] * exr[j, k]
            ar[j] = sr
            ai[j] = si
        for i in range(nyo):
            cr, ci = eyr[i, r], eyi[i, r]
            for j in range(nxo):
                out[i, j] += cr * ar[j] - ci * ai[j]


@njit(nogil=True, cache=True)
def count_stats(a):  # pragma: no cover - compiled
    """(finite values, whether all are non-negative integers, their sum) of a 1-D array, in one pass."""
    n = 0
    total = 0.0
    counts = True
    for v in a:
        if not np.isfinite(v):
            continue
        n += 1
        total += v
        if counts and (v < 0 or v != np.round(v)):
            counts = False
    return n, counts, total


@njit(nogil=True, cache=True, inline="always")
def _add_inside(k, v, i, design_t, s, zz, count):  # pragma: no cover - compiled
    """Translation ``k``'s moving terms of point ``i`` (inside, value ``v``)."""
    c = design_t.shape[0]
    count[k] += 1
    s[k, c] += v
    zz[k, c, c] += v * v
    for a in range(c):
        zz[k, a, c] += design_t[a, i] * v


@njit(nogil=True, cache=True, inline="always")
def _add_outside(k, i, design_t, s, zz):  # pragma: no cover - compiled
    """Translation ``k``'s channel terms of point ``i`` (outside: subtracted from the level's totals)."""
    c = design_t.shape[0]
    for a in range(c):
        d = design_t[a, i]
        s[k, a] += d
        for b in range(a, c):
            zz[k, a, b] += d * design_t[b, i]


@njit(nogil=True, cache=True, inline="always")
def _symmetric(zz):  # pragma: no cover - compiled
    for k in range(zz.shape[0]):
        for a in range(zz.shape[1]):
            for b in range(a):
                zz[k, a, b] = zz[k, b, a]


@njit(nogil=True, cache=True)
def shifted_moments(coef, valid, has_valid, m, shift_y, shift_x, points, design_t, s, zz, count):  # pragma: no cover
    """:func:`sample` and :func:`moments` (channel terms of the *outside* points) for ``K`` translations of
    one transform in one pass over the points: translation ``k`` has the index offsets ``m[:, 2]`` replaced
    by ``shift_y[k]``, ``shift_x[k]``.  Per translation the sums are those of the one-transform kernels
    (the same operations in the same order); ``count[k]`` is its number of inside points."""
    ny, nx = coef.shape
    for i in range(points.shape[0]):
        py, px = points[i, 0], points[i, 1]
        for k in range(shift_y.size):
            fy = py * m[0, 0] + px * m[0, 1] + shift_y[k]
            fx = py * m[1, 0] + px * m[1, 1] + shift_x[k]
            ok = fy >= -0.5 and fy <= ny - 0.5 and fx >= -0.5 and fx <= nx - 0.5
            if ok and has_valid:
                ok = _valid_at(valid, fy, fx) > 0.999
            if ok:
                _add_inside(k, _at(coef, fy, fx), i, design_t, s, zz, count)
            else:
                _add_outside(k, i, design_t, s, zz)
    _symmetric(zz)


@njit(nogil=True, cache=True, inline="always")
def _axis_taps(base, shifts, n, f, first, w):  # pragma: no cover - compiled
    """Along one axis of length ``n``, for each shift ``k``: the index ``base + shift`` (``f[k]``), its floor
    (``first[k]``) and the four B-spline weights (``w[4 k: 4 k + 4]``); True when every one is in the interior."""
    interior = True
    for k in range(shifts.size):
        v = base + shifts[k]
        v0 = int(np.floor(v))
        f[k], first[k] = v, v0
        w[4 * k], w[4 * k + 1], w[4 * k + 2], w[4 * k + 3] = _weights(v - v0)
        interior = interior and v >= -0.5 and v <= n - 0.5 and v0 >= 1 and v0 + 2 < n
    return interior


#: Points whose translations' values :func:`grid_moments` holds before adding them to the sums.
_BLOCK = 256


@njit(nogil=True, cache=True)
def _add_block(vals, nb, i0, design_t, s, zz, count):  # pragma: no cover - compiled
    """:func:`_add_inside` of the points ``i0 .. i0 + nb - 1`` (all inside) with the values ``vals[k, j]``:
    translation by translation, each sum over the points in order (the same sums, in registers)."""
    c = design_t.shape[0]
    for k in range(vals.shape[0]):
        count[k] += nb
        t1, t2 = s[k, c], zz[k, c, c]
        for j in range(nb):
            v = vals[k, j]
            t1 += v
            t2 += v * v
        s[k, c], zz[k, c, c] = t1, t2
        for a in range(c):
            t = zz[k, a, c]
            for j in range(nb):
                t += design_t[a, i0 + j] * vals[k, j]
            zz[k, a, c] = t


@njit(nogil=True, cache=True, inline="always")
def _grid_moments(coef, m, ys, xs, points, design_t, s, zz, count, rows, wy, wx, y0s, x0s, fys, fxs
                  ):  # pragma: no cover - compiled
    """:func:`grid_moments` with its scratch buffers (``rows`` holds ``span x Kx`` row sums, flat)."""
    ny, nx = coef.shape
    nky, nkx = ys.size, xs.size
    vals = np.empty((nky * nkx, _BLOCK))
    nb = 0  # points held in vals, from i0
    i0 = 0
    for i in range(points.shape[0]):
        py, px = points[i, 0], points[i, 1]
        by = py * m[0, 0] + px * m[0, 1]
        bx = py * m[1, 0] + px * m[1, 1]
        inner_y = _axis_taps(by, ys, ny, fys, y0s, wy)
        inner_x = _axis_taps(bx, xs, nx, fxs, x0s, wx)
        if not (inner_y and inner_x):
            if nb:  # the points before this one first: every sum in the points' order
                _add_block(vals, nb, i0, design_t, s, zz, count)
                nb = 0
            for ky in range(nky):
                for kx in range(nkx):
                    k = ky * nkx + kx
                    fy, fx = fys[ky], fxs[kx]
                    if fy >= -0.5 and fy <= ny - 0.5 and fx >= -0.5 and fx <= nx - 0.5:
                        _add_inside(k, _at(coef, fy, fx), i, design_t, s, zz, count)
                    else:
                        _add_outside(k, i, design_t, s, zz)
            continue
        if nb == 0:
            i0 = i
        top, bottom = y0s[0], y0s[0]
        for ky in range(1, nky):
            top, bottom = min(top, y0s[ky]), max(bottom, y0s[ky])
        top -= 1
        for r in range(bottom + 3 - top):
            a = coef[top + r]
            for kx in range(nkx):
                rows[r * nkx + kx] = _row(a, x0s[kx] - 1, wx[4 * kx], wx[4 * kx + 1], wx[4 * kx + 2], wx[4 * kx + 3])
        for ky in range(nky):
            r0 = (y0s[ky] - 1 - top) * nkx
            for kx in range(nkx):
                v = wy[4 * ky] * rows[r0 + kx]
                v += wy[4 * ky + 1] * rows[r0 + nkx + kx]
                v += wy[4 * ky + 2] * rows[r0 + 2 * nkx + kx]
                v += wy[4 * ky + 3] * rows[r0 + 3 * nkx + kx]
                vals[ky * nkx + kx, nb] = v
        nb += 1
        if nb == _BLOCK:
            _add_block(vals, nb, i0, design_t, s, zz, count)
            nb = 0
    if nb:
        _add_block(vals, nb, i0, design_t, s, zz, count)
    _symmetric(zz)


@njit(nogil=True, cache=True)
def grid_moments(coef, m, ys, xs, points, design_t, s, zz, count):  # pragma: no cover - compiled
    """:func:`shifted_moments` (no validity mask) of the ``Ky x Kx`` translations of a grid: translation
    ``k = ky * Kx + kx`` has the index offsets ``ys[ky]``, ``xs[kx]``.

    The same numbers as :func:`shifted_moments` of those translations: the
    same operations in the same order. A point whose every translation lands
    in the interior computes the B-spline weights of each ``ys`` and each
    ``xs`` once (not of each pair) and the weighted row sums of each
    (row, ``xs``) once, shared by the ``ys`` that read that row, and its
    values join the sums a block of points at a time; any other point takes
    :func:`shifted_moments`' path.  A small grid (a peak stencil) keeps its
    scratch buffers on the stack (:func:`~pfibsims._engine.numba.stack_array`:
    about a fifth faster).
    """
    nky, nkx = ys.size, xs.size
    span = int(np.floor(ys.max() - ys.min())) + 6  # rows a point's translations read (+1 for rounding)
    one = 0.0
    if span * nkx <= STACK_MAX and 4 * max(nky, nkx) <= STACK_MAX:
        _grid_moments(coef, m, ys, xs, points, design_t, s, zz, count, stack_array(span * nkx, type(one)),
                      stack_array(4 * nky, type(one)), stack_array(4 * nkx, type(one)), stack_array(nky, type(nky)),
                      stack_array(nkx, type(nky)), stack_array(nky, type(one)), stack_array(nkx, type(one)))
    else:
        _grid_moments(coef, m, ys, xs, points, design_t, s, zz, count, np.empty(span * nkx), np.empty(4 * nky),
                      np.empty(4 * nkx), np.empty(nky, np.int64), np.empty(nkx, np.int64), np.empty(nky),
                      np.empty(nkx))


def _shift_taps(n: int, shift: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Along an axis of ``n`` pixels, for each output index ``o``: the lower of the two input pixels around
    ``o + shift``, the upper one's weight, and whether ``o + shift`` is in the field ``[0, n - 1]`` (scipy's
    order-1 taps: at ``n - 1`` itself the pixels ``n - 2, n - 1`` with weights 0, 1)."""
    p = np.arange(n, dtype=np.float64) + shift
    i = np.floor(p)
    w = p - i
    if n > 1:
        last = p == n - 1
        i[last], w[last] = n - 2, 1.0
    return i.astype(np.intp), w, (p >= 0) & (p <= n - 1)


def shift_bilinear(image: np.ndarray, shift: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``image`` (y, x) shifted back by ``shift`` (px, y then x): at output ``(y, x)`` the bilinear value
    at ``(y + shift_y, x + shift_x)``, NaN where that is outside the field; float32 (into ``out`` when given:
    a float32 array of the image's shape, e.g. one slice of a stack).

    The numbers of ``scipy.ndimage.shift(image, -shift, order=1, mode="constant", cval=nan)`` in float64
    rounded to float32, to the bit (NaN inputs spread as there: a NaN tap of zero weight gives NaN), at
    about a seventh of its time (one compiled pass over the image as it is, no float64 or padded copy;
    scipy's is the numpy path).
    """
    a = np.asarray(image)
    if out is None:
        out = np.empty(a.shape, np.float32)
    if not compiled():
        out[...] = ndi.shift(a.astype(np.float64), -np.asarray(shift, np.float64), order=1, mode="constant",
                             cval=np.nan)
        return out
    (iy, wy, oky), (ix, wx, okx) = (_shift_taps(n, float(s)) for n, s in zip(a.shape, shift, strict=True))
    out.fill(np.nan)
    ry, rx = np.flatnonzero(oky), np.flatnonzero(okx)
    if ry.size and rx.size:  # the upper taps of the last row and column (weight 0) read the edge, as a padded copy
        a = a if a.dtype.kind == "f" else a.astype(np.float64)
        iy1, ix1 = np.minimum(iy + 1, a.shape[0] - 1), np.minimum(ix + 1, a.shape[1] - 1)
        _bilinear(a, iy, iy1, wy, ix, ix1, wx, ry[0], ry[-1] + 1, rx[0], rx[-1] + 1, out)
    return out


@njit(nogil=True, cache=True)
def _bilinear(a, iy, iy1, wy, ix, ix1, wx, y0, y1, x0, x1, out):  # pragma: no cover - compiled
    # scipy's sum over the 2 x 2 taps, in its order: corner by corner, each value (in float64) times the y
    # weight, then x
    for y in range(y0, y1):
        fy, fy1, b = iy[y], iy1[y], wy[y]
        c = 1.0 - b
        for x in range(x0, x1):
            fx, fx1, d = ix[x], ix1[x], wx[x]
            e = 1.0 - d
            t = np.float64(a[fy, fx]) * c * e
            t += np.float64(a[fy, fx1]) * c * d
            t += np.float64(a[fy1, fx]) * b * e
            t += np.float64(a[fy1, fx1]) * b * d
            out[y, x] = np.float32(t)


@njit(nogil=True, cache=True)
def nanmean_band(stack, run_of, lo, hi, total, runs):  # pragma: no cover - compiled
    """Columns ``lo:hi`` of the means over axis 0 of the finite values of a ``(Z, P)`` float32 ``stack``: into
    ``total`` (P,) and, for the slices ``z`` with ``run_of[z] = g >= 0``, into ``runs[g]`` (float64; NaN where a
    column has no finite value).

    numpy's ``np.where(np.isfinite(s), s, 0).sum(axis=0) / np.isfinite(s).sum(axis=0)`` to the bit (of ``s`` the
    stack, or its slices of one run in order): the float32 sums slice after slice from +0.0, one pass over
    the stack for every mean.
    """
    n = hi - lo
    g_n = runs.shape[0]
    s = np.zeros(n, np.float32)  # numpy's sums start at +0.0 (a column of -0.0 sums to +0.0)
    c = np.zeros(n, np.int64)
    gs = np.zeros((g_n, n), np.float32)
    gc = np.zeros((g_n, n), np.int64)
    zero = np.float32(0.0)
    for z in range(stack.shape[0]):
        g = run_of[z]
        row = stack[z]
        for j in range(n):
            v = row[lo + j]
            ok = np.isfinite(v)
            w = v if ok else zero
            s[j] += w
            c[j] += ok
            if g >= 0:
                gs[g, j] += w
                gc[g, j] += ok
    for j in range(n):
        total[lo + j] = np.float64(s[j]) / np.float64(c[j]) if c[j] else np.nan
        for g in range(g_n):
            runs[g, lo + j] = np.float64(gs[g, j]) / np.float64(gc[g, j]) if gc[g, j] else np.nan
