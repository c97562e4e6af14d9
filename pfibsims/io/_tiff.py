"""What the TIFF readers take from a generic TIFF besides its pixels: one grey value a pixel, and the
calibration an ImageJ TIFF records (:func:`imagej_calibration`).

A slice or a map is one grey value a pixel. An RGB(A) TIFF (``SamplesPerPixel`` 3 or 4, stored
contiguously as ``(y, x, 3)`` or planar as ``(3, y, x)``), one with extra samples, or an ImageJ
composite whose pages are channels (axes ``C``) is refused naming the file, its shape and axes:
read as it is, its samples would become slices (``(40, 50, 3)`` read as 40 slices of 50 x 3).
A palette (colour-map) image is one value a pixel and is read as such.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import FileFormatError
from ..units import ureg

__all__ = ["check_grey", "imagej_calibration"]

#: Photometric interpretations whose pixels are one value each (a palette image's value indexes its colour map).
_GREY = {"MINISBLACK", "MINISWHITE", "PALETTE"}


def check_grey(tif: Any, path: Any, *, what: str) -> tuple[tuple[int, ...], Any]:
    """Shape and dtype of a TIFF's series 0 after checking it holds one grey value a pixel.

    ``what`` says what was expected, for the message (``"a grey-level map (y, x) or a stack of them
    (z, y, x)"``). Raises :class:`~pfibsims.errors.FileFormatError` naming the file, its shape, its axes
    and the samples a pixel when its pages are colour (RGB, CMYK, YCbCr), carry extra samples, or are
    the channels of an ImageJ composite.
    """
    series = tif.series[0]
    shape, axes = tuple(int(n) for n in series.shape), str(series.axes)
    key = getattr(tif.pages[0], "keyframe", tif.pages[0])
    samples = int(key.samplesperpixel)
    photometric = getattr(key.photometric, "name", str(key.photometric))
    if samples > 1 or "S" in axes or photometric not in _GREY:
        kind = "an RGB" if photometric == "RGB" else f"a {photometric}" if photometric not in _GREY else "a multi-sample"
        raise FileFormatError(
            f"{path}: expected {what}, one grey value a pixel; found {kind} image of shape {shape} (axes {axes}, "
            f"{samples} samples a pixel); convert it to grey levels, or save each channel as its own file"
        )
    if "C" in axes:
        n = shape[axes.index("C")]
        raise FileFormatError(
            f"{path}: expected {what}, one grey value a pixel; found a {n}-channel image of shape {shape} (axes {axes}); "
            "its channels are not slices: save each channel as its own file"
        )
    return shape, series.dtype


#: ImageJ's ways of writing a length unit (``unit=micron``, ``um``, ``\u00B5m`` escaped or not) and pint's names for them.
_IJ_UNITS = {"micron": "um", "microns": "um", "um": "um", "µm": "um", "μm": "um", "\\u00b5m": "um", "u00b5m": "um",
             "nm": "nm", "mm": "mm", "cm": "cm", "m": "m", "meter": "m", "inch": "inch", "in": "inch",
             "a": "angstrom", "å": "angstrom", "angstrom": "angstrom", "pm": "pm"}


def _ij_unit(value: Any) -> str | None:
    """A length unit ImageJ wrote, as pint names it; None for ``pixel``, nothing, or what is no length."""
    return _IJ_UNITS.get(str(value).strip().lower()) if value is not None else None


def _per_pixel(resolution: Any, unit: str) -> float | None:
    """The pixel size (nm) a TIFF X/YResolution (pixels per ``unit``, a (numerator, denominator) rational) gives."""
    try:
        num, den = (float(v) for v in resolution)
    except (TypeError, ValueError):
        return None
    if not (num > 0 and den > 0 and math.isfinite(num) and math.isfinite(den)):
        return None
    return float(ureg.Quantity(den / num, unit).to("nm").magnitude)


def imagej_calibration(tif: Any) -> tuple[tuple[float, float] | None, float | None]:
    """The ``(y, x)`` pixel size and the z spacing (nm) an ImageJ TIFF records; None where it records none.

    ImageJ writes the unit in its description (``unit=micron``, ``um``, ``\u00B5m``; ``yunit=``,
    ``zunit=`` where y or z differ), the pixels per unit in ``XResolution``/``YResolution`` and the z
    step in ``spacing=``; ``ResolutionUnit`` is then 1 (none), or 2/3 with ``unit=inch``/``cm``. The
    description's unit is the unit of the resolution. Without a ``unit=`` there is no calibration, whatever
    ``ResolutionUnit`` says: that is a print resolution (Coloc 2's ``mandersA.tiff``, an ImageJ file,
    holds 72 pixels per inch: 0.35 mm pixels), as is every resolution of a TIFF that is not ImageJ's.
    A unit that is no length (``pixel``) means no calibration.
    """
    meta = tif.imagej_metadata
    if not meta:
        return None, None
    tags = tif.pages[0].tags
    unit = _ij_unit(meta.get("unit"))
    if unit is None:
        return None, None
    yunit = _ij_unit(meta.get("yunit", unit)) or unit
    px, py = _per_pixel(tags.valueof(282), unit), _per_pixel(tags.valueof(283), yunit)
    pixel = (py, px) if px is not None and py is not None else None
    spacing = None
    try:
        value = float(meta.get("spacing"))
    except (TypeError, ValueError):
        value = math.nan
    if math.isfinite(value) and value > 0:
        spacing = float(ureg.Quantity(value, _ij_unit(meta.get("zunit", unit)) or unit).to("nm").magnitude)
    return pixel, spacing
