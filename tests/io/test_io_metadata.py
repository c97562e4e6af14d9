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
