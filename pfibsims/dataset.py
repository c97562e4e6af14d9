"""The pfibsims data model: building datasets, checking them, recording history.

One modality is one ``xarray.Dataset`` with dims ``("z", "y", "x")``; each data
variable is a channel (``Zr_La``, ``Li6``, ``BSE``); coordinates are voxel
centres in nm; channel attrs carry ``units`` and what the channel measures;
dataset attrs carry ``modality``, acquisition settings as pint-parsable
strings, and the steps applied (see :func:`record`), once per dataset:
``history``, a CF string of one line per step, and ``pfibsims:history``,
the records (step, parameters, version, time) as a JSON list; read them with
:func:`history`. Every attr is a string or a number, so ``ds.to_netcdf()``
works on every dataset pfibsims returns.
"""

from __future__ import annotations

import datetime as _dt
import json
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any

import dask.array as da
import numpy as np
import pint
import xarray as xr

from .errors import DataModelError, PfibsimsError, UnitsError
from .grid import SPATIAL_DIMS, Grid
from .units import LENGTH_UNIT, format_quantity, length_nm, lengths_nm, parse_unit, ureg

__all__ = ["HISTORY", "HISTORY_JSON", "channel_attrs", "history", "history_attrs", "jsonable", "record", "stack", "validate",
           "with_depths"]

_EDS = re.compile(r"^(?P<element>[A-Z][a-z]?)_(?P<line>[KLM][a-z0-9]*)$")
_ISOTOPE = re.compile(r"^(?P<element>[A-Z][a-z]?)(?P<mass>\d{1,3})(?P<polarity>[+-]?)$")
#: The CF history attr: one line per step (``"<time> pfibsims <version>: <step>"``).
HISTORY = "history"
#: The attr holding the history records as a JSON list.
HISTORY_JSON = "pfibsims:history"
_DETECTORS = {"BSE", "SE", "SE2", "INLENS", "ETD", "TLD", "ICE", "CBS", "ASB", "SEM"}


def _version() -> str:
    from ._version import __version__

    return __version__


def channel_attrs(name: str, units: str = "counts") -> dict[str, Any]:
    """The attrs the data model gives a channel, from its name.

    ``Zr_La`` is an EDS line (``element``, ``line``), ``Li6`` a SIMS isotope
    (``element``, ``isotope``, ``mass``), ``BSE``/``SE`` an SEM detector.

    Examples
    --------
    >>> channel_attrs("Zr_La")
    {'units': 'counts', 'element': 'Zr', 'line': 'La'}
    >>> channel_attrs("Li6")
    {'units': 'counts', 'element': 'Li', 'isotope': '6Li', 'mass': 6}
    """
    attrs: dict[str, Any] = {"units": units}
    if m := _EDS.match(name):
        attrs.update(element=m["element"], line=m["line"])
    elif m := _ISOTOPE.match(name):
        attrs.update(element=m["element"], isotope=f"{m['mass']}{m['element']}", mass=int(m["mass"]))
        if m["polarity"]:
            attrs["polarity"] = m["polarity"]
    elif name.upper() in _DETECTORS:
        attrs["detector"] = name
    return attrs


def _infer_modality(names: Sequence[str]) -> str | None:
    kinds = set()
    for n in names:
        kinds.add("EDS" if _EDS.match(n) else "SIMS" if _ISOTOPE.match(n) else "SEM" if n.upper() in _DETECTORS else "?")
    return kinds.pop() if len(kinds) == 1 and "?" not in kinds else None


def _magnitude(name: str, data: Any, units: str) -> Any:
    """The numbers of a pint quantity (any registry's) in ``units``; anything else as it is."""
    if not (hasattr(data, "magnitude") and hasattr(data, "units")):
        return data
    try:
        factor = float(ureg.Quantity(1.0, str(data.units)).to(parse_unit(units, name="units")).magnitude)
    except (pint.DimensionalityError, pint.UndefinedUnitError):
        raise UnitsError(
            f"channels['{name}']: expected values in {units!r} (the units argument), got a quantity in {data.units}; "
            "pass units= with its units"
        ) from None
    return data.magnitude if factor == 1.0 else data.magnitude * factor


