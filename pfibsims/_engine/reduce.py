"""Dask graph builder for one-pass block reductions (the layer above `_moments`).

:func:`block_reduce` maps a numpy kernel over aligned chunks of one or more
arrays (each chunk gives a small array of partial results) and merges the
partials in a tree, so a statistic of a whole volume is one pass over its
chunks with memory bounded by the chunk size.  Graph names are deterministic
(``dask.base.tokenize``) and tasks are module-level functions bound with
``functools.partial``, so graphs run on ``dask.distributed`` too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize

__all__ = ["aligned", "block_reduce"]


def aligned(*arrays: da.Array | None) -> list[da.Array | None]:
    """Dask arrays of one shape rechunked to common chunks (``None`` passes through)."""
    present = [a for a in arrays if a is not None]
    ndim = present[0].ndim
    ind = "abcdefghij"[:ndim]
    args: list[Any] = []
    for a in present:
        args += [a, ind]
    _, unified = da.core.unify_chunks(*args)
    it = iter(unified)
    return [None if a is None else next(it) for a in arrays]


def _apply(kernel: Callable[..., np.ndarray], n_arrays: int, *blocks: np.ndarray, **kwargs: Any) -> np.ndarray:
    """Call ``kernel`` on the blocks, padding missing optional arrays with ``None``."""
    blocks = tuple(blocks) + (None,) * (n_arrays - len(blocks))
    return kernel(*blocks, **kwargs)


def _merge(merge: Callable[..., np.ndarray], x: np.ndarray, axis: Any = None, keepdims: bool = False,
           **_: Any) -> np.ndarray:
    return merge(x, axis=axis, keepdims=keepdims)


def block_reduce(
    kernel: Callable[..., np.ndarray],
    arrays: Sequence[da.Array | None],
    *,
    out_shape: tuple[int, ...],
    merge: Callable[..., np.ndarray],
    dtype: Any,
    name: str,
    split_every: int | None = 16,
    **kwargs: Any,
) -> da.Array:
    """One-pass reduction of aligned arrays through per-chunk partials.

    Parameters
    ----------
    kernel : callable
        ``kernel(*blocks, **kwargs) -> ndarray`` of shape ``(1,) * ndim +
        out_shape`` (``None`` stands for a missing optional array).
    arrays : sequence of dask arrays or None
        Arrays of one shape; trailing ``None`` entries are passed as ``None``.
    out_shape : tuple of int
        Shape of one partial result (and of the final result).
    merge : callable
        ``merge(parts, axis=..., keepdims=...)``, associative over the leading axes.
    dtype : dtype
        Of the partials and the result.
    name : str
        Prefix of the graph's layer names (a token of the inputs is appended).

    Returns
    -------
    dask.array.Array
        Lazy, shape ``out_shape``.
    """
    present = [a for a in arrays if a is not None]
    if any(a is None for a in arrays[: len(present)]):
        raise TypeError("block_reduce: optional (None) arrays must come last")
    present = aligned(*present)
    ndim = present[0].ndim
    token = tokenize(kernel, present, out_shape, kwargs)
    chunks = tuple((1,) * len(c) for c in present[0].chunks) + tuple((s,) for s in out_shape)
    func = partial(_apply, kernel, len(arrays), **kwargs)
    parts = da.map_blocks(
        func,
        *present,
        chunks=chunks,
        new_axis=list(range(ndim, ndim + len(out_shape))),
        dtype=dtype,
        name=f"{name}-partial-{token}",
        meta=np.empty((0,) * (ndim + len(out_shape)), dtype=dtype),
    )
    if ndim == 0:
        return parts
    step = partial(_merge, merge)
    return da.reduction(
        parts,
        chunk=step,
        combine=step,
        aggregate=step,
        axis=tuple(range(ndim)),
        keepdims=False,
        dtype=dtype,
        split_every=split_every,
        concatenate=True,
        name=f"{name}-{token}",
        meta=np.empty((0,) * len(out_shape), dtype=dtype),
    )
