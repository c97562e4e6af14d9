"""OME-Zarr: a dataset as an OME-NGFF multiscale image with label images, and back.

Layout (NGFF 0.5 on Zarr v3 by default; 0.4 on Zarr v2 for readers that
predate 0.5, such as Fiji's MoBIE/BigDataViewer and OMERO's older tools):

* arrays ``0``, ``1``, ... of axes ``(c, z, y, x)``: the image channels,
  each level halving ``y`` and ``x`` by a 2x2 mean (rounded for integers);
  units ``nanometer`` (coordinates in other length units are converted),
  scale and translation transforms of voxel centres (the level-0
  translation is the first voxel centre; NGFF holds one step an axis, so
  uneven slices get their mean step there and their exact ``z`` under
  ``pfibsims``, and a single slice its ``spacing`` attr);
* ``omero`` channels: the channel name, its colour from the fixed palette of
  :mod:`pfibsims.io.palette`, and a display window whose ``start``/``end``
  are the 0.5th and 99.5th percentiles (``min``/``max`` the extremes) of a
  reduced view: at most 8 slices of the coarsest level, strided to at most
  2**20 voxels a channel (never the whole volume; see :func:`display_windows`);
* ``labels/<name>``: each label variable (integers with CF ``flag_values``,
  such as ``phase``, or a boolean mask, such as ``coverage``) as an integer
  multiscale of axes ``(z, y, x)``, downsampled by the 2x2 *mode* (ties go
  to the first value in raster order), with ``image-label`` colours and
  the phase names as ``properties`` (``{"label-value": 1, "name": "LLZTO"}``);
* the multiscale is named after the dataset (its ``name`` or ``title``
  attr, else the store's name without ``.zarr``);
* the pfibsims attrs (dataset, channel and label attrs, dtypes, exact ``z``
  coordinates, variable order) under the ``pfibsims`` key, so
  :func:`pfibsims.open_dataset` restores the full-resolution dataset exactly.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from .._xr import coord_nm
from ..dataset import history_attrs, jsonable
from ..errors import DataModelError, FileFormatError, GridError, PfibsimsError
from ..grid import Grid
from ..progress import compute
from ..units import length_nm
from ._integrity import read_manifest, verified_array
from .palette import channel_colours, label_colours

__all__ = ["NGFF_VERSIONS", "coarsen", "dataset_name", "display_windows", "is_label", "ome_attrs", "pyramid", "read", "write",
           "z_axis"]

NGFF_VERSIONS = ("0.5", "0.4")
#: Percentiles of a reduced view that set each channel's display window (``start``, ``end``).
WINDOW_PERCENTILES = (0.5, 99.5)
#: Most voxels a channel's reduced view holds for its display window.
WINDOW_VOXELS = 2**20
_SPATIAL = ("z", "y", "x")
_CHUNK = 1024


def is_label(var: xr.DataArray) -> bool:
    """True for a label variable: a boolean mask, or integers with CF ``flag_values``."""
    return var.dtype == bool or (var.dtype.kind in "iu" and "flag_values" in var.attrs)


def dataset_name(ds: xr.Dataset, path: Path) -> str:
    """The multiscale's name: the dataset's ``name`` or ``title`` attr, else the store's name stem.

    Examples
    --------
    >>> import xarray as xr
    >>> dataset_name(xr.Dataset(), Path("runs/fused.ome.zarr")), dataset_name(xr.Dataset(attrs={"title": "cell 3"}), Path("a.zarr"))
    ('fused', 'cell 3')
    """
    for key in ("name", "title"):
        if isinstance(ds.attrs.get(key), str) and ds.attrs[key]:
            return ds.attrs[key]
    name = path.name
    for suffix in (".zarr", ".ome"):
        name = name.removesuffix(suffix)
    return name or "image"


def _v2_compressor() -> Any:
    """The Zarr v2 form of the store's codec (Blosc LZ4 level 5, bit shuffle; see ``_chunks.compressor``)."""
    import numcodecs

    return numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.BITSHUFFLE)


def _mode(block: np.ndarray, axis: tuple[int, ...] | None = None) -> np.ndarray:
    """The most frequent value of each block (``np.mean``-like signature for ``da.coarsen``; no axis: the meta)."""
    if axis is None:
        return block
    keep = [a for a in range(block.ndim) if a not in axis]
    flat = np.transpose(block, keep + list(axis)).reshape([block.shape[a] for a in keep] + [-1])
    counts = (flat[..., :, None] == flat[..., None, :]).sum(axis=-1)
    pick = np.argmax(counts, axis=-1)  # first of the most frequent, in raster order
    return np.take_along_axis(flat, pick[..., None], axis=-1)[..., 0]


