"""Compiled kernels of the line fit (:mod:`pfibsims.io.fitting`): projection and non-negative least squares.

Two passes over the pixels of a chunk. :func:`project_rows`: each line's row of
``P = (A^T A)^-1 A^T`` is applied to the counts in place, over only the fit
channels it depends on: a line's row is zero outside its own cluster up to
Gaussian tails ~1e-60 of its size. A pixel whose unconstrained solution has
a negative line is solved again with the lines non-negative
(:func:`nonneg_rows`).

The non-negative solve is exact, not approximate. With the background
eliminated, the lines minimise ``x'Gr x / 2 - b'x`` over ``x >= 0`` (``Gr``
positive definite: one minimiser), and a set ``S`` of positive lines is the
minimiser's set exactly when ``z_S = Gr[S, S]^-1 b_S > 0`` and
``b - Gr z <= 0`` off ``S`` (the Karush-Kuhn-Tucker conditions). Lines of
different clusters do not interact, so ``Gr`` splits into independent
blocks, each solved on its own. Most pixels of a map share a few sets per
block (a phase's missing elements are the lines at zero), so the kernel
keeps the inverses of the sets it has met (:data:`SLOTS` per block) and
checks them in turn, first the one that last solved a pixel with the same
signs of unconstrained lines; only a pixel that satisfies none of them runs
Lawson-Hanson (:func:`lawson_hanson`), whose final set joins the cache
(round robin when full). The tolerances are Lawson-Hanson's, so both
routes accept the same solutions.

Every kernel runs as plain Python without numba (the ``py_func`` twins the
numba switch :mod:`pfibsims._engine.numba` takes).
"""

from __future__ import annotations

import numpy as np

from .._engine.numba import njit

__all__ = ["SLOTS", "lawson_hanson", "nnls_rows", "nonneg_rows", "project_rows"]

#: Active sets (with their inverses) the kernel remembers per block of lines, in one chunk.
SLOTS = 16
#: Sign patterns of the unconstrained lines (per block) that remember which cached set solved them last.
_KEY_BITS = 10


@njit(cache=True, nogil=True)
def _solve_subset(G: np.ndarray, b: np.ndarray, passive: np.ndarray, z: np.ndarray, M: np.ndarray, v: np.ndarray) -> None:  # pragma: no cover
    """z[passive] = G[passive, passive]^-1 b[passive] (Gaussian elimination in scratch M, v); z elsewhere 0."""
    k = b.size
    n = 0
    for i in range(k):
        z[i] = 0.0
        if passive[i]:
            m = 0
            for j in range(k):
                if passive[j]:
                    M[n, m] = G[i, j]
                    m += 1
            v[n] = b[i]
            n += 1
    for c in range(n):  # G is symmetric positive definite: no pivoting needed
        piv = M[c, c]
        for r in range(c + 1, n):
            f = M[r, c] / piv
            for q in range(c, n):
                M[r, q] -= f * M[c, q]
            v[r] -= f * v[c]
    for c in range(n - 1, -1, -1):
        acc = v[c]
        for q in range(c + 1, n):
            acc -= M[c, q] * v[q]
        v[c] = acc / M[c, c]
    n = 0
    for i in range(k):
        if passive[i]:
            z[i] = v[n]
            n += 1


@njit(cache=True, nogil=True)
def _reduced_rhs(Gr: np.ndarray, xu: np.ndarray, b: np.ndarray) -> float:  # pragma: no cover - compiled
    """b = Gr xu (the reduced right-hand side of the unconstrained solution xu); returns LH's tolerance."""
    k = Gr.shape[0]
    scale = 0.0
    for i in range(k):
        acc = 0.0
        for j in range(k):
            acc += Gr[i, j] * xu[j]
        b[i] = acc
        scale = max(scale, abs(acc))
    return 1e-12 * (scale + 1.0)


