"""The chunk files of the stores pfibsims writes, encoded and decoded without Zarr's machinery.

``save``'s layout: every array's chunks are the C-order, little-endian bytes of a whole chunk
(the short chunks at the far edges padded with the fill value, as Zarr pads them), compressed by
Blosc (LZ4, level 5, after bit shuffling) and followed by their CRC-32C: Zarr's codecs ``bytes``,
``blosc`` and ``crc32c``, in Zarr v3's default chunk keys (``c/0/1/2``), so Zarr and xarray read
the store as any other. The Blosc codec was chosen by measurement (:func:`compressor`).

Zarr writes and reads such a chunk through its event loop and a thread hop for the codec, about
1.5 ms more a 1024^2 chunk than the codec itself, and that part did not overlap between dask
threads; :func:`encode` and :func:`decode` do the same bytes directly (benchmarks/README.md,
"Reading a store"). A decoded chunk's sizes are checked before any buffer is made.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BLOSC_HEADER", "chunk_key", "codecs", "compressor", "decode", "encode", "in_saved_layout", "read"]

#: Bytes of a Blosc (1.x) header: version, flags, type size, then the raw, block and compressed sizes.
BLOSC_HEADER = 16
#: Blosc's parameters for every array written (see :func:`compressor`).
_CNAME, _CLEVEL = "lz4", 5


def compressor() -> Any:
    """The chunk codec of every array written: Blosc, LZ4 (level 5) after bit shuffling.

    Measured on 1024^2 phantom chunks, one core (``benchmarks/bench_codecs.py``, table in
    benchmarks/README.md): it compresses EDS counts 4.13x and SIMS counts 2.83x (zstd level 3:
    3.71x, 2.60x), and encodes counts 7-14x (float32 2.2x) and decodes 3.5-4.5x faster than zstd 3, whose
    100-175 Mvoxel/s a core made writing and reading the store the slowest part of a 700 um
    pipeline.
    """
    import zarr.codecs

    return zarr.codecs.BloscCodec(cname=_CNAME, clevel=_CLEVEL, shuffle="bitshuffle")


def codecs() -> tuple[Any, ...]:
    """The bytes-to-bytes codecs of every array written: :func:`compressor`, then a CRC-32C checksum.

    Every read checks the checksum (see :mod:`pfibsims.io._integrity`), so a damaged chunk is an
    error, never wrong numbers; it costs about 0.3 ms a 1024^2 chunk.
    """
    import zarr.codecs

    return (compressor(), zarr.codecs.Crc32cCodec())


def in_saved_layout(arr: Any) -> bool:
    """The Zarr array is in ``save``'s layout: little-endian bytes, Blosc, CRC-32C, unsharded, default keys."""
    from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec

    meta = arr.metadata
    parts = getattr(meta, "codecs", None)
    encoding = getattr(meta, "chunk_key_encoding", None)
    if (parts is None or len(parts) != 3 or sys.byteorder != "little" or arr.dtype.kind not in "biuf"
            or getattr(encoding, "name", None) != "default" or getattr(encoding, "separator", None) != "/"):
        return False
    first, second, third = parts
    endian = getattr(getattr(first, "endian", None), "value", None)
    return (type(first) is BytesCodec and (endian == "little" or arr.dtype.itemsize == 1)
            and type(second) is BloscCodec and type(third) is Crc32cCodec)


def chunk_key(idx: tuple[int, ...]) -> str:
    """The key of chunk ``idx`` (Zarr v3 default encoding)."""
    return "/".join(("c", *map(str, idx))) if idx else "c"


def encode(block: np.ndarray) -> bytes:
    """A whole chunk's file: its bytes through Blosc, then their CRC-32C (little-endian)."""
    import google_crc32c
    from numcodecs import Blosc

    block = np.ascontiguousarray(block)
    body = Blosc(cname=_CNAME, clevel=_CLEVEL, shuffle=Blosc.BITSHUFFLE, typesize=block.dtype.itemsize).encode(block)
    return bytes(body) + google_crc32c.value(bytes(body)).to_bytes(4, "little")