def coarsen(data: da.Array, factor: int, *, label: bool) -> da.Array:
    """Lazy ``factor x factor`` blocks of the last two axes: the mean (rounded for integers) or, for labels, the mode.

    Trailing rows and columns that do not fill a block are dropped.

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> lab = da.from_array(np.array([[1, 1, 2, 2], [3, 1, 2, 5]], dtype=np.uint8))
    >>> coarsen(lab, 2, label=True).compute().tolist(), coarsen(lab, 2, label=False).compute().tolist()
    ([[1, 2]], [[2, 3]])
    """
    ny, nx = data.shape[-2] // factor * factor, data.shape[-1] // factor * factor
    axes = {data.ndim - 2: factor, data.ndim - 1: factor}
    part = data[..., :ny, :nx]
    if label:
        return da.coarsen(_mode, part, axes, trim_excess=True).astype(data.dtype)
    blocks = da.coarsen(np.mean, part.astype(np.float64), axes, trim_excess=True)
    return (da.round(blocks) if data.dtype.kind in "biu" else blocks).astype(data.dtype)


def z_axis(ds: xr.Dataset | xr.DataArray) -> tuple[float, float]:
    """The ``z`` step and first slice centre of ``ds`` in nm, for metadata that holds one step (OME, napari).

    The grid's when the slices are regular (a single slice takes its thickness from the coordinate's
    ``spacing`` attr); uneven slices give their mean step, a single slice of no stated thickness 1 nm.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> z_axis(xr.Dataset(coords={"z": ("z", [0.1, 0.16], {"units": "um"})}))
    (60.0, 100.0)
    """
    try:
        g = Grid.of(ds, dims=["z"])
        return g.spacing[0], g.origin[0]
    except GridError:
        zs = coord_nm(ds["z"], "z")
        return (float(np.mean(np.diff(zs))) if zs.size > 1 else 1.0), float(zs[0])


def _n_levels(shape: tuple[int, ...], levels: int) -> int:
    n = 1
    while n < max(1, int(levels)) and min(shape[-2:]) // 2**n >= 1:
        n += 1
    return n


def _write_pyramid(group: Any, data: da.Array, *, n: int, label: bool, version: str, compressors: tuple[Any, ...],
                   config: dict) -> list[Any]:
    """Write levels ``0 .. n-1`` of ``data`` into ``group``; each level is computed from the one written before."""
    arrays = []
    level = data
    for k in range(n):
        if k:
            level = coarsen(da.from_zarr(arrays[-1]), 2, label=label)
        chunks = (1,) * (level.ndim - 2) + tuple(min(s, _CHUNK) for s in level.shape[-2:])
        kw: dict[str, Any] = {"shape": level.shape, "dtype": level.dtype, "chunks": chunks, "config": config}
        if version == "0.5":
            kw.update(dimension_names=("c", *_SPATIAL)[-level.ndim :], compressors=compressors)
        else:
            kw.update(compressors=_v2_compressor(), chunk_key_encoding={"name": "v2", "separator": "/"})
        arr = group.create_array(str(k), **kw)
        compute(da.store(level.rechunk(chunks), arr, lock=False, compute=False), step=f"save: OME-Zarr level {k}")
        arrays.append(arr)
    return arrays


def _multiscale(name: str, ndim: int, n: int, spacing: tuple[float, float, float], first: tuple[float, float, float],
                version: str) -> dict[str, Any]:
    dz, dy, dx = spacing
    z0, y0, x0 = first
    lead = [1.0] * (ndim - 3)
    datasets = []
    for k in range(n):
        f = 2**k
        datasets.append({"path": str(k), "coordinateTransformations": [
            {"type": "scale", "scale": [*lead, dz, dy * f, dx * f]},
            {"type": "translation", "translation": [*([0.0] * len(lead)), z0, y0 + (f - 1) * dy / 2, x0 + (f - 1) * dx / 2]},
        ]})
    axes = [{"name": "c", "type": "channel"}][: ndim - 3] + [{"name": d, "type": "space", "unit": "nanometer"} for d in _SPATIAL]
    out = {"name": name, "axes": axes, "datasets": datasets}
    return {**out, "version": version} if version == "0.4" else out


