"""k-means and the number of classes (pfibsims._engine.clusters) against scipy's kmeans2 and by hand."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.cluster.vq import ClusterError, kmeans2

import pfibsims as pfs
from pfibsims._engine.clusters import _lloyd, choose_classes, class_bic, kmeans
from pfibsims._engine.numba import use_compiled


def _blobs(n, d, k, spread, seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, (k, d))
    return centres[rng.integers(0, k, n)] + rng.normal(0, spread, (n, d))


@pytest.mark.parametrize(("n", "d", "k", "spread"), [(2000, 2, 3, 0.3), (20000, 5, 7, 1.0), (5000, 4, 12, 3.0),
                                                     (300, 3, 10, 5.0)])
@pytest.mark.parametrize("iterations", [3, 50])
@pytest.mark.parametrize("numba", [True, False], ids=["compiled", "scipy"])
def test_lloyd_stopped_at_its_fixed_point_is_scipys_kmeans2_to_the_bit(n, d, k, spread, iterations, numba):
    x = _blobs(n, d, k, spread, seed=n + k)
    with use_compiled(numba):
        _check_lloyd(x, k, iterations)


def _check_lloyd(x, k, iterations):
    for seed in range(3):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                ref = kmeans2(x, k, iter=iterations, minit="++", missing="raise", seed=np.random.default_rng(seed))
        except ClusterError:
            with pytest.raises(ClusterError):
                _lloyd(x, k, iterations, np.random.default_rng(seed))
            continue
        centres, labels = _lloyd(x, k, iterations, np.random.default_rng(seed))
        np.testing.assert_array_equal(centres, ref[0])
        np.testing.assert_array_equal(labels, ref[1])


def test_kmeans_finds_separated_classes_and_bic_counts_them():
    x = np.concatenate([np.random.default_rng(1).normal(m, 0.5, (300, 2)) for m in (0, 6, 12)])
    centres, labels, sse = kmeans(x, 3)
    np.testing.assert_allclose(np.sort(centres[:, 0]), [0, 6, 12], atol=0.1)
    assert sse == pytest.approx(float(((x - centres[labels]) ** 2).sum()))
    k, table = choose_classes(x)
    assert k == 3
    assert table[3] < table[2]
    assert table[4] >= table[3]  # stopped one past the first local minimum
    assert class_bic(x, labels, 3) == pytest.approx(table[3], rel=0.05)


def test_kmeans_restarts_on_threads_give_the_sequential_answer():
    """The restarts run side by side; the best is the first of the least sums of squares, as in a loop."""
    x = _blobs(3000, 4, 6, 2.0, seed=7)
    got = kmeans(x, 6, restarts=5, seed=3)
    runs = []
    for r in range(5):
        try:
            c, lab = _lloyd(x, 6, 50, np.random.default_rng(3 + r))
        except ClusterError:
            continue
        runs.append((float(((x - c[lab]) ** 2).sum()), r, c, lab))
    sse, _, c, lab = min(runs, key=lambda t: (t[0], t[1]))
    assert got[2] == sse
    np.testing.assert_array_equal(got[0], c)
    np.testing.assert_array_equal(got[1], lab)


def test_lloyd_of_float32_rows_is_scipys_float32_loop():
    """scipy keeps float32 rows in float32: the compiled float64 steps are not used for them."""
    x = _blobs(3000, 3, 5, 1.0, seed=11).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ref = kmeans2(x, 5, iter=50, minit="++", missing="raise", seed=np.random.default_rng(2))
    centres, labels = _lloyd(x, 5, 50, np.random.default_rng(2))
    assert centres.dtype == np.float32
    np.testing.assert_array_equal(centres, ref[0])
    np.testing.assert_array_equal(labels, ref[1])


def test_choose_classes_tries_no_more_classes_than_distinct_rows(shared_data):
    """Regression: on a real JEOL C K map of a 128 x 128 px field (counts 0 or 1 a pixel), classify_phases
    without smoothing let k-means++ seed 3 classes from 2 distinct values, and scipy divided by zero
    (RuntimeWarning: invalid value encountered in divide; an error under filterwarnings=error)."""
    maps = pfs.read_eds(sorted((shared_data / "eds" / "jeol_View000").glob("*.map")))
    crop = maps[["C_Ka"]].isel(y=slice(0, 128), x=slice(0, 128))
    values = crop.C_Ka.values.reshape(-1, 1).astype(np.float64)
    assert np.unique(values).tolist() == [0.0, 1.0]
    k, table = choose_classes(values)
    assert k == 2
    assert list(table) == [2]
    assert choose_classes(np.zeros((500, 2))) == (1, {})
    ph = pfs.classify_phases(crop, smooth=None)
    assert ph.attrs["flag_meanings"] == "unassigned C"
    np.testing.assert_array_equal(ph.values == 1, crop.C_Ka.values == 1)  # the counts of 1 are the C class
