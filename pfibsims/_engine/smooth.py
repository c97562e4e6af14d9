"""The one Gaussian smoother, and its one NaN policy.

Every step that smooths (registration levels, drift against shot noise, the
phase classifier, the phantom's probe blur) takes its weights from here:
scipy's normalised Gaussian (``truncate=4.0``, boundary ``"nearest"``).

NaN policy (normalised convolution): non-finite pixels carry no weight, the
finite ones around them are averaged with the Gaussian weights that remain;
where less than 1e-3 of the weight is finite, the result is ``fill`` (the mean
of the finite values by default).  With no NaN this is exactly
``scipy.ndimage.gaussian_filter`` in the input's float dtype.

The streamed classifier (:mod:`pfibsims.segmentation.labeller`) evaluates the
same kernel (:func:`gaussian_half`) in fused numba passes
(:mod:`pfibsims.segmentation.smoothing`), bit-identical to :func:`gaussian` on
finite data (``tests/segmentation/test_segmentation.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.ndimage as ndi

__all__ = ["gaussian", "gaussian_half", "radius"]

_TRUNCATE = 4.0
# Below this sigma (px) a Gaussian changes nothing measurable: the data are only filled.
_MIN_SIGMA = 0.05


def radius(sigma: float) -> int:
    """The kernel radius ``gaussian_filter`` uses (``truncate=4.0``); 0 without smoothing.

    Examples
    --------
    >>> radius(1.0), radius(0.0)
    (4, 0)
    """
    return int(_TRUNCATE * float(sigma) + 0.5) if sigma > 1e-15 else 0


def gaussian_half(sigma: float) -> np.ndarray:
    """``w[j]``, the weight at offset ``+-j``, of scipy's normalised Gaussian kernel (float64).

    Examples
    --------
    >>> gaussian_half(0.0).tolist(), gaussian_half(0.6).size
    ([1.0], 3)
    """
    r = radius(sigma)
    if r == 0:
        return np.ones(1)
    x = np.arange(-r, r + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * x**2)  # scipy.ndimage._filters._gaussian_kernel1d, order 0
    phi = phi / phi.sum()
    return np.ascontiguousarray(phi[r:])


def gaussian(a: Any, sigma: Any, *, radius: Any = None, fill: float | None = None) -> np.ndarray:
    """Gaussian smoothing of an in-memory array that ignores NaN (see the module docstring).

    Parameters
    ----------
    a : array_like
        Any number of dims; float32 stays float32, everything else becomes float64.
    sigma : float or sequence of float
        Standard deviation per axis, in pixels; at most 0.05 px on every axis
        means no smoothing (non-finite pixels are still filled).
    radius : int or sequence of int, optional
        Kernel radius per axis (default ``int(4 sigma + 0.5)``).
    fill : float, optional
        Value where no finite pixel is within reach (default: the mean of the
        finite values, 0 if there are none).

    Returns
    -------
    numpy.ndarray
        Same shape, finite everywhere.

    Examples
    --------
    >>> gaussian(np.array([0.0, np.nan, 2.0]), 1.0).round(3).tolist()
    [0.154, 1.0, 1.846]
    """
    a = np.asarray(a)
    a = a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)
    sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (a.ndim,))
    opts = {"mode": "nearest", "truncate": _TRUNCATE, "radius": radius}
    ok = np.isfinite(a)
    whole = bool(ok.all())
    if whole:  # no NaN: nothing to fill
        return ndi.gaussian_filter(a, tuple(sig), **opts) if (sig > _MIN_SIGMA).any() else a.copy()
    if fill is None:
        fill = float(a[ok].mean(dtype=np.float64)) if ok.any() else 0.0
    if not (sig > _MIN_SIGMA).any():
        return np.where(ok, a, np.asarray(fill, a.dtype))
    num = ndi.gaussian_filter(np.where(ok, a, 0.0).astype(np.float64), tuple(sig), **opts)
    den = ndi.gaussian_filter(ok.astype(np.float64), tuple(sig), **opts)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 1e-3, num / den, fill)
    return out.astype(a.dtype, copy=False)
