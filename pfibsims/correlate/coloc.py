"""Rank correlation and colocalisation as Fiji's Coloc 2 defines it, on an in-memory view.

The definitions follow Coloc 2 (fiji/Colocalisation_Analysis,
``sc.fiji.coloc.algorithms``: PearsonsCorrelation, MandersColocalization,
SpearmanRankCorrelation, KendallTauRankCorrelation, LiICQ,
AutoThresholdRegression, CostesSignificanceTest) and are tested against the
values its own tests assert on its own images (tests/correlate/test_coloc.py).
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from scipy.special import ndtr

from .._engine.smooth import gaussian
from .._xr import check_count, spacing_nm
from ..errors import EstimationWarning, PfibsimsError
from ..units import length_nm
from .moments import Correlation
from .pairs import (
    check_confidence,
    fisher_ci,
    name_of,
    too_few_pairs,
    view_arrays,
)

#: Most Costes randomisations (each is one r of the in-memory view; 10^5 give p to 1e-5).
MAX_ITER = 100_000


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
        raise too_few_pairs("Spearman's rho", n, mask is not None)
    for name, v in ((name_of(xa, "a"), va), (name_of(xb, "b"), vb)):
        if np.ptp(v[valid]) == 0:
            raise PfibsimsError(f"{name}: constant over the {n} valid voxels, so Spearman's rho is undefined")
    import scipy.stats as st  # here: ~20 MB and ~0.5 s that Pearson-only sessions need not load

    res = st.spearmanr(va[valid], vb[valid])
    r = float(res.statistic)
    lo, hi = fisher_ci(r, n, confidence, se_factor=1.06)
    return Correlation(r=r, ci_low=lo, ci_high=hi, p_value=float(res.pvalue), n=n, confidence=confidence,
                       method="spearman", view=view)


# -- colocalisation as Coloc 2 defines it -----------------------------------------------------
@dataclass(frozen=True)
class Colocalisation:
    """Coloc 2's colocalisation statistics of two channels (``float()`` gives ``r``).

    Manders' split coefficients, as Coloc 2 (Fiji) defines them:

    * ``m1``, ``m2``: the thresholded ``tM1 = sum(a_i where b_i >= T_b) /
      sum(a_i)`` and ``tM2 = sum(b_i where a_i >= T_a) / sum(b_i)`` (over the
      valid voxels; Coloc 2 also requires the other channel above zero);
    * ``m1_above_zero``, ``m2_above_zero``: ``M1 = sum(a_i where b_i > 0) /
      sum(a_i)`` and the converse (no threshold);
    * ``m1_both_above``, ``m2_both_above``: the definition pfibsims used
      before (and WCIF's "%Ch1 Int > thresh"): ``sum(a_i where a_i > T_a and
      b_i > T_b) / sum(a_i where a_i > T_a)`` and the converse.

    Correlations: ``r`` (Pearson, all valid pairs), ``pearson_below`` (pairs
    with ``a < T_a`` or ``b < T_b``, about 0 at Costes' thresholds),
    ``pearson_above`` (pairs with ``a > T_a`` or ``b > T_b``), ``spearman``
    with its ``spearman_t = rho sqrt((n - 2) / (1 - rho^2))`` on
    ``spearman_df = n - 2`` degrees of freedom, ``kendall_tau`` (tau-b),
    ``icq`` (Li's intensity correlation quotient: the fraction of voxels with
    ``(a - mean_a)(b - mean_b) >= 0``, minus 0.5).

    Costes' significance test: ``p_value = Phi((r - mean) / std)`` of the
    ``n_iter`` randomised r (Coloc 2's "Costes P-Value": the probability that
    ``r`` is above the randomised ones; high, e.g. > 0.95, means significant;
    NaN, with an EstimationWarning, when one ``psf`` block covers every valid
    voxel, so the shuffle moves nothing);
    ``n_randomised_at_least_r`` counts randomised r within 1e-5 of ``r`` or
    above (Coloc 2's "ratio" is ``n_iter`` over it).
    """

    r: float
    m1: float
    m2: float
    m1_above_zero: float
    m2_above_zero: float
    m1_both_above: float
    m2_both_above: float
    threshold_a: float
    threshold_b: float
    slope: float
    intercept: float
    pearson_below: float
    pearson_above: float
    spearman: float
    spearman_t: float
    spearman_df: int
    kendall_tau: float
    icq: float
    p_value: float
    n_randomised_at_least_r: int
    r_randomised_mean: float
    r_randomised_std: float
    n_iter: int
    psf: tuple[int, ...]
    thresholds: str
    n: int
    seed: int | None
    view: str

    def __float__(self) -> float:
        return float(self.r)


def _dot(x: np.ndarray, y: np.ndarray) -> float:
    """Sum of products of two 1-D arrays, without BLAS (whose threads cost ~50x on a loaded machine)."""
    return float(np.einsum("i,i->", x, y))


def _pearson_fast(a: np.ndarray, b: np.ndarray) -> float:
    """Coloc 2's "fast" Pearson (sums of products); NaN when undefined, as its sanity check.

    The sums are taken about the means (the same r): raw sums of products cancel catastrophically
    when a channel sits on a large offset (r off in the third digit at an offset of 1e8).
    """
    n = a.size
    if n < 2:
        return math.nan
    a, b = a - a.mean(), b - b.mean()
    sa, sb = float(a.sum()), float(b.sum())
    num = _dot(a, b) - sa * sb / n
    den = (_dot(a, a) - sa * sa / n) * (_dot(b, b) - sb * sb / n)
    return num / math.sqrt(den) if den > 0 else math.nan


def _pearson_below(a: np.ndarray, b: np.ndarray, ta: float, tb: float) -> float:
    """Coloc 2's Pearson below its thresholds: the pairs with ``a < T_a`` or ``b < T_b``."""
    below = (a < ta) | (b < tb)
    return _pearson_fast(a[below], b[below])


def _pearson_above(a: np.ndarray, b: np.ndarray, ta: float, tb: float) -> float:
    """Coloc 2's Pearson above its thresholds: the pairs with ``a > T_a`` or ``b > T_b``."""
    above = (a > ta) | (b > tb)
    return _pearson_fast(a[above], b[above])


def _orthogonal_regression(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Slope and intercept of the orthogonal (total least squares) regression of b on a, as Coloc 2."""
    va, vb = a.var(ddof=1), b.var(ddof=1)
    cov = float(((a - a.mean()) * (b - b.mean())).sum()) / (a.size - 1)
    m = (vb - va + math.sqrt((vb - va) ** 2 + 4 * cov * cov)) / (2 * cov) if cov else math.nan
    return m, float(b.mean()) - m * float(a.mean())


def _java_round(x: float) -> float:
    return math.floor(x + 0.5)


def _costes_thresholds(a: np.ndarray, b: np.ndarray, method: str, dtype: np.dtype) -> tuple[float, float, float, float]:
    """Coloc 2's AutoThresholdRegression: (T_a, T_b, slope, intercept), with its warning "thresholds too low".

    Walks a threshold ``t`` along the regression line, on the channel it leans
    to (``a`` if ``|slope| < 1``), down from that channel's maximum, until
    Pearson's r of the pairs below (``a < T_a or b < T_b``) drops to 0:
    ``"bisection"`` halves the step (starting at the channel's mid-range,
    until the step is below one unit), ``"costes"`` steps down one unit at a
    time (until r < 1e-4 or r rises). The last evaluated pair is returned.
    Integer data: unit 1, thresholds rounded half up and clamped to the
    dtype's range, exactly as Coloc 2 (whose stepper stops below 1: signed
    data with negative values walk on to their minimum); float data: no
    rounding, unit = 1/255 of the channel's range. As Coloc 2, an
    :class:`EstimationWarning` when a threshold (rounded, before clamping to
    the dtype) falls below its channel's lowest value.
    """
    m, b0 = _orthogonal_regression(a, b)
    if not math.isfinite(m) or m == 0:
        warnings.warn("a, b: no correlation, so Costes' thresholds are the maxima", EstimationWarning, stacklevel=4)
        return float(a.max()), float(b.max()), m, b0
    on_a = -1 < m < 1
    x = a if on_a else b
    lo_x, hi_x = float(x.min()), float(x.max())
    integer = np.issubdtype(dtype, np.integer)
    unit = 1.0 if integer else max(hi_x - lo_x, 1e-300) / 255
    info = np.iinfo(dtype) if integer else None
    raw = [math.inf, math.inf]  # the last thresholds before clamping, which Coloc 2 compares with the data

    def thresholds(t: float) -> tuple[float, float]:
        ta, tb = (t, t * m + b0) if on_a else ((t - b0) / m, t)
        if integer:
            raw[:] = _java_round(ta), _java_round(tb)
            ta = min(max(raw[0], info.min), info.max)
            tb = min(max(raw[1], info.min), info.max)
        else:
            raw[:] = ta, tb
        return ta, tb

    ta, tb = float(a.max()), float(b.max())  # Coloc 2's values if the walk takes no step
    if method == "bisection":
        t, last = abs(hi_x + lo_x) * 0.5, hi_x
        step = abs(t - last)
        for _ in range(101):
            if step < unit:
                break
            ta, tb = thresholds(t)
            r = _pearson_below(a, b, ta, tb)
            last = t
            if r < 0:
                t += step * 0.5
            elif r > 0:
                t -= step * 0.5
            step = abs(t - last)  # NaN or 0: the step vanishes and the walk ends, as Coloc 2's
    else:
        t, current = hi_x, 1.0
        stop = min(1.0, lo_x + 1.0) if integer else lo_x + unit  # Coloc 2's t < 1, unless the data go below 0
        while True:
            ta, tb = thresholds(t)
            r = _pearson_below(a, b, ta, tb)
            previous, current = current, r
            t -= unit
            if t < stop or r < 1e-4 or r > previous:
                break
    if raw[0] < a.min() or raw[1] < b.min():  # Coloc 2's warning "thresholds too low"
        warnings.warn(f"thresholds: Costes' thresholds ({ta:.6g}, {tb:.6g}) fall below the data (minima {a.min():.6g}, "
                      f"{b.min():.6g}): no positive threshold was found, so the thresholded results (tM1, tM2, "
                      "pearson_below/above) are meaningless (Coloc 2: 'thresholds too low')", EstimationWarning, stacklevel=4)
    return float(ta), float(tb), float(m), float(b0)


def _manders(a: np.ndarray, b: np.ndarray, ta: float, tb: float) -> dict[str, float]:
    sa, sb = float(a.sum()), float(b.sum())
    above_a, above_b = a > ta, b > tb
    both = above_a & above_b
    saa, sbb = float(a[above_a].sum()), float(b[above_b].sum())

    def frac(num: float, den: float) -> float:
        return num / den if den else math.nan

    return {
        "m1": frac(float(a[(b > 0) & (b >= tb)].sum()), sa),
        "m2": frac(float(b[(a > 0) & (a >= ta)].sum()), sb),
        "m1_above_zero": frac(float(a[b > 0].sum()), sa),
        "m2_above_zero": frac(float(b[a > 0].sum()), sb),
        "m1_both_above": frac(float(a[both].sum()), saa),
        "m2_both_above": frac(float(b[both].sum()), sbb),
    }


def _ranks(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    n = a.size
    import scipy.stats as st

    rho = float(st.spearmanr(a, b).statistic)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = rho * math.sqrt((n - 2) / (1 - rho * rho)) if abs(rho) < 1 else math.copysign(math.inf, rho)
    tau = float(st.kendalltau(a, b, variant="b").statistic)
    prod = (a.mean() - a) * (b.mean() - b)
    icq = float(np.count_nonzero(prod >= 0)) / n - 0.5
    return {"spearman": rho, "spearman_t": t, "spearman_df": n - 2, "kendall_tau": tau, "icq": icq}


def _psf_voxels(psf: Any, x: xr.DataArray, view_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Block edge and smoothing sigma per dim, in voxels of the view: an int, one per dim, or a length."""
    if isinstance(psf, numbers.Integral) and not isinstance(psf, bool):
        out = (int(psf),) * x.ndim
    elif isinstance(psf, (tuple, list)) and all(isinstance(p, numbers.Integral) and not isinstance(p, bool) for p in psf):
        out = tuple(int(p) for p in psf)
    else:
        w = length_nm(psf, name="psf")
        step = [math.ceil(n / v) for n, v in zip(x.shape, view_shape, strict=True)]  # the view's thinning
        out = tuple(1 if not s > 0 else max(1, round(w / (s * k))) for s, k in zip(spacing_nm(x, "a"), step, strict=True))
    if len(out) != x.ndim or any(p < 1 for p in out):
        raise PfibsimsError(f"psf: expected a positive number of voxels, {x.ndim} of them, or a length such as '250 nm', got {psf!r}")
    return out


def _shuffle_blocks(x: np.ndarray, block: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Coloc 2's block shuffle: tile with ``block`` (the last, partial blocks completed by mirroring), permute, crop."""
    shape = x.shape
    counts = [-(-n // s) for n, s in zip(shape, block, strict=True)]
    pad = [(0, c * s - n) for c, s, n in zip(counts, block, shape, strict=True)]
    for ax, (_, p) in enumerate(pad):  # mirror without repeating the edge, as imglib2's mirror-single
        if p:
            width = [(0, 0)] * x.ndim
            width[ax] = (0, p)
            x = np.pad(x, width, mode="reflect" if shape[ax] > 1 else "edge")
    nd = x.ndim
    inter = [v for c, s in zip(counts, block, strict=True) for v in (c, s)]
    blocks = x.reshape(inter).transpose(*range(0, 2 * nd, 2), *range(1, 2 * nd, 2)).reshape(-1, *block)
    blocks = blocks[rng.permutation(blocks.shape[0])]
    order = [i for pair in zip(range(nd), range(nd, 2 * nd), strict=True) for i in pair]
    out = blocks.reshape(*counts, *block).transpose(*order).reshape([c * s for c, s in zip(counts, block, strict=True)])
    return out[tuple(slice(0, n) for n in shape)]


def _one_block(valid: np.ndarray, block: tuple[int, ...]) -> bool:
    """True if the valid voxels' bounding box fits in one block (a shuffle of one block is no randomisation)."""
    return all(int(i.max()) - int(i.min()) < s for i, s in zip(np.nonzero(valid), block, strict=True))


def _costes_randomised(va, vb, valid, psf, n_iter, rng) -> np.ndarray:
    """r of B with A block-shuffled (blocks of ``psf``, over the valid voxels' bounding box, zero
    outside it) and smoothed by a Gaussian of sigma ``psf``, over the valid voxels, as Coloc 2's
    CostesSignificanceTest; NaNs move with their blocks and carry no weight in the smoothing."""
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(valid))
    rs = np.empty(n_iter)
    b_ok = vb[valid]
    for i in range(n_iter):
        shuffled = np.zeros_like(va)
        shuffled[box] = _shuffle_blocks(va[box], psf, rng)
        rs[i] = _pearson_fast(gaussian(shuffled, psf)[valid], b_ok)
    return rs


def colocalisation(
    a: Any,
    b: Any,
    *,
    thresholds: Any = "bisection",
    n_iter: int = 100,
    psf: Any = 3,
    seed: int | None = 0,
    mask: Any = None,
    max_voxels: int = 1 << 24,
) -> Colocalisation:
    """Colocalisation statistics as Fiji's Coloc 2 computes them, in 3-D.

    What Coloc 2 reports, with its definitions (see :class:`Colocalisation`
    for every field): Pearson's r (all pairs, below and above the
    thresholds), Manders' M1/M2 above zero and thresholded tM1/tM2 (``m1``,
    ``m2``), Spearman's rho with its t-statistic, Kendall's tau-b, Li's ICQ,
    Costes' automatic thresholds and Costes' significance test.

    Works on an in-memory view: the whole volume if it has at most
    ``max_voxels`` voxels, otherwise every k-th slice along the first dim
    (stated in ``result.view``). The thresholds take ~log2(range) passes
    over the view ("bisection") or up to one per intensity unit ("costes"),
    the test ``n_iter`` shuffles and smoothings.

    Parameters
    ----------
    a, b : xarray.DataArray
        Channels on one grid (Coloc 2's channel 1 and 2).
    thresholds : "bisection", "costes" or (float, float)
        Coloc 2's threshold regression (see :func:`_costes_thresholds`):
        ``"bisection"`` (the implementation Coloc 2's own tests use, few
        passes) or ``"costes"`` (Coloc 2's dialog default, one intensity unit
        a step); or given thresholds ``(T_a, T_b)``.
    n_iter : int
        Randomisations of Costes' test (Coloc 2's dialog default: 10); 0
        skips it.
    psf : int, sequence of int or length
        Costes' block edge and smoothing sigma, in voxels per dim (Coloc 2's
        default 3), or a length (``"250 nm"``, converted per axis). The
        smoothing is pfibsims' one Gaussian (truncated at 4 sigma, nearest
        edges; Coloc 2's imglib2 Gaussian truncates at 3 sigma and mirrors
        the edges: no difference that a randomised test can see).
    seed : int or None
        Seed of the shuffling.
    mask : boolean DataArray or array, optional
        Voxels to include (Coloc 2's mask); NaN/inf pairs are always left out.
    max_voxels : int
        Size of the in-memory view.

    Returns
    -------
    Colocalisation

    Warns
    -----
    EstimationWarning
        As Coloc 2 ("thresholds too low"), when an automatic threshold falls
        below its channel's lowest value: the thresholded results are then
        meaningless.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> rng = np.random.default_rng(1)
    >>> base = np.kron(rng.random((1, 16, 16)), np.ones((1, 4, 4)))
    >>> a = xr.DataArray(base, dims=("z", "y", "x"))
    >>> b = a + 0.1 * rng.random((1, 64, 64))  # colocalised everywhere: Costes' thresholds would fall below the data
    >>> c = colocalisation(a, b, n_iter=20, thresholds=(0.5, 0.5))
    >>> c.m1 > 0.5, c.p_value > 0.95, -0.5 <= c.icq <= 0.5
    (True, True, True)
    """
    n_iter = check_count(n_iter, "n_iter", minimum=0, maximum=MAX_ITER, example=100)
    if seed is not None:
        seed = check_count(seed, "seed", minimum=0, maximum=2**63 - 1, example=0)
    va, vb, valid, view, xa, xb = view_arrays(a, b, mask, check_count(max_voxels, "max_voxels", example=1 << 24))
    n = int(valid.sum())
    if n < 3:
        raise too_few_pairs("colocalisation", n, mask is not None)
    av, bv = va[valid], vb[valid]
    for name, v in ((name_of(xa, "a"), av), (name_of(xb, "b"), bv)):
        if np.ptp(v) == 0:  # r is undefined, and a p-value of it would be a confident answer to nothing
            raise PfibsimsError(f"{name}: constant ({float(v[0]):.6g}) over the {n} valid voxels, so r and its Costes p-value are undefined")
    r = _pearson_fast(av, bv)
    dtype = np.result_type(xa.dtype, xb.dtype)
    if isinstance(thresholds, str) and thresholds in ("bisection", "costes"):
        ta, tb, slope, intercept = _costes_thresholds(av, bv, thresholds, dtype)
        method = thresholds
    else:
        try:
            ta, tb = (float(t) for t in thresholds)
        except (TypeError, ValueError):
            ta = tb = math.nan
        if not (math.isfinite(ta) and math.isfinite(tb)):  # NaN: every comparison false, tM2 = 0
            raise PfibsimsError(f"thresholds: expected 'bisection', 'costes' or (threshold_a, threshold_b), two finite "
                                f"numbers, got {thresholds!r}")
        slope = intercept = math.nan
        method = "given"
    below, above = _pearson_below(av, bv, ta, tb), _pearson_above(av, bv, ta, tb)
    block = _psf_voxels(psf, xa, va.shape)
    rs = np.array([])
    if n_iter and _one_block(valid, block):
        warnings.warn(f"psf: one block of {block} voxels covers the valid voxels, so Costes' shuffle moves nothing "
                      "and its p-value is undefined (NaN); give a smaller psf", EstimationWarning, stacklevel=2)
    elif n_iter:
        rs = _costes_randomised(va, vb, valid, block, int(n_iter), np.random.default_rng(seed))
    p = math.nan
    if rs.size > 1 and np.isfinite(rs).all():
        p = float(np.clip(ndtr((r - rs.mean()) / rs.std(ddof=1)), 0.0, 1.0)) if rs.std(ddof=1) > 0 else float(r > rs.mean())
    return Colocalisation(
        r=r, **_manders(av, bv, ta, tb), threshold_a=float(ta), threshold_b=float(tb), slope=float(slope),
        intercept=float(intercept), pearson_below=below, pearson_above=above, **_ranks(av, bv), p_value=p,
        n_randomised_at_least_r=int(np.count_nonzero(rs - r > -1e-5)),
        r_randomised_mean=float(rs.mean()) if rs.size else math.nan,
        r_randomised_std=float(rs.std(ddof=1)) if rs.size > 1 else math.nan, n_iter=int(n_iter), psf=block,
        thresholds=method, n=n, seed=seed, view=view,
    )