def _as_3d(name: str, value: Any, units: str = "counts") -> Any:
    """A channel as a 3-D (z, y, x) numpy or dask array (a pint quantity's numbers in ``units``)."""
    if isinstance(value, (list, tuple)):
        slices = [_as_3d(f"{name}[{i}]", v, units) for i, v in enumerate(value)]
        if not slices:
            raise DataModelError(f"channels['{name}']: expected at least one slice, got an empty list")
        shapes = {s.shape[1:] for s in slices}
        if len(shapes) > 1:
            raise DataModelError(f"channels['{name}']: expected slices of one shape, got shapes {sorted(shapes)}")
        lazy = any(isinstance(s, da.Array) for s in slices)
        return da.concatenate(slices, axis=0) if lazy else np.concatenate(slices, axis=0)
    if isinstance(value, xr.DataArray):
        value = value.data
    value = _magnitude(name, value, units)
    arr = value if isinstance(value, da.Array) else np.asarray(value)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise DataModelError(f"channels['{name}']: expected a 2-D map or a 3-D (z, y, x) stack, got {arr.ndim}-D shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise DataModelError(f"channels['{name}']: expected numbers, got dtype {arr.dtype}")
    return arr


def _acquisition_attr(key: str, value: Any) -> Any:
    """Quantities become pint-parsable strings ('30 kV'); others must be JSON-able."""
    if isinstance(value, pint.Quantity):
        return format_quantity(value)
    return jsonable(value, name=f"attrs['{key}']")


def jsonable(value: Any, name: str = "value") -> Any:
    """``value`` as JSON-serialisable plain data (Grids, Affines, quantities, numpy).

    Raises
    ------
    DataModelError
        When a value has no JSON form.
    """
    from .transform import Affine  # transform imports grid only; no cycle at call time

    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, pint.Quantity):
        return format_quantity(value)
    if isinstance(value, Affine):
        return value.to_dict()
    if isinstance(value, Grid):
        return {"type": "Grid", "shape": list(value.shape), "spacing": list(value.spacing),
                "origin": list(value.origin), "dims": list(value.dims), "units": LENGTH_UNIT}
    if isinstance(value, np.ndarray) and value.size <= 4096:
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, f"{name}['{k}']") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, f"{name}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (xr.DataArray, xr.Dataset, da.Array)) or (isinstance(value, np.ndarray)):
        return f"<{type(value).__name__} shape={getattr(value, 'shape', None)}>"
    raise DataModelError(f"{name}: expected a JSON-serialisable value, got {type(value).__name__}")


