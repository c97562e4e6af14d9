"""Oxford Instruments AZtec H5OINA (``.h5oina``) EDS maps, read with h5py.

Implements the EDS parts of Oxford Instruments' published specification
(repository oinanoanalysis/h5oina, ``H5OINAFile.md``, format versions 1-8):

* root ``Format Version`` and ``Index`` (slice names; a map file has slice
  ``1``); each slice group holds technique groups ``EDS`` (or ``EDS1``,
  ``EDS2`` ... for multi-detector Unity systems), each with ``Data`` and
  ``Header``;
* ``Header``: ``X Cells``/``Y Cells`` (width/height in pixels), ``X Step``/
  ``Y Step`` (micrometres), ``Beam Voltage`` (kV), ``Working Distance`` (mm),
  ``Magnification``, ``Acquisition Date``, ``Stage Position/X, Y, Z`` (mm),
  EDS ``Channel Width`` and ``Start Channel`` (eV), ``Number Channels``,
  ``Strobe FWHM`` (eV);
* ``Data``: groups ``Window Integral`` and ``Peak Area`` (one dataset per
  element and line, e.g. ``Al Ka1``, counts per second, attrs ``Atomic
  Number`` and ``X-ray Line``), ``Composition`` (wt%), and ``Spectrum``
  (``(size, channels)`` int32 raw counts, LZF-compressed, format >= 7).
  Every data column has ``size = X Cells * Y Cells`` rows in raster order
  (row by row), so a map is ``column.reshape(Y Cells, X Cells)``.

Pixels outside the acquisition area are NaN in the file and stay NaN.
Reading is lazy: each task opens the file, reads a block of image rows (at most 16 MiB) and
closes it, so reading one pixel never reads a whole map or spectrum cube.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataModelError, FileFormatError
from ._common import Frame, check_file, reading
from ._guards import check_declared, check_pixel_size, row_blocks
from .fitting import spectrum_maps
from .lines import canonical_lines

if TYPE_CHECKING:
    import h5py

__all__ = ["read_h5oina"]

_SOURCES = ("Window Integral", "Peak Area", "Composition")
_UNITS = {"Window Integral": "counts/s", "Peak Area": "counts/s", "Composition": "percent"}


def _scalar(group: h5py.Group, name: str, default: Any = None) -> Any:
    if name not in group:
        return default
    value = np.asarray(group[name][()]).ravel()
    if value.size == 0:
        return default
    v = value[0]
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v.item() if hasattr(v, "item") else v


def _read_rows(path: str, name: str, nx: int, row0: int, row1: int) -> np.ndarray:
    """Image rows ``row0:row1`` of the raster-order dataset ``name`` (module level: picklable)."""
    import h5py  # here, not at import (~11 MB that only this format needs)

    with h5py.File(path, "r") as f:
        data = np.asarray(f[name][row0 * nx : row1 * nx])
    return data.reshape(row1 - row0, nx, *data.shape[1:]) if data.ndim > 1 and data.shape[1] > 1 else data.reshape(row1 - row0, nx)


def _channel_name(label: str, group: h5py.Dataset) -> str:
    """'Al Ka1' (or attrs) -> 'Al_Ka'; 'Zr La1' -> 'Zr_La'; 'Al' (composition) -> 'Al'."""
    m = re.match(r"^\s*([A-Z][a-z]?)\s*[ _]\s*([KLMN][a-z]?)\d*", label)
    if m:
        return f"{m[1]}_{m[2]}"
    line = group.attrs.get("X-ray Line")
    if isinstance(line, bytes):
        line = line.decode()
    el = label.strip().split()[0]
    if line:
        m = re.match(r"([KLMN][a-z]?)", str(np.asarray(line).ravel()[0]) if not isinstance(line, str) else line)
        if m:
            return f"{el}_{m[1]}"
    return el


def read_h5oina(
    path: Any,
    *,
    lines: Any = None,
    source: str = "auto",
    technique: str = "EDS",
    slice_name: str | None = None,
    method: str = "fit",
    window: Any = 2.0,
    fwhm_mnka: Any = None,
) -> Frame:
    """Read the EDS element maps of one AZtec ``.h5oina`` file.

    Parameters
    ----------
    path : path
        The ``.h5oina`` file.
    lines : list of str, optional
        Channels to return, data-model names (``"Al_Ka"``). Default: all
        maps the file holds, or, for ``source="spectrum"``, required.
    source : {"auto", "Window Integral", "Peak Area", "Composition", "spectrum"}
        Which maps: ``"auto"`` takes ``Window Integral``, else ``Peak Area``,
        else integrates ``Spectrum`` over each line's window (see
        :mod:`pfibsims.io.lines`).
    technique : str
        The technique group, ``"EDS"`` (``"EDS1"``... for multi-detector).
    slice_name : str, optional
        The slice (acquisition) group; default the first of ``Index``.
    method, window, fwhm_mnka
        For ``"spectrum"``: line maps by fitting or window integration (see
        :func:`pfibsims.io.fitting.spectrum_maps`); the detector FWHM at Mn
        Ka defaults to 130 eV.

    Returns
    -------
    Frame
        The maps (lazy), the pixel size from ``X Step``/``Y Step``.
    """
    import h5py  # as in _read_rows

    p = check_file(path, suffixes=(".h5oina", ".h5", ".hdf5"), what="AZtec H5OINA file")
    with reading(p, "AZtec H5OINA file"), h5py.File(p, "r") as f:
        where, header, data = _technique(f, p, slice_name, technique)
        (ny, nx), pixel_size, attrs = _header(f, header, p)
        wanted = source
        if source == "auto":
            wanted = next((s for s in _SOURCES[:2] if s in data and len(data[s])), "spectrum")
        elif source not in (*_SOURCES, "spectrum"):
            raise FileFormatError(f"source: expected 'auto', 'spectrum' or one of {list(_SOURCES)}, got {source!r}")
        if wanted == "spectrum":
            fw = fwhm_mnka or "130 eV"
            channels, ch_attrs = _fitted_maps(p, where, header, data, (ny, nx), attrs, lines, method, window, fw)
            units = "counts"
        else:
            channels, ch_attrs = _stored_maps(p, where, data, (ny, nx), wanted, lines)
            units = _UNITS[wanted]
        attrs["units_of_maps"] = units
    return Frame(channels, pixel_size, attrs, ch_attrs, str(p), units)


def _technique(f: h5py.File, p: Any, slice_name: str | None, technique: str) -> tuple[str, h5py.Group, h5py.Group]:
    """('slice/technique', its Header group, its Data group), checked."""
    if "Format Version" not in f or "Index" not in f:
        raise FileFormatError(f"{p}: expected an H5OINA file (root 'Format Version' and 'Index'), found {sorted(f)[:8]}")
    index = [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(f["Index"][()]).ravel()]
    name = slice_name or (index[0] if index else "1")
    if name not in f:
        raise FileFormatError(f"{p}: expected slice group '{name}' (Index lists {index}), found none")
    sl = f[name]
    if technique not in sl:
        raise FileFormatError(f"{p}: expected technique group '{name}/{technique}', found {sorted(sl)}")
    tech = sl[technique]
    if "Data" not in tech or "Header" not in tech:
        raise FileFormatError(f"{p}: expected 'Data' and 'Header' in '{name}/{technique}', found {sorted(tech)}")
    return f"{name}/{technique}", tech["Header"], tech["Data"]


def _header(f: h5py.File, header: h5py.Group, p: Any) -> tuple[tuple[int, int], tuple[float, float] | None, dict]:
    """The map's (ny, nx), its pixel size in nm (from X/Y Step, um) and the acquisition attrs."""
    missing = [k for k in ("X Cells", "Y Cells", "X Step", "Y Step") if k not in header]
    if missing:
        raise FileFormatError(f"{p}: expected mandatory header datasets {missing} in '{header.name.lstrip('/')}', found none")
    ny, nx = check_declared((_scalar(header, "Y Cells"), _scalar(header, "X Cells")), "uint8", p, what="map pixels (Y Cells, X Cells)")
    step_x, step_y = float(_scalar(header, "X Step")), float(_scalar(header, "Y Step"))
    attrs: dict[str, Any] = {"format": "AZtec H5OINA", "format_version": str(_scalar(f, "Format Version"))}
    for key, label, unit in (
        ("Beam Voltage", "beam_energy", "kV"),
        ("Working Distance", "working_distance", "mm"),
        ("Magnification", "magnification", ""),
        ("Acquisition Date", "acquisition_date", ""),
        ("Project Label", "project", ""),
        ("Analysis Label", "analysis", ""),
    ):
        v = _scalar(header, key)
        if v is not None:
            attrs[label] = f"{v:.6g} {unit}" if unit else v
    if "Stage Position" in header:
        sp = header["Stage Position"]
        attrs["stage_position"] = {k: f"{_scalar(sp, k):.6g} mm" for k in ("X", "Y", "Z") if k in sp}
    pixel_size = (step_y * 1000.0, step_x * 1000.0) if step_x > 0 and step_y > 0 else None
    check_pixel_size(pixel_size, p, shape=(ny, nx), what="pixel size (X Step, Y Step)")
    return (ny, nx), pixel_size, attrs


