"""Automatic two-class thresholds of a 1-D sample (numpy in, a float out).

* ``"rules"``: Otsu's threshold (maximum between-class variance), as
  :func:`skimage.filters.threshold_otsu`;
* ``"kmeans"``: two-means clustering in 1-D, i.e. the ISODATA / Ridler-Calvard
  threshold (midpoint of the two class means at convergence), as
  :func:`skimage.filters.threshold_isodata`;
* ``"gmm"``: a two-component Gaussian mixture fitted by EM (started from the
  Otsu split); the threshold is where the two weighted densities cross
  between the component means.
"""

from __future__ import annotations

import numpy as np
from skimage.filters import threshold_isodata, threshold_otsu

__all__ = ["METHODS", "threshold"]

METHODS = ("rules", "gmm", "kmeans")


def _gmm(x: np.ndarray, *, iterations: int = 200, tol: float = 1e-8) -> float:
    t = threshold_otsu(x)
    lo, hi = x[x <= t], x[x > t]
    w = np.array([lo.size, hi.size], dtype=float) / x.size
    mu = np.array([lo.mean(), hi.mean()])
    var = np.maximum(np.array([lo.var(), hi.var()]), 1e-12 * max(x.var(), 1e-300))
    for _ in range(iterations):
        logp = -0.5 * (x[:, None] - mu) ** 2 / var - 0.5 * np.log(2 * np.pi * var) + np.log(np.maximum(w, 1e-300))
        logp -= logp.max(axis=1, keepdims=True)
        r = np.exp(logp)
        r /= r.sum(axis=1, keepdims=True)
        nk = np.maximum(r.sum(axis=0), 1e-12)
        new_mu = (r * x[:, None]).sum(axis=0) / nk
        var = np.maximum((r * (x[:, None] - new_mu) ** 2).sum(axis=0) / nk, 1e-12 * max(x.var(), 1e-300))
        w = nk / x.size
        done = np.max(np.abs(new_mu - mu)) <= tol * (np.abs(mu).max() + 1e-300)
        mu = new_mu
        if done:
            break
    order = np.argsort(mu)
    mu, var, w = mu[order], var[order], w[order]
    grid = np.linspace(mu[0], mu[1], 2049)
    logd = -0.5 * (grid[:, None] - mu) ** 2 / var - 0.5 * np.log(var) + np.log(np.maximum(w, 1e-300))
    above = logd[:, 1] >= logd[:, 0]
    return float(grid[np.argmax(above)]) if above.any() else float(mu[1])


def threshold(sample: np.ndarray, method: str = "rules") -> float:
    """The threshold separating the two classes of ``sample`` (finite values).

    Examples
    --------
    >>> x = np.r_[np.zeros(50), np.ones(50)]
    >>> [round(threshold(x, m), 2) for m in ("rules", "kmeans", "gmm")]
    [0.0, 0.5, 0.5]
    """
    x = np.asarray(sample, dtype=np.float64).ravel()
    if method == "rules":
        return float(threshold_otsu(x))
    if method == "kmeans":
        return float(threshold_isodata(x))
    return _gmm(x)
