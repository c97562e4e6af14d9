"""The one streaming-statistics mechanism: block kernels mapped over chunks, partials merged in a tree.

A :class:`Reduction` is one statistic of whole arrays: a block kernel (one
chunk of each input in, a small array of partial results out, e.g. from
:mod:`.moments` or :mod:`.grouped`) and an associative merge of those
partials.  :func:`reduce_blocks` evaluates any number of reductions over
arrays of one shape in **one pass**: one task per chunk reads the chunk of
every input once and runs every kernel on it; the partial tuples are merged
in a tree (``split_every`` at a time), so memory is a few chunks and small
tables whatever the size of the volume.  Numpy inputs are reduced in place,
without dask.

A statistic that needs several passes (quartiles need each group's range
first) is written as a *plan*: a generator that yields the list of
reductions of its next pass, receives their results and finally returns its
value.  :func:`evaluate` runs several plans side by side, every pass of all
of them in one ``compute``: e.g. a report's covariance, Pearson r, value
ranges, per-phase moments and histograms are two passes over the volume,
not one or two per statistic.

Graph names are deterministic (``dask.base.tokenize``) and tasks are
module-level functions with plain arguments, so graphs run on
``dask.distributed`` too.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from .. import progress

__all__ = ["Reduction", "aligned", "block_reduce", "evaluate", "reduce_blocks"]

#: Partial results merged per task of the tree: at most about this many partial
#: tables (plus those in flight) are held at once, whatever the number of chunks.
SPLIT = 16

#: A plan: yields the reductions of each pass, receives their results, returns its value.
Plan = Generator[list["Reduction"], list[np.ndarray], Any]


@dataclass(frozen=True, eq=False)
class Reduction:
    """One statistic of arrays of one shape, by a block kernel and a merge.

    ``kernel(*blocks, **kwargs)`` returns the partial result of one chunk of
    each array (``None`` stands for a missing optional array), of
    ``out_shape`` elements (any leading length-1 axes are dropped);
    ``merge(parts, axis=0)`` merges partials stacked along a new first axis
    and is associative.
    """

    kernel: Callable[..., np.ndarray]
    arrays: tuple[Any, ...]
    out_shape: tuple[int, ...]
    merge: Callable[..., np.ndarray]
    dtype: Any = np.float64
    kwargs: dict[str, Any] = field(default_factory=dict)

    def apply(self, blocks: Sequence[Any]) -> np.ndarray:
        """The partial result of one chunk of each array, of shape ``out_shape``."""
        return np.asarray(self.kernel(*blocks, **self.kwargs)).reshape(self.out_shape)


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


# -- tasks (module level, bound with functools.partial: picklable for distributed, and
# never a tuple that dask would take for a task) ------------------------------------------
def _partials(reductions: tuple[tuple[Reduction, tuple[int, ...]], ...], *blocks: np.ndarray) -> tuple:
    """Every reduction's partial of one chunk; ``slots[k]`` is the block of its k-th array (-1: None)."""
    return tuple(r.apply([None if k < 0 else blocks[k] for k in slots]) for r, slots in reductions)


def _combine(merges: tuple[Callable[..., np.ndarray], ...], parts: list[tuple]) -> tuple:
    return tuple(m(np.stack([p[i] for p in parts]), axis=0) for i, m in enumerate(merges))


# -- one pass ------------------------------------------------------------------------
def _slots(reductions: Sequence[Reduction]) -> tuple[list[Any], list[tuple[int, ...]]]:
    """The distinct input arrays (by identity) and, per reduction, the index of each of its arrays (-1: None)."""
    inputs: list[Any] = []
    where: dict[int, int] = {}
    slots = []
    for r in reductions:
        if not r.arrays or r.arrays[0] is None:
            raise TypeError("Reduction: expected at least one array first (optional None arrays come last)")
        seen_none = False
        s = []
        for a in r.arrays:
            if a is None:
                seen_none = True
                s.append(-1)
                continue
            if seen_none:
                raise TypeError("Reduction: optional (None) arrays must come last")
            if id(a) not in where:
                where[id(a)] = len(inputs)
                inputs.append(a)
            s.append(where[id(a)])
        slots.append(tuple(s))
    shapes = {tuple(a.shape) for a in inputs}
    if len(shapes) > 1:
        raise ValueError(f"reduce_blocks: the arrays of one pass must have one shape, got {sorted(shapes)}")
    return inputs, slots


