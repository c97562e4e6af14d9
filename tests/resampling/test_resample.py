"""Tests of pfibsims.resample against independent truth (Pillow, analytic functions, exact maps)."""

from __future__ import annotations

import math
import time
import tracemalloc

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from PIL import Image

import pfibsims as pfs
from pfibsims.dataset import history, validate
from pfibsims.errors import DataModelError, GridError, PfibsimsError, UnitsError
from pfibsims.grid import Grid
from pfibsims.resampling import coverage, resample
from pfibsims.transform import Affine

CHUNKINGS = [None, -1, 7]  # numpy in/out, one chunk, small chunks


def _image(data, pixel="72 nm", chunks=None, name="Li6"):
    ds = pfs.stack({name: data}, pixel_size=pixel, modality="SIMS", units="1")  # waves and noise, not counts
    return ds if chunks is None else ds.chunk({"y": chunks, "x": chunks} if chunks != -1 else {"y": -1, "x": -1})


def _run(data, onto, chunks, **kw):
    if chunks is None:
        return resample(data, onto, **kw)
    return resample(data, onto, chunks=chunks, **kw).compute()


def _wave(ny, nx, py=23.0, px=17.0):
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float64)
    return np.sin(2 * np.pi * x / px + 0.3) * np.cos(2 * np.pi * y / py)


def _wave_at(points_nm, pixel, py=23.0, px=17.0):
    iy, ix = points_nm[..., 0] / pixel - 0.5, points_nm[..., 1] / pixel - 0.5
    return np.sin(2 * np.pi * ix / px + 0.3) * np.cos(2 * np.pi * iy / py)


def _centre(grid):
    return tuple((lo + hi) / 2 for lo, hi in grid.extent)


# -- Pillow is the truth for aligned grids ----------------------------------------
@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("shape", [(53, 71), (131, 170), (30, 97)], ids=["down", "up", "mixed"])
@pytest.mark.parametrize(("kernel", "pil"), [("lanczos", Image.LANCZOS), ("cubic", Image.BICUBIC),
                                             ("linear", Image.BILINEAR)])
def test_matches_pillow_resize_on_float_images(chunks, shape, kernel, pil):
    img = np.random.default_rng(1).random((60, 80)).astype(np.float32)
    src = _image(img, chunks=chunks)
    onto = Grid.of(src, dims=("y", "x")).with_shape(shape)
    out = _run(src.Li6, onto, chunks, kernel=kernel)
    ref = np.asarray(Image.fromarray(img).resize(shape[::-1], pil))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.values[0], ref, rtol=0, atol=4e-7)


def test_pixel_centre_convention_by_hand():
    # Centres at (i + 0.5) * spacing; extents coincide: a 2x linear upsample of 0,1,2,3 is known by hand.
    src = xr.DataArray(np.arange(4.0)[None], dims=("y", "x"),
                       coords={"y": ("y", [5.0], {"units": "nm", "spacing": "10 nm"}),
                               "x": ("x", 5.0 + 10 * np.arange(4), {"units": "nm"})})
    onto = Grid.of(src).with_shape((1, 8))
    assert onto.origin[1] == 2.5
    assert onto.extent[1] == (0.0, 40.0)
    out = resample(src, onto, kernel="linear")
    np.testing.assert_allclose(out.values[0], [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0])
    np.testing.assert_allclose(out.x.values, 2.5 + 5 * np.arange(8))


# -- analytic truth ------------------------------------------------------------------
@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_band_limited_wave_scaled_72_to_81_4(chunks):
    src = _image(_wave(120, 120), chunks=chunks)
    onto = Grid((100, 100), "81.4 nm", origin=("200 nm", "300 nm"))
    out = _run(src.Li6, onto, chunks).values[0]
    pts = np.stack(np.meshgrid(*onto.coords().values(), indexing="ij"), -1)
    truth = _wave_at(pts, 72.0)
    inner = (slice(5, -10), slice(5, -10))
    assert out.dtype == np.float64
    assert np.abs(out - truth)[inner].max() < 5e-3


@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_rotated_wave_matches_analytic_values(chunks):
    src = _image(_wave(96, 96), pixel="10 nm", chunks=chunks)
    grid = Grid.of(src, dims=("y", "x"))
    T = Affine.from_parameters(rotation=7, shift=(13.0, -21.0), center=_centre(grid))
    out = _run(src.Li6, grid, chunks, transform=T).values[0]
    pts = T(np.stack(np.meshgrid(*grid.coords().values(), indexing="ij"), -1))
    truth = _wave_at(pts, 10.0)
    iy, ix = pts[..., 0] / 10 - 0.5, pts[..., 1] / 10 - 0.5
    inner = (iy > 4) & (iy < 91) & (ix > 4) & (ix < 91)
    assert np.abs(out - truth)[inner].max() < 1e-2
    outside = (iy < -0.5) | (iy > 95.5) | (ix < -0.5) | (ix > 95.5)
    assert np.isnan(out[outside]).all()
    assert not np.isnan(out[~outside]).any()


