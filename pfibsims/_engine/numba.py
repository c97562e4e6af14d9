"""The numba switch: ``njit`` and whether the compiled kernels are used.

numba is a runtime dependency (it earns its place: see ``benchmarks/README.md``),
but every compiled kernel has a numpy twin that gives the same numbers, so the
package still imports and runs (slowly) without it.  :func:`compiled` says which
path the kernels take; :func:`use_compiled` switches it for a block of code (the
benchmarks time the numpy path with it; tests compare the two paths).  The
switch is read when a kernel runs, in the process that runs it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

try:
    from numba import njit

    INSTALLED = True
except ImportError:  # pragma: no cover - exercised only without numba
    INSTALLED = False

    def njit(*args, **kwargs):  # type: ignore[no-redef]
        """A no-op stand-in for ``numba.njit``: the decorated function runs as plain Python."""
        return (lambda f: f) if not args or not callable(args[0]) else args[0]


__all__ = ["INSTALLED", "compiled", "njit", "use_compiled"]

_state = {"compiled": INSTALLED}


def compiled() -> bool:
    """True when the kernels take their compiled (numba) path.

    Examples
    --------
    >>> with use_compiled(False):
    ...     compiled()
    False
    """
    return _state["compiled"]


@contextlib.contextmanager
def use_compiled(flag: bool) -> Iterator[None]:
    """Within the block, the kernels take the compiled path (``True``, if numba is installed) or numpy's."""
    before = _state["compiled"]
    _state["compiled"] = bool(flag) and INSTALLED
    try:
        yield
    finally:
        _state["compiled"] = before
