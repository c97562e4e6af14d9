"""Putting a finished store at its path: exclusive create, atomic replace, and the leftovers of interrupted saves.

A save writes into a temporary sibling ``.<name>.pfibsims-tmp-<host>-<pid>-<id>`` and only then
puts it at ``path``:

* a new path is taken with an exclusive rename (Linux ``renameat2(RENAME_NOREPLACE)``): if
  the path appeared meanwhile (another save), the rename fails and the save raises, so of two
  concurrent ``save(overwrite=False)`` exactly one wins;
* an existing store is replaced by atomically exchanging the two directories
  (``renameat2(RENAME_EXCHANGE)``), then deleting the old one, now at the temporary name: at
  every instant ``path`` holds the complete old or the complete new store, whatever kills the
  process;
* only a Zarr store is ever replaced (a directory with ``zarr.json``, or ``.zgroup``/``.zarray``
  for Zarr v2), never an ordinary file or directory of the user's.

Where ``renameat2`` is missing (not Linux, or a file system without it) the exclusive create
claims the path with ``mkdir`` and renames onto the empty claim, and the replace renames the old
store aside to ``.<name>.pfibsims-old-<host>-<pid>-<id>`` first; a kill between those two renames
leaves the old store there, and the next save to the path puts it back.

A temporary whose process is gone (same host, pid not running) is stale: the next save to the
path deletes it (or restores a moved-aside old store when the path is missing). The temporaries
of running saves, in this or another process, are left alone.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import glob
import os
import re
import shutil
import socket
import time
import uuid
from pathlib import Path

__all__ = ["clean_stale", "is_temporary", "is_zarr_store", "place", "remove_tree", "temp_path"]

_TEMP = re.compile(r"^\.(?P<name>.+)\.pfibsims-(?P<kind>tmp|old)-(?:(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-)?[0-9a-f]+$")
_NOREPLACE, _EXCHANGE = 1, 2
_AT_FDCWD = -100


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


def temp_path(target: Path, kind: str = "tmp") -> Path:
    """A fresh sibling name for a store being written (``kind="tmp"``) or moved aside (``"old"``)."""
    return target.with_name(f".{target.name}.pfibsims-{kind}-{_host()}-{os.getpid()}-{uuid.uuid4().hex[:12]}")


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is named as a temporary of a save (never a store to open).

    Examples
    --------
    >>> is_temporary(Path(".run.zarr.pfibsims-tmp-host-12-0123abcd"))
    True
    >>> is_temporary(Path("run.zarr"))
    False
    """
    return _TEMP.match(Path(path).name) is not None


def is_zarr_store(path: Path) -> bool:
    """A directory holding Zarr metadata at its root (v3 ``zarr.json``, v2 ``.zgroup``/``.zarray``)."""
    return path.is_dir() and any((path / m).is_file() for m in ("zarr.json", ".zgroup", ".zarray"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's running process
        return True
    return True


def _stale(m: re.Match[str]) -> bool:
    """A temporary left by a process that is gone (names without host and pid: older pfibsims)."""
    if m["pid"] is None:
        return True
    return m["host"] == _host() and not _alive(int(m["pid"]))


def remove_tree(path: Path) -> None:
    """Delete a directory tree, or only the link or file at ``path``; never follow a link.

    A tree that another thread is still writing into (a failed save's other chunks, finishing) may keep
    a file the first pass missed: it is removed again, for up to about a second, until it is gone.
    """
    for _ in range(20):
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
        else:
            shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            return
        time.sleep(0.05)


def clean_stale(target: Path) -> list[Path]:
    """Delete the stale temporaries of ``target``; put back a moved-aside store if ``target`` is missing.

    Returns the temporaries removed or restored.
    """
    done = []
    for sibling in sorted(target.parent.glob(f".{glob.escape(target.name)}.pfibsims-*")):
        m = _TEMP.match(sibling.name)
        if m is None or m["name"] != target.name or not _stale(m):
            continue
        if m["kind"] == "old" and not (target.exists() or target.is_symlink()) and is_zarr_store(sibling):
            try:
                _rename_exclusive(sibling, target)
            except FileExistsError:
                remove_tree(sibling)
        else:
            remove_tree(sibling)
        done.append(sibling)
    return done


def _renameat2(src: Path, dst: Path, flags: int) -> None:
    """Linux ``renameat2``; NotImplementedError where it (or the flag) is not available."""
    fn = getattr(_libc(), "renameat2", None)
    if fn is None:
        raise NotImplementedError("renameat2")
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) != 0:
        code = ctypes.get_errno()
        if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise NotImplementedError(f"renameat2 flags {flags} on {dst.parent}")
        raise OSError(code, os.strerror(code), str(src), None, str(dst))


@functools.cache
def _libc() -> ctypes.CDLL:
    lib = ctypes.CDLL(None, use_errno=True)
    if hasattr(lib, "renameat2"):
        lib.renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
        lib.renameat2.restype = ctypes.c_int
    return lib


def _rename_exclusive(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; FileExistsError if anything is at ``dst`` (atomically checked)."""
    try:
        return _renameat2(src, dst, _NOREPLACE)
    except NotImplementedError:
        pass
    if os.name == "nt":  # Windows never renames onto an existing name
        return os.rename(src, dst)
    os.mkdir(dst)  # the claim: FileExistsError if taken; POSIX rename replaces an empty directory
    try:
        os.rename(src, dst)
    except BaseException:
        os.rmdir(dst)
        raise


def _replace(src: Path, dst: Path) -> None:
    """Put ``src`` at ``dst`` in place of what is there, then delete the old one."""
    try:
        _renameat2(src, dst, _EXCHANGE)
    except NotImplementedError:
        old = temp_path(dst, "old")
        os.replace(dst, old)
        try:
            os.replace(src, dst)
        except BaseException:
            os.replace(old, dst)
            raise
        remove_tree(old)
    else:
        remove_tree(src)  # it holds the old store now


def place(tmp: Path, target: Path, *, overwrite: bool) -> None:
    """Put the finished store ``tmp`` at ``target``: exclusively, or replacing a Zarr store.

    Raises
    ------
    FileExistsError
        When ``target`` exists (or appeared meanwhile) and ``overwrite`` is False.
    IsADirectoryError
        When ``target`` exists but is not a Zarr store (nothing is replaced).
    """
    try:
        return _rename_exclusive(tmp, target)
    except FileExistsError:
        if not overwrite:
            raise
    if not is_zarr_store(target):
        raise IsADirectoryError(errno.EISDIR, "not a Zarr store", str(target))
    _replace(tmp, target)
