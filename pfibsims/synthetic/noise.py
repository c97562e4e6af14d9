"""Counter-based Poisson noise: the same counts for a voxel whatever the chunking.

Each voxel's uniform variate is a hash (the SplitMix64 finaliser) of a stream
key and the voxel's *global* linear index, so a chunk computed alone draws
exactly the numbers it draws as part of the whole. Counts are the Poisson
quantile of that variate (exact inversion for means up to 40, a rounded normal
quantile above, where the two differ by far less than the noise).

:func:`poisson_counts` fuses hash, uniform and inversion in one compiled pass
over a block (numba, ``nogil``: dask threads run blocks in parallel); it gives
the same numbers as ``poisson_from_uniform(uniform(key, index), lam)``.
Without numba the same loops run as plain Python (correct, slow).

No xarray, no dask.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.special import ndtri

from .._engine.numba import njit

__all__ = ["EXACT_MAX", "poisson_counts", "poisson_from_uniform", "stream_key", "uniform"]

#: Largest mean drawn by exact inversion; larger means use the normal quantile.
EXACT_MAX = 40.0

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S11, _S27, _S30, _S31 = np.uint64(11), np.uint64(27), np.uint64(30), np.uint64(31)
_ULP53 = 1.0 / 2.0**53
_LANES = 8  # voxels searched side by side


def stream_key(seed: int, *spawn_key: int) -> int:
    """A 64-bit key for one noise stream (one channel of one phantom).

    Examples
    --------
    >>> stream_key(0, 1) != stream_key(0, 2) != stream_key(1, 1)
    True
    """
    return int(np.random.SeedSequence(seed, spawn_key=spawn_key).generate_state(1, np.uint64)[0])


def uniform(key: int, index: np.ndarray) -> np.ndarray:
    """Uniform variates in (0, 1), one per global index (any integer array).

    Examples
    --------
    >>> u = uniform(7, np.arange(5))
    >>> bool(np.all((u > 0) & (u < 1))), bool(np.array_equal(u[2:], uniform(7, np.arange(2, 5))))
    (True, True)
    """
    x = np.asarray(index).astype(np.uint64) * _GOLDEN
    x += np.uint64(key)
    x ^= x >> _S30
    x *= _M1
    x ^= x >> _S27
    x *= _M2
    x ^= x >> _S31
    return ((x >> _S11).astype(np.float64) + 0.5) * _ULP53


def _normal_quantile(lam: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Counts of the means above :data:`EXACT_MAX`: a rounded normal quantile."""
    return np.maximum(0.0, np.floor(lam + np.sqrt(lam) * ndtri(u) + 0.5))


