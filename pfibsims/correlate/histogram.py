"""The joint ("correlation") histogram of two channels, lazily, in one pass."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from .._engine import moments as _moments
from .._engine.reduce import block_reduce
from ..dataset import record
from ..errors import PfibsimsError
from ..normalization import bin_coords, check_bins, check_range, uniform_edges, value_ranges
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
    xa, xb, a_, b_, m = pair_inputs(a, b, mask)
    if isinstance(bins, (tuple, list)):
        if len(bins) != 2:
            raise PfibsimsError(f"bins: expected an int or (bins_a, bins_b), got {bins!r}")
        na, nb = check_bins(bins[0]), check_bins(bins[1])
    else:
        na = nb = check_bins(bins)
    if range is None:
        ra, rb = value_ranges([xa, xb], m, ["a", "b"])  # one pass over both
    else:
        try:
            ra_, rb_ = range
        except (TypeError, ValueError):
            raise PfibsimsError(f"range: expected ((low_a, high_a), (low_b, high_b)), got {range!r}") from None
        ra, rb = check_range(ra_, "range[0]"), check_range(rb_, "range[1]")
    ea, eb = uniform_edges(*ra, na), uniform_edges(*rb, nb)
    counts = block_reduce(
        _moments.joint_histogram_block, [a_, b_, m], out_shape=(na, nb), merge=_moments.sum_blocks,
        dtype=np.int64, name="pfibsims-joint-histogram", range_a=(float(ea[0]), float(ea[-1])),
        range_b=(float(eb[0]), float(eb[-1])), bins=(na, nb),
    )
    if not is_lazy(xa, xb):
        counts = counts.compute()
    coords = {**bin_coords(ea, "a", xa.attrs.get("units"), name_of(xa, "a")),
              **bin_coords(eb, "b", xb.attrs.get("units"), name_of(xb, "b"))}
    out = xr.DataArray(counts, dims=("a", "b"), coords=coords, name="count",
                       attrs={"units": "1", "long_name": f"voxel pairs per bin of ({name_of(xa, 'a')}, {name_of(xb, 'b')})"})
    return record(out, "joint_histogram", bins=[na, nb], range=[[ea[0], ea[-1]], [eb[0], eb[-1]]],
                  masked=mask is not None)
