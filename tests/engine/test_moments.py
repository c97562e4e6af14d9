"""Tests of the block kernels in pfibsims._engine.moments (compiled and numpy paths) against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from pfibsims._engine import moments as M
from pfibsims._engine.numba import compiled, use_compiled

# the public (compiled when numba is installed) kernels and their numpy fallbacks
MOMENTS = [M.pair_moments_block, M._pair_moments_numpy]
HIST1 = [M.histogram_block, M._histogram_numpy]
HIST2 = [M.joint_histogram_block, M._joint_histogram_numpy]


def _truth_moments(a, b, mask=None):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    if mask is not None:
        ok &= np.broadcast_to(mask, ok.shape) if np.ndim(mask) == 1 else np.ravel(mask)
    x, y = a[ok], b[ok]
    if x.size == 0:
        return np.zeros(6)
    dx, dy = x - x.mean(), y - y.mean()
    return np.array([x.size, x.mean(), y.mean(), dx @ dx, dy @ dy, dx @ dy])


def _data(shape=(3, 40, 37), seed=0, offset=0.0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    a = rng.gamma(3.0, 10.0, size=shape) + offset
    b = 0.4 * a + rng.normal(0, 5, size=shape)
    return a.astype(dtype), b.astype(dtype)


def test_numba_is_used():
    assert compiled()  # numba is a runtime dependency; the compiled path is the one benchmarked
    with use_compiled(False):
        assert not compiled()
    assert compiled()


@pytest.mark.parametrize("kernel", MOMENTS)
@pytest.mark.parametrize("dtypes", [(np.float64, np.float64), (np.float32, np.float32), (np.float32, np.float64),
                                    (np.int32, np.uint16), (np.int64, np.float32), (bool, np.float64)])
def test_moments_dtypes(kernel, dtypes):
    a, b = _data()
    a = (a > 30) if dtypes[0] is bool else a.astype(dtypes[0])
    b = b.astype(dtypes[1]) if np.dtype(dtypes[1]).kind == "f" else np.abs(b).astype(dtypes[1])
    got = kernel(a, b)
    assert got.shape == (1, 1, 1, 6)
    np.testing.assert_allclose(got.ravel(), _truth_moments(a, b), rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("kernel", MOMENTS)
def test_moments_nan_inf_mask(kernel):
    a, b = _data()
    a[0, :3] = np.nan  # a row outside the field, first in the block: the pivot must skip it
    a[1, 5, 5] = np.inf
    b[2, 7, 1] = -np.inf
    b[0, 10] = np.nan
    np.testing.assert_allclose(kernel(a, b).ravel(), _truth_moments(a, b), rtol=1e-12)
    mask = np.random.default_rng(1).random(a.shape) < 0.3
    np.testing.assert_allclose(kernel(a, b, mask).ravel(), _truth_moments(a, b, mask), rtol=1e-12)
    xmask = np.arange(a.shape[-1]) % 3 == 0  # broadcast along the last axis
    np.testing.assert_allclose(kernel(a, b, xmask).ravel(), _truth_moments(a, b, np.broadcast_to(xmask, a.shape)),
                               rtol=1e-12)


@pytest.mark.parametrize("kernel", MOMENTS)
def test_moments_empty_and_all_invalid(kernel):
    assert kernel(np.empty((0, 4)), np.empty((0, 4))).tolist() == [[[0.0] * 6]]
    nan = np.full((2, 3), np.nan)
    assert kernel(nan, np.ones((2, 3))).ravel().tolist() == [0.0] * 6
    assert kernel(np.ones((2, 3)), np.ones((2, 3)), np.zeros((2, 3), bool)).ravel().tolist() == [0.0] * 6
    one = kernel(np.array([np.nan, 2.0, 5.0]), np.array([1.0, 3.0, np.nan]))
    assert one.ravel().tolist() == [1.0, 2.0, 3.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("kernel", MOMENTS)
def test_moments_large_offset_and_non_contiguous(kernel):
    a, b = _data(offset=1e8)
    np.testing.assert_allclose(kernel(a, b).ravel(), _truth_moments(a, b), rtol=1e-9)
    sa, sb = a[:, ::2, 1:], b[:, ::2, 1:]  # strided views, as dask may hand over
    np.testing.assert_allclose(kernel(sa, sb).ravel(), _truth_moments(sa, sb), rtol=1e-9)


def test_moments_merge_over_blocks_equals_whole():
    a, b = _data(shape=(10, 50, 50))
    a[3] = np.nan
    parts = np.concatenate([M.pair_moments_block(a[i : i + 3], b[i : i + 3]).reshape(1, 6) for i in range(0, 10, 3)])
    np.testing.assert_allclose(M.merge_moments(parts, axis=0), _truth_moments(a, b), rtol=1e-12)


def _edge_values(lo, hi, bins):
    """Every edge, its neighbours one ulp away, values outside, NaN and inf."""
    e = np.linspace(lo, hi, bins + 1)
    vals = np.concatenate([e, np.nextafter(e, -np.inf), np.nextafter(e, np.inf),
                           [lo - 1, hi + 1, np.nan, np.inf, -np.inf]])
    return vals, e


RANGES = [(0.0, 1.0, 10), (0.0, 0.3, 3), (-30.0, 80.0, 256), (0.1, 0.7, 7), (1e7, 1e7 + 3, 97), (-2.5, 1e-3, 255)]


@pytest.mark.parametrize("kernel", HIST1)
@pytest.mark.parametrize(("lo", "hi", "bins"), RANGES)
def test_histogram_edges_like_numpy(kernel, lo, hi, bins):
    vals, _ = _edge_values(lo, hi, bins)
    got = kernel(vals, None, lo, hi, bins).ravel()
    np.testing.assert_array_equal(got, np.histogram(vals, bins, (lo, hi))[0])
    f32 = vals.astype(np.float32)  # float32 data against float64 edges
    np.testing.assert_array_equal(kernel(f32, None, lo, hi, bins).ravel(),
                                  np.histogram(f32.astype(np.float64), bins, (lo, hi))[0])


@pytest.mark.parametrize("kernel", HIST2)
@pytest.mark.parametrize(("lo", "hi", "bins"), RANGES)
def test_joint_histogram_edges_like_numpy(kernel, lo, hi, bins):
    va, _ = _edge_values(lo, hi, bins)
    vb = np.random.default_rng(0).permutation(va)  # every edge case in both channels, mixed
    rb = (lo, hi)
    got = kernel(va, vb, None, (lo, hi), rb, (bins, bins + 1))[0]
    ok = np.isfinite(va) & np.isfinite(vb)
    want = np.histogram2d(va[ok], vb[ok], bins=(bins, bins + 1), range=((lo, hi), rb))[0]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kernel", HIST2)
def test_joint_histogram_masks_dtypes_empty(kernel):
    rng = np.random.default_rng(2)
    a = rng.integers(0, 300, size=(4, 30, 20)).astype(np.uint16)  # integer counts, edges on integers
    b = rng.normal(20, 8, size=a.shape).astype(np.float32)
    b[1, :4] = np.nan
    ok = np.isfinite(b)
    rng_ = ((0.0, 255.0), (0.0, 40.0))
    want = np.histogram2d(a[ok], b[ok].astype(np.float64), bins=(255, 8), range=rng_)[0]
    np.testing.assert_array_equal(kernel(a, b, None, *rng_, (255, 8))[0, 0, 0], want)
    mask = rng.random(a.shape) < 0.5
    want_m = np.histogram2d(a[ok & mask], b[ok & mask].astype(np.float64), bins=(255, 8), range=rng_)[0]
    np.testing.assert_array_equal(kernel(a, b, mask, *rng_, (255, 8))[0, 0, 0], want_m)
    np.testing.assert_array_equal(kernel(a.astype(np.int64), b.astype(np.float64), mask, *rng_, (255, 8))[0, 0, 0],
                                  want_m)
    empty = kernel(np.empty((0, 3)), np.empty((0, 3)), None, (0.0, 1.0), (0.0, 1.0), (2, 3))
    assert empty.shape == (1, 1, 2, 3)
    assert empty.sum() == 0


@pytest.mark.parametrize("kernel", HIST1)
def test_histogram_masks_dtypes_empty(kernel):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 64, size=(3, 17, 19)).astype(np.int32)
    mask = rng.random(x.shape) < 0.4
    np.testing.assert_array_equal(kernel(x, mask, 0.0, 64.0, 16).ravel(), np.histogram(x[mask], 16, (0, 64))[0])
    np.testing.assert_array_equal(kernel(x > 20, None, 0.0, 1.0, 2).ravel(), np.histogram((x > 20).astype(np.uint8), 2, (0, 1))[0])
    assert kernel(np.empty(0), None, 0.0, 1.0, 4).tolist() == [[0, 0, 0, 0]]
    big = np.linspace(-1, 2, 5001)  # more than one piece of the compiled loop
    np.testing.assert_array_equal(kernel(big, None, 0.0, 1.0, 33).ravel(), np.histogram(big, 33, (0, 1))[0])


def test_compiled_edges_check(monkeypatch):
    # numpy.linspace's edges are lo + i * step (what the compiled loop assumes), checked per range
    assert all(M._compiled_edges_ok(lo, hi, n) for lo, hi, n in RANGES)
    vals, _ = _edge_values(0.1, 0.7, 7)
    compiled = M.histogram_block(vals, None, 0.1, 0.7, 7)
    joint = M.joint_histogram_block(vals, vals[::-1], None, (0.1, 0.7), (0.1, 0.7), (7, 7))
    # were the identity to fail, the numpy path would run, with the same counts
    monkeypatch.setattr(M, "_compiled_edges_ok", lambda lo, hi, bins: False)
    np.testing.assert_array_equal(M.histogram_block(vals, None, 0.1, 0.7, 7), compiled)
    np.testing.assert_array_equal(M.joint_histogram_block(vals, vals[::-1], None, (0.1, 0.7), (0.1, 0.7), (7, 7)), joint)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int16, bool])
def test_range_block_and_merge(dtype):
    rng = np.random.default_rng(4)
    x = (rng.normal(0, 100, size=(3, 9, 11)) > 0) if dtype is bool else rng.normal(0, 100, size=(3, 9, 11)).astype(dtype)
    xf = x.astype(np.float64)
    if dtype in (np.float64, np.float32):
        x[0, 0, :4] = [np.nan, np.inf, -np.inf, np.nan]
        xf = x.astype(np.float64)
    ok = np.isfinite(xf)
    assert M.range_block(x).ravel().tolist() == [xf[ok].min(), xf[ok].max()]
    mask = rng.random(x.shape) < 0.3
    assert M.range_block(x, mask).ravel().tolist() == [xf[ok & mask].min(), xf[ok & mask].max()]
    assert M.range_block(x, np.zeros(x.shape, bool)).ravel().tolist() == [np.inf, -np.inf]
    assert M.range_block(np.empty((0, 2))).ravel().tolist() == [np.inf, -np.inf]
    parts = np.concatenate([M.range_block(x[i]).reshape(1, 2) for i in range(3)] + [[[np.inf, -np.inf]]])
    assert M.merge_ranges(parts, axis=0).tolist() == [xf[ok].min(), xf[ok].max()]


def test_range_block_numpy_path():
    x = np.array([[2.0, np.nan], [-np.inf, -3.0]])
    for flag in (True, False):
        with use_compiled(flag):
            np.testing.assert_array_equal(M.range_block(x, np.array([True, False])), [[[2.0, 2.0]]])
            np.testing.assert_array_equal(M.range_block(x), [[[-3.0, 2.0]]])
            np.testing.assert_array_equal(M.range_block(x, np.zeros((2, 2), bool)), [[[np.inf, -np.inf]]])


@pytest.mark.parametrize("kernel", MOMENTS)
def test_moments_outlying_first_value(kernel):
    # a hot first pixel is the first shift; as much weight in M2 as the other 4M voxels together: summing
    # everything about it would lose ~ eps * n relative (1e-9); per-piece shifts keep the error small
    a, b = _data(shape=(4, 1000, 1000))
    a.flat[0] = a.mean() + np.sqrt(a.size * a.var())
    b.flat[0] = b.mean() - np.sqrt(b.size * b.var())
    np.testing.assert_allclose(kernel(a, b).ravel(), _truth_moments(a, b), rtol=1e-10)