def _set_ome(group: Any, body: dict[str, Any], version: str, extra: dict[str, Any] | None = None) -> None:
    """Write OME metadata: under ``"ome"`` with the version for 0.5, at the top level for 0.4."""
    attrs = {"ome": {"version": version, **body}} if version == "0.5" else dict(body)
    group.attrs.update({**attrs, **(extra or {})})


def display_windows(stack: da.Array) -> list[dict[str, float]]:
    """Display windows of each channel of a ``(c, z, y, x)`` stack, from a reduced view.

    The view: at most 8 evenly spaced slices, strided in ``y`` and ``x`` to
    at most :data:`WINDOW_VOXELS` voxels a channel (only the chunks of those
    slices are read). ``start``/``end`` are the :data:`WINDOW_PERCENTILES`
    of its finite values, ``min``/``max`` their extremes; a channel with no
    finite value gets ``0 .. 1``.
    """
    nz, ny, nx = stack.shape[1:]
    zs = np.unique(np.linspace(0, nz - 1, min(nz, 8)).round().astype(int))
    s = max(1, math.ceil(math.sqrt(zs.size * ny * nx / WINDOW_VOXELS)))
    view = np.asarray(stack[:, zs, ::s, ::s], dtype=np.float64).reshape(stack.shape[0], -1)
    out = []
    for row in view:
        finite = row[np.isfinite(row)]
        if finite.size == 0:
            out.append({"min": 0.0, "max": 1.0, "start": 0.0, "end": 1.0})
            continue
        lo, hi = np.percentile(finite, WINDOW_PERCENTILES)
        out.append({"min": float(finite.min()), "max": float(finite.max()), "start": float(lo), "end": float(hi)})
    return out


def write(ds: xr.Dataset, tmp: Path, *, levels: int, version: str, name: str, compressors: tuple[Any, ...],
          config: dict) -> None:
    """Write ``ds`` as an OME-Zarr image (with ``labels/``) into the new directory ``tmp``.

    ``compressors`` are the Zarr v3 bytes codecs of every array (the store's, with its checksum);
    Zarr v2 (NGFF 0.4) arrays get the plain Blosc codec older readers know.
    """
    import zarr

    if version not in NGFF_VERSIONS:
        raise FileFormatError(f"ngff_version: expected one of {NGFF_VERSIONS}, got {version!r}")
    for n in ds.data_vars:
        if ds[n].dims != _SPATIAL:
            raise DataModelError(f"{n}: expected dims ('z', 'y', 'x') for OME-Zarr, found {ds[n].dims}")
    images = [n for n in ds.data_vars if not is_label(ds[n])]
    labels = [n for n in ds.data_vars if is_label(ds[n])]
    if not images:
        raise DataModelError(f"ds: expected at least one image channel to save as OME-Zarr, found only labels {labels}")
    grid = Grid.of(ds, dims=["y", "x"])
    dz, z0 = z_axis(ds)
    spacing, first = (dz, *grid.spacing), (z0, *grid.origin)
    fmt = 3 if version == "0.5" else 2
    root = zarr.open_group(str(tmp), mode="w-", zarr_format=fmt)
    dtype = np.result_type(*[ds[n].dtype for n in images])
    data = da.stack([da.asarray(ds[n].data).astype(dtype) for n in images])
    n = _n_levels(data.shape, levels)
    arrays = _write_pyramid(root, data, n=n, label=False, version=version, compressors=compressors, config=config)
    channel_attrs = {c: dict(ds[c].attrs) for c in images}
    colours = channel_colours(channel_attrs)
    channels = [{"label": c, "color": colours[c], "active": True, "window": w}
                for c, w in zip(images, display_windows(da.from_zarr(arrays[-1])), strict=True)]
    body = {"multiscales": [_multiscale(name, 4, n, spacing, first, version)],
            "omero": {"channels": channels, "rdefs": {"model": "greyscale" if len(images) == 1 else "color"}}}
    if labels:
        group = root.create_group("labels")
        _set_ome(group, {"labels": labels}, version)
        for lab in labels:
            var = ds[lab]
            ldata = da.asarray(var.data).astype(np.uint8) if var.dtype == bool else da.asarray(var.data)
            sub = group.create_group(lab)
            _write_pyramid(sub, ldata, n=n, label=True, version=version, compressors=compressors, config=config)
            table = label_colours(var.attrs, channel_attrs)
            image_label: dict[str, Any] = {
                "colors": [{"label-value": v, "rgba": c} for v, _, c in table],
                "properties": [{"label-value": v, "name": nm} for v, nm, _ in table],
                "source": {"image": "../../"},
            }
            if version == "0.4":
                image_label["version"] = version
            _set_ome(sub, {"multiscales": [_multiscale(lab, 3, n, spacing, first, version)], "image-label": image_label},
                     version)
    _set_ome(root, body, version, extra={"pfibsims": {
        "attrs": jsonable(dict(ds.attrs), name="attrs"),
        "channels": {c: jsonable(channel_attrs[c], name=f"{c}.attrs") for c in images},
        "labels": {c: jsonable(dict(ds[c].attrs), name=f"{c}.attrs") for c in labels},
        "dtypes": {c: str(ds[c].dtype) for c in ds.data_vars},
        "order": [str(c) for c in ds.data_vars],
        "coords": {
            c: {"dims": list(ds[c].dims), "attrs": jsonable(dict(ds[c].attrs), name=c), "dtype": str(ds[c].dtype),
                **({"values": np.asarray(ds[c].values).tolist()} if _exact_values(ds[c]) else {})}
            for c in ds.coords
        },
    }})


