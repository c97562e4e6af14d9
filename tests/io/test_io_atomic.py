"""Placing a store at its path (pfibsims.io._atomic): exclusive create, atomic replace, leftovers of saves."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import pfibsims as pfs
from pfibsims.errors import FileFormatError
from pfibsims.io import _atomic


def _ds(value: float = 1.0):
    return pfs.stack({"Li6": np.full((2, 6, 5), value, dtype=np.float32)}, pixel_size="72 nm", slice_thickness="60 nm")


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(proc.stdout)


@pytest.fixture(params=["renameat2", "portable"])
def mode(request, monkeypatch):
    """Run each test with Linux renameat2 and with the portable fallback (mkdir claim, two renames)."""
    if request.param == "portable":
        def unavailable(src, dst, flags):
            raise NotImplementedError("renameat2")

        monkeypatch.setattr(_atomic, "_renameat2", unavailable)
    elif not sys.platform.startswith("linux"):
        pytest.skip("renameat2 is Linux only")
    return request.param


def test_exclusive_create_fails_if_the_path_appeared_while_writing(tmp_path, monkeypatch, mode):
    target = tmp_path / "run.zarr"
    real = _atomic.place

    def racing_place(tmp, dst, *, overwrite):  # another save wins the race just before ours finishes
        (dst / "other").mkdir(parents=True)
        return real(tmp, dst, overwrite=overwrite)

    monkeypatch.setattr("pfibsims.io.store.place", racing_place)
    with pytest.raises(FileFormatError, match=r"run\.zarr' appeared while this save was writing \(another save\?\)"):
        pfs.save(_ds(), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.zarr"]  # our temporary is gone
    assert [p.name for p in target.iterdir()] == ["other"]  # the other one untouched


def test_overwrite_replaces_a_store_and_leaves_no_temporaries(tmp_path, mode):
    target = pfs.save(_ds(1.0), tmp_path / "run.zarr")
    pfs.save(_ds(2.0), target, overwrite=True)
    assert float(pfs.open_dataset(target).Li6.max()) == 2.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.zarr"]


@pytest.mark.parametrize("kind", ["directory", "file"])
def test_overwrite_never_replaces_user_files(tmp_path, kind, mode):
    target = tmp_path / "results"
    if kind == "directory":
        target.mkdir()
        (target / "thesis.tex").write_text("three years")
    else:
        target.write_text("three years")
    with pytest.raises(FileFormatError, match=f"results' is a {kind} but not a Zarr store.*replaces only a store"):
        pfs.save(_ds(), target, overwrite=True)
    text = (target / "thesis.tex") if kind == "directory" else target
    assert text.read_text() == "three years"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_overwrite_of_a_symlink_to_a_store_is_refused_and_both_are_kept(tmp_path, mode):
    """The atomic exchange swaps directory entries: on a link it replaced the link by a directory and left the
    store it pointed to as it was, which neither reading of "overwrite the store at this path" expects.
    Refused, naming both paths; the link and its store are untouched."""
    real = pfs.save(_ds(1.0), tmp_path / "real.zarr")
    link = tmp_path / "link.zarr"
    link.symlink_to(real)
    with pytest.raises(FileFormatError, match=r"link\.zarr' is a symbolic link to '.*real\.zarr'.*save to '.*real\.zarr'"):
        pfs.save(_ds(2.0), link, overwrite=True)
    assert link.is_symlink()
    assert link.resolve() == real.resolve()
    assert float(pfs.open_dataset(link).Li6.max()) == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.zarr", "real.zarr"]  # no temporary left
    pfs.save(_ds(2.0), link.resolve(), overwrite=True)  # the way the message gives: the store replaced, the link kept
    assert link.is_symlink()
    assert float(pfs.open_dataset(link).Li6.max()) == 2.0


def test_stale_temporaries_are_cleaned_by_the_next_save_and_live_ones_kept(tmp_path, mode):
    host, dead = _atomic._host(), _dead_pid()
    stale = [tmp_path / f".run.zarr.pfibsims-tmp-{host}-{dead}-abc123", tmp_path / ".run.zarr.pfibsims-tmp-0123456789ab"]
    live = tmp_path / f".run.zarr.pfibsims-tmp-{host}-{os.getpid()}-def456"  # a save running in this process
    other_host = tmp_path / f".run.zarr.pfibsims-tmp-elsewhere-{dead}-fed654"  # cannot tell: left alone
    other_name = tmp_path / f".other.zarr.pfibsims-tmp-{host}-{dead}-aaa111"
    for p in [*stale, live, other_host, other_name]:
        (p / "Li6").mkdir(parents=True)
    pfs.save(_ds(), tmp_path / "run.zarr")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["run.zarr", live.name, other_host.name, other_name.name])


def test_a_store_moved_aside_by_a_killed_replace_is_put_back(tmp_path, mode):
    # what a kill between the two renames of the portable replace leaves: the old store aside, no path
    old = pfs.save(_ds(1.0), tmp_path / "run.zarr")
    aside = tmp_path / f".run.zarr.pfibsims-old-{_atomic._host()}-{_dead_pid()}-abc123"
    old.rename(aside)
    with pytest.raises(FileFormatError, match="does not exist"):
        pfs.open_dataset(old)
    with pytest.raises(FileFormatError, match="is the temporary of an interrupted or running save"):
        pfs.open_dataset(aside)
    with pytest.raises(FileFormatError, match="already exists"):  # the next save puts it back first
        pfs.save(_ds(2.0), old)
    assert float(pfs.open_dataset(old).Li6.max()) == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.zarr"]


def test_temporaries_are_never_opened_as_data(tmp_path):
    tmp = tmp_path / ".run.zarr.pfibsims-tmp-host-1-0a1b2c"
    pfs.save(_ds(), tmp_path / "x.zarr").rename(tmp)
    with pytest.raises(FileFormatError, match=r"pfibsims-tmp-host-1-0a1b2c' is the temporary of an interrupted"):
        pfs.open_dataset(tmp)
