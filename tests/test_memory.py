"""pfibsims._memory: collections between the steps of a long job."""

from __future__ import annotations

import gc
import weakref

from pfibsims._memory import frozen_heap, release_memory


class _Node:
    def __init__(self):
        self.me = self  # a reference cycle: only the collector frees it


def test_frozen_heap_skips_what_exists_and_still_collects_what_the_block_makes():
    assert gc.get_freeze_count() == 0
    before = _Node()
    old = weakref.ref(before)
    with frozen_heap():
        assert gc.get_freeze_count() > 0
        del before
        release_memory()
        assert old() is not None  # frozen: a collection inside the block does not free it
        made = _Node()
        new = weakref.ref(made)
        del made
        release_memory()
        assert new() is None  # made inside the block: collected as usual
    assert gc.get_freeze_count() == 0  # given back
    release_memory()
    assert old() is None


def test_frozen_heap_blocks_nest_and_the_outermost_gives_back():
    # judged by what is collected, not by freeze counts (other threads free frozen objects meanwhile)
    with frozen_heap():
        between = _Node()  # made after the outer block began: the inner block freezes it
        ref = weakref.ref(between)
        with frozen_heap():
            del between
            release_memory()
            assert ref() is not None  # frozen by the inner block
        release_memory()
        assert ref() is not None  # the inner block gave nothing back
    assert gc.get_freeze_count() == 0  # the outermost did
    release_memory()
    assert ref() is None


def test_frozen_heap_leaves_a_callers_own_freeze_alone():
    gc.freeze()
    try:
        n = gc.get_freeze_count()
        with frozen_heap():
            made = _Node()
            assert gc.get_freeze_count() <= n  # nothing more frozen (other threads may free a few frozen objects)
        assert 0.9 * n < gc.get_freeze_count() <= n  # and nothing given back
        del made
    finally:
        gc.unfreeze()
