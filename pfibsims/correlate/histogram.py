"""The joint ("correlation") histogram of two channels, lazily, in one pass."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from .._engine import moments as _moments
from .._engine.reduce import Plan, Reduction, reduce_blocks
from ..dataset import record
from ..errors import PfibsimsError
from ..normalization import (
    bin_coords,
    check_bins,
    check_range,
    ranges_plan,
    uniform_edges,
    value_ranges,
)
from .pairs import (
    is_lazy,
    name_of,
    pair_inputs,
)


def joint_histogram(a: Any, b: Any, *, bins: Any = 256, range: Any = None, mask: Any = None) -> xr.DataArray:
    """2-D histogram of voxel pairs (the "correlation histogram"), one lazy pass.

    Parameters
    ----------
    a, b : xarray.DataArray
        Channels on one grid; pairs with a NaN/inf are not counted.
    bins : int or (int, int)
        Equal bins along a and along b.
    range : ((low_a, high_a), (low_b, high_b)), optional
        Outer edges, as ``numpy.histogram2d``: values outside are not
        counted, the upper edge is in the last bin. By default each
        channel's finite minimum and maximum (within ``mask``), computed at
        call time.
    mask : boolean DataArray or array, optional
        Voxels to count.

    Returns
    -------
    xarray.DataArray
        int64 counts with dims ``("a", "b")`` (lazy when the inputs are);
        coordinates ``a``/``b`` (bin centres), ``a_lower``, ``a_upper``,
        ``b_lower``, ``b_upper`` in each channel's units, whose ``long_name``
        is the channel's name.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> a = xr.DataArray(np.array([0.0, 0, 1, 1]), dims="x")
    >>> joint_histogram(a, 1 - a, bins=2).values.tolist()
    [[0, 2], [2, 0]]
    """
    xa, xb, a_, b_, m, (na, nb), ranges = _inputs(a, b, bins, range, mask)
    if ranges is None:
        ranges = value_ranges([xa, xb], m, ["a", "b"], "joint_histogram")  # one pass over both
    counts = reduce_blocks([_counts(a_, b_, m, ranges, (na, nb))], name="pfibsims-joint-histogram")[0]
    if not is_lazy(xa, xb):
        counts = counts.compute()
    return _result(counts, xa, xb, ranges, (na, nb), mask is not None)


def joint_histogram_plan(a: Any, b: Any, *, bins: Any = 256, range: Any = None, mask: Any = None) -> Plan:
    """:func:`joint_histogram` as a plan of :func:`pfibsims._engine.reduce.evaluate`, computed.

    Without ``range``, pass 1 takes both channels' ranges and pass 2 counts;
    both ride along with the passes of other plans evaluated together.  The
    inputs are checked at once.
    """
    return _joint_plan(*_inputs(a, b, bins, range, mask), mask is not None)


def _joint_plan(xa, xb, a_, b_, m, bins, ranges, masked) -> Plan:
    if ranges is None:
        ranges = yield from ranges_plan([xa, xb], m, ["a", "b"], "joint_histogram")
    (counts,) = yield [_counts(a_, b_, m, ranges, bins)]
    return _result(counts, xa, xb, ranges, bins, masked)


def _edges(ranges: list[tuple[float, float]], bins: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    return uniform_edges(*ranges[0], bins[0]), uniform_edges(*ranges[1], bins[1])


def _counts(a_: Any, b_: Any, m: Any, ranges: list[tuple[float, float]], bins: tuple[int, int]) -> Reduction:
    """The joint counts as a reduction of the one statistics engine."""
    ea, eb = _edges(ranges, bins)
    return Reduction(_moments.joint_histogram_block, (a_, b_, m), tuple(bins), _moments.sum_blocks, np.int64,
                     {"range_a": (float(ea[0]), float(ea[-1])), "range_b": (float(eb[0]), float(eb[-1])),
                      "bins": tuple(bins)})


def _result(counts: Any, xa: xr.DataArray, xb: xr.DataArray, ranges: list[tuple[float, float]],
            bins: tuple[int, int], masked: bool) -> xr.DataArray:
    ea, eb = _edges(ranges, bins)
    coords = {**bin_coords(ea, "a", xa.attrs.get("units"), name_of(xa, "a")),
              **bin_coords(eb, "b", xb.attrs.get("units"), name_of(xb, "b"))}
    out = xr.DataArray(counts, dims=("a", "b"), coords=coords, name="count",
                       attrs={"units": "1", "long_name": f"voxel pairs per bin of ({name_of(xa, 'a')}, {name_of(xb, 'b')})"})
    return record(out, "joint_histogram", bins=list(bins), range=[[ea[0], ea[-1]], [eb[0], eb[-1]]], masked=masked)


def _inputs(a: Any, b: Any, bins: Any, range: Any, mask: Any) -> tuple:
    """The checked inputs: DataArrays, dask data, mask, ``(na, nb)`` and the ranges (None: from the data)."""
    xa, xb, a_, b_, m = pair_inputs(a, b, mask)
    if isinstance(bins, (tuple, list)):
        if len(bins) != 2:
            raise PfibsimsError(f"bins: expected an int or (bins_a, bins_b), got {bins!r}")
        na = check_bins(bins[0], "bins[0]")
        nb = check_bins(bins[1], "bins[1]", cells=na)
    else:
        na = check_bins(bins)
        nb = check_bins(bins, cells=na)
    ranges = None
    if range is not None:
        try:
            ra_, rb_ = range
        except (TypeError, ValueError):
            raise PfibsimsError(f"range: expected ((low_a, high_a), (low_b, high_b)), got {range!r}") from None
        ranges = [check_range(ra_, "range[0]"), check_range(rb_, "range[1]")]
    return xa, xb, a_, b_, m, (na, nb), ranges
