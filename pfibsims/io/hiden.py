"""SIMS maps from text/CSV matrix exports (Hiden MAPPER/EQS style), TIFF stacks and plain matrices.

A Hiden-style export is header lines then the count matrix (see
:mod:`pfibsims.io.text`); header keys ``mass``/``amu``, ``isotope``/
``species``, ``polarity``/``ion polarity``, ``pixel size``/``step``, ``dwell
time``, ``frames`` are recognised and kept. The isotope names the channel
(``6Li`` -> ``Li6``); arguments override the file. A multi-page TIFF or a
multi-block text file becomes ``z``. An ImageJ TIFF gives its pixel size and
z spacing (:func:`._tiff.imagej_calibration`).
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

import numpy as np
import tifffile

from ..errors import DataModelError, UnitsError
from ..units import length_nm
from ._common import Frame, check_file, check_tiff_complete, reading
from ._guards import check_pixel_size, tiff_array
from ._tiff import check_grey, imagej_calibration
from .cameca import channel_name
from .text import read_text_matrix

__all__ = ["read_sims_matrix"]

_TIFF = (".tif", ".tiff")


def _first(header: dict[str, str], *keys: str) -> str | None:
    for k in keys:
        if header.get(k):
            return header[k]
    return None


def _in_file(given: Any, path: Any) -> str:
    """Where a value came from, for a message: nothing when the caller gave it, else the file's header."""
    return "" if given is not None else f" in the header of '{path}'"


def _check_options(isotope: Any, mass: Any, polarity: Any) -> None:
    """The caller's isotope, mass and polarity, before they override a file's."""
    for name, value in (("isotope", isotope), ("polarity", polarity)):
        if value is not None and not isinstance(value, str):
            raise DataModelError(f"{name}: expected text such as {'6Li' if name == 'isotope' else '+'!r}, got {value!r:.60}")
    if mass is not None and (isinstance(mass, (bool, np.bool_)) or not isinstance(mass, numbers.Real) or not 0 < mass < math.inf):
        raise DataModelError(f"mass: expected a positive number of u such as 6.015, got {mass!r:.60}")


def read_sims_matrix(
    path: Any,
    *,
    isotope: str | None = None,
    mass: float | None = None,
    polarity: str | None = None,
) -> Frame:
    """Read one SIMS map file: text/CSV matrix with header lines, or (multi-page) TIFF.

    Parameters
    ----------
    path : path
        ``.csv``, ``.txt``, ``.dat``, ``.asc`` or ``.tif``.
    isotope : str, optional
        e.g. ``"6Li"`` or ``"Li6"``; default from the header. A sign
        (``"6Li+"``) gives the polarity.
    mass : float, optional
        Mass in u; default from the header or the isotope.
    polarity : {"+", "-"}, optional
        Secondary-ion polarity; default from the isotope's sign, else the header.
    """
    _check_options(isotope, mass, polarity)
    p = check_file(path, suffixes=(".csv", ".txt", ".dat", ".asc") + _TIFF, what="SIMS map (text matrix or TIFF)")
    header: dict[str, str] = {}
    attrs: dict[str, Any] = {}
    pixel, spacing = None, None
    if p.suffix.lower() in _TIFF:
        with reading(p, "TIFF"), tifffile.TiffFile(p) as tif:
            check_tiff_complete(tif, p)
            shape, dtype = check_grey(tif, p, what="a SIMS map (y, x) or a (frame, y, x) stack")
            ij_pixel, spacing = imagej_calibration(tif)
        if len(shape) not in (2, 3):
            raise DataModelError(f"{p}: expected a 2-D map or a (frame, y, x) stack, found shape {shape}")
        pixel = check_pixel_size(ij_pixel, p, shape=shape, what="pixel size (ImageJ calibration)")
        data = tiff_array(p, shape=shape, dtype=dtype)
        attrs["format"] = "TIFF"
    else:
        with reading(p, "SIMS text matrix"):
            header, data = read_text_matrix(p)
        attrs["format"] = "text matrix"
        if header:
            attrs["file_header"] = header
        step = _first(header, "pixel size", "pixel_size", "step", "step size")
        if step:
            try:
                v = length_nm(step, name="pixel size in the file header")
                pixel = check_pixel_size((v, v), p, shape=data.shape)
            except UnitsError:
                pixel = None
    iso = isotope or _first(header, "isotope", "species", "ion", "channel")
    if not iso:
        m = _first(header, "mass", "amu", "mass (amu)")
        raise DataModelError(
            f"isotope: expected the isotope of '{p}' (e.g. isotope='6Li'), found none in the file"
            + (f" (it gives mass {m})" if m else "")
        )
    iso_s = str(iso).strip().rstrip("+-")
    sign = str(iso).strip()[len(iso_s):][:1]  # '6Li+' says its polarity
    m = re.fullmatch(r"([A-Z][a-z]?)(\d{1,3})", iso_s)
    if m:  # 'Li6' -> '6Li'
        iso_s = f"{m[2]}{m[1]}"
    name, ch = channel_name(iso_s, 0)
    mass_v = mass if mass is not None else _first(header, "mass", "amu", "mass (amu)")
    if mass_v is not None:
        try:
            ch["mass"] = float(str(mass_v).split()[0])
        except ValueError:
            raise DataModelError(f"mass: expected a number of u, got {mass_v!r}" + _in_file(mass, p)) from None
    pol = polarity or sign or _first(header, "polarity", "ion polarity")
    if pol:
        pol = {"positive": "+", "negative": "-", "pos": "+", "neg": "-"}.get(pol.strip().lower(), pol.strip())
        if pol not in ("+", "-"):
            raise DataModelError(f"polarity: expected '+' or '-', got {pol!r}" + _in_file(polarity, p))
        if sign and pol != sign:
            raise DataModelError(f"polarity: expected the sign of isotope '{str(iso).strip()}' ('{sign}'), got {pol!r}")
        ch["polarity"] = pol
        attrs["polarity"] = pol
    dwell = _first(header, "dwell time", "dwell")
    if dwell:
        attrs["dwell_time"] = dwell
    return Frame({name: data}, pixel, attrs, {name: ch}, str(p), z_spacing=spacing)
