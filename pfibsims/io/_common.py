"""Pieces every reader shares: path checks, wrapped errors, lazy file access, slice stacking.

A reader module turns one file into a :class:`Frame` (channel arrays, pixel
size, acquisition attrs); :func:`build` turns one or more frames into a
dataset of the data model with :func:`pfibsims.dataset.stack`.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import glob
import math
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ..dataset import jsonable, record, stack
from ..errors import DataModelError, FileFormatError, PfibsimsError, UnitsError
from ..units import lengths_nm

__all__ = [
    "Frame", "axes_pixel_size", "build", "check_file", "check_tiff_complete", "delayed_array", "expand_paths",
    "files_in", "flat_attrs", "is_dir", "natural_key", "path_mode", "reading",
]


@dataclass
class Frame:
    """What one file holds: channels (2-D or 3-D arrays), pixel size, attrs.

    ``pixel_size`` is ``(y, x)`` in nm, or None when the file has none.
    ``channel_attrs`` adds to the attrs the data model derives from a name.
    ``origin_px`` places the field: the ``(y, x)`` corner of its first pixel
    in pixels of the frame's own size (default 0: the corner at 0).
    ``z_spacing`` is the slice spacing in nm the file records (an ImageJ
    stack's ``spacing=``), used when no ``slice_thickness``/``depths`` is given.
    """

    channels: dict[str, Any]
    pixel_size: tuple[float, float] | None
    attrs: dict[str, Any] = field(default_factory=dict)
    channel_attrs: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: str = ""
    units: str = "counts"
    origin_px: tuple[float, float] | None = None
    z_spacing: float | None = None


def check_file(path: Any, *, suffixes: Sequence[str] | None = None, what: str = "file") -> Path:
    """``path`` as an existing regular file, with one of ``suffixes`` if given.

    Raises
    ------
    FileFormatError
        When the path is missing, a directory, or of the wrong format.

    Examples
    --------
    >>> check_file("/no/such/map.tif")
    Traceback (most recent call last):
    ...
    pfibsims.errors.FileFormatError: path: expected an existing file, got '/no/such/map.tif', which does not exist
    """
    if not isinstance(path, (str, os.PathLike)):
        raise FileFormatError(f"path: expected a file path (str or Path), got {type(path).__name__}")
    p = Path(path).expanduser()
    mode = path_mode(p, path)
    if mode is None:
        raise FileFormatError(f"path: expected an existing file, got '{path}', which does not exist")
    if stat.S_ISDIR(mode):
        raise FileFormatError(f"path: expected a file, got '{path}', which is a directory")
    if not stat.S_ISREG(mode):  # a pipe would block the reader, a device never end
        raise FileFormatError(f"path: expected a regular file, got '{path}', which is a device, a pipe or a socket")
    if suffixes is not None and p.suffix.lower() not in suffixes:
        raise FileFormatError(f"path: expected a {what} ({', '.join(suffixes)}), got '{path}'")
    if not os.access(p, os.R_OK, effective_ids=os.access in os.supports_effective_ids):
        raise FileFormatError(f"path: expected a readable file, got '{path}', which this user may not read (permission denied)")
    return p


def path_mode(p: Path, given: Any) -> int | None:
    """The ``st_mode`` of ``p`` (links followed), or None when nothing is there.

    A path that cannot be looked at (a symbolic-link loop, a name too long, a folder this user
    may not enter) is a ``FileFormatError`` naming ``given`` and the reason, never an OSError.
    """
    try:
        return p.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = "a symbolic-link loop" if getattr(exc, "errno", None) == errno.ELOOP else (
            getattr(exc, "strerror", None) or str(exc))
        raise FileFormatError(f"path: expected a path this user can look at, got '{given}' ({reason})") from None


def is_dir(p: Path) -> bool:
    """``p.is_dir()`` that is False, not an OSError, when ``p`` cannot be looked at (then reading it says why)."""
    try:
        return stat.S_ISDIR(p.stat().st_mode)
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def reading(path: Any, what: str) -> Iterator[None]:
    """Turn any library error raised while reading ``path`` into a FileFormatError.

    pfibsims errors pass through unchanged; anything else (a truncated file,
    a parser's KeyError, an OSError) becomes ``FileFormatError`` naming the
    path, the format expected and the original message.
    """
    try:
        yield
    except PfibsimsError:
        raise
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise FileFormatError(
            f"{path}: expected a readable {what}, but reading it failed "
            f"({type(exc).__name__}: {msg[:200]}); the file may be truncated, corrupt or of another format"
        ) from exc


def _file_token(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def _guarded(func: Callable[..., np.ndarray], path: str, *args: Any) -> np.ndarray:
    """Run a read task; a failure (file changed, truncated since opening) names the path."""
    with reading(path, "file"):
        return func(path, *args)


def check_tiff_complete(tif: Any, path: Path) -> None:
    """Raise FileFormatError if a TIFF's pixel data run past the end of the file, do not hold what it declares,
    are compressed with a codec tifffile cannot decode here (LZW without ``imagecodecs``), are of no width,
    height or numpy type, or if its chain of pages points past the end of the file (a truncated stack that
    would read as fewer slices), to bytes that hold no page directory (tifffile stops there, silently) or
    back to one of its pages (a loop tifffile would iterate for ever).

    Every page's declared size (``ImageWidth`` x ``ImageLength`` x samples) is checked before
    anything is allocated: uncompressed, it must fit in the page's strips or tiles; compressed,
    it may not exceed what the best compressor can pack into them (1100:1); see
    :func:`pfibsims.io._guards.check_declared`.
    """
    from tifffile import TIFF

    from ._guards import MAX_ELEMENTS, MAX_RATIO

    size = path.stat().st_size
    n_pages = len(tif.pages)  # indexes the chain first: tifffile detects a loop there, never while iterating
    for i in range(n_pages):
        page = tif.pages[i]
        codec = getattr(page, "keyframe", page).compression
        if codec != 1 and codec not in TIFF.DECOMPRESSORS:  # e.g. LZW without imagecodecs
            name = getattr(codec, "name", codec)
            raise FileFormatError(
                f"{path}: TIFF page {i} is compressed with {name}, which tifffile decodes only with the "
                "'imagecodecs' package (pip install imagecodecs); it is not installed"
            )
        ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=False)]
        if ends and max(ends) > size:
            raise FileFormatError(
                f"{path}: expected {max(ends)} bytes of TIFF pixel data, found a file of {size} bytes; the file is truncated"
            )
        key = getattr(page, "keyframe", page)
        rows, cols = int(key.imagelength), int(key.imagewidth)
        values = rows * cols * max(1, int(key.imagedepth)) * max(1, int(key.samplesperpixel))
        need = math.ceil(values * max(1, int(key.bitspersample)) / 8)
        if rows < 1 or cols < 1:
            raise FileFormatError(f"{path}: TIFF page {i} declares {cols} x {rows} pixels; expected at least one pixel a row and a column")
        if key.dtype is None:
            raise FileFormatError(
                f"{path}: TIFF page {i} has pixels of a type numpy does not hold (BitsPerSample {key.bitspersample}, "
                f"SampleFormat {int(key.sampleformat)}); its tags are corrupt"
            )
        stored, packed = int(sum(page.databytecounts)), key.compression != 1
        if values > MAX_ELEMENTS or need > stored * (MAX_RATIO if packed else 1):
            raise FileFormatError(
                f"{path}: TIFF page {i} declares {cols} x {rows} pixels ({need} bytes), but holds {stored} bytes of "
                f"{'compressed ' if packed else ''}pixel data; its ImageWidth/ImageLength are corrupt"
            )
    following = _next_ifd(tif, tif.pages[n_pages - 1]) if n_pages else 0
    if following >= size:  # tifffile stops, silently, at a page chain cut short (an ImageJ stack keeps its IFDs at the end)
        raise FileFormatError(
            f"{path}: its TIFF page {n_pages - 1} points to a next page at byte {following}, past the end of the "
            f"file ({size} bytes); the file is truncated (pages after the first {n_pages} are lost)"
        )
    for i in range(n_pages):  # tifffile drops, silently, a tag whose value the file no longer holds (a metadata tag cut off)
        code, end = _tag_values_end(tif, tif.pages[i])
        if end > size:
            raise FileFormatError(
                f"{path}: TIFF page {i}'s tag {code} holds values up to byte {end}, past the end of the file ({size} bytes); "
                "the file is truncated"
            )
    offsets = [tif.pages[i].offset for i in range(n_pages)]
    if following and following in offsets:  # tifffile cut the loop short, silently
        raise FileFormatError(
            f"{path}: its TIFF page {n_pages - 1} points back to page {offsets.index(following)} (byte {following}) as "
            "the next page; the chain of pages loops, the file is corrupt"
        )
    if following:  # inside the file but no directory tifffile could read there: it stopped, silently
        raise FileFormatError(
            f"{path}: its TIFF page {n_pages - 1} points to a next page at byte {following}, where the file holds no "
            f"readable page directory; the file is corrupt (pages after the first {n_pages} are lost)"
        )


def _tag_values_end(tif: Any, page: Any) -> tuple[int, int]:
    """The tag of ``page`` whose values end last in the file, and that end (bytes; (0, 0) when every value is inline)."""
    import struct

    from tifffile import TIFF

    fmt, fh = tif.tiff, tif.filehandle
    fh.seek(page.offset)
    count = struct.unpack(fmt.tagnoformat, fh.read(fmt.tagnosize))[0]
    raw = fh.read(count * fmt.tagsize)
    last_code, last_end = 0, 0
    for k in range(len(raw) // fmt.tagsize):
        code, dtype, n, value = struct.unpack_from(fmt.tagheaderformat, raw, k * fmt.tagsize)
        item = struct.calcsize(fmt.byteorder + TIFF.DATA_FORMATS[dtype]) if dtype in TIFF.DATA_FORMATS else 0
        if n * item > fmt.offsetsize:  # stored elsewhere, at the offset the entry holds
            end = int(struct.unpack(fmt.offsetformat, value)[0]) + n * item
            if end > last_end:
                last_code, last_end = code, end
    return last_code, last_end


def _next_ifd(tif: Any, page: Any) -> int:
    """The offset of the image directory after ``page``'s (0 at the last page of a complete file)."""
    import struct

    fmt, fh = tif.tiff, tif.filehandle
    fh.seek(page.offset)
    count = struct.unpack(fmt.tagnoformat, fh.read(fmt.tagnosize))[0]
    fh.seek(page.offset + fmt.tagnosize + count * fmt.tagsize)
    raw = fh.read(fmt.offsetsize)
    return int(struct.unpack(fmt.offsetformat, raw)[0]) if len(raw) == fmt.offsetsize else 0


def delayed_array(func: Callable[..., np.ndarray], path: Path, *args: Any, shape: tuple[int, ...], dtype: Any) -> da.Array:
    """A dask array of one chunk whose task calls ``func(path, *args)``.

    ``func`` must be a module-level function (picklable for
    dask.distributed); the task name is deterministic: it depends on the
    file's path, size and modification time and on ``args``.
    """
    token = dask.base.tokenize(func.__module__, func.__qualname__, _file_token(path), args)
    value = dask.delayed(_guarded, pure=True)(func, str(path), *args, dask_key_name=f"read-{func.__name__}-{token}")
    return da.from_delayed(value, shape=shape, dtype=dtype, name=f"{func.__name__}-{token}")


def natural_key(path: Any) -> tuple[Any, ...]:
    """Sort key that reads the digits in a name as numbers: ``slice_2`` before ``slice_10``.

    Examples
    --------
    >>> sorted(["slice_10.bcf", "slice_2.bcf", "slice_1.bcf"], key=natural_key)
    ['slice_1.bcf', 'slice_2.bcf', 'slice_10.bcf']
    """
    text = os.fspath(path)
    return tuple((0, int(t), t) if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text) if t)


def files_in(directory: Path, patterns: Sequence[str]) -> list[Path]:
    """The files of ``directory`` matching any of ``patterns``, whatever the case, sorted naturally.

    Instrument PCs write upper-case extensions (``SLICE_1.TIF``, ``View000_0000001.MAP``);
    ``"*.tif"`` finds them as it finds ``slice_1.tif``. Hidden files (``._slice_1.tif``, the
    metadata a Mac leaves beside copies) are left out, as a glob pattern leaves them out.
    """
    pats = [pat.lower() for pat in patterns]
    found = [
        q for q in directory.iterdir()
        if not q.name.startswith(".") and q.is_file() and any(fnmatch.fnmatchcase(q.name.lower(), pat) for pat in pats)
    ]
    return sorted(found, key=natural_key)


def _glob_files(pattern: str) -> list[Path]:
    """The files a glob pattern matches, sorted naturally; a folder named with glob characters
    (``run [1]/*.tif``) is taken literally when the pattern as a whole matches nothing."""
    found = [Path(q) for q in glob.glob(pattern)]
    head, tail = os.path.split(pattern)
    if not found and head and glob.has_magic(head) and Path(head).is_dir():
        found = [Path(q) for q in glob.glob(os.path.join(glob.escape(head), tail))]
    return sorted((q for q in found if q.is_file()), key=natural_key)


def expand_paths(path_or_paths: Any, *, patterns: Sequence[str] = ()) -> list[Path]:
    """A path, a glob pattern, a directory or a list of paths as a sorted list of files.

    A directory expands to the files matching ``patterns`` (e.g.
    ``("*.map",)``, whatever the case: :func:`files_in`); a glob pattern to its matches
    (an existing file is read as named, even with ``[`` or ``*`` in its name). Both are sorted
    naturally (:func:`natural_key`: ``slice_2`` before ``slice_10``); a
    list keeps its order.

    Raises
    ------
    FileFormatError
        When nothing matches or a listed path does not exist.
    """
    if isinstance(path_or_paths, (list, tuple)):
        if not path_or_paths:
            raise FileFormatError("path_or_paths: expected at least one path, got an empty list")
        return [check_file(p) for p in path_or_paths]
    if not isinstance(path_or_paths, (str, os.PathLike)):
        raise FileFormatError(f"path_or_paths: expected a path, a glob pattern or a list of paths, got {type(path_or_paths).__name__}")
    text = os.fspath(path_or_paths)
    p = Path(text).expanduser()
    if is_dir(p):
        if not os.access(p, os.R_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids):
            raise FileFormatError(f"path: expected a directory this user may list, got '{text}' (permission denied)")
        found = files_in(p, patterns)
        if not found:
            raise FileFormatError(f"path: expected files matching {list(patterns)} in directory '{text}', found none")
        return found
    if glob.has_magic(text) and not p.is_file():  # an existing 'scan[1].tif' is a path, not a pattern
        found = _glob_files(os.path.expanduser(text))
        if not found:
            raise FileFormatError(f"path: expected files matching the pattern '{text}', found none")
        return found
    return [check_file(p)]


def _odd_ones(frames: Sequence[Frame], key: Callable[[Frame], Any]) -> tuple[Any, Frame, int, list[Frame]]:
    """The value most frames share (ties: the first), a frame holding it, how many do, and the frames that differ.

    A stray file among slices (an overview, a thumbnail) is the odd one out, whatever its name sorts as.
    """
    counts: dict[Any, list[Frame]] = {}
    for f in frames:
        counts.setdefault(key(f), []).append(f)
    common = max(counts, key=lambda v: len(counts[v]))  # max keeps the first of equal counts
    return common, counts[common][0], len(counts[common]), [f for f in frames if key(f) != common]


def _others(n: int) -> str:
    return "" if n <= 1 else f" and {n - 1} other file{'s' if n > 2 else ''}"


def _pixel_size(frames: Sequence[Frame], pixel_size: Any) -> tuple[tuple[float, float], str]:
    """The pixel size to use and where it came from ('user' or 'file')."""
    if pixel_size is not None:
        return lengths_nm(pixel_size, 2, name="pixel_size"), "user"
    missing = [f.path for f in frames if f.pixel_size is None]
    if missing:
        raise FileFormatError(
            f"pixel_size: '{missing[0]}' has no pixel calibration; give it, e.g. pixel_size='81.4 nm'"
        )
    common, ref, n, odd = _odd_ones(frames, lambda f: tuple(round(v, 6) for v in f.pixel_size))  # type: ignore[union-attr]
    if odd:
        found = sorted({tuple(round(v, 6) for v in f.pixel_size) for f in odd})  # type: ignore[union-attr]
        raise FileFormatError(
            f"pixel_size: expected one pixel size across slices, found {found} nm in {[Path(f.path).name for f in odd][:8]} "
            f"but {common} nm in '{ref.path}'{_others(n)}; leave out files that are not slices (an overview, a thumbnail), "
            "or give pixel_size= to override"
        )
    return frames[0].pixel_size, "file"  # type: ignore[return-value]


def _check_consistent(frames: Sequence[Frame]) -> None:
    first = frames[0]
    names = list(first.channels)
    for f in frames[1:]:
        if list(f.channels) != names:
            raise FileFormatError(
                f"{f.path}: expected the channels {names} of '{first.path}', found {list(f.channels)}"
            )
    shape, ref, n, odd = _odd_ones(frames, lambda f: np.shape(next(iter(f.channels.values())))[-2:])
    if odd:
        s = np.shape(next(iter(odd[0].channels.values())))[-2:]
        more = f" (so do {[Path(f.path).name for f in odd[1:]][:8]})" if len(odd) > 1 else ""
        raise FileFormatError(
            f"{odd[0].path}: expected slices of shape {shape} (as '{ref.path}'{_others(n)}), found {s}{more}; "
            "leave out files that are not slices (an overview, a thumbnail)"
        )


def flat_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """``attrs`` with each mapping spread into ``<key>_<sub>`` entries (sub-keys lower-cased), empty ones dropped.

    netCDF attributes are numbers, strings or flat lists: a dict attr (the stage position, the energy
    calibration) made ``to_netcdf`` fail.

    Examples
    --------
    >>> flat_attrs({"stage_position": {"X": "1 mm", "Y": "2 mm"}, "empty": {}, "beam_energy": "5 kV"})
    {'stage_position_x': '1 mm', 'stage_position_y': '2 mm', 'beam_energy': '5 kV'}
    """
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if isinstance(value, Mapping):
            out.update(flat_attrs({f"{key}_{str(k).lower()}": v for k, v in value.items()}))
        else:
            out[key] = value
    return out


def build(
    frames: Sequence[Frame],
    *,
    step: str,
    modality: str,
    pixel_size: Any = None,
    slice_thickness: Any = None,
    depths: Any = None,
    chunks: Any = None,
    params: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """One dataset from frames read from one or more files (slices along ``z``).

    A user-given ``pixel_size`` overrides the files' calibration (the file's
    value is kept in ``attrs['file_pixel_size']``). Several files become
    slices in the order given; the history records it (``z_order``: the
    file name of each slice).
    """
    _check_consistent(frames)
    (py, px), source = _pixel_size(frames, pixel_size)
    origin = None
    if frames[0].origin_px is not None:
        oy, ox = frames[0].origin_px
        origin = (f"{(oy + 0.5) * py!r} nm", f"{(ox + 0.5) * px!r} nm")
    channels: dict[str, Any] = {name: [f.channels[name] for f in frames] for name in frames[0].channels}
    attrs = flat_attrs(frames[0].attrs)
    if source == "user" and frames[0].pixel_size is not None:
        attrs["file_pixel_size"] = [f"{v:.12g} nm" for v in frames[0].pixel_size]
    attrs["pixel_size_source"] = source
    spacings = {f.z_spacing for f in frames}
    if slice_thickness is None and depths is None and len(spacings) == 1 and None not in spacings:
        slice_thickness = f"{spacings.pop()!r} nm"  # the file's own (an ImageJ stack's spacing=)
        attrs["slice_thickness_source"] = "file"
    attrs["source_files"] = [f.path for f in frames]
    try:
        ds = stack(
            channels,
            pixel_size=(f"{py!r} nm", f"{px!r} nm"),
            slice_thickness=slice_thickness,
            z=depths,
            origin=origin,
            modality=modality,
            units=frames[0].units,
            attrs=jsonable(attrs, name="attrs"),
            chunks=chunks,
        )
    except (DataModelError, UnitsError) as exc:
        where = frames[0].path if len(frames) == 1 else f"{len(frames)} files from '{frames[0].path}'"
        # the readers' arguments are depths= (stack's z=) and have no total_depth=
        msg = str(exc).replace("z= depths or a total_depth", "or depths= (measured slice depths)")
        msg = msg if depths is None else re.sub(r"(?<![\w'\"])z(?=: |, | or | may |$)", "depths", msg)
        raise type(exc)(f"{msg} (reading {where})") from None
    for name in ds.data_vars:
        extra = frames[0].channel_attrs.get(name, {})
        ds[name].attrs.update(jsonable(extra, name=f"{name}.attrs"))
    params = dict(params or {})
    if len(frames) > 1:
        params["z_order"] = [Path(f.path).name for f in frames]
    return record(ds, step, **jsonable(params, name="params"))


def axes_pixel_size(axes: Sequence[Mapping[str, Any]]) -> tuple[float, float] | None:
    """``(y, x)`` pixel size in nm from RosettaSciIO axes dicts, None if uncalibrated.

    The first two axes are the spatial ones (y then x); axes in ``pix``, with
    no unit, or with scale 1 and no unit mean the file has no calibration.
    """
    from ..units import length_nm

    sizes = []
    for ax in list(axes)[:2]:
        units = str(ax.get("units") or "").strip().replace("µ", "u").replace("μ", "u")
        if units in ("", "pix", "px", "pixel", "pixels", "<undefined>"):
            return None
        try:
            sizes.append(length_nm(f"{float(ax.get('scale', 1.0))!r} {units}", name="axis scale"))
        except UnitsError:
            return None
    return (sizes[0], sizes[1]) if len(sizes) == 2 else None
