"""The shared thread pool (pfibsims._engine.threads): order, nesting, errors, workers."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from pfibsims._engine import threads
from pfibsims._engine.threads import cores, thread_map


def test_results_come_back_in_the_items_order_whatever_finishes_first():
    def slow_first(i):
        time.sleep(0.02 * (5 - i))
        return i * 10

    assert thread_map(slow_first, range(6), workers=3) == [0, 10, 20, 30, 40, 50]


def test_items_run_on_several_threads_when_there_are_cores(monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: 2)
    barrier = threading.Barrier(2, timeout=5)

    def meet(i):  # both must be running at once to pass the barrier
        barrier.wait()
        return threading.get_ident()

    idents = thread_map(meet, range(2))
    assert len(set(idents)) == 2


def test_one_item_one_worker_or_one_core_runs_in_the_calling_thread(monkeypatch):
    me = threading.get_ident()
    assert thread_map(lambda i: threading.get_ident(), [0]) == [me]
    assert thread_map(lambda i: threading.get_ident(), range(3), workers=1) == [me] * 3
    monkeypatch.setattr(threads, "cores", lambda: 1)
    assert thread_map(lambda i: threading.get_ident(), range(3)) == [me] * 3


def test_a_nested_map_runs_inline_in_the_pools_thread(monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: 2)

    def outer(i):
        mine = threading.get_ident()
        inner = thread_map(lambda j: threading.get_ident(), range(4))
        return mine, inner

    for mine, inner in thread_map(outer, range(2)):
        assert inner == [mine] * 4  # no wait on a pool that is busy running its caller


def test_fewer_workers_than_cores_share_the_items_in_runs(monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: 4)
    idents = thread_map(lambda i: (time.sleep(0.01), threading.get_ident())[1], range(8), workers=2)
    assert len(set(idents)) <= 2
    assert idents[:4] == [idents[0]] * 4
    assert idents[4:] == [idents[4]] * 4


def test_the_first_error_is_raised_after_every_item_finished():
    done = []

    def f(i):
        if i == 1:
            raise ValueError("item 1")
        time.sleep(0.05)
        done.append(i)
        return i

    with pytest.raises(ValueError, match="item 1"):
        thread_map(f, range(4), workers=2)
    assert sorted(done) == [0, 2, 3]


def test_numbers_do_not_depend_on_the_threads():
    rng = np.random.default_rng(0)
    parts = [rng.random(10_000) for _ in range(7)]
    seq = [float(np.sum(np.sqrt(p))) for p in parts]
    assert thread_map(lambda p: float(np.sum(np.sqrt(p))), parts) == seq


def test_cores_is_at_least_one():
    assert 1 <= cores() <= (os.cpu_count() or 1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_makes_its_own_pool(monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: 2)
    assert thread_map(lambda i: i + 1, range(3)) == [1, 2, 3]  # the parent's pool exists now
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        signal.alarm(20)  # a hung child dies rather than hang the suite
        try:
            ok = thread_map(lambda i: i * 2, range(4)) == [0, 2, 4, 6]
            os.write(w, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    assert os.read(r, 1) == b"1"
    os.close(r)
