"""The compiled signed distance (separable lower envelopes) against scipy's EDT of the refined grid."""

from __future__ import annotations

import numpy as np
import pytest

from pfibsims._engine.numba import compiled, use_compiled
from pfibsims.segmentation import distance as D

CASES = [((7, 9, 11), (60.0, 81.4, 81.4)), ((1, 20, 30), (60.0, 10.0, 13.0)), ((25,), (7.0,)), ((13, 17), (3.0, 5.0)),
         ((5, 6, 7), (1.0, 1.0, 1.0)), ((9, 1, 8), (2.0, 1.0, 3.0))]


@pytest.mark.skipif(not compiled(), reason="the compiled path needs numba")
@pytest.mark.parametrize(("shape", "sampling"), CASES)
@pytest.mark.parametrize("fill", [0.1, 0.5, 0.9])
def test_compiled_distance_equals_scipy_edt(shape, sampling, fill):
    mask = np.random.default_rng(len(shape) + int(10 * fill)).random(shape) < fill
    if mask.all() or not mask.any():
        mask.flat[0] = not mask.flat[0]
    got = D.signed_distance_block(mask, sampling=sampling)
    with use_compiled(False):
        ref = D.signed_distance_block(mask, sampling=sampling)
    assert np.all(np.sign(got) == np.sign(ref))
    # the same squared sum in the same order: equal but for face centres tied for nearest (last bits)
    np.testing.assert_allclose(got, ref, rtol=1e-14, atol=0)


@pytest.mark.skipif(not compiled(), reason="the compiled path needs numba")
def test_compiled_distance_of_a_ball_equals_scipy_and_keeps_the_reach():
    z, y, x = np.indices((20, 30, 30))
    mask = (z - 10.2) ** 2 * 0.6 + (y - 14.7) ** 2 + (x - 15.1) ** 2 < 60
    got = D.signed_distance_block(mask, sampling=(60.0, 81.4, 81.4), reach=500.0)
    with use_compiled(False):
        ref = D.signed_distance_block(mask, sampling=(60.0, 81.4, 81.4), reach=500.0)
    np.testing.assert_allclose(got, ref, rtol=1e-14, atol=0)
    assert np.isinf(got).any()
    assert np.all(np.abs(got[np.isfinite(got)]) <= 500.0)