def test_lanczos_rotation_beats_scipy_spline_free_baseline():
    # a=4 is more accurate than a=3 on the same band-limited rotation (the kernel really is Lanczos-a)
    src = _image(_wave(64, 64), pixel="10 nm")
    grid = Grid.of(src, dims=("y", "x"))
    T = Affine.from_parameters(rotation=33, center=_centre(grid))
    pts = T(np.stack(np.meshgrid(*grid.coords().values(), indexing="ij"), -1))
    truth = _wave_at(pts, 10.0)
    iy, ix = pts[..., 0] / 10 - 0.5, pts[..., 1] / 10 - 0.5
    inner = (iy > 6) & (iy < 57) & (ix > 6) & (ix < 57)
    err = {a: np.abs(resample(src.Li6, grid, transform=T, a=a).values[0] - truth)[inner].max() for a in (2, 3, 4)}
    assert err[4] < err[3] < err[2]


@pytest.mark.parametrize("a", [8, 9, 12])
def test_lanczos_rotation_with_many_lobes_follows_the_band_limited_truth(a):
    # more than 8 lobes do not fit the gather's fixed stack taps: the general loops take them (was a ValueError)
    src = _image(_wave(64, 64), pixel="10 nm")
    grid = Grid.of(src, dims=("y", "x"))
    T = Affine.from_parameters(rotation=33, center=_centre(grid))
    pts = T(np.stack(np.meshgrid(*grid.coords().values(), indexing="ij"), -1))
    iy, ix = pts[..., 0] / 10 - 0.5, pts[..., 1] / 10 - 0.5
    inner = (iy > a + 2) & (iy < 61 - a) & (ix > a + 2) & (ix < 61 - a)
    err = np.abs(resample(src.Li6, grid, transform=T, a=a).values[0] - _wave_at(pts, 10.0))[inner]
    assert inner.sum() > 200
    assert err.max() < 0.02


@pytest.mark.parametrize("a", [65, 1000, 10**30])
def test_lanczos_lobes_are_bounded_before_any_table_is_made(a):
    src = _image(_wave(16, 16), pixel="10 nm")
    T = Affine.from_parameters(rotation=5.0)
    with pytest.raises(PfibsimsError, match=f"a: expected a positive whole number of Lanczos lobes \\(at most 64\\) such as 3, got {a}"):
        resample(src.Li6, Grid.of(src, dims=("y", "x")), transform=T, a=a)


def test_identity_returns_input_lazily(no_compute):
    src = _image(_wave(30, 40).astype(np.float32), chunks=8)
    with no_compute():
        out = resample(src, src)
        out2 = resample(src, src, transform=Affine.identity())
    for o in (out, out2):
        assert isinstance(o.Li6.data, da.Array)
        xr.testing.assert_identical(o.Li6.drop_attrs(), src.Li6.drop_attrs())


@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_a_to_b_to_a_is_close(chunks):
    src = _image(_wave(90, 90, 31.0, 37.0), chunks=chunks)
    b = Grid((110, 110), "61 nm", origin=("10 nm", "5 nm"))
    there = _run(src.Li6, b, chunks)
    back = _run(there.chunk() if chunks else there, src, chunks).values[0]
    err = np.abs(back - src.Li6.values[0])[8:-8, 8:-8]
    assert err.max() < 1e-2  # Lanczos-3 pass-band ripple, twice


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("kernel", ["lanczos", "cubic", "linear", "nearest"])
def test_one_pixel_shift_is_exact(chunks, kernel):
    img = np.random.default_rng(2).random((20, 30))
    src = _image(img, chunks=chunks)
    out = _run(src.Li6, src, chunks, transform=Affine.translation(("0 nm", "72 nm")), kernel=kernel).values[0]
    np.testing.assert_allclose(out[:, :-1], img[:, 1:], rtol=0, atol=1e-12)
    assert np.isnan(out[:, -1]).all()


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("kernel", ["lanczos", "nearest"])
def test_rotation_by_90_degrees_is_exact(chunks, kernel):
    img = np.random.default_rng(3).random((24, 24))
    src = _image(img, chunks=chunks)
    grid = Grid.of(src, dims=("y", "x"))
    out = _run(src.Li6, grid, chunks, kernel=kernel,
               transform=Affine.from_parameters(rotation=90, center=_centre(grid))).values[0]
    np.testing.assert_allclose(out, np.rot90(img, 1), rtol=0, atol=1e-9)


# -- chunking ---------------------------------------------------------------------------
@pytest.mark.parametrize("transform", [None, Affine.from_parameters(rotation=-12, scale=1.3, shear=0.1, shift=(50, 80))],
                         ids=["scale", "affine"])
@pytest.mark.parametrize(("src_chunks", "out_chunks"), [(5, 3), (13, 64), (64, 9), ((7, 11), {"x": 4})])
def test_chunked_equals_unchunked(transform, src_chunks, out_chunks):
    img = np.random.default_rng(4).random((2, 41, 57)).astype(np.float32)
    ds = pfs.stack({"Li6": img}, pixel_size="72 nm", slice_thickness="60 nm")
    onto = Grid((35, 48), "81.4 nm", origin=("100 nm", "-50 nm"))
    ref = resample(ds.Li6, onto, transform=transform).values
    sc = src_chunks if isinstance(src_chunks, tuple) else (src_chunks, src_chunks)
    lazy = resample(ds.Li6.chunk({"z": 1, "y": sc[0], "x": sc[1]}), onto, transform=transform, chunks=out_chunks)
    assert isinstance(lazy.data, da.Array)
    np.testing.assert_array_equal(lazy.values, ref)


