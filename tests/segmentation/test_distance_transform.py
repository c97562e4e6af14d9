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


def _brute_label_distance(labels, sampling):
    """Distance of every voxel centre to the nearest centre of a face between two different labels (brute force)."""
    faces = []
    for axis in range(labels.ndim):
        a = np.moveaxis(labels, axis, 0)
        idx = np.argwhere(a[1:] != a[:-1]).astype(float)
        idx[:, 0] += 0.5  # the face centre between voxel i and i + 1 along this axis
        faces.append(_unmove(idx, axis))
    f = np.concatenate(faces) * np.asarray(sampling)
    c = np.argwhere(np.ones(labels.shape, bool)) * np.asarray(sampling)
    return np.sqrt(((c[:, None, :] - f[None]) ** 2).sum(-1)).min(1).reshape(labels.shape)


def _unmove(idx, axis):
    """Columns of indices of an array moved by ``np.moveaxis(x, axis, 0)`` back to the original axis order."""
    order = list(range(1, idx.shape[1]))
    order.insert(axis, 0)
    return idx[:, order]


@pytest.mark.parametrize("numba", [True, False])
def test_label_distance_equals_brute_force_and_dask_chunks(numba):
    if numba and not compiled():
        pytest.skip("the compiled path needs numba")
    import dask.array as da

    lab = np.random.default_rng(5).integers(0, 3, (5, 8, 7)).astype(np.uint8)
    lab[:, :5] = 7  # a large region, so depths beyond the first voxel occur
    sampling = (60.0, 20.0, 25.0)
    ref = _brute_label_distance(lab, sampling)
    with use_compiled(numba):
        got = D.label_distance_block(lab, sampling=sampling)
        lazy = D.label_distance(da.from_array(lab, chunks=(2, 3, 4)), sampling=sampling, reach=50.0).compute()
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    assert got.max() > 50.0
    np.testing.assert_allclose(lazy, np.where(ref > 50.0, np.inf, ref), rtol=1e-12)
    assert np.isinf(D.label_distance_block(np.full((3, 4), 2), sampling=(1.0, 1.0))).all()