def stack(
    channels: Mapping[str, Any],
    *,
    pixel_size: Any,
    slice_thickness: Any = None,
    z: Sequence[Any] | None = None,
    total_depth: Any = None,
    origin: Any = None,
    modality: str | None = None,
    units: str = "counts",
    attrs: Mapping[str, Any] | None = None,
    chunks: Any = None,
) -> xr.Dataset:
    """Build a dataset in the pfibsims data model from arrays.

    Parameters
    ----------
    channels : mapping of str to array
        Channel name to a 2-D map, a 3-D ``(z, y, x)`` stack, or a list of 2-D
        slices (numpy or dask). Names follow the data model: ``Zr_La`` (EDS
        element and line), ``Li6`` (SIMS isotope), ``BSE``/``SE`` (SEM).
    pixel_size : length or (y, x) lengths
        In-plane pixel size, e.g. ``"81.4 nm"``; a plain number needs a unit.
    slice_thickness : length, optional
        Distance between slices; slices then sit at ``z0 + i * thickness``.
    z : sequence of lengths, optional
        Measured slice depths (increasing, possibly uneven) instead of
        ``slice_thickness``.
    total_depth : length, optional
        The total milled depth measured at the end of the run (the paper's
        step 6), e.g. ``"2.3 um"`` for 39 slices: alone, the slices are
        ``total_depth / n`` apart; with ``z``, the depths are scaled about
        the first one so that the run spans it (see :func:`with_depths`).
    origin : lengths, optional
        Centre of the first voxel, ``(y, x)`` or ``(z, y, x)``. By default
        the field's corner is at 0: the first centre is half a pixel in.
    modality : str, optional
        ``"EDS"``, ``"SIMS"``, ``"SEM"``; inferred from the channel names if
        they all agree.
    units : str
        Units of the values, ``"counts"`` for raw data.
    attrs : mapping, optional
        Acquisition settings; pint quantities are stored as strings
        (``"30 kV"``).
    chunks : optional
        Dask chunks for the result, per axis ``(z, y, x)`` or by dimension
        name (``{"y": 512}``); arrays given as dask keep their chunks.

    Returns
    -------
    xarray.Dataset
        dims ``(z, y, x)``, float64 coords in nm, channel and dataset attrs and
        an empty ``history``; integer ``slice`` coordinate along ``z``.

    Raises
    ------
    DataModelError
        On empty input, wrong dimensionality, mismatched shapes or slice counts.
    UnitsError
        On a pixel size or thickness that is not a length.

    Examples
    --------
    >>> import numpy as np
    >>> ds = stack({"Zr_La": np.ones((2, 3, 4)), "Co_La": np.zeros((2, 3, 4))},
    ...            pixel_size="81.4 nm", slice_thickness="60 nm")
    >>> ds.attrs["modality"], dict(ds.sizes)
    ('EDS', {'z': 2, 'y': 3, 'x': 4})
    >>> float(ds.x[0]), ds.x.attrs["units"]
    (40.7, 'nm')
    """
    if not isinstance(channels, Mapping) or not channels:
        raise DataModelError(f"channels: expected a non-empty mapping of name to array, got {channels!r:.60}")
    parse_unit(units, name="units")
    arrays = {str(k): _as_3d(str(k), v, units) for k, v in channels.items()}
    shapes = {k: a.shape for k, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        raise DataModelError(f"channels: expected arrays of one shape, got {shapes}")
    nz, ny, nx = next(iter(shapes.values()))
    py, px = lengths_nm(pixel_size, 2, name="pixel_size")
    if py <= 0 or px <= 0:
        raise UnitsError(f"pixel_size: expected positive lengths, got {pixel_size!r}")
    if origin is None:
        origin_yx: tuple[float, ...] = (py / 2, px / 2)
        z0 = 0.0
    else:
        n = len(origin) if isinstance(origin, (list, tuple)) else 0
        if n not in (2, 3):
            raise DataModelError(f"origin: expected (y, x) or (z, y, x) lengths, got {origin!r}")
        vals = lengths_nm(origin, n, name="origin")
        z0, origin_yx = (vals[0], vals[1:]) if n == 3 else (0.0, vals)
    zs, z_attrs = _depths(nz, z0, slice_thickness=slice_thickness, z=z, total_depth=total_depth)
    modality = modality or _infer_modality(list(arrays))
    if modality is None:
        raise DataModelError(f"modality: expected 'EDS', 'SIMS' or 'SEM', got None and channels {list(arrays)} do not tell")
    ds_attrs = {"modality": str(modality)}
    ds_attrs.update({str(k): _acquisition_attr(str(k), v) for k, v in (attrs or {}).items()})
    ds_attrs.update(history_attrs([]))
    grid = Grid((ny, nx), (py, px), origin_yx, ("y", "x"))
    coords: dict[str, Any] = {"z": ("z", zs, z_attrs), **grid.xr_coords(), "slice": ("z", np.arange(nz))}
    data_vars = {}
    for name, arr in arrays.items():
        if chunks is not None:
            arr = _chunked(arr, chunks)
        data_vars[name] = (("z", "y", "x"), arr, channel_attrs(name, units))
    return xr.Dataset(data_vars, coords=coords, attrs=ds_attrs)


def _chunked(arr: Any, chunks: Any) -> da.Array:
    """``arr`` (dims z, y, x) as a dask array in ``chunks``; chunks dask cannot read are a DataModelError naming them.

    A mapping may name the dimensions, as in xarray (``{"y": 512}``); dimensions it leaves out keep
    their chunks (one chunk for an array in memory).
    """
    if isinstance(chunks, Mapping):
        named = [k for k in chunks if isinstance(k, str)]
        absent = [k for k in named if k not in ("z", "y", "x")]
        if absent:
            raise DataModelError(f"chunks: expected dimension names among ['z', 'y', 'x'], got {absent[0]!r}")
        chunks = {("z", "y", "x").index(k) if isinstance(k, str) else k: v for k, v in chunks.items()}
    if isinstance(chunks, (bool, float)) or (isinstance(chunks, numbers.Integral) and chunks < 1 and chunks != -1):
        raise DataModelError(f"chunks: expected a chunk size per axis such as (1, 1024, 1024) or 'auto', got {chunks!r}")
    try:
        out = da.asarray(arr).rechunk(chunks) if isinstance(arr, da.Array) else da.from_array(arr, chunks=chunks)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
        raise DataModelError(
            f"chunks: expected a chunk size per axis such as (1, 1024, 1024) or 'auto', got {chunks!r:.60} ({str(exc)[:80]})"
        ) from None
    if any(c < 1 for c in out.chunksize):
        raise DataModelError(f"chunks: expected positive chunk sizes, got {chunks!r:.60}")
    return out


def _depths(nz: int, z0: float, *, slice_thickness: Any = None, z: Any = None,
            total_depth: Any = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Slice depths (nm) and the ``z`` coordinate attrs from one of the ways a run states them."""
    given = [n for n, v in (("slice_thickness", slice_thickness), ("z", z)) if v is not None]
    if len(given) > 1 or (slice_thickness is not None and total_depth is not None):
        both = ", ".join(given + (["total_depth"] if total_depth is not None else []))
        raise DataModelError(f"{both}: expected one of them (slice_thickness, z or total_depth; z may come with "
                             f"total_depth), got {both}")
    attrs: dict[str, Any] = {"units": LENGTH_UNIT, "axis": "Z"}
    total = None
    if total_depth is not None:
        total = length_nm(total_depth, name="total_depth")
        if not total > 0:
            raise UnitsError(f"total_depth: expected a positive length, got {total_depth!r}")
    if z is not None:
        zs = np.asarray(lengths_nm(z, nz, name="z"), dtype=np.float64)
        if nz > 1 and np.any(np.diff(zs) <= 0):
            raise DataModelError(f"z: expected increasing slice depths, got {zs.tolist()} nm")
        if total is not None and nz > 1:  # scale about the first slice: n slices span n mean thicknesses
            zs = zs[0] + (zs - zs[0]) * (total * (nz - 1) / nz) / (zs[-1] - zs[0])
        if total is not None and nz == 1:
            attrs["spacing"] = f"{total:.12g} {LENGTH_UNIT}"
        return zs, attrs
    if total is not None:
        slice_thickness = total / nz
    if slice_thickness is not None:
        t = length_nm(slice_thickness, default_unit=LENGTH_UNIT, name="slice_thickness")
        if t <= 0:
            raise UnitsError(f"slice_thickness: expected a positive length, got {slice_thickness!r}")
        attrs["spacing"] = f"{t:.12g} {LENGTH_UNIT}"
        return z0 + t * np.arange(nz, dtype=np.float64), attrs
    if nz == 1:
        return np.array([z0]), attrs
    raise DataModelError(
        f"slice_thickness: expected a length (e.g. '60 nm'), z= depths or a total_depth for a stack of {nz} slices, "
        "got none"
    )


def with_depths(ds: Any, *, z: Sequence[Any] | None = None, slice_thickness: Any = None,
                total_depth: Any = None) -> Any:
    """``ds`` (a Dataset or DataArray with ``z``) with new slice depths; data untouched.

    ``z`` (measured depths, increasing, possibly uneven) or
    ``slice_thickness`` (even slices from the first depth) set the depths;
    ``total_depth`` (the milled depth measured at the end of the run, the
    paper's step 6) scales the depths, ``z`` or else those ``ds`` has,
    about the first one so that the ``n`` slices span it: their mean
    thickness becomes ``total_depth / n``, their unevenness is kept.

    Raises
    ------
    DataModelError
        When ``ds`` has no ``z``, or on decreasing depths, or both ``z`` and
        ``slice_thickness``.
    UnitsError
        When a value is not a length.

    Examples
    --------
    >>> import numpy as np
    >>> ds = stack({"Li6": np.zeros((3, 2, 2))}, pixel_size="72 nm", z=["0 nm", "50 nm", "130 nm"])
    >>> with_depths(ds, total_depth="270 nm").z.values.tolist()  # 3 slices, 90 nm on average
    [0.0, 69.23076923076923, 180.0]
    """
    if not isinstance(ds, (xr.Dataset, xr.DataArray)) or "z" not in ds.dims:
        raise DataModelError(f"ds: expected a Dataset or DataArray with a z dim, got {type(ds).__name__}")
    if z is None and slice_thickness is None and total_depth is None:
        raise DataModelError("z, slice_thickness, total_depth: expected one of them, got none")
    z0 = 0.0
    if "z" in ds.coords:
        units = ds.z.attrs.get("units", LENGTH_UNIT)
        have = np.asarray(ds.z.values, dtype=np.float64).reshape(-1) * length_nm(f"1 {units}", name="z.attrs['units']")
        z0 = float(have[0])
        if z is None and slice_thickness is None:
            z = [f"{float(v)!r} {LENGTH_UNIT}" for v in have]
    zs, attrs = _depths(ds.sizes["z"], z0, slice_thickness=slice_thickness, z=z, total_depth=total_depth)
    out = ds.assign_coords(z=("z", zs, attrs))
    return record(out, "with_depths", z=zs.tolist(), total_depth=total_depth, slice_thickness=slice_thickness) \
        if isinstance(out, xr.Dataset) else out


def validate(ds: Any) -> Any:
    """Check a Dataset (or DataArray) against the data model; return it unchanged.

    Checks: spatial dims named and ordered ``z, y, x``; coordinates present,
    float, increasing, regular in-plane, with length units; every channel
    has a pint-parsable ``units``; a Dataset has ``modality`` and a
    ``history`` (see :func:`history`). Nothing is computed.

    Raises
    ------
    DataModelError
        Naming exactly what is wrong, e.g. ``"x: expected a 'units'
        attribute ..."``.

    Examples
    --------
    >>> import numpy as np
    >>> ds = stack({"Li6": np.ones((4, 4))}, pixel_size="72 nm")
    >>> validate(ds) is ds
    True
    """
    if not isinstance(ds, (xr.Dataset, xr.DataArray)):
        raise DataModelError(f"ds: expected an xarray Dataset or DataArray, got {type(ds).__name__}")
    variables = ds.data_vars.items() if isinstance(ds, xr.Dataset) else [(ds.name or "<DataArray>", ds)]
    for name, var in variables:
        spatial = [d for d in var.dims if d in SPATIAL_DIMS]
        if not spatial:
            raise DataModelError(f"{name}: expected spatial dims among {SPATIAL_DIMS}, found {var.dims}")
        if spatial != sorted(spatial, key=SPATIAL_DIMS.index):
            order = tuple(sorted(var.dims, key=lambda d: SPATIAL_DIMS.index(d) if d in SPATIAL_DIMS else -1))
            raise DataModelError(f"{name}: expected dims in the order (z, y, x), found {var.dims}; call .transpose(*{order})")
        if ("y" in var.dims or "x" in var.dims) and var.dims not in (("y", "x"), ("z", "y", "x")):
            raise DataModelError(
                f"{name}: expected dims ('z', 'y', 'x') or ('y', 'x') (an image), found {var.dims}; "
                "rename them, e.g. .rename(a='x')"
            )
        if var.dtype.kind not in "biuf":
            raise DataModelError(f"{name}: expected real numbers (a measurement per voxel), found dtype {var.dtype}")
        units = var.attrs.get("units")
        if units is None:
            raise DataModelError(f"{name}: expected a 'units' attribute (e.g. 'counts'), found none")
        try:
            parse_unit(units, name=f"{name}.attrs['units']")
        except UnitsError as exc:
            raise DataModelError(f"{name}: expected a pint-parsable 'units' attribute ({exc})") from None
    for d in (d for d in SPATIAL_DIMS if d in ds.dims):
        if d not in ds.coords:
            raise DataModelError(f"{d}: expected a coordinate of voxel centres in nm, found none")
        c = ds.coords[d]
        if c.dtype.kind != "f":
            raise DataModelError(f"{d}: expected float coordinates, found dtype {c.dtype}")
        if "units" not in c.attrs:
            raise DataModelError(f"{d}: expected a 'units' attribute (e.g. 'nm'), found none")
        try:
            length_nm(f"1 {c.attrs['units']}", name=f"{d}.attrs['units']")
        except UnitsError as exc:
            raise DataModelError(str(exc)) from None
        if not np.isfinite(c.values).all():
            bad = np.flatnonzero(~np.isfinite(c.values))
            raise DataModelError(f"{d}: expected finite coordinates, found {c.values[bad[0]]} at index {int(bad[0])} ({bad.size} in all)")
        if c.size > 1 and np.any(np.diff(c.values) <= 0):
            raise DataModelError(f"{d}: expected increasing coordinates; use ds.sortby('{d}')")
    try:
        Grid.of(ds, dims=[d for d in ("y", "x") if d in ds.dims])
    except PfibsimsError as exc:
        raise DataModelError(str(exc)) from None
    if isinstance(ds, xr.Dataset):
        if "modality" not in ds.attrs:
            raise DataModelError("attrs: expected a 'modality' entry ('EDS', 'SIMS', 'SEM'), found none")
        if not isinstance(ds.attrs.get(HISTORY), (str, list)):
            raise DataModelError(
                f"attrs: expected a 'history' (a CF string of the steps applied), found {ds.attrs.get(HISTORY)!r:.60}"
            )
    return ds


def history(obj: Any) -> list[dict[str, Any]]:
    """The steps applied to ``obj`` (Dataset, DataArray or attrs mapping), oldest first.

    Each record is ``{"step", "params", "version", "time"}`` (and ``"input"``
    for the steps of an input merged by :func:`pfibsims.fuse`). Reads
    ``pfibsims:history``; a ``history`` list (stores written before it was
    a string) is read as it is.

    Examples
    --------
    >>> import numpy as np
    >>> ds = record(stack({"Li6": np.ones((2, 2))}, pixel_size="72 nm"), "normalize", method="log")
    >>> [(h["step"], h["params"]) for h in history(ds)]
    [('normalize', {'method': 'log'})]
    """
    attrs = obj.attrs if isinstance(obj, (xr.Dataset, xr.DataArray)) else obj if isinstance(obj, Mapping) else {}
    raw = attrs.get(HISTORY_JSON)
    if raw is None:
        legacy = attrs.get(HISTORY)
        return [dict(h) for h in legacy] if isinstance(legacy, list) else []
    try:
        records = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise DataModelError(f"attrs['{HISTORY_JSON}']: expected a JSON list of history records, found {raw!r:.60}") from None
    if not isinstance(records, list) or not all(isinstance(h, dict) for h in records):
        raise DataModelError(f"attrs['{HISTORY_JSON}']: expected a JSON list of history records, found {raw!r:.60}")
    return records


def history_attrs(records: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The two history attrs of ``records``: the CF ``history`` string and the ``pfibsims:history`` JSON.

    Examples
    --------
    >>> history_attrs([{"step": "fuse", "params": {}, "version": "0.1.0", "time": "2026-12-02T10:00:00+00:00"}])["history"]
    '2026-12-02T10:00:00+00:00 pfibsims 0.1.0: fuse'
    """
    records = [dict(h) for h in records]
    lines = [f"{h.get('time', '')} pfibsims {h.get('version', '')}: {h.get('step', '')}"
             + (f" ({h['input']})" if h.get("input") else "") for h in records]
    return {HISTORY: "\n".join(lines), HISTORY_JSON: json.dumps(records, separators=(",", ":"))}


def record(obj: Any, step: str, **params: Any) -> Any:
    """A copy of ``obj`` (Dataset or DataArray) with a history record appended.

    The record is ``{"step", "params", "version", "time"}``; parameters are
    stored as JSON-ready values (quantities as strings, transforms as dicts).
    Data are not copied. See :func:`history`.

    Examples
    --------
    >>> import numpy as np
    >>> ds = record(stack({"Li6": np.ones((2, 2))}, pixel_size="72 nm"), "normalize", method="log")
    >>> history(ds)[-1]["step"], history(ds)[-1]["params"]
    ('normalize', {'method': 'log'})
    >>> ds.attrs["history"]  # the CF form, one line per step
    '... pfibsims ...: normalize'
    """
    if not isinstance(obj, (xr.Dataset, xr.DataArray)):
        raise DataModelError(f"obj: expected an xarray Dataset or DataArray, got {type(obj).__name__}")
    if not isinstance(step, str) or not step:
        raise DataModelError(f"step: expected the name of the step, e.g. 'normalize', got {step!r:.60}")
    records = history(obj)
    records.append(
        {
            "step": step,
            "params": jsonable(params, name="params"),
            "version": _version(),
            "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }
    )
    out = obj.copy(deep=False)
    out.attrs = {**obj.attrs, **history_attrs(records)}  # json.dumps fails here, not at save time, if a record cannot be stored
    return out