def test_graph_reads_only_the_window_it_needs():
    big = xr.DataArray(da.zeros((1, 100_000, 100_000), chunks=(1, 2000, 2000), dtype=np.float32),
                       dims=("z", "y", "x"), coords=Grid((100_000, 100_000), "72 nm").xr_coords())
    big = big.assign_coords(z=("z", [0.0], {"units": "nm", "spacing": "60 nm"}))
    onto = Grid((200, 200), "81.4 nm", origin=("5 um", "7 um"))
    t0 = time.perf_counter()
    out = resample(big, onto, chunks=100).compute()
    assert time.perf_counter() - t0 < 10
    assert (out.values == 0).all()


def test_peak_memory_is_set_by_chunk_size():
    n, chunk = 4096, 256
    src = xr.DataArray(da.random.default_rng(0).random((n, n), chunks=chunk, dtype=np.float32),
                       dims=("y", "x"), coords=Grid((n, n), "72 nm").xr_coords())
    onto = Grid((3600, 3600), "81.4 nm", origin=("40 nm", "40 nm"))
    resample(src[:300, :300], Grid((200, 200), "81.4 nm"), chunks=100).compute()  # compile the kernels first
    total = resample(src, onto, chunks=chunk).sum()
    tracemalloc.start()
    try:
        with dask.config.set(scheduler="threads", num_workers=2):
            total.compute()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    chunk_bytes = chunk * chunk * 4
    # measured about 66 chunks (17 MB) for a 67 MB input: chunks in flight plus scheduler bookkeeping
    assert peak < 120 * chunk_bytes, f"peak {peak / 1e6:.1f} MB for {chunk_bytes / 1e6:.2f} MB chunks"
    assert peak < n * n * 4 / 2  # far below the whole input


def test_runs_on_distributed_local_cluster(dask_client):
    img = np.random.default_rng(5).random((1, 40, 40)).astype(np.float32)
    ds = pfs.stack({"Li6": img}, pixel_size="72 nm", slice_thickness="60 nm").chunk({"y": 16, "x": 16})
    onto = Grid((30, 30), "81.4 nm")
    T = Affine.from_parameters(rotation=5, shift=(30, 40))
    with dask.config.set(scheduler="threads"):
        ref = resample(ds.compute(), onto, transform=T).Li6.values
    got = resample(ds, onto, transform=T, chunks=10).Li6.compute().values  # on the cluster (the client is the default)
    np.testing.assert_array_equal(got, ref)


# -- fill, coverage -------------------------------------------------------------------
@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_fill_and_coverage_at_the_edges(chunks):
    img = np.ones((30, 30), np.float32)
    src = _image(img, chunks=chunks)
    onto = Grid((30, 30), "81.4 nm", origin=("-500 nm", "300 nm"))
    out = _run(src.Li6, onto, chunks, fill=-1.0).values[0]
    cov = coverage(src, onto)
    assert isinstance(cov.data, da.Array)
    assert cov.dtype == bool
    assert cov.dims == ("y", "x")
    c = cov.values
    np.testing.assert_array_equal(out == -1, ~c)
    np.testing.assert_allclose(out[c], 1.0, atol=1e-6)  # partition of unity up to the very edge
    # by hand: centres y = -500 + 81.4 i lie in the field [0, 2160] nm from i = 7; x = 300 + 81.4 j up to j = 22
    assert not c[6].any()
    assert c[7, :23].all()
    assert not c[:, 23:].any()
    assert np.isnan(_run(src.Li6, onto, chunks).values[0][~c]).all()  # default fill is NaN, never 0


def test_coverage_of_a_grid_with_rotation_matches_nan_mask():
    src = _image(np.ones((40, 40)))
    onto = Grid((50, 50), "72 nm", origin=("-300 nm", "-300 nm"))
    T = Affine.from_parameters(rotation=20, center=("1.4 um", "1.4 um"))
    out = resample(src.Li6, onto, transform=T).values[0]
    cov = coverage(Grid.of(src, dims=("y", "x")), onto, transform=T).values
    np.testing.assert_array_equal(cov, ~np.isnan(out))


# -- nearest keeps labels -----------------------------------------------------------
@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_nearest_keeps_labels_and_dtype(chunks):
    labels = np.random.default_rng(6).integers(0, 5, (20, 26)).astype(np.uint8)
    src = _image(labels, chunks=chunks, name="phase")
    onto = Grid.of(src, dims=("y", "x")).with_shape((40, 52))
    out = _run(src.phase, onto, chunks, kernel="nearest").values[0]
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, labels.repeat(2, 0).repeat(2, 1))
    rot = Affine.from_parameters(rotation=30, center=_centre(onto))
    r = _run(src.phase, onto, chunks, kernel="nearest", transform=rot, fill=255).values[0]
    assert r.dtype == np.uint8
    assert set(np.unique(r)) <= {0, 1, 2, 3, 4, 255}
    assert (r == 255).any()


def test_nearest_integer_labels_need_an_integer_fill_when_outside():
    src = _image(np.ones((10, 10), np.int16), name="phase")
    with pytest.raises(PfibsimsError, match="fill: expected a value of int16"):
        resample(src.phase, Grid((10, 10), "72 nm", origin="200 nm"), kernel="nearest")


@pytest.mark.shared_data
@pytest.mark.parametrize(("dtype", "fill"), [(np.uint32, -1), (np.uint32, 2**40), (np.uint16, 70000),
                                             (np.int16, 40000), (np.int16, -40000), (np.uint8, 256)])
