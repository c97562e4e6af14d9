"""pfibsims.registration.search: levels (jittered samples, NaN), the FFT search and the tile-agreement test."""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi
from stacks import texture

from pfibsims import Affine, Grid
from pfibsims.registration import levels, search, significance


def _pair(noise=False, seed=0):
    """A fixed texture and a moving image on the same 10 nm raster: fixed pixel (i, j) is moving pixel
    (i + 6, j - 4), so the truth is ``p -> p + (60, -40)`` nm; or noise."""
    big = texture((120, 120), seed, sigma=2.0)
    fixed = big[20:84, 24:88]
    moving = np.random.default_rng(seed + 1).random((90, 86)) if noise else big[14:110, 28:110]
    return moving, Grid(moving.shape, 10.0, (5.0, 5.0)), fixed[None], Grid(fixed.shape, 10.0, (5.0, 5.0))


def test_jittered_samples_are_stratified_in_their_pixels_and_hold_the_interpolated_fixed_values():
    fixed = texture((16, 20), 1)
    fg = Grid(fixed.shape, 10.0, (5.0, 5.0))  # pixel (i, j) spans [10 i, 10 i + 10] x [10 j, 10 j + 10] nm
    lv = levels.make_level(fixed, fg, fixed[None], fg, 10.0, labels=False, jitter=True)
    again = levels.make_level(fixed, fg, fixed[None], fg, 10.0, labels=False, jitter=True)
    np.testing.assert_array_equal(lv.points, again.points)  # seeded: reproducible
    k = levels.JITTER_CELLS
    assert k >= 2
    assert lv.points.shape == (16 * 20 * k * k, 2)
    # one point in each of the k x k cells of every pixel, anywhere in its cell
    cell = np.floor(lv.points / (10.0 / k)).astype(int)
    assert len({tuple(c) for c in cell}) == lv.points.shape[0]
    assert cell.min(axis=0).tolist() == [0, 0]
    assert cell.max(axis=0).tolist() == [16 * k - 1, 20 * k - 1]
    frac = lv.points / (10.0 / k) - cell
    assert 0.25 < frac.std() < 0.33  # uniform over the cell: 0.29
    smoothed = ndi.gaussian_filter(fixed, 0.5, mode="nearest", truncate=4.0)
    idx = fg.to_index(lv.points)
    expect = ndi.map_coordinates(smoothed, [idx[:, 0], idx[:, 1]], order=3, mode="nearest")
    np.testing.assert_allclose(lv.design[:, 0], expect, rtol=1e-10)


def test_jittered_sample_cap_counts_every_cell():
    fixed = texture((64, 64), 2)
    fg = Grid(fixed.shape, 10.0)
    lv = levels.make_level(fixed, fg, fixed[None], fg, 10.0, labels=False, jitter=True, max_samples=1000)
    assert lv.points.shape == (1000 * levels.JITTER_CELLS**2, 2)


def test_level_sample_cap_is_a_seeded_subset():
    fixed = texture((64, 64), 2)
    fg = Grid(fixed.shape, 10.0)
    lv = levels.make_level(fixed, fg, fixed[None], fg, 10.0, labels=False, max_samples=1000)
    assert lv.points.shape == (1000, 2)
    assert lv.n_fixed == 1000
    again = levels.make_level(fixed, fg, fixed[None], fg, 10.0, labels=False, max_samples=1000)
    np.testing.assert_array_equal(lv.points, again.points)


def test_capped_jittered_level_holds_the_drawn_subset_of_all_interpolated_samples():
    # The level interpolates only the drawn subset: the same samples, values and labels as interpolating every
    # jittered point first and drawing from those (the rule written out here), with and without NaN.
    fixed = np.stack([texture((48, 56), 3), texture((48, 56), 4)])
    fg = Grid(fixed.shape[1:], 10.0, (5.0, 5.0))
    holed = fixed.copy()
    holed[:, :9, :] = np.nan
    for f in (fixed, holed):
        lv = levels.make_level(fixed[0], fg, f, fg, 10.0, jitter=True, max_samples=300)
        pts = levels._sample_points(fg, levels.JITTER_CELLS)
        smoothed = np.stack([levels.gaussian(c, 0.5) for c in f])
        chans = np.stack([levels._sample(c, fg.to_index(pts), order=3) for c in smoothed])
        ok = levels._sample(np.isfinite(f).all(axis=0).astype(float), fg.to_index(pts)) > 0.999
        valid = np.isfinite(chans).all(axis=0) & ok
        keep = np.zeros(valid.size, bool)
        rng = np.random.default_rng(levels.JITTER_SEED + 1)
        keep[rng.choice(np.flatnonzero(valid), 300 * levels.JITTER_CELLS**2, replace=False)] = True
        keep = keep.reshape(valid.shape)
        np.testing.assert_array_equal(lv.points, pts[keep])
        np.testing.assert_array_equal(lv.design, chans[:, keep].T)
        assert lv.design.T.flags.c_contiguous  # channel-major, as the compiled kernels read it
        np.testing.assert_array_equal(lv.labels, levels.fixed_labels(chans, keep, n_labels=levels.N_LABELS)[keep])
        assert lv.points[:, 0].min() > 90.0 if f is holed else lv.points[:, 0].min() < 10.0


def test_nan_moving_pixels_count_as_outside():
    img = texture((32, 32), 3)
    g = Grid(img.shape, 10.0, (5.0, 5.0))
    holey = img.copy()
    holey[:, 16:] = np.nan
    lv = levels.make_level(holey, g, img[None], g, 10.0, labels=False)
    vals, inside = search.sample_moving(lv, Affine.identity())
    assert np.isfinite(vals).all()
    x = lv.points[:, 1]
    assert inside[x < 140].all()  # columns 0..13: their interpolation reaches no NaN
    assert not inside[x > 160].any()  # columns 16..: no data
    value, overlap = search.evaluate(lv, Affine.identity(), "ncc")
    assert overlap < 0.55
    assert value > 0.99


def test_rotation_grid_in_one_degree_steps():
    assert search.rotation_grid(False).tolist() == [0.0]
    angles = search.rotation_grid(True)
    assert angles[0] == -search.ROTATION_BOUND
    assert angles[-1] == search.ROTATION_BOUND
    np.testing.assert_allclose(np.diff(angles), search.ROTATION_STEP)


def test_global_search_and_tile_agreement_on_a_true_pair_and_on_noise():
    for noise, expect in ((False, True), (True, False)):
        moving, mg, fixed, fg = _pair(noise=noise)
        level = levels.make_level(moving, mg, fixed, fg, 10.0)
        init = Affine.translation(tuple(np.asarray(mg.center) - np.asarray(fg.center)))
        rng = (200.0, 200.0)
        found = search.global_search(level, init, fg.center, rng, np.array([0.0]))
        best = found.candidates[0]
        agree, tested = significance.agreement(level, init, fg.center, rng, best)
        assert tested == significance.TILES ** 2
        if expect:
            T = init @ search.model_affine(np.r_[best.params[:2]], "translation", fg.center)
            np.testing.assert_allclose(T([[5.0, 5.0]])[0], [5.0 + 60.0, 5.0 - 40.0], atol=10.0)
            assert agree == tested
            assert found.prominence > 0.5
        else:
            assert agree < significance.MIN_AGREE
