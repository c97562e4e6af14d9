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


# ---------------------------------------------------------------- ImageJ calibration


def _hand_calibration(path):
    """(x pixel nm, z spacing nm) from the raw tags: XResolution (pixels per unit) and the description's spacing=, unit um."""
    import re

    with tifffile.TiffFile(path) as tif:
        num, den = tif.pages[0].tags["XResolution"].value
        text = tif.pages[0].tags["ImageDescription"].value
    unit = re.search(r"^unit=(.*)$", text, re.M)[1]
    assert unit in ("um", "\\u00B5m")  # what ImageJ 1.44d and 1.49v wrote
    return den / num * 1000.0, float(re.search(r"^spacing=(.*)$", text, re.M)[1]) * 1000.0


@pytest.mark.parametrize("rel", ["coloc2/colocsample1b-green.tif", "coloc2/colocsample1b-mask.tif"])
def test_real_imagej_stack_gives_its_pixel_size_and_spacing_to_every_tiff_reader(rel):
    """Coloc 2's ImageJ stacks: unit=um (1.44d) or unit=\\u00B5m (1.49v, escaped), XResolution 3046781/1000000 per um,
    spacing=0.646 um. read_sims ignored the calibration, read_eds ignored the spacing, read_sem refused the file."""
    path = data_file(rel)
    px, dz = _hand_calibration(path)
    data = tifffile.imread(path)
    for ds in (pfs.read_sims(path, isotope="6Li"), pfs.read_eds({"Zr_La": path}), pfs.read_sem(path)):
        assert float(ds.x[1] - ds.x[0]) == pytest.approx(px, rel=1e-9)
        assert float(ds.y[1] - ds.y[0]) == pytest.approx(px, rel=1e-9)
        assert np.diff(ds.z.values) == pytest.approx(np.full(data.shape[0] - 1, dz), rel=1e-9)
        assert ds.attrs["pixel_size_source"] == "file"
        assert ds.attrs["slice_thickness_source"] == "file"
    sem = pfs.read_sem(path, slice_thickness="60 nm")  # a given thickness wins over the file's spacing
    assert float(sem.z[1] - sem.z[0]) == 60.0
    assert "slice_thickness_source" not in sem.attrs
    np.testing.assert_array_equal(sem.SEM.values, data)


@pytest.mark.parametrize(("unit", "per_unit", "nm"), [("nm", 1 / 81.4, 81.4), ("micron", 12.5, 80.0), ("um", 0.5, 2000.0),
                                                       ("mm", 1000.0, 1000.0), ("cm", 1e4, 1000.0)])
def test_imagej_unit_and_resolution_give_the_pixel_size(tmp_path, unit, per_unit, nm):
    """XResolution is pixels per unit=: 12.5 per micron is 80 nm; y may differ from x (half the x resolution: twice the size)."""
    p = tmp_path / "se.tif"
    data = _RNG.integers(0, 255, (6, 8)).astype(np.uint8)
    tifffile.imwrite(p, data, imagej=True, resolution=(per_unit, per_unit / 2), metadata={"unit": unit})
    ds = pfs.read_sem(p)
    assert float(ds.x[1] - ds.x[0]) == pytest.approx(nm, rel=1e-6)
    assert float(ds.y[1] - ds.y[0]) == pytest.approx(2 * nm, rel=1e-6)
    assert ds.attrs["format"] == "ImageJ TIFF"


def test_resolution_without_an_imagej_unit_is_no_calibration(tmp_path):
    """72 pixels per inch (ResolutionUnit INCH), as Coloc 2's mandersA.tiff holds with no unit=, is a print resolution:
    the file has no pixel size (pixel_size= is asked for), not 0.35 mm pixels; unit=pixel is none either."""
    data = _RNG.integers(0, 255, (6, 8)).astype(np.uint8)
    inch = tmp_path / "inch.tif"
    tifffile.imwrite(inch, data, imagej=True, resolution=(72, 72), resolutionunit="INCH")
    pixel = tmp_path / "pixel.tif"
    tifffile.imwrite(pixel, data, imagej=True, resolution=(1, 1), metadata={"unit": "pixel"})
    with tifffile.TiffFile(inch) as tif:
        assert tif.pages[0].tags["ResolutionUnit"].value == tifffile.RESUNIT.INCH
    for p in (inch, pixel):
        for read in (lambda q: pfs.read_sem(q), lambda q: pfs.read_sims(q, isotope="6Li")):
            with pytest.raises(PfibsimsError, match=rf"pixel_size: '.*{p.name}' has no pixel calibration"):
                read(p)
        assert float(pfs.read_sem(p, pixel_size="5 nm").x[1]) == 7.5


