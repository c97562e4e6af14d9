"""Per-phase statistics of a channel: voxel count, volume, fraction and distribution."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import xarray as xr

from .._engine.grouped import grouped_plan
from .._engine.reduce import Plan, evaluate
from .._xr import as_array, ascending, check_real, check_same_grid, dequantify, spacing_nm, spatial_dims
from ..dataset import history, history_attrs, record
from ..grid import SPATIAL_DIMS
from ..normalization import check_bins
from ..units import length_nm
from .labels import flags, nonnegative

QUANTILES = (0.25, 0.5, 0.75)


# -- statistics --------------------------------------------------------------------
def voxel_volume_um3(obj: xr.DataArray, name: str, *, uneven_z: str) -> float:
    """The volume of one voxel of ``obj`` in um^3.

    The product of the spacings (nm) of its spatial dims (uneven ``z``: the
    ``uneven_z`` step, see :func:`spacing_nm`). A spatial axis that is not a
    dim (a map selected as ``ds.isel(z=k)``) counts with the thickness its
    scalar coordinate records in the attr ``spacing`` (as ``ds.isel(z=[k])``
    would), and NaN when it records none.
    """
    volume = math.prod(spacing_nm(obj, name, uneven_z=uneven_z))
    for d in SPATIAL_DIMS:
        if d in obj.dims:
            continue
        coord = obj.coords.get(d)
        if coord is None or coord.ndim != 0 or "spacing" not in coord.attrs:
            return math.nan
        volume *= length_nm(coord.attrs["spacing"], name=f"{name}.{d}.attrs['spacing']")
    return volume * 1e-9


def _groups(labels: xr.DataArray, values: list[int]) -> tuple[Any, np.ndarray]:
    """The labels as they are (numpy or dask, own dtype) and the label -> phase index table.

    The block kernels of :func:`grouped_statistics` apply the table voxel by
    voxel, so no int64 group array is made (labels outside the table: -1).
    """
    lab, values = nonnegative(as_array(labels.data), values)  # a negative flag value: shifted (int64)
    lut = np.full(max(values) + 1, -1, dtype=np.int64)
    lut[values] = np.arange(len(values))
    return lab, lut


def stats_vars(stats: dict[str, np.ndarray], dim: str, units: Any) -> dict[str, tuple]:
    q = stats["quantiles"]
    u = {} if units is None else {"units": units}
    return {
        "count": (dim, stats["count"], {"units": "1", "long_name": "voxels with a finite value"}),
        "mean": (dim, stats["mean"], u),
        "std": (dim, stats["std"], {**u, "long_name": "population standard deviation"}),
        "min": (dim, stats["min"], u),
        "q25": (dim, q[:, 0], {**u, "long_name": "first quartile"}),
        "median": (dim, q[:, 1], u),
        "q75": (dim, q[:, 2], {**u, "long_name": "third quartile"}),
        "max": (dim, stats["max"], u),
    }


def phase_statistics(da: xr.DataArray, labels: xr.DataArray, *, bins: int = 4096) -> xr.Dataset:
    """Per phase: voxel count, volume, fraction, and the distribution of a channel.

    Computes: two streaming passes over the channel and the labels (chunk by
    chunk, one ``dask.compute`` each; memory bounded by a chunk): moments,
    minimum and maximum per phase, then a per-phase histogram of ``bins``
    bins between that phase's minimum and maximum. Median and quartiles are
    interpolated in that histogram: within ``(max - min) / bins`` of the
    phase of the sample quantile ``x_(k)``, ``k = ceil(q n)`` (numpy's
    ``method="inverted_cdf"``; between ``x_(k)`` and ``x_(k+1)`` when ``q n``
    is whole), which can differ from numpy's default (linear between order
    statistics) by the gap between neighbouring values, e.g. half a count
    for the median of an even number of integers; mean and std are exact.

    Parameters
    ----------
    da : xarray.DataArray
        The channel (e.g. ``vol.Li6``); non-finite voxels (outside a SIMS
        field) are left out of every statistic.
    labels : xarray.DataArray
        Integer labels on the same grid with CF ``flag_values`` /
        ``flag_meanings`` (from :func:`classify_phases`).
    bins : int
        Histogram bins per phase for the quantiles.

    Returns
    -------
    xarray.Dataset
        Along ``phase`` (the names; coordinate ``label`` the integers):
        ``count`` (voxels with a finite value), ``volume`` (um^3; the
        count times the voxel volume, whose depth at measured, uneven
        slice depths is their mean step, ``(z[-1] - z[0]) / (n - 1)``, so
        that the volumes add up to the run's; a phase's own volume is then
        exact only if it is spread evenly over thick and thin slices; a
        map selected as ``isel(z=k)``: the slice thickness of its scalar
        ``z``, NaN if unknown),
        ``fraction`` (of the counted voxels), ``mean``, ``std`` (population),
        ``min``, ``q25``, ``median``, ``q75``, ``max`` in the channel's units;
        NaN for a phase with no voxel.

    Raises
    ------
    DataModelError
        When ``labels`` lacks the flag attrs or the dims are not spatial.
    GridError
        When ``labels`` is not on the grid of the data.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from pfibsims.dataset import stack
    >>> ds = stack({"Li6": np.arange(8.0).reshape(1, 2, 4)}, pixel_size="100 nm")
    >>> lab = xr.zeros_like(ds.Li6, dtype=np.uint8).where(ds.x < 200, 1).astype(np.uint8)
    >>> lab.attrs.update(flag_values=[0, 1], flag_meanings="matrix LLZTO")
    >>> st = phase_statistics(ds.Li6, lab)
    >>> st["mean"].values.tolist(), st["count"].values.tolist()
    ([2.5, 4.5], [4, 4])
    """
    (out,) = evaluate(phase_statistics_plan(da, labels, bins=bins))
    return out


def phase_statistics_plan(da: xr.DataArray, labels: xr.DataArray, *, bins: int = 4096) -> Plan:
    """:func:`phase_statistics` as a plan of :func:`pfibsims._engine.reduce.evaluate` (two passes).

    The inputs are checked at once (when the plan is made); the passes run
    when it is evaluated, together with the passes of other plans.
    """
    da = dequantify(da, "da")
    labels = dequantify(labels, "labels")
    spatial_dims(da, "da")
    spatial_dims(labels, "labels")
    (da, _), (labels, _) = ascending(da), ascending(labels)  # a decreasing axis: the statistics do not depend on order
    check_real(da, "da")
    values, names = flags(labels)
    bins = check_bins(bins, cells=max(1, len(values)))
    voxel_volume_um3(da, "da", uneven_z="mean")  # the grid of the data (no empty axis) before comparing with it
    check_same_grid(da, labels, name="labels", ref="the data")
    return _phase_statistics_plan(da, labels, values, names, int(bins))


def _phase_statistics_plan(da: xr.DataArray, labels: xr.DataArray, values: list[int], names: list[str],
                           bins: int) -> Plan:
    voxel_um3 = voxel_volume_um3(da, "da", uneven_z="mean")  # measured, uneven depths: their mean step
    groups, lut = _groups(labels, values)
    stats = yield from grouped_plan(as_array(da.data), groups, len(values), bins=bins, quantiles=QUANTILES, lut=lut)
    total = stats["count"].sum()
    data_vars = stats_vars(stats, "phase", da.attrs.get("units"))
    data_vars["volume"] = ("phase", stats["count"] * voxel_um3, {"units": "um**3"})
    data_vars["fraction"] = ("phase", stats["count"] / max(total, 1), {"units": "1"})
    out = xr.Dataset(
        data_vars,
        coords={"phase": ("phase", names), "label": ("phase", np.array(values))},
        attrs={**history_attrs(history(da)), "channel": str(da.name)},
    )
    out = out[["count", "volume", "fraction", "mean", "std", "min", "q25", "median", "q75", "max"]]
    return record(out, "phase_statistics", bins=bins, quantiles="interpolated in per-phase histograms")
