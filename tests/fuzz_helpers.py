"""Running fuzz cases where a crash or a hang cannot take the test run down.

Cases run in a child process forked from a forkserver that has imported pfibsims once, so a
child starts in milliseconds. One child runs cases one after another and says which case it
starts before running it; when it dies (a segfault, an abort) or a case runs past its timeout,
that case is recorded as a ``crash`` or a ``hang``, the child is killed, and a fresh child goes
on with the next case. Each case is ``(func, args)`` with ``func`` a module-level function
(pickled by reference) returning something small.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

_CONTEXT: Any = None
#: Imported once by the forkserver (imports only: no threads may run in a process that forks).
_PRELOAD = ["pfibsims", "pfibsims.io", "fuzz_helpers", "zarr", "zarr.codecs", "numcodecs", "google_crc32c",
            "xarray.backends.zarr", "h5py", "tifffile", "rsciio.bruker", "rsciio.jeol", "sims"]


def context() -> Any:
    """The forkserver context (pfibsims preloaded), made once per test process."""
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = mp.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(_PRELOAD)
    return _CONTEXT


@dataclass
class Outcome:
    """What one case did: ``ok`` (its value), ``error`` (type and message), ``crash``, ``hang``."""

    kind: str
    value: Any = None
    error: str = ""
    message: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.error}: {self.message[:300]}" if self.kind != "ok" else f"ok {self.value!r}"[:300]


def _worker(conn: Any, cases: Sequence[tuple[Callable[..., Any], tuple[Any, ...]]]) -> None:
    import warnings

    warnings.simplefilter("ignore")  # a warning is not an outcome; errors are
    for i, (func, args) in enumerate(cases):
        conn.send(("start", i))
        try:
            conn.send(("ok", i, func(*args)))
        except BaseException as exc:  # noqa: BLE001 - every exception is an outcome here
            conn.send(("error", i, type(exc).__name__, f"{exc}\n{traceback.format_exc(limit=-3)}"))
    conn.send(("done", len(cases)))


def run_cases(cases: Sequence[tuple[Callable[..., Any], tuple[Any, ...]]], *, timeout: float = 20.0) -> list[Outcome]:
    """Run every case in child processes; one Outcome per case, in order."""
    ctx = context()
    out: list[Outcome | None] = [None] * len(cases)
    start = 0
    while start < len(cases):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(child, list(cases[start:])), daemon=True)
        proc.start()
        child.close()
        current = start
        while True:
            if not parent.poll(timeout):
                out[current] = Outcome("hang", error="Timeout", message=f"no result after {timeout} s")
                break
            try:
                msg = parent.recv()
            except EOFError:  # the child died
                proc.join(5)
                code = proc.exitcode
                name = signal.Signals(-code).name if code is not None and code < 0 else f"exit {code}"
                out[current] = Outcome("crash", error=name, message=f"the child process died ({name})")
                break
            if msg[0] == "start":
                current = start + msg[1]
            elif msg[0] == "ok":
                out[start + msg[1]] = Outcome("ok", value=msg[2])
            elif msg[0] == "error":
                out[start + msg[1]] = Outcome("error", error=msg[2], message=msg[3])
            else:
                current = len(cases)
                break
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        parent.close()
        start = current + 1
    return [o if o is not None else Outcome("hang", error="NotRun") for o in out]


def summary(outcomes: Sequence[Outcome], labels: Sequence[str]) -> str:
    """One line per case that is not clean, for an assertion message."""
    return "\n".join(f"{label}: {o}" for label, o in zip(labels, outcomes, strict=True))
