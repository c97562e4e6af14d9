"""The shared reader suite: every reader passes the same checks (as zarr's StoreTests).

Each case gives a file and the call that reads it. The suite checks that the
result is a valid dataset of the data model, that units parse (pint
quantify), that coordinates are regular, that attrs are JSON-serialisable,
that the result is lazy where the format allows, and that a missing path, a
truncated copy and a file of the wrong format raise FileFormatError naming
the path. Real files come from ../shared/data (skipped when absent); the
others are written by tests/io_helpers.py in their documented layouts.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
from io_helpers import data_file, truncated_copy, write_csv, write_h5oina, write_ripple, write_tiff

import pfibsims as pfs
from pfibsims.dataset import history, validate
from pfibsims.errors import FileFormatError
from pfibsims.grid import Grid


@dataclass
class Case:
    make: Callable[[Path], Path]          # tmp_path -> the file (or dir) to read
    read: Callable[[Path], object]        # path -> dataset
    lazy: bool
    truncatable: bool = True


def _rng(seed=0):
    return np.random.default_rng(seed)


def _upper_copy(src: Path, tmp: Path) -> Path:
    """A real file under an upper-case name, as instrument PCs write them ('VIEW000_0000004.MAP')."""
    dst = tmp / src.name.upper()
    shutil.copy(src, dst)
    return dst


CASES = {
    "bcf-P45": Case(lambda t: data_file("eds/P45_the_default_job.bcf"), lambda p: pfs.read_eds(p, lines=["Al_Ka", "C_Ka"]), True),
    "bcf-30x30": Case(lambda t: data_file("eds/30x30_instructively_packed_16bit_compressed.bcf"), lambda p: pfs.read_eds(p), True),
    "bcf-hitachi": Case(lambda t: data_file("eds/Hitachi_TM3030Plus.bcf"), lambda p: pfs.read_eds(p, pixel_size="1 um"), True),
    "jeol-map": Case(lambda t: data_file("eds/jeol_View000/View000_0000001.map"), lambda p: pfs.read_eds([p]), False),
    "im-sun": Case(lambda t: data_file("sims/image_sun.im"), lambda p: pfs.read_sims(p, slice_thickness="5 nm"), False),
    "im-openmims": Case(lambda t: data_file("sims/OpenMIMS_doc_051117_05-32dRe-03b.im"), lambda p: pfs.read_sims(p), False),
    "im-rti": Case(lambda t: data_file("sims/RTIimage.im"), lambda p: pfs.read_sims(p), False),
    "sem-fei": Case(lambda t: data_file("sem/test_tiff_FEI_SEM.tif"), lambda p: pfs.read_sem(p), True),
    "sem-fei16": Case(lambda t: data_file("sem/FEI-Helios-Ebeam-16bits.tif"), lambda p: pfs.read_sem(p), True),
    "sem-zeiss": Case(lambda t: data_file("sem/test_tiff_Zeiss_SEM_512pix.tif"), lambda p: pfs.read_sem(p), True),
    "bcf-images": Case(lambda t: data_file("eds/P45_the_default_job.bcf"), lambda p: pfs.read_sem(p), False),  # in the XML header
    "jeol-img": Case(lambda t: data_file("eds/jeol_View000/View000_0000000.img"), lambda p: pfs.read_sem(p), True),
    "jeol-pts": Case(lambda t: data_file("eds/jeol_spectrum_image/View000_0000006.pts"),
                     lambda p: pfs.read_eds(p, lines=["Fe_Ka"]), True),
    "sem-multipage": Case(lambda t: data_file("sem/ZEISS_SEM_multipage.tif"), lambda p: pfs.read_sem(p, slice_thickness="50 nm"), True),
    "asv-emxml": Case(lambda t: data_file("sem/EMProject.emxml"),  # the project gives the slice's depth
                      lambda p: pfs.read_sem(data_file("sem/SEM_Image-SliceImage-001.tif"), project=p), True),
    "asv-slice": Case(lambda t: data_file("sem/SEM_Image-SliceImage-001.tif"),  # pixels first, its 3 FEI tags and IFD at the end
                      lambda p: pfs.read_sem(p, project=data_file("sem/EMProject.emxml")), True),
    "bcf-tem": Case(lambda t: data_file("eds/test_TEM.bcf"), lambda p: pfs.read_eds(p, lines=["Cu_Ka", "O_Ka"]), True),
    "bcf-v2": Case(lambda t: data_file("eds/bcf_v2_50x50px.bcf"), lambda p: pfs.read_eds(p, lines=["Al_Ka"]), True),
    "bcf-overview": Case(lambda t: data_file("eds/bcf_v2_50x50px.bcf"), lambda p: pfs.read_sem(p, image="overview"), False),
    "jeol-map-upper": Case(lambda t: _upper_copy(data_file("eds/jeol_View000/View000_0000004.map"), t),
                           lambda p: pfs.read_eds([p]), False),
    "coloc-tiff": Case(lambda t: data_file("coloc2/greenZstack.tif"),
                       lambda p: pfs.read_sims(p, isotope="6Li", pixel_size="72 nm", slice_thickness="60 nm"), True),
    "h5oina": Case(
        lambda t: write_h5oina(t / "m.h5oina", {"Zr_La": _rng().random((6, 8)), "Al_Ka": _rng(1).random((6, 8))}),
        lambda p: pfs.read_eds(p), True),
    "ripple": Case(
        lambda t: write_ripple(t / "si", _rng().integers(0, 9, (6, 8, 300)).astype(np.uint16),
                               extra={"ev-per-chan": "10", "width-scale": "81.4", "width-units": "nm",
                                      "height-scale": "81.4", "height-units": "nm"}),
        lambda p: pfs.read_eds(p, lines=["Al_Ka", "Zr_La"]), True),
    "aztec-tiff": Case(lambda t: write_tiff(t / "Zr La1.tif", _rng().integers(0, 99, (6, 8)).astype(np.uint16)),
                       lambda p: pfs.read_eds(p, pixel_size="81.4 nm"), True),
    "aztec-csv": Case(lambda t: write_csv(t / "Co La1.csv", _rng().integers(0, 99, (6, 8))),
                      lambda p: pfs.read_eds(p, pixel_size="81.4 nm"), False),
    "hiden-txt": Case(lambda t: write_csv(t / "li.txt", _rng().integers(0, 99, (6, 8)), header="Isotope: 6Li\nPolarity: positive\n", sep="\t", trailing=False),
                      lambda p: pfs.read_sims(p, pixel_size="72 nm"), False),
    "sims-tiff": Case(lambda t: write_tiff(t / "li7.tif", _rng().integers(0, 99, (3, 6, 8)).astype(np.uint16)),
                      lambda p: pfs.read_sims(p, isotope="7Li", pixel_size="72 nm", slice_thickness="60 nm"), True),
}


@pytest.fixture(params=sorted(CASES))
def case(request, tmp_path):
    c = CASES[request.param]
    return c, c.make(tmp_path), tmp_path


def test_reads_a_valid_dataset(case):
    c, path, _ = case
    ds = c.read(path)
    assert validate(ds) is ds
    assert ds.attrs["modality"] in ("EDS", "SIMS", "SEM")
    assert history(ds)[-1]["step"].startswith("read_")
    assert len(ds.data_vars) >= 1
    for name, var in ds.data_vars.items():
        assert var.dims == ("z", "y", "x")
        assert var.attrs["units"], name


def test_units_parse_with_pint(case):
    c, path, _ = case
    q = c.read(path).pint.quantify()
    for var in q.data_vars.values():
        assert hasattr(var.data, "units")
    assert str(q.x.data.units) in ("nanometer", "nm")


def test_coords_are_regular_centres_in_nm(case):
    c, path, _ = case
    ds = c.read(path)
    g = Grid.of(ds, dims=["y", "x"])
    assert all(s > 0 for s in g.spacing)
    np.testing.assert_allclose(ds.x.values, g.origin[1] + g.spacing[1] * np.arange(ds.sizes["x"]))
    assert ds.x.attrs["units"] == "nm"
    assert ds.x.dtype == np.float64


def test_attrs_are_json(case):
    c, path, _ = case
    ds = c.read(path)
    json.dumps(ds.attrs)
    for var in ds.variables.values():
        json.dumps(var.attrs)


def test_lazy_where_the_format_allows(case):
    c, path, _ = case
    with dask.config.set(scheduler=_raise_on_compute):
        ds = c.read(path)
    if c.lazy:
        assert all(isinstance(v.data, da.Array) for v in ds.data_vars.values())
    ds.compute()  # and the graph runs


def _raise_on_compute(*args, **kwargs):
    raise AssertionError("a reader computed a dask graph while reading")


def test_missing_path_is_a_clean_error(case, tmp_path):
    c, path, _ = case
    missing = tmp_path / ("absent" + path.suffix)
    with pytest.raises(FileFormatError, match="absent"):
        c.read(missing)


def test_truncated_copy_is_a_clean_error(case, tmp_path):
    c, path, _ = case
    if path.suffix == ".rpl":
        dst = tmp_path / "cut"
        dst.mkdir()
        shutil.copy(path, dst / path.name)
        truncated_copy(path.with_suffix(".raw"), dst / path.with_suffix(".raw").name, 0.5)
        bad = dst / path.with_suffix(".raw").name  # the error names the data file that is short
    else:
        bad = truncated_copy(path, tmp_path / f"cut_{path.name}", 0.5)
    with pytest.raises(FileFormatError, match=str(bad.name).replace(".", r"\.")):
        c.read(bad).compute()


def test_wrong_format_is_a_clean_error(case, tmp_path):
    c, path, _ = case
    bad = tmp_path / f"garbage{path.suffix}"
    bad.write_bytes(b"\x00\x01not a real file at all" * 7)
    with pytest.raises(FileFormatError, match="garbage"):
        c.read(bad).compute()
