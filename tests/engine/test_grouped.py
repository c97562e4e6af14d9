"""Per-group statistics (pfibsims._engine.grouped) against plain numpy on boolean selections."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from pfibsims._engine import grouped as G
from pfibsims.segmentation.statistics import _groups, phase_statistics

SHAPE = (4, 23, 31)
N = 5  # groups 0..4; group 3 is never used (empty)
GROUP_DTYPES = [np.uint8, np.uint16, np.int8, np.int16, np.int32, np.int64, np.uint64]
CHUNKINGS = [None, SHAPE, (2, 7, 9)]


def _values(dtype, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.normal(3.0, 2.0, SHAPE)
    v[rng.random(SHAPE) < 0.1] = np.nan
    v[0, 0, :3] = [np.inf, -np.inf, np.nan]
    return v.astype(dtype)


def _raw_groups(dtype, seed=1):
    """Groups 0..N-1 except 3, plus out-of-range (N, 200) and, for signed dtypes, negative ones."""
    rng = np.random.default_rng(seed)
    g = rng.choice([0, 1, 2, 4, 4, N, 200] + ([-1, -7] if np.dtype(dtype).kind == "i" else []), SHAPE)
    return g.astype(dtype)


def _expected(v, g, n, bins):
    """count, mean, std, min, max, histograms per group from boolean selections."""
    v64 = v.astype(np.float64)
    g64 = g.astype(np.int64)
    out = {"count": [], "mean": [], "std": [], "min": [], "max": [], "hist": [], "sel": []}
    for k in range(n):
        sel = v64[(g64 == k) & np.isfinite(v64)]
        out["sel"].append(sel)
        out["count"].append(sel.size)
        if sel.size:
            out["mean"].append(np.mean(sel))
            out["std"].append(np.std(sel))
            out["min"].append(np.min(sel))
            out["max"].append(np.max(sel))
            out["hist"].append(np.histogram(sel, bins, range=(sel.min(), sel.max()))[0])
        else:
            for key in ("mean", "std", "min", "max"):
                out[key].append(np.nan)
            out["hist"].append(np.zeros(bins, np.int64))
    return out


def _chunk(x, chunks):
    return x if chunks is None else da.from_array(x, chunks=chunks)


def _check(s, exp, bins, quantiles):
    np.testing.assert_array_equal(s["count"], exp["count"])
    np.testing.assert_allclose(s["mean"], exp["mean"], rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(s["std"], exp["std"], rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(s["min"], exp["min"])
    np.testing.assert_array_equal(s["max"], exp["max"])
    for k, sel in enumerate(exp["sel"]):
        if sel.size == 0:
            assert np.isnan(s["quantiles"][k]).all()
            continue
        width = (sel.max() - sel.min()) / bins
        np.testing.assert_allclose(s["quantiles"][k], np.quantile(sel, quantiles), atol=2 * width + 1e-12)


@pytest.mark.parametrize("vdtype", [np.float32, np.float64])
@pytest.mark.parametrize("gdtype", GROUP_DTYPES)
def test_blocks_match_numpy_selections(vdtype, gdtype):
    v, g = _values(vdtype), _raw_groups(gdtype)
    bins = 64
    exp = _expected(v, g, N, bins)
    m = G.moments_block(v, g, N)
    np.testing.assert_array_equal(m[:, 0], exp["count"])
    np.testing.assert_allclose(m[[0, 1, 2, 4], 1], np.take(exp["mean"], [0, 1, 2, 4]), rtol=1e-13)
    np.testing.assert_allclose(m[[0, 1, 2, 4], 2], (np.take(exp["std"], [0, 1, 2, 4]) ** 2)
                               * np.take(exp["count"], [0, 1, 2, 4]), rtol=1e-12)
    np.testing.assert_array_equal(m[3], [0, 0, 0, np.inf, -np.inf])  # the empty group
    lo, hi = np.nan_to_num(np.array(exp["min"])), np.nan_to_num(np.array(exp["max"]))
    h = G.histogram_block(v, g, lo, hi, bins)
    assert h.dtype == np.int64
    np.testing.assert_array_equal(h, np.array(exp["hist"]))


@pytest.mark.parametrize("vdtype", [np.float32, np.float64, np.uint16])
def test_compiled_matches_numpy_reference(vdtype):
    """The kernels against the previous (numpy) implementation: counts, min, max, histograms identical."""
    rng = np.random.default_rng(3)
    v = (rng.gamma(2.0, 50.0, (64, 97)) + 1e6 * (vdtype == np.float64)).astype(vdtype)
    g = rng.integers(-2, 9, v.shape).astype(np.int16)
    lut = np.array([2, -1, 0, 1, 7, 2])  # raw 4 -> 7 (>= n): excluded, like raw -1, 1, >= 6
    a, b = G.moments_block(v, g, 3, lut=lut), G.moments_block(v, g, 3, lut=lut, compiled=False)
    np.testing.assert_array_equal(a[:, [0, 3, 4]], b[:, [0, 3, 4]])
    np.testing.assert_allclose(a[:, 1:3], b[:, 1:3], rtol=1e-12)
    ha = G.histogram_block(v, g, a[:, 3], a[:, 4], 100, lut=lut)
    np.testing.assert_array_equal(ha, G.histogram_block(v, g, a[:, 3], a[:, 4], 100, lut=lut, compiled=False))
    assert ha.sum() == a[:, 0].sum()


def test_moments_exact_with_a_large_offset():
    """m2 from two passes: no cancellation when the mean is large compared with the spread.

    (A one-pass sum of squares loses everything here: sum x^2 ~ 1e12 per voxel
    carries rounding ~1e-4, the variance itself.)
    """
    import math

    rng = np.random.default_rng(4)
    v = 1e6 + rng.normal(0, 1e-2, 10_000)
    mu = math.fsum(v) / v.size
    exact = math.fsum((v - mu) ** 2)
    m = G.moments_block(v, np.zeros(v.size, np.uint8), 1)
    np.testing.assert_allclose(m[0, 1], mu, rtol=1e-15)
    np.testing.assert_allclose(m[0, 2], exact, rtol=1e-9)


@pytest.mark.parametrize("chunks", CHUNKINGS, ids=["numpy", "one-chunk", "small-chunks"])
@pytest.mark.parametrize("vdtype", [np.float32, np.float64])
@pytest.mark.parametrize("gdtype", [np.uint8, np.int64])
def test_grouped_statistics_matches_numpy(chunks, vdtype, gdtype):
    v, g = _values(vdtype), _raw_groups(gdtype)
    bins, q = 256, (0.25, 0.5, 0.75)
    s = G.grouped_statistics(_chunk(v, chunks), _chunk(g, chunks), N, bins=bins, quantiles=q)
    _check(s, _expected(v, g, N, bins), bins, q)


@pytest.mark.parametrize("chunks", CHUNKINGS, ids=["numpy", "one-chunk", "small-chunks"])
def test_grouped_statistics_lut(chunks):
    """Raw labels mapped by a table inside the kernels equal the mapped groups."""
    v = _values(np.float32)
    raw = _raw_groups(np.uint8)  # raw values 0, 1, 2, 4, 5, 200
    lut = np.array([-1, 2, 0, 9, 1])  # 0 -> excluded, 1 -> 2, 2 -> 0, 4 -> 1; 5 and 200 outside the table
    mapped = np.where(raw < lut.size, lut[np.minimum(raw, lut.size - 1)], -1)
    mapped = np.where(mapped < 3, mapped, -1)
    s = G.grouped_statistics(_chunk(v, chunks), _chunk(raw, chunks), 3, bins=128, lut=lut)
    _check(s, _expected(v, mapped, 3, 128), 128, (0.25, 0.5, 0.75))


def test_groups_chunked_differently_and_mixed():
    v, g = _values(np.float64), _raw_groups(np.int32)
    exp = _expected(v, g, N, 64)
    for vv, gg in [(da.from_array(v, chunks=(1, 10, 31)), da.from_array(g, chunks=(4, 5, 6))),
                   (v, da.from_array(g, chunks=(2, 23, 8))), (da.from_array(v, chunks=(3, 4, 5)), g)]:
        _check(G.grouped_statistics(vv, gg, N, bins=64), exp, 64, (0.25, 0.5, 0.75))


def test_empty_and_all_invalid():
    v = np.full((3, 4), np.nan, np.float32)
    g = np.zeros((3, 4), np.uint8)
    s = G.grouped_statistics(da.from_array(v, chunks=2), g, 2)
    assert s["count"].tolist() == [0, 0]
    for key in ("mean", "std", "min", "max", "quantiles"):
        assert np.isnan(s[key]).all()


def test_many_blocks_histogram_tree():
    """More blocks than one merge task takes (the histogram tree has several levels): counts unchanged."""
    rng = np.random.default_rng(5)
    v = rng.random((40, 40))
    g = (v * 3).astype(np.uint8)
    s = G.grouped_statistics(da.from_array(v, chunks=4), da.from_array(g, chunks=4), 3, bins=32)
    assert da.from_array(v, chunks=4).npartitions > G._SPLIT
    np.testing.assert_array_equal(s["count"], np.bincount(g.ravel(), minlength=3))
    _check(s, _expected(v, g, 3, 32), 32, (0.25, 0.5, 0.75))


def test_two_computes_and_no_eager_load():
    """Lazy inputs: exactly two dask computes (the two passes), nothing before them."""
    calls = []

    def counting_get(dsk, keys, **kwargs):
        calls.append(keys)
        return dask.get(dsk, keys, **kwargs)

    v, g = _values(np.float32), _raw_groups(np.uint8)
    with dask.config.set(scheduler=counting_get):
        G.grouped_statistics(da.from_array(v, chunks=(2, 7, 9)), da.from_array(g, chunks=(2, 7, 9)), N)
    assert len(calls) == 2


def test_phase_statistics_uses_labels_as_they_are():
    """No int64 group array: _groups hands the labels' own data and a lookup table to the kernels."""
    lab = xr.DataArray(np.array([[[0, 5, 2]]], np.uint8), dims=("z", "y", "x"))
    data, lut = _groups(lab, [0, 2, 5])
    assert data.dtype == np.uint8
    assert lut.tolist() == [0, -1, 1, -1, -1, 2]


