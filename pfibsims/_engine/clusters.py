"""Classes of feature vectors: k-means with restarts, the number of classes by BIC (numpy and scipy).

* :func:`kmeans` -- Lloyd's k-means from k-means++ seeds (``scipy.cluster.vq.kmeans2``),
  the best of a few seeded restarts (run on the machine's cores), deterministic;
* :func:`class_bic` -- the Bayesian information criterion of a hard partition
  under one diagonal Gaussian per class;
* :func:`choose_classes` -- the number of classes: the first local minimum of
  that BIC over ``k = 2, 3, ...`` on a fixed subsample.

No xarray, no dask: arrays of shape ``(n, d)`` in, numbers out.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.cluster.vq import ClusterError, kmeans2

from .numba import compiled, njit
from .threads import thread_map

__all__ = ["BIC_VOXELS", "MAX_CLASSES", "choose_classes", "class_bic", "kmeans", "subsample"]

#: The BIC that chooses the number of classes is computed on this many feature vectors:
#: the criterion depends on the sample size, so it is fixed (smoothed voxels are not
#: independent, so more of them would only add classes that fit the noise).
BIC_VOXELS = 10_000

#: The largest number of classes tried when it is chosen by BIC.
MAX_CLASSES = 12


def subsample(x: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """At most ``n`` rows of ``x``, drawn without replacement by a seeded generator, in their order."""
    if x.shape[0] <= n:
        return x
    idx = np.sort(np.random.default_rng(seed).choice(x.shape[0], size=n, replace=False))
    return x[idx]


def _lloyd(x: np.ndarray, k: int, iterations: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``kmeans2(x, k, iter=iterations, minit="++", missing="raise", seed=rng)``, stopped once it is at a fixed point.

    scipy's loop always runs ``iterations`` steps; a step whose labels equal the previous step's leaves the
    centroids as they were (the same means of the same rows), so every later step repeats it. The first step
    (k-means++ seeds, then one step) is scipy's; the later steps stop there: the same centroids and labels to
    the bit, in the steps it takes to converge (a few to ~20, not 50). Compiled, the later steps are
    :func:`_lloyd_steps` (scipy's own loop, which holds the GIL, otherwise).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "one of the clusters is empty": raised by missing="raise"
        centres, labels = kmeans2(x, k, iter=1, minit="++", missing="raise", seed=rng)
        if iterations > 1 and compiled() and x.dtype == np.float64:  # scipy keeps float32 rows in float32
            if not _lloyd_steps(np.ascontiguousarray(x), centres, labels, iterations - 1):
                raise ClusterError("One of the clusters is empty. Re-run kmeans with a different initialization.")
            return centres, labels
        for _ in range(iterations - 1):
            previous = labels
            centres, labels = kmeans2(x, centres, iter=1, minit="matrix", missing="raise", check_finite=False)
            if np.array_equal(labels, previous):
                break
    return centres, labels


@njit(nogil=True, cache=True)
def _lloyd_steps(x, centres, labels, steps):  # pragma: no cover - compiled
    """Up to ``steps`` Lloyd steps from ``centres`` and their ``labels`` (updated in place), stopped when a
    step's labels repeat the previous step's; False when a step empties a class.

    Each step is scipy's: ``vq``'s nearest centroid by the summed squared
    differences feature by feature, the first of equal distances (its direct
    loop, used for fewer than 5 features; for more, scipy expands the
    distance into dot products by BLAS, which rounds differently), then
    ``update_cluster_means``: the rows' sums in row order divided by their
    count. The same operations in the same order, so the same bits; without
    the GIL, so restarts run side by side.
    """
    n, d = x.shape
    k = centres.shape[0]
    new = np.empty(n, labels.dtype)
    sums = np.empty((k, d))
    counts = np.empty(k, np.int64)
    for _ in range(steps):
        same = True
        for i in range(n):
            best, arg = np.inf, 0
            for j in range(k):
                dist = 0.0
                for f in range(d):
                    diff = centres[j, f] - x[i, f]
                    dist += diff * diff
                if dist < best:
                    best, arg = dist, j
            new[i] = arg
            same = same and arg == labels[i]
        sums[:] = 0.0
        counts[:] = 0
        for i in range(n):
            j = new[i]
            for f in range(d):
                sums[j, f] += x[i, f]
            counts[j] += 1
        for j in range(k):
            if counts[j] == 0:
                return False
        for j in range(k):
            for f in range(d):
                centres[j, f] = sums[j, f] / counts[j]
        labels[:] = new
        if same:
            break
    return True


def kmeans(x: np.ndarray, k: int, *, restarts: int = 4, iterations: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """``k`` centroids of the rows of ``x`` (Euclidean), their labels and the within-class sum of squares.

    The best (least sum of squares) of ``restarts`` runs of Lloyd's algorithm
    (``iterations`` steps each) from k-means++ seeds ``seed, seed + 1, ...``;
    a run that empties a class is discarded.

    Raises
    ------
    ValueError
        When no run keeps ``k`` non-empty classes (fewer distinct rows than ``k``).

    Examples
    --------
    >>> x = np.r_[np.zeros((20, 2)), np.ones((20, 2)) * 10]
    >>> c, lab, sse = kmeans(x, 2)
    >>> sorted(c[:, 0].tolist()), sse
    ([0.0, 10.0], 0.0)
    """
    def run(r: int) -> tuple[np.ndarray, np.ndarray, float] | None:
        try:
            centres, labels = _lloyd(x, k, iterations, np.random.default_rng(seed + r))
        except ClusterError:
            return None
        return centres, labels, float(((x - centres[labels]) ** 2).sum())

    best = None
    for found in thread_map(run, range(restarts)):  # in the restarts' order: the first of equal sums wins
        if found is not None and (best is None or found[2] < best[2]):
            best = found
    if best is None:
        raise ValueError(f"k-means found no {k} non-empty classes in {x.shape[0]} rows")
    return best


def class_bic(x: np.ndarray, labels: np.ndarray, k: int) -> float:
    """BIC (lower is better) of ``x`` partitioned by ``labels`` into ``k`` classes, each a diagonal Gaussian.

    ``-2 log L + p log n`` with the class weights, means and per-axis variances
    (``p = (k - 1) + 2 k d`` parameters) fitted by maximum likelihood; the
    variances have a floor of 1e-9 of the mean variance.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.r_[rng.normal(0, 1, (200, 2)), rng.normal(8, 1, (200, 2))]
    >>> lab = (x[:, 0] > 4).astype(int)
    >>> bool(class_bic(x, lab, 2) < class_bic(x, np.zeros(400, int), 1))
    True
    """
    n, d = x.shape
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    floor = 1e-9 * max(float(x.var(axis=0).mean()), 1e-300)
    loglik = -0.5 * n * d
    for j in range(k):
        if counts[j] == 0:
            continue
        v = x[labels == j].var(axis=0) + floor
        loglik += counts[j] * math.log(counts[j] / n) - 0.5 * counts[j] * float(np.log(2 * np.pi * v).sum())
    p = (k - 1) + 2 * k * d
    return -2.0 * loglik + p * math.log(n)


def choose_classes(x: np.ndarray, *, max_classes: int = MAX_CLASSES, seed: int = 0) -> tuple[int, dict[int, float]]:
    """The number of classes of ``x``: the first local minimum of :func:`class_bic` over ``k = 2 ... max_classes``.

    Computed on at most :data:`BIC_VOXELS` rows (:func:`subsample`); ``k`` is at
    most their number of distinct rows (1 when they are all equal, no ``k``
    tried). Returns ``k`` and the BIC of every ``k`` tried (up to one past the minimum).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> x = np.concatenate([rng.normal(m, 0.5, (300, 2)) for m in (0, 6, 12)])
    >>> choose_classes(x)[0]
    3
    """
    sub = subsample(x, BIC_VOXELS, seed)
    # no more classes than distinct rows (counts of 0 or 1: two): k-means++ seeding past them divides by zero
    distinct = np.unique(sub, axis=0).shape[0]
    if distinct < 2:
        return 1, {}
    top = min(max(2, min(max_classes, sub.shape[0] // 20)), distinct)
    table: dict[int, float] = {}
    for k in range(2, top + 1):
        try:
            _, labels, _ = kmeans(sub, k, seed=seed)
        except ValueError:
            break
        table[k] = class_bic(sub, labels, k)
        if k > 2 and table[k] >= table[k - 1]:
            return k - 1, table
    return max(table) if table else 1, table
