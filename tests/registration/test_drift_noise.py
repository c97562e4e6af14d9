"""estimate_drift says when it cannot be trusted (issue 21): noise and constant stacks warn and are flagged."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import pfibsims as pfs
from pfibsims.errors import EstimationWarning


def _stack(data):
    return pfs.stack({"Li6": data}, pixel_size="72 nm", slice_thickness="60 nm").Li6


def test_a_noise_stack_warns_and_flags_every_slice():
    noise = _stack(np.random.default_rng(1).poisson(3.0, (6, 128, 128)).astype(float))
    with pytest.warns(EstimationWarning, match=r"every slice correlates no better than noise \(quality .* below 0.234"):
        d = pfs.estimate_drift(noise)
    assert bool(d.outlier.all())
    assert float(d.quality.max()) < 0.234  # the floor 30 / sqrt(128^2): the warning is about these numbers


def test_a_constant_stack_warns_with_quality_zero():
    with pytest.warns(EstimationWarning, match=r"every slice has no contrast \(quality 0: constant\)"):
        d = pfs.estimate_drift(_stack(np.full((4, 32, 32), 7.0)))
    assert bool(d.outlier.all())
    assert d.quality.values.tolist() == [0.0] * 4


def test_structure_under_noise_is_not_flagged():
    # a real-looking field at low counts: far above the noise floor, no warning
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:128, :128]
    field = 3 + 20 * (np.sin(yy / 5.0) * np.cos(xx / 7.0) > 0.3)
    data = np.stack([rng.poisson(np.roll(field, k, axis=1)).astype(float) for k in range(5)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", EstimationWarning)
        d = pfs.estimate_drift(_stack(data), trend="keep")  # the roll is the drift here (issue 22: trend=)
    assert not bool(d.outlier.any())
    np.testing.assert_allclose(d.sel(component="x").values, 72.0 * np.arange(5), atol=10)  # truth: content rolled 1 px a slice


def test_phase_registration_of_noise_fails_instead_of_succeeding():
    # register(metric="phase") on pure noise reported success=True (only an EstimationWarning)
    from pfibsims.errors import RegistrationError

    rng = np.random.default_rng(0)
    a = pfs.stack({"Li6": rng.poisson(3.0, (1, 128, 128)).astype(float)}, pixel_size="72 nm").Li6
    b = pfs.stack({"Zr_La": rng.poisson(3.0, (1, 128, 128)).astype(float)}, pixel_size="72 nm").Zr_La
    with pytest.raises(RegistrationError, match=r"no correlation above noise at the phase-correlation peak \(NCC .*, needs >= 0.234\)") as err:
        pfs.register(a, b, model="translation", metric="phase")
    assert err.value.report.success is False


def test_phase_registration_of_shared_structure_still_succeeds():
    from stacks import shifted_stack

    ds = shifted_stack([(0.0, 0.0), (2.0, -3.0)], shape=(96, 96))
    r = pfs.register(ds.Li6.isel(z=[1]), ds.Li6.isel(z=[0]), model="translation", metric="phase")
    assert r.report.success
    assert r.report.metric_after > 0.5  # NCC at the peak, far above the 0.312 noise floor of a 96^2 view
    np.testing.assert_allclose(r.transform.offset, [2.0 * 72, -3.0 * 72], atol=0.5 * 72)  # truth: the shift put in (pulls fixed -> moving)


def test_fiducial_noise_floor_is_that_of_the_fiducial_region():
    # a fiducial region that holds no mark (fresh noise on every slice) in a field with structure: the floor
    # of its 32 x 32 pixels is 30 / 32 (capped at 0.5), not 30 / 160 of the whole slice, under which the
    # template matching's best chance match of noise (about 0.3 here) passed as a measurement
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[:160, :160]
    field = 3 + 20 * (np.sin(yy / 5.0) * np.cos(xx / 7.0) > 0.3)
    data = np.stack([rng.poisson(field).astype(float) for _ in range(5)])
    data[:, 8:40, 8:40] = rng.poisson(5.0, (5, 32, 32))
    region = {"y": ("576 nm", "2880 nm"), "x": ("576 nm", "2880 nm")}  # pixels 8-39 at 72 nm
    with pytest.warns(EstimationWarning, match=r"correlates no better than noise \(quality .* below 0.5, the noise "
                      r"level of a 1024-pixel view\)"):
        d = pfs.estimate_drift(_stack(data), fiducial=region)
    assert bool(d.outlier[1:].all())
    assert 0.187 < float(d.quality[1:].max()) < 0.5  # above the whole slice's floor 30 / 160: the bug's pass
