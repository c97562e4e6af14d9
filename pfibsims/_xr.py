"""The one input layer: what every public function does to its arguments before any work.

Coercion (arrays and one-channel Datasets to a DataArray), dims checks, the
grid of an input, grid agreement of two inputs, masks as aligned boolean dask
arrays.  Every message names the argument, what was expected and what was
found.  Nothing here computes data.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize

from ._engine.views import MAX_PIXELS, block_factor, dask_block_mean
from .errors import DataModelError, DataWarning, GridError, PfibsimsError, UnitsError
from .grid import SPATIAL_DIMS, Grid
from .units import length_nm, ureg

__all__ = [
    "dequantify",
    "as_array",
    "as_counts",
    "check_count",
    "check_not_empty",
    "check_real",
    "infinite_count",
    "warn_infinite",
    "as_stack",
    "ascending",
    "block_mean",
    "as_dataarray",
    "check_dims",
    "check_same_grid",
    "dask_data",
    "is_intensity",
    "mask_data",
    "plane_grid",
    "spacing_nm",
    "spatial_dims",
]


def _quantified(obj: xr.DataArray | xr.Dataset) -> bool:
    import pint

    variables = obj.variables.values() if isinstance(obj, xr.Dataset) else [obj.variable, *obj.coords.values()]
    return any(isinstance(getattr(v, "data", None), pint.Quantity) for v in variables)


def dequantify(obj: Any, name: str) -> Any:
    """``obj`` with pint quantities (pint-xarray's ``.pint.quantify()``) back as numbers with ``units`` attrs.

    Anything else is returned as it is. The units are checked: each must
    parse with :func:`pfibsims.units.parse_unit` (the data model's units).

    Examples
    --------
    >>> import pint_xarray  # noqa: F401
    >>> a = xr.DataArray([1.0, 2.0], dims="x", attrs={"units": "counts"}).pint.quantify()
    >>> dequantify(a, "a").attrs["units"]
    'count'
    """
    if not isinstance(obj, (xr.DataArray, xr.Dataset)) or not _quantified(obj):
        return obj
    out = obj.pint.dequantify()
    variables = out.variables.items() if isinstance(out, xr.Dataset) else [(out.name or name, out.variable), *out.coords.items()]
    for key, var in variables:
        if "units" in var.attrs:
            try:
                ureg.Unit(str(var.attrs["units"]))
            except Exception:
                raise UnitsError(f"{name}: {key} has units {var.attrs['units']!r}, which pfibsims' unit registry does not know") from None
    return out


def as_dataarray(x: Any, name: str, *, one_channel: bool = False) -> xr.DataArray:
    """``x`` as a real-valued DataArray.

    A DataArray is returned as it is (pint quantities dequantified, see
    :func:`dequantify`); with ``one_channel`` a Dataset of exactly
    one channel gives that channel (otherwise every Dataset is refused);
    numpy/dask arrays of 1-3 dims get dims ``(z, y, x)`` (the last ones).

    Examples
    --------
    >>> as_dataarray(np.zeros((2, 3)), "a").dims
    ('y', 'x')
    """
    x = dequantify(x, name)
    if isinstance(x, xr.Dataset):
        if not one_channel or len(x.data_vars) != 1:
            raise DataModelError(
                f"{name}: expected a DataArray (one channel), got a Dataset with channels {list(x.data_vars)}; "
                f"pick one, e.g. {name}['{next(iter(x.data_vars), 'Li6')}']"
            )
        x = next(iter(x.data_vars.values()))
    if isinstance(x, (np.ndarray, da.Array)):
        if not 1 <= x.ndim <= 3:
            raise DataModelError(f"{name}: expected a 1- to 3-D array, got {x.ndim}-D shape {x.shape}")
        x = xr.DataArray(x, dims=SPATIAL_DIMS[3 - x.ndim :])
    if not isinstance(x, xr.DataArray):
        raise DataModelError(f"{name}: expected an xarray DataArray, got {type(x).__name__}")
    check_real(x, name)
    check_not_empty(x, name)
    return x


def check_real(x: Any, name: str) -> None:
    """Raise :class:`PfibsimsError` when a DataArray holds anything but real numbers (complex, strings)."""
    if isinstance(x, xr.DataArray) and x.dtype.kind not in "biuf":
        raise PfibsimsError(f"{name}: expected real numbers, got dtype {x.dtype}")


def check_not_empty(obj: Any, name: str) -> None:
    """Raise :class:`DataModelError` when a DataArray or Dataset has an axis of size 0 (nothing to compute on)."""
    empty = [d for d in obj.dims if obj.sizes[d] == 0]
    if empty:
        raise DataModelError(f"{name}: expected at least one voxel along every axis, found {empty[0]!r} of size 0 (dims {dict(obj.sizes)})")


def check_dims(obj: Any, name: str, dims: tuple[str, ...]) -> None:
    """Raise :class:`DataModelError` unless ``obj`` (a DataArray or Dataset) has every one of ``dims``."""
    if not isinstance(obj, (xr.DataArray, xr.Dataset)):
        raise DataModelError(f"{name}: expected an xarray DataArray or Dataset, got {type(obj).__name__}")
    missing = [d for d in dims if d not in obj.dims]
    if missing:
        raise DataModelError(f"{name}: expected dims {dims}, found {tuple(obj.dims)} (missing {missing})")


def spatial_dims(obj: Any, name: str) -> tuple[str, ...]:
    """The dims of ``obj``, which must all be spatial and in ``(z, y, x)`` order."""
    if not isinstance(obj, (xr.DataArray, xr.Dataset)):
        raise DataModelError(f"{name}: expected an xarray DataArray or Dataset, got {type(obj).__name__}")
    dims = tuple(d for d in obj.dims if d in SPATIAL_DIMS)
    if not dims or len(dims) != len(obj.dims) or list(dims) != sorted(dims, key=SPATIAL_DIMS.index):
        raise DataModelError(f"{name}: expected dims from (z, y, x) in that order, found {tuple(obj.dims)}")
    return dims


def as_counts(x: Any, name: str) -> xr.DataArray:
    """``x`` as a DataArray of raw SIMS counts on spatial dims (pint-quantified counts dequantified), or a
    UnitsError: what :func:`pfibsims.quantify` and :func:`pfibsims.isotope_ratio` take."""
    x = dequantify(x, name)  # pint-xarray's quantified counts: numbers with a 'units' attr
    if not isinstance(x, xr.DataArray):
        raise DataModelError(f"{name}: expected an xarray DataArray of SIMS counts, got {type(x).__name__}")
    spatial_dims(x, name)
    units = x.attrs.get("units")
    try:
        ok = units is not None and ureg.Unit(units) == ureg.Unit("counts")
    except Exception:
        ok = False
    if not ok:
        raise UnitsError(
            f"{name}: expected raw SIMS counts (attrs units 'counts'), got units {units!r}; normalised or "
            "log-scaled data are not proportional to concentration, quantify the counts"
        )
    return x


def plane_grid(obj: Any, name: str) -> Grid:
    """The in-plane ``(y, x)`` :class:`~pfibsims.grid.Grid` of ``obj``, errors prefixed with ``name``."""
    check_dims(obj, name, ("y", "x"))
    try:
        return Grid.of(obj, dims=("y", "x"))
    except UnitsError as exc:
        raise UnitsError(f"{name}: {exc}") from None
    except GridError as exc:
        raise GridError(f"{name}: {exc}") from None


def coord_nm(coord: xr.DataArray, name: str | None = None) -> np.ndarray:
    """The values of a length coordinate in nm (float64), by its ``units`` attr (nm when it has none).

    Examples
    --------
    >>> coord_nm(xr.DataArray([0.1, 0.16], dims="z", attrs={"units": "um"})).tolist()
    [100.0, 160.0]
    """
    units = coord.attrs.get("units", "nm")
    return np.asarray(coord.values, dtype=np.float64) * length_nm(f"1 {units}", name=f"{name or coord.name}.attrs['units']")


def spacing_nm(obj: Any, name: str, *, uneven_z: str | None = None) -> tuple[float, ...]:
    """Spacing per spatial axis in nm; NaN for a one-voxel axis that does not state its spacing.

    ``uneven_z`` (``"median"`` or ``"mean"``): measured slice depths that
    increase unevenly give that statistic of their steps (the mean is what
    the slices span over their ``n - 1`` steps, the spacing of a regular
    ``z``); by default they raise :class:`GridError`, as any irregular axis.
    """
    out = []
    for d in spatial_dims(obj, name):
        if obj.sizes[d] == 1 and d in obj.coords and "spacing" not in obj.coords[d].attrs:
            out.append(math.nan)  # a single map: no thickness, so volumes are NaN; distances are in-plane
            continue
        try:
            out.append(Grid.of(obj, (d,)).spacing[0])
        except PfibsimsError as exc:
            step = _uneven_step(obj.coords[d], uneven_z) if d == "z" and uneven_z and d in obj.coords else None
            if step is None:
                raise GridError(f"{name}: {exc}") from None
            out.append(step)
    return tuple(out)


def _uneven_step(coord: Any, how: str) -> float | None:
    """The median or mean step (nm) of increasing, finite depths with length units; None for any other ``z``."""
    units = coord.attrs.get("units")
    try:
        z = np.asarray(coord.values, dtype=np.float64) * length_nm(f"1 {units}", name="z.attrs['units']")
    except (PfibsimsError, TypeError, ValueError):
        return None
    steps = np.diff(z)
    if units is None or steps.size == 0 or not (np.isfinite(steps).all() and (steps > 0).all()):
        return None
    return float(np.median(steps)) if how == "median" else float((z[-1] - z[0]) / steps.size)


def ascending(obj: Any, dims: tuple[str, ...] = SPATIAL_DIMS) -> tuple[Any, tuple[str, ...]]:
    """``obj`` with every spatial axis (of ``dims``) whose coordinate decreases reversed (a lazy view), and those axes.

    Image rows are often stored top down with a stage ``y`` that grows
    upwards: the data model keeps coordinates increasing, so such an axis
    is reversed (data and coordinate together; no interpolation). Axes that
    are neither increasing nor decreasing are left for ``validate`` to
    report.

    Examples
    --------
    >>> a = xr.DataArray([[1, 2], [3, 4]], dims=("y", "x"), coords={"y": [10.0, 0.0], "x": [0.0, 10.0]})
    >>> b, flipped = ascending(a)
    >>> flipped, b.y.values.tolist(), b.values.tolist()
    (('y',), [0.0, 10.0], [[3, 4], [1, 2]])
    """
    if not isinstance(obj, (xr.DataArray, xr.Dataset)):  # not xarray: left for the caller's checks to name
        return obj, ()
    flipped = tuple(
        d for d in dims
        if d in obj.dims and d in obj.coords and obj.sizes[d] > 1 and obj.coords[d].dtype.kind in "iuf"
        and bool(np.all(np.diff(np.asarray(obj.coords[d].values, dtype=np.float64)) < 0))
    )
    if not flipped:
        return obj, ()
    return obj.isel({d: slice(None, None, -1) for d in flipped}), flipped


def as_stack(ds: Any) -> tuple[Any, bool]:
    """A map without a ``z`` dim as a stack of one slice (``z`` 0 nm, or its scalar ``z``), and whether it was one.

    Examples
    --------
    >>> m = xr.Dataset({"Zr_La": (("y", "x"), np.ones((2, 3)))})
    >>> s, was_map = as_stack(m)
    >>> dict(s.sizes), was_map, s.z.attrs["units"]
    ({'z': 1, 'y': 2, 'x': 3}, True, 'nm')
    """
    if not isinstance(ds, (xr.Dataset, xr.DataArray)) or "z" in ds.dims:
        return ds, False
    if "z" in ds.coords:  # a slice taken with isel(z=k): its depth is a scalar coordinate
        out = ds.expand_dims("z")
    else:
        out = ds.expand_dims(z=[0.0])
        out["z"].attrs["units"] = "nm"
    spatial = [d for d in ("z", "y", "x") if d in out.dims]
    return out.transpose(*spatial, ...), True


def is_intensity(var: xr.DataArray) -> bool:
    """A variable of measured values (numeric), not a label volume (CF ``flag_values``, e.g. ``phase``) nor a
    mask (bool): what statistics, normalisation and correlation take as channels.

    Examples
    --------
    >>> is_intensity(xr.DataArray([1.0, 2.0])), is_intensity(xr.DataArray([True])), is_intensity(
    ...     xr.DataArray([0, 1], attrs={"flag_values": [0, 1]}))
    (True, False, False)
    """
    return var.dtype.kind in "iuf" and "flag_values" not in var.attrs


def as_array(x: Any) -> Any:
    """A dask array as it is, anything else as a numpy array."""
    return x if isinstance(x, da.Array) else np.asarray(x)


def dask_data(x: xr.DataArray) -> da.Array:
    """The data of ``x`` as a dask array (a numpy array becomes one chunk, not copied)."""
    data = x.data
    if isinstance(data, da.Array):
        return data
    return da.from_array(data, chunks=data.shape or (), name=f"pfibsims-array-{tokenize(data)}")


def check_count(value: Any, name: str, *, minimum: int = 1, maximum: int | None = None, example: int = 100) -> int:
    """An integer option (a number of bins, voxels, iterations...) checked to lie in ``[minimum, maximum]``.

    Examples
    --------
    >>> check_count(20, "n_iter", minimum=0)
    20
    >>> check_count(10**9, "n_iter", maximum=10**6)
    Traceback (most recent call last):
    ...
    pfibsims.errors.PfibsimsError: n_iter: expected a whole number from 1 to 1000000 such as 100, got 1000000000
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum or (
        maximum is not None and value > maximum
    ):
        upto = f" to {maximum}" if maximum is not None else " or more"
        raise PfibsimsError(f"{name}: expected a whole number from {minimum}{upto} such as {example}, got {value!r:.60}")
    return int(value)


def infinite_count(x: Any, mask: Any = None) -> Any:
    """How many values of ``x`` (a DataArray or an array; where ``mask``) are +-inf: a lazy 0-d dask array,
    or an int for numpy data.

    Computed with the pass a function makes anyway (``dask.compute`` of both shares the reads).
    """
    data = x.data if isinstance(x, xr.DataArray) else x
    if np.dtype(data.dtype).kind != "f":
        return 0
    if isinstance(data, da.Array) or isinstance(mask, da.Array):
        hit = da.isinf(data if isinstance(data, da.Array) else dask_data(x))
        return (hit if mask is None else hit & mask).sum()
    hit = np.isinf(data)
    return int((hit if mask is None else hit & np.asarray(mask)).sum())


def warn_infinite(counts: Sequence[Any], names: Sequence[str], step: str) -> None:
    """Warn (:class:`~pfibsims.errors.DataWarning`) naming how many inf values ``step`` left out of each input.

    The warning points at the first caller outside pfibsims.
    """
    for n, name in zip(counts, names, strict=True):
        if int(n):
            warnings.warn(
                f"{step}: {name} has {int(n)} inf value(s); inf is not a measurement, so they were left out "
                "as NaN (no data) is; replace them (data.where(np.isfinite(data))) to silence this",
                DataWarning, stacklevel=_user_level(),
            )


def _user_level() -> int:
    """The ``stacklevel`` of the first frame outside the pfibsims package, seen from ``warnings.warn``'s caller."""
    import os
    import sys

    root = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(2), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(root + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def check_same_grid(a: xr.DataArray, b: xr.DataArray, name: str = "b", ref: str = "a") -> None:
    """Raise :class:`GridError` unless ``b`` has the dims, shape and coordinates of ``a``.

    Coordinates agree when they differ by less than a millionth of the spacing.
    """
    if a.dims != b.dims or a.shape != b.shape:
        raise GridError(
            f"{name}: expected the grid of {ref} (dims {a.dims}, shape {a.shape}), got dims {b.dims}, "
            f"shape {b.shape}; resample one onto the other first, e.g. pfibsims.resample({name}, onto={ref})"
        )
    for d in a.dims:
        if d not in a.coords or d not in b.coords:
            continue
        ca, cb = np.asarray(a.coords[d].values), np.asarray(b.coords[d].values)
        same_units = a.coords[d].attrs.get("units") == b.coords[d].attrs.get("units")
        if ca.dtype.kind in "iuf" and cb.dtype.kind in "iuf" and same_units:
            tol = 1e-6 * (np.abs(np.diff(ca)).min() if ca.size > 1 else max(1.0, abs(float(ca[0]))))
            if not np.allclose(ca, cb, rtol=0, atol=tol):
                raise GridError(
                    f"{name}: expected the {d} coordinates of {ref}, got coordinates differing by up to "
                    f"{np.abs(ca - cb).max():.6g} {a.coords[d].attrs.get('units', '')}; resample "
                    f"{name} onto {ref} first"
                )


def mask_data(mask: Any, like: xr.DataArray, name: str = "mask") -> da.Array | None:
    """``mask`` (or ``None``) as a boolean dask array aligned with ``like``, broadcast over missing dims."""
    if mask is None:
        return None
    if isinstance(mask, xr.DataArray):
        extra = [d for d in mask.dims if d not in like.dims]
        if extra:
            raise GridError(f"{name}: expected dims among {like.dims}, got {mask.dims}")
        if mask.dtype != bool:
            raise PfibsimsError(f"{name}: expected booleans (True = include), got dtype {mask.dtype}")
        for d in mask.dims:
            if mask.sizes[d] != like.sizes[d]:
                raise GridError(f"{name}: expected {like.sizes[d]} along {d} as the data, got {mask.sizes[d]}")
        mask = mask.variable.set_dims(dict(like.sizes)).transpose(*like.dims).data
    else:
        mask = mask if isinstance(mask, da.Array) else np.asarray(mask)
        if mask.dtype != bool:
            raise PfibsimsError(f"{name}: expected booleans (True = include), got dtype {mask.dtype}")
        if mask.shape != like.shape:
            raise GridError(f"{name}: expected shape {like.shape} as the data, got {mask.shape}")
    if not isinstance(mask, da.Array):
        mask = da.from_array(np.ascontiguousarray(mask), chunks=mask.shape, name=f"pfibsims-mask-{tokenize(mask)}")
    return mask


# -- reduced views ---------------------------------------------------------------
def _coord_means(c: xr.DataArray, f: int) -> np.ndarray:
    n = c.size // f * f
    return np.asarray(c.values[:n], dtype=np.float64).reshape(-1, f).mean(axis=1)


def block_mean(obj: Any, max_pixels: int = MAX_PIXELS) -> Any:
    """``f x f`` in-plane block means (float32, lazy with dask data) of a DataArray or Dataset with
    ``y`` and ``x``; ``obj`` itself when it has at most ``max_pixels`` pixels a slice.

    Trailing pixels that do not fill a block are dropped; coordinates are block-centre means (nm),
    their ``spacing`` attribute is updated; the attributes of the variables are kept. Dask data are
    reduced chunk by chunk as they are (no re-chunking to multiples of ``f``): each chunk averages
    the blocks that start in it, reading ``f - 1`` pixels of its neighbour.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> a = xr.DataArray(np.arange(16.0).reshape(4, 4), dims=("y", "x"),
    ...                  coords={d: (d, [5.0, 15, 25, 35], {"units": "nm"}) for d in ("y", "x")})
    >>> v = block_mean(a, max_pixels=4)
    >>> v.values.tolist(), v.y.values.tolist()
    ([[2.5, 4.5], [10.5, 12.5]], [10.0, 30.0])
    """
    if not isinstance(obj, (xr.DataArray, xr.Dataset)) or "y" not in obj.dims or "x" not in obj.dims:
        return obj
    ny, nx = obj.sizes["y"], obj.sizes["x"]
    f = block_factor(ny, nx, max_pixels)
    if f == 1:
        return obj
    fy, fx = min(f, ny), min(f, nx)
    if fy != fx:  # a field thinner than a block: plain coarsen
        return _finish(obj, obj.astype(np.float32).coarsen(y=fy, x=fx, boundary="trim").mean(), f)
    coords = {d: (d, _coord_means(obj[d], f)) for d in ("y", "x") if d in obj.coords}

    def reduce(v: xr.DataArray) -> xr.DataArray:
        if "y" not in v.dims or "x" not in v.dims:
            return v
        axes = (v.dims.index("y"), v.dims.index("x"))
        if isinstance(v.data, da.Array):
            data = dask_block_mean(v.data, f, axes)
        else:
            data = v.coarsen(y=f, x=f, boundary="trim").mean().astype(np.float32).data
        keep = {k: c for k, c in v.coords.items() if "y" not in c.dims and "x" not in c.dims}
        return xr.DataArray(data, dims=v.dims, coords={**keep, **coords}, attrs=v.attrs, name=v.name)

    out = reduce(obj) if isinstance(obj, xr.DataArray) else obj.map(reduce, keep_attrs=True)
    return _finish(obj, out, f)


def _finish(obj: Any, out: Any, f: int) -> Any:
    for d in ("y", "x"):
        spacing = float(Grid.of(obj, dims=(d,)).spacing[0]) * f
        out[d].attrs = {**obj[d].attrs, "spacing": f"{spacing!r} nm"}
    if isinstance(obj, xr.Dataset):
        for name in out.data_vars:
            out[name].attrs = dict(obj[name].attrs)
    out.attrs = dict(obj.attrs)
    return out
