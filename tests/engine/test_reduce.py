"""The one statistics engine (pfibsims._engine.reduce): several statistics in one pass, plans of several passes."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from conftest import raise_if_dask_computes

from pfibsims._engine import grouped as G
from pfibsims._engine import moments as M
from pfibsims._engine.grouped import grouped_plan, grouped_statistics
from pfibsims._engine.reduce import Reduction, block_reduce, evaluate, reduce_blocks


def _data(seed=0, shape=(6, 20, 30)):
    rng = np.random.default_rng(seed)
    a = rng.normal(5.0, 2.0, shape)
    a[rng.random(shape) < 0.05] = np.nan
    b = 0.5 * a + rng.normal(0.0, 1.0, shape)
    g = rng.integers(0, 4, shape).astype(np.uint8)
    return a, b, g


def _counting_reads(x):
    """``x`` as a dask array whose chunk reads are counted (one getter task per chunk)."""
    reads = []

    def read(block, block_info=None):
        reads.append(block_info[0]["chunk-location"])
        return block

    return da.from_array(x, chunks=(2, 10, 15)).map_blocks(read, dtype=x.dtype), reads


def test_several_statistics_in_one_pass_read_each_chunk_once():
    a, b, g = _data()
    la, reads_a = _counting_reads(a)
    lb, reads_b = _counting_reads(b)
    reds = [
        Reduction(M.pair_moments_block, (la, lb), (6,), M.merge_moments),
        Reduction(M.range_block, (la,), (2,), M.merge_ranges),
        Reduction(M.histogram_block, (lb, None), (8,), M.sum_blocks, np.int64, {"lo": 0.0, "hi": 8.0, "bins": 8}),
    ]
    with raise_if_dask_computes(max_computes=1):
        mom, rng_, hist = dask.compute(*reduce_blocks(reds, split_every=3))
    assert len(reads_a) == len(reads_b) == la.npartitions  # every chunk read once for all three
    ok = np.isfinite(a) & np.isfinite(b)
    np.testing.assert_allclose(mom, M.merge_moments(M.pair_moments_block(a, b).reshape(1, 6), axis=0), rtol=1e-12)
    assert mom[0] == ok.sum()
    np.testing.assert_allclose(mom[5] / (mom[0] - 1), np.cov(a[ok], b[ok])[0, 1], rtol=1e-12)
    assert rng_.tolist() == [np.nanmin(a), np.nanmax(a)]
    np.testing.assert_array_equal(hist, np.histogram(b[np.isfinite(b)], 8, range=(0.0, 8.0))[0])


def test_numpy_inputs_are_reduced_without_dask():
    a, b, _ = _data()
    with raise_if_dask_computes():
        (mom,) = reduce_blocks([Reduction(M.pair_moments_block, (a, b), (6,), M.merge_moments)])
    assert isinstance(mom, np.ndarray)
    ok = np.isfinite(a) & np.isfinite(b)
    np.testing.assert_allclose(mom[1:3], [a[ok].mean(), b[ok].mean()], rtol=1e-13)


def test_block_reduce_is_one_reduction_of_the_engine():
    a, _, _ = _data()
    x = da.from_array(a, chunks=(1, 7, 7))
    r = block_reduce(M.range_block, [x], out_shape=(2,), merge=M.merge_ranges, dtype=float, name="r", split_every=2)
    assert isinstance(r, da.Array)
    assert r.shape == (2,)
    assert r.compute().tolist() == [np.nanmin(a), np.nanmax(a)]


def test_grouped_tables_merge_exactly_for_any_tree():
    """Per-group tables (count, mean, m2, min, max) merged by the engine's merge, split 2..100 a task."""
    a, _, g = _data(3)
    x, grp = da.from_array(a, chunks=(1, 5, 7)), da.from_array(g, chunks=(1, 5, 7))
    whole = grouped_statistics(a, g, 4)
    for split in (2, 5, 100):
        red = Reduction(G.moments_block, (x, grp), (4, 5), M.merge_group_moments, np.float64, {"n": 4})
        (mom,) = dask.compute(*reduce_blocks([red], split_every=split))
        np.testing.assert_array_equal(mom[:, 0], whole["count"])
        np.testing.assert_allclose(mom[:, 1], whole["mean"], rtol=1e-13)
        np.testing.assert_allclose(np.sqrt(mom[:, 2] / mom[:, 0]), whole["std"], rtol=1e-12)
        np.testing.assert_array_equal(mom[:, 3], whole["min"])
        np.testing.assert_array_equal(mom[:, 4], whole["max"])