def test_nearest_integer_fill_out_of_the_dtype_range_is_refused(shared_data, dtype, fill):
    """A fill the integer dtype cannot hold is an error, not a wrapped value (-1 as uint32 was 4294967295)."""
    ds = pfs.read_sims(shared_data / "sims" / "RTIimage.im")  # real little-endian uint32 counts, 256 x 256
    img = ds[next(iter(ds.data_vars))].isel(z=0).astype(dtype)
    onto = Grid((300, 300), "19.56 nm")  # wider than the 5007 nm field: some voxels are filled
    with pytest.raises(PfibsimsError, match=rf"fill: expected a value that fits {np.dtype(dtype)} "
                       rf"\({np.iinfo(dtype).min}\.\.{np.iinfo(dtype).max}\), got {fill}"):
        resample(img, onto, kernel="nearest", fill=fill)
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    for edge in (lo, hi):  # the ends of the range are kept exactly
        out = resample(img, onto, kernel="nearest", fill=edge)
        assert out.dtype == dtype
        assert out.values[-1, -1] == edge
        np.testing.assert_array_equal(out.values[:256, :256][:250, :250], img.values[:250, :250])


def test_nearest_boolean_mask_takes_a_fill_of_0_or_1():
    mask = _image(np.eye(10, dtype=bool), name="mask").mask
    onto = Grid((10, 10), "72 nm", origin="200 nm")  # 2.28 px on: target (i, j) is source (i + 2, j + 2)
    out = resample(mask, onto, kernel="nearest", fill=0).values[0]
    assert out.dtype == bool
    ref = np.zeros((10, 10), bool)
    ref[:8, :8] = np.eye(10, dtype=bool)[2:, 2:]  # the last two rows and columns lie outside: fill 0
    np.testing.assert_array_equal(out, ref)
    with pytest.raises(PfibsimsError, match=r"fill: expected a value that fits bool \(0\.\.1\), got 2"):
        resample(mask, onto, kernel="nearest", fill=2)


# -- z, stacks, datasets -------------------------------------------------------------
@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_uneven_slice_depths_onto_regular_z(chunks):
    depths = np.array([0.0, 55.0, 130.0, 180.0, 262.0, 300.0, 371.0])
    vol = np.broadcast_to((3.0 + 0.01 * depths)[:, None, None], (7, 4, 5)).copy()
    ds = pfs.stack({"Li6": vol}, pixel_size="81.4 nm", z=[f"{d} nm" for d in depths])
    if chunks is not None:
        ds = ds.chunk({"z": 2})
    # finer than every source step: linear interpolation between measured depths is exact on a ramp
    onto = Grid((13, 4, 5), ("30 nm", "81.4 nm", "81.4 nm"), origin=("0 nm", "40.7 nm", "40.7 nm"))
    out = _run(ds.Li6, onto, chunks, kernel="linear")
    np.testing.assert_allclose(out.values, np.broadcast_to((3.0 + 0.01 * onto.coords()["z"])[:, None, None],
                                                           (13, 4, 5)), rtol=1e-12)
    np.testing.assert_allclose(out.z.values, 30.0 * np.arange(13))
    smooth = _run(ds.Li6, onto, chunks).values  # lanczos in slice-index space: close inside, not exact
    np.testing.assert_allclose(smooth[5:8], out.values[5:8], rtol=1e-2)


@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_stack_with_2d_target_is_resampled_slice_by_slice(chunks):
    vol = np.random.default_rng(7).random((3, 30, 30)).astype(np.float32)
    ds = pfs.stack({"Li6": vol}, pixel_size="72 nm", z=["0 nm", "61 nm", "119 nm"])
    if chunks is not None:
        ds = ds.chunk({"z": 1, "y": 11, "x": 11})
    onto = Grid((25, 25), "81.4 nm")
    T = Affine.from_parameters(rotation=3, shift=(20, 0))
    out = _run(ds, onto, chunks, transform=T)
    np.testing.assert_array_equal(out.z.values, [0, 61, 119])
    for k in range(3):
        single = resample(pfs.stack({"Li6": vol[k]}, pixel_size="72 nm").Li6, onto, transform=T).values[0]
        np.testing.assert_allclose(out.Li6.values[k], single, rtol=0, atol=1e-6)


def test_z_scaled_and_shifted_with_in_plane_rotation():
    vol = np.broadcast_to(np.arange(6.0)[:, None, None], (6, 20, 20)).copy()
    ds = pfs.stack({"Li6": vol}, pixel_size="72 nm", slice_thickness="60 nm")
    onto = Grid((5, 20, 20), ("60 nm", "72 nm", "72 nm"), origin=("0 nm", "36 nm", "36 nm"))
    T = Affine.from_parameters(rotation=10, shift=("60 nm", 0, 0), center=(0, 720, 720), dims=("z", "y", "x"))
    out = resample(ds.Li6, onto, transform=T).values
    np.testing.assert_allclose(out[:, 10, 10], np.arange(1.0, 6.0), atol=1e-9)


