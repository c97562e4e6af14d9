"""Chunk integrity of the stores pfibsims writes: checksums, a manifest, and verified lazy reads.

Every chunk is written with Zarr's ``crc32c`` codec after Blosc: its last 4 bytes are the CRC-32C
of the rest, which Zarr checks on every read, so a flipped, zeroed or truncated chunk is an error,
never wrong numbers. When the store is complete, :func:`write_manifest` records in
``pfibsims-manifest.json`` at its root, for every array, the shape, the chunk shape and the
checksum of every chunk, with a random write token. Reading (:func:`verified_array`) then checks,
chunk by chunk, that the file exists and carries the checksum the manifest gave when the store was
opened, so

* a missing chunk (every chunk is written, empty ones too) is an error, not fill values;
* a chunk swapped with another, or a store overwritten by another save since it was opened,
  is an error naming the store and the chunk, not new values under old attrs;
* a chunk that does not decode is an error naming the store and the chunk.

Stores written before the manifest existed open without these checks (errors still name the
chunk). The extra cost is one 4-byte read per chunk and the CRC-32C (about 2 GB/s a core) of its
compressed bytes.

A chunk of an array in the layout :func:`pfibsims.save` writes, listed in a manifest, is read
straight from its file and decoded by :func:`._chunks.decode` (its sizes checked before any
buffer is made); anything else is read by Zarr.
"""

from __future__ import annotations

import errno
import json
import math
import os
import uuid
from itertools import product
from pathlib import Path
from typing import Any

import dask.array as da
import dask.base
import numpy as np

from ..errors import FileFormatError
from ._chunks import decode, in_saved_layout, read

__all__ = ["MANIFEST", "check_chunks", "read_json", "read_manifest", "verified_array", "write_manifest"]

MANIFEST = "pfibsims-manifest.json"
#: Largest metadata document read from a store (a hostile zarr.json or manifest is refused first).
MAX_JSON_BYTES = 64 * 2**20
#: Most chunks one array may have (a hostile chunk grid would make a graph of 10^18 tasks).
MAX_CHUNKS = 2**22


def read_json(path: Path, what: str) -> Any:
    """A JSON document of a store, refused when it is not a file, too large, or not JSON."""
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise FileFormatError(f"{path}: expected {what} of at most {MAX_JSON_BYTES} bytes, found {size} bytes")
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileFormatError:
        raise
    except (OSError, ValueError, RecursionError) as exc:
        raise FileFormatError(f"{path}: expected {what} (JSON), but reading it failed ({type(exc).__name__}: {str(exc)[:120]})") from None


def _arrays(store: Path) -> dict[str, dict[str, Any]]:
    """Every array of a store: relative path -> its metadata (Zarr v3 ``zarr.json`` or v2 ``.zarray``)."""
    found = {}
    for meta in sorted([*store.rglob("zarr.json"), *store.rglob(".zarray")]):
        doc = read_json(meta, "Zarr metadata")
        if isinstance(doc, dict) and (meta.name == ".zarray" or doc.get("node_type") == "array"):
            found[meta.parent.relative_to(store).as_posix()] = doc
    return found


