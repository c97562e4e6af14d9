"""Tests of pfibsims.correlate against numpy, scipy and brute force."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.stats as st
import xarray as xr
from conftest import raise_if_dask_computes

from pfibsims import PfibsimsError, stack
from pfibsims.correlate import (
    colocalisation,
    covariance,
    covariance_map,
    joint_histogram,
    local_correlation,
    pearson,
    spearman,
)
from pfibsims.errors import GridError, UnitsError
from pfibsims.normalization import to_uint8

CHUNKS = [None, (5, 12, 16), (2, 5, 7)]


def _pair(chunks, nan=True, offset=0.0):
    rng = np.random.default_rng(3)
    a = rng.gamma(3.0, 10.0, size=(5, 12, 16)) + offset
    b = 0.4 * a + rng.normal(0, 5, size=a.shape) + offset
    if nan:
        a[0, :2, :] = np.nan  # outside a field of view
        b[3, 5, 7] = np.nan
    ds = stack({"Li6": a}, pixel_size="81.4 nm", slice_thickness="60 nm", modality="SIMS")
    ds["Zr_La"] = (("z", "y", "x"), b, {"units": "counts"})
    if chunks:
        ds = ds.chunk(dict(zip(("z", "y", "x"), chunks, strict=False)))
    return ds.Li6, ds.Zr_La, a, b


@pytest.mark.parametrize("chunks", CHUNKS)
def test_covariance_equals_numpy(chunks):
    xa, xb, a, b = _pair(chunks)
    ok = np.isfinite(a) & np.isfinite(b)
    c = covariance(xa, xb)
    np.testing.assert_allclose(float(c), np.cov(a[ok], b[ok])[0, 1], rtol=1e-12)
    assert int(c.n) == ok.sum()
    assert c.attrs["units"] == "ct ** 2" or "count" in c.attrs["units"]


def test_covariance_large_offset_is_stable():
    xa, xb, a, b = _pair((2, 5, 7), nan=False, offset=1e7)
    want = np.cov(a.ravel(), b.ravel())[0, 1]
    np.testing.assert_allclose(float(covariance(xa, xb)), want, rtol=1e-8)


@pytest.mark.parametrize("chunks", CHUNKS)
def test_pearson_of_a_large_offset_is_not_called_constant(chunks):
    # a spread of 2e-9 of the mean was refused as "constant" (the test was std/mean < 3e-7), though
    # the shifted one-pass moments give scipy's r; a constant channel, chunked, is still refused
    xa, xb, a, b = _pair(chunks, nan=False, offset=1e10)
    np.testing.assert_allclose(float(pearson(xa, xb)), st.pearsonr(a.ravel(), b.ravel()).statistic, rtol=1e-8)
    with pytest.raises(PfibsimsError, match=r"Li6: constant over the 960 valid voxels \(value 0.1\)"):
        pearson(xa * 0 + 0.1, xb)


def test_pearson_of_values_whose_squares_overflow_says_so():
    # values of 1e160 (squared deviations overflow float64) were refused as "constant over the 960 valid voxels"
    xa, xb, _, _ = _pair(None, nan=False)
    with pytest.raises(PfibsimsError, match=r"Li6: the sum of squared deviations over the 960 valid voxels overflows"):
        pearson(xa * 1e160, xb)
    assert float(pearson(xa * 1e140, xb)) == pytest.approx(float(pearson(xa, xb)), rel=1e-12)


@pytest.mark.parametrize("chunks", CHUNKS)
def test_pearson_equals_scipy(chunks):
    xa, xb, a, b = _pair(chunks)
    ok = np.isfinite(a) & np.isfinite(b)
    ref = st.pearsonr(a[ok], b[ok])
    ci = ref.confidence_interval(confidence_level=0.9)
    r = pearson(xa, xb, confidence=0.9)
    np.testing.assert_allclose(float(r), ref.statistic, rtol=1e-12)
    np.testing.assert_allclose([r.ci_low, r.ci_high], [ci.low, ci.high], rtol=1e-10)
    np.testing.assert_allclose(r.p_value, ref.pvalue, rtol=1e-6, atol=1e-300)
    np.testing.assert_allclose(r.covariance, np.cov(a[ok], b[ok])[0, 1], rtol=1e-12)
    np.testing.assert_allclose(r.std_a, np.std(a[ok], ddof=1), rtol=1e-12)
    assert r.n == ok.sum()
    np.testing.assert_allclose(float(r), np.corrcoef(a[ok], b[ok])[0, 1], rtol=1e-12)


@pytest.mark.parametrize("chunks", CHUNKS)
def test_mask(chunks):
    xa, xb, a, b = _pair(chunks)
    mask = xr.DataArray(np.arange(16) % 3 == 0, dims="x")
    ok = np.isfinite(a) & np.isfinite(b) & (np.arange(16) % 3 == 0)
    np.testing.assert_allclose(float(covariance(xa, xb, mask=mask)), np.cov(a[ok], b[ok])[0, 1], rtol=1e-12)
    np.testing.assert_allclose(float(pearson(xa, xb, mask=mask)), np.corrcoef(a[ok], b[ok])[0, 1], rtol=1e-12)


def test_numpy_inputs_and_infinities():
    a = np.array([1.0, 2, 3, 4, np.inf, 6])
    b = np.array([2.0, 1, 5, 3, 1, np.nan])
    c = covariance(a, b)
    assert not isinstance(c.data, da.Array)
    np.testing.assert_allclose(float(c), np.cov(a[:4], b[:4])[0, 1])


@pytest.mark.parametrize("chunks", CHUNKS)
def test_spearman_equals_scipy(chunks):
    xa, xb, a, b = _pair(chunks)
    ok = np.isfinite(a) & np.isfinite(b)
    ref = st.spearmanr(a[ok], b[ok])
    rho = spearman(xa, xb)
    np.testing.assert_allclose([float(rho), rho.p_value], [ref.statistic, ref.pvalue], rtol=1e-10)
    assert rho.ci_low < float(rho) < rho.ci_high
    assert rho.method == "spearman"


def test_spearman_reduced_view():
    xa, xb, a, b = _pair(None, nan=False)
    rho = spearman(xa, xb, max_voxels=400)
    assert "every 3th index along z" in rho.view
    np.testing.assert_allclose(float(rho), st.spearmanr(a[::3].ravel(), b[::3].ravel()).statistic)


def test_scalar_errors():
    xa, xb, a, b = _pair(None)
    with pytest.raises(GridError, match=r"b: expected the grid of a"):
        covariance(xa, xb.isel(x=slice(1, None)))
    shifted = xb.assign_coords(x=xb.x + 40.0)
    with pytest.raises(GridError, match=r"b: expected the x coordinates of a"):
        pearson(xa, shifted)
    const = xa * 0 + 3
    with pytest.raises(PfibsimsError, match=r"constant over the"):
        pearson(const, xb)
    with pytest.raises(PfibsimsError, match=r"at least 3 valid"):
        pearson(xa * np.nan, xb)
    with pytest.raises(PfibsimsError, match=r"confidence: expected"):
        pearson(xa, xb, confidence=95)
    with pytest.raises(PfibsimsError, match=r"a: expected a DataArray"):
        pearson(xa.to_dataset(), xb)
    assert np.isnan(float(covariance(xa[:1, :1, :1], xb[:1, :1, :1])))


@pytest.mark.parametrize("chunks", CHUNKS)
def test_covariance_map(chunks):
    xa, xb, a, b = _pair(chunks)
    ok = np.isfinite(a) & np.isfinite(b)
    m = covariance_map(xa, xb)
    want = (a - a[ok].mean()) * (b - b[ok].mean())
    want[~ok] = np.nan
    np.testing.assert_allclose(m.values, want, rtol=1e-10)
    np.testing.assert_allclose(np.nansum(m.values) / (ok.sum() - 1), float(covariance(xa, xb)), rtol=1e-10)
    np.testing.assert_allclose(covariance_map(xa, xb, center=None).values, np.where(ok, a * b, np.nan))
    u8 = to_uint8(m)
    assert u8.dtype == np.uint8
    assert int(u8.max()) == 255
    with pytest.raises(PfibsimsError, match="center: expected"):
        covariance_map(xa, xb, center="median")


def test_covariance_map_lazy_with_given_center():
    xa, xb, _, _ = _pair((2, 5, 7))
    with raise_if_dask_computes():
        m = covariance_map(xa, xb, center=(1.0, 2.0))
        c = covariance(xa, xb)
        jh = joint_histogram(xa, xb, bins=4, range=((0, 100), (0, 50)))
        lc = local_correlation(xa, xb, window="300 nm")
    assert all(isinstance(x.data, da.Array) for x in (m, c, jh, lc))


@pytest.mark.parametrize("chunks", CHUNKS)
def test_joint_histogram_equals_numpy(chunks):
    xa, xb, a, b = _pair(chunks)
    ok = np.isfinite(a) & np.isfinite(b)
    jh = joint_histogram(xa, xb, bins=(9, 7), range=((0, 80), (-10, 40)))
    want, ea, eb = np.histogram2d(a[ok], b[ok], bins=(9, 7), range=((0, 80), (-10, 40)))
    np.testing.assert_array_equal(jh.values, want)
    np.testing.assert_allclose(jh.a_lower.values, ea[:-1])
    np.testing.assert_allclose(jh.b_upper.values, eb[1:])
    assert jh.a.attrs["long_name"] == "Li6"
    assert jh.dims == ("a", "b")
    # default range: each channel's finite min/max
    jh2 = joint_histogram(xa, xb, bins=5)
    fa, fb = np.isfinite(a), np.isfinite(b)
    want2, _, _ = np.histogram2d(a[ok], b[ok], bins=5, range=((a[fa].min(), a[fa].max()), (b[fb].min(), b[fb].max())))
    np.testing.assert_array_equal(jh2.values, want2)


def test_joint_histogram_errors():
    xa, xb, _, _ = _pair(None)
    with pytest.raises(PfibsimsError, match="bins: expected an int or"):
        joint_histogram(xa, xb, bins=(1, 2, 3))
    with pytest.raises(PfibsimsError, match=r"range\[1\]: expected"):
        joint_histogram(xa, xb, range=((0, 1), (2, 1)))
    with pytest.raises(PfibsimsError, match="range: expected"):
        joint_histogram(xa, xb, range=5)


def _brute_local_r(a, b, size, min_pairs=3):
    out = np.full(a.shape, np.nan)
    h = [s // 2 for s in size]
    for idx in np.ndindex(a.shape):
        if not (np.isfinite(a[idx]) and np.isfinite(b[idx])):
            continue
        sl = tuple(slice(max(0, i - k), i + k + 1) for i, k in zip(idx, h, strict=False))
        wa, wb = a[sl].ravel(), b[sl].ravel()
        ok = np.isfinite(wa) & np.isfinite(wb)
        if ok.sum() >= min_pairs and np.ptp(wa[ok]) > 0 and np.ptp(wb[ok]) > 0:
            out[idx] = np.corrcoef(wa[ok], wb[ok])[0, 1]
    return out


@pytest.mark.parametrize("chunks", CHUNKS)
def test_local_correlation_brute_force(chunks):
    xa, xb, a, b = _pair(chunks)
    lc = local_correlation(xa, xb, window={"y": "250 nm", "x": "400 nm"})
    assert lc.attrs["window"] == [1, 3, 5]
    np.testing.assert_allclose(lc.values, _brute_local_r(a, b, (1, 3, 5)), rtol=1e-8, atol=1e-10)
    lc3 = local_correlation(xa, xb, window="250 nm")  # z: 250/60 -> 5 voxels (odd)
    assert lc3.attrs["window"] == [5, 3, 3]
    np.testing.assert_allclose(lc3.values, _brute_local_r(a, b, (5, 3, 3)), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("step", [1e4, 1e6, 1e8])
@pytest.mark.parametrize("chunks", [None, (7, 13)])
def test_local_correlation_next_to_a_large_step(step, chunks):
    # windows on the plateaus of a large step were NaN (1e6, 1e8) or off by 1e-7 (1e4): sums about the block
    # mean lost the windows' variance to rounding; a constant region stays NaN
    rng = np.random.default_rng(8)
    a = rng.poisson(0.3, (20, 40)).astype(np.float64)
    b = a + rng.poisson(0.3, a.shape)
    a[:, 20:] += step
    b[:, 20:] += step
    a[:6, :8] = 5.0
    b[10, 30] = np.nan
    ds = stack({"a": a, "b": b}, pixel_size="10 nm", modality="EDS")
    if chunks:
        ds = ds.chunk({"y": chunks[0], "x": chunks[1]})
    lc = local_correlation(ds.a, ds.b, window={"y": "50 nm", "x": "50 nm"})
    want = _brute_local_r(a, b, (5, 5))
    assert np.isnan(want).sum() > 5  # the constant corner, the NaN voxel
    got = lc.values.reshape(a.shape)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_local_correlation_of_a_single_slice_real_map(shared_data):
    # a real JEOL view reads as one slice (z of length 1): the default window on every axis raised a GridError
    # asking for a z coordinate with units (it has one); one slice gets a 1-voxel window along z
    import pfibsims as pfs

    maps = pfs.read_eds(shared_data / "eds" / "jeol_View000")
    crop = {"y": slice(100, 130), "x": slice(200, 240)}
    fe, s = maps.Fe_Ka.isel(crop), maps.S_Ka.isel(crop)
    lc = local_correlation(fe, s, window="45 nm")  # 45 / 8.69 nm -> 5 voxels in y and x
    assert lc.attrs["window"] == [1, 5, 5]
    want = _brute_local_r(fe.values.astype(np.float64), s.values.astype(np.float64), (1, 5, 5))
    np.testing.assert_allclose(lc.values, want, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("chunks", [None, (2, 3, 7)])
def test_local_correlation_window_larger_than_the_volume(chunks):
    # a window wider than an axis (clipped at the edges, as documented) raised dask's raw
    # "ValueError: The overlapping depth 15 is larger than your array 6"
    xa, xb, a, b = _pair(chunks)
    lc = local_correlation(xa, xb, window="1.3 um")  # 16, 16 and 22 voxels (odd: 17, 17, 23) over 5 x 12 x 16
    assert lc.attrs["window"] == [23, 17, 17]
    np.testing.assert_allclose(lc.values, _brute_local_r(a, b, (23, 17, 17)), rtol=1e-8, atol=1e-10)


def test_local_correlation_errors():
    xa, xb, _, _ = _pair(None)
    with pytest.raises(PfibsimsError, match="window: expected a positive"):
        local_correlation(xa, xb, window="-1 um")
    with pytest.raises(PfibsimsError, match="window: expected one length or 3"):
        local_correlation(xa, xb, window=("1 um", "1 um"))
    with pytest.raises(GridError, match="needs a coordinate with units"):
        local_correlation(np.ones((3, 3)), np.ones((3, 3)))
    # a dim the data lack (here a capital X) was ignored: 1-voxel windows, a map of NaN only
    with pytest.raises(PfibsimsError, match=r"window: expected dims among \('z', 'y', 'x'\), got \['X'\]"):
        local_correlation(xa, xb, window={"y": "1 um", "X": "1 um"})


def _ramp(chunks=None):
    yy, xx = np.meshgrid(np.arange(20.0), np.arange(30.0), indexing="ij")
    vol = np.stack([2 * yy + 3 * xx + k for k in range(3)])
    ds = stack({"Li6": vol}, pixel_size="100 nm", slice_thickness="60 nm")
    return ds.Li6.chunk({"z": 1, "y": 10, "x": 15}) if chunks else ds.Li6


@pytest.mark.parametrize("chunks", [None, True])
def test_profile_linear_ramp_is_exact(chunks):
    from pfibsims.resampling import profile

    x = _ramp(chunks)
    # pixel centres at 50 + 100 i nm; value = 2 i_y + 3 i_x + k
    p = profile(x, ("0.45 um", "0.35 um"), ("1.25 um", "0.95 um"), kernel="linear", width="300 nm")
    t = p.distance.values
    iy = (450 + t * 0.8 - 50) / 100
    ix = (350 + t * 0.6 - 50) / 100
    want = 2 * iy + 3 * ix + np.arange(3)[:, None]
    np.testing.assert_allclose(p.values, want, atol=1e-9)
    assert t[-1] == pytest.approx(1000.0)
    assert p.dims == ("z", "distance")
    np.testing.assert_allclose(p.y.values[-1], 1250.0)


def test_profile_3d_and_errors():
    from pfibsims.resampling import profile

    x = _ramp()
    p = profile(x, ("60 nm", "450 nm", "350 nm"), ("60 nm", "450 nm", "950 nm"), kernel="linear")
    np.testing.assert_allclose(p.values, 2 * 4 + 3 * (3 + np.arange(7)) + 1, atol=1e-9)
    outside = profile(x, ("0.45 um", "0.35 um"), ("0.45 um", "9 um"), kernel="linear")
    assert np.isnan(outside.values[0, -1])
    with pytest.raises(PfibsimsError, match="must keep z constant"):
        profile(x, ("0 nm", "1 um", "1 um"), ("60 nm", "1 um", "2 um"))
    with pytest.raises(PfibsimsError, match="start: expected a point"):
        profile(x, "1 um", ("1 um", "2 um"))
    with pytest.raises(PfibsimsError, match="expected two different points"):
        profile(x, ("1 um", "1 um"), ("1 um", "1 um"))
    with pytest.raises(PfibsimsError, match="n: expected at least 2"):
        profile(x, ("1 um", "1 um"), ("1 um", "2 um"), n=1)
    # issue 21: plain numbers are no longer taken as nm (is 2 nm or um?); sizes are bounded
    with pytest.raises(UnitsError, match="start: expected a length such as '81.4 nm', got the plain number 450"):
        profile(x, (450, 350), ("1 um", "2 um"))
    with pytest.raises(PfibsimsError, match="n: expected at least 2 samples and at most 4194304, got 1000000000"):
        profile(x, ("1 um", "1 um"), ("1 um", "2 um"), n=10**9)
    with pytest.raises(PfibsimsError, match="width: expected a length from 0 to 4194304 pixels"):
        profile(x, ("1 um", "1 um"), ("1 um", "2 um"), width="1 m")


@pytest.mark.parametrize("flip", [("y",), ("x",), ("z", "y"), ("z", "y", "x")])
@pytest.mark.parametrize("chunks", [None, True])
def test_profile_of_an_image_with_decreasing_coordinates_is_that_of_its_points(chunks, flip):
    """Rows stored top down (y high -> low) were refused ('expected increasing coordinates'): a profile is a
    function of physical points, so it is the profile of the same image with increasing coordinates."""
    from pfibsims.resampling import profile

    x = _ramp(chunks).isel({d: slice(None, None, -1) for d in flip})
    assert float(x[flip[0]][0]) > float(x[flip[0]][-1])
    p = profile(x, ("0.45 um", "0.35 um"), ("1.25 um", "0.95 um"), kernel="linear", width="300 nm")
    t = p.distance.values
    iy, ix = (450 + t * 0.8 - 50) / 100, (350 + t * 0.6 - 50) / 100  # the ramp 2 i_y + 3 i_x + k at the points
    k = np.arange(3)[::-1] if "z" in flip else np.arange(3)  # slices keep the data's order
    np.testing.assert_allclose(p.values, 2 * iy + 3 * ix + k[:, None], atol=1e-9)
    np.testing.assert_array_equal(p.z.values, x.z.values)
    np.testing.assert_allclose(p.y.values, 450 + t * 0.8)
    p3 = profile(x, ("60 nm", "450 nm", "350 nm"), ("60 nm", "450 nm", "950 nm"), kernel="linear")
    np.testing.assert_allclose(p3.values, 2 * 4 + 3 * (3 + np.arange(7)) + 1, atol=1e-9)


# --- bad arguments and non-finite values (issue 21) ----------------------------------------------


def test_histogram_sizes_are_bounded():
    from pfibsims.normalization import histogram

    a, b, _, _ = _pair(None)
    with pytest.raises(PfibsimsError, match="bins: expected a positive number of bins such as 256, at most 16777216, got 1000000000"):
        histogram(a, bins=10**9)  # was a MemoryError (7.45 GiB)
    with pytest.raises(PfibsimsError, match=r"bins\[1\]: expected a positive number of bins such as 256, at most 167, got 100000"):
        joint_histogram(a, b, bins=(10**5, 10**5))  # was a MemoryError (74.5 GiB)


@pytest.mark.parametrize("chunks", [None, (5, 12, 16)])
def test_inf_values_are_left_out_and_counted(chunks):
    # inf was dropped silently: n = 255 of 256 and no word about it
    from pfibsims.errors import DataWarning
    from pfibsims.normalization import histogram, normalize

    a, b, ra, rb = _pair(chunks, nan=False)
    bad = a.copy(data=np.where(np.arange(a.size).reshape(a.shape) == 7, np.inf, ra))
    if chunks:
        bad = bad.chunk(dict(zip(("z", "y", "x"), chunks, strict=True)))
    with pytest.warns(DataWarning, match="pearson: Li6 has 1 inf value"):
        r = pearson(bad, b)
    assert r.n == a.size - 1
    with pytest.warns(DataWarning, match="histogram: Li6 has 1 inf value"):
        h = histogram(bad, bins=8)
    assert int(h.sum()) == a.size - 1  # reference: the finite count
    with pytest.warns(DataWarning, match="normalize: Li6 has 1 inf value"):
        normalize(bad, method="minmax")
    with pytest.warns(DataWarning, match="joint_histogram: a has 1 inf value"):
        joint_histogram(bad, b, bins=4)


def test_colocalisation_of_a_constant_channel_is_an_error_not_a_p_value():
    # all-zero inputs gave r = nan with p = 0.0099
    a, b, _, _ = _pair(None, nan=False)
    with pytest.raises(PfibsimsError, match=r"Li6: constant \(0\) over the 960 valid voxels, so r and its Costes p-value are undefined"):
        colocalisation(a * 0, b * 0, n_iter=5)


@pytest.mark.parametrize(("call", "match"), [
    (lambda a, b: colocalisation(a, b, n_iter=10**9), "n_iter: expected a whole number from 0 to 100000"),
    (lambda a, b: colocalisation(a, b, n_iter=5, seed="garbage"), "seed: expected a whole number from 0"),
    (lambda a, b: colocalisation(a, b, n_iter=5, seed=-5), "seed: expected a whole number from 0"),
    (lambda a, b: spearman(a, b, max_voxels=0), "max_voxels: expected a whole number from 1 or more"),
    (lambda a, b: spearman(a, b, max_voxels="10"), "max_voxels: expected a whole number from 1 or more"),
    (lambda a, b: local_correlation(a, b, window="400 nm", min_pairs=None), "min_pairs: expected a whole number from 2"),
])
def test_integer_options_are_checked(call, match):
    a, b, _, _ = _pair(None)
    with pytest.raises(PfibsimsError, match=match):
        call(a, b)


@pytest.mark.parametrize("n", [3, 4, 5, 10, 50, 500])
def test_pearson_p_value_and_interval_equal_scipy_at_small_n(n):
    """The exact p-value (incomplete beta) and Fisher interval (inverse normal) match scipy.stats.pearsonr,
    also where p is far from 0 (a weak correlation over few voxels)."""
    rng = np.random.default_rng(n)
    for trial in range(3):
        a = rng.normal(size=n)
        b = 0.3 * trial * a + rng.normal(size=n)
        ref = st.pearsonr(a, b)
        r = pearson(xr.DataArray(a, dims="x"), xr.DataArray(b, dims="x"))
        np.testing.assert_allclose(r.p_value, ref.pvalue, rtol=1e-10, atol=1e-300)
        if n > 3:
            ci = ref.confidence_interval(confidence_level=0.95)
            np.testing.assert_allclose([r.ci_low, r.ci_high], [ci.low, ci.high], rtol=1e-10)


def test_joint_histogram_of_a_range_wider_than_float64_is_an_error_not_zeros():
    x = xr.DataArray(np.array([-1e308, 0.0, 1e308]), dims="x")
    with pytest.raises(PfibsimsError, match=r"range: the span from -1e\+308 to 1e\+308 overflows float64"):
        joint_histogram(x, x, bins=4)


@pytest.mark.parametrize("scale", [1e-3, 1e100, 1e145])
def test_pearson_of_values_whose_product_of_spreads_overflows_equals_scipy(scale):
    # sum (a - mean)^2 and sum (b - mean)^2 are finite at 1e100 and 1e145, their product is not: r was reported 0 (sqrt(inf))
    xa, xb, a, b = _pair(None, nan=False)
    ref = st.pearsonr((a * scale).ravel(), (b * scale).ravel())
    r = pearson(xa * scale, xb * scale)
    np.testing.assert_allclose(float(r), ref.statistic, rtol=1e-12)
    ci = ref.confidence_interval()
    np.testing.assert_allclose([r.ci_low, r.ci_high], [ci.low, ci.high], rtol=1e-10)


def test_pearson_of_values_whose_squares_underflow_says_so():
    # values of 1e-160: the squared deviations are subnormal (their product 0), a ZeroDivisionError
    xa, xb, _, _ = _pair(None, nan=False)
    with pytest.raises(PfibsimsError, match=r"Li6: the squared deviations over the 960 valid voxels underflow float64 "
                                            r"\(mean square deviation [0-9.e+-]+\); scale the data up"):
        pearson(xa * 1e-160, xb)
    assert float(pearson(xa * 1e-140, xb * 1e-140)) == pytest.approx(float(pearson(xa, xb)), rel=1e-12)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_pearson_of_a_perfect_line_has_a_finite_interval(sign):
    # r = +-1 exactly: Fisher's z is infinite; the interval is the point +-1 and p = 0 (scipy: r to 1e-15)
    x = np.arange(10.0)
    ref = st.pearsonr(x, sign * 4 * x + 1)
    r = pearson(xr.DataArray(x, dims="x"), xr.DataArray(sign * 4 * x + 1, dims="x"))
    assert float(r) == pytest.approx(ref.statistic, abs=1e-14)
    assert np.isfinite([r.r, r.ci_low, r.ci_high, r.p_value]).all()
    assert r.ci_low <= r.r <= r.ci_high
    np.testing.assert_allclose([r.ci_low, r.ci_high], [sign, sign], atol=1e-14)
    assert r.p_value == pytest.approx(ref.pvalue, abs=1e-50)


def test_pearson_of_two_voxels_or_a_constant_is_an_error():
    # scipy gives r = +-1 with p = 1 for two points and NaN for a constant: both are errors here
    two = xr.DataArray(np.array([1.0, 2.0]), dims="x")
    with pytest.raises(PfibsimsError, match="a, b: Pearson r needs at least 3 valid voxel pairs, found 2"):
        pearson(two, 2 * two)
    three = xr.DataArray(np.array([1.0, 2.0, 3.0]), dims="x", name="Li6")
    with pytest.raises(PfibsimsError, match=r"Zr_La: constant over the 3 valid voxels \(value 5\)"):
        pearson(three, xr.DataArray(np.full(3, 5.0), dims="x", name="Zr_La"))


_STATISTICS = {
    "covariance": lambda a, b, m: covariance(a, b, mask=m),
    "pearson": lambda a, b, m: pearson(a, b, mask=m),
    "covariance_map": lambda a, b, m: covariance_map(a, b, mask=m),
    "joint_histogram": lambda a, b, m: joint_histogram(a, b, bins=4, mask=m),
    "joint_histogram, range": lambda a, b, m: joint_histogram(a, b, bins=4, range=((0, 99), (0, 99)), mask=m),
    "spearman": lambda a, b, m: spearman(a, b, mask=m),
    "colocalisation": lambda a, b, m: colocalisation(a, b, mask=m, n_iter=3),
}


@pytest.mark.parametrize("stat", list(_STATISTICS))
def test_an_all_false_mask_is_an_error_naming_mask(stat):
    # an in-memory all-False mask gave NaN (covariance), zero counts (joint_histogram with a range) or errors
    # about "valid voxel pairs" / "finite values of a" that did not say the mask selected nothing
    xa, xb, _, _ = _pair(None)
    none = xr.DataArray(np.zeros(xa.shape, bool), dims=xa.dims)
    with pytest.raises(PfibsimsError, match=r"^mask: expected True where voxels count, got all False \(960 voxels\)"):
        _STATISTICS[stat](xa, xb, none)
    with pytest.raises(PfibsimsError, match=r"^mask: expected True where voxels count, got all False"):
        _STATISTICS[stat](xa, xb, np.zeros(xa.shape, bool))
    one = none.copy(data=np.arange(xa.size).reshape(xa.shape) == 500)  # one voxel: not all False
    if stat in ("covariance", "covariance_map", "joint_histogram", "joint_histogram, range"):
        _STATISTICS[stat](xa, xb, one)
    else:
        with pytest.raises(PfibsimsError, match=r"^a, b: .* needs at least 3 valid voxel pairs, found 1"):
            _STATISTICS[stat](xa, xb, one)


@pytest.mark.parametrize("stat", ["pearson", "covariance_map", "joint_histogram", "spearman", "colocalisation"])
def test_a_lazy_mask_selecting_no_finite_pair_is_an_error_naming_mask(stat):
    # a dask mask is not computed to check it: the statistic's own pass finds no voxel and names the mask
    xa, xb, a, b = _pair((5, 12, 16))
    m = xr.DataArray(da.from_array(np.zeros(a.shape, bool), chunks=(2, 6, 8)), dims=xa.dims)
    with pytest.raises(PfibsimsError, match=r"^mask: .*found none"):
        _STATISTICS[stat](xa, xb, m)
    if stat == "joint_histogram":  # ranges are per channel: each has finite values where the other is NaN
        return
    nan_only = xr.DataArray(da.from_array(~(np.isfinite(a) & np.isfinite(b)), chunks=(2, 6, 8)), dims=xa.dims)
    with pytest.raises(PfibsimsError, match=r"^mask: .*found none"):  # True only where a channel is NaN
        _STATISTICS[stat](xa, xb, nan_only)


@pytest.mark.parametrize("chunks", [None, (2, 5, 7)])
def test_local_correlation_plateaus_once_the_window_covers_the_volume(chunks):
    # windows of 1 m (16666667 x 12285013^2 voxels): their volume overflowed int64 in the count of valid pairs
    # (np.prod), every window had "2.5 pairs" and r was NaN everywhere, after 44 s of box filters 1.2e7 long.
    # Once a window spans the volume, every voxel's r is numpy's r over all valid pairs, whatever the window.
    xa, xb, a, b = _pair(chunks)
    ok = np.isfinite(a) & np.isfinite(b)
    whole = np.where(ok, np.corrcoef(a[ok], b[ok])[0, 1], np.nan)
    for window in ["5 um", "1 m", "1 km"]:
        lc = local_correlation(xa, xb, window=window)
        np.testing.assert_allclose(lc.values, whole, rtol=1e-10, atol=1e-12)
    # the first pass's window counts equal the direct count: min_pairs up to all valid pairs keeps r, one more not
    assert np.isfinite(local_correlation(xa, xb, window="1 m", min_pairs=int(ok.sum())).values[ok]).all()
    assert np.isnan(local_correlation(xa, xb, window="1 m", min_pairs=int(ok.sum()) + 1).values).all()