@pytest.mark.parametrize("chunks", CHUNKINGS, ids=["numpy", "one-chunk", "small-chunks"])
def test_phase_statistics_matches_numpy(chunks):
    from pfibsims.dataset import stack

    v = _values(np.float32)
    raw = _raw_groups(np.uint8)  # 0, 1, 2, 4, 5, 200
    ds = stack({"Li6": v}, pixel_size="100 nm", slice_thickness="60 nm")
    lab = xr.DataArray(raw, dims=ds.Li6.dims, coords=ds.Li6.coords,
                       attrs={"flag_values": [0, 2, 4, 7], "flag_meanings": "a b c d"})
    if chunks is not None:
        spec = dict(zip(ds.Li6.dims, chunks, strict=True))
        ds, lab = ds.chunk(spec), lab.chunk(spec)
    st = phase_statistics(ds.Li6, lab, bins=512)
    mapped = np.select([raw == 0, raw == 2, raw == 4], [0, 1, 2], -1)
    exp = _expected(v, mapped, 4, 512)
    np.testing.assert_array_equal(st["count"], exp["count"])
    np.testing.assert_allclose(st["mean"], exp["mean"], rtol=1e-13)
    np.testing.assert_allclose(st["std"], exp["std"], rtol=1e-12)
    np.testing.assert_array_equal(st["min"], exp["min"])
    np.testing.assert_array_equal(st["max"], exp["max"])
    assert np.isnan(st["median"].values[3])


