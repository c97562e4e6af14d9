"""Tests of pfibsims.normalize against numpy and hand-computed eq. 1 / eq. 2."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from conftest import raise_if_dask_computes

from pfibsims import PfibsimsError, stack
from pfibsims.dataset import history
from pfibsims.errors import GridError
from pfibsims.normalization import from_uint8, histogram, normalize, to_uint8

CHUNKS = [None, (4, 6, 8), (2, 3, 5)]


def _da(values, chunks, name="Zr_La", units="counts"):
    ds = stack({name: values}, pixel_size="81.4 nm", slice_thickness="60 nm", units=units)
    x = ds[name]
    return x.chunk(dict(zip(x.dims, chunks, strict=False))) if chunks else x


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(0)
    return rng.poisson(30, size=(4, 6, 8)).astype(np.float64) + 1


@pytest.mark.parametrize("chunks", CHUNKS)
def test_minmax_eq1_hand_computed(chunks):
    x = _da(np.array([[[2.0, 4.0], [6.0, 10.0]]]), chunks and (1, 1, 1))
    out = normalize(x, method="minmax")
    np.testing.assert_allclose(out.values, [[[0.0, 0.25], [0.5, 1.0]]])
    assert out.attrs["units"] == "1"
    assert history(out)[-1]["params"]["method"] == "minmax"


@pytest.mark.parametrize("chunks", CHUNKS)
def test_log_eq2_hand_computed(chunks):
    x = _da(np.array([[[1.0, 10.0], [100.0, 1000.0]]]), chunks and (1, 1, 1))
    np.testing.assert_allclose(normalize(x, method="log").values, [[[0, 1 / 3], [2 / 3, 1]]], atol=1e-15)


@pytest.mark.parametrize("chunks", CHUNKS)
@pytest.mark.parametrize("method", ["log", "minmax", "percentile"])
def test_chunked_equals_numpy(counts, chunks, method):
    out = normalize(_da(counts, chunks), method=method)
    if method == "log":
        want = np.log10(counts) / np.log10(counts.max())
    elif method == "minmax":
        want = (counts - counts.min()) / (counts.max() - counts.min())
    else:
        lo, hi = np.percentile(counts, [1, 99])
        want = np.clip((counts - lo) / (hi - lo), 0, 1)
    np.testing.assert_allclose(out.values, want, rtol=1e-12)


@pytest.mark.parametrize("chunks", CHUNKS)
def test_over_z_is_per_slice(counts, chunks):
    out = normalize(_da(counts, chunks), method="minmax", over="z")
    mn, mx = counts.min(axis=(1, 2), keepdims=True), counts.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(out.values, (counts - mn) / (mx - mn), rtol=1e-12)


def test_over_yx_is_per_column(counts):
    out = normalize(_da(counts, None), method="log", over=("y", "x"))
    np.testing.assert_allclose(out.values, np.log10(counts) / np.log10(counts.max(axis=0)), rtol=1e-12)


def test_nan_ignored(counts):
    c = counts.copy()
    c[0, 0, 0] = np.nan
    c[1, 2, 3] = 1e9  # not NaN: the max
    out = normalize(_da(c, (2, 3, 4)), method="minmax")
    assert np.isnan(out.values[0, 0, 0])
    assert out.values[1, 2, 3] == 1.0


def test_float32_kept_and_dataset(counts):
    ds = stack({"Zr_La": counts.astype(np.float32), "Co_La": counts}, pixel_size="81.4 nm", slice_thickness="60 nm")
    out = normalize(ds, method="log")
    assert out.Zr_La.dtype == np.float32
    assert out.Co_La.dtype == np.float64
    assert history(out)[-1]["step"] == "normalize"
    assert ds.Zr_La.attrs["units"] == "counts"  # input untouched


def test_dataset_labels_and_masks_are_kept(counts):
    """A fused volume with its phase labels (CF flag_values, zeros = unassigned) and coverage mask: normalize and
    to_uint8 take the intensities only (the labels failed under "log", zeros, and were scaled as counts)."""
    ds = stack({"Zr_La": counts, "Co_La": counts + 1.0}, pixel_size="81.4 nm", slice_thickness="60 nm")
    phase = xr.DataArray((counts > counts.mean()).astype(np.uint8), dims=("z", "y", "x"),
                         attrs={"flag_values": np.array([0, 1], np.uint8), "flag_meanings": "unassigned LLZTO"})
    vol = ds.assign(phase=phase, coverage=phase.copy(data=counts > 0).drop_attrs())
    out = normalize(vol, method="log", zeros="nan")
    np.testing.assert_array_equal(out.phase.values, vol.phase.values)
    np.testing.assert_array_equal(out.coverage.values, vol.coverage.values)
    np.testing.assert_allclose(out.Co_La.values, np.log10(counts + 1.0) / np.log10((counts + 1.0).max()))
    u8 = to_uint8(out)
    assert u8.phase.dtype == np.uint8
    assert u8.phase.attrs["flag_meanings"] == "unassigned LLZTO"
    np.testing.assert_array_equal(u8.phase.values, vol.phase.values)
    assert u8.coverage.dtype == bool
    assert u8.Co_La.dtype == np.uint8


def test_lazy_output():
    x = _da(np.arange(1.0, 49).reshape(3, 4, 4), (1, 2, 2))
    out = normalize(x, method="log")
    assert isinstance(out.data, da.Array)


def test_zeros_policies():
    x = _da(np.array([[[0.0, 10.0], [100.0, 1000.0]]]), None)
    with pytest.raises(PfibsimsError, match=r"zeros='raise'.*values <= 0.*zeros='nan'"):
        normalize(x, method="log")
    assert np.isnan(normalize(x, method="log", zeros="nan").values[0, 0, 0])
    assert normalize(x, method="log", zeros="clip").values[0, 0, 0] == 0.0


def test_errors():
    const = _da(np.full((2, 2, 2), 5.0), None)
    with pytest.raises(PfibsimsError, match=r"method='minmax'.*constant"):
        normalize(const, method="minmax")
    per_slice = np.ones((2, 2, 2))
    per_slice[1] = [[1, 2], [3, 4]]
    with pytest.raises(PfibsimsError, match=r"constant.*index \{'z': 0\}"):
        normalize(_da(per_slice, None), method="minmax", over="z")
    with pytest.raises(PfibsimsError, match=r"method: expected one of"):
        normalize(const, method="zscore")
    with pytest.raises(PfibsimsError, match=r"zeros: expected one of"):
        normalize(const, zeros="drop")
    with pytest.raises(PfibsimsError, match=r"over: expected dims"):
        normalize(const, over="t")
    with pytest.raises(PfibsimsError, match=r"x_max > 1"):
        normalize(_da(np.full((1, 2, 2), 0.5), None), method="log")
    with pytest.raises(PfibsimsError, match=r"low, high"):
        normalize(const, method="percentile", low=90, high=10)
    with pytest.raises(PfibsimsError, match=r"no finite values"):
        normalize(_da(np.full((1, 2, 2), np.nan), None), method="minmax")


@pytest.mark.parametrize("chunks", CHUNKS)
def test_to_uint8_roundtrip(counts, chunks):
    x = _da(counts, chunks)
    u8 = to_uint8(normalize(x, method="minmax"))
    assert u8.dtype == np.uint8
    assert int(u8.max()) == 255
    assert int(u8.min()) == 0
    raw = to_uint8(x)
    back = from_uint8(raw)
    assert back.attrs["units"] == "counts"
    np.testing.assert_allclose(back.values, counts, atol=raw.attrs["uint8_scale"] / 2 + 1e-12)


def test_to_uint8_nan_fill_and_errors():
    x = xr.DataArray(np.array([0.0, np.nan, 1.0]), dims="x", attrs={"units": "1"})
    assert to_uint8(x, fill=7).values.tolist() == [0, 7, 255]
    with pytest.raises(PfibsimsError, match="range: expected"):
        to_uint8(x, range=(1, 0))
    with pytest.raises(PfibsimsError, match="fill: expected"):
        to_uint8(x, fill=300)
    with pytest.raises(PfibsimsError, match="codes: expected"):
        from_uint8(x)


@pytest.mark.parametrize("chunks", CHUNKS)
def test_histogram_equals_numpy(counts, chunks):
    c = counts.copy()
    c[0, 0, :3] = np.nan
    x = _da(c, chunks)
    h = histogram(x, bins=17)
    ok = np.isfinite(c)
    want, edges = np.histogram(c[ok], bins=17)
    np.testing.assert_array_equal(h.values, want)
    np.testing.assert_allclose(h.bin_lower.values, edges[:-1])
    np.testing.assert_allclose(h.bin_upper.values, edges[1:])
    assert h.bin.attrs["units"] == "counts"
    want_r, _ = np.histogram(c[ok], bins=5, range=(10, 40))
    np.testing.assert_array_equal(histogram(x, bins=5, range=(10, 40)).values, want_r)


def test_histogram_edges_like_numpy():
    # values exactly on (rounded) edges: the numpy edge correction must agree
    v = np.linspace(0, 0.3, 31)
    x = xr.DataArray(v, dims="x")
    np.testing.assert_array_equal(histogram(x, bins=3, range=(0, 0.3)).values, np.histogram(v, 3, (0, 0.3))[0])
    np.testing.assert_array_equal(histogram(x, bins=7).values, np.histogram(v, 7)[0])


def test_histogram_bins_narrower_than_float64_spacing_are_refused():
    # 17 bins over a span of 1e-9 at 1e6 (float64 spacing there 1.2e-10) gave bins of zero width (equal lower
    # edges) with counts; numpy.histogram refuses them ("Too many bins for data range")
    from pfibsims.correlate import joint_histogram

    lo, hi = -1e6, -1e6 + 1e-9
    x = xr.DataArray(np.array([lo, lo + 2.3e-10, hi]), dims="x", name="Li6")
    with pytest.raises(ValueError, match="Too many bins"):
        np.histogram(x.values, bins=17, range=(lo, hi))
    with pytest.raises(PfibsimsError, match="bins: 17 equal bins from -1000000 to -999999.99999999895 are narrower than"):
        histogram(x, bins=17, range=(lo, hi))
    with pytest.raises(PfibsimsError, match="bins: 17 equal bins from"):
        histogram(x, bins=17)  # the data's own range
    with pytest.raises(PfibsimsError, match="bins: 17 equal bins from"):
        joint_histogram(x, x, bins=(2, 17))
    assert histogram(x, bins=4).values.tolist() == np.histogram(x.values, bins=4)[0].tolist()


@pytest.mark.parametrize("chunks", CHUNKS)
def test_histogram_mask(counts, chunks):
    x = _da(counts, chunks)
    mask = xr.DataArray(np.arange(6) < 3, dims="y")  # broadcast over z, x
    h = histogram(x, bins=8, range=(0, 64), mask=mask)
    np.testing.assert_array_equal(h.values, np.histogram(counts[:, :3], 8, (0, 64))[0])
    with pytest.raises(GridError, match="mask: expected 6 along y"):
        histogram(x, mask=xr.DataArray(np.ones(5, bool), dims="y"))
    with pytest.raises(PfibsimsError, match="mask: expected booleans"):
        histogram(x, mask=np.ones(counts.shape))


def test_histogram_is_lazy():
    x = _da(np.arange(48.0).reshape(3, 4, 4), (1, 2, 2))
    with raise_if_dask_computes():
        h = histogram(x, bins=4, range=(0, 48))
    assert isinstance(h.data, da.Array)
    assert h.values.sum() == 48


def test_histogram_of_data_in_memory_needs_no_dask(counts):
    """In memory, the range and the counts are computed directly (the same numbers), not through dask."""
    c = counts.copy()
    c[0, 0, :3] = np.nan
    x = xr.DataArray(c, dims=("z", "y", "x"), attrs={"units": "counts"})
    with raise_if_dask_computes():
        h = histogram(x, bins=17)
    assert isinstance(h.data, np.ndarray)
    want, edges = np.histogram(c[np.isfinite(c)], bins=17)
    np.testing.assert_array_equal(h.values, want)
    np.testing.assert_allclose(h.bin_lower.values, edges[:-1])
    np.testing.assert_array_equal(h.values, histogram(x.chunk({"z": 1}), bins=17).values)  # as from dask


def test_histogram_errors():
    x = xr.DataArray(np.arange(4.0), dims="x")
    with pytest.raises(PfibsimsError, match="bins: expected a positive"):
        histogram(x, bins=0)
    with pytest.raises(PfibsimsError, match="data: expected a DataArray"):
        histogram(x.to_dataset(name="Li6"))
    with pytest.raises(PfibsimsError, match="data: expected real numbers"):
        histogram(xr.DataArray(np.array(["a"]), dims="x"))


@pytest.mark.parametrize("max_samples", [0, -1, 2.5, None, "10"])
def test_max_samples_must_be_a_positive_count(max_samples):
    ds = stack({"Li6": np.arange(1.0, 13.0).reshape(3, 4)}, pixel_size="72 nm")
    with pytest.raises(PfibsimsError, match="max_samples: expected a positive number of voxels such as 4194304"):
        normalize(ds.Li6, method="percentile", max_samples=max_samples)


def test_percentile_bounds_must_be_numbers():
    ds = stack({"Li6": np.arange(1.0, 13.0).reshape(3, 4)}, pixel_size="72 nm")
    with pytest.raises(PfibsimsError, match="low, high: expected percentiles with 0 <= low < high <= 100, got 'a', 99"):
        normalize(ds.Li6, method="percentile", low="a")


def test_empty_data_is_refused():
    ds = stack({"Li6": np.arange(1.0, 13.0).reshape(3, 4)}, pixel_size="72 nm")
    with pytest.raises(PfibsimsError, match="data: expected at least one voxel along every axis, found 'y' of size 0"):
        normalize(ds.Li6.isel(y=slice(0, 0)))


def test_a_range_wider_than_float64_is_an_error_not_zeros():
    # -1e308 .. 1e308: hi - lo overflows; histogram counted nothing, to_uint8 gave 0s, minmax gave NaN
    x = xr.DataArray(np.array([-1e308, 0.0, 1e308]), dims="x", name="Li6")
    with pytest.raises(PfibsimsError, match=r"range: the span from -1e\+308 to 1e\+308 overflows float64"):
        histogram(x, bins=4)
    with pytest.raises(PfibsimsError, match=r"range: the span from -1e\+308 to 1e\+308 overflows float64"):
        to_uint8(x)
    with pytest.raises(PfibsimsError, match=r"data: Li6 spans -1e\+308 to 1e\+308, which overflows float64"):
        normalize(x, method="minmax")
    assert histogram(x / 4, bins=4).values.tolist() == np.histogram(x.values / 4, bins=4)[0].tolist()
