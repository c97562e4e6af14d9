"""Progress of long steps: one switch, silent by default.

``pfs.config(progress=True)`` turns on progress bars for the long steps
(registration, drift, fuse, save): tqdm's (``tqdm.auto``, so a widget in a
notebook and a text bar in a terminal) when tqdm is installed, else one
text line per update on stderr. ``progress=callable`` hands every update to
your function instead, as ``callable(step, done, total)`` (``step`` a short
description such as ``"save: slabs"``; ``done`` and ``total`` counts of
the step's units, e.g. dask tasks or slabs). ``config`` works for good, or
for a block as a context manager::

    with pfs.config(progress=True):
        vol = pfs.fuse(eds, sims)

Library code reports through :func:`steps` (a counter it advances) or
:func:`compute` (``dask.compute`` with one update per finished task). The
setting lives in the calling process only; dask workers never see it, so
graphs stay free of global state.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .errors import PfibsimsError

__all__ = ["compute", "config", "steps"]

Callback = Callable[[str, int, int], Any]
_SETTINGS: dict[str, Any] = {"progress": False}


class config:  # noqa: N801 - used as a function, like dask.config.set
    """Set pfibsims options; for good, or for a ``with`` block (the previous values come back after it).

    Parameters
    ----------
    progress : bool or callable, optional
        ``True``: progress bars (tqdm when installed, else text on stderr);
        ``False`` (the default): silent; a callable: called as
        ``callable(step, done, total)`` on every update.

    Examples
    --------
    >>> seen = []
    >>> with config(progress=lambda step, done, total: seen.append((step, done, total))):
    ...     with steps("demo", 2) as advance:
    ...         advance(); advance()
    >>> seen
    [('demo', 0, 2), ('demo', 1, 2), ('demo', 2, 2)]
    >>> config()["progress"]
    False
    """

    def __init__(self, *, progress: bool | Callback | None = None) -> None:
        self._old = dict(_SETTINGS)
        if progress is not None:
            if not (isinstance(progress, bool) or callable(progress)):
                raise PfibsimsError(
                    f"progress: expected True, False or a callable(step, done, total), got {type(progress).__name__}"
                )
            _SETTINGS["progress"] = progress

    def __getitem__(self, key: str) -> Any:
        return _SETTINGS[key]

    def __enter__(self) -> config:
        return self

    def __exit__(self, *exc: Any) -> None:
        _SETTINGS.clear()
        _SETTINGS.update(self._old)


def _reporter(step: str, total: int) -> tuple[Callable[[int], None], Callable[[], None]] | None:
    """``(update(done), close())`` for the current setting, or None when silent."""
    setting = _SETTINGS["progress"]
    if setting is False:
        return None
    if callable(setting) and setting is not True:
        setting(step, 0, total)
        return (lambda done: setting(step, done, total)), (lambda: None)
    try:
        from tqdm.auto import tqdm
    except ImportError:
        def text(done: int) -> None:
            print(f"{step}: {done}/{total}", file=sys.stderr, flush=True)

        return text, (lambda: None)
    bar = tqdm(total=total, desc=step, leave=False)

    def update(done: int) -> None:
        bar.update(done - bar.n)

    return update, bar.close


@contextmanager
def steps(step: str, total: int) -> Iterator[Callable[[int], None]]:
    """A counter of ``total`` units for ``step``: call the yielded ``advance(n=1)`` as units finish.

    Silent (and free) when progress is off.
    """
    reporter = _reporter(step, int(total))
    if reporter is None:
        yield lambda n=1: None
        return
    update, close = reporter
    lock, count = threading.Lock(), [0]

    def advance(n: int = 1) -> None:
        with lock:
            count[0] += n
            update(count[0])

    try:
        yield advance
    finally:
        close()


def compute(*collections: Any, step: str, **kwargs: Any) -> tuple[Any, ...]:
    """``dask.compute(*collections, **kwargs)``, reporting finished tasks of ``step`` when progress is on.

    Works on the local schedulers (threads, processes, synchronous); on a
    ``distributed`` client dask's callbacks do not fire and the step is silent.
    """
    import dask
    from dask.callbacks import Callback as DaskCallback

    if _SETTINGS["progress"] is False:
        return dask.compute(*collections, **kwargs)
    state: dict[str, Any] = {}

    class _Tasks(DaskCallback):
        def _start_state(self, dsk: Any, s: dict) -> None:
            total = len(s.get("ready", ())) + len(s.get("waiting", {})) + len(s.get("running", ()))
            state["cm"] = steps(step, total)
            state["advance"] = state["cm"].__enter__()

        def _posttask(self, key: Any, result: Any, dsk: Any, s: dict, id: Any) -> None:
            state["advance"]()

    try:
        with _Tasks():
            return dask.compute(*collections, **kwargs)
    finally:
        if "cm" in state:
            state["cm"].__exit__(None, None, None)
