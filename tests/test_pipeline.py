"""fuse(): the composed workflow, against the phantom's truth and the steps it composes."""

import json
import warnings

import numpy as np
import pytest

import pfibsims as pfs
from pfibsims.app.report import registration_error
from pfibsims.dataset import history, validate


@pytest.fixture(scope="module")
def small():
    eds, sims, truth = pfs.synthetic.cathode(seed=1, n_slices=4, eds_shape=(96, 128), sims_shape=(180, 180))
    return eds.persist(), sims.persist(), truth.persist()


def test_fuse_with_known_transform_equals_warp_of_the_composed_steps(small, no_compute):
    eds, sims, truth = small
    T = pfs.Affine.from_attrs(truth.attrs)
    with no_compute():
        vol = pfs.fuse(eds, sims, register=T, drift=truth.drift)
    assert sorted(vol.data_vars) == ["Al_Ka", "C_Ka", "Co_La", "Li6", "Zr_La", "coverage"]
    ref = pfs.resample(sims, eds, transform=T, drift=truth.drift)
    np.testing.assert_array_equal(vol.Li6.values, ref.Li6.values)
    np.testing.assert_array_equal(vol.Zr_La.values, eds.Zr_La.values)  # EDS kept as it is
    np.testing.assert_array_equal(vol.coverage.values, np.isfinite(vol.Li6.values))
    assert pfs.Grid.of(vol) == pfs.Grid.of(eds)
    assert vol.coverage.values.mean() > 0.5
    validate(vol)
    vol.pint.quantify()


def test_fused_li_follows_the_true_li(small):
    eds, sims, truth = small
    vol = pfs.fuse(eds, sims, register=pfs.Affine.from_attrs(truth.attrs), drift=truth.drift)
    li, ok = vol.Li6.values, vol.coverage.values
    r = np.corrcoef(li[ok], truth.li.values[ok])[0, 1]
    assert r > 0.85


def test_fuse_estimates_drift_and_registration():
    eds, sims, truth = pfs.synthetic.cathode(seed=1, n_slices=6)  # the paper's fields, fewer slices
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pfs.EstimationWarning)
        vol = pfs.fuse(eds, sims)
    assert vol.Li6.chunks is not None  # lazy
    T = pfs.Affine.from_attrs(vol.attrs)
    drift = np.asarray(json.loads(vol.attrs["pfibsims:drift"])["sims"])
    true_T = pfs.Affine.from_attrs(truth.attrs)
    grid = pfs.Grid.of(eds, dims=("y", "x"))
    # what fusion uses is the composed per-slice transform: compare that with the truth, slice by slice
    for k in range(eds.sizes["z"]):
        est = pfs.Affine.translation(tuple(drift[k])) @ T
        tru = pfs.Affine.translation(tuple(truth.drift.values[k])) @ true_T
        err = registration_error(est, tru, grid)
        assert err["max_error_nm"] < 20.0  # 0.25 EDS pixel over the whole field
    # in the data model's gauge (drift relative to slice 0) the transform and the drift match the truth too
    assert registration_error(T, true_T, grid)["max_error_nm"] < 20.0  # 0.25 EDS pixel
    assert np.sqrt(np.mean(np.sum((drift - truth.drift.values) ** 2, axis=1))) < 20.0
    assert np.all(drift[0] == 0)
    steps = [h["step"] for h in history(vol)]
    assert steps[-1] == "fuse"
    assert "resample" in steps
    assert "synthetic.cathode" in steps
    assert json.loads(vol.attrs["pfibsims:registration"])["success"] is True


def test_fuse_normalizes_and_takes_another_grid(small):
    eds, sims, truth = small
    grid = pfs.Grid.of(eds, dims=("y", "x")).with_spacing("160 nm")
    vol = pfs.fuse(eds, sims, register=pfs.Affine.from_attrs(truth.attrs), drift=truth.drift, onto=grid, normalize="log")
    assert pfs.Grid.of(vol, dims=("y", "x")) == grid
    assert vol.Zr_La.attrs["units"] == "1"
    zr = vol.Zr_La.values[np.isfinite(vol.Zr_La.values)]
    assert zr.max() == pytest.approx(1.0)


def test_fuse_with_sem_estimates_eds_drift():
    eds, sims, truth = pfs.synthetic.cathode(seed=1, n_slices=6, sims_shape=(300, 300), bse=True)
    sem = eds[["BSE"]].assign_attrs(modality="SEM")
    eds = eds.drop_vars("BSE")
    vol = pfs.fuse(eds, sims, sem, register=pfs.Affine.from_attrs(truth.attrs), drift=truth.drift)
    assert "BSE" in vol.data_vars
    eds_drift = np.asarray(json.loads(vol.attrs["pfibsims:drift"])["eds"])
    assert eds_drift.shape == (6, 2)
    # the phantom's EDS frame does not drift: slice-to-slice SEM drift stays within one EDS pixel over 6 slices
    assert np.abs(eds_drift).max() < 81.4
    ref = pfs.resample(eds, eds, drift=pfs.estimate_drift(sem.BSE))
    np.testing.assert_array_equal(vol.Zr_La.values, ref.Zr_La.values)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"register": "wobbly"}, r"register: expected one of \('translation', 'rigid'"),
        ({"normalize": 3}, "normalize: expected None or a method name"),
        ({"onto": "sims"}, "onto: expected 'eds', a Grid or a dataset"),
        ({"drift": "yes"}, "drift: expected True, False or a drift DataArray"),
    ],
)
def test_fuse_errors_name_the_argument(small, kwargs, match):
    eds, sims, _ = small
    with pytest.raises(pfs.PfibsimsError, match=match):
        pfs.fuse(eds, sims, **kwargs)


def test_fuse_rejects_mismatched_slices(small):
    eds, sims, _ = small
    with pytest.raises(pfs.DataModelError, match=r"sims: expected 4 slices \(as eds"):
        pfs.fuse(eds, sims.isel(z=slice(0, 3)), register=None, drift=False)
