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

import numpy as np

#: Most elements a :func:`stack_array` holds.
STACK_MAX = 64

try:
    from numba import carray, njit, types
    from numba.core import cgutils
    from numba.extending import intrinsic

    INSTALLED = True
except ImportError:  # pragma: no cover - exercised only without numba
    INSTALLED = False

    def njit(*args, **kwargs):  # type: ignore[no-redef]
        """A no-op stand-in for ``numba.njit``: the decorated function runs as plain Python."""
        return (lambda f: f) if not args or not callable(args[0]) else args[0]

    def stack_array(n, dtype):  # type: ignore[no-redef]
        """Without numba: an ordinary zeroed array of ``n`` elements."""
        return np.zeros(n, dtype=dtype)

else:

    @intrinsic
    def _stack_pointer(typingctx, dtype):  # pragma: no cover - compiled
        """A pointer to ``STACK_MAX`` elements of ``dtype`` in the entry block of the calling function."""

        def lower(context, builder, signature, args):
            return cgutils.alloca_once(builder, context.get_value_type(dtype.dtype), size=STACK_MAX)

        return types.CPointer(dtype.dtype)(dtype), lower

    @njit(inline="always")
    def stack_array(n, dtype):  # pragma: no cover - compiled
        """``n <= STACK_MAX`` scratch elements on the stack of the compiled function that calls this.

        Not zeroed. For the small per-pixel buffers of a kernel (taps, weights,
        accumulators): an array from ``np.empty`` is heap memory that LLVM must
        assume may alias the kernel's input arrays, so it stores every partial
        sum; a stack buffer it can keep in registers (the 2-D gather's
        accumulators: 54-61 -> 45-48 ns a pixel, the same numbers). Inlined, so the buffer
        lives as long as the caller's frame; never return it.
        """
        if n > STACK_MAX:
            raise ValueError("stack_array: n exceeds STACK_MAX")
        return carray(_stack_pointer(dtype), n)


__all__ = ["INSTALLED", "STACK_MAX", "compiled", "njit", "stack_array", "use_compiled"]

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
