"""SEM images: Thermo Fisher/FEI TIFF, Zeiss SmartSEM (CZ_SEM) TIFF and ImageJ TIFF, via tifffile.

* FEI/Thermo Fisher (tag 34682 ``FEI_HELIOS``/``FEI_SFEG``, read by
  ``TiffFile.fei_metadata``): pixel size ``Scan.PixelWidth``/``PixelHeight``
  (m), ``Beam.HV`` (V), ``EBeam.BeamCurrent`` (A), ``Scan.Dwelltime`` (s),
  ``EBeam.WD`` (m), ``Detectors.Name``/``Mode``, ``Stage.StageX/Y/Z`` (m),
  ``StageR``/``StageT`` (rad). The scan area is ``Image.ResolutionY`` rows;
  the rows below it are the data bar (``PrivateFei.DatabarHeight``) and are
  cropped off.
* Zeiss (tag 34118 ``CZ_SEM``, ``TiffFile.sem_metadata``): the pixel size is
  the SI value heading the tag (its 4th number: the pixel size in m at a
  1024-pixel frame, 7 digits) times 1024 over the stored image width, as
  RosettaSciIO reads it; the named lines are rounded for display (``Width =
  25.24 µm`` is 4 digits: 1.6e-4 off over 2048 px). Where that value is
  missing or does not span ``ap_width`` to 1 %, ``ap_width`` over the stored
  width is used. Never ``ap_pixel_size``, which refers to the acquisition
  size and is wrong when the image was stored at a reduced size.
  ``DP_DWELL_TIME`` is the ``dwell_time`` attr (us). The scan area is
  ``round(ap_height / pixel)`` rows; rows below are the data bar and are
  cropped. When the metadata count the bar in the
  image height (``test_tiff_Zeiss_SEM_512pix.tif``: ``ap_height`` spans all
  384 rows, the bar is rows 350-383), the bar is found in the image itself
  (:func:`find_data_bar`: a line of one grey level across the bottom quarter,
  above rows mostly of one flat level) and cropped; ``data_bar_source`` says
  which (``"metadata"``, ``"image"`` or ``"none"``). This reads the first page
  once when the dataset is built.

* ImageJ (a TIFF saved from Fiji, whose instrument tags are gone): the
  calibration ImageJ records (``unit=``, ``XResolution``/``YResolution``,
  ``spacing=``), or none (then ``pixel_size=`` is needed); channel ``SEM``.

A multi-page TIFF (pages of one shape, e.g. ``ZEISS_SEM_multipage.tif``) is a
stack: its pages are slices along ``z``; pages of another shape or type are left
out (reduced-resolution previews silently, others with a ``DataWarning`` naming
them; their indices are the ``skipped_pages`` attr). The channel is named after the
detector's signal, ``SE`` or ``BSE``.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any

import dask.array as da
import numpy as np
import tifffile

from ..errors import DataWarning, FileFormatError, UnitsError
from ..units import length_nm, parse_quantity, ureg
from ._common import Frame, check_file, check_tiff_complete, reading
from ._guards import check_pixel_size, tiff_array
from ._tiff import check_grey, imagej_calibration

__all__ = ["find_data_bar", "read_sem_tiff"]

_BSE_WORDS = ("BSE", "BSD", "BACKSCATTER", "CBS", "ABS", "ASB", "T1", "DBS", "ESB", "NBS")


def find_data_bar(image: np.ndarray) -> int:
    """Rows of a data bar burnt into the bottom of an SEM image (0 if none).

    The bar starts at the first row in the bottom quarter whose pixels are
    at least 95 % one grey level (the bar's frame line), provided that most
    rows below it are at least 50 % one level (the bar's flat background).

    Examples
    --------
    >>> img = np.random.default_rng(0).integers(20, 200, (40, 30)).astype(np.uint8)
    >>> img[34] = 0; img[35:] = 240
    >>> find_data_bar(img)
    6
    """
    a = np.asarray(image)
    n = a.shape[0]

    def flat(row: np.ndarray) -> float:
        return float(np.unique(row, return_counts=True)[1].max()) / row.size

    for r in range(n - max(n // 4, 1), n - 1):
        if flat(a[r]) >= 0.95:
            below = [flat(a[q]) >= 0.5 for q in range(r + 1, n)]
            if below and np.mean(below) >= 0.5:
                return n - r
    return 0


def _signal(detector: str, mode: str = "") -> str:
    text = f"{detector} {mode}".upper()
    return "BSE" if any(w in text for w in _BSE_WORDS) else "SE"


def _number(value: Any, *, positive: bool = False) -> bool:
    """Whether an FEI setting is a finite number (and > 0 when ``positive``); NaN, inf or text are not settings."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return value > 0 or not positive


def _fei(md: dict[str, Any], shape: tuple[int, ...], p: Any) -> tuple[int, tuple[float, float], dict[str, Any], str]:
    scan, beam, ebeam = md.get("Scan", {}), md.get("Beam", {}), md.get("EBeam", md.get("IBeam", {}))
    image, det, stage = md.get("Image", {}), md.get("Detectors", {}), md.get("Stage", {})
    try:
        px, py = float(scan["PixelWidth"]) * 1e9, float(scan["PixelHeight"]) * 1e9
    except (KeyError, TypeError, ValueError):
        raise FileFormatError(f"{p}: expected Scan.PixelWidth/PixelHeight in the FEI metadata, found {sorted(scan)}") from None
    check_pixel_size((py, px), p, shape=shape, what="pixel size (Scan.PixelHeight/PixelWidth)")
    rows = int(image.get("ResolutionY") or 0)
    bar = md.get("PrivateFei", {}).get("DatabarHeight")
    if not rows and bar is not None:
        rows = shape[0] - int(bar)
    if not 0 < rows <= shape[0]:
        raise FileFormatError(f"{p}: expected Image.ResolutionY (scan rows) between 1 and {shape[0]}, found {rows}")
    attrs: dict[str, Any] = {"format": "FEI/Thermo Fisher TIFF", "instrument": md.get("System", {}).get("SystemType", "")}
    hv = beam.get("HV", ebeam.get("HV"))
    if _number(hv, positive=True):
        attrs["beam_energy"] = f"{hv / 1000:.6g} kV"
    cur = ebeam.get("BeamCurrent")
    if _number(cur, positive=True):
        attrs["beam_current"] = f"{ureg.Quantity(cur, 'A').to('nA').magnitude:.6g} nA"
    dwell = scan.get("Dwelltime")
    if _number(dwell, positive=True):
        attrs["dwell_time"] = f"{dwell * 1e6:.6g} us"
    wd = ebeam.get("WD", stage.get("WorkingDistance"))
    if _number(wd, positive=True):
        attrs["working_distance"] = f"{wd * 1e3:.6g} mm"
    attrs["detector"] = str(det.get("Name", ""))
    attrs["detector_mode"] = str(det.get("Mode", ""))
    pos = {}
    for k, name in (("StageX", "x"), ("StageY", "y"), ("StageZ", "z")):
        if _number(stage.get(k)):
            pos[name] = f"{stage[k] * 1e3:.6g} mm"
    for k, name in (("StageR", "rotation"), ("StageT", "tilt")):
        if _number(stage.get(k)):
            pos[name] = f"{np.degrees(stage[k]):.6g} deg"
    attrs["stage_position"] = pos
    attrs["data_bar_rows"] = shape[0] - rows
    attrs["data_bar_source"] = "metadata" if rows < shape[0] else "none"
    mode = str(det.get("Mode", ""))
    signal = "BSE" if mode.upper() in ("BSE", "BACKSCATTER") else "SE" if mode.upper() == "SE" else _signal(str(det.get("Name", "")))
    return rows, (py, px), attrs, signal


def _value(md: dict[str, Any], key: str) -> tuple[Any, str]:
    v = md.get(key)
    if not isinstance(v, tuple) or len(v) < 2:
        return None, ""
    return v[1], (v[2] if len(v) > 2 else "")


def _magnification(text: Any) -> float | str:
    """SmartSEM's ``"50.00 K X"`` as 50000.0 (``"600 X"``, ``"1.20 M X"``); text it does not parse is kept."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmM]?)\s*[xX]?\s*", str(text))
    if m is None:
        return str(text)
    return float(m[1]) * {"": 1.0, "k": 1e3, "m": 1e6}[m[2].lower()]


def _zeiss_length(value: Any, unit: Any, p: Any, what: str) -> float:
    """A CZ_SEM length (value, unit) in nm; a value that is not a finite length names the file."""
    try:
        return length_nm(f"{float(value)!r} {str(unit).replace('µ', 'u').replace('μ', 'u')}", name="CZ_SEM")
    except (TypeError, ValueError):  # UnitsError is a ValueError
        raise FileFormatError(f"{p}: expected {what}, found '{value} {unit}' in the Zeiss CZ_SEM metadata") from None


def _zeiss_si_pixel(md: dict[str, Any], width_nm: float, columns: int) -> float | None:
    """The pixel size (nm) from the SI values heading CZ_SEM: the 4th is the pixel size (m) at a 1024-pixel
    frame, to 7 digits (``5.824988e-009``), where the named lines are rounded for display (``Pixel Size =
    5.825 nm``, ``Width = 5.965 µm``). Used only when it spans the displayed ``ap_width`` to 1 %; else None."""
    head = md.get("")
    if not isinstance(head, (tuple, list)) or len(head) < 4 or not _number(head[3], positive=True):
        return None
    frame_nm = float(head[3]) * 1e9 * 1024
    if not abs(frame_nm - width_nm) <= 0.01 * width_nm:
        return None
    return frame_nm / columns


def _zeiss_dwell(md: dict[str, Any]) -> str | None:
    """``DP_DWELL_TIME`` (``Dwell Time = 100 ns``) in us, as the FEI reader gives it; None when absent or not a time."""
    value, unit = _value(md, "dp_dwell_time")
    if not _number(value, positive=True):
        return None
    try:
        q = parse_quantity(f"{float(value)!r} {str(unit).replace('µ', 'u').replace('μ', 'u')}", "s", name="CZ_SEM dwell time")
    except UnitsError:
        return None
    return f"{q.to('us').magnitude:.6g} us"


def _zeiss(md: dict[str, Any], shape: tuple[int, ...], p: Any) -> tuple[int, tuple[float, float], dict[str, Any], str]:
    width, wunit = _value(md, "ap_width")
    if width is None:
        raise FileFormatError(f"{p}: expected ap_width (image width) in the Zeiss CZ_SEM metadata, found none")
    width_nm = _zeiss_length(width, wunit, p, "ap_width (image width) as a finite length")
    pixel = _zeiss_si_pixel(md, width_nm, shape[1])
    what = "pixel size (the CZ_SEM SI pixel size x 1024 over the image width)"
    if pixel is None:
        pixel, what = width_nm / shape[1], "pixel size (ap_width over the image width)"
    check_pixel_size((pixel,), p, shape=shape, what=what)
    height, hunit = _value(md, "ap_height")
    rows = shape[0]
    if height is not None:
        nm = _zeiss_length(height, hunit, p, "ap_height (image height) as a positive finite length")
        if not nm > 0:  # a height of 0 would crop all but one row as a 'data bar'
            raise FileFormatError(f"{p}: expected ap_height (image height) as a positive finite length, found '{height} {hunit}'")
        rows = min(max(int(round(nm / pixel)), 1), shape[0])
    attrs: dict[str, Any] = {"format": "Zeiss SmartSEM TIFF"}
    kv, kunit = _value(md, "ap_actualkv")
    if kv is not None:
        attrs["beam_energy"] = f"{float(kv):.6g} {kunit or 'kV'}"
    iprobe, iunit = _value(md, "ap_iprobe")
    if iprobe is not None:
        attrs["beam_current"] = f"{float(iprobe):.6g} {iunit}"
    wd, wdu = _value(md, "ap_wd")
    if wd is not None:
        attrs["working_distance"] = f"{float(wd):.6g} {wdu}"
    mag, _ = _value(md, "ap_mag")
    if mag is not None:
        attrs["magnification"] = _magnification(mag)
    dwell = _zeiss_dwell(md)
    if dwell is not None:
        attrs["dwell_time"] = dwell
    det, _ = _value(md, "dp_detector_channel")
    attrs["detector"] = str(det or "")
    pos = {}
    for k, name in (("ap_stage_at_x", "x"), ("ap_stage_at_y", "y"), ("ap_stage_at_z", "z"), ("ap_stage_at_r", "rotation"), ("ap_stage_at_t", "tilt")):
        v, u = _value(md, k)
        if v is not None:
            pos[name] = f"{float(v):.6g} {'deg' if u in ('°', 'deg') else u}"
    attrs["stage_position"] = pos
    ap_ps, ap_u = _value(md, "ap_pixel_size")
    if ap_ps is not None:
        attrs["ap_pixel_size"] = f"{float(ap_ps):.6g} {ap_u}"
    attrs["data_bar_rows"] = shape[0] - rows
    attrs["data_bar_source"] = "metadata" if rows < shape[0] else "none"
    for key, label in (("ap_fib_slice_height", "fib_slice_height"),):
        v, u = _value(md, key)
        if v is not None and float(v) > 0:
            attrs[label] = f"{float(v):.6g} {u}"
    return rows, (pixel, pixel), attrs, _signal(str(det or ""))


def _same_grid(tif: Any, pages: tuple[int, ...], codes: tuple[int, ...], parse: Any, first: tuple[int, Any], p: Any) -> None:
    """Refuse a stack whose later pages' own SEM metadata give another pixel size or scan area than page 0's."""
    shape = tuple(tif.pages[0].shape)
    for k in pages[1:]:
        md: dict[str, Any] = {}
        for code in codes:
            value = tif.pages[k].tags.valueof(code)
            if isinstance(value, dict):
                md.update(value)
        if not md:
            continue  # a page without its own metadata is taken on page 0's
        rows, pixel = parse(md, shape, p)[:2]
        if rows != first[0] or not np.allclose(pixel, first[1], rtol=1e-6):
            raise FileFormatError(
                f"{p}: expected the pages of a stack on one grid, but page {k} has {pixel[1]:.6g} nm pixels and {rows} "
                f"scan rows, page 0 {first[1][1]:.6g} nm and {first[0]}; its pages are not one stack"
            )


def read_sem_tiff(path: Any, *, channel: str | None = None) -> Frame:
    """Read one FEI/Thermo Fisher or Zeiss SEM TIFF, data bar cropped, or an ImageJ TIFF.

    An ImageJ TIFF (an SEM image saved from Fiji, which drops the instrument's tags) gives the
    pixel size and z spacing ImageJ records (:func:`._tiff.imagej_calibration`; none: give
    ``pixel_size=``); its channel is ``SEM`` unless named, nothing is cropped.

    Raises
    ------
    FileFormatError
        When the TIFF carries neither FEI nor Zeiss SEM metadata nor is an
        ImageJ TIFF, or the instrument metadata lack the pixel size.
    """
    p = check_file(path, suffixes=(".tif", ".tiff"), what="SEM TIFF")
    with reading(p, "SEM TIFF"), tifffile.TiffFile(p) as tif:
        check_tiff_complete(tif, p)
        check_grey(tif, p, what="a grey-level SEM image (y, x) or a stack of them")
        page = tif.pages[0]
        shape, dtype = tuple(page.shape), page.dtype
        if len(shape) != 2:
            raise FileFormatError(f"{p}: expected a grey-level SEM image, found shape {shape}")
        pages = tuple(i for i, q in enumerate(tif.pages) if tuple(q.shape) == shape and q.dtype == dtype)
        skipped = [(i, q) for i, q in enumerate(tif.pages) if i not in pages]
        odd = [f"page {i} ({'x'.join(map(str, q.shape))} {q.dtype})" for i, q in skipped if not q.is_reduced]
        if odd:
            warnings.warn(f"{p}: {', '.join(odd[:8])}{' ...' if len(odd) > 8 else ''} left out: not of the stack's "
                          f"{shape[0]}x{shape[1]} {dtype} pages (read them as files of their own if they are images)",
                          DataWarning, stacklevel=5)
        spacing = None
        if tif.is_fei:
            rows, pixel, attrs, signal = _fei(tif.fei_metadata, shape, p)
            _same_grid(tif, pages, (34680, 34682), _fei, (rows, pixel), p)
        elif tif.is_sem:
            rows, pixel, attrs, signal = _zeiss(tif.sem_metadata, shape, p)
            _same_grid(tif, pages, (34118,), _zeiss, (rows, pixel), p)
            if rows == shape[0]:
                rows -= find_data_bar(page.asarray())
                attrs["data_bar_rows"] = shape[0] - rows
                attrs["data_bar_source"] = "image" if rows < shape[0] else "none"
        elif tif.is_imagej:
            ij_pixel, spacing = imagej_calibration(tif)
            pixel = check_pixel_size(ij_pixel, p, shape=shape, what="pixel size (ImageJ calibration)")  # type: ignore[assignment]
            rows, signal = shape[0], "SEM"
            attrs = {"format": "ImageJ TIFF", "detector": "", "data_bar_rows": 0, "data_bar_source": "none"}
        else:
            raise FileFormatError(
                f"{p}: expected a Thermo Fisher/FEI (FEI_HELIOS/FEI_SFEG tag) or Zeiss (CZ_SEM tag) SEM TIFF, or an "
                "ImageJ TIFF, found none of them"
            )
        n = len(pages)
    if n > 1:
        attrs["pages"] = n
    if skipped:
        attrs["skipped_pages"] = [i for i, _ in skipped]
    name = channel or signal
    data = da.stack([tiff_array(p, shape=(rows, shape[1]), dtype=dtype, page=k) for k in pages])  # blocks of rows
    return Frame({name: data}, pixel, attrs, {name: {"detector": attrs.get("detector", "")}}, str(p),
                 z_spacing=spacing)
