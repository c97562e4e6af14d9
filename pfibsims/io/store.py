"""Saving datasets to Zarr v3 and OME-Zarr (NGFF 0.5), atomically, and reopening them lazily.

``save`` writes into a temporary sibling directory (``.<name>.pfibsims-tmp-...``), records
every chunk's checksum in a manifest, and only then puts it at ``path``
(:mod:`pfibsims.io._atomic`): exclusively for a new path (of two concurrent saves exactly one
wins), by an atomic exchange for ``overwrite=True`` (at every instant the path holds the complete
old or the complete new store, whatever kills the process), and never in place of anything but
a Zarr store. Temporaries left by killed saves are deleted by the next save to the path and are
never opened as data. :func:`open_dataset` checks every chunk as it reads it
(:mod:`pfibsims.io._integrity`): a missing, damaged or swapped chunk, or a store overwritten
since it was opened, is an error naming the store and the chunk.

``format="zarr"``: the dataset as xarray writes it (Zarr v3, consolidated
metadata so plain ``xarray.open_zarr(path)`` opens it without warnings,
chunks compressed with Blosc LZ4 after bit shuffling (see :func:`_compressor`); attrs, including lists and dicts such as
``history`` and the ``pfibsims:affine`` JSON, are stored as JSON).

``format="ome-zarr"``: an OME-NGFF 0.5 multiscale image (or 0.4 on Zarr v2 on
request) with the label variables under ``labels/``, channel colours and
display windows; its content is written and read by :mod:`pfibsims.io.ome`.
The pfibsims attrs are kept under the ``pfibsims`` key so :func:`open_dataset`
restores the full-resolution dataset.
"""

from __future__ import annotations

import math
import numbers
import os
import stat
import warnings
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from .._xr import as_stack, dequantify
from ..dataset import HISTORY, history, history_attrs, jsonable, validate
from ..errors import DataModelError, FileFormatError, PfibsimsError
from ..progress import steps
from . import ome
from ._atomic import clean_stale, is_temporary, is_zarr_store, place, remove_tree, temp_path
from ._chunks import ChunkWriter, codecs, in_saved_layout
from ._common import path_mode
from ._integrity import check_chunks, read_json, read_manifest, verified_array, write_manifest

__all__ = ["open_dataset", "save"]

_FORMATS = ("zarr", "ome-zarr")
_MAX_CHUNK = (1, 1024, 1024)
#: Every chunk is written, even one of fill values only: zarr's emptiness test took half the time
#: of a 1024^2 chunk write (3.4 -> 1.6 ms; see benchmarks/README.md, "io"), and empty chunks compress
#: to a few bytes anyway. (xarray's ``to_zarr(write_empty_chunks=True)`` for the plain layout.)
_ARRAY_CONFIG = {"write_empty_chunks": True}
#: Fewest chunks a slab of a slab-wise write holds (see :func:`_slabs`).
_SLAB_TASKS = 64


