"""Covariance (eq. 3 of Sun et al. 2024), Pearson's r and the per-voxel covariance map, in one pass."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize
from scipy.special import betainc

from .._engine.reduce import Plan, evaluate
from .._xr import warn_infinite
from ..dataset import record
from ..errors import PfibsimsError
from ..normalization import infinite_reduction
from .pairs import (
    check_confidence,
    cov_of,
    fisher_ci,
    is_lazy,
    moments_reduction,
    name_of,
    pair_inputs,
    pair_moments,
    product_units,
    too_few_pairs,
)

#: Smallest mean square deviation whose sums keep float64's precision: subnormal squares (below
#: ``finfo.tiny``) round to absolute steps, which stay below ``eps`` of the sums above ``tiny / eps``.
_UNDERFLOW = float(np.finfo(np.float64).tiny / np.finfo(np.float64).eps)


# -- results -----------------------------------------------------------------
@dataclass(frozen=True)
class Correlation:
    """A correlation coefficient with its confidence interval.

    ``float(result)`` is ``r``. ``ci_low``/``ci_high`` bound ``r`` at
    ``confidence`` by the Fisher z-transformation; ``p_value`` is two-sided
    for ``r = 0``; ``n`` counts the voxel pairs used.  For Pearson the
    moments are kept too (covariance by eq. 3, means, standard deviations,
    all in the channels' units).
    """

    r: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    confidence: float = 0.95
    method: str = "pearson"
    covariance: float = math.nan
    mean_a: float = math.nan
    mean_b: float = math.nan
    std_a: float = math.nan
    std_b: float = math.nan
    view: str = "all voxels"

    def __float__(self) -> float:
        return float(self.r)


# -- covariance and correlation ---------------------------------------------
def covariance(a: Any, b: Any, *, mask: Any = None) -> xr.DataArray:
    """Sample covariance of two channels (eq. 3, ``n - 1`` denominator), one pass.

    Parameters
    ----------
    a, b : xarray.DataArray
        Channels on one grid (same dims, shape and coordinates).
    mask : boolean DataArray or array, optional
        Voxels to include (True); NaN/inf pairs are always left out.

    Returns
    -------
    xarray.DataArray
        0-d, lazy when the inputs are (``float(c)`` or ``c.compute()``
        evaluates it), in the product of the channels' units; coordinate
        ``n``: the number of voxel pairs. NaN when ``n < 2``.

    Notes
    -----
    Each chunk contributes its count, means, sums of squared deviations and
    co-deviations; partials are merged exactly (Chan et al.), so the result
    equals ``numpy.cov`` in float64 to rounding, whatever the chunking.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> a = xr.DataArray(np.array([1.0, 2, 3, 4]), dims="x")
    >>> b = xr.DataArray(np.array([2.0, 1, 4, np.nan]), dims="x")
    >>> c = covariance(a, b)
    >>> float(c), int(c.n)
    (1.0, 3)
    """
    xa, xb, a_, b_, m = pair_inputs(a, b, mask)
    mom = pair_moments(a_, b_, m)
    value = da.map_blocks(cov_of, mom, drop_axis=0, dtype=np.float64, meta=np.empty((), np.float64),
                          name=f"pfibsims-covariance-{tokenize(mom)}")
    n = mom[0].astype(np.int64)
    if not is_lazy(xa, xb):
        value, n = da.compute(value, n)
    out = xr.DataArray(value, coords={"n": ((), n)}, name=f"cov({name_of(xa, 'a')}, {name_of(xb, 'b')})")
    units = product_units(xa, xb)
    out.attrs = {"long_name": "sample covariance (eq. 3, n - 1)", **({"units": units} if units else {})}
    return out


def _correlation_from_moments(mom: np.ndarray, names: tuple[str, str], confidence: float, view: str,
                              masked: bool = False) -> Correlation:
    n, ma, mb, m2a, m2b, cab = (float(v) for v in mom)
    n = int(n)
    if n < 3:
        raise too_few_pairs("Pearson r", n, masked)
    for name, m2, mean in ((names[0], m2a, ma), (names[1], m2b, mb)):
        if not math.isfinite(m2):  # squares of deviations above ~1e154 overflow (they are not a constant channel)
            raise PfibsimsError(f"{name}: the sum of squared deviations over the {n} valid voxels overflows float64 "
                                f"(mean {mean:.6g}); scale the data down (r does not change)")
        # constant: the moments are sums about a value of the data, so a constant channel has m2 = 0 up to
        # the rounding of merged means (a few ulps); a spread above 1e-12 of the mean is data (scipy: 1e-13)
        if not m2 > 1e-24 * n * max(mean * mean, 1e-300):
            raise PfibsimsError(
                f"{name}: constant over the {n} valid voxels (value {mean:.6g}), so Pearson r is undefined"
            )
        # squares of deviations below ~1e-154 are subnormal and lose digits (the product m2a * m2b was 0)
        if m2 / n < _UNDERFLOW:
            raise PfibsimsError(f"{name}: the squared deviations over the {n} valid voxels underflow float64 (mean "
                                f"square deviation {m2 / n:.3g}); scale the data up (r does not change)")
    r = float(np.clip(cab / (math.sqrt(m2a) * math.sqrt(m2b)), -1.0, 1.0))  # m2a * m2b may overflow
    lo, hi = fisher_ci(r, n, confidence)
    # exact two-sided p-value of r under independence (as scipy.stats.pearsonr): (r + 1) / 2 follows
    # Beta(n/2 - 1, n/2 - 1), symmetric, so P(|r'| >= |r|) = 2 I_{(1 - |r|)/2}(n/2 - 1, n/2 - 1)
    p = float(2 * betainc(n / 2 - 1, n / 2 - 1, (1 - abs(r)) / 2))
    return Correlation(r=r, ci_low=lo, ci_high=hi, p_value=min(p, 1.0), n=n, confidence=confidence,
                       method="pearson", covariance=cab / (n - 1), mean_a=ma, mean_b=mb,
                       std_a=math.sqrt(m2a / (n - 1)), std_b=math.sqrt(m2b / (n - 1)), view=view)


def pearson(a: Any, b: Any, *, mask: Any = None, confidence: float = 0.95) -> Correlation:
    """Pearson's r of two channels with a confidence interval, in one pass.

    Parameters
    ----------
    a, b : xarray.DataArray
        Channels on one grid.
    mask : boolean DataArray or array, optional
        Voxels to include; NaN/inf pairs are always left out.
    confidence : float
        Level of the interval (Fisher z-transformation, as
        ``scipy.stats.pearsonr(...).confidence_interval``).

    Returns
    -------
    Correlation
        ``r``, ``ci_low``, ``ci_high``, ``p_value`` (exact, as
        ``scipy.stats.pearsonr``), ``n``, and the covariance (eq. 3), means
        and standard deviations. Computed when called: one pass over the
        chunks, a result of six numbers.

    Raises
    ------
    PfibsimsError
        When fewer than 3 pairs are valid (naming ``mask`` when it selects
        none), a channel is constant, or its squared deviations overflow or
        underflow float64 (scale the data; r does not change).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> a = xr.DataArray(np.array([1.0, 2, 3, 4, 5]), dims="x")
    >>> r = pearson(a, a ** 2)
    >>> round(float(r), 4), r.n, (round(r.ci_low, 3), round(r.ci_high, 3))
    (0.9811, 5, (0.735, 0.999))
    """
    (out,) = evaluate(pearson_plan(a, b, mask=mask, confidence=confidence))
    return out


def pearson_plan(a: Any, b: Any, *, mask: Any = None, confidence: float = 0.95) -> Plan:
    """:func:`pearson` as a plan of :func:`pfibsims._engine.reduce.evaluate` (one pass).

    The inputs are checked at once; the pass runs when the plan is evaluated,
    together with the passes of other plans.
    """
    confidence = check_confidence(confidence)
    xa, xb, a_, b_, m = pair_inputs(a, b, mask)
    return _pearson_plan(a_, b_, m, (name_of(xa, "a"), name_of(xb, "b")), confidence)


def _pearson_plan(a_: Any, b_: Any, m: Any, names: tuple[str, str], confidence: float) -> Plan:
    mom, inf_a, inf_b = yield [moments_reduction(a_, b_, m), infinite_reduction(a_, m), infinite_reduction(b_, m)]
    warn_infinite([int(inf_a[0]), int(inf_b[0])], names, "pearson")
    return _correlation_from_moments(mom, names, confidence, "all voxels", masked=m is not None)


# -- maps --------------------------------------------------------------------
def covariance_map(a: Any, b: Any, *, center: Any = "mean", mask: Any = None) -> xr.DataArray:
    """The per-voxel product ``(A - mu)(B - nu)`` (eq. 3 before the sum; Fig. 6c).

    Parameters
    ----------
    a, b : xarray.DataArray
        Channels on one grid.
    center : "mean", None or (float, float)
        ``"mean"``: subtract the means of the valid pairs (computed at call
        time, one pass, two numbers; ``mask`` restricts them); ``None``: the
        plain product ``A * B`` (the "Li x Zr" map); a pair of numbers:
        subtract those.
    mask : boolean DataArray or array, optional
        Voxels the means are taken over (the map covers every voxel).

    Returns
    -------
    xarray.DataArray
        Lazy when the inputs are; NaN where either channel is; units the
        product of the channels' units. Its sum over valid voxels divided by
        ``n - 1`` is :func:`covariance`. ``pfibsims.to_uint8(m)`` gives the
        8-bit map of Fig. 6c.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> a = xr.DataArray(np.array([1.0, 2, 3]), dims="x")
    >>> covariance_map(a, 2 * a).values.tolist()
    [2.0, 0.0, 2.0]
    """
    xa, xb, a_, b_, m = pair_inputs(a, b, mask)
    if isinstance(center, str) and center == "mean":
        mom = pair_moments(a_, b_, m).compute()
        if mom[0] == 0:
            raise too_few_pairs("center='mean'", 0, m is not None, need=1)
        ca, cb = float(mom[1]), float(mom[2])
    elif center is None:
        ca = cb = 0.0
    else:
        try:
            ca, cb = (float(v) for v in center)
        except (TypeError, ValueError):
            raise PfibsimsError(f"center: expected 'mean', None or (center_a, center_b), got {center!r}") from None
    fa = xa.astype(np.float64)
    fb = xb.astype(np.float64)
    out = (fa - ca) * (fb - cb)
    out = out.where(np.isfinite(fa) & np.isfinite(fb))
    out.name = f"{name_of(xa, 'a')}_x_{name_of(xb, 'b')}"
    units = product_units(xa, xb)
    out.attrs = {"long_name": f"({name_of(xa, 'a')} - {ca:.6g}) x ({name_of(xb, 'b')} - {cb:.6g})",
                 **({"units": units} if units else {})}
    return record(out, "covariance_map", center=[ca, cb])
