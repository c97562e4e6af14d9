"""Similarity metrics of small in-memory images, for registration.

Plain numpy on small arrays (a reduced view of a few hundred pixels a side):
no xarray, no dask.  Cross-modal registration compares a moving image (SIMS
Li) with a *fixed summary*: the fixed channels are turned once into integer
labels (:func:`fixed_labels`: quantile bins of one channel, or k-means
clusters of several channels, a data-driven phase map), and the metric
measures how well the labels predict the moving intensity.

- :func:`mutual_information`: Mattes-style mutual information between the
  moving intensity (soft-binned with a triangular Parzen kernel, so the value
  moves smoothly with sub-pixel changes of the transform) and the labels,
  with the Miller-Madow small-sample bias removed.
- :func:`multiple_correlation`: the correlation coefficient of the moving
  image with its least-squares prediction from all fixed channels (for one
  channel this is ``|pearson r|``).
- :func:`mi_surface`: the mutual information at every integer shift at once,
  from FFT cross-correlations of bin indicator images (global search).
"""

from __future__ import annotations

import numpy as np
import scipy.fft
from scipy.cluster.vq import kmeans2

from .._engine.threads import thread_map

__all__ = [
    "bin_edges",
    "correlation_from_moments",
    "correlation_moments",
    "fixed_labels",
    "mi_from_joint",
    "mi_surface",
    "multiple_correlation",
    "mutual_information",
    "soft_bins",
]


