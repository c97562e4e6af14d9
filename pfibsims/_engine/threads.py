"""One shared pool of threads for work that releases the GIL (compiled kernels, scipy.ndimage).

:func:`thread_map` maps a function over a few independent items on the
machine's cores and returns the results in the items' order, so a caller that
combines them in that order gets the same numbers as a loop. For work done
outside dask graphs (a registration's evaluations, the eager resampling of a
small image); inside a graph the tasks are already spread over the workers. The pool is made once per process (after a fork, again) and
its threads wait idle between calls, so a call costs ~10-20 us a item,
not a pool's start-up.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["cores", "thread_map"]

T = TypeVar("T")
R = TypeVar("R")

_state: dict = {"pool": None, "pid": None}
_lock = threading.Lock()
_inside = threading.local()


def cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it, else ``os.cpu_count()``)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _pool() -> ThreadPoolExecutor:
    with _lock:
        if _state["pool"] is None or _state["pid"] != os.getpid():  # a forked child has the object, not the threads
            _state["pool"] = ThreadPoolExecutor(cores(), thread_name_prefix="pfibsims")
            _state["pid"] = os.getpid()
        return _state["pool"]


def _run(fn: Callable[[T], R], item: T) -> R:
    _inside.active = True
    try:
        return fn(item)
    finally:
        _inside.active = False


def thread_map(fn: Callable[[T], R], items: Iterable[T], *, workers: int | None = None) -> list[R]:
    """``[fn(x) for x in items]``, the items on up to ``workers`` threads (default: :func:`cores`).

    In the calling thread when there is one item or one worker, and when called
    from one of the pool's own threads (a nested map runs inline, so the pool
    cannot wait on itself). ``fn`` must be safe to run on several items at once.
    The first exception raised by ``fn`` is raised here, after every item has
    finished.

    Examples
    --------
    >>> thread_map(lambda x: x * x, range(5))
    [0, 1, 4, 9, 16]
    """
    items = list(items)
    n = min(workers or cores(), len(items))
    if n <= 1 or getattr(_inside, "active", False):
        return [fn(x) for x in items]
    if n < min(cores(), len(items)):  # fewer workers than the pool has threads: n runs of consecutive items
        edges = [round(k * len(items) / n) for k in range(n + 1)]
        shares = [items[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)]
        done = thread_map(lambda share: [fn(x) for x in share], shares, workers=n)
        return [r for part in done for r in part]
    futures = [_pool().submit(_run, fn, x) for x in items]
    errors = [f.exception() for f in futures]  # waits for all
    for e in errors:
        if e is not None:
            raise e
    return [f.result() for f in futures]