def test_other_dtypes_are_converted():
    """bool and float groups (float truncated, as before), float16 / bool / int values: same as float64 int64."""
    v = np.array([1.5, 2.5, np.nan, 4.0, 8.0])
    g = np.array([0, 1, 1, 0, 1])
    ref = G.moments_block(v, g, 2)
    np.testing.assert_array_equal(G.moments_block(v.astype(np.float16), g.astype(bool), 2), ref)
    np.testing.assert_array_equal(G.moments_block(v, g + 0.7, 2), ref)
    np.testing.assert_array_equal(G.moments_block(np.array([1, 0, 1]), np.array([0, 0, 1]), 2),
                                  G.moments_block(np.array([True, False, True]), np.array([0, 0, 1]), 2))


@pytest.mark.parametrize("compiled", [True, False])
def test_short_table_maps_to_high_groups(compiled):
    """A table shorter than n may still map to groups up to n - 1."""
    v = np.array([1.0, 2.0, 3.0, 4.0])
    g = np.array([0, 1, 1, 2], np.uint8)
    m = G.moments_block(v, g, 5, lut=np.array([4, 0]), compiled=compiled)
    assert m[:, 0].tolist() == [2, 0, 0, 0, 1]
    assert m[[0, 4], 1].tolist() == [2.5, 1.0]


@pytest.mark.parametrize(("n", "bins", "found"), [
    (2**20, 2**20, "1099511627776 cells"),  # 8 TiB of int64 counts a table (was allocated, then touched by quantiles)
    (2**62, 2**62, "21267647932558653966460912964485513216 cells"),  # overflows int64
    (2**24 + 1, 1, "16777217 groups"),  # the moments tables alone: n x 5 float64 a block, 4 lanes a group
])
def test_too_many_groups_or_cells_is_an_error_before_allocating(n, bins, found):
    import tracemalloc

    from pfibsims.errors import PfibsimsError

    v, g = np.ones(4), np.zeros(4, np.int64)
    tracemalloc.start()
    try:
        with pytest.raises(PfibsimsError, match=rf"n, bins: expected at most {G.MAX_CELLS} .*, got .*{found}"):
            G.grouped_statistics(v, g, n, bins=bins)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # refused before any table: under 1 MiB allocated
    if bins == 1:
        with pytest.raises(PfibsimsError, match=rf"n: expected at most {G.MAX_CELLS} groups"):
            G.grouped_moments(v, g, n)
    s = G.grouped_statistics(v, g, 2**12, bins=2**12)  # 2^24 cells: the limit itself is allowed
    assert s["count"][0] == 4
    assert np.isnan(s["mean"][1:]).all()


def test_boundary_profile_hist_bins_times_distance_bins_is_bounded():
    # 75 distance bins x 2^20 histogram bins (each allowed alone) were 630 MiB of counts a block
    from pfibsims.dataset import stack
    from pfibsims.errors import PfibsimsError
    from pfibsims.segmentation import boundary_profile

    ds = stack({"Li6": np.ones((2, 6, 6))}, pixel_size="100 nm", slice_thickness="100 nm")
    lab = ds.Li6.astype(np.uint8).assign_attrs(flag_values=[0, 1], flag_meanings="matrix LCO")
    with pytest.raises(PfibsimsError, match=r"hist_bins: expected a positive number of bins such as 256, at most 223696, got 1048576"):
        boundary_profile(ds.Li6, lab, "LCO", hist_bins=2**20)
