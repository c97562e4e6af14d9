"""Generic TIFFs given as maps or slices: colour and multi-channel files are refused, not read as slices.

Files are written by tifffile (RGB contiguous and planar, RGBA, two samples, an ImageJ composite of
channels) or are real (Coloc 2's ImageJ stacks with a colour-map LUT, read as before).
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from io_helpers import data_file

import pfibsims as pfs
from pfibsims.errors import PfibsimsError

_RNG = np.random.default_rng(35)


def _colour_files(d):
    """name -> (path, shape tifffile reports for series 0)."""
    made = {
        "rgb": (_RNG.integers(0, 255, (40, 50, 3)).astype(np.uint8), {"photometric": "rgb"}),
        "rgb-planar": (_RNG.integers(0, 255, (3, 40, 50)).astype(np.uint8), {"photometric": "rgb", "planarconfig": "separate"}),
        "rgba": (_RNG.integers(0, 255, (40, 50, 4)).astype(np.uint8), {"photometric": "rgb", "extrasamples": ["unassalpha"]}),
        "two-samples": (_RNG.integers(0, 255, (40, 50, 2)).astype(np.uint16), {"photometric": "minisblack", "planarconfig": "contig"}),
        "imagej-channels": (_RNG.integers(0, 255, (3, 40, 50)).astype(np.uint8), {"imagej": True, "metadata": {"axes": "CYX"}}),
    }
    out = {}
    for name, (data, kw) in made.items():
        p = d / f"{name}.tif"
        tifffile.imwrite(p, data, **kw)
        with tifffile.TiffFile(p) as tif:
            out[name] = (p, tuple(tif.series[0].shape))
    return out


_READERS = {
    "sims": lambda p: pfs.read_sims(p, isotope="6Li", pixel_size="72 nm", slice_thickness="60 nm"),
    "eds": lambda p: pfs.read_eds({"Zr_La": p}, pixel_size="72 nm", slice_thickness="60 nm"),
    "sem": lambda p: pfs.read_sem(p, pixel_size="72 nm", slice_thickness="60 nm"),
}


@pytest.mark.parametrize("reader", sorted(_READERS))
@pytest.mark.parametrize("kind", ["rgb", "rgb-planar", "rgba", "two-samples", "imagej-channels"])
def test_colour_or_multichannel_tiff_is_refused_naming_file_shape_and_what_was_expected(tmp_path, reader, kind):
    """read_sims read an RGB (40, 50, 3) as 40 slices of 50 x 3, and planar RGB or an ImageJ composite as 3 slices."""
    path, shape = _colour_files(tmp_path)[kind]
    shown = str(shape).replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(PfibsimsError, match=rf"{kind}\.tif: expected .*one grey value a pixel; found .*{shown}"):
        _READERS[reader](path)


def test_colour_map_images_are_grey_levels_and_read_as_before():
    """Coloc 2's colocsample1b-green.tif is an ImageJ stack with a LUT (photometric PALETTE): its values, not colours."""
    path = data_file("coloc2/colocsample1b-green.tif")
    ds = pfs.read_sims(path, isotope="6Li", pixel_size="72 nm", slice_thickness="60 nm")
    np.testing.assert_array_equal(ds.Li6.values, tifffile.imread(path))


@pytest.mark.parametrize("width", [3, 4])
def test_grey_stack_three_or_four_pixels_wide_is_a_stack(tmp_path, width):
    """A (z, y, x) grey stack of x = 3 or 4 was refused as 'RGB' by its shape alone; samples a pixel decide."""
    data = _RNG.integers(0, 99, (2, 5, width)).astype(np.uint16)
    p = tmp_path / "Zr La1.tif"
    tifffile.imwrite(p, data, photometric="minisblack")
    ds = pfs.read_eds(p, pixel_size="80 nm", slice_thickness="60 nm")
    np.testing.assert_array_equal(ds.Zr_La.values, data)
