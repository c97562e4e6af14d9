"""Fixtures shared by every test module."""

from __future__ import annotations

import contextlib
from pathlib import Path

import dask
import pytest

#: Real instrument files, beside the repository (never copied into it).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The folder of real instrument files; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real instrument files not found at {SHARED_DATA} (../shared/data beside the repository)")
    return SHARED_DATA


class _CountingScheduler:
    """A dask scheduler that counts computations and refuses more than allowed."""

    def __init__(self, max_computes: int = 0) -> None:
        self.total = 0
        self.max_computes = max_computes

    def __call__(self, dsk, keys, **kwargs):
        self.total += 1
        if self.total > self.max_computes:
            raise RuntimeError(f"Too many dask computations: {self.total} > {self.max_computes}")
        return dask.get(dsk, keys, **kwargs)


@contextlib.contextmanager
def raise_if_dask_computes(max_computes: int = 0):
    """Fail if the block computes dask graphs more than ``max_computes`` times (as xarray's test helper)."""
    scheduler = _CountingScheduler(max_computes)
    with dask.config.set(scheduler=scheduler):
        yield scheduler


@pytest.fixture
def no_compute():
    """Context manager factory: ``with no_compute(): ...`` fails if dask computes."""
    return raise_if_dask_computes


#: The one LocalCluster of a test session (issue 21): worker processes, no sampling profiler (it walks other
#: threads' frames, a known CPython 3.11 crash; see benchmarks/README.md), generous timeouts for a loaded CI box.
CLUSTER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.comm.timeouts.connect": "120s",
    "distributed.comm.timeouts.tcp": "120s",
    "distributed.deploy.lost-worker-timeout": "120s",
    "distributed.scheduler.idle-timeout": None,
}


@pytest.fixture(scope="session")
def dask_cluster():
    """A session-wide ``distributed.LocalCluster`` (2 worker processes, 1 thread each, 1 GB each), started once."""
    distributed = pytest.importorskip("distributed")
    with dask.config.set(CLUSTER_CONFIG), distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, memory_limit="1GB", dashboard_address=":0",
        timeout="120s",
    ) as cluster:
        yield cluster


@pytest.fixture
def dask_client(dask_cluster):
    """A client of the session cluster, the default scheduler while the test runs (restarted workers' state is not shared)."""
    import distributed

    with dask.config.set(CLUSTER_CONFIG), distributed.Client(dask_cluster, timeout="120s") as client:
        yield client
