"""Guards every reader shares against hostile files: declared sizes, calibrations, chunked reads, crashing decoders.

Files are untrusted. Before anything is allocated, a size a header declares is checked against
the bytes the file holds and against a sane limit (:func:`check_declared`); a calibration is
checked to be a plausible length (:func:`check_pixel_size`; not an error while the caller's own
``pixel_size=`` replaces it, :func:`pixel_size_given`); pixel data are read in blocks of
rows, so that reading one pixel reads a small block (:func:`row_blocks`, :func:`tiff_array`);
and a compiled third-party decoder that can crash on corrupt bytes (RosettaSciIO's Bruker
hypermap unpacker) runs in a child process, where a crash becomes a ``FileFormatError``
naming the file instead of taking the session down (:func:`bcf_hypermap`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from ..errors import FileFormatError

__all__ = [
    "FIELD_NM", "MAX_ELEMENTS", "PIXEL_NM", "bcf_hypermap", "check_declared", "check_jeol_image", "check_jeol_pts", "check_pixel_size", "pixel_size_given", "pixel_size_overrides", "row_blocks", "tiff_array",
]

#: Most values one array of a file may declare (2^34: a 131072^2 map, a 4096^2 x 1024 cube).
MAX_ELEMENTS = 2**34
#: Plausible pixel sizes in nm: from 1 pm (atomic resolution) to 10 cm (a mosaic of a whole sample).
PIXEL_NM = (1e-3, 1e8)
#: Largest field of view in nm (10 cm) a calibration may give.
FIELD_NM = 1e8
#: True while a public reader reads files whose calibration the caller's ``pixel_size=`` replaces.
_PIXEL_SIZE_GIVEN: ContextVar[bool] = ContextVar("pfibsims_pixel_size_given", default=False)
#: Bytes of one block of rows read by one task.
BLOCK_BYTES = 16 * 2**20
#: Largest decoded/stored size ratio a compressed TIFF may claim (deflate's limit is 1032:1).
MAX_RATIO = 1100


def check_declared(shape: Sequence[Any], dtype: Any, path: Any, *, stored: int | None = None, what: str = "data") -> tuple[int, ...]:
    """``shape`` as ints after checking it against the file before anything is allocated.

    Parameters
    ----------
    shape, dtype
        What the file's header declares.
    stored : int, optional
        Bytes of the file that hold these values, when they are stored uncompressed: the
        declared size must fit in them.
    what : str
        What the values are, for the message.

    Raises
    ------
    FileFormatError
        When a dimension is not a non-negative integer, the count exceeds
        :data:`MAX_ELEMENTS`, or the values need more bytes than ``stored``.

    Examples
    --------
    >>> check_declared((100000, 100000), "uint16", "map.tif", stored=524288)
    Traceback (most recent call last):
    ...
    pfibsims.errors.FileFormatError: map.tif: its header declares 100000 x 100000 values of uint16 (20000000000 bytes) of data, but the file holds 524288 bytes of them; the header is corrupt or the file truncated
    """
    try:
        dims = tuple(int(s) for s in shape)
        if any(d != s for d, s in zip(dims, shape, strict=True)):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise FileFormatError(f"{path}: expected integer dimensions of {what}, found {tuple(shape)!r}") from None
    if any(d < 0 for d in dims):
        raise FileFormatError(f"{path}: expected non-negative dimensions of {what}, found {dims}")
    n = math.prod(dims)
    shown = " x ".join(map(str, dims))
    if n > MAX_ELEMENTS:
        raise FileFormatError(f"{path}: its header declares {shown} values of {what}, more than the {MAX_ELEMENTS} a file may hold")
    need = n * np.dtype(dtype).itemsize
    if stored is not None and need > stored:
        raise FileFormatError(
            f"{path}: its header declares {shown} values of {np.dtype(dtype)} ({need} bytes) of {what}, but the file "
            f"holds {stored} bytes of them; the header is corrupt or the file truncated"
        )
    return dims


@contextlib.contextmanager
def pixel_size_given(given: bool) -> Iterator[None]:
    """Within this block, when ``given``, :func:`check_pixel_size` lets an implausible calibration through
    (the caller gave ``pixel_size=``, which replaces the file's: the advice of its error message)."""
    token = _PIXEL_SIZE_GIVEN.set(bool(given))
    try:
        yield
    finally:
        _PIXEL_SIZE_GIVEN.reset(token)


def pixel_size_overrides(reader: Callable[..., Any]) -> Callable[..., Any]:
    """A public reader whose keyword ``pixel_size=``, when given, replaces the files' calibration: it reads
    them inside :func:`pixel_size_given`, so an implausible calibration is no error there."""

    @functools.wraps(reader)
    def read(*args: Any, **kwargs: Any) -> Any:
        with pixel_size_given(kwargs.get("pixel_size") is not None):
            return reader(*args, **kwargs)

    return read


def check_pixel_size(pixel: Sequence[float] | None, path: Any, *, shape: Sequence[int] | None = None,
                     what: str = "pixel size") -> tuple[float, ...] | None:
    """``pixel`` (nm, ``(y, x)`` or one value) unchanged if plausible; None passes.

    Every value must lie in :data:`PIXEL_NM` and, given the image ``shape`` (rows, columns),
    the field it spans may not exceed :data:`FIELD_NM` (10 cm). Inside :func:`pixel_size_given`
    (the caller gave ``pixel_size=``) an implausible value is returned as it is, not refused: the
    caller's pixel size replaces it (the file's stays in the attrs as ``file_pixel_size``).

    Examples
    --------
    >>> check_pixel_size((81.4, 81.4), "a.h5oina")
    (81.4, 81.4)
    >>> check_pixel_size((1e33, 1e33), "a.h5oina")
    Traceback (most recent call last):
    ...
    pfibsims.errors.FileFormatError: a.h5oina: expected a pixel size between 0.001 nm and 1e+08 nm, found 1e+33 nm in the file; give pixel_size= if the file's calibration is wrong
    """
    if pixel is None or _PIXEL_SIZE_GIVEN.get():
        return None if pixel is None else tuple(pixel)
    lo, hi = PIXEL_NM
    for v in pixel:
        if not (np.isfinite(v) and lo <= v <= hi):
            raise FileFormatError(
                f"{path}: expected a {what} between {lo:g} nm and {hi:g} nm, found {v:.6g} nm in the file; "
                "give pixel_size= if the file's calibration is wrong"
            )
    if shape is not None:
        sizes = list(pixel) * 2 if len(pixel) == 1 else list(pixel)
        field = max(float(v) * int(n) for v, n in zip(sizes, shape[-2:], strict=False))
        if field > FIELD_NM:
            raise FileFormatError(
                f"{path}: its {what} of {max(sizes):.6g} nm makes a field of {field / 1e6:.6g} mm, larger than the "
                f"{FIELD_NM / 1e6:g} mm an instrument images; give pixel_size= if the file's calibration is wrong"
            )
    return tuple(pixel)


def row_blocks(func: Callable[..., np.ndarray], path: Path, *args: Any, shape: tuple[int, ...], dtype: Any,
               block_bytes: int | None = None) -> da.Array:
    """A dask array whose blocks of rows (first axis) are read by ``func(path, *args, row0, row1)``.

    ``func`` must be module level (picklable); each block is at most ``block_bytes`` (default
    :data:`BLOCK_BYTES`; at least one row), so computing one value reads one block.
    """
    from ._common import delayed_array

    row_bytes = max(1, math.prod(shape[1:]) * np.dtype(dtype).itemsize)
    step = max(1, (block_bytes or BLOCK_BYTES) // row_bytes)
    if shape[0] == 0:
        return da.zeros(shape, dtype=dtype)
    blocks = [
        delayed_array(func, path, *args, r, min(r + step, shape[0]), shape=(min(r + step, shape[0]) - r, *shape[1:]), dtype=dtype)
        for r in range(0, shape[0], step)
    ]
    return blocks[0] if len(blocks) == 1 else da.concatenate(blocks, axis=0)


def _tiff_block(path: str, page: int | None, plane: int | None, row0: int, row1: int) -> np.ndarray:
    """Rows ``row0:row1`` of a TIFF page, or of one plane of series 0, decoding only their strips or tiles."""
    import tifffile
    import zarr

    with tifffile.TiffFile(path) as tif:
        store = (tif.series[0] if page is None else tif.pages[page]).aszarr()
        try:
            z = zarr.open(store, mode="r")
            return np.asarray(z[row0:row1] if plane is None else z[plane, row0:row1])
        finally:
            store.close()


def tiff_array(path: Path, *, shape: tuple[int, ...], dtype: Any, page: int | None = None) -> da.Array:
    """A TIFF image (``page``) or its series 0 (a 2-D map or a (z, y, x) stack) as blocks of rows.

    ``shape`` may hold fewer rows than stored (a data bar cropped off). Each task decodes only
    the strips or tiles of its rows.
    """
    if len(shape) == 2:
        return row_blocks(_tiff_block, path, page, None, shape=tuple(shape), dtype=dtype)
    planes = [row_blocks(_tiff_block, path, page, k, shape=tuple(shape[1:]), dtype=dtype) for k in range(shape[0])]
    return da.stack(planes) if planes else da.zeros(shape, dtype=dtype)


def check_jeol_image(path: Path) -> None:
    """Check a JEOL ``.map``/``.img`` holds the pixels its ``Image/Size`` declares, before RosettaSciIO reads it.

    RosettaSciIO resizes the stored ``Image/Bits`` to the declared ``Size`` in place: a larger
    size is zero-padded silently (or a ``MemoryError`` for 100000 x 100000), a smaller one cut.
    The header is parsed with RosettaSciIO's own tag parser, which reads no more than the file holds.
    """
    from rsciio.jeol._api import _parsejeol

    with open(path, "rb") as fd:
        head = np.fromfile(fd, "<I", 1)
        if head.size != 1 or int(head[0]) != 52:
            raise FileFormatError(f"{path}: expected a JEOL image or map (magic number 52), found other data")
        fd.seek(36)
        pos = np.fromfile(fd, "<I", 3)
        if pos.size != 3:
            raise FileFormatError(f"{path}: expected a JEOL header, found a file of {os.path.getsize(path)} bytes")
        fd.seek(int(pos[2]) + 12)
        header = _parsejeol(fd)
    image = header.get("Image", {}) if isinstance(header, dict) else {}
    size, bits = image.get("Size"), image.get("Bits")
    if size is None or bits is None or np.size(size) != 2:
        raise FileFormatError(f"{path}: expected Image/Size and Image/Bits in the JEOL header, found {sorted(image)[:8]}")
    width, height = check_declared(tuple(np.ravel(size)), np.asarray(bits).dtype, path, what="JEOL image pixels (Size)")
    if width * height != np.size(bits):
        raise FileFormatError(
            f"{path}: its header declares {width} x {height} pixels (Image/Size), but Image/Bits holds {np.size(bits)} values; "
            "the header is corrupt or the file truncated"
        )


def check_jeol_pts(path: Path) -> None:
    """Check a JEOL ``.pts`` holds the event stream its header declares (``data_pos + data_len`` bytes).

    RosettaSciIO decodes whatever events are there, so a truncated file would read as a map
    with fewer counts, silently.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as fd:
        magic = np.fromfile(fd, "<I", 1)
        fd.seek(12)
        head = np.fromfile(fd, "<I", 6)
    if magic.size != 1 or int(magic[0]) != 304 or head.size != 6:
        raise FileFormatError(f"{path}: expected a JEOL .pts spectrum image (magic number 304 and its header), found other data")
    data_pos, data_len = int(head[4]), int(head[5])
    if data_pos + data_len > size:
        raise FileFormatError(
            f"{path}: its header declares {data_len} bytes of events from byte {data_pos}, but the file has {size} bytes; "
            "the file is truncated"
        )


_BCF_CHILD = """
import logging, sys
import numpy as np
logging.disable(logging.CRITICAL)
from rsciio.bruker._api import BCF_reader
path, index, out = sys.argv[1], sys.argv[2], sys.argv[3]
data = BCF_reader(path).parse_hypermap(index=None if index == "None" else int(index), lazy=False)
np.save(out, np.ascontiguousarray(data), allow_pickle=False)
"""


def bcf_hypermap(path: str, index: int | None, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """A Bruker hypermap decoded by RosettaSciIO in a child process (module level: a dask task).

    The compiled unpacker reads packed pixel records without bounds checks: 16 flipped bytes
    made it segfault. In a child, a crash, a hang (timeout growing with the file size) or a
    Python error becomes a ``FileFormatError`` naming the file; only a plain ``.npy`` array
    (no pickle) comes back, and its shape and dtype are checked.
    """
    size = os.path.getsize(path)
    fd, out = tempfile.mkstemp(suffix=".npy", prefix="pfibsims-bcf-")
    os.close(fd)
    try:
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _BCF_CHILD, str(path), str(index), out],
                capture_output=True, text=True, timeout=60 + size / 2**20, check=False,
            )
        except subprocess.TimeoutExpired:
            raise FileFormatError(f"{path}: decoding the Bruker hypermap did not finish in {60 + size / 2**20:.0f} s; the file is corrupt") from None
        if proc.returncode < 0:
            name = signal.Signals(-proc.returncode).name
            raise FileFormatError(
                f"{path}: the Bruker hypermap decoder (RosettaSciIO) crashed on this file ({name}); the file is corrupt"
            )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise FileFormatError(f"{path}: expected a readable Bruker hypermap, but decoding it failed ({last[:200]}); the file is corrupt")
        data = np.load(out, allow_pickle=False)
    finally:
        os.unlink(out)
    if data.shape != tuple(shape) or data.dtype != np.dtype(dtype):
        raise FileFormatError(f"{path}: expected a hypermap of shape {tuple(shape)} {dtype}, the decoder gave {data.shape} {data.dtype}")
    return data