def _exact_values(coord: xr.DataArray) -> bool:
    """Whether the pfibsims attrs keep ``coord``'s values: a 0-D or 1-D coordinate, but not a ``y``/``x`` in nm.

    A ``y``/``x`` in nm is the transforms' own; in other units (``um``) the transforms hold it in nm
    and its values are kept so that it reopens in its own units.
    """
    if coord.ndim > 1:
        return False
    if coord.name not in ("y", "x") or coord.dims != (coord.name,):
        return True
    try:
        return length_nm(f"1 {coord.attrs.get('units', 'nm')}", name=f"{coord.name}.attrs['units']") != 1.0
    except PfibsimsError:
        return True


def ome_attrs(path: Path) -> tuple[dict[str, Any], str] | None:
    """The OME metadata of the group at ``path`` and its NGFF version, or None when it is not OME-Zarr.

    For 0.5 the content of the ``"ome"`` key (Zarr v3 ``zarr.json``); for 0.4
    the ``.zattrs`` (Zarr v2), whose multiscales carry their version.
    """
    import json

    v3, v2 = path / "zarr.json", path / ".zattrs"
    if v3.is_file():
        attrs = json.loads(v3.read_text(encoding="utf-8")).get("attributes", {})
        ome = attrs.get("ome")
        return (ome, str(ome.get("version", "0.5"))) if isinstance(ome, dict) else None
    if v2.is_file():
        attrs = json.loads(v2.read_text(encoding="utf-8"))
        ms = attrs.get("multiscales")
        if isinstance(ms, list) and ms and isinstance(ms[0], dict):
            return attrs, str(ms[0].get("version", "0.4"))
        if "labels" in attrs:
            return attrs, "0.4"
    return None


def _pfibsims_attrs(path: Path, version: str) -> dict[str, Any]:
    import json

    name = "zarr.json" if version == "0.5" else ".zattrs"
    attrs = json.loads((path / name).read_text(encoding="utf-8"))
    return (attrs.get("attributes", {}) if version == "0.5" else attrs).get("pfibsims", {})


def pyramid(path: Path, sub: str = "") -> tuple[list[da.Array], dict[str, Any]]:
    """The lazy pyramid of the multiscale at ``path/sub`` and its first multiscale's metadata.

    Every level is read chunk by chunk against the store's manifest (:mod:`._integrity`).
    """
    found = ome_attrs(path / sub if sub else path)
    if found is None or not found[0].get("multiscales"):
        raise FileFormatError(f"{path / sub}: expected an OME-Zarr multiscale group, found no 'multiscales' metadata")
    meta = found[0]["multiscales"][0]
    manifest = read_manifest(path)
    arrays = []
    for entry in meta.get("datasets", []):
        p = str(entry.get("path", ""))
        if not p or ".." in Path(p).parts:
            raise FileFormatError(f"{path / sub}: expected dataset paths inside the group, found {p!r}")
        arrays.append(verified_array(path, f"{sub}/{p}" if sub else p, manifest))
    if not arrays:
        raise FileFormatError(f"{path / sub}: expected at least one multiscale dataset, found none")
    return arrays, meta


def _transform(meta: dict[str, Any], kind: str, ndim: int, default: float) -> list[float]:
    ts = meta["datasets"][0].get("coordinateTransformations", [])
    values = next((t.get(kind) for t in ts if t.get("type") == kind), None)
    if values is None:
        return [default] * ndim
    if not isinstance(values, list) or len(values) != ndim:
        raise FileFormatError(f"{kind}: expected {ndim} numbers in the level-0 transform, found {values!r:.80}")
    return [float(v) for v in values]