def test_dataset_every_channel_attrs_history_units():
    rng = np.random.default_rng(8)
    ds = pfs.stack({"Li6": rng.random((2, 20, 20)), "Li7": rng.random((2, 20, 20))}, pixel_size="72 nm",
                   slice_thickness="60 nm", attrs={"beam_current": "1 nA"})
    eds = pfs.stack({"Zr_La": np.ones((2, 15, 15))}, pixel_size="81.4 nm", slice_thickness="60 nm")
    out = resample(ds, eds)
    assert set(out.data_vars) == {"Li6", "Li7"}
    assert out.Li6.attrs["isotope"] == "6Li"
    assert out.attrs["beam_current"] == "1 nA"
    assert history(out)[-1]["step"] == "resample"
    assert history(ds) == []
    xr.testing.assert_identical(out.x, eds.x)
    assert "slice" in out.coords
    validate(out)
    q = out.pint.quantify()
    assert str(q.x.data.units) == "nanometer"
    da_out = resample(ds.Li7, eds, kernel="cubic")
    np.testing.assert_array_equal(da_out.values, resample(ds, eds, kernel="cubic").Li7.values)
    assert history(da_out)[-1]["params"]["kernel"] == "cubic"


def test_lazy_input_builds_without_computing(no_compute):
    ds = pfs.stack({"Li6": np.ones((2, 40, 40))}, pixel_size="72 nm", slice_thickness="60 nm").chunk({"y": 10})
    with no_compute():
        out = resample(ds, Grid((30, 30), "81.4 nm"), transform=Affine.from_parameters(rotation=4))
        cov = coverage(ds, Grid((30, 30), "81.4 nm"))
    assert isinstance(out.Li6.data, da.Array)
    assert isinstance(cov.data, da.Array)


# -- errors name the argument -------------------------------------------------------------
def test_errors_name_the_argument():
    src = _image(np.ones((10, 10)))
    g = Grid.of(src, dims=("y", "x"))
    with pytest.raises(GridError, match="onto: the target grid .* does not overlap"):
        resample(src, Grid((10, 10), "72 nm", origin="1 mm"))
    with pytest.raises(DataModelError, match=r"data: expected dims including \('z', 'y', 'x'\)"):
        resample(src.Li6.isel(z=0, drop=True), Grid((2, 10, 10), ("60 nm", "72 nm", "72 nm")))
    with pytest.raises(PfibsimsError, match="kernel: expected one of"):
        resample(src, g, kernel="bilinear")
    with pytest.raises(PfibsimsError, match="a: expected a positive whole number"):
        resample(src, g, a=0)
    bad = src.copy()
    bad["x"] = bad.x.assign_attrs(units="nA")
    with pytest.raises(UnitsError, match="data: .*x.*expected a length"):
        resample(bad, g)
    with pytest.raises(UnitsError, match="onto: "):
        resample(src, bad)
    with pytest.raises(GridError, match="onto: expected a Grid, DataArray or Dataset"):
        resample(src, (10, 10))
    with pytest.raises(DataModelError, match="data: expected an xarray"):
        resample(np.ones((10, 10)), g)
    with pytest.raises(PfibsimsError, match="transform: expected a pfibsims.Affine"):
        resample(src, g, transform=np.eye(3))
    m = np.eye(4)
    m[0, 2] = 0.1
    src3 = pfs.stack({"Li6": np.ones((2, 10, 10))}, pixel_size="72 nm", slice_thickness="60 nm")
    with pytest.raises(PfibsimsError, match="transform: mixes"):
        resample(src3, Grid((1, 10, 10), ("60 nm", "72 nm", "72 nm")), transform=Affine(m))
    with pytest.raises(PfibsimsError, match="chunks: expected"):
        resample(src, g, chunks="big")
    with pytest.raises(DataModelError, match="data_or_grid: expected dims"):
        coverage(Grid((10,), "72 nm"), g)


# -- per-slice transforms (a registration composed with each slice's drift) --
def test_per_slice_transforms_equal_slice_by_slice_calls():
    rng = np.random.default_rng(3)
    ds = pfs.stack({"Li6": rng.random((3, 40, 40))}, pixel_size="72 nm", slice_thickness="60 nm")
    onto = pfs.Grid((30, 30), "81.4 nm", origin=(300, 300))
    Ts = [pfs.Affine.from_parameters(rotation=1.5, shift=(k * 30.0, -k * 20.0)) for k in range(3)]
    out = resample(ds, onto, transform=Ts)
    assert out.Li6.dims == ("z", "y", "x")
    np.testing.assert_array_equal(out.z, ds.z)
    for k, T in enumerate(Ts):
        one = resample(ds.isel(z=[k]), onto, transform=T)
        np.testing.assert_array_equal(out.Li6.isel(z=k).values, one.Li6.isel(z=0).values)
    assert [h["step"] for h in history(out)] == ["resample"]
    assert len(history(out)[0]["params"]["transform"]) == 3
    cov = coverage(ds, onto, transform=Ts)
    assert cov.dims == ("z", "y", "x")
    np.testing.assert_array_equal(cov.values, np.isfinite(out.Li6.values))


def test_per_slice_transforms_errors():
    ds = pfs.stack({"Li6": np.ones((2, 8, 8))}, pixel_size="72 nm", slice_thickness="60 nm")
    onto = pfs.Grid((6, 6), "81.4 nm")
    with pytest.raises(pfs.DataModelError, match=r"transform: expected one Affine per z slice of data \(2 slices\)"):
        resample(ds, onto, transform=[pfs.Affine.identity()])
    with pytest.raises(pfs.GridError, match=r"onto: per-slice transforms resample in-plane"):
        resample(ds, pfs.Grid((3, 6, 6), ("60 nm", "81.4 nm", "81.4 nm")), transform=[pfs.Affine.identity()] * 2)
    same_z = resample(ds, pfs.Grid.of(ds), transform=[pfs.Affine.identity()] * 2)  # the data's own z: in-plane
    np.testing.assert_allclose(same_z.Li6.values, 1.0)
    with pytest.raises(pfs.DataModelError, match=r"data_or_grid: per-slice transforms need the source data"):
        coverage(pfs.Grid((8, 8), "72 nm"), onto, transform=[pfs.Affine.identity()] * 2)