def _fitted_maps(
    p: Any, where: str, header: h5py.Group, data: h5py.Group, shape: tuple[int, int], attrs: dict,
    lines: Any, method: str, window: Any, fwhm_mnka: Any,
) -> tuple[dict, dict]:
    """Line maps from the stored spectra (fit or window integral); notes the method in ``attrs``."""
    ny, nx = shape
    if "Spectrum" not in data:
        raise FileFormatError(f"{p}: expected '{where}/Data/Spectrum' or element maps, found {sorted(data)}")
    if not lines:
        raise DataModelError(f"lines: expected the X-ray lines to integrate from the spectra of '{p}', e.g. lines=['Zr_La', 'Al_Ka'], got {lines!r}")
    spec = data["Spectrum"]
    if spec.ndim != 2 or spec.shape[0] != nx * ny:
        raise FileFormatError(f"{p}: expected {nx * ny} spectra (X Cells x Y Cells) in '{spec.name}', found shape {spec.shape}")
    width, start = float(_scalar(header, "Channel Width")), float(_scalar(header, "Start Channel"))
    n = spec.shape[1]
    energy = start + width * np.arange(n)
    arr = row_blocks(_read_rows, p, spec.name, nx, shape=(ny, nx, n), dtype=spec.dtype)
    beam = attrs.get("beam_energy")
    beam_ev = float(str(beam).split()[0]) * 1000.0 if beam else None
    channels, ch_attrs = spectrum_maps(
        arr, energy, canonical_lines(lines), method=method, window=window, fwhm_mnka=fwhm_mnka, beam_energy_ev=beam_ev, where=str(p)
    )
    attrs["line_maps"] = method
    attrs["energy_calibration"] = {"channel_width": f"{width:.6g} eV", "start_channel": f"{start:.6g} eV"}
    return channels, ch_attrs


