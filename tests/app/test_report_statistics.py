"""The report's statistics: every one a plan of the one engine, two passes over the volume in all."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import raise_if_dask_computes

import pfibsims as pfs
from pfibsims.app.report import statistics


@pytest.fixture(scope="module")
def lazy_volume():
    eds, sims, truth = pfs.synthetic.cathode(seed=1, n_slices=3, eds_shape=(64, 80), sims_shape=(120, 120))
    vol = pfs.fuse(eds, sims, register=pfs.Affine.from_attrs(truth.attrs), drift=truth.drift).compute()
    vol["phase"] = pfs.classify_phases(vol).compute()
    return vol.chunk({"z": 1, "y": 32, "x": 40}), truth.compute()


def test_statistics_are_two_passes_and_equal_the_public_functions(lazy_volume):
    vol, truth = lazy_volume
    with raise_if_dask_computes(max_computes=2):
        st = statistics(vol, "Li6", "Zr_La", labels=vol.phase, truth=truth)
    r = pfs.pearson(vol.Li6, vol.Zr_La, mask=vol.coverage)
    assert st["pearson"] == r
    ph = pfs.phase_statistics(vol.Li6.where(vol.coverage), vol.phase)
    for key in ph.data_vars:
        np.testing.assert_array_equal(st["phases"][key].values, ph[key].values)
    prof = pfs.boundary_profile(vol.Li6, vol.phase, "LLZTO", mask=vol.coverage, distances=("-1 um", "1 um"))
    for key in prof.data_vars:
        np.testing.assert_array_equal(st["profile"][key].values, prof[key].values)
    # phase recall and precision by hand, phases matched by name (label values need not equal the truth's)
    t, lab = truth.phase.values, vol.phase.values
    have = dict(zip(vol.phase.attrs["flag_meanings"].split(), vol.phase.attrs["flag_values"].tolist(), strict=True))
    for v, name in zip(truth.phase.attrs["flag_values"], truth.phase.attrs["flag_meanings"].split(), strict=True):
        is_t, is_l = t == v, lab == have.get(name, -1)
        assert st["phase_accuracy"]["recall"][name] == ((is_t & is_l).sum() / is_t.sum() if is_t.sum() else None)
        assert st["phase_accuracy"]["precision"][name] == ((is_t & is_l).sum() / is_l.sum() if is_l.sum() else None)


def test_statistics_of_a_quantified_map_join_the_same_two_passes(lazy_volume):
    vol, truth = lazy_volume
    q = pfs.quantify(vol.Li6, vol.phase, interior="300 nm")  # the calibration computes here, before the passes
    with raise_if_dask_computes(max_computes=2):
        st = statistics(vol, "Li6", "Zr_La", labels=vol.phase, quantified=q)
    ph = pfs.phase_statistics(q.where(vol.coverage), vol.phase)
    for key in ph.data_vars:
        np.testing.assert_array_equal(st["quantified_phases"][key].values, ph[key].values)
    prof = pfs.boundary_profile(q, vol.phase, "LLZTO", mask=vol.coverage, distances=("-1 um", "1 um"))
    for key in prof.data_vars:
        np.testing.assert_array_equal(st["quantified_profile"][key].values, prof[key].values)


def test_the_profiles_take_one_distance_transform_computed_beforehand(lazy_volume, monkeypatch):
    # issue 18: measure() computes the LLZTO signed distance once and both profiles, in both passes, read it
    from pfibsims.app import report
    from pfibsims.segmentation import distance

    vol, _ = lazy_volume
    q = pfs.quantify(vol.Li6, vol.phase, interior="300 nm")
    own = statistics(vol, "Li6", "Zr_La", labels=vol.phase, quantified=q)
    calls = []
    block = distance.signed_distance_block
    monkeypatch.setattr(distance, "signed_distance_block", lambda m, **kw: calls.append(m.size) or block(m, **kw))
    dist = report._llzto_distance(vol.phase)  # held: the volume is small
    with raise_if_dask_computes(max_computes=2):
        st = statistics(vol, "Li6", "Zr_La", labels=vol.phase, quantified=q, distance=dist)
    assert sum(1 for n in calls if n) == len(dist.data.chunks[0]) * len(dist.data.chunks[1]) * len(dist.data.chunks[2])
    for key in ("profile", "quantified_profile"):
        for var in own[key].data_vars:
            np.testing.assert_array_equal(st[key][var].values, own[key][var].values)
