"""Scale (issue 11): the fused graph runs on dask.distributed with the threaded scheduler's numbers,
pickles without closures, and resampling a large lazy volume holds chunks, not the volume."""

from __future__ import annotations

import math
import pickle
import tracemalloc
import warnings

import cloudpickle
import dask
import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi

import pfibsims as pfs
from pfibsims.app.report import registration_error
from pfibsims.dataset import history
from pfibsims.pipeline import working_view


@pytest.fixture(scope="module")
def phantom():
    return pfs.synthetic.cathode(seed=2, n_slices=3, eds_shape=(64, 80), sims_shape=(120, 120), chunks=(1, 40, 40))


def _fused(phantom):
    eds, sims, truth = phantom
    return pfs.fuse(eds, sims, register=pfs.Affine.from_attrs(truth.attrs), drift=truth.drift,
                    chunks={"z": 1, "y": 32, "x": 32})


def _numbers(vol):
    cov = pfs.covariance(vol.Li6, vol.Zr_La, mask=vol.coverage)
    li, c, n = dask.compute(vol.Li6.data, cov.data, cov.n.data)
    return li, float(c), int(n)


def test_local_cluster_gives_the_threaded_numbers(phantom, dask_client):
    vol = _fused(phantom)
    with dask.config.set(scheduler="threads"):
        li_t, cov_t, n_t = _numbers(vol)
    # the session cluster (tests/conftest.py): 2 worker processes, no sampling profiler in the workers
    li_d, cov_d, n_d = _numbers(_fused(phantom))  # graph built again: nothing cached in the process
    np.testing.assert_array_equal(li_d, li_t)  # bit for bit, NaN outside the SIMS field in the same places
    assert cov_d == cov_t
    assert n_d == n_t
    assert n_t > 0.5 * li_t.size
    assert np.isfinite(cov_t)
    # and against numpy on the same voxels (independent of the one-pass merge)
    zr = phantom[0].Zr_La.values.astype(np.float64)
    ok = np.isfinite(li_t)
    assert cov_t == pytest.approx(np.cov(li_t[ok].astype(np.float64), zr[ok])[0, 1], rel=1e-9)


def test_fused_graph_pickles_without_closures(phantom):
    vol = _fused(phantom)
    graph = dict(vol.__dask_graph__())
    assert len(cloudpickle.dumps(graph)) > 0
    # plain pickle refuses lambdas and local functions: every task callable is importable by name
    restored = pickle.loads(pickle.dumps(graph))
    assert set(restored) == set(graph)
    stats = pfs.joint_histogram(vol.Li6, vol.Zr_La, bins=16, mask=vol.coverage, range=((0, 100), (0, 100)))
    pickle.dumps(dict(stats.data.__dask_graph__()))


def test_fused_graph_names_are_deterministic(phantom):
    a, b = _fused(phantom), _fused(phantom)
    assert a.Li6.data.name == b.Li6.data.name
    assert a.coverage.data.name == b.coverage.data.name


def _ramp_block(block_info=None):
    """A smooth float32 block from its global location (no state but the indices)."""
    (z0, z1), (y0, y1), (x0, x1) = block_info[None]["array-location"]
    z, y, x = np.ogrid[z0:z1, y0:y1, x0:x1]
    return (np.sin(y * 0.01) * np.cos(x * 0.013) + z).astype(np.float32)


