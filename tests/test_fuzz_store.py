"""The store under kills and concurrent saves (issue 21): never neither store at the path, exactly one winner.

Saves run in child processes (see fuzz_helpers); the parent kills them with SIGKILL at random
moments (deterministic seeds) or at each step that matters, then checks what is at the path.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from typing import Any

import numpy as np
import pytest
from fuzz_helpers import context

import pfibsims as pfs
from pfibsims.errors import FileFormatError

SLICES = 6
#: SIGKILLs at random moments of a replace in CI (PFIBSIMS_FUZZ_SCALE multiplies them).
KILLS = 4 * int(os.environ.get("PFIBSIMS_FUZZ_SCALE", "1"))


def _ds(value: float, slow: float = 0.0):
    import dask.array as da

    def pause(block):
        time.sleep(slow)
        return block

    arr = da.full((SLICES, 16, 16), value, dtype="float32", chunks=(1, 16, 16))
    if slow:
        arr = arr.map_blocks(pause, dtype="float32")
    return pfs.stack({"Li6": arr}, pixel_size="72 nm", slice_thickness="60 nm")


def _save_child(path: str, value: float, slow: float, overwrite: bool, go: Any, portable: bool, kill_at: str) -> None:
    """A save in a child: waits for ``go``, then saves; ``kill_at`` kills itself at one step of it."""
    import pfibsims.io._atomic as atomic
    import pfibsims.io.store as store

    def die(*_a, **_k):
        os.kill(os.getpid(), signal.SIGKILL)

    if portable:
        def unavailable(src, dst, flags):
            raise NotImplementedError

        atomic._renameat2 = unavailable
    if kill_at == "before_place":
        store.place = die
    elif kill_at == "after_exchange":
        atomic.remove_tree = die  # the old store sits at the temporary name
    elif kill_at == "between_renames":
        real = os.replace

        def replace_then_die(src, dst):  # dies once the old store is moved aside, before the new one is put
            real(src, dst)
            if ".pfibsims-old-" in str(dst):
                die()

        os.replace = replace_then_die
    if go is not None:
        go.wait(30)
    try:
        pfs.save(_ds(value, slow), path, overwrite=overwrite)
    except FileFormatError as exc:
        os._exit(3 if "exists" in str(exc) or "appeared" in str(exc) else 4)
    os._exit(0)


def _start(path, value, *, slow=0.0, overwrite=True, go=None, portable=False, kill_at=""):
    proc = context().Process(target=_save_child, args=(str(path), value, slow, overwrite, go, portable, kill_at))
    proc.start()
    return proc


def _value_at(path) -> float:
    """The one value of the complete store at ``path`` (every chunk read and checked)."""
    data = pfs.open_dataset(path).Li6.values
    assert data.shape == (SLICES, 16, 16)
    values = np.unique(data)
    assert values.size == 1, values
    return float(values[0])


def _leftovers(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))


def test_sigkill_at_random_moments_leaves_the_old_or_the_new_store(tmp_path):
    rng = np.random.default_rng(21)
    target = tmp_path / "run.zarr"
    pfs.save(_ds(1.0), target)
    seen = []
    for trial in range(KILLS):
        proc = _start(target, 2.0 + trial, slow=0.05)
        time.sleep(float(rng.uniform(0.0, 0.8)))
        with contextlib.suppress(ProcessLookupError):  # the save may finish (and be reaped) before the kill
            os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
        value = _value_at(target)  # the path always holds one complete store
        assert value in (1.0, *[2.0 + t for t in range(trial + 1)])
        seen.append(value)
    pfs.save(_ds(9.0), target, overwrite=True)  # the next save cleans what the kills left
    assert _value_at(target) == 9.0
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(("kill_at", "portable", "expect"), [
    ("before_place", False, 1.0),
    ("after_exchange", False, 2.0),
    ("before_place", True, 1.0),
    ("after_exchange", True, 2.0),
])
def test_sigkill_at_each_step_of_a_replace(tmp_path, kill_at, portable, expect):
    target = tmp_path / "run.zarr"
    pfs.save(_ds(1.0), target)
    proc = _start(target, 2.0, portable=portable, kill_at=kill_at)
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    assert _value_at(target) == expect
    assert len(_leftovers(tmp_path)) == 1  # the temporary (partial new, or the old store) stays hidden...
    pfs.save(_ds(3.0), target, overwrite=True)
    assert _leftovers(tmp_path) == []  # ...until the next save to the path
    assert _value_at(target) == 3.0


def test_sigkill_between_the_portable_renames_is_repaired_by_the_next_save(tmp_path):
    # without renameat2 the path is briefly empty; the next save (or a retry) puts the old store back
    target = tmp_path / "run.zarr"
    pfs.save(_ds(1.0), target)
    proc = _start(target, 2.0, portable=True, kill_at="between_renames")
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    assert not target.exists()
    assert [n.split("-")[1] for n in _leftovers(tmp_path)] == ["old", "tmp"]
    with pytest.raises(FileFormatError, match="already exists"):  # the old store is back first
        pfs.save(_ds(3.0), target)
    assert _value_at(target) == 1.0
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("portable", [False, True], ids=["renameat2", "portable"])
def test_concurrent_exclusive_saves_have_exactly_one_winner(tmp_path, portable):
    go = context().Event()
    target = tmp_path / "run.zarr"
    procs = [_start(target, float(i), overwrite=False, go=go, portable=portable) for i in range(4)]
    go.set()
    for p in procs:
        p.join(60)
    codes = [p.exitcode for p in procs]
    assert sorted(codes) == [0, 3, 3, 3], codes  # one saved; three were refused, naming the path
    assert _value_at(target) == float(codes.index(0))
    assert _leftovers(tmp_path) == []


def test_concurrent_overwrites_leave_one_complete_store(tmp_path):
    go = context().Event()
    target = tmp_path / "run.zarr"
    pfs.save(_ds(-1.0), target)
    procs = [_start(target, float(i), overwrite=True, go=go) for i in range(4)]
    go.set()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert _value_at(target) in (0.0, 1.0, 2.0, 3.0)
    assert _leftovers(tmp_path) == []


def save_as(path: str, value: float, overwrite: bool, user: int | None) -> str:
    """``pfs.save`` as ``user`` (an effective uid) when given (runs in a child: see fuzz_helpers)."""
    if user is not None:
        os.setegid(user)
        os.seteuid(user)
    try:
        return str(pfs.save(_ds(value), path, overwrite=overwrite))
    finally:
        if user is not None:
            os.seteuid(0)
            os.setegid(0)


def test_a_save_where_it_cannot_write_is_refused_naming_the_path_and_keeps_the_store():
    import shutil
    import tempfile
    from pathlib import Path

    from fuzz_helpers import run_cases

    base = Path(tempfile.mkdtemp(prefix="pfibsims-readonly-"))  # pytest's folders are private to their user
    try:
        base.chmod(0o755)
        (base / "afile").write_text("not a folder")
        pfs.save(_ds(1.0), base / "run.zarr")
        base.chmod(0o555)  # the store's folder: read-only for everyone but root
        user = 65534 if os.geteuid() == 0 else None
        cases = [(save_as, (str(base / "afile" / "x.zarr"), 2.0, False, None)),
                 (save_as, (str(base / "new.zarr"), 2.0, False, user)),
                 (save_as, (str(base / "run.zarr"), 2.0, True, user))]
        outcomes = run_cases(cases, timeout=60)
        expected = ["expected the parent of '.*afile/x.zarr' to be a directory, found a file",
                    "expected a parent directory this user may write in, got '.*pfibsims-readonly-.*' \\(permission denied\\)",
                    "expected a parent directory this user may write in"]
        for o, want in zip(outcomes, expected, strict=True):
            assert (o.kind, o.error) == ("error", "FileFormatError"), str(o)
            assert re.search(want, o.message.splitlines()[0]), str(o)
        assert _value_at(base / "run.zarr") == 1.0
        assert sorted(p.name for p in base.iterdir()) == ["afile", "run.zarr"]
    finally:
        base.chmod(0o755)
        shutil.rmtree(base)


def save_full(path: str, value: float, fmt: str, limit: int) -> str:
    """``pfs.save`` with files limited to ``limit`` bytes, as on a full disk (runs in a child)."""
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    return str(pfs.save(_ds(value), path, overwrite=True, format=fmt))


@pytest.mark.parametrize("fmt", ["zarr", "ome-zarr"])
def test_a_save_that_cannot_write_its_chunks_is_a_file_format_error_and_keeps_the_store(tmp_path, fmt):
    from fuzz_helpers import run_cases

    target = tmp_path / "run.zarr"
    pfs.save(_ds(1.0), target, format=fmt)
    outcomes = run_cases([(save_full, (str(target), 2.0, fmt, limit)) for limit in (0, 300)], timeout=60)
    for o in outcomes:
        assert (o.kind, o.error) == ("error", "FileFormatError"), str(o)
        assert re.search(f"path: expected to write the store '{target}', but writing failed \\(OSError: .*File too large", o.message), str(o)
    assert _value_at(target) == 1.0
    assert _leftovers(tmp_path) == []
