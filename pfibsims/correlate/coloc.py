"""Rank correlation and colocalisation (Manders, Costes) on an in-memory view."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.stats as st

from .._xr import check_count
from ..errors import EstimationWarning, PfibsimsError
from .moments import Correlation
from .pairs import (
    check_confidence,
    fisher_ci,
    name_of,
    view_arrays,
)

#: Most Costes randomisations (each is one r of the in-memory view; 10^5 give p to 1e-5).
MAX_ITER = 100_000


@dataclass(frozen=True)
class Colocalisation:
    """Manders coefficients at Costes thresholds, with Costes' significance test.

    ``m1``: fraction of A's intensity (above ``threshold_a``) in voxels where
    B is above ``threshold_b``; ``m2`` the converse. ``r`` is Pearson's r of
    all valid pairs, ``r_below`` that of the pairs below either threshold
    (about 0 at Costes' thresholds). ``p_value`` is the fraction of
    ``n_iter`` block-shuffled copies of A (blocks of ``block`` voxels) whose
    r with B reaches ``r``, as ``(1 + count) / (1 + n_iter)``. ``float()``
    gives ``r``.
    """

    r: float
    m1: float
    m2: float
    threshold_a: float
    threshold_b: float
    slope: float
    intercept: float
    r_below: float
    p_value: float
    r_randomised_mean: float
    r_randomised_std: float
    n_iter: int
    block: tuple[int, ...]
    n: int
    seed: int | None
    view: str

    def __float__(self) -> float:
        return float(self.r)


def spearman(a: Any, b: Any, *, mask: Any = None, confidence: float = 0.95, max_voxels: int = 1 << 24) -> Correlation:
    """Spearman's rank correlation of two channels, with a confidence interval.

    Ranks need every value at once, so this works on an in-memory view: the
    whole volume if it has at most ``max_voxels`` voxels, otherwise every
    k-th slice along the first dim (stated in ``result.view``).

    Returns
    -------
    Correlation
        ``r`` and ``p_value`` as ``scipy.stats.spearmanr``; the interval by
        the Fisher z-transformation with the Fieller et al. (1957) variance
        ``1.06 / (n - 3)``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> a = xr.DataArray(np.array([1.0, 2, 3, 4, 5, np.nan]), dims="x")
    >>> rho = spearman(a, a ** 3)
    >>> round(float(rho), 12), rho.n
    (1.0, 5)
    """
    confidence = check_confidence(confidence)
    va, vb, valid, view, xa, xb = view_arrays(a, b, mask, check_count(max_voxels, "max_voxels", example=1 << 24))
    n = int(valid.sum())
    if n < 3:
        raise PfibsimsError(f"a, b: Spearman's rho needs at least 3 valid voxel pairs, found {n}")
    for name, v in ((name_of(xa, "a"), va), (name_of(xb, "b"), vb)):
        if np.ptp(v[valid]) == 0:
            raise PfibsimsError(f"{name}: constant over the {n} valid voxels, so Spearman's rho is undefined")
    res = st.spearmanr(va[valid], vb[valid])
    r = float(res.statistic)
    lo, hi = fisher_ci(r, n, confidence, se_factor=1.06)
    return Correlation(r=r, ci_low=lo, ci_high=hi, p_value=float(res.pvalue), n=n, confidence=confidence,
                       method="spearman", view=view)


# -- colocalisation ----------------------------------------------------------
def _r(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 3:
        return math.nan
    dx, dy = x - x.mean(), y - y.mean()
    den = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(dx @ dy) / den if den > 0 else math.nan


def _costes_thresholds(a: np.ndarray, b: np.ndarray, iterations: int = 40) -> tuple[float, float, float, float, float]:
    """Costes' thresholds: along the orthogonal regression line, the highest where r below them <= 0."""
    ma, mb = a.mean(), b.mean()
    va, vb = a.var(), b.var()
    cab = float(((a - ma) * (b - mb)).mean())
    if cab <= 0:
        warnings.warn("a, b: no positive correlation, so Costes' thresholds are set to the maxima",
                      EstimationWarning, stacklevel=3)
        return float(a.max()), float(b.max()), math.nan, math.nan, _r(a, b)
    slope = (vb - va + math.sqrt((vb - va) ** 2 + 4 * cab * cab)) / (2 * cab)
    intercept = mb - slope * ma
    lo, hi = float(a.min()), float(a.max())
    r_lo = math.nan
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        below = (a <= mid) | (b <= slope * mid + intercept)
        r = _r(a[below], b[below])
        if r > 0:
            hi = mid
        else:
            lo, r_lo = mid, r
    return lo, slope * lo + intercept, slope, intercept, r_lo


def _block_shuffle_index(shape: tuple[int, ...], block: tuple[int, ...]) -> tuple[tuple[slice, ...], tuple[int, ...]]:
    counts = tuple(n // s for n, s in zip(shape, block, strict=False))
    return tuple(slice(0, c * s) for c, s in zip(counts, block, strict=False)), counts


def _shuffled(x: np.ndarray, block: tuple[int, ...], counts: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    nd = x.ndim
    inter = []
    for c, s in zip(counts, block, strict=False):
        inter += [c, s]
    blocks = x.reshape(inter).transpose(*range(0, 2 * nd, 2), *range(1, 2 * nd, 2))
    flat = blocks.reshape(-1, *block)
    flat = flat[rng.permutation(flat.shape[0])]
    back = flat.reshape(*counts, *block).transpose(*[i for pair in zip(range(nd), range(nd, 2 * nd), strict=False) for i in pair])
    return back.reshape(x.shape)


def colocalisation(
    a: Any,
    b: Any,
    *,
    thresholds: Any = "costes",
    n_iter: int = 100,
    block: Any = None,
    seed: int | None = 0,
    mask: Any = None,
    max_voxels: int = 1 << 24,
) -> Colocalisation:
    """Manders M1/M2 at Costes' thresholds and Costes' randomisation p-value.

    What Fiji's Coloc 2 reports, in 3-D. Works on an in-memory view: the
    whole volume if it has at most ``max_voxels`` voxels, otherwise every
    k-th slice along the first dim (stated in ``result.view``). Costes'
    threshold search takes about 40 passes over that view, the test
    ``n_iter`` more.

    Parameters
    ----------
    a, b : xarray.DataArray
        Channels on one grid.
    thresholds : "costes" or (float, float)
        ``"costes"``: along the orthogonal regression line of b on a, the
        highest thresholds at which Pearson's r of the pairs below either
        threshold is <= 0 (Costes et al. 2004), found by bisection; or given
        thresholds.
    n_iter : int
        Randomisations for the p-value (0 skips the test).
    block : int or tuple of int, optional
        Shuffled block size in voxels per dim (about the resolution: blocks
        keep the spatial autocorrelation). Default 4 voxels per in-plane dim
        and 1 along ``z``.
    seed : int or None
        Seed of the shuffling (``numpy.random.default_rng``).
    mask : boolean DataArray or array, optional
        Voxels to include.
    max_voxels : int
        Size of the in-memory view.

    Returns
    -------
    Colocalisation

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> rng = np.random.default_rng(1)
    >>> base = rng.random((1, 32, 32))
    >>> a = xr.DataArray(base, dims=("z", "y", "x"))
    >>> c = colocalisation(a, a + 0.1 * rng.random((1, 32, 32)), n_iter=20)
    >>> round(c.m1, 2) > 0.5, c.p_value < 0.1
    (True, True)
    """
    n_iter = check_count(n_iter, "n_iter", minimum=0, maximum=MAX_ITER, example=100)
    if seed is not None:
        seed = check_count(seed, "seed", minimum=0, maximum=2**63 - 1, example=0)
    va, vb, valid, view, xa, xb = view_arrays(a, b, mask, check_count(max_voxels, "max_voxels", example=1 << 24))
    n = int(valid.sum())
    if n < 3:
        raise PfibsimsError(f"a, b: colocalisation needs at least 3 valid voxel pairs, found {n}")
    av, bv = va[valid], vb[valid]
    for name, v in ((name_of(xa, "a"), av), (name_of(xb, "b"), bv)):
        if np.ptp(v) == 0:  # r is undefined, and a p-value of it would be a confident answer to nothing
            raise PfibsimsError(f"{name}: constant ({float(v[0]):.6g}) over the {n} valid voxels, so r and its Costes p-value are undefined")
    r = _r(av, bv)
    if isinstance(thresholds, str) and thresholds == "costes":
        ta, tb, slope, intercept, r_below = _costes_thresholds(av, bv)
    else:
        try:
            ta, tb = (float(t) for t in thresholds)
        except (TypeError, ValueError):
            raise PfibsimsError(f"thresholds: expected 'costes' or (threshold_a, threshold_b), got {thresholds!r}") from None
        slope = intercept = math.nan
        below = (av <= ta) | (bv <= tb)
        r_below = _r(av[below], bv[below])
    above_a, above_b = av > ta, bv > tb
    both = above_a & above_b
    sa, sb = float(av[above_a].sum()), float(bv[above_b].sum())
    m1 = float(av[both].sum()) / sa if sa else math.nan
    m2 = float(bv[both].sum()) / sb if sb else math.nan
    if block is None:
        block_t = tuple(1 if d == "z" else 4 for d in xa.dims)
    elif isinstance(block, (int, np.integer)):
        block_t = (int(block),) * va.ndim
    else:
        block_t = tuple(int(s) for s in block)
    if len(block_t) != va.ndim or any(s < 1 for s in block_t) or any(s > n_ for s, n_ in zip(block_t, va.shape, strict=False)):
        raise PfibsimsError(f"block: expected {va.ndim} positive block sizes no larger than the view {va.shape}, got {block!r}")
    rs = np.array([])
    if n_iter:
        crop, counts = _block_shuffle_index(va.shape, block_t)
        ca, cb, cv = va[crop], vb[crop], valid[crop]
        rng = np.random.default_rng(seed)
        rs = np.empty(n_iter)
        # shuffle a with its validity, so NaNs move with their blocks
        stacked_valid = cv.astype(np.float64)
        for i in range(n_iter):
            state = rng.bit_generator.state
            sa_ = _shuffled(ca, block_t, counts, rng)
            rng.bit_generator.state = state
            sv = _shuffled(stacked_valid, block_t, counts, rng) > 0
            ok = sv & cv
            rs[i] = _r(sa_[ok], cb[ok])
    p = float((1 + np.sum(rs >= r)) / (1 + n_iter)) if n_iter and not math.isnan(r) else math.nan
    return Colocalisation(
        r=r, m1=m1, m2=m2, threshold_a=float(ta), threshold_b=float(tb), slope=float(slope), intercept=float(intercept),
        r_below=float(r_below), p_value=p, r_randomised_mean=float(rs.mean()) if n_iter else math.nan,
        r_randomised_std=float(rs.std()) if n_iter else math.nan, n_iter=int(n_iter), block=block_t, n=n,
        seed=seed, view=view,
    )