def test_evaluate_runs_the_passes_of_several_plans_together():
    a, b, g = _data(1)
    la, reads = _counting_reads(a)
    grp = da.from_array(g, chunks=(3, 20, 30))
    lb = da.from_array(b, chunks=(6, 5, 30))

    def span(x):
        (lo_hi,) = yield [Reduction(M.range_block, (x,), (2,), M.merge_ranges)]
        return float(lo_hi[1] - lo_hi[0])

    with raise_if_dask_computes(max_computes=2):  # the grouped plan's two passes; the others ride along
        stats, width_a, width_b, width_b0 = evaluate(
            grouped_plan(la, grp, 4, bins=32), span(la), span(lb),
            span(b[0]),  # another shape, numpy: reduced in place in the same round
        )
    assert len(reads) == 2 * la.npartitions  # pass 1 and pass 2, each chunk once
    exp = grouped_statistics(a, g, 4, bins=32)
    for key in ("count", "min", "max"):
        np.testing.assert_array_equal(stats[key], exp[key])
    np.testing.assert_allclose(stats["quantiles"], exp["quantiles"], rtol=1e-12)
    assert width_a == np.nanmax(a) - np.nanmin(a)
    assert width_b == np.nanmax(b) - np.nanmin(b)
    assert width_b0 == np.nanmax(b[0]) - np.nanmin(b[0])


def test_reductions_of_one_pass_need_one_shape_and_an_array_first():
    a, b, _ = _data()
    with pytest.raises(ValueError, match="one shape"):
        reduce_blocks([Reduction(M.range_block, (da.from_array(a),), (2,), M.merge_ranges),
                       Reduction(M.range_block, (da.from_array(b[0]),), (2,), M.merge_ranges)])
    with pytest.raises(TypeError, match="optional"):
        reduce_blocks([Reduction(M.range_block, (None, a), (2,), M.merge_ranges)])


def test_graph_runs_on_the_distributed_pickle_path():
    """Tasks pickle (module-level functions bound with partial): a dumps/loads round trip of the graph."""
    import pickle

    a, b, _ = _data()
    (mom,) = reduce_blocks([Reduction(M.pair_moments_block, (da.from_array(a, chunks=3), da.from_array(b, chunks=3)),
                                      (6,), M.merge_moments)])
    graph = dict(mom.__dask_graph__())
    again = pickle.loads(pickle.dumps(graph))
    assert set(again) == set(graph)
    np.testing.assert_array_equal(dask.get(again, mom.__dask_keys__())[0], mom.compute())


def test_xarray_inputs_are_not_needed():
    """The engine takes arrays (numpy or dask), not DataArrays: the input layer strips those first."""
    x = xr.DataArray(np.arange(4.0), dims="x")
    (r,) = reduce_blocks([Reduction(M.range_block, (x.data,), (2,), M.merge_ranges)])
    assert r.tolist() == [0.0, 3.0]


def test_grouped_moments_is_the_first_pass_alone():
    a, _, g = _data(4)
    full = grouped_statistics(a, g, 5)
    for v, gg in ((a, g), (da.from_array(a, chunks=(2, 9, 11)), da.from_array(g, chunks=(3, 20, 7)))):
        with raise_if_dask_computes(max_computes=1):
            mom = G.grouped_moments(v, gg, 5)
        np.testing.assert_array_equal(mom["count"], full["count"])
        assert mom["count"][4] == 0  # group 4 is empty: NaN statistics
        for key in ("mean", "std", "min", "max"):
            np.testing.assert_allclose(mom[key], full[key], rtol=1e-13)