def _limit(shape: tuple[int, ...], dtype: np.dtype) -> int:
    """The longest a chunk file can be: Blosc stores at most the raw bytes and its header; then the checksum."""
    return math.prod(shape) * np.dtype(dtype).itemsize + BLOSC_HEADER + 4


def _check_length(n: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """A chunk file holds a Blosc header and a checksum, and at most the raw bytes besides (``ValueError``)."""
    if not BLOSC_HEADER + 4 <= n <= _limit(shape, dtype):
        raise ValueError(f"{n} bytes, expected {BLOSC_HEADER + 4} to {_limit(shape, dtype)}")


def read(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """The bytes of a chunk's file; ``ValueError`` before reading a file longer than such a chunk can be
    (a short one is read: :func:`decode` refuses it)."""
    with open(path, "rb") as fh:
        n = os.fstat(fh.fileno()).st_size
        if n > _limit(shape, dtype):
            _check_length(n, shape, dtype)
        return fh.read()


def decode(data: bytes, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A chunk's file back to its array; ``ValueError`` saying what is wrong when it is not one.

    Checked before decoding: the length (Blosc stores at most the raw bytes and its header), the
    CRC-32C, and the raw and compressed sizes the Blosc header declares.
    """
    import google_crc32c
    from numcodecs import blosc

    _check_length(len(data), shape, dtype)
    out = np.empty(shape, dtype)
    body = np.frombuffer(data, np.uint8)[:-4]
    if google_crc32c.value(body) != int.from_bytes(data[-4:], "little"):
        raise ValueError("its CRC-32C does not match its bytes")
    declared = int.from_bytes(data[4:8], "little"), int.from_bytes(data[12:16], "little")
    if declared != (out.nbytes, body.size):
        raise ValueError(f"its Blosc header declares {declared[0]} bytes in {declared[1]}, expected {out.nbytes} in "
                         f"{body.size}")
    try:
        blosc.decompress(body, out)
    except Exception as exc:
        raise ValueError(f"{type(exc).__name__}: {str(exc)[:120]}") from None
    return out


class ChunkWriter:
    """A target for ``dask.array.store``: each block it is given (one chunk of a Zarr array in
    ``save``'s layout, aligned to the chunk grid) written as that chunk's file by :func:`encode`.

    ``array_dir`` must exist (Zarr creates it with the array's ``zarr.json``); the writer creates only the
    chunk folders below it, so a chunk written after a failed save removed its store raises
    ``FileNotFoundError`` instead of creating the store again."""

    def __init__(self, array_dir: Path, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: np.dtype,
                 fill: Any) -> None:
        self.dir, self.shape, self.chunks, self.dtype, self.fill = Path(array_dir), shape, chunks, np.dtype(dtype), fill

    def __setitem__(self, key: tuple[slice, ...], value: np.ndarray) -> None:
        idx = []
        for k, n, c, size in zip(key, self.shape, self.chunks, np.shape(value), strict=True):
            start, stop, _ = k.indices(n)
            if start % c or stop - start != size or stop != min(start + c, n):
                raise ValueError(f"{self.dir}: a block at {key} is not one chunk of {self.chunks}")
            idx.append(start // c)
        block = np.asarray(value, dtype=self.dtype)
        if block.shape != tuple(self.chunks):  # a short chunk at an edge: padded as Zarr pads it
            whole = np.full(self.chunks, self.fill, dtype=self.dtype)
            whole[tuple(slice(0, s) for s in block.shape)] = block
            block = whole
        path = self.dir / chunk_key(tuple(idx))
        folder = self.dir
        for part in path.parent.relative_to(self.dir).parts:  # never the array's folder or above: a failed save
            folder = folder / part  # removes its temporary store while other chunks are still being written,
            folder.mkdir(exist_ok=True)  # and a late chunk must fail (FileNotFoundError), not create it again
        path.write_bytes(encode(block))
