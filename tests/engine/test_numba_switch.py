"""pfibsims._engine.numba: stack buffers of compiled kernels."""

from __future__ import annotations

import numpy as np
import pytest

from pfibsims._engine.numba import INSTALLED, STACK_MAX, njit, stack_array

pytestmark = pytest.mark.skipif(not INSTALLED, reason="numba is not installed")


@njit
def _three_buffers(x):
    # three stack buffers at once, each filled and read back: they must not share memory
    a = stack_array(4, np.float64)
    b = stack_array(4, np.float64)
    c = stack_array(3, np.float32)
    for i in range(4):
        a[i] = x[i]
        b[i] = 2.0 * x[i]
    for i in range(3):
        c[i] = np.float32(a[i] + b[i])
    return a.sum(), b.sum(), c.sum(), a.size, c.size


@njit
def _in_a_loop(x):
    # a buffer taken inside a loop is the same one each time (made once per call): sums per row are right
    out = np.empty(x.shape[0])
    for r in range(x.shape[0]):
        buf = stack_array(x.shape[1], np.float64)
        for i in range(x.shape[1]):
            buf[i] = x[r, i]
        out[r] = buf.sum()
    return out


@njit
def _too_many(n):
    return stack_array(n, np.float64).size


def test_stack_buffers_are_distinct_and_sized():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert _three_buffers(x) == (10.0, 20.0, 18.0, 4, 3)  # c = 3 * (1 + 2 + 3)


def test_a_stack_buffer_in_a_loop():
    x = np.arange(5 * 16, dtype=np.float64).reshape(5, 16)
    np.testing.assert_array_equal(_in_a_loop(x), x.sum(axis=1))


def test_more_than_stack_max_elements_is_an_error():
    assert _too_many(STACK_MAX) == STACK_MAX
    with pytest.raises(ValueError, match="exceeds STACK_MAX"):
        _too_many(STACK_MAX + 1)
