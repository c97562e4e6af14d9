"""pfibsims.registration.levels: a level's fixed side, made once and shared inside ``shared_fixed_sides``."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from scenes import phantom

import pfibsims as pfs
import pfibsims.pipeline as pipeline
from pfibsims.grid import Grid
from pfibsims.registration import levels


def _images(seed=0):
    rng = np.random.default_rng(seed)
    fixed = rng.poisson(5.0, (2, 48, 64)).astype(np.float64)
    moving = rng.poisson(8.0, (60, 70)).astype(np.float64)
    return moving, Grid((60, 70), 50.0), fixed, Grid((48, 64), 60.0)


def _same_level(a, b):
    for name in ("points", "labels", "design", "moving_coef", "edges"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert (a.n_labels, a.n_fixed, a.fixed_grid) == (b.n_labels, b.n_fixed, b.fixed_grid)


@pytest.mark.parametrize("options", [{}, {"jitter": True, "max_samples": 500}, {"labels": False}])
def test_a_shared_fixed_side_is_made_once_and_gives_the_level_made_alone(monkeypatch, options):
    moving, mg, fixed, fg = _images()
    alone = levels.make_level(moving, mg, fixed, fg, 120.0, **options)
    made = []
    real = levels._fixed_side
    monkeypatch.setattr(levels, "_fixed_side", lambda *a: made.append(a) or real(*a))
    with levels.shared_fixed_sides():
        first = levels.make_level(moving, mg, fixed.copy(), fg, 120.0, shared=True, **options)
        # the same content in another array, another moving image: the same fixed side, not made again
        second = levels.make_level(moving[::-1].copy(), mg, fixed.copy(), fg, 120.0, shared=True, **options)
        assert len(made) == 1
        for name in ("design", "labels", "points"):
            assert getattr(second, name) is getattr(first, name)
        # another spacing, another content, another grid: made anew
        levels.make_level(moving, mg, fixed, fg, 240.0, shared=True, **options)
        levels.make_level(moving, mg, fixed + 1.0, fg, 120.0, shared=True, **options)
        levels.make_level(moving, mg, fixed, fg.with_spacing(61.0), 122.0, shared=True, **options)
        assert len(made) == 4
    _same_level(first, alone)
    assert not levels._shared["sides"]  # forgotten when the block ends
    with pytest.raises(ValueError, match="read-only"):
        first.design[0, 0] = 1.0


def test_without_an_open_block_or_shared_false_nothing_is_kept(monkeypatch):
    moving, mg, fixed, fg = _images(1)
    made = []
    real = levels._fixed_side
    monkeypatch.setattr(levels, "_fixed_side", lambda *a: made.append(a) or real(*a))
    levels.make_level(moving, mg, fixed, fg, 120.0, shared=True)
    levels.make_level(moving, mg, fixed, fg, 120.0, shared=True)
    with levels.shared_fixed_sides():
        levels.make_level(moving, mg, fixed, fg, 120.0)
        levels.make_level(moving, mg, fixed, fg, 120.0)
        with levels.shared_fixed_sides():  # nested blocks: the outer one keeps what the inner one made
            levels.make_level(moving, mg, fixed, fg, 120.0, shared=True)
        levels.make_level(moving, mg, fixed, fg, 120.0, shared=True)
    assert len(made) == 5
    assert not levels._shared["sides"]
    assert levels._shared["depth"] == 0


def test_fuse_shares_the_fixed_sides_of_its_two_registrations_and_gives_the_same_numbers(monkeypatch):
    eds, sims, _ = phantom(0, 8)
    made = []
    real = levels._fixed_side
    monkeypatch.setattr(levels, "_fixed_side", lambda *a: made.append(a[3]) or real(*a))  # a[3]: labels
    shared = pfs.fuse(eds, sims).compute()
    n_shared = len(made)
    made.clear()
    monkeypatch.setattr(pipeline, "shared_fixed_sides", contextlib.nullcontext)
    alone = pfs.fuse(eds, sims).compute()
    # the registrations' levels (with labels: mutual information) are made once, not once a registration
    assert sum(made) > 0
    assert n_shared == len(made) - sum(made) // 2
    for name in ("Li6", "coverage"):
        np.testing.assert_array_equal(shared[name].values, alone[name].values)
    for key in ("pfibsims:affine", "pfibsims:drift"):
        assert shared.attrs[key] == alone.attrs[key]


def test_sample_points_are_made_once_per_grid_cells_and_seed(monkeypatch):
    """The drift's levels of every slice share their sample points: one read-only array per grid, cells and
    seed, equal to a fresh one; another seed draws other points; a large grid's points are not kept."""
    from pfibsims.registration import levels as lv

    g = Grid((30, 40), "80 nm", origin=(100.0, -50.0))
    for cells in (0, lv.JITTER_CELLS):
        a = lv._sample_points(g, cells)
        assert a is lv._sample_points(Grid((30, 40), "80 nm", origin=(100.0, -50.0)), cells)
        assert not a.flags.writeable
        np.testing.assert_array_equal(a, lv._new_points(g, cells, lv.JITTER_SEED))
    jittered = lv._sample_points(g, 2)
    monkeypatch.setattr(lv, "JITTER_SEED", lv.JITTER_SEED + 7)
    other = lv._sample_points(g, 2)
    assert other.shape == jittered.shape
    assert not np.array_equal(other, jittered)
    big = Grid((1100, 1000), "80 nm")  # 1100 x 1000 x 4 cells x 2 x 8 bytes > _POINTS_CACHED
    assert lv._sample_points(big, 2) is not lv._sample_points(big, 2)
