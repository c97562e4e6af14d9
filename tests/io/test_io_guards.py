"""Shared reader guards (pfibsims.io._guards): declared sizes, calibrations, blocks of rows, the BCF child decoder."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from io_helpers import data_file, write_h5oina, write_ripple

import pfibsims as pfs
from pfibsims.errors import FileFormatError
from pfibsims.io import _guards


def test_check_declared():
    assert _guards.check_declared((3.0, 4), "uint16", "f.raw", stored=24) == (3, 4)
    with pytest.raises(FileFormatError, match=r"f.raw: its header declares 3 x 5 values of uint16 \(30 bytes\) of data, but the file holds 24"):
        _guards.check_declared((3, 5), "uint16", "f.raw", stored=24)
    with pytest.raises(FileFormatError, match="more than the 17179869184 a file may hold"):
        _guards.check_declared((2**20, 2**20, 2**20), "uint8", "f.raw")
    with pytest.raises(FileFormatError, match=r"expected integer dimensions of data, found \(2.5, 4\)"):
        _guards.check_declared((2.5, 4), "uint8", "f.raw")


def test_check_pixel_size():
    assert _guards.check_pixel_size(None, "f") is None
    assert _guards.check_pixel_size((0.01, 5e4), "f", shape=(512, 512)) == (0.01, 5e4)
    for bad in (0.0, -1.0, float("nan"), float("inf"), 1e-4, 1e9):
        with pytest.raises(FileFormatError, match="f: expected a pixel size between 0.001 nm and 1e\\+08 nm"):
            _guards.check_pixel_size((bad, 1.0), "f")
    with pytest.raises(FileFormatError, match="makes a field of 256 mm, larger than the 100 mm"):
        _guards.check_pixel_size((1e6,), "f", shape=(256, 256))


@pytest.fixture
def reads(monkeypatch):
    """The (row0, row1) of every block-of-rows read task that runs, in order."""
    from pfibsims.io import _common

    done, guarded = [], _common._guarded

    def counting(func, path, *args):
        done.append(tuple(args[-2:]))
        return guarded(func, path, *args)

    monkeypatch.setattr(_common, "_guarded", counting)
    return done


def _one_pixel_reads(arr, reads) -> list:
    reads.clear()
    arr[(0,) * (arr.ndim - 1) + (-1,)].compute()
    return list(reads)


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(_guards, "BLOCK_BYTES", 1024)


def test_tiff_is_read_in_blocks_of_rows(tmp_path, small_blocks, reads):
    truth = np.random.default_rng(0).integers(0, 2**16, (3, 64, 48), dtype=np.uint16)
    path = tmp_path / "Zr La1.tif"
    tifffile.imwrite(path, truth, photometric="minisblack", compression="zlib", rowsperstrip=4)
    ds = pfs.read_eds(path, pixel_size="80 nm", slice_thickness="60 nm")
    arr = ds.Zr_La.data
    assert arr.numblocks[1:] == (7, 1)  # rows of 96 bytes, 10 a block
    assert _one_pixel_reads(arr, reads) == [(0, 10)]
    np.testing.assert_array_equal(arr.compute(), truth)  # reference: tifffile's own whole-file read


def test_sem_crop_reads_only_the_scan_rows(small_blocks, reads):
    path = data_file("sem/FEI-Helios-Ebeam-16bits.tif")
    ds = pfs.read_sem(path)
    np.testing.assert_array_equal(ds.SE.values[0], tifffile.imread(path)[:442])
    assert _one_pixel_reads(ds.SE.data, reads) == [(0, 1)]  # a row of 512 uint16 fills a block


def test_h5oina_maps_and_spectra_are_read_in_blocks_of_rows(tmp_path, small_blocks, reads):
    rng = np.random.default_rng(0)
    maps = {"Zr_La": rng.random((40, 24)).astype(np.float32)}
    spectrum = rng.integers(0, 50, (40, 24, 32)).astype(np.int32)
    path = write_h5oina(tmp_path / "m.h5oina", maps, spectrum=spectrum, channel_width=100.0, start_channel=0.0)
    arr = pfs.read_eds(path).Zr_La.data
    assert arr.numblocks[1] == 4  # 96-byte rows, 10 a block
    assert _one_pixel_reads(arr, reads) == [(0, 10)]
    np.testing.assert_array_equal(arr.compute()[0], maps["Zr_La"])
    from pfibsims.io.h5oina import read_h5oina
    from pfibsims.io.lines import line_window

    frame = read_h5oina(path, source="spectrum", lines=["Al_Ka"], method="window", window="300 eV")
    al = frame.channels["Al_Ka"]
    assert al.numblocks[0] > 1
    lo, hi = line_window("Al_Ka", window="300 eV")
    energy = np.arange(32) * 100.0  # reference: numpy's sum over the channels whose centre is in the window
    np.testing.assert_array_equal(al.compute(), spectrum[..., (energy >= lo) & (energy <= hi)].sum(axis=-1))


def test_ripple_is_read_in_blocks_of_rows(tmp_path, small_blocks, reads):
    cube = np.random.default_rng(0).integers(0, 9, (200, 8)).astype(np.uint16)
    rpl = write_ripple(tmp_path / "Zr La1", cube, extra={"width-scale": "80", "width-units": "nm", "height-scale": "80", "height-units": "nm"})
    arr = pfs.read_eds(rpl).Zr_La.data
    assert _one_pixel_reads(arr, reads) == [(0, 64)]  # 16-byte rows, 64 a block
    np.testing.assert_array_equal(arr.compute()[0], cube)


def test_a_bcf_hypermap_larger_than_its_file_can_hold_is_refused_before_decoding():
    from types import SimpleNamespace

    from pfibsims.io.bruker import guarded_hypermap

    path = data_file("eds/P45_the_default_job.bcf")  # 594200 bytes; decodes to 75 x 100 x 2048 uint8 (25.8x)
    guarded_hypermap(path, SimpleNamespace(shape=(75, 100, 2048), dtype=np.uint8))  # lazy: nothing decoded
    # 2048^3 bytes = 8589934592 > 1100 x 594200: a header edited to 2048 x 2048 pixels
    with pytest.raises(FileFormatError, match=r"P45_the_default_job.bcf: its header declares a 2048 x 2048 x 2048 hypermap "
                                              r"\(8589934592 bytes of uint8\), more than 1100 times the 594200 bytes"):
        guarded_hypermap(path, SimpleNamespace(shape=(2048, 2048, 2048), dtype=np.uint8))
    with pytest.raises(FileFormatError, match="more than the 17179869184 a file may hold"):
        guarded_hypermap(path, SimpleNamespace(shape=(100000, 100000, 2048), dtype=np.uint8))


def test_bcf_child_decoder_equals_rosettasciio_in_process():
    from rsciio.bruker import file_reader

    path = data_file("eds/P45_the_default_job.bcf")
    ref = np.asarray(file_reader(str(path), select_type="spectrum_image")[0]["data"])  # in-process decode
    got = _guards.bcf_hypermap(str(path), None, ref.shape, ref.dtype.str)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize(("code", "match"), [
    ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", r"decoder \(RosettaSciIO\) crashed on this file \(SIGSEGV\)"),
    ("import zlib; zlib.decompress(b'bad')", r"decoding it failed \(zlib.error: Error -3"),
    ("import sys, numpy as np; np.save(sys.argv[3], np.zeros(3), allow_pickle=False)", r"expected a hypermap of shape \(75, 100, 2048\)"),
    ("import sys, numpy as np; np.save(sys.argv[3], np.array([object()]), allow_pickle=True)", "Object arrays cannot be loaded"),
])
def test_bcf_child_failures_are_file_format_errors_naming_the_file(monkeypatch, code, match):
    path = data_file("eds/P45_the_default_job.bcf")
    monkeypatch.setattr(_guards, "_BCF_CHILD", code)
    with pytest.raises(FileFormatError, match=f"P45_the_default_job.bcf.*{match}"):
        pfs.read_eds(path, lines=["Al_Ka"]).Al_Ka.load()


def _spacing_nm(ds, dim):
    return float(ds[dim].values[1] - ds[dim].values[0])


def test_a_given_pixel_size_replaces_an_implausible_calibration_as_the_error_advises(tmp_path):
    """The readers' calibration errors say "give pixel_size= if the file's calibration is wrong": it must work."""
    maps = {"Zr_La": np.arange(12, dtype=np.float32).reshape(3, 4)}
    h5 = write_h5oina(tmp_path / "bad.h5oina", maps, step_um=1e9)  # 1e9 um: 1 km pixels
    tif = tmp_path / "bad.tif"  # an ImageJ TIFF at 1e-6 pixels a mm: 1 km pixels
    tifffile.imwrite(tif, np.arange(20, dtype=np.uint16).reshape(4, 5), imagej=True, resolution=(1e-6, 1e-6),
                     metadata={"unit": "mm"})
    for read, path, kw in ((pfs.read_eds, h5, {}), (pfs.read_sem, tif, {}), (pfs.read_sims, tif, {"isotope": "6Li"})):
        with pytest.raises(FileFormatError, match="give pixel_size= if the file's calibration is wrong"):
            read(path, **kw)
        ds = read(path, pixel_size="81.4 nm", **kw)
        assert _spacing_nm(ds, "x") == pytest.approx(81.4)
        assert _spacing_nm(ds, "y") == pytest.approx(81.4)
        assert ds.attrs["pixel_size_source"] == "user"
        assert float(ds.attrs["file_pixel_size"][0].split()[0]) >= 1e12  # the file's own, kept for the record
    # the override ends with the call: the next read without pixel_size= refuses the file again
    with pytest.raises(FileFormatError, match="expected a pixel size \\(ImageJ calibration\\) between"):
        pfs.read_sem(tif)
    with pytest.raises(FileFormatError, match="expected a pixel size between"):  # nor into direct calls
        _guards.check_pixel_size((1e33,), "f")