def reduce_blocks(reductions: Sequence[Reduction], *, name: str = "pfibsims-reduce",
                  split_every: int = SPLIT) -> list[Any]:
    """Every reduction in one pass over the chunks of its arrays.

    Parameters
    ----------
    reductions : sequence of Reduction
        Statistics of arrays of one shape (numpy or dask; an array given to
        several reductions, by identity, is read once a chunk).
    name : str
        Prefix of the graph's layer names (a token of the inputs is appended).
    split_every : int
        Partials merged per task of the tree.

    Returns
    -------
    list
        Per reduction, its result of shape ``out_shape``: numpy when every
        input is numpy (computed here, no dask), else a lazy dask array (one
        chunk); the lazy results share one graph, so computing them together
        reads each chunk once.
    """
    inputs, slots = _slots(reductions)
    if not any(isinstance(a, da.Array) for a in inputs):
        return [r.apply([None if k < 0 else inputs[k] for k in s]) for r, s in zip(reductions, slots, strict=True)]
    inputs = aligned(*[a if isinstance(a, da.Array) else da.from_array(np.asarray(a), chunks=np.shape(a),
                                                                             name=f"pfibsims-array-{tokenize(a)}")
                       for a in inputs])
    plan = tuple((r, s) for r, s in zip(reductions, slots, strict=True))
    token = tokenize(name, inputs, [(r.kernel, r.out_shape, r.merge, r.dtype, r.kwargs, s) for r, s in plan])
    base = f"{name}-{token}"
    dsk: dict = {}
    level = []
    for i, index in enumerate(itertools.product(*(range(len(c)) for c in inputs[0].chunks))):
        key = (f"{base}-partial", i)
        dsk[key] = (partial(_partials, plan), *[(a.name, *index) for a in inputs])
        level.append(key)
    merges = tuple(r.merge for r in reductions)
    depth = 0
    while len(level) > 1:  # the tree: split_every partials a task, until one is left
        depth += 1
        nxt = []
        for j in range(0, len(level), max(int(split_every), 2)):
            key = (f"{base}-merge-{depth}", j)
            dsk[key] = (partial(_combine, merges), level[j : j + max(int(split_every), 2)])
            nxt.append(key)
        level = nxt
    layers: dict[str, dict] = {base: dsk}
    deps: dict[str, set] = {base: {a.name for a in inputs}}
    for i, r in enumerate(reductions):
        out_name = f"{base}-{i}"
        layers[out_name] = {(out_name, *([0] * len(r.out_shape))): (operator.getitem, level[0], i)}
        deps[out_name] = {base}
    graph = HighLevelGraph.merge(*[a.dask for a in inputs], HighLevelGraph(layers, deps))
    outs = [da.Array(graph, f"{base}-{i}", chunks=tuple((s,) for s in r.out_shape), dtype=r.dtype)
            for i, r in enumerate(reductions)]
    return outs


def block_reduce(
    kernel: Callable[..., np.ndarray],
    arrays: Sequence[da.Array | None],
    *,
    out_shape: tuple[int, ...],
    merge: Callable[..., np.ndarray],
    dtype: Any,
    name: str,
    split_every: int = SPLIT,
    **kwargs: Any,
) -> da.Array:
    """One statistic in one pass: :func:`reduce_blocks` of a single :class:`Reduction`.

    Parameters
    ----------
    kernel : callable
        ``kernel(*blocks, **kwargs)``: the partial result of one chunk of each
        array (``None`` stands for a missing optional array).
    arrays : sequence of dask arrays or None
        Arrays of one shape; trailing ``None`` entries are passed as ``None``.
    out_shape : tuple of int
        Shape of one partial result (and of the final result).
    merge : callable
        ``merge(parts, axis=0)``, associative over the leading axis.
    dtype : dtype
        Of the partials and the result.
    name : str
        Prefix of the graph's layer names (a token of the inputs is appended).

    Returns
    -------
    dask.array.Array
        Lazy, shape ``out_shape`` (numpy when every array is numpy).

    Examples
    --------
    >>> import dask.array as da
    >>> from pfibsims._engine.moments import range_block, merge_ranges
    >>> x = da.arange(10.0, chunks=3)
    >>> block_reduce(range_block, [x], out_shape=(2,), merge=merge_ranges, dtype=float, name="r").compute().tolist()
    [0.0, 9.0]
    """
    r = Reduction(kernel, tuple(arrays), tuple(out_shape), merge, dtype, kwargs)
    return reduce_blocks([r], name=name, split_every=split_every)[0]


# -- plans: statistics of several passes, evaluated together --------------------------
def evaluate(*plans: Plan, step: str = "statistics") -> list[Any]:
    """Run plans side by side: each pass of every plan in one ``compute``; their return values.

    Each plan is a generator that yields the list of :class:`Reduction` of
    its next pass, is sent back the list of their (numpy) results, and
    returns its value.  The reductions pending in one round, from every plan,
    run together: those on arrays of one shape in one pass over their chunks
    (:func:`reduce_blocks`), all of them in one ``compute`` (reported through
    :func:`pfibsims.progress.compute` as ``step``).

    Examples
    --------
    >>> from pfibsims._engine.moments import range_block, merge_ranges
    >>> def span(x):
    ...     (lo_hi,) = yield [Reduction(range_block, (x,), (2,), merge_ranges)]
    ...     return float(lo_hi[1] - lo_hi[0])
    >>> evaluate(span(np.arange(5.0)), span(np.ones(3)))
    [4.0, 0.0]
    """
    results: list[Any] = [None] * len(plans)
    pending: dict[int, list[Reduction]] = {}
    for i, p in enumerate(plans):
        _advance(p, i, None, pending, results)
    while pending:
        order = list(pending)
        groups: dict[tuple, list[Reduction]] = {}
        for i in order:
            for r in pending[i]:
                groups.setdefault(tuple(np.shape(r.arrays[0])), []).append(r)
        values: dict[int, Any] = {}
        lazy: list[tuple[int, Any]] = []
        for shape_rs in groups.values():
            for r, v in zip(shape_rs, reduce_blocks(shape_rs), strict=True):
                (lazy.append((id(r), v)) if isinstance(v, da.Array) else values.__setitem__(id(r), v))
        if lazy:
            computed = progress.compute(*[v for _, v in lazy], step=step)
            values.update({k: np.asarray(v) for (k, _), v in zip(lazy, computed, strict=True)})
        now, pending = pending, {}
        for i in order:
            _advance(plans[i], i, [values[id(r)] for r in now[i]], pending, results)
    return results


def _advance(plan: Plan, i: int, sent: list[np.ndarray] | None, pending: dict, results: list) -> None:
    """Send ``sent`` to plan ``i``: record its next pass in ``pending``, or its value in ``results``."""
    try:
        nxt = plan.send(sent) if sent is not None else next(plan)
    except StopIteration as stop:
        results[i] = stop.value
        return
    pending[i] = list(nxt)
