"""Block means of integer chunks: the compiled loop against numpy's reshape-mean (the reference path)."""

from __future__ import annotations

import numpy as np
import pytest

from pfibsims._engine import views as V
from pfibsims._engine.numba import compiled, use_compiled


@pytest.mark.skipif(not compiled(), reason="the compiled path needs numba")
@pytest.mark.parametrize("dtype", [np.uint16, np.uint8, np.int16, np.int32, np.uint32, bool])
@pytest.mark.parametrize(("shape", "f", "first"), [((2, 61, 59), 7, (3, 1)), ((1, 50, 47), 4, (0, 0)),
                                                   ((3, 7, 9), 2, (1, 0)), ((1, 5, 5), 9, (0, 0))])
def test_compiled_block_means_equal_numpy(dtype, shape, f, first):
    rng = np.random.default_rng(7)
    hi = 2 if dtype is bool else int(min(np.iinfo(dtype).max, 2**31 - 1))
    a = rng.integers(0 if dtype is bool else np.iinfo(dtype).min // 2, hi, shape).astype(dtype)
    counts = ((shape[1] - first[0]) // f,), ((shape[2] - first[1]) // f,)
    kw = {"f": f, "axes": (1, 2), "first": ((first[0],), (first[1],)), "counts": counts, "block_id": (0, 0, 0)}
    got = V._block_means(a, **kw)
    with use_compiled(False):
        ref = V._block_means(a, **kw)
    assert got.dtype == ref.dtype == np.float32
    assert got.shape == (shape[0], counts[0][0], counts[1][0])
    np.testing.assert_array_equal(got, ref)  # integer sums are exact in float64: the same float32 values