def poisson_from_uniform(u: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Poisson counts of mean ``lam`` as the quantiles of uniforms ``u`` (float64 array).

    For ``lam <= EXACT_MAX`` the count is the smallest ``k`` with ``CDF(k) >= u``
    (what ``scipy.stats.poisson.ppf`` gives); above it,
    ``max(0, floor(lam + sqrt(lam) * Phi^-1(u) + 0.5))``.

    Examples
    --------
    >>> poisson_from_uniform(np.array([0.1, 0.5, 0.99]), np.array([3.0, 3.0, 3.0]))
    array([1., 3., 8.])
    """
    u = np.asarray(u, dtype=np.float64)
    lam = np.broadcast_to(np.asarray(lam, dtype=np.float64), u.shape).reshape(-1)
    uf = u.reshape(-1)
    n = uf.size
    exact = (lam > 0.0) & (lam <= EXACT_MAX)
    pad = -(-n // _LANES) * _LANES
    buf_u, buf_lam, buf_p, cnt = np.zeros(pad), np.zeros(pad), np.ones(pad), np.zeros(pad)
    buf_u[:n][exact], buf_lam[:n][exact], buf_p[:n][exact] = uf[exact], lam[exact], np.exp(-lam[exact])
    _invert_lanes(buf_u, buf_lam, buf_p, _search_length(lam), cnt)
    out = cnt[:n]
    big = lam > EXACT_MAX
    if big.any():
        out[big] = _normal_quantile(lam[big], uf[big])
    return out.reshape(u.shape)


def poisson_counts(lam: np.ndarray, key: int, start: tuple[int, ...], shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """Poisson counts of one block of a 3-D array, drawn from the global voxel indices.

    The same numbers as ``poisson_from_uniform(uniform(key, index), lam)`` with
    ``index`` the C-order linear index of each voxel in the whole array of
    ``shape``, the block starting at ``start``; one compiled pass (no
    full-size temporaries but ``exp(-lam)``).

    Parameters
    ----------
    lam : array (nz, ny, nx)
        Expected counts of the block (any float dtype).
    key : int
        The stream key (:func:`stream_key`).
    start : (k0, i0, j0)
        Global index of the block's first voxel.
    shape : (Nz, Ny, Nx)
        Shape of the whole array.
    dtype : numpy dtype
        Dtype of the counts.

    Examples
    --------
    >>> lam = np.full((1, 2, 3), 5.0)
    >>> a = poisson_counts(lam, 7, (0, 0, 0), (1, 2, 3), np.uint16)
    >>> b = poisson_from_uniform(uniform(7, np.arange(6)), lam.ravel()).reshape(1, 2, 3)
    >>> bool(np.array_equal(a, b)), a.dtype.name
    (True, 'uint16')
    """
    lam = np.ascontiguousarray(lam)
    out = np.zeros(lam.shape, dtype=dtype)
    if lam.size == 0:
        return out
    flat = lam.reshape(-1)
    # exp by numpy, as poisson_from_uniform takes it: the same bits on every machine.
    p = np.exp(-np.maximum(flat.astype(np.float64), 0.0)).reshape(lam.shape)  # used where 0 < lam <= 40
    _counts_block(lam, p, np.uint64(key), *(int(v) for v in start), int(shape[1]), int(shape[2]),
                  _search_length(flat), out)
    big = np.flatnonzero(flat > EXACT_MAX)
    if big.size:
        k, i, j = (np.asarray(v, dtype=np.uint64) + np.uint64(s) for v, s in zip(np.unravel_index(big, lam.shape), start, strict=True))
        index = (k * np.uint64(shape[1]) + i) * np.uint64(shape[2]) + j
        out.reshape(-1)[big] = _normal_quantile(flat[big].astype(np.float64), uniform(key, index))
    return out


# -- compiled loops ------------------------------------------------------------
def _search_length(lam: np.ndarray) -> int:
    """Number of inversion steps of a block: ``int(top + 8 sqrt(top) + 20)``, ``top`` the
    largest mean drawn exactly (0 if none)."""
    top = _top(lam)
    return int(top + 8.0 * math.sqrt(top) + 20.0) if top > 0 else 0


@njit(nogil=True, cache=True)
def _top(lam):  # pragma: no cover - compiled
    top = 0.0
    for v in lam:
        x = np.float64(v)
        top = max(top, x if x > 0.0 and x <= EXACT_MAX else 0.0)
    return top


@njit(nogil=True, cache=True)
def _hash(key, index):  # pragma: no cover - compiled
    x = index * _GOLDEN
    x += key
    x ^= x >> _S30
    x *= _M1
    x ^= x >> _S27
    x *= _M2
    x ^= x >> _S31
    return (np.float64(x >> _S11) + 0.5) * _ULP53


@njit(nogil=True, cache=True)
def _invert_lanes(u, lam, p, steps, cnt):  # pragma: no cover - compiled
    """``cnt[n] = #{1 <= k < steps : CDF(k - 1) < u[n]}`` by sequential search, the CDF
    summed as ``p *= lam; p /= k; cdf += p`` from ``p = exp(-lam)``. Runs ``_LANES``
    voxels side by side (SIMD) until all are found; the CDF only grows, so searching
    on changes no count. Lengths are multiples of ``_LANES``; ``u = 0`` is a no-op lane."""
    pp = np.empty(_LANES)
    cdf = np.empty(_LANES)
    c = np.empty(_LANES)
    for n0 in range(0, u.size, _LANES):
        for m in range(_LANES):
            pp[m] = p[n0 + m]
            cdf[m] = pp[m]
            c[m] = 0.0
        for k in range(1, steps):
            searching = 0.0
            for m in range(_LANES):
                below = 1.0 if u[n0 + m] > cdf[m] else 0.0
                c[m] += below
                searching += below
                pp[m] = pp[m] * lam[n0 + m] / k
                cdf[m] += pp[m]
            if searching == 0.0:
                break
        for m in range(_LANES):
            cnt[n0 + m] = c[m]


@njit(nogil=True, cache=True)
def _counts_block(lam, p, key, k0, i0, j0, ny, nx, steps, out):  # pragma: no cover - compiled
    nk, ni, nj = lam.shape
    pad = -(-nj // _LANES) * _LANES
    u, mean, p0, cnt = np.zeros(pad), np.zeros(pad), np.ones(pad), np.zeros(pad)
    uny, unx = np.uint64(ny), np.uint64(nx)
    for a in range(nk):
        for b in range(ni):
            row = (np.uint64(k0 + a) * uny + np.uint64(i0 + b)) * unx
            for c in range(nj):
                x = np.float64(lam[a, b, c])
                if x > 0.0 and x <= EXACT_MAX:
                    u[c], mean[c], p0[c] = _hash(key, row + np.uint64(j0 + c)), x, p[a, b, c]
                else:
                    u[c], mean[c], p0[c] = 0.0, 0.0, 1.0
            _invert_lanes(u, mean, p0, steps, cnt)
            for c in range(nj):
                if mean[c] > 0.0:
                    out[a, b, c] = cnt[c]