def _grid(doc: dict[str, Any], where: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Shape and chunk shape of an array's metadata, checked to be sane."""
    try:
        shape = tuple(int(s) for s in doc["shape"])
        raw = doc["chunks"] if "chunks" in doc else doc["chunk_grid"]["configuration"]["chunk_shape"]
        chunk = tuple(int(c) for c in raw)
    except (KeyError, TypeError, ValueError):
        raise FileFormatError(f"{where}: expected a regular chunk grid (shape, chunk shape) in its Zarr metadata") from None
    if len(shape) != len(chunk) or any(s < 0 for s in shape) or any(c < 1 for c in chunk):
        raise FileFormatError(f"{where}: expected non-negative shape and positive chunk shape, found {shape} / {chunk}")
    n = math.prod(-(-s // c) for s, c in zip(shape, chunk, strict=True))
    if n > MAX_CHUNKS:
        raise FileFormatError(f"{where}: expected at most {MAX_CHUNKS} chunks, found a grid of {n} ({shape} in {chunk})")
    return shape, chunk


def _keys(doc: dict[str, Any], shape: tuple[int, ...], chunk: tuple[int, ...]) -> list[str]:
    """The chunk keys in C order (Zarr v3 'default' or 'v2' key encoding, or Zarr v2)."""
    if "chunks" in doc:  # Zarr v2
        sep, prefix = doc.get("dimension_separator") or ".", ""
    else:
        enc = doc.get("chunk_key_encoding", {})
        sep = enc.get("configuration", {}).get("separator", "/" if enc.get("name", "default") == "default" else ".")
        prefix = "c" + sep if enc.get("name", "default") == "default" else ""
    if not shape:
        return ["c" if prefix else "0"]
    return [prefix + sep.join(map(str, idx)) for idx in product(*(range(-(-s // c)) for s, c in zip(shape, chunk, strict=True)))]


def _tail(path: Path) -> int | None:
    """The last 4 bytes of a chunk file (its CRC-32C) as an int; None when the file is missing."""
    try:
        with open(path, "rb") as fh:
            fh.seek(-4, os.SEEK_END)
            return int.from_bytes(fh.read(4), "little")
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # shorter than 4 bytes
            return -1
        raise FileFormatError(f"{path}: expected a readable chunk file, but reading it failed ({exc.strerror or exc})") from None


def write_manifest(store: Path) -> str:
    """Record every chunk's checksum of a finished store; return its write token."""
    arrays = {}
    for rel, doc in _arrays(store).items():
        shape, chunk = _grid(doc, f"{store}/{rel}")
        keys = _keys(doc, shape, chunk)
        arrays[rel] = {"shape": list(shape), "chunk_shape": list(chunk), "tails": [_tail(store / rel / k) for k in keys]}
    token = uuid.uuid4().hex
    with open(store / MANIFEST, "w", encoding="utf-8") as fh:
        json.dump({"pfibsims_manifest": 1, "token": token, "arrays": arrays}, fh, separators=(",", ":"))
    return token


def read_manifest(store: Path) -> dict[str, Any] | None:
    """The manifest of a store, checked against its arrays; None for a store without one."""
    path = store / MANIFEST
    if not path.is_file():
        return None
    doc = read_json(path, "a pfibsims manifest")
    if not isinstance(doc, dict) or doc.get("pfibsims_manifest") != 1 or not isinstance(doc.get("arrays"), dict):
        raise FileFormatError(f"{path}: expected a pfibsims manifest (version 1), found {str(doc)[:80]!r}")
    return doc


def check_chunks(store: Path, manifest: dict[str, Any] | None) -> None:
    """Every array of the manifest is in the store with its shape and all its chunk files."""
    if manifest is None:
        for rel, doc in _arrays(store).items():
            _grid(doc, f"{store}/{rel}")
        return
    arrays = _arrays(store)
    for rel, entry in manifest["arrays"].items():
        doc = arrays.get(rel)
        if doc is None:
            raise FileFormatError(f"{store}: expected the array '{rel}' the manifest lists, found none; the store is damaged")
        shape, chunk = _grid(doc, f"{store}/{rel}")
        tails = entry.get("tails")
        if [*shape] != entry.get("shape") or [*chunk] != entry.get("chunk_shape") or len(tails or ()) != math.prod(
            -(-s // c) for s, c in zip(shape, chunk, strict=True)
        ):
            raise FileFormatError(
                f"{store}: array '{rel}' has shape {shape} in chunks {chunk}, the manifest {entry.get('shape')} in "
                f"{entry.get('chunk_shape')}; the store was changed or damaged after it was written"
            )
        for key, tail in zip(_keys(doc, shape, chunk), tails, strict=True):
            if tail is not None and not (store / rel / key).is_file():
                raise FileFormatError(_missing(store, rel, key))


def _missing(store: Path, rel: str, key: str) -> str:
    return (
        f"{store}: chunk '{rel}/{key}' is missing; every chunk was written, so the store is damaged "
        "(or was changed since it was opened)"
    )


class _Verified:
    """An array-like over one Zarr array whose reads check each chunk against the manifest."""

    def __init__(self, store: Path, rel: str, tails: list[int | None] | None) -> None:
        import zarr

        self.store, self.rel, self.tails = str(store), rel, tails
        arr = zarr.open_array(str(store / rel), mode="r")
        self.shape, self.dtype, self.ndim = arr.shape, arr.dtype, arr.ndim
        self.chunk = arr.chunks
        self._keys = arr.metadata.encode_chunk_key
        self._arr: Any = arr
        self._direct = tails is not None and in_saved_layout(arr)

    def __getstate__(self) -> dict[str, Any]:  # the zarr handle is reopened where the task runs
        return {k: v for k, v in self.__dict__.items() if k not in ("_arr", "_keys")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        import zarr

        self.__dict__.update(state)
        self._arr = zarr.open_array(str(Path(self.store) / self.rel), mode="r")
        self._keys = self._arr.metadata.encode_chunk_key

    def __getitem__(self, key: Any) -> np.ndarray:
        from dask.array.slicing import normalize_index

        key = normalize_index(key, self.shape)
        idx = _one_chunk(key, self.shape, self.chunk) if self._direct else None
        found = None if idx is None else self._read_direct(idx, key)
        return self._read_zarr(key) if found is None else found

    def _read_zarr(self, key: tuple[Any, ...]) -> np.ndarray:
        """``key`` read by Zarr, every chunk it touches checked first."""
        for idx in _blocks(key, self.shape, self.chunk):
            self._check(idx)
        try:
            return np.asarray(self._arr[key])
        except Exception as exc:
            raise FileFormatError(self._corrupt(key, exc)) from exc

    def _corrupt(self, key: tuple[Any, ...], exc: Exception) -> str:
        """The message for a read that failed, naming the first chunk of ``key`` that does not decode."""
        bad = "?"
        for idx in _blocks(key, self.shape, self.chunk):
            try:
                self._arr.get_block_selection(idx)
            except Exception as err:
                bad, exc = self._keys(idx), err
                break
        return (
            f"{self.store}: chunk '{self.rel}/{bad}' is corrupt and does not decode "
            f"({type(exc).__name__}: {str(exc)[:120]}); the store was damaged after it was written"
        )

    def _check(self, idx: tuple[int, ...], tail: int | None | bool = False) -> None:
        """The chunk's file is there and ends in the checksum the manifest gave (``tail``: read here if False)."""
        key = self._keys(idx)
        if tail is False:
            tail = _tail(Path(self.store) / self.rel / key)
        if self.tails is None:
            return
        flat = int(np.ravel_multi_index(idx, [-(-s // c) for s, c in zip(self.shape, self.chunk, strict=True)])) if idx else 0
        want = self.tails[flat]
        if tail is None and want is not None:
            raise FileFormatError(_missing(Path(self.store), self.rel, key))
        if tail != want:
            raise FileFormatError(
                f"{self.store}: chunk '{self.rel}/{key}' is not the chunk the store was written with (its checksum "
                "differs from the manifest read at open): the store was overwritten by another save since it was "
                "opened (open it again), or it was damaged"
            )

    def _read_direct(self, idx: tuple[int, ...], key: tuple[Any, ...]) -> np.ndarray | None:
        """``key`` (inside chunk ``idx``) from the chunk's file, checked and decoded (:mod:`._chunks`);
        None when the file is missing and the manifest expects none (Zarr's fill values then)."""
        rel = f"{self.rel}/{self._keys(idx)}"
        try:
            data = read(Path(self.store) / rel, self.chunk, self.dtype)
            self._check(idx, int.from_bytes(data[-4:], "little") if len(data) >= 4 else -1)
            out = decode(data, self.chunk, self.dtype)
        except FileNotFoundError:
            self._check(idx, None)
            return None
        except FileFormatError:  # the manifest's check (a ValueError too): its own message
            raise
        except ValueError as exc:
            raise FileFormatError(f"{self.store}: chunk '{rel}' is corrupt and does not decode ({exc}); the store "
                                  "was damaged after it was written") from None
        except OSError as exc:  # a folder, a file this user may not read, an I/O error
            raise FileFormatError(f"{Path(self.store) / rel}: expected a readable chunk file, but reading it failed "
                                  f"({exc.strerror or exc})") from None
        return out[tuple(_local(k, n, i * c) for k, n, i, c in zip(key, self.shape, idx, self.chunk, strict=True))]


def _local(k: Any, n: int, origin: int) -> Any:
    """An integer or step-1 slice of an axis of length ``n``, relative to a chunk starting at ``origin``."""
    if isinstance(k, (int, np.integer)):
        return int(k) - origin
    start, stop, _ = k.indices(n)
    return slice(start - origin, stop - origin)


def _one_chunk(key: tuple[Any, ...], shape: tuple[int, ...], chunk: tuple[int, ...]) -> tuple[int, ...] | None:
    """The chunk that holds all of a normalised ``key`` (integers and step-1 slices only), else None."""
    if len(key) != len(shape):
        return None
    idx = []
    for k, n, c in zip(key, shape, chunk, strict=True):
        if isinstance(k, (int, np.integer)):
            start, stop = int(k), int(k) + 1
        elif isinstance(k, slice) and k.step in (None, 1):
            start, stop, _ = k.indices(n)
        else:
            return None
        if stop <= start or start // c != (stop - 1) // c:
            return None
        idx.append(start // c)
    return tuple(idx)


def _blocks(key: tuple[Any, ...], shape: tuple[int, ...], chunk: tuple[int, ...]) -> product:
    """The chunk indices a normalised index touches (a superset for strided or fancy indices)."""
    ranges = []
    for k, n, c in zip(key, shape, chunk, strict=False):
        if isinstance(k, slice):
            start, stop, _ = k.indices(n)
            ranges.append(range(start // c, -(-stop // c)) if stop > start else range(0))
        elif isinstance(k, (int, np.integer)):
            ranges.append(range(int(k) // c, int(k) // c + 1))
        else:
            ix = np.asarray(k).ravel()
            ranges.append(range(int(ix.min()) // c, int(ix.max()) // c + 1) if ix.size else range(0))
    return product(*ranges)


def verified_array(store: Path, rel: str, manifest: dict[str, Any] | None) -> da.Array:
    """A lazy dask array of one Zarr array of ``store``, in its chunks, checked chunk by chunk."""
    entry = (manifest or {}).get("arrays", {}).get(rel)
    src = _Verified(store, rel, entry["tails"] if entry else None)
    token = (manifest or {}).get("token") or str(os.stat(store / rel / "zarr.json").st_mtime_ns)
    name = f"open-{rel.replace('/', '-')}-" + dask.base.tokenize(str(store.resolve()), rel, token)
    return da.from_array(src, chunks=src.chunk, name=name, meta=np.empty((0,) * src.ndim, src.dtype))
