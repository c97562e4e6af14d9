"""What the TIFF readers check in a generic TIFF beyond its integrity: one grey value a pixel.

A slice or a map is one grey value a pixel. An RGB(A) TIFF (``SamplesPerPixel`` 3 or 4, stored
contiguously as ``(y, x, 3)`` or planar as ``(3, y, x)``), one with extra samples, or an ImageJ
composite whose pages are channels (axes ``C``) is refused naming the file, its shape and axes:
read as it is, its samples would become slices (``(40, 50, 3)`` read as 40 slices of 50 x 3).
A palette (colour-map) image is one value a pixel and is read as such.
"""

from __future__ import annotations

from typing import Any

from ..errors import FileFormatError

__all__ = ["check_grey"]

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