@njit(cache=True, nogil=True)
def lawson_hanson(Gr: np.ndarray, xu: np.ndarray, b: np.ndarray, tol: float, x: np.ndarray, passive: np.ndarray) -> None:  # pragma: no cover
    """Lawson-Hanson NNLS on the reduced normal equations of one pixel: x (lines) and its final set ``passive``.

    ``Gr`` is the Schur complement of the background in ``A^T A``; the
    unconstrained solution ``xu`` gives ``b = Gr xu``, and the constrained one
    minimises ``x'Gr x / 2 - b'x`` over ``x >= 0``. Warm start: the lines
    ``xu`` finds positive, dropping any that turn non-positive.
    """
    k = Gr.shape[0]
    M = np.empty((k, k))
    v = np.empty(k)
    z = np.empty(k)
    w = np.empty(k)
    for i in range(k):
        passive[i] = xu[i] > 0
    for _start in range(k):
        _solve_subset(Gr, b, passive, z, M, v)
        feasible = True
        for i in range(k):
            if passive[i] and z[i] <= tol:
                passive[i] = False
                feasible = False
        if feasible:
            break
    for i in range(k):
        x[i] = z[i] if passive[i] else 0.0
    for _outer in range(3 * k + 3):
        for i in range(k):
            acc = b[i]
            for j in range(k):
                acc -= Gr[i, j] * x[j]
            w[i] = acc
        best, jbest = tol, -1
        for i in range(k):
            if not passive[i] and w[i] > best:
                best, jbest = w[i], i
        if jbest < 0:
            break
        passive[jbest] = True
        for _inner in range(k + 1):
            _solve_subset(Gr, b, passive, z, M, v)
            alpha, bad = 1.0, False
            for i in range(k):
                if passive[i] and z[i] <= tol:
                    bad = True
                    d = x[i] - z[i]
                    alpha = min(alpha, x[i] / d if d > 0 else 0.0)
            if not bad:
                for i in range(k):
                    x[i] = z[i]
                break
            for i in range(k):
                x[i] += alpha * (z[i] - x[i])
                if passive[i] and x[i] <= tol:
                    passive[i] = False
                    x[i] = 0.0


@njit(cache=True, nogil=True)
def nnls_rows(Gr: np.ndarray, X: np.ndarray, rows: np.ndarray) -> None:  # pragma: no cover - compiled
    """Lawson-Hanson (no cache) on the given rows of X (unconstrained line counts, replaced in place)."""
    k = Gr.shape[0]
    b = np.empty(k)
    x = np.empty(k)
    passive = np.empty(k, dtype=np.bool_)
    for r in rows:
        tol = _reduced_rhs(Gr, X[r], b)
        lawson_hanson(Gr, X[r], b, tol, x, passive)
        for i in range(k):
            X[r, i] = x[i]


@njit(cache=True, nogil=True)
def _store(Gb: np.ndarray, passive: np.ndarray, masks: np.ndarray, invs: np.ndarray, slot: int) -> None:  # pragma: no cover
    """Cache slot ``slot`` of a block: the set ``passive`` and the inverse of Gb on it (zero off it)."""
    k = Gb.shape[0]
    e = np.zeros(k)
    col = np.empty(k)
    M = np.empty((k, k))
    v = np.empty(k)
    for i in range(k):
        masks[slot, i] = passive[i]
    for j in range(k):
        e[j] = 1.0
        _solve_subset(Gb, e, passive, col, M, v)  # column j of the inverse on the set
        e[j] = 0.0
        for i in range(k):
            invs[slot, i, j] = col[i] if passive[j] else 0.0


#: reassociation (vectorised sums) but no "no NaN" assumption: a NaN count stays a NaN map value
_FAST = {"reassoc", "contract", "arcp", "nsz"}


@njit(cache=True, nogil=True, fastmath=_FAST)
def project_rows(flat: np.ndarray, P: np.ndarray, seg_lo: np.ndarray, seg_hi: np.ndarray) -> np.ndarray:  # pragma: no cover
    """(pixels, channels) counts -> (pixels, lines) unconstrained net counts, reading the counts in place.

    ``P`` (lines, channels): the lines' rows of ``(A^T A)^-1 A^T`` on the
    spectrum's channels; line j reads only the channels
    ``seg_lo[j, s]:seg_hi[j, s]`` (its fit channels where its row is not
    negligible). A pixel with a NaN or infinite count there is NaN for every
    line (no line of it can be estimated).
    """
    n, k = flat.shape[0], P.shape[0]
    X = np.empty((n, k))
    for r in range(n):
        row, finite = flat[r], True
        for j in range(k):
            acc = 0.0
            for s in range(seg_lo.shape[1]):
                p, y = P[j, seg_lo[j, s] : seg_hi[j, s]], row[seg_lo[j, s] : seg_hi[j, s]]
                for i in range(p.size):
                    acc += np.float64(y[i]) * p[i]
            X[r, j] = acc
            finite &= abs(acc) < np.inf
        if not finite:
            X[r, :] = np.nan
    return X


