"""The compiled Gaussian smoothing of the streamed labeller (:mod:`.labeller`), one output slice at a time.

The kernel is the one Gaussian of :mod:`pfibsims._engine.smooth`
(:func:`~pfibsims._engine.smooth.gaussian_half`, ``truncate=4.0``), applied
separably to a window of every channel (halos included): z, then y, then x,
each pass accumulated in float64 in scipy's order and rounded to float32, as
``gaussian_filter`` does on float32 data, so the smoothed values are scipy's
to the bit.  A voxel whose kernel reaches a NaN takes the normalised
convolution of :func:`~pfibsims._engine.smooth.gaussian` instead, as the
class sample does.

* :func:`smooth_slice` -- one output slice of every channel (numba; the
  labeller calls it slice by slice and labels the slice at once);
* :func:`smooth_window` -- the smoothed channels of a whole window, for tests
  and inspection.
"""

from __future__ import annotations

import numpy as np

from .._engine.numba import njit

__all__ = ["smooth_slice", "smooth_window"]


@njit(nogil=True, cache=True)
def _pass_z(win, c, zc, w, out):  # pragma: no cover - compiled
    r = w.size - 1
    ny, nx = out.shape
    acc = np.empty(nx, np.float64)
    for y in range(ny):
        for x in range(nx):
            acc[x] = np.float64(np.float32(win[c, zc, y, x])) * w[0]
        for j in range(r, 0, -1):
            wj = w[j]
            for x in range(nx):
                acc[x] += (np.float64(np.float32(win[c, zc - j, y, x])) + np.float64(np.float32(win[c, zc + j, y, x]))) * wj
        for x in range(nx):
            out[y, x] = np.float32(acc[x])


@njit(nogil=True, cache=True)
def _pass_y(src, w, out):  # pragma: no cover - compiled
    r = w.size - 1
    ny, nx = out.shape
    acc = np.empty(nx, np.float64)
    for y in range(ny):
        yc = y + r
        for x in range(nx):
            acc[x] = np.float64(src[yc, x]) * w[0]
        for j in range(r, 0, -1):
            wj = w[j]
            for x in range(nx):
                acc[x] += (np.float64(src[yc - j, x]) + np.float64(src[yc + j, x])) * wj
        for x in range(nx):
            out[y, x] = np.float32(acc[x])


@njit(nogil=True, cache=True)
def _pass_x(src, w, out):  # pragma: no cover - compiled
    r = w.size - 1
    ny, nx = out.shape
    acc = np.empty(nx, np.float64)
    for y in range(ny):
        row = src[y]
        for x in range(nx):
            acc[x] = np.float64(row[x + r]) * w[0]
        for j in range(r, 0, -1):
            wj = w[j]
            lo = row[r - j:r - j + nx]
            hi = row[r + j:r + j + nx]
            for x in range(nx):
                acc[x] += (np.float64(lo[x]) + np.float64(hi[x])) * wj
        dst = out[y]
        for x in range(nx):
            dst[x] = np.float32(acc[x])


@njit(nogil=True, cache=True)
def _norm_z(win, c, zc, w, out_num, out_den):  # pragma: no cover - compiled
    """The z pass of the normalised convolution, in float64: the finite values (others 0) and their weights."""
    r = w.size - 1
    ny, nx = out_num.shape
    for y in range(ny):
        for x in range(nx):
            v = np.float64(np.float32(win[c, zc, y, x]))
            ok = np.isfinite(v)
            out_num[y, x] = (v if ok else 0.0) * w[0]
            out_den[y, x] = (1.0 if ok else 0.0) * w[0]
        for j in range(r, 0, -1):
            wj = w[j]
            for x in range(nx):
                lo = np.float64(np.float32(win[c, zc - j, y, x]))
                hi = np.float64(np.float32(win[c, zc + j, y, x]))
                lo_ok, hi_ok = np.isfinite(lo), np.isfinite(hi)
                out_num[y, x] += ((lo if lo_ok else 0.0) + (hi if hi_ok else 0.0)) * wj
                out_den[y, x] += ((1.0 if lo_ok else 0.0) + (1.0 if hi_ok else 0.0)) * wj


@njit(nogil=True, cache=True)
def _norm_line(src, w, out, axis):  # pragma: no cover - compiled
    """A y (``axis`` 0) or x (1) pass of the normalised convolution, float64 to float64 (``out`` is the valid part)."""
    r = w.size - 1
    ny, nx = out.shape
    for y in range(ny):
        for x in range(nx):
            yc, xc = (y + r, x) if axis == 0 else (y, x + r)
            acc = src[yc, xc] * w[0]
            for j in range(r, 0, -1):
                if axis == 0:
                    acc += (src[yc - j, xc] + src[yc + j, xc]) * w[j]
                else:
                    acc += (src[yc, xc - j] + src[yc, xc + j]) * w[j]
            out[y, x] = acc


