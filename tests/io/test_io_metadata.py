"""Acquisition metadata the readers expose, checked against another reader of the same real file.

Bruker BCF stage angles against RosettaSciIO's own header parser; Zeiss CZ_SEM pixel size and dwell
time against RosettaSciIO's TIFF reader and tifffile's CZ_SEM parser.
"""

from __future__ import annotations

import logging

import pytest
from io_helpers import data_file, needs_data

import pfibsims as pfs
from pfibsims.units import ureg

pytestmark = needs_data

_BCF = ["eds/P45_the_default_job.bcf", "eds/30x30_instructively_packed_16bit_compressed.bcf", "eds/Hitachi_TM3030Plus.bcf",
        "eds/bcf_v2_50x50px.bcf", "eds/test_TEM.bcf"]


def _bcf_stage(path):
    """TRTSEMStageData as RosettaSciIO's BCF header parser reads it (X/Y/Z in um, Rotation/Tilt in degrees)."""
    from rsciio.bruker._api import BCF_reader

    logging.getLogger("rsciio").setLevel(logging.ERROR)
    return BCF_reader(str(path)).header.stage_metadata


def _deg(text):
    return ureg.Quantity(text).to("degree").magnitude


@pytest.mark.parametrize("rel", _BCF)
def test_bcf_stage_rotation_and_tilt_are_attrs_in_degrees(rel):
    """P45 records Rotation 329.49719 and Tilt 0.5, the 30x30 file Rotation 326.10089 and no tilt, the others neither;
    each is an attr where the file has it (degrees, pint-parsable) and absent where it has not."""
    path = data_file(rel)
    stage = _bcf_stage(path)
    for ds in (pfs.read_eds(path, lines=["Al_Ka"], method="window", pixel_size="1 um"), pfs.read_sem(path, pixel_size="1 um")):
        for key, attr in (("Rotation", "stage_position_rotation"), ("Tilt", "stage_position_tilt")):
            if key in stage:
                assert _deg(ds.attrs[attr]) == pytest.approx(float(stage[key]), rel=1e-6)
            else:
                assert attr not in ds.attrs
        for key in ("X", "Y", "Z"):  # unchanged: um
            if key in stage:
                assert ureg.Quantity(ds.attrs[f"stage_position_{key.lower()}"]).to("um").magnitude == pytest.approx(float(stage[key]), rel=1e-6)


def test_bcf_stage_angles_of_p45_are_those_sources_lists():
    """A hand check on the one file with both angles: Rotation 329.49719, Tilt 0.5 (its header as RosettaSciIO prints it)."""
    ds = pfs.read_eds(data_file("eds/P45_the_default_job.bcf"), lines=["Al_Ka"], method="window")
    assert ds.attrs["stage_position_rotation"] == "329.497 deg"
    assert ds.attrs["stage_position_tilt"] == "0.5 deg"


def _rsciio_pixel_nm(path):
    """The pixel size RosettaSciIO's TIFF reader gives a Zeiss file (its CZ_SEM SI value x 1024 / width), nm."""
    from rsciio.tiff import file_reader

    axes = file_reader(str(path), lazy=True)[0]["axes"]
    x = next(a for a in axes if a["name"] == "width")
    return ureg.Quantity(x["scale"], x["units"].replace("µ", "u")).to("nm").magnitude


@pytest.mark.parametrize(("rel", "kw"), [("sem/test_tiff_Zeiss_SEM_512pix.tif", {}),
                                          ("sem/ZEISS_SEM_multipage.tif", {"slice_thickness": "60 nm"})])
def test_zeiss_pixel_size_at_full_precision_as_rosettasciio_reads_it(rel, kw):
    """'Width = 25.24 µm' over 2048 px is 12.3242 nm; the tag's SI value 2.465245e-008 m at 1024 px gives 12.326225 nm
    (1.6e-4 apart: 0.3 px across the frame). The reader agrees with RosettaSciIO to 1e-9, x and y."""
    path = data_file(rel)
    ds = pfs.read_sem(path, **kw)
    want = _rsciio_pixel_nm(path)
    assert float(ds.x[1] - ds.x[0]) == pytest.approx(want, rel=1e-9)
    assert float(ds.y[1] - ds.y[0]) == pytest.approx(want, rel=1e-9)


def test_zeiss_pixel_size_falls_back_to_ap_width_when_the_si_value_disagrees(tmp_path):
    """An SI value that does not span ap_width (here 10x off) is not used: ap_width over the width is (5.965 um / 512)."""
    raw = data_file("sem/test_tiff_Zeiss_SEM_512pix.tif").read_bytes()
    assert raw.count(b"5.824988e-009") == 4
    edited = tmp_path / "other_si.tif"
    edited.write_bytes(raw.replace(b"0\r\n0\r\n0\r\n5.824988e-009", b"0\r\n0\r\n0\r\n5.824988e-008", 1))
    ds = pfs.read_sem(edited)
    assert float(ds.x[1] - ds.x[0]) == pytest.approx(5965 / 512, rel=1e-12)


def test_zeiss_dwell_time_is_an_attr_in_us():
    """ZEISS_SEM_multipage.tif: 'Dwell Time = 100 ns' (tifffile: dp_dwell_time) is dwell_time '0.1 us'; the 512pix file has none."""
    import tifffile

    path = data_file("sem/ZEISS_SEM_multipage.tif")
    with tifffile.TiffFile(path) as tif:
        _, value, unit = tif.sem_metadata["dp_dwell_time"]
    ds = pfs.read_sem(path, slice_thickness="60 nm")
    assert ureg.Quantity(ds.attrs["dwell_time"]).to("ns").magnitude == pytest.approx(ureg.Quantity(value, unit).to("ns").magnitude)
    assert ds.attrs["dwell_time"] == "0.1 us"
    assert "dwell_time" not in pfs.read_sem(data_file("sem/test_tiff_Zeiss_SEM_512pix.tif")).attrs
