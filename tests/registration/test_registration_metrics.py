"""pfibsims.registration.metrics: mutual information, multiple correlation, the FFT search surface."""

from __future__ import annotations

import numpy as np
import pytest
from stacks import texture

from pfibsims.registration.metrics import bin_edges, fixed_labels, mi_surface, multiple_correlation, mutual_information


def test_mutual_information_related_and_unrelated():
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 5, 20000)
    m = np.exp(lab) + 0.2 * rng.standard_normal(lab.size)  # nonlinear, not monotone-linear
    edges = bin_edges(m, 16)
    assert mutual_information(m, lab, edges, 5) > 1.2  # close to log(5) = 1.61
    assert abs(mutual_information(rng.permutation(m), lab, edges, 5)) < 0.005


def test_multiple_correlation_predicts_from_several_channels():
    rng = np.random.default_rng(1)
    x = rng.random((500, 3))
    y = 2 * x[:, 0] - x[:, 2] + 0.5
    assert multiple_correlation(y, x) == pytest.approx(1.0)
    assert multiple_correlation(rng.random(500), x) < 0.2


def test_fixed_labels_single_channel_quantiles_and_kmeans():
    img = np.repeat(np.arange(8.0)[None], 4, axis=0)
    lab = fixed_labels(img[None], np.ones(img.shape, bool), n_labels=4)
    assert np.array_equal(lab[0], [0, 0, 1, 1, 2, 2, 3, 3])
    two = np.stack([np.r_[np.zeros(50), np.ones(50)].reshape(10, 10), np.r_[np.ones(50), np.zeros(50)].reshape(10, 10)])
    valid = np.ones((10, 10), bool)
    valid[0, 0] = False
    lab = fixed_labels(two, valid, n_labels=2)
    assert lab[0, 0] == -1
    assert len(np.unique(lab[valid])) == 2


def _direct_mi(canvas, labels, edges, i, j):
    """Hard-binned, Miller-Madow corrected MI of ``labels`` placed at canvas pixel (i, j), by counting."""
    h, w = labels.shape
    nb = edges.size - 1
    m = canvas[i:i + h, j:j + w].ravel()
    keep = labels.ravel() >= 0
    mb = np.clip(np.searchsorted(edges, m, side="right") - 1, 0, nb - 1)[keep]
    joint = np.zeros((labels.max() + 1, nb))
    np.add.at(joint, (labels.ravel()[keep], mb), 1)
    n = joint.sum()
    p = joint / n
    pl, pm = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return (p[nz] * np.log(p[nz] / (pl @ pm)[nz])).sum() - ((pl > 0).sum() - 1) * ((pm > 0).sum() - 1) / (2 * n), n


def test_mi_surface_matches_direct_hard_binned_mi():
    canvas = texture((40, 50), 3)
    labels = fixed_labels(canvas[10:30, 5:35][None], np.ones((20, 30), bool), n_labels=4)
    edges = bin_edges(canvas, 8)
    mi, count = mi_surface(canvas, np.ones(canvas.shape, bool), labels, edges, 4)
    assert mi.shape == (21, 21)
    assert np.unravel_index(np.argmax(mi), mi.shape) == (10, 5)
    direct, n = _direct_mi(canvas, labels, edges, 3, 7)
    assert count[3, 7] == n == 600
    assert mi[3, 7] == pytest.approx(direct, abs=1e-6)  # single-precision FFTs, counts rounded


def test_mi_surface_of_tiles_equals_each_tile_alone():
    # the significance test searches each tile of the fixed field with the canvas transforms shared
    canvas = texture((48, 48), 5)
    labels = fixed_labels(canvas[8:32, 12:36][None], np.ones((24, 24), bool), n_labels=4)
    edges = bin_edges(canvas, 8)
    tiles = []
    for rows in (slice(0, 12), slice(12, 24)):
        t = np.full_like(labels, -1)
        t[rows] = labels[rows]
        tiles.append(t)
    together = mi_surface(canvas, np.ones(canvas.shape, bool), tiles, edges, 4)
    for t, (mi, count) in zip(tiles, together, strict=True):
        alone, n = mi_surface(canvas, np.ones(canvas.shape, bool), t, edges, 4)
        np.testing.assert_array_equal(mi, alone)
        np.testing.assert_array_equal(count, n)
        assert count.max() == 12 * 24
        direct, _ = _direct_mi(canvas, t, edges, 8, 12)
        assert mi[8, 12] == pytest.approx(direct, abs=1e-6)


def test_bin_edges_of_a_dominant_value_keep_bins_for_the_rest():
    # 90 % of the pixels at one value (a saturated or empty background): the quantile edges collapsed to 2 bins
    # (np.unique of 9 quantiles at 0), leaving the structure one bin; the others now bin the rest by its quantiles
    v = np.r_[np.zeros(900), np.linspace(1.0, 50.0, 100)]
    edges = bin_edges(v, 8)
    assert edges.size == 9
    assert edges[0] == 0.0
    assert edges[-1] == 50.0
    rest = np.histogram(v[v > 0], edges[1:])[0]
    assert rest.max() - rest.min() <= 2  # the others equally populated
    np.testing.assert_array_equal(bin_edges(np.arange(10.0), 2), [0.0, 4.5, 9.0])  # no tie: plain quantiles
    two = np.r_[np.zeros(50), np.ones(50)]  # two values: nothing else to bin, the plain quantile edges
    np.testing.assert_array_equal(bin_edges(two, 8), np.unique(np.quantile(two, np.linspace(0, 1, 9))))