def _target(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise FileFormatError(f"path: expected a store path (str or Path), got {type(path).__name__}")
    p = Path(path).expanduser()
    if not p.name or p.name in (".", ".."):
        raise FileFormatError(f"path: expected a store name such as 'run.zarr', got '{path}'")
    parent = path_mode(p.parent, path)
    if parent is None:
        raise FileFormatError(f"path: expected the parent directory of '{path}' to exist, found none")
    if not stat.S_ISDIR(parent):
        raise FileFormatError(f"path: expected the parent of '{path}' to be a directory, found a file")
    if not os.access(p.parent, os.W_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids):
        raise FileFormatError(f"path: expected a parent directory this user may write in, got '{p.parent}' (permission denied)")
    path_mode(p, path)  # a name too long, a link loop: a FileFormatError now, not an OSError later
    return p


def _chunks(arr: Any) -> tuple[int, ...]:
    if isinstance(arr, da.Array):
        return tuple(c[0] for c in arr.chunks)
    return tuple(min(s, m) for s, m in zip(arr.shape, _MAX_CHUNK[-arr.ndim :], strict=True))


def _write_zarr(ds: xr.Dataset, tmp: Path) -> None:
    out = ds.copy(deep=False)
    out.attrs = jsonable(dict(ds.attrs), name="attrs")
    encoding = {}
    for name, var in out.variables.items():
        out[name].attrs = jsonable(dict(var.attrs), name=f"{name}.attrs")
        var.encoding = {}
        if name in out.data_vars:
            encoding[name] = {"chunks": _chunks(var.data), "compressors": codecs()}
    # dask chunks must line up with the zarr chunks to write in parallel without locks
    for name, enc in encoding.items():
        if isinstance(out[name].data, da.Array):
            out[name] = out[name].chunk(dict(zip(out[name].dims, enc["chunks"], strict=True)))
    slabs = _slabs(out)
    lazy = [n for n in out.data_vars if _lazy_along_z(out.variables[n])]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        if not lazy:
            out.to_zarr(tmp, mode="w-", zarr_format=3, consolidated=True, encoding=encoding, write_empty_chunks=True)
            return
        out.to_zarr(tmp, mode="w-", zarr_format=3, consolidated=True, encoding=encoding, compute=False,
                    write_empty_chunks=True)  # the metadata and the variables in memory; the lazy ones below
        body = out.drop_vars([n for n in out.variables if n not in lazy])
        writers = {n: _writer(tmp, str(n), body[n]) for n in lazy}
        slabs = slabs or [slice(0, out.sizes["z"])]
        with steps("save: slabs along z", len(slabs)) as advance:
            for s in slabs:
                _write_slab(body, s, writers, tmp)
                advance()


def _writer(tmp: Path, name: str, var: xr.DataArray) -> ChunkWriter | None:
    """A direct writer of the variable's chunks (:mod:`._chunks`), or None when its array is not in save's layout."""
    import zarr

    arr = zarr.open_array(str(tmp / name), mode="r")
    if not in_saved_layout(arr) or arr.dtype != var.dtype or tuple(arr.shape) != var.shape:
        return None
    return ChunkWriter(tmp / name, tuple(arr.shape), tuple(arr.chunks), arr.dtype, arr.fill_value)


def _write_slab(body: xr.Dataset, s: slice, writers: dict[Any, ChunkWriter | None], tmp: Path) -> None:
    """z range ``s`` of the lazy variables: chunk files written directly where it can, by xarray otherwise."""
    direct = [n for n in body.data_vars if writers[n] is not None]
    if direct:
        regions = [tuple(s if d == "z" else slice(None) for d in body[n].dims) for n in direct]
        da.store([body[n].data[r] for n, r in zip(direct, regions, strict=True)], [writers[n] for n in direct],
                 regions=regions, lock=False)
    rest = body.drop_vars(direct)
    if rest.data_vars:
        rest.isel(z=s).to_zarr(tmp, region={"z": s}, zarr_format=3, consolidated=False, write_empty_chunks=True)


def _lazy_along_z(var: xr.Variable) -> bool:
    return isinstance(var.data, da.Array) and "z" in var.dims


def _slabs(out: xr.Dataset) -> list[slice]:
    """z ranges to write one after another (a lazy stack is computed slab by slab), or none: one write.

    One ``compute`` of a whole lazy stack lets dask's scheduler interleave the slices, and whatever
    a slice's tasks share (the source chunks of neighbouring resampled rows) is then held for every
    slice at once: writing a fused 700 um field grew from 0.6 GB (3 slices) to 3.2 GB (39 slices).
    Slabs of whole z chunks, each at least ``_SLAB_TASKS`` chunks, bound it by the slab.  Lazy
    coordinates and lazy variables without ``z`` are loaded first (they are small).
    """
    for name, var in out.variables.items():
        if isinstance(var.data, da.Array) and ("z" not in var.dims or name not in out.data_vars):
            var.load()
    lazy = [v for v in out.variables.values() if _lazy_along_z(v)]
    if not lazy or out.sizes.get("z", 1) < 2:
        return []
    zchunks = {v.chunks[v.dims.index("z")] for v in lazy}
    if len(zchunks) != 1:
        return []
    bounds = np.cumsum((0, *next(iter(zchunks))))
    per_z_chunk = sum(math.prod(len(c) for d, c in zip(v.dims, v.chunks, strict=True) if d != "z") for v in lazy)
    step = max(1, math.ceil(_SLAB_TASKS / per_z_chunk))
    edges = bounds[::step].tolist()
    if edges[-1] != bounds[-1]:
        edges.append(int(bounds[-1]))
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def save(ds: xr.Dataset, path: Any, *, overwrite: bool = False, format: str = "zarr", levels: int = 3,
         ngff_version: str = "0.5") -> Path:
    """Write ``ds`` to a Zarr v3 (or OME-Zarr) store, atomically.

    Parameters
    ----------
    ds : xarray.Dataset
        A dataset of the data model (checked with :func:`pfibsims.dataset.validate`).
    path : path
        The store directory, e.g. ``"run.zarr"``; its parent must exist.
    overwrite : bool
        Replace an existing store at ``path``; without it an existing path
        is an error and is left untouched.
    format : {"zarr", "ome-zarr"}
        ``"zarr"``: xarray's Zarr v3 layout, reopened exactly by
        :func:`open_dataset` or plain ``xarray.open_zarr``. A lazy stack
        is computed and written slab by slab along ``z`` (whole z chunks,
        at least 64 chunks a slab), so memory is bounded by a slab, not
        by the number of slices.
        ``"ome-zarr"``: an OME-NGFF multiscale image for viewers
        (napari, Fiji, OMERO, neuroglancer): image channels with colours
        and display windows, label variables (``phase``, ``coverage``)
        under ``labels/``; see :mod:`pfibsims.io.ome`. A single 2-D map
        (what :func:`~pfibsims.fuse` returns for 2-D inputs) is written as a
        stack of one slice and opens as one.
    levels : int
        Pyramid levels for ``"ome-zarr"`` (each halves y and x).
    ngff_version : {"0.5", "0.4"}
        OME-NGFF version for ``"ome-zarr"``: 0.5 (Zarr v3, the default) or
        0.4 (Zarr v2) for readers that predate 0.5 (older Fiji/BigDataViewer).

    Returns
    -------
    pathlib.Path
        The store written.

    Raises
    ------
    FileFormatError
        When ``path`` exists (or appears while writing: another save) and ``overwrite`` is
        False; when it is something other than a Zarr store (never replaced) or a symbolic
        link (neither the link nor its store is replaced); when its parent is missing.
    DataModelError
        When ``ds`` does not follow the data model.

    Examples
    --------
    >>> import numpy as np, tempfile, os, pfibsims as pfs
    >>> ds = pfs.stack({"Li6": np.arange(6.0).reshape(2, 3)}, pixel_size="72 nm")
    >>> p = save(ds, os.path.join(tempfile.mkdtemp(), "run.zarr"))
    >>> open_dataset(p).Li6.values.tolist()
    [[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]]
    """
    if format not in _FORMATS:
        raise FileFormatError(f"format: expected one of {_FORMATS}, got {format!r}")
    if ngff_version not in ome.NGFF_VERSIONS:
        raise FileFormatError(f"ngff_version: expected one of {ome.NGFF_VERSIONS}, got {ngff_version!r}")
    if not isinstance(overwrite, (bool, np.bool_)):  # overwrite="no" is truthy: it would replace the store
        raise FileFormatError(f"overwrite: expected True or False, got {overwrite!r}")
    if isinstance(levels, (bool, np.bool_)) or not isinstance(levels, numbers.Integral) or levels < 1:
        raise FileFormatError(f"levels: expected a whole number of pyramid levels of at least 1 such as 3, got {levels!r:.60}")
    ds = dequantify(ds, "ds")
    if not isinstance(ds, xr.Dataset):
        raise DataModelError(f"ds: expected an xarray Dataset, got {type(ds).__name__}")
    validate(ds)
    target = _target(path)
    clean_stale(target)
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise FileFormatError(f"path: '{target}' already exists; pass overwrite=True to replace it")
        _check_not_a_link(target)
        _check_replaceable(target)
    tmp = temp_path(target)
    try:
        if format == "zarr":
            _write_zarr(ds, tmp)
        else:
            ome.write(as_stack(ds)[0], tmp, levels=levels, version=ngff_version, name=ome.dataset_name(ds, target),
                      compressors=codecs(), config=_ARRAY_CONFIG)
        write_manifest(tmp)
        place(tmp, target, overwrite=overwrite)
    except FileExistsError:
        remove_tree(tmp)
        raise FileFormatError(
            f"path: '{target}' appeared while this save was writing (another save?); it was left as it is, "
            "pass overwrite=True to replace it"
        ) from None
    except IsADirectoryError:
        remove_tree(tmp)
        _check_replaceable(target)
        raise
    except OSError as exc:  # a full disk, a quota, a file-size limit: the new store is incomplete and removed
        remove_tree(tmp)
        raise FileFormatError(
            f"path: expected to write the store '{target}', but writing failed ({type(exc).__name__}: {exc}); "
            "the disk may be full or the folder read-only"
        ) from exc
    except BaseException:
        remove_tree(tmp)
        raise
    return target


def _restored(ds: xr.Dataset) -> xr.Dataset:
    """Attrs as pfibsims makes them: CF flags typed like their labels (JSON stores them as lists), and a
    ``history`` list (stores written before the history became a string) as the two history attrs."""
    for var in ds.data_vars.values():
        if "flag_values" in var.attrs and var.dtype.kind in "iu":
            var.attrs["flag_values"] = np.asarray(var.attrs["flag_values"], dtype=var.dtype)
    for obj in (ds, *ds.data_vars.values()):
        if isinstance(obj.attrs.get(HISTORY), list):
            obj.attrs.update(history_attrs(history(obj)))
    return ds


def _check_not_a_link(target: Path) -> None:
    """The exchange of :func:`~pfibsims.io._atomic.place` swaps directory entries: on a symbolic link it would
    replace the link, not the store the link points to, so a link is not overwritten (which one was meant?)."""
    if target.is_symlink():
        to = os.path.realpath(target)
        raise FileFormatError(
            f"path: '{target}' is a symbolic link to '{to}'; overwrite=True would replace the link, not the store: "
            f"save to '{to}' to replace that store (the link then shows it), or remove the link"
        )


def _check_replaceable(target: Path) -> None:
    if not is_zarr_store(target):
        kind = "a directory" if target.is_dir() else "a file"
        raise FileFormatError(
            f"path: '{target}' is {kind} but not a Zarr store (no zarr.json); overwrite=True replaces only a "
            "store, never other files: remove it yourself or choose another path"
        )


def open_dataset(path: Any, *, chunks: Any = None) -> xr.Dataset:
    """Open a store written by :func:`save`, lazily (dask arrays), exactly as saved.

    Every chunk is checked as it is read (see :mod:`pfibsims.io._integrity`): a missing,
    damaged or swapped chunk, or a store overwritten by another save since it was opened, is a
    ``FileFormatError`` naming the store and the chunk, never fill values or new data under old
    attrs. Opening checks the metadata (units, coordinates, the data model) and that every
    chunk file is there; it reads no chunk of the channels.

    Parameters
    ----------
    path : path
        A ``"zarr"`` or ``"ome-zarr"`` store. For OME-Zarr, the
        full-resolution level is returned.
    chunks : optional
        Dask chunks; default the store's chunks.

    Raises
    ------
    FileFormatError
        When the path is missing, is the temporary of a save, is not a Zarr v3 store of a
        dataset, or is damaged.

    Examples
    --------
    >>> open_dataset("/no/such.zarr")
    Traceback (most recent call last):
    ...
    pfibsims.errors.FileFormatError: path: expected a Zarr store, got '/no/such.zarr', which does not exist
    """
    if not isinstance(path, (str, os.PathLike)):
        raise FileFormatError(f"path: expected a store path (str or Path), got {type(path).__name__}")
    p = Path(path).expanduser()
    if is_temporary(p):
        raise FileFormatError(
            f"path: '{path}' is the temporary of an interrupted or running save (.NAME.pfibsims-tmp-/-old-), "
            "not a store; the next save to NAME deletes it"
        )
    if path_mode(p, path) is None:
        raise FileFormatError(f"path: expected a Zarr store, got '{path}', which does not exist")
    meta = p / "zarr.json"
    if not meta.is_file() and not (p / ".zattrs").is_file():
        raise FileFormatError(f"{p}: expected a Zarr v3 store (a directory with zarr.json), found none")
    try:
        for doc in (meta, p / ".zattrs"):
            if doc.is_file():
                read_json(doc, "Zarr metadata")  # refused when huge or not JSON, before anyone parses it
        manifest = read_manifest(p)
        check_chunks(p, manifest)
        found = ome.ome_attrs(p)
        if found is not None:
            ds = _restored(ome.read(p, found[1], None))
        elif not meta.is_file():
            raise FileFormatError(f"{p}: expected a Zarr v3 store (a directory with zarr.json) or OME-Zarr 0.4, "
                                  "found a Zarr v2 group without OME metadata")
        else:
            ds = _restored(_open_zarr(p, manifest, None))
        _check_opened(ds, p)
    except (FileFormatError, DataModelError):
        raise
    except Exception as exc:
        raise FileFormatError(
            f"{p}: expected a readable Zarr v3 store of a dataset, but opening it failed ({type(exc).__name__}: {str(exc)[:200]})"
        ) from exc
    return _rechunked(ds, chunks, ome_store=found is not None)


def _rechunked(ds: xr.Dataset, chunks: Any, *, ome_store: bool) -> xr.Dataset:
    """``ds`` in the ``chunks`` asked for (None: the store's); chunks dask cannot use are an error naming ``chunks``."""
    if chunks in (None, {}) or (ome_store and chunks == "auto"):
        return ds
    try:
        out = ds.chunk(chunks)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
        raise FileFormatError(
            f"chunks: expected dask chunks for the dims {dict(ds.sizes)}, such as {{'z': 1}} or 'auto', got {chunks!r:.60} "
            f"({type(exc).__name__}: {str(exc)[:120]})"
        ) from None
    if any(c < 1 for var in out.data_vars.values() if var.size and var.chunks for axis in var.chunks for c in axis):
        raise FileFormatError(f"chunks: expected positive chunk sizes, got {chunks!r:.60}")
    return out


def _open_zarr(p: Path, manifest: dict[str, Any] | None, chunks: Any) -> xr.Dataset:
    """xarray's decoding of a plain store, with every lazy variable read through the chunk checks."""
    for name, entry in (manifest or {}).get("arrays", {}).items():
        if len(entry["shape"]) == 1:  # coordinates: xarray reads them at open; check them first
            verified_array(p, name, manifest).compute()
    ds = xr.open_zarr(p, consolidated=True, chunks={}, zarr_format=3)
    for name, var in ds.variables.items():
        if not isinstance(var.data, da.Array) or {"scale_factor", "add_offset", "calendar"} & set(var.encoding):
            continue
        checked = verified_array(p, str(name), manifest)
        if checked.dtype == var.dtype and checked.shape == var.shape:
            var.data = checked
    if chunks not in (None, {}):
        ds = ds.chunk(chunks)
    return ds


def _check_opened(ds: xr.Dataset, p: Path) -> None:
    """Units parse by the strict grammar, coordinates are finite, and the data model holds."""
    from ..units import parse_unit

    for name, var in ds.variables.items():
        if "units" in var.attrs:
            try:
                parse_unit(var.attrs["units"], name=f"{name}.attrs['units']")
            except PfibsimsError as exc:
                raise FileFormatError(f"{p}: {exc}") from None
    for d in ("z", "y", "x"):
        if d in ds.coords and ds[d].dtype.kind == "f" and not np.isfinite(ds[d].values).all():
            raise FileFormatError(f"{p}: expected finite '{d}' coordinates, found NaN or inf")
    try:
        validate(ds)
    except DataModelError as exc:
        raise FileFormatError(f"{p}: the dataset in the store does not follow the data model: {exc}") from None
