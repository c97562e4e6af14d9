"""Give freed memory back to the system between the steps of a long job (the demo's stages, the figures)."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import sys
from collections.abc import Iterator

__all__ = ["frozen_heap", "limit_arenas", "release_memory"]

#: glibc's ``mallopt`` parameter for the most arenas (``M_ARENA_MAX`` in malloc.h).
_M_ARENA_MAX = -8

#: How many :func:`frozen_heap` blocks are open (the outermost gives the frozen objects back).
_depth = [0]


def release_memory() -> None:
    """Collect reference cycles, then trim the C heap (glibc's ``malloc_trim``; elsewhere only the collection).

    Memory a step freed but the heap keeps counts in the peak RSS of every
    later step; on the paper-sized demo that was 30-120 MB after each stage.
    A full collection costs 0.1-0.2 s there (some 260 000 tracked objects):
    inside a loop, ``gc.freeze()`` what outlives it first.
    """
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # pragma: no cover - not glibc (e.g. musl)
            pass


def limit_arenas(n: int) -> bool:
    """Let glibc's allocator make at most ``n`` heaps ("arenas") for the threads of this process.

    Each thread that allocates gets an arena of its own, up to 8 a core: memory
    a thread freed stays in its arena, where the other threads cannot reuse it,
    and counts in the peak RSS. With the dask workers and the shared pool
    (:mod:`pfibsims._engine.threads`) the demo's peak was ~30-50 MB higher
    than with the arenas limited to two, at the same speed. For a command's
    process (``pfibsims ...``), set before its threads start; a library call
    leaves the allocator alone. True when glibc took the setting.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, int(n)))
    except (OSError, AttributeError):  # pragma: no cover - not glibc (e.g. musl)
        return False


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Within the block, collections skip the objects that exist at its start (``gc.freeze``), given back after.

    For a long job that collects between its steps (:func:`release_memory`): a
    full collection traverses every tracked object, some 190 000 after the
    package's imports alone (0.15-0.3 s each on the paper-sized demo); with
    what outlives the steps frozen, it traverses what the steps made. Garbage
    is collected first. Blocks nest: an inner block freezes what exists at its
    start too, and the outermost gives everything back when it ends. When the
    caller froze objects of its own (outside any such block), the heap is left
    as it is: unfreezing would give theirs back too.
    """
    if gc.get_freeze_count() and not _depth[0]:
        yield
        return
    release_memory()
    gc.freeze()
    _depth[0] += 1
    try:
        yield
    finally:
        _depth[0] -= 1
        if not _depth[0]:
            gc.unfreeze()