def _stored_maps(p: Any, where: str, data: h5py.Group, shape: tuple[int, int], wanted: str, lines: Any) -> tuple[dict, dict]:
    """The maps AZtec stored under ``Data/<wanted>`` (lazy, row blocks), by data-model name."""
    ny, nx = shape
    if wanted not in data:
        raise FileFormatError(f"{p}: expected '{where}/Data/{wanted}', found {sorted(data)}")
    grp = data[wanted]
    found = {_channel_name(label, grp[label]): grp[label] for label in grp}
    names = canonical_lines(lines) if lines else list(found)
    absent = [n for n in names if n not in found]
    if absent:
        raise DataModelError(f"lines: expected channels the file '{p}' holds ({sorted(found)}), got {absent}")
    channels: dict[str, Any] = {}
    ch_attrs: dict[str, dict[str, Any]] = {}
    for ch in names:
        ds = found[ch]
        if ds.shape[0] != nx * ny:
            raise FileFormatError(f"{p}: expected {nx * ny} rows (X Cells x Y Cells) in '{ds.name}', found {ds.shape[0]}")
        channels[ch] = row_blocks(_read_rows, p, ds.name, nx, shape=(ny, nx), dtype=ds.dtype)
        ch_attrs[ch] = {"h5oina_label": ds.name.rsplit("/", 1)[-1], "h5oina_source": wanted}
    return channels, ch_attrs