@pytest.mark.parametrize("transform", [None, Affine.from_parameters(rotation=-12, scale=1.3, shift=(50, 80))],
                         ids=["scale", "rotation"])
def test_numpy_input_runs_without_dask_in_parallel_bands(monkeypatch, no_compute, transform):
    """Numpy in, numpy out: no dask; bands on threads give the lazy result bit for bit."""
    from pfibsims.resampling import graph

    data = np.random.default_rng(3).random((3, 61, 83)).astype(np.float32)
    src = pfs.stack({"Li6": data}, pixel_size="72 nm", slice_thickness="60 nm")
    onto = Grid((57, 70), "81.4 nm")
    lazy = resample(src.chunk({"z": 1, "y": 7, "x": 7}), onto, transform=transform, chunks=13).compute()
    with no_compute():
        one = resample(src, onto, transform=transform)
        monkeypatch.setattr(graph, "EAGER_BAND", 100)  # bands of >= 100 output pixels: 2 (cpu count) or more
        banded = resample(src, onto, transform=transform)
    assert isinstance(one.Li6.data, np.ndarray)
    np.testing.assert_array_equal(one.Li6.values, lazy.Li6.values)
    np.testing.assert_array_equal(banded.Li6.values, lazy.Li6.values)
    out = graph.resample_numpy(data, graph.Plan((graph.Keep(), graph.Keep(), graph.Keep()), data.shape), threads=4)
    np.testing.assert_array_equal(out, data)


def test_per_slice_transforms_are_one_graph_equal_to_the_eager_result(no_compute):
    """One plan a slice in one graph (not a graph a slice joined), bit for bit the numpy result."""
    rng = np.random.default_rng(5)
    ds = pfs.stack({"Li6": rng.random((4, 40, 40)).astype(np.float32)}, pixel_size="72 nm", slice_thickness="60 nm")
    onto = pfs.Grid((30, 30), "81.4 nm", origin=(300, 300))
    Ts = [pfs.Affine.translation((0.0, 0.0)), pfs.Affine.from_parameters(rotation=1.5, shift=(30.0, -20.0)),
          pfs.Affine.translation((72.0, 0.0)), pfs.Affine.translation((10.0, -5.0))]  # identity, warp, keep/passes
    with no_compute():
        lazy = resample(ds.chunk({"z": 2, "y": 13, "x": 17}), onto, transform=Ts, chunks={"y": 16})
        cov = coverage(ds, onto, transform=Ts)
    layers = [k for k in lazy.Li6.data.dask.layers if k.startswith("resample-")]
    assert len(layers) == 1
    assert lazy.Li6.data.chunks == ((1, 1, 1, 1), (16, 14), (30,))
    eager = resample(ds, onto, transform=Ts)
    np.testing.assert_array_equal(lazy.Li6.values, eager.Li6.values)
    np.testing.assert_array_equal(cov.values, np.isfinite(eager.Li6.values))
    for k, T in enumerate(Ts):
        np.testing.assert_array_equal(eager.Li6.values[k], resample(ds.isel(z=[k]), onto, transform=T).Li6.values[0])


def test_widened_gather_fixed_taps_equal_the_general_loops(monkeypatch):
    """Downscaled rotation (kernel widened): the fixed-tap interior path against the general clipped loops,
    NaN sources included (a NaN under a zero weight must not leak)."""
    from pfibsims.resampling import kernels

    rng = np.random.default_rng(8)
    img = rng.random((2, 90, 110)).astype(np.float32)
    img[0, 40, 50] = np.nan
    ds = pfs.stack({"Li6": img}, pixel_size="72 nm", slice_thickness="60 nm")
    onto = Grid((70, 90), "81.4 nm", origin=("200 nm", "150 nm"))
    T = Affine.from_parameters(rotation=1.5, shift=(40.0, -25.0))
    assert kernels.fixed_taps(3.0, (81.4 / 72, 81.4 / 72)) == 8
    fixed = resample(ds, onto, transform=T).Li6.values
    monkeypatch.setattr(kernels, "fixed_taps", lambda radius, f: 0)
    general = resample(ds, onto, transform=T).Li6.values
    np.testing.assert_array_equal(np.isnan(fixed), np.isnan(general))
    assert np.isnan(general).sum() > np.isnan(resample(ds.where(ds.Li6 == ds.Li6, 0.5), onto, transform=T).Li6).sum()
    ok = np.isfinite(general)
    np.testing.assert_allclose(fixed[ok], general[ok], rtol=0, atol=2e-6)


