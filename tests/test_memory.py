"""pfibsims._memory: collections between the steps of a long job."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref

import pytest

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



def _arenas_used(limit):
    """Arenas glibc made for six threads allocating at once (``malloc_stats``' "Arena N:" lines)."""
    code = (
        "import ctypes, threading, numpy as np\n"
        "from pfibsims._memory import limit_arenas\n"
        f"assert limit_arenas({limit}) if {limit} else True\n"
        "gate = threading.Barrier(6, timeout=30)\n"
        "def work():\n"
        "    keep = [np.ones(1000) for _ in range(50)]  # small blocks: from the thread's arena\n"
        "    gate.wait()\n"
        "    assert sum(float(k.sum()) for k in keep) == 50000.0\n"
        "ts = [threading.Thread(target=work) for _ in range(6)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "ctypes.CDLL('libc.so.6').malloc_stats()\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return sum(line.startswith("Arena ") for line in res.stderr.splitlines())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt and malloc_stats")
def test_limit_arenas_caps_the_heaps_threads_allocate_from():
    assert _arenas_used(2) <= 2
    assert _arenas_used(0) > 2  # the default: an arena a thread (up to 8 a core)