def bin_edges(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Quantile bin edges (``n_bins + 1``) of finite ``values``, strictly increasing.

    Where one value holds several quantiles (a saturated or empty background), the bins it
    would have taken go to quantiles of the other values, so the image's structure keeps
    its bins (fewer than ``n_bins`` only when there are fewer distinct values).

    Examples
    --------
    >>> bin_edges(np.arange(10.0), 2)
    array([0. , 4.5, 9. ])
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return np.array([0.0, 1.0])
    edges = np.unique(np.quantile(v, np.linspace(0.0, 1.0, n_bins + 1)))
    if 2 <= edges.size < n_bins + 1:  # a value (saturation, background) holds several quantiles: bin the others
        rest = v[~np.isin(v, edges)]
        if rest.size:
            more = np.quantile(rest, np.linspace(0.0, 1.0, n_bins + 3 - edges.size)[1:-1])
            edges = np.unique(np.concatenate([edges, more]))
    if edges.size < 2:
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    return edges


def soft_bins(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triangular-kernel (linear) soft binning onto bin centres.

    Returns ``(lower bin, upper bin, weight of the upper bin)``; a value at a
    bin centre goes wholly to that bin, one between two centres is shared.
    The fractional position comes from the (quantile) edges, so the bins are
    equally populated and the result is a continuous function of ``values``.
    """
    n = edges.size - 1
    centres = 0.5 * (edges[:-1] + edges[1:])
    pos = np.interp(values, centres, np.arange(n, dtype=np.float64))
    lo = np.clip(np.floor(pos).astype(np.intp), 0, max(n - 2, 0))
    w = np.clip(pos - lo, 0.0, 1.0) if n > 1 else np.zeros_like(pos)
    return lo, np.minimum(lo + 1, n - 1), w


def fixed_labels(channels: np.ndarray, valid: np.ndarray, *, n_labels: int = 8, seed: int = 0) -> np.ndarray:
    """Integer labels summarising the fixed channels (``-1`` where not valid).

    Parameters
    ----------
    channels : (C, H, W) array
        The fixed channels (any units; each is standardised robustly).
    valid : (H, W) bool array
        Pixels to label.
    n_labels : int
        Quantile bins of a single channel, or k-means clusters of several.
    seed : int
        Seed of the k-means initialisation (deterministic result).

    Examples
    --------
    >>> img = np.repeat([[0.0, 1.0, 5.0, 9.0]], 3, axis=0)
    >>> fixed_labels(img[None], np.ones(img.shape, bool), n_labels=2)[0]
    array([0, 0, 1, 1])
    """
    c = np.asarray(channels, dtype=np.float64)
    out = np.full(c.shape[1:], -1, dtype=np.intp)
    if not valid.any():
        return out
    x = c[:, valid].T  # (N, C)
    if x.shape[1] == 1:
        edges = bin_edges(x[:, 0], n_labels)
        out[valid] = np.clip(np.searchsorted(edges, x[:, 0], side="right") - 1, 0, edges.size - 2)
        return out
    med = np.median(x, axis=0)
    iqr = np.subtract(*np.percentile(x, [75, 25], axis=0))
    std = x.std(axis=0)
    scale = np.where(iqr > 0, iqr, np.where(std > 0, std, 1.0))
    z = (x - med) / scale
    rng = np.random.default_rng(seed)
    # k-means on a subsample for speed, then assign every pixel to its nearest centroid.
    sub = z[rng.choice(z.shape[0], size=min(z.shape[0], 20000), replace=False)]
    centroids, _ = kmeans2(sub, n_labels, minit="++", seed=rng, iter=20)
    d2 = ((z[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    lab = np.argmin(d2, axis=1)
    # Renumber the used labels 0..K-1 so histograms have no empty columns.
    _, lab = np.unique(lab, return_inverse=True)
    out[valid] = lab
    return out


def mutual_information(
    moving: np.ndarray, labels: np.ndarray, edges: np.ndarray, n_labels: int
) -> float:
    """Bias-corrected mutual information (nats) of moving values and fixed labels.

    Parameters
    ----------
    moving : (N,) float array
        Moving intensities at the N valid sample points.
    labels : (N,) int array
        Fixed labels ``0 .. n_labels-1`` at the same points.
    edges : array
        Moving bin edges (:func:`bin_edges`).
    n_labels : int
        Number of fixed labels.

    Notes
    -----
    The joint histogram is built with a triangular Parzen kernel along the
    moving axis (see :func:`soft_bins`); the Miller-Madow term
    ``(A - 1)(B - 1) / 2N`` is subtracted so that unrelated images score
    about 0 whatever N.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> lab = rng.integers(0, 4, 10000)
    >>> m = lab + 0.1 * rng.standard_normal(10000)
    >>> mutual_information(m, lab, bin_edges(m, 8), 4) > 1.0
    True
    >>> abs(mutual_information(rng.standard_normal(10000), lab, bin_edges(m, 8), 4)) < 0.01
    True
    """
    n_bins = edges.size - 1
    n = moving.size
    if n == 0:
        return 0.0
    lo, hi, w = soft_bins(moving, edges)
    joint = np.bincount(labels * n_bins + lo, weights=1.0 - w, minlength=n_labels * n_bins)
    joint += np.bincount(labels * n_bins + hi, weights=w, minlength=n_labels * n_bins)
    joint = joint.reshape(n_labels, n_bins) / n
    return mi_from_joint(joint, n)


def mi_from_joint(p: np.ndarray, n: float) -> float:
    """Miller-Madow corrected mutual information (nats) of a joint distribution ``p`` (labels x bins), ``n`` samples."""
    pl = p.sum(axis=1, keepdims=True)
    pm = p.sum(axis=0, keepdims=True)
    nz = p > 0
    mi = float(np.sum(p[nz] * np.log(p[nz] / (pl @ pm)[nz])))
    a, b = int((pl > 0).sum()), int((pm > 0).sum())
    return mi - (a - 1) * (b - 1) / (2.0 * n)


def multiple_correlation(moving: np.ndarray, design: np.ndarray) -> float:
    """Correlation of ``moving`` with its least-squares prediction from ``design``.

    Parameters
    ----------
    moving : (N,) array
    design : (N, C) array
        The fixed channels at the same points (a constant column is added).

    Examples
    --------
    >>> x = np.arange(10.0)
    >>> round(multiple_correlation(-2 * x + 1, x[:, None]), 12)
    1.0
    """
    if moving.size < design.shape[1] + 2:
        return 0.0
    n, s, zz = correlation_moments(moving, np.asarray(design, dtype=np.float64).T)
    return correlation_from_moments(n, s, zz)


def correlation_moments(moving: np.ndarray, design_t: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Sums for :func:`multiple_correlation`: ``(N, sums, cross products)`` of ``[channels..., moving]``.

    ``design_t`` is channel-major, ``(C, N)``.  Moments of several sample sets
    add up: pooling slices needs no concatenation.  One einsum (no BLAS):
    multi-threaded BLAS products of this shape are 10-100x slower on a loaded
    machine.
    """
    z = np.empty((design_t.shape[0] + 1, moving.size))
    z[:-1] = design_t
    z[-1] = moving
    return moving.size, z.sum(axis=1), np.einsum("in,jn->ij", z, z)


def correlation_from_moments(n: int, s: np.ndarray, zz: np.ndarray) -> float:
    """Multiple correlation from :func:`correlation_moments` (normal equations, C x C)."""
    if n < s.size + 1:
        return 0.0
    m = zz - np.outer(s, s) / n
    yy, c, gram = m[-1, -1], m[:-1, -1], m[:-1, :-1]
    if yy <= 0:
        return 0.0
    coef = np.linalg.lstsq(gram, c, rcond=None)[0]
    return float(np.sqrt(min(max(float(c @ coef), 0.0) / yy, 1.0)))


def mi_surface(
    moving: np.ndarray,
    moving_valid: np.ndarray,
    labels: np.ndarray | list[np.ndarray],
    edges: np.ndarray,
    n_labels: int,
) -> tuple[np.ndarray, np.ndarray] | list[tuple[np.ndarray, np.ndarray]]:
    """Mutual information of a fixed label image at every placement inside a moving canvas.

    Parameters
    ----------
    moving : (Hc, Wc) array
        The moving canvas (already rotated/scaled into the fixed frame).
    moving_valid : (Hc, Wc) bool
        Where the canvas holds moving data.
    labels : (Hf, Wf) int array, or a list of them
        Fixed labels, ``-1`` where not valid; ``Hf <= Hc``, ``Wf <= Wc``.  A
        list (e.g. the tiles of one label image, each ``-1`` outside its tile)
        shares the transforms of the moving canvas and gives a list of results.
    edges : array
        Moving bin edges.
    n_labels : int

    Returns
    -------
    mi : (Hc - Hf + 1, Wc - Wf + 1) array
        Bias-corrected MI (nats) with the fixed image's top-left pixel on
        canvas pixel ``(i, j)``; ``-inf`` where nothing overlaps.
    count : same shape
        Number of overlapping valid pixel pairs at each placement.

    Notes
    -----
    Joint counts at all placements are cross-correlations of the indicator
    images of each (moving bin, fixed label) pair, computed by FFT in single
    precision (the counts are rounded to integers; hard binning here: this
    surface only ranks coarse candidates).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> canvas = rng.random((40, 40))
    >>> lab = (canvas[10:26, 5:21] > 0.5).astype(int)   # the canvas itself, at (10, 5)
    >>> mi, n = mi_surface(canvas, np.ones(canvas.shape, bool), lab, bin_edges(canvas, 4), 2)
    >>> np.unravel_index(np.argmax(mi), mi.shape), int(n[10, 5])
    ((np.int64(10), np.int64(5)), 256)
    """
    many = isinstance(labels, list)
    images = labels if many else [labels]
    hc, wc = moving.shape
    hf, wf = images[0].shape
    # circular correlation of length >= the canvas: the wrap-around only reaches placements that are
    # not returned (the fixed image partly outside the canvas)
    fshape = tuple(scipy.fft.next_fast_len(s, real=True) for s in (hc, wc))
    n_bins = edges.size - 1
    mbin = np.clip(np.searchsorted(edges, moving, side="right") - 1, 0, n_bins - 1)
    mbin = np.where(moving_valid & np.isfinite(moving), mbin, -1)
    fm = scipy.fft.rfft2(np.stack([mbin == a for a in range(n_bins)]).astype(np.float32), fshape)
    sl = (slice(None), slice(hf - 1, hc), slice(wf - 1, wc))

    def one(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        fl = scipy.fft.rfft2(np.stack([lab[::-1, ::-1] == b for b in range(n_labels)]).astype(np.float32), fshape)
        joint = np.empty((n_labels, n_bins, hc - hf + 1, wc - wf + 1))
        for b in range(n_labels):
            joint[b] = scipy.fft.irfft2(fm * fl[b], fshape)[sl]
        return _mi_of_counts(np.maximum(np.rint(joint), 0.0))

    out = thread_map(one, images)  # the label images (tiles) on the machine's cores; inline inside the pool
    return out if many else out[0]


def _mi_of_counts(joint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bias-corrected MI, count) of joint counts ``(labels, bins, ...)`` at every placement."""
    n = joint.sum(axis=(0, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = joint / n
        pl = p.sum(axis=1, keepdims=True)
        pm = p.sum(axis=0, keepdims=True)
        term = np.where(p > 0, p * np.log(p / (pl * pm)), 0.0)
        mi = term.sum(axis=(0, 1))
        a_used = (pl[:, 0] > 0).sum(axis=0)
        b_used = (pm[0] > 0).sum(axis=0)
        mi = mi - (a_used - 1) * (b_used - 1) / (2.0 * n)
    return np.where(n > 0, mi, -np.inf), n