def test_coverage_blocks_decided_by_their_corners_equal_the_per_pixel_test(monkeypatch):
    """Blocks wholly inside or outside the field skip the per-pixel test: the same mask as testing every pixel."""
    from pfibsims.resampling import geometry, graph

    onto = Grid((90, 120), "81.4 nm", origin=("-900 nm", "-500 nm"))
    src = Grid((70, 80), "72 nm")
    T = Affine.from_parameters(rotation=4.0, scale=1.02, shift=(30.0, -15.0))
    specs, warp = geometry.axis_specs(src, onto, T, "linear", 1)
    plan = graph.Plan(tuple(specs), onto.shape, warp, "linear", 1, np.nan, np.dtype(bool))
    chunks = ((16,) * 5 + (10,), (16,) * 7 + (8,))
    decided = [graph._warp_block_inside(warp.at(sum(chunks[0][:i]), sum(chunks[1][:j])), (chunks[0][i], chunks[1][j]))
               for i in range(6) for j in range(8)]
    assert {True, False, None} <= set(decided)  # blocks inside, outside and on the edge
    fast = graph.coverage_array(plan, chunks).compute()
    monkeypatch.setattr(graph, "_warp_block_inside", lambda w, shape, margin=1e-3: None)
    slow = graph.coverage_array(plan, chunks).compute()
    np.testing.assert_array_equal(fast, slow)
    np.testing.assert_array_equal(fast, coverage(src, onto, transform=T).values)
@pytest.mark.parametrize("fill", ["abc", None, True, 1 + 2j, [0]])
def test_fill_must_be_a_number(fill):
    # resample(fill="abc") raised deep inside numpy
    sims = pfs.stack({"Li6": np.ones((1, 8, 8))}, pixel_size="72 nm")
    with pytest.raises(pfs.PfibsimsError, match="fill: expected a number for the target voxels outside the source"):
        pfs.resample(sims, pfs.Grid((8, 8), "80 nm"), fill=fill)


def test_complex_and_empty_data_are_refused():
    sims = pfs.stack({"Li6": np.ones((1, 8, 8))}, pixel_size="72 nm")
    grid = pfs.Grid((8, 8), "80 nm")
    with pytest.raises(pfs.DataModelError, match="data: expected real numbers in 'Li6', got dtype complex128"):
        pfs.resample(sims.Li6 * (1 + 1j), grid)  # the imaginary part was dropped silently
    with pytest.raises(pfs.DataModelError, match="data: expected at least one voxel along every axis, found 'y' of size 0"):
        pfs.resample(sims.isel(y=slice(0, 0)), grid)
    with pytest.raises(pfs.DataModelError, match="data_or_grid: expected at least one voxel along every axis"):
        pfs.coverage(sims.isel(x=slice(0, 0)), grid)


# -- counts never negative (issue 16): a saturated real HAADF image ---------------------------------
@pytest.mark.shared_data
def test_saturated_real_image_rings_below_zero_and_count_channels_are_clipped(shared_data):
    from rsciio.bruker import file_reader  # the reference reader, independent of pfibsims.io

    haadf = next(s for s in file_reader(str(shared_data / "eds" / "test_TEM.bcf")) if s["metadata"]["General"]["title"] == "HAADF")
    img = haadf["data"]
    assert img.max() == 65535
    assert (img == 65535).mean() > 0.05
    ds = pfs.stack({"HAADF": img}, pixel_size="0.771 nm", modality="SEM")  # units "counts"
    grid = Grid.of(ds, dims=("y", "x"))
    T = Affine.from_parameters(rotation=10, center=_centre(grid))
    raw = resample(ds, grid.with_shape((100, 100)), transform=T, clip=False).HAADF.values
    assert np.nanmin(raw) < -1000  # Lanczos ringing: "counts" below zero next to the saturated areas
    out = resample(ds, grid.with_shape((100, 100)), transform=T)  # default: count channels clipped at 0
    np.testing.assert_array_equal(out.HAADF.values, np.maximum(raw, 0))  # NaN outside stays NaN
    assert history(out)[-1]["params"]["clipped_at_zero"] == ["HAADF"]
    lazy = resample(ds.chunk({"y": 20, "x": 20}), grid.with_shape((100, 100)), transform=T, chunks=30)
    np.testing.assert_array_equal(lazy.HAADF.values, out.HAADF.values)
    # normalize says where negative counts come from
    unclipped = resample(ds, grid.with_shape((100, 100)), transform=T, clip=False)
    with pytest.raises(pfs.PfibsimsError, match=r"counts cannot be negative: negative values come from interpolation "
                       r"ringing next to sharp edges \(the history holds a resampling with kernel='lanczos'\); "
                       r"resample with clip=True"):
        pfs.normalize(unclipped, method="log")
    with pytest.raises(pfs.PfibsimsError, match=r"ringing .*\(a resampling with kernel='lanczos' or 'cubic' would make them\)"):
        pfs.normalize(unclipped.HAADF, method="log")


def test_clip_option_on_channels_of_any_units():
    wave = _image(np.sin(np.linspace(0, 20, 48))[None].repeat(40, 0), pixel="10 nm")  # units "1": not clipped
    onto = Grid.of(wave, dims=("y", "x")).with_shape((40, 31))
    plain = resample(wave, onto)
    assert float(plain.Li6.min()) < -0.9
    assert history(plain)[-1]["params"]["clipped_at_zero"] == []
    np.testing.assert_array_equal(resample(wave, onto, clip=True).Li6.values, np.maximum(plain.Li6.values, 0))
    assert history(resample(wave, onto, clip=True))[-1]["params"]["clipped_at_zero"] == ["Li6"]
    assert history(resample(wave, onto, kernel="nearest", clip=True))[-1]["params"]["clipped_at_zero"] == []
    with pytest.raises(pfs.PfibsimsError, match=r"clip: expected None \(clip count channels\), True or False, got 'yes'"):
        resample(wave, onto, clip="yes")


