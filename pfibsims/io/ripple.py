"""Ripple ``.rpl``/``.raw`` pairs (Lispix format; written by AZtec, INCA, HyperSpy).

The ``.rpl`` is a text header of ``key<TAB>value`` lines (``;`` starts a
comment): ``width``, ``height``, ``depth``, ``offset`` (bytes),
``data-length`` (bytes per value: 1, 2, 4, 8), ``data-type`` (``signed``,
``unsigned``, ``float``), ``byte-order`` (``little-endian``, ``big-endian``,
``dont-care``) and ``record-by`` (``vector``: each pixel's ``depth`` values
are contiguous, i.e. (height, width, depth); ``image``: each of the
``depth`` images is contiguous, i.e. (depth, height, width); ``dont-care``
when depth is 1). Optional keys (HyperSpy's extension): ``ev-per-chan``,
``depth-scale``/``depth-origin``/``depth-units`` (energy axis),
``width-scale``/``width-units``, ``height-scale``/``height-units`` (pixel
size), ``title``, ``signal``.

With an energy calibration and ``depth > 1`` the pair is a spectrum image
and the requested lines are integrated (:mod:`pfibsims.io.lines`); a
``depth`` of 1 is one map. The ``.raw`` is read lazily, by rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from ..errors import DataModelError, FileFormatError, UnitsError
from ..units import length_nm, parse_quantity
from ._common import Frame, check_file, reading
from ._guards import check_declared, check_pixel_size, row_blocks
from .fitting import spectrum_maps

__all__ = ["parse_rpl", "read_ripple"]

_REQUIRED = ("width", "height", "depth", "offset", "data-length", "data-type", "byte-order", "record-by")
_KIND = {"signed": "i", "unsigned": "u", "float": "f"}


def parse_rpl(path: Path) -> dict[str, str]:
    """The key/value pairs of an ``.rpl`` header (keys lower-case)."""
    try:
        raw = Path(path).read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")  # Lispix/INCA headers ('µm' as one byte)
    except OSError as exc:
        raise FileFormatError(f"{path}: expected a readable Ripple header, got {exc}") from None
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split(";", 1)[0].strip()
        if not line:
            continue
        parts = line.split("\t") if "\t" in line else line.split(None, 1)
        if len(parts) >= 2:
            out[parts[0].strip().lower()] = parts[-1].strip()
    missing = [k for k in _REQUIRED if k not in out]
    if missing:
        raise FileFormatError(f"{path}: expected Ripple header keys {list(_REQUIRED)}, missing {missing}")
    return out


def _dtype(h: dict[str, str], path: Path) -> np.dtype:
    kind = _KIND.get(h["data-type"].lower())
    n = h["data-length"]
    if kind is None or n not in ("1", "2", "4", "8") or (kind == "f" and n in ("1", "2")):
        raise FileFormatError(f"{path}: expected data-type signed/unsigned/float with data-length 1, 2, 4 or 8, got {h['data-type']!r}/{n!r}")
    order = {"little-endian": "<", "big-endian": ">", "dont-care": "|" if n == "1" else "<"}.get(h["byte-order"].lower())
    if order is None:
        raise FileFormatError(f"{path}: expected byte-order little-endian, big-endian or dont-care, got {h['byte-order']!r}")
    return np.dtype(f"{order}{kind}{n}")


def _read_raw(path: str, offset: int, dtype: str, shape: tuple[int, ...], plane: int | None, row0: int, row1: int) -> np.ndarray:
    """Image rows ``row0:row1`` of a raw (y, x, depth) array, or of one plane of a (depth, y, x) one (picklable)."""
    mm = np.memmap(path, dtype=np.dtype(dtype), mode="r", offset=offset, shape=shape)
    return np.array(mm[row0:row1] if plane is None else mm[plane, row0:row1])


def _lazy_raw(raw: Path, off: int, dtype: np.dtype, shape: tuple[int, ...], by_plane: bool) -> da.Array:
    """The raw array in blocks of image rows (each plane apart when the file is recorded by image)."""
    if not by_plane:
        return row_blocks(_read_raw, raw, off, dtype.str, shape, None, shape=shape, dtype=dtype)
    return da.stack([row_blocks(_read_raw, raw, off, dtype.str, shape, k, shape=shape[1:], dtype=dtype) for k in range(shape[0])])


def _number(h: dict[str, str], key: str, rpl: Path) -> float:
    """A positive finite number of the header, or a FileFormatError naming the file and the key."""
    try:
        value = float(h[key])
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and value > 0):
        raise FileFormatError(f"{rpl}: expected a positive number for '{key}', got {h[key]!r:.60}")
    return value


def _energy_axis(h: dict[str, str], rpl: Path) -> tuple[float, float]:
    """Channel width and origin in eV from ``depth-scale``/``depth-units`` or ``ev-per-chan``."""
    try:
        if "depth-scale" in h and h.get("depth-units"):
            scale = parse_quantity(f"{h['depth-scale']} {h['depth-units']}", "eV", name="depth-scale").magnitude
            origin = parse_quantity(f"{h.get('depth-origin', '0')} {h['depth-units']}", "eV", name="depth-origin").magnitude
        else:
            scale, origin = parse_quantity(h["ev-per-chan"], "eV", default_unit="eV", name="ev-per-chan").magnitude, 0.0
    except UnitsError as exc:
        raise FileFormatError(f"{rpl}: {exc}") from None
    if not 0 < scale < 1e6:
        raise FileFormatError(f"{rpl}: expected an energy channel width between 0 and 1 MeV, found {scale:.6g} eV")
    return float(scale), float(origin)


def _axis_size(h: dict[str, str], axis: str) -> float | None:
    scale, units = h.get(f"{axis}-scale"), h.get(f"{axis}-units")
    if scale is None or not units or units.lower() in ("<undefined>", "pix", "px", "pixel"):
        return None
    try:
        return length_nm(f"{float(scale)!r} {units.replace('µ', 'u')}", name=f"{axis}-units")
    except (UnitsError, ValueError):
        return None


def read_ripple(
    path: Any, *, lines: Any = None, channel: str | None = None, method: str = "fit", window: Any = 2.0,
    fwhm_mnka: Any = None,
) -> Frame:
    """Read a Ripple pair (give the ``.rpl`` or the ``.raw``; the other is beside it).

    A spectrum image becomes line maps (``method="fit"`` or ``"window"``,
    :func:`pfibsims.io.fitting.spectrum_maps`), with the detector resolution
    ``fwhm_mnka`` (default: the header's ``detector-peak-width-ev``, else
    130 eV) and the header's ``beam-energy`` (keV) when present.
    """
    p = check_file(path, suffixes=(".rpl", ".raw"), what="Ripple .rpl/.raw file")
    rpl, raw = p.with_suffix(".rpl"), p.with_suffix(".raw")
    if not rpl.exists():
        rpl = p.with_suffix(".RPL")
    if not raw.exists():
        raw = p.with_suffix(".RAW")
    check_file(rpl, what="Ripple header (.rpl)")
    check_file(raw, what="Ripple data (.raw)")
    with reading(rpl, "Ripple header"):
        h = parse_rpl(rpl)
        try:
            w, ht, d, off = (int(h[k]) for k in ("width", "height", "depth", "offset"))
        except ValueError:
            raise FileFormatError(f"{rpl}: expected integer width/height/depth/offset, got {[h[k] for k in ('width', 'height', 'depth', 'offset')]}") from None
        dtype = _dtype(h, rpl)
    have = raw.stat().st_size
    if off < 0 or off > have:
        raise FileFormatError(f"{rpl}: expected an offset within the {have} bytes of '{raw.name}', got {off}")
    check_declared((ht, w, d), dtype, raw, stored=have - off, what=f"data after {off} bytes (height x width x depth)")
    record_by = h["record-by"].lower()
    if d == 1 or record_by == "image":
        shape = (d, ht, w)
    elif record_by == "vector":
        shape = (ht, w, d)
    else:
        raise FileFormatError(f"{rpl}: expected record-by 'vector' or 'image' for depth {d}, got {h['record-by']!r}")
    data = _lazy_raw(raw, off, dtype, shape, by_plane=shape == (d, ht, w))
    attrs: dict[str, Any] = {"format": "Ripple RPL/RAW"}
    if "title" in h:
        attrs["title"] = h["title"]
    pixel = None
    py, px = _axis_size(h, "height"), _axis_size(h, "width")
    if py and px:
        pixel = check_pixel_size((py, px), rpl, shape=(ht, w), what="pixel size (height-scale, width-scale)")
    energy = None
    if "ev-per-chan" in h or ("depth-scale" in h and h.get("depth-units")):
        scale, origin = _energy_axis(h, rpl)
        energy = origin + scale * np.arange(d)
    if d > 1 and energy is not None:
        if not lines:
            raise DataModelError(f"lines: expected the X-ray lines to integrate from the spectrum image '{raw}', e.g. lines=['Zr_La'], got {lines!r}")
        cube = data if record_by == "vector" else da.moveaxis(data, 0, -1)
        fwhm = fwhm_mnka or (f"{_number(h, 'detector-peak-width-ev', rpl)!r} eV" if "detector-peak-width-ev" in h else "130 eV")
        beam = _number(h, "beam-energy", rpl) * 1000.0 if "beam-energy" in h else None
        channels, ch_attrs = spectrum_maps(
            cube, energy, lines, method=method, window=window, fwhm_mnka=fwhm, beam_energy_ev=beam, where=str(raw)
        )
        attrs["detector_fwhm_mnka"] = str(fwhm)
        attrs["line_maps"] = method
        if beam is not None:
            attrs["beam_energy"] = f"{beam / 1000:.6g} kV"
        attrs["energy_calibration"] = {"channel_width": f"{scale:.6g} eV", "offset": f"{origin:.6g} eV"}
        return Frame(channels, pixel, attrs, ch_attrs, str(rpl))
    if d > 1:
        raise FileFormatError(f"{rpl}: expected an energy calibration (ev-per-chan or depth-scale/depth-units) for depth {d}, found none")
    from .aztec import channel_from_filename

    name = channel or channel_from_filename(rpl)
    return Frame({name: data}, pixel, attrs, {name: {"source_file": rpl.name}}, str(rpl))
