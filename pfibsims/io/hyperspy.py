"""HyperSpy bridge: pfibsims channels as calibrated HyperSpy signals, and back.

A channel ``(z, y, x)`` is a :class:`hyperspy.signals.Signal2D` whose signal
axes are ``y`` and ``x`` and whose navigation axis is ``z``; each axis keeps
its name, scale (voxel spacing), offset (first voxel centre) and units
(``nm``); slices at uneven depths give a non-uniform ``z`` axis. A lazy
(dask) channel becomes a lazy signal; nothing is computed either way. The
channel's units go to ``metadata.Signal.quantity`` (``"Li6 (counts)"``), its
name to ``metadata.General.title``, an EDS line to ``metadata.Sample``
(``elements``, ``xray_lines``, as exSpy reads them), and every pfibsims attr
(the dataset's history, the channel attrs) to
``original_metadata.pfibsims``, from which :func:`from_hyperspy` restores
them.

HyperSpy is an optional dependency: ``pip install 'pfibsims[hyperspy]'``.
Its own ``.zspy`` format (RosettaSciIO's zspy plugin) needs ``zarr < 3``,
which pfibsims does not run with; save pfibsims data with
:func:`pfibsims.save` and exchange signals in memory through this bridge,
or in HyperSpy's ``.hspy`` (HDF5) format.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import xarray as xr

from .._xr import coord_nm, dequantify
from ..dataset import channel_attrs, history_attrs, jsonable, validate
from ..errors import DataModelError, GridError, UnitsError
from ..grid import SPATIAL_DIMS, Grid
from ..units import LENGTH_UNIT, length_nm, parse_unit

__all__ = ["from_hyperspy", "to_hyperspy"]

_QUANTITY = re.compile(r"^\s*(?P<name>.*?)\s*\((?P<units>[^()]*)\)\s*$")
#: HyperSpy's and RosettaSciIO's spellings of units (``"X-rays (Counts)"``, ``"X-rays (CPS)"``) in the data model's.
_SPELLINGS = {"cps": "counts/s", "a.u.": "1", "au": "1", "arb. units": "1", "arbitrary units": "1"}


def _quantity_units(quantity: str) -> str:
    """The units of ``metadata.Signal.quantity`` (``"X-rays (Counts)"`` -> ``"counts"``; none: ``"1"``)."""
    m = _QUANTITY.match(quantity)
    if not m:
        return "1"
    units = m["units"].strip()
    for candidate in (units, _SPELLINGS.get(units.lower()), units.lower()):  # 'cps' would parse as a frequency
        try:
            if candidate is not None:
                parse_unit(candidate)
                return candidate
        except UnitsError:
            continue
    raise DataModelError(
        f"signal: expected units in metadata.Signal.quantity such as 'Li6 (counts)', found {units!r:.40}; "
        "set s.metadata.Signal.quantity first"
    )


def _hyperspy() -> Any:
    try:
        import hyperspy.api as hs
    except ImportError as exc:
        raise ImportError(
            "to_hyperspy/from_hyperspy: expected HyperSpy (the optional 'hyperspy' extra), found it missing; "
            "install it with pip install 'pfibsims[hyperspy]'"
        ) from exc
    return hs


def _axis(da: xr.DataArray, dim: str) -> dict[str, Any]:
    """One HyperSpy axis in nm: uniform (scale, offset from the dataset's grid) or, for uneven slices, the values."""
    axis: dict[str, Any] = {"name": dim, "units": LENGTH_UNIT, "navigate": dim == "z"}
    try:
        g = Grid.of(da, dims=[dim])
    except GridError:
        if dim != "z":
            raise
        return {**axis, "axis": coord_nm(da[dim], dim)}
    return {**axis, "size": g.shape[0], "offset": g.origin[0], "scale": g.spacing[0]}


def _signal(da: xr.DataArray, name: str, dataset_attrs: dict[str, Any] | None) -> Any:
    import dask.array as dask_array

    hs = _hyperspy()
    validate(da)
    dims = tuple(d for d in SPATIAL_DIMS if d in da.dims)
    if dims not in (("z", "y", "x"), ("y", "x")) or da.dims != dims:
        raise DataModelError(f"{name}: expected dims ('z', 'y', 'x') or ('y', 'x'), found {da.dims}")
    lazy = isinstance(da.data, dask_array.Array)
    s = hs.signals.Signal2D(da.data, axes=[_axis(da, d) for d in dims])
    if lazy:
        s = s.as_lazy()
    s.metadata.General.title = name
    s.metadata.Signal.quantity = f"{name} ({da.attrs['units']})"
    if "line" in da.attrs and "element" in da.attrs:
        s.metadata.set_item("Sample.elements", [da.attrs["element"]])
        s.metadata.set_item("Sample.xray_lines", [f"{da.attrs['element']}_{da.attrs['line']}"])
    coords = {c: {"dims": list(da[c].dims), "values": np.asarray(da[c].values).tolist(),
                  "attrs": jsonable(dict(da[c].attrs), name=c)} for c in da.coords if c not in dims}
    saved = {"name": name, "attrs": json.dumps(jsonable(dict(da.attrs), name=f"{name}.attrs")), "coords": json.dumps(coords)}
    if dataset_attrs is not None:
        saved["dataset_attrs"] = json.dumps(jsonable(dataset_attrs, name="attrs"))
    s.original_metadata.add_dictionary({"pfibsims": saved})
    return s


def to_hyperspy(obj: xr.DataArray | xr.Dataset) -> Any:
    """HyperSpy signal(s) of pfibsims data, calibrated and as lazy as the input.

    Parameters
    ----------
    obj : xarray.DataArray or xarray.Dataset
        One channel (dims ``(z, y, x)`` or ``(y, x)``) or a dataset of them.

    Returns
    -------
    hyperspy.signals.Signal2D or list of them
        One signal for a DataArray; for a Dataset, one per data variable,
        in order (as ``hyperspy.api.load`` returns a file's signals).
        ``LazySignal2D`` when the data are dask arrays (nothing is computed).

    Raises
    ------
    DataModelError
        When the input does not follow the data model (units, dims).
    ImportError
        When HyperSpy is not installed.

    Examples
    --------
    >>> import numpy as np, pfibsims as pfs
    >>> ds = pfs.stack({"Li6": np.ones((2, 3, 4))}, pixel_size="72 nm", slice_thickness="60 nm")
    >>> s = to_hyperspy(ds.Li6)
    >>> [(a.name, a.scale, a.offset, a.units) for a in s.axes_manager.signal_axes]
    [('x', 72.0, 36.0, 'nm'), ('y', 72.0, 36.0, 'nm')]
    """
    obj = dequantify(obj, "obj")  # pint-xarray's quantities: numbers with 'units' attrs
    if isinstance(obj, xr.Dataset):
        validate(obj)
        return [_signal(obj[n], str(n), dict(obj.attrs)) for n in obj.data_vars]
    if isinstance(obj, xr.DataArray):
        return _signal(obj, str(obj.name or "signal"), None)
    raise DataModelError(f"obj: expected an xarray DataArray or Dataset, got {type(obj).__name__}")


def _units_nm(axis: Any, which: str) -> float:
    """Factor from the axis' units to nm (``"um"``, ``"µm"``, ``"nm"``...)."""
    units = str(axis.units)
    named = isinstance(axis.name, str) and axis.name != "<undefined>"
    where = f"'{axis.name}'" if named else f"at array index {axis.index_in_array}"
    try:
        return length_nm(f"1 {units.replace('µ', 'u')}", name=f"signal axis {where} units")
    except UnitsError:
        raise UnitsError(
            f"signal: expected the {which} axis {where} calibrated in a length (e.g. 'nm'), found units {units!r}; "
            "set its .units and .scale in s.axes_manager first"
        ) from None


def _from_signal(s: Any) -> tuple[str, xr.DataArray, dict[str, Any]]:
    am = s.axes_manager
    axes = sorted(am._axes, key=lambda a: a.index_in_array)
    if len(am.signal_axes) != 2 or len(am.navigation_axes) > 1:
        raise DataModelError(
            f"signal: expected a 2-D signal (an image) with at most one navigation axis (the slices), "
            f"found {len(am.signal_axes)} signal and {len(am.navigation_axes)} navigation axes ({am.signal_shape[::-1]} | "
            f"{am.navigation_shape[::-1]}); use s.transpose(signal_axes=2) or index the extra axes first"
        )
    dims = SPATIAL_DIMS[-len(axes):]
    coords: dict[str, Any] = {}
    for d, a in zip(dims, axes, strict=True):
        f = _units_nm(a, "navigation" if a.navigate else "signal")
        if a.is_uniform:
            if not a.scale > 0:
                raise DataModelError(
                    f"signal: expected a positive scale on axis {a.name!r}, found {a.scale!r} {a.units}; "
                    "reverse that axis first with a step of -1 (s.isig[::-1] for the first signal axis), "
                    "which makes its scale positive"
                )
            coords.update(Grid((a.size,), (a.scale * f,), (a.offset * f,), (d,)).xr_coords())
        elif d == "z":
            coords[d] = (d, np.asarray(a.axis, dtype=np.float64) * f, {"units": LENGTH_UNIT, "axis": "Z"})
        else:
            raise DataModelError(f"signal: expected uniform signal axes (a regular pixel grid), found axis '{a.name}' non-uniform")
    saved = s.original_metadata.get_item("pfibsims") if s.original_metadata.has_item("pfibsims") else None
    saved = saved.as_dictionary() if saved is not None else {}
    title = str(s.metadata.get_item("General.title", "") or "")
    name = saved.get("name") or (title if title else "signal")
    quantity = str(s.metadata.get_item("Signal.quantity", "") or "")
    attrs = json.loads(saved["attrs"]) if "attrs" in saved else channel_attrs(name, _quantity_units(quantity))
    if "flag_values" in attrs and np.dtype(s.data.dtype).kind in "iu":  # CF: flags typed like the labels (JSON: a list)
        attrs["flag_values"] = np.asarray(attrs["flag_values"], dtype=s.data.dtype)
    out = xr.DataArray(s.data, dims=dims, coords=coords, attrs=attrs, name=name)
    if "z" not in dims:
        out = out.expand_dims("z").assign_coords(z=("z", [0.0], {"units": LENGTH_UNIT, "axis": "Z"}))
    for c, info in json.loads(saved.get("coords", "{}")).items():
        out = out.assign_coords({c: (tuple(info["dims"]), np.asarray(info["values"]), info["attrs"])})
    dataset_attrs = json.loads(saved["dataset_attrs"]) if "dataset_attrs" in saved else {"modality": "image", **history_attrs([])}
    return name, out, dataset_attrs


def from_hyperspy(signal: Any) -> xr.DataArray | xr.Dataset:
    """pfibsims data from HyperSpy signal(s): axes, scale, offset, units and laziness kept.

    An axis' values (``offset + scale * i``) are pixel centres in HyperSpy
    (its images span ``axis[0] - scale / 2`` to ``axis[-1] + scale / 2``),
    as pfibsims' coordinates are: they become the coordinates unchanged.
    For a file that states no origin (a Bruker ``.bcf``) RosettaSciIO gives
    ``offset = 0`` (the first pixel's centre at 0) where pfibsims' readers
    put the first pixel's corner at 0, so the same file read both ways is
    half a pixel apart; ``assign_coords`` moves one onto the other.

    Parameters
    ----------
    signal : hyperspy signal or list of signals
        A 2-D signal (one image) with at most one navigation axis (the
        slices), axes calibrated in lengths (``nm``, ``um``, ``µm``); a list
        of such signals on one grid (as ``hyperspy.api.load`` returns).

    Returns
    -------
    xarray.DataArray or xarray.Dataset
        A DataArray ``(z, y, x)`` in nm (``z`` of length 1 for a single
        image) for one signal, a Dataset for a list. Lazy signals give dask
        arrays. Signals made by :func:`to_hyperspy` come back with their
        attrs, coordinates and history.

    Raises
    ------
    UnitsError
        When an axis is not calibrated in a length (HyperSpy's default
        ``<undefined>`` units).
    DataModelError
        When a signal is not an image stack or the signals disagree in grid.

    Examples
    --------
    >>> import hyperspy.api as hs, numpy as np
    >>> s = hs.signals.Signal2D(np.ones((4, 5)))
    >>> for a in s.axes_manager.signal_axes:
    ...     a.units, a.scale = "um", 0.0814
    >>> da = from_hyperspy(s)
    >>> da.dims, float(da.x[1] - da.x[0]), da.x.attrs["units"]
    (('z', 'y', 'x'), 81.4, 'nm')
    """
    if isinstance(signal, (list, tuple)):
        if not signal:
            raise DataModelError("signal: expected at least one HyperSpy signal, got an empty list")
        parts = [_from_signal(s) for s in signal]
        names = [n for n, _, _ in parts]
        if len(set(names)) < len(names):
            raise DataModelError(f"signal: expected signals of distinct titles (the channel names), found {names}")
        grids = {n: tuple(tuple(np.round(a[d].values, 6)) for d in SPATIAL_DIMS) for n, a, _ in parts}
        if len(set(grids.values())) > 1:
            raise DataModelError(f"signal: expected signals on one grid, found different axes among {list(grids)}")
        ds = xr.Dataset({n: a for n, a, _ in parts}, attrs=parts[0][2])
        return validate(ds)
    return validate(_from_signal(signal)[1])
