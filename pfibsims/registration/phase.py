"""Phase correlation of two slices: their sub-pixel shift and how well they match.

scikit-image's ``phase_cross_correlation`` (integer peak, then the upsampled DFT around it)
on single-precision half spectra, with the upsampled DFT compiled
(:func:`pfibsims.registration.kernels.upsampled_correlation`: no multi-threaded BLAS), a Hann
window against edge effects and a second pass that removes the window's pull towards zero.
:mod:`.drift` uses it for slice-to-slice and fiducial drift.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import scipy.fft

from .._engine.smooth import gaussian
from . import kernels as _kernels

__all__ = ["pair_shift", "phase_peak", "shift_of", "spectra"]


@functools.lru_cache(maxsize=8)
def _hann(shape: tuple[int, int]) -> np.ndarray:
    return np.outer(np.hanning(shape[0]), np.hanning(shape[1])).astype(np.float32)


def spectra(img: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, tuple[int, int]] | None:
    """(windowed, plain) single-precision half spectra (``rfft2``) of ``img`` smoothed (Gaussian ``sigma`` px,
    NaN filled), mean removed, and its shape; None for a constant image.  Module-level so that dask can ship
    it to workers."""
    a = gaussian(img, sigma).astype(np.float32)
    a -= a.mean(dtype=np.float64)
    if not np.any(a):
        return None
    return scipy.fft.rfft2(a * _hann(a.shape)), scipy.fft.rfft2(a), a.shape


def _power(spectrum: np.ndarray, nx: int) -> float:
    """Sum of ``|F|^2`` over the whole spectrum of a real image, from its half spectrum (Parseval)."""
    p = (spectrum.real.astype(np.float64) ** 2 + spectrum.imag.astype(np.float64) ** 2).sum(axis=0)
    return float(2.0 * p.sum() - p[0] - (p[-1] if nx % 2 == 0 else 0.0))


def phase_peak(ref: np.ndarray, mov: np.ndarray, shape: tuple[int, int], upsample: int) -> tuple[np.ndarray, float]:
    """(shift px, error): scikit-image's ``phase_cross_correlation(space="fourier", normalization=None,
    upsample_factor=upsample)`` of two half spectra: the integer peak of the cross-correlation, then the
    matrix-multiply DFT on a 1.5 px square around it at ``1 / upsample`` px
    (:func:`pfibsims.registration.kernels.upsampled_correlation`, half spectrum, no BLAS).  ``shift``
    registers ``mov`` onto ``ref``; ``error`` is ``sqrt(1 - NCC^2)`` at the peak."""
    product = ref * mov.conj()
    cc = scipy.fft.irfft2(product, shape)
    peak = np.array(np.unravel_index(int(np.argmax(np.abs(cc))), cc.shape), dtype=np.float64)
    size = np.array(shape, dtype=np.float64)
    peak[peak > np.fix(size / 2)] -= size[peak > np.fix(size / 2)]
    shifts = np.round(peak * upsample) / upsample
    region = math.ceil(upsample * 1.5)
    centre = np.fix(region / 2.0)
    steps = (np.arange(region) - centre) / upsample
    up = _kernels.upsampled_correlation(product, shape[1], shifts[0] + steps, shifts[1] + steps)
    i, j = np.unravel_index(int(np.argmax(np.abs(up))), up.shape)
    shifts = shifts + (np.array([i, j]) - centre) / upsample
    error = 1.0 - float(up[i, j]) ** 2 / (_power(ref, shape[1]) * _power(mov, shape[1]))
    return shifts, math.sqrt(abs(error))


def _fourier_shift(half: np.ndarray, shift: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``scipy.ndimage.fourier_shift(half, shift, n=shape[1])`` of a half spectrum, as one outer product of
    the two axes' phase ramps (a third of the time)."""
    ry = np.exp(-2j * np.pi * shift[0] * np.fft.fftfreq(shape[0]))
    rx = np.exp(-2j * np.pi * shift[1] * np.arange(half.shape[1]) / shape[1])
    return half * np.outer(ry, rx).astype(half.dtype)


def shift_of(ref: Any, mov: Any, upsample: int) -> np.ndarray:
    """(dy, dx, quality): displacement (px) of the content of ``mov`` relative to ``ref``, from their
    :func:`spectra`.

    Two passes: the window pulls the first estimate towards zero, so ``mov``
    is shifted back by it (Fourier shift of its plain spectrum, windowed
    again) and the small residual is measured and added.  Quality: the
    normalised cross-correlation at the final peak, in [0, 1].
    """
    if ref is None or mov is None:
        return np.array([0.0, 0.0, 0.0])
    shape = ref[2]
    first, _ = phase_peak(ref[0], mov[0], shape, upsample)
    back = scipy.fft.irfft2(_fourier_shift(mov[1], first, shape), shape).astype(np.float32)
    again = scipy.fft.rfft2(back * _hann(back.shape))
    rest, error = phase_peak(ref[0], again, shape, upsample)
    shift = np.asarray(first) + np.asarray(rest)
    quality = math.sqrt(max(0.0, 1.0 - float(error) ** 2))
    return np.array([-shift[0], -shift[1], quality])


def pair_shift(reference: np.ndarray, moving: np.ndarray, upsample: int, sigma: float) -> np.ndarray:
    """(dy, dx, quality) of ``moving``'s content relative to ``reference`` (:func:`shift_of` of their spectra)."""
    return shift_of(spectra(reference, sigma), spectra(moving, sigma), upsample)