def test_plain_tiff_is_still_not_an_sem_image(tmp_path):
    p = tmp_path / "plain.tif"
    tifffile.imwrite(p, np.zeros((4, 4), np.uint8))
    with pytest.raises(PfibsimsError, match=r"plain\.tif: expected a Thermo Fisher/FEI .* or an ImageJ TIFF, found none of them"):
        pfs.read_sem(p, pixel_size="5 nm")


# ---------------------------------------------------------------- the chain of pages


def _stack_with_next_ifd(tmp_path, name, where):
    """A 3-page grey stack whose page 0 points to ``where(raw, offsets, data offsets)`` as its next page."""
    import struct

    p = tmp_path / name
    tifffile.imwrite(p, _RNG.integers(0, 99, (3, 64, 48)).astype(np.uint16), photometric="minisblack", metadata=None)
    with tifffile.TiffFile(p) as tif:
        offsets = [q.offset for q in tif.pages]
        data = [q.dataoffsets[0] for q in tif.pages]
    raw = bytearray(p.read_bytes())
    entries = struct.unpack_from("<H", raw, offsets[0])[0]
    struct.pack_into("<I", raw, offsets[0] + 2 + 12 * entries, where(len(raw), data))
    p.write_bytes(bytes(raw))
    return p


@pytest.mark.parametrize(("label", "where", "match"), [
    ("past-the-end", lambda size, data: size + 1000, r"points to a next page at byte \d+, past the end of the file"),
    ("far-past-the-end", lambda size, data: 0xFFFFFFF0, r"points to a next page at byte 4294967280, past the end of the file"),
    ("into-the-pixels", lambda size, data: data[1] + 101, r"points to a next page at byte \d+, where the file holds no readable page directory"),
])
def test_next_page_pointer_that_leads_nowhere_is_a_clear_error_for_every_tiff_reader(tmp_path, label, where, match):
    """tifffile stops, with a logged warning only, at a next-page pointer it cannot follow: the stack read as 1 slice of 3.
    Past the end of the file that was already an error; into the pixel data (an odd offset, a 'directory' of
    12800 entries) it was read as one slice."""
    p = _stack_with_next_ifd(tmp_path, f"{label}.tif", where)
    with tifffile.TiffFile(p) as tif:
        assert len(tif.pages) == 1  # what tifffile alone sees
    for read in (lambda q: pfs.read_sims(q, isotope="6Li", pixel_size="72 nm", slice_thickness="60 nm"),
                 lambda q: pfs.read_eds({"Zr_La": q}, pixel_size="72 nm", slice_thickness="60 nm")):
        with pytest.raises(PfibsimsError, match=rf"{label}\.tif: its TIFF page 0 {match}.*pages after the first 1 are lost"):
            read(p)


def test_a_zeiss_stack_with_a_stray_page_warns_naming_it_and_a_preview_page_silently(tmp_path):
    """A real two-page Zeiss stack with two pages appended (an image of another size, a reduced-resolution
    preview): both are left out of the stack, the stray one with a DataWarning naming it."""
    src = data_file("sem/ZEISS_SEM_multipage.tif")
    p = tmp_path / "zeiss_plus.tif"
    p.write_bytes(src.read_bytes())
    tifffile.imwrite(p, np.zeros((64, 80), np.uint8), append=True)
    tifffile.imwrite(p, np.zeros((32, 40), np.uint8), append=True, subfiletype=1)  # a preview (NewSubfileType 1)
    with pytest.warns(pfs.errors.DataWarning, match=r"page 2 \(64x80 uint8\) left out") as record:
        ds = pfs.read_sem(p, slice_thickness="50 nm")
    assert len(record) == 1
    assert "page 3" not in str(record[0].message)
    assert ds.sizes["z"] == 2
    assert ds.attrs["skipped_pages"] == [2, 3]
    ref = pfs.read_sem(src, slice_thickness="50 nm")
    np.testing.assert_array_equal(ds[next(iter(ds.data_vars))].values, ref[next(iter(ref.data_vars))].values)