@njit(cache=True, nogil=True)
def nonneg_rows(X: np.ndarray, groups: np.ndarray, Grb: np.ndarray) -> None:  # pragma: no cover - compiled
    """The rows of X with a negative line, constrained non-negative in place (cached active sets, else Lawson-Hanson).

    ``groups`` (blocks, m): the lines of each independent block of the
    reduced normal matrix (-1 pads); ``Grb`` (blocks, m, m): its matrix
    (identity on the pads, whose counts stay 0). One loop on purpose: numba
    calls with array arguments cost more per pixel than the work.
    """
    nb, m = groups.shape
    masks = np.zeros((nb, SLOTS, m), dtype=np.bool_)  # the cache: sets and their inverses
    invs = np.zeros((nb, SLOTS, m, m))
    used, evict = np.zeros(nb, dtype=np.int64), np.zeros(nb, dtype=np.int64)  # slots filled, next to overwrite
    guess = np.full((nb, 1 << min(m, _KEY_BITS)), -1, dtype=np.int64)  # signs of x -> slot that last solved them
    xb, bb = np.zeros((nb, m)), np.empty((nb, m))
    z, passive = np.empty(m), np.empty(m, dtype=np.bool_)
    for r in range(X.shape[0]):
        neg, nan = False, False
        for j in range(X.shape[1]):
            neg |= X[r, j] < 0
            nan |= X[r, j] != X[r, j]
        if nan or not neg:  # NaN pixels stay NaN
            continue
        scale = 0.0  # each block's lines and right-hand side b = Gb x; LH's tolerance from the whole pixel
        for g in range(nb):
            for q in range(m):
                xb[g, q] = X[r, groups[g, q]] if groups[g, q] >= 0 else 0.0
            for i in range(m):
                acc = 0.0
                for j in range(m):
                    acc += Grb[g, i, j] * xb[g, j]
                bb[g, i] = acc
                scale = max(scale, abs(acc))
        tol = 1e-12 * (scale + 1.0)
        for g in range(nb):
            neg, key = False, 0
            for q in range(m):
                neg |= xb[g, q] < 0
                key |= (xb[g, q] > 0) << (q % _KEY_BITS)
            if not neg:
                continue
            hit = -1
            for t in range(-1, used[g]):  # the guess first, then every cached set
                s = guess[g, key] if t < 0 else t
                if s < 0 or (t >= 0 and s == guess[g, key]):
                    continue
                ok = True  # KKT: z_S = inverse b_S > tol on S, b - Gb z <= tol off S
                for i in range(m):
                    acc = 0.0
                    if masks[g, s, i]:
                        for j in range(m):
                            acc += invs[g, s, i, j] * bb[g, j]
                        ok &= acc > tol
                    z[i] = acc
                for i in range(m):
                    if ok and not masks[g, s, i]:
                        acc = bb[g, i]
                        for j in range(m):
                            acc -= Grb[g, i, j] * z[j]
                        ok &= acc <= tol
                if ok:
                    hit = s
                    break
            if hit < 0:  # a set not met yet in this chunk: Lawson-Hanson, then cache it (round robin when full)
                lawson_hanson(Grb[g], xb[g].copy(), bb[g], tol, z, passive)
                hit = used[g] if used[g] < SLOTS else evict[g]
                used[g], evict[g] = min(used[g] + 1, SLOTS), (evict[g] + (used[g] == SLOTS)) % SLOTS
                _store(Grb[g], passive, masks[g], invs[g], hit)
            guess[g, key] = hit
            for q in range(m):
                if groups[g, q] >= 0:
                    X[r, groups[g, q]] = z[q]