@njit(nogil=True, cache=True)
def _fill_nan(win, c, zc, wz, wy, wx, plane, bufs):  # pragma: no cover - compiled
    """Where ``plane`` (one smoothed slice of channel ``c``) is not finite: the normalised convolution.

    The kernel of such a voxel reaches a non-finite value; it takes the finite values in reach with their
    Gaussian weights renormalised (:func:`pfibsims._engine.smooth.gaussian`, to the bit: the same float64
    passes as ``scipy.ndimage.gaussian_filter`` on the finite values and on their indicator), and stays NaN
    when its own value is not finite or less than 1e-3 of the weight is finite.
    """
    zn, zd, yn, yd, num, den = bufs
    ry, rx = wy.size - 1, wx.size - 1
    _norm_z(win, c, zc, wz, zn, zd)
    _norm_line(zn, wy, yn, 0)
    _norm_line(zd, wy, yd, 0)
    _norm_line(yn, wx, num, 1)
    _norm_line(yd, wx, den, 1)
    ny, nx = plane.shape
    for y in range(ny):
        for x in range(nx):
            if np.isfinite(plane[y, x]):
                continue
            own = np.float32(win[c, zc, y + ry, x + rx])
            if np.isfinite(own) and den[y, x] > 1e-3:
                plane[y, x] = np.float32(num[y, x] / den[y, x])
            else:
                plane[y, x] = np.nan


@njit(nogil=True, cache=True)
def smooth_slice(win, o, wz, wy, wx, zp, yp, sm, bufs):  # pragma: no cover - compiled
    """Output slice ``o`` of every channel of ``win`` smoothed into ``sm``; ``bufs`` (float64 planes) are
    allocated at the first slice that needs the normalised convolution and returned."""
    rz = wz.size - 1
    yw, xw = zp.shape
    ny, nx = sm.shape[1], sm.shape[2]
    for c in range(sm.shape[0]):
        _pass_z(win, c, o + rz, wz, zp)
        _pass_y(zp, wy, yp)
        _pass_x(yp, wx, sm[c])
        clean = True
        for v in sm[c].ravel():
            if not np.isfinite(v):
                clean = False
                break
        if clean:
            continue
        if bufs[0].shape[0] == 0:
            bufs = (np.empty((yw, xw)), np.empty((yw, xw)), np.empty((ny, xw)), np.empty((ny, xw)),
                    np.empty((ny, nx)), np.empty((ny, nx)))
        _fill_nan(win, c, o + rz, wz, wy, wx, sm[c], bufs)
    return bufs


@njit(nogil=True, cache=True)
def _smooth_window(win, depth, wz, wy, wx):  # pragma: no cover - compiled
    nc, _, yw, xw = win.shape
    ny, nx = yw - 2 * (wy.size - 1), xw - 2 * (wx.size - 1)
    out = np.empty((nc, depth, ny, nx), np.float32)
    zp = np.empty((yw, xw), np.float32)
    yp = np.empty((ny, xw), np.float32)
    sm = np.empty((nc, ny, nx), np.float32)
    none = np.empty((0, 0))
    bufs = (none, none, none, none, none, none)
    for o in range(depth):
        bufs = smooth_slice(win, o, wz, wy, wx, zp, yp, sm, bufs)
        out[:, o] = sm
    return out


def smooth_window(win: np.ndarray, *, depth: int, weights: tuple) -> np.ndarray:
    """The smoothed channels :func:`.labeller.label_window` labels: float32 (channel, z, y, x) of the central slices.

    Where no non-finite value is within the kernel's reach, scipy's
    ``gaussian_filter`` on float32 to the bit; next to one, the normalised
    convolution of :func:`pfibsims._engine.smooth.gaussian` (the finite
    values in reach, their Gaussian weights renormalised); NaN where the
    voxel's own value is not finite or less than 1e-3 of the weight in
    reach is finite. For tests and inspection: the labeller itself never
    holds more than a slice of these.

    Examples
    --------
    >>> win = np.array([0.0, 0.0, np.nan, 3.0, 6.0]).reshape(1, 1, 1, 5)
    >>> w = (np.ones(1), np.ones(1), np.array([0.5, 0.25]))  # next to the NaN: (3 x 0.5 + 6 x 0.25) / 0.75
    >>> smooth_window(win, depth=1, weights=w)[0, 0, 0].tolist()
    [0.0, nan, 4.0]
    """
    wz, wy, wx = (np.ascontiguousarray(w, dtype=np.float64) for w in weights)
    return _smooth_window(np.ascontiguousarray(win), int(depth), wz, wy, wx)