# -- a NaN in the source spreads only to target voxels that give it a nonzero weight --------------
def _nonzero_weight(d, kernel, f=1.0):
    """Whether the kernel widened by ``f`` is nonzero at offsets ``d`` (samples), by its definition:
    Lanczos and Keys' cubic vanish at every nonzero whole offset, the triangle from 1 on."""
    d = np.abs(d) / f
    radius = {"lanczos": 3, "cubic": 2, "linear": 1}[kernel]
    return (d < radius) & ((d == 0) | (d != np.round(d)))


@pytest.mark.shared_data
@pytest.mark.parametrize("chunks", [None, 23])
@pytest.mark.parametrize("kernel", ["lanczos", "cubic", "linear"])
def test_nan_block_of_a_real_image_spreads_only_under_nonzero_weights(shared_data, kernel, chunks):
    """A real NanoSIMS map with a 10 x 10 NaN block, through a whole-pixel shift (separable passes), a
    90-degree turn plus 0.3 px (the gather's fixed taps, x on the samples) and a y-shear (y widened by
    |(1, 0.25)|, x on the samples: the general loops): the NaN voxels are exactly those whose kernel gives
    a NaN pixel a nonzero weight (a NaN under a zero weight, e.g. Lanczos at 2 px, must not leak)."""
    ds = pfs.read_sims(shared_data / "sims" / "OpenMIMS_doc_051117_05-32dRe-03b.im")
    li = ds.C12.isel(z=0).astype(np.float32).load()
    li.attrs["units"] = "1"
    img = li.values.copy()
    img[100:110, 120:130] = np.nan
    src = li.copy(data=img)
    grid = Grid.of(src)
    (oy, ox), (p, _) = grid.origin, grid.spacing  # 19991 nm / 256: binary fractions, exact sums
    i, j = np.mgrid[0:256, 0:256].astype(np.float64)
    shear = Affine(np.array([[1.0, 0.25, -0.25 * ox], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), dims=("y", "x"))
    turn = Affine(np.array([[0.0, 1.0, oy - ox + 0.3 * p], [-1.0, 0.0, oy + ox + 255 * p], [0.0, 0.0, 1.0]]),
                  dims=("y", "x"))
    cases = [(Affine.translation((p, 0.0)), i + 1, j, 1.0), (turn, j + 0.3, 255 - i, 1.0),
             (shear, i + 0.25 * j, j, math.hypot(1.0, 0.25))]
    for T, u, v, fy in cases:
        out = resample(src if chunks is None else src.chunk({"y": chunks, "x": chunks}), grid, transform=T,
                       kernel=kernel, chunks=chunks).values
        inside = (u <= 255) & (v <= 255)
        hit = np.zeros(out.shape, bool)
        for r in range(100, 110):
            for c in range(120, 130):
                hit |= _nonzero_weight(u - r, kernel, fy) & _nonzero_weight(v - c, kernel)
        np.testing.assert_array_equal(np.isnan(out)[inside], hit[inside])
        assert np.isfinite(out[inside & ~hit]).all()
        assert hit.sum() >= 100


@pytest.mark.shared_data
@pytest.mark.parametrize("chunks", [None, 77])
def test_clipping_counts_keeps_a_negative_fill(shared_data, chunks):
    """Count channels are clipped at 0 where the target sees the source; outside, a fill of -1 (a
    sentinel) stays -1 (it was clipped to 0 too, indistinguishable from a count of 0)."""
    ds = pfs.read_sims(shared_data / "sims" / "image_sun.im", slice_thickness="50 nm").C12  # real counts
    src = ds if chunks is None else ds.chunk({"y": 100, "x": 100})
    onto = Grid((300, 300), "27.4 nm", origin=("-300 nm", "-200 nm"))  # beyond the 7011 nm field on every side
    T = Affine.from_parameters(rotation=3.0, center=(3500.0, 3500.0))
    drift = xr.DataArray([[0.0, 0.0], [35.5, -61.2]], dims=("z", "component"),
                         coords={"component": ["y", "x"]}, attrs={"units": "nm"})
    for kw in ({}, {"transform": T}, {"transform": T, "drift": drift}):
        inside = coverage(ds, onto, **kw).values
        inside = np.broadcast_to(inside, (2, 300, 300))
        raw = resample(src, onto, fill=-1.0, clip=False, chunks=chunks, **kw).values
        out = resample(src, onto, fill=-1.0, chunks=chunks, **kw).values
        assert (~inside).any()  # fill outside
        assert (raw[inside] < 0).any()  # ringing below 0 inside
        np.testing.assert_array_equal(out[~inside], -1.0)
        np.testing.assert_array_equal(out[inside], np.maximum(raw[inside], 0))


@pytest.mark.shared_data
def test_fill_beyond_float32_is_refused_not_made_infinite(shared_data):
    """uint16 counts resample to float32: a fill of 1e39 would come out as inf (with a numpy overflow warning)."""
    c = pfs.read_sims(shared_data / "sims" / "OpenMIMS_doc_051117_05-32dRe-03b.im").C12  # real uint16
    onto = Grid((300, 300), "81.4 nm")  # wider than the 19991 nm field
    with pytest.raises(PfibsimsError, match=r"fill: expected a value that float32 holds \(up to 3\.40282e\+38 in size\), "
                                            r"got 1e\+39 for 'C12'"):
        resample(c, onto, fill=1e39)
    assert np.isinf(resample(c, onto, fill=np.inf).values).any()  # inf itself is a value float32 holds
    assert float(resample(c.astype(np.float64), onto, fill=1e39).max()) == 1e39