def _resample_peak(n: int, c: int) -> tuple[int, float]:
    """Peak traced allocation (bytes) while a lazy n x n x 4 float32 volume in c x c chunks is
    resampled (72 -> 81.4 nm, rotated 1.5 deg) and streamed into a sum; and the sum."""
    data = da.map_blocks(_ramp_block, chunks=((1,) * 4, (c,) * (n // c), (c,) * (n // c)), dtype=np.float32,
                         meta=np.empty((0, 0, 0), np.float32))
    src = pfs.stack({"Li6": data}, pixel_size="72 nm", slice_thickness="60 nm")
    m = round(n * 72 / 81.4)
    T = pfs.Affine.from_parameters(rotation=1.5, center=(36.0 * n, 36.0 * n))
    out = pfs.resample(src, pfs.Grid((m, m), 81.4, origin=40.7), transform=T, chunks={"z": 1, "y": c, "x": c})
    # one thread: dask's order alone decides what is held (two threads racing made the peak vary 2x under load)
    with dask.config.set(scheduler="synchronous"):
        out.Li6[:, :c, :c].sum().compute()  # one-time allocations (compiled kernels, caches) out of the count
        tracemalloc.start()
        try:
            total = float(out.Li6.sum().compute())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return peak, total


def test_resampling_a_large_lazy_volume_holds_chunks_not_the_volume():
    c = 250
    chunk_bytes = c * c * 4
    peak, total = _resample_peak(4000, c)
    volume_bytes = 4 * 4000 * 4000 * 4  # 256 MB in, 200 MB out
    assert np.isfinite(total)
    assert total != 0
    # measured ~50 MB: kernel temporaries, plus the source chunks that
    # neighbouring output rows share, which dask's order keeps for a row per slice (grows with the
    # side of the field, not its area); the volume is 1024 source chunks
    assert peak < 400 * chunk_bytes, f"peak {peak / 2**20:.1f} MiB for chunks of {chunk_bytes / 2**20:.2f} MiB"
    assert peak < volume_bytes / 3


def test_working_view_is_block_means_in_the_same_frame():
    rng = np.random.default_rng(0)
    a = rng.random((2, 30, 40)).astype(np.float32)
    ds = pfs.stack({"Li6": da.from_array(a, chunks=(1, 7, 9))}, pixel_size="72 nm", slice_thickness="60 nm")
    v = working_view(ds, max_pixels=300)  # 1200 px a slice -> blocks of 2 x 2
    assert dict(v.sizes) == {"z": 2, "y": 15, "x": 20}
    np.testing.assert_allclose(v.Li6.values, a.reshape(2, 15, 2, 20, 2).mean(axis=(2, 4)), rtol=1e-6)
    g = pfs.Grid.of(v, dims=("y", "x"))
    assert g.spacing == (144.0, 144.0)
    assert g.origin == (72.0, 72.0)
    assert history(v)[-1]["step"] == "working_view"
    assert working_view(ds, max_pixels=2000) is ds


@pytest.mark.parametrize(
    ("shape", "chunks", "max_pixels"),
    [((3, 50, 47), (1, 7, 11), 30), ((2, 100, 100), (1, 33, 40), 100), ((2, 40, 41), (2, 5, 3), 25),
     ((1, 64, 64), (1, 64, 64), 64)],
)
def test_block_means_of_chunks_that_blocks_do_not_divide(shape, chunks, max_pixels):
    # each chunk reduces the blocks that start in it (no re-chunking): numpy reshape-mean is the truth
    rng = np.random.default_rng(1)
    a = rng.integers(0, 100, shape).astype(np.uint16)
    ds = pfs.stack({"Li6": da.from_array(a, chunks=chunks)}, pixel_size="72 nm", slice_thickness="60 nm")
    v = working_view(ds, max_pixels=max_pixels)
    f = math.ceil(math.sqrt(shape[1] * shape[2] / max_pixels))
    ny, nx = shape[1] // f, shape[2] // f
    truth = a[:, : ny * f, : nx * f].reshape(shape[0], ny, f, nx, f).mean(axis=(2, 4))
    assert v.Li6.dtype == np.float32
    assert isinstance(v.Li6.data, da.Array)
    np.testing.assert_allclose(v.Li6.values, truth, rtol=1e-6)
    np.testing.assert_allclose(v.y.values, ds.y.values[: ny * f].reshape(ny, f).mean(axis=1))
    if min(chunks[1:]) >= f - 1:  # no re-chunking: one output block per input chunk
        assert v.Li6.data.numblocks == ds.Li6.data.numblocks


def test_fuse_estimates_from_a_working_view_on_large_fields():
    eds, sims, truth = pfs.synthetic.cathode(seed=1, n_slices=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pfs.EstimationWarning)
        vol = pfs.fuse(eds, sims, max_pixels=128 * 128)  # views of 72 x 117 (EDS) and 125 x 125 (SIMS) px
    T, true_T = pfs.Affine.from_attrs(vol.attrs), pfs.Affine.from_attrs(truth.attrs)
    err = registration_error(T, true_T, pfs.Grid.of(eds, dims=("y", "x")))
    assert err["max_error_nm"] < 3 * 244.2  # within a few view pixels (3 EDS px)
    assert isinstance(vol.Li6.data, da.Array)


def test_fuse_rejects_a_bad_max_pixels(phantom):
    eds, sims, _ = phantom
    with pytest.raises(pfs.PfibsimsError, match="max_pixels: expected an integer"):
        pfs.fuse(eds, sims, max_pixels=0)
    with pytest.raises(pfs.PfibsimsError, match="max_pixels"):
        pfs.fuse(eds, sims, max_pixels="1M")


def test_register_and_estimate_drift_work_on_block_means_above_max_pixels():
    rng = np.random.default_rng(3)
    scene = ndi.gaussian_filter(rng.random((200, 200)), 4)
    moved = ndi.shift(scene, (6, -4), mode="wrap")  # content moves +6 px in y, -4 px in x
    ds = pfs.stack({"Li6": [scene, moved]}, pixel_size="72 nm", slice_thickness="60 nm")
    full = pfs.estimate_drift(ds.Li6, reference="first")
    view = pfs.estimate_drift(ds.Li6, reference="first", max_pixels=100 * 100)  # 2 x 2 block means
    np.testing.assert_allclose(full.values[1], [432.0, -288.0], atol=8)
    np.testing.assert_allclose(view.values[1], full.values[1], atol=20)  # within a fraction of a 144 nm view px
    fixed = pfs.stack({"Zr_La": scene[30:170, 20:180]}, pixel_size="72 nm")
    moving = pfs.stack({"Li6": np.exp(-8 * scene)}, pixel_size="72 nm")
    T = pfs.register(moving.Li6, fixed, model="translation", max_pixels=80 * 80).transform
    np.testing.assert_allclose(T.offset, [30 * 72.0, 20 * 72.0], atol=40)
    with pytest.raises(pfs.PfibsimsError, match="max_pixels: expected an integer"):
        pfs.estimate_drift(ds.Li6, max_pixels=10)
    with pytest.raises(pfs.PfibsimsError, match="max_pixels: expected an integer"):
        pfs.register(moving.Li6, fixed, max_pixels=True)
