"""AZtec (and any) per-element map exports: TIFF images and CSV/TXT matrices.

AZtec exports one file per element map, named after the element and line
(``"Zr La1.tif"``, ``"Map Data 1_Zr La1.csv"``, ``"Co_La.txt"``). The channel
name is taken from the end of the file name (``Zr La1`` -> ``Zr_La``; Greek
``α``/``β`` become ``a``/``b``) unless given. These exports carry no pixel
calibration, so ``pixel_size=`` is needed; an ImageJ TIFF that records its
unit and resolution is the exception (:func:`._tiff.imagej_calibration`; its
``spacing=`` gives the z of a stack unless ``slice_thickness=`` is given).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import tifffile

from ..errors import FileFormatError
from ._common import Frame, check_file, check_tiff_complete, reading
from ._guards import check_pixel_size, tiff_array
from ._tiff import check_grey, imagej_calibration
from .text import read_text_matrix

__all__ = ["channel_from_filename", "read_map_file"]

TIFF = (".tif", ".tiff")
TEXT = (".csv", ".txt", ".dat")
_NAME = re.compile(r"([A-Z][a-z]?)[ _-]*([KLMN])(a|b|g|α|β|γ)?\d*$")


def channel_from_filename(path: Any) -> str:
    """The channel name an AZtec export's file name gives.

    Examples
    --------
    >>> channel_from_filename("Map Data 1_Zr La1.tif")
    'Zr_La'
    >>> channel_from_filename("slice_007_C Kα1_2.csv")
    'C_Ka'
    """
    stem = Path(path).stem
    stem = re.sub(r"_\d+$", "", stem)  # AZtec's '_2' duplicate suffix
    m = _NAME.search(stem)
    if m is None:
        raise FileFormatError(
            f"{path}: expected a file name ending in an element and line such as 'Zr La1', found '{stem}'; "
            "give the channel name instead, e.g. read_eds({'Zr_La': path})"
        )
    greek = {"α": "a", "β": "b", "γ": "g"}
    return f"{m[1]}_{m[2]}{greek.get(m[3] or '', m[3] or 'a')}"


def read_map_file(path: Any, *, channel: str | None = None, units: str = "counts") -> Frame:
    """Read one per-element map file (TIFF, CSV, TXT) as a one-channel Frame.

    A multi-page TIFF or a text file with several blocks becomes a
    ``(z, y, x)`` stack. TIFF pixel data are read lazily.
    """
    p = check_file(path, suffixes=TIFF + TEXT, what="map file (TIFF, CSV, TXT)")
    name = channel or channel_from_filename(p)
    attrs: dict[str, Any] = {}
    if p.suffix.lower() in TIFF:
        with reading(p, "TIFF map"), tifffile.TiffFile(p) as tif:
            check_tiff_complete(tif, p)
            shape, dtype = check_grey(tif, p, what="a grey-level map (y, x) or a stack of them (z, y, x)")
            if len(shape) not in (2, 3):
                raise FileFormatError(f"{p}: expected a grey-level map (2-D) or a stack of them, found shape {shape}")
            ij_pixel, spacing = imagej_calibration(tif)
            pixel = check_pixel_size(ij_pixel, p, shape=shape, what="pixel size (ImageJ calibration)")
            data = tiff_array(p, shape=shape, dtype=dtype)
        attrs["format"] = "TIFF map export"
    else:
        with reading(p, "text map (CSV/TXT)"):
            header, data = read_text_matrix(p)
        pixel, spacing = None, None
        attrs["format"] = "text map export"
        if header:
            attrs["file_header"] = header
    return Frame({name: data}, pixel, attrs, {name: {"source_file": p.name}}, str(p), units, z_spacing=spacing)