def _then(t: Any, scale: list[float], trans: list[float]) -> tuple[list[float], list[float]]:
    """``x = scale * i + trans`` followed by the multiscale-level transform ``t`` (a scale or a translation)."""
    kind = t.get("type") if isinstance(t, dict) else None
    values = t.get(kind) if kind in ("scale", "translation") else None
    if kind == "identity":
        return scale, trans
    if not isinstance(values, list) or len(values) != len(scale) or not all(isinstance(v, (int, float)) for v in values):
        raise FileFormatError(f"multiscales coordinateTransformations: expected a scale or translation of {len(scale)} "
                              f"numbers, found {t!r:.80}")
    if kind == "scale":
        return [a * v for a, v in zip(scale, values, strict=True)], [b * v for b, v in zip(trans, values, strict=True)]
    return scale, [b + v for b, v in zip(trans, values, strict=True)]


def _axis_nm(axis: dict[str, Any]) -> float:
    """Factor from a space axis' NGFF ``unit`` (``"micrometer"``; none: nm) to nm."""
    unit = axis.get("unit", "nanometer")
    try:
        return length_nm(f"1 {unit}", name=f"axis {axis.get('name')!r} unit")
    except PfibsimsError:
        raise FileFormatError(
            f"axis {axis.get('name')!r}: expected a length unit such as 'nanometer', found {unit!r:.60}"
        ) from None


def read(path: Path, version: str, chunks: Any) -> xr.Dataset:
    """The full-resolution dataset of an OME-Zarr store written by :func:`write` (lazy)."""
    arrays, meta = pyramid(path)
    arr = arrays[0]
    axes = [a.get("name") for a in meta.get("axes", [])]
    if axes != ["c", *_SPATIAL] or arr.ndim != 4:
        raise FileFormatError(f"{path}: expected an OME-Zarr image of axes ['c', 'z', 'y', 'x'], found {axes} ({arr.ndim}-D)")
    scale, trans = _transform(meta, "scale", 4, 1.0), _transform(meta, "translation", 4, 0.0)
    for t in meta.get("coordinateTransformations") or []:  # NGFF: after each dataset's own
        scale, trans = _then(t, scale, trans)
    nm = [1.0] + [_axis_nm(a) for a in meta["axes"][1:]]
    scale, trans = [v * f for v, f in zip(scale, nm, strict=True)], [v * f for v, f in zip(trans, nm, strict=True)]
    extra = _pfibsims_attrs(path, version)
    found = ome_attrs(path)
    omero = (found[0] if found else {}).get("omero", {}).get("channels", [])
    names = [c.get("label") for c in omero] or [f"c{i}" for i in range(arr.shape[0])]
    if len(names) != arr.shape[0]:
        raise FileFormatError(f"{path}: expected {arr.shape[0]} omero channel labels, found {len(names)}")
    _, nz, ny, nx = arr.shape
    coords: dict[str, Any] = {d: (d, trans[i + 1] + scale[i + 1] * np.arange(s), {"units": "nm"})
                              for i, (d, s) in enumerate(zip(_SPATIAL, (nz, ny, nx), strict=True))}
    for c, info in extra.get("coords", {}).items():
        if "values" in info:
            coords[c] = (tuple(info["dims"]), np.asarray(info["values"], dtype=info.get("dtype")), info.get("attrs", {}))
        elif c in coords:
            coords[c] = (coords[c][0], coords[c][1], info.get("attrs", {}))
    dtypes = extra.get("dtypes", {})
    data_vars = {n: (_SPATIAL, arr[i].astype(dtypes.get(n, arr.dtype)), extra.get("channels", {}).get(n, {"units": "1"}))
                 for i, n in enumerate(names)}
    for lab, attrs in extra.get("labels", {}).items():
        larr = pyramid(path, f"labels/{lab}")[0][0]
        if larr.shape != (nz, ny, nx):
            raise FileFormatError(f"{path}/labels/{lab}: expected shape {(nz, ny, nx)}, found {larr.shape}")
        data_vars[lab] = (_SPATIAL, larr.astype(dtypes.get(lab, larr.dtype)), attrs)
    order = [n for n in extra.get("order", []) if n in data_vars]
    data_vars = {n: data_vars[n] for n in order + [n for n in data_vars if n not in order]}
    ds = xr.Dataset(data_vars, coords=coords, attrs=extra.get("attrs", {"modality": "image", **history_attrs([])}))
    if chunks not in ({}, None, "auto"):
        ds = ds.chunk(chunks)
    return ds
