"""Dask layer of resampling: which source window feeds which output chunk.

A resampling is described in *index space* by a :class:`Plan`: per array axis
either ``Keep`` (the axis passes through, e.g. slices resampled one by one),
or an :class:`~pfibsims.resampling.kernels.AxisWeights` table (a separable 1-D pass),
and optionally a :class:`Warp` acting on the last two axes together (rotation
or shear).  :func:`resample_array` turns a plan and a source dask array into
an output dask array: for every output chunk it works out the source window
(the taps of its rows, or the bounding box of its corners through the map plus
the kernel radius), names exactly the source chunks that overlap the window,
and adds one task that concatenates them, cuts the window and runs the numpy
kernels on it.  Nothing else of the source is read, so the peak memory is a
few chunks, whatever the size of the source.

Tasks are module-level functions with plain arguments (numpy arrays,
numbers), so the graph runs on dask.distributed, and names come from
``dask.base.tokenize``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import dask.array as da
import numpy as np
from dask.array.core import concatenate3
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from .._engine.threads import cores, thread_map
from .kernels import EDGE_TOL, AxisWeights, kernel_radius, pass_axis, warp2d, warp2d_nearest, warp_source_index

__all__ = ["Keep", "Plan", "Warp", "coverage_array", "resample_array", "resample_numpy", "warp_row_intervals"]


@dataclass(frozen=True)
class Keep:
    """An axis that passes through unchanged."""


@dataclass(frozen=True)
class Warp:
    """A 2-D map on the last two axes: output index ``(i, j, 1)`` -> source index ``m @ (i, j, 1)``.

    ``n_src`` is the size of the whole source field, ``f`` the antialias filter
    scales along the source axes, ``start`` the global output index of a
    block's first pixel (``m`` always takes global indices, so every block
    computes a pixel's source point with the same rounding).
    """

    m: np.ndarray
    n_src: tuple[int, int]
    f: tuple[float, float]
    start: tuple[int, int] = (0, 0)

    def at(self, i0: int, j0: int) -> Warp:
        return Warp(self.m, self.n_src, self.f, (self.start[0] + i0, self.start[1] + j0))

    def __dask_tokenize__(self) -> tuple:
        return ("pfibsims.Warp", self.m.tobytes(), self.n_src, self.f, self.start)


@dataclass(frozen=True)
class Plan:
    """Index-space description of one resampling (see the module docstring)."""

    axes: tuple  # per axis: Keep(), AxisWeights, or None for the two warp axes
    out_shape: tuple[int, ...]
    warp: Warp | None = None
    kernel: str = "lanczos"
    a: int = 3
    fill: float = np.nan
    dtype: np.dtype = field(default_factory=lambda: np.dtype(np.float32))

    def __dask_tokenize__(self) -> tuple:
        parts = []
        for ax in self.axes:
            if isinstance(ax, AxisWeights):
                parts.append((ax.start.tobytes(), ax.weights.tobytes(), ax.valid.tobytes()))
            else:
                parts.append(repr(ax))
        warp = None if self.warp is None else self.warp.__dask_tokenize__()
        return ("pfibsims.Plan", tuple(parts), self.out_shape, warp, self.kernel, self.a, repr(self.fill),
                str(self.dtype))


# -- per-block windows -------------------------------------------------------
def _warp_window(w: Warp, shape: tuple[int, int], radius: float) -> tuple[tuple[int, int], ...] | None:
    """Source window (lo, hi) per axis of a warp block, or None when the block is outside."""
    i = w.start[0] + np.array([0, 0, shape[0] - 1, shape[0] - 1], dtype=np.float64)
    j = w.start[1] + np.array([0, shape[1] - 1, 0, shape[1] - 1], dtype=np.float64)
    window = []
    for axis in range(2):
        u = w.m[axis, 0] * i + w.m[axis, 1] * j + w.m[axis, 2]
        n = w.n_src[axis]
        if u.max() < -0.5 - EDGE_TOL or u.min() > n - 0.5 + EDGE_TOL:
            return None
        sup = radius * w.f[axis]
        lo = max(int(math.floor(u.min() - sup - 1)), 0)
        hi = min(int(math.ceil(u.max() + sup + 2)), n)
        window.append((lo, hi))
    return tuple(window)


def _block_extent(chunks: tuple[tuple[int, ...], ...], index: tuple[int, ...]) -> tuple[list[int], tuple[int, ...]]:
    """The first sample (per axis) and the shape of block ``index`` of an array chunked as ``chunks``."""
    starts = [sum(c[:k]) for c, k in zip(chunks, index, strict=True)]
    return starts, tuple(c[k] for c, k in zip(chunks, index, strict=True))


def _localise(plan: Plan, index: tuple[int, ...], out_chunks: tuple[tuple[int, ...], ...]):
    """For one output block: its shape, source window per axis and block-local specs (None if all fill)."""
    starts, shape = _block_extent(out_chunks, index)
    window, local = [], []
    for ax, o0, size in zip(plan.axes, starts, shape, strict=True):
        if isinstance(ax, Keep):
            window.append((o0, o0 + size))
            local.append(ax)
        elif isinstance(ax, AxisWeights):
            w = ax.rows(slice(o0, o0 + size))
            lo, hi = w.window()
            if hi <= lo:
                return shape, None, None, None
            k = w.weights.shape[1]
            start = np.clip(w.start - lo, 0, max(hi - lo - k, 0))
            window.append((lo, hi))
            local.append(AxisWeights(start, w.weights, w.valid))
        else:
            window.append(None)
            local.append(None)
    warp = None
    if plan.warp is not None:
        warp = plan.warp.at(starts[-2], starts[-1])
        ww = _warp_window(warp, shape[-2:], kernel_radius(plan.kernel, plan.a))
        if ww is None:
            return shape, None, None, None
        window[-2:] = ww
    return shape, tuple(window), tuple(local), warp


# -- tasks (module level: picklable for distributed) -------------------------
def _full(shape: tuple[int, ...], fill, dtype) -> np.ndarray:
    return np.full(shape, fill, dtype=dtype)


def _resample_block(parts, cut, local, warp, warp_origin, shape, order, kernel, a, fill, dtype):
    """Concatenate the source chunks, cut the window, resample it: one output block."""
    single = parts
    while isinstance(single, list) and len(single) == 1:
        single = single[0]
    # one source chunk: a view of the window, no copy; several: join them, then cut
    src = single[cut] if not isinstance(single, list) else concatenate3(parts)[cut]
    return resample_window(src, local, warp, warp_origin, shape, order, kernel, a, fill, dtype)


def resample_window(src, local, warp, warp_origin, shape, order, kernel, a, fill, dtype):
    """Resample one source window with block-local specs (see :func:`_localise`).

    ``order`` lists the axes of the separable passes in the order to run them
    (the same for every block, so chunking never changes a result).
    """
    nearest = kernel == "nearest"
    work_dtype = src.dtype if nearest else dtype
    # Separable passes, the most shrinking axis first (Pillow: x before y when equal).
    seps = [k for k in order if isinstance(local[k], AxisWeights)]
    for k in seps:
        ax = local[k]
        src = np.take(src, ax.start, axis=k) if nearest else pass_axis(src, k, ax, work_dtype)
    if warp is not None:
        if nearest:
            src = warp2d_nearest(src, warp.m, shape[-2:], warp_origin, warp.n_src, fill, warp.start)
        else:
            src = warp2d(src, warp.m, shape[-2:], warp_origin, warp.n_src, warp.f, kernel, a, fill, dtype,
                         warp.start)
    elif not nearest:
        src = src.astype(dtype, copy=False)
    for k in seps:
        valid = local[k].valid
        if not valid.all():
            sel = [slice(None)] * src.ndim
            sel[k] = ~valid
            src[tuple(sel)] = fill
    return src


def _coverage_block(local, warp, shape):
    ok = np.ones(shape, dtype=bool)
    for k, ax in enumerate(local):
        if isinstance(ax, AxisWeights):
            idx = [None] * len(shape)
            idx[k] = slice(None)
            ok &= ax.valid[tuple(idx)]
    if warp is not None:
        inside = _warp_block_inside(warp, shape[-2:])
        if inside is None:  # the block straddles the field's edge: every pixel's source point
            u, v = warp_source_index(warp.m, shape[-2:], warp.start)
            ok &= (u >= -0.5 - EDGE_TOL) & (u <= warp.n_src[0] - 0.5 + EDGE_TOL)
            ok &= (v >= -0.5 - EDGE_TOL) & (v <= warp.n_src[1] - 0.5 + EDGE_TOL)
        elif not inside:
            ok[...] = False
    return ok


def _warp_block_inside(w: Warp, shape: tuple[int, int], margin: float = 1e-3) -> bool | None:
    """True (False) when every pixel of a warp block maps inside (outside) the field, None when it may straddle.

    The map is affine and the field convex: the block's four corners decide, with ``margin`` source
    samples (far above rounding) kept from the edge, so the answer is the per-pixel one.
    """
    gi = w.start[0] + np.array([0.0, 0.0, shape[0] - 1, shape[0] - 1])
    gj = w.start[1] + np.array([0.0, shape[1] - 1, 0.0, shape[1] - 1])
    corners = [(w.m[r, 0] * gi + w.m[r, 2]) + w.m[r, 1] * gj for r in range(2)]
    lo = [-0.5 - EDGE_TOL, -0.5 - EDGE_TOL]
    hi = [w.n_src[0] - 0.5 + EDGE_TOL, w.n_src[1] - 0.5 + EDGE_TOL]
    if all(np.all(c >= a + margin) and np.all(c <= b - margin) for c, a, b in zip(corners, lo, hi, strict=True)):
        return True
    if any(np.all(c < a - margin) or np.all(c > b + margin) for c, a, b in zip(corners, lo, hi, strict=True)):
        return False
    return None


# -- graph builders --------------------------------------------------------------
def _source_keys(src: da.Array, window: tuple[tuple[int, int], ...]):
    """Nested list of the source chunk keys overlapping ``window`` and the cut within them."""
    ranges, cut = [], []
    for (lo, hi), chunks in zip(window, src.chunks, strict=True):
        bounds = np.cumsum((0,) + tuple(chunks))
        c0 = int(np.searchsorted(bounds, lo, side="right")) - 1
        c1 = int(np.searchsorted(bounds, hi, side="left"))
        ranges.append(range(c0, c1))
        cut.append(slice(lo - int(bounds[c0]), hi - int(bounds[c0])))

    def nest(prefix, rest):
        if not rest:
            return (src.name, *prefix)
        return [nest(prefix + (c,), rest[1:]) for c in rest[0]]

    return nest((), ranges), tuple(cut)


def _pass_order(plans: Plan | Sequence[Plan], src_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The axes of the separable passes (of any plan), the most shrinking first (Pillow: x before y when equal)."""
    plans = [plans] if isinstance(plans, Plan) else list(plans)
    seps = {k for p in plans for k, ax in enumerate(p.axes) if isinstance(ax, AxisWeights)}
    shape = plans[0].out_shape
    return tuple(sorted(seps, key=lambda k: (shape[k] / src_shape[k], -k)))


def _plan_of(plans: Plan | Sequence[Plan], index: tuple[int, ...]) -> Plan:
    """The plan of an output block: the one plan, or (one plan per slice) that of the block's slice."""
    return plans if isinstance(plans, Plan) else plans[index[0]]


def resample_array(src: da.Array, plans: Plan | Sequence[Plan], out_chunks: tuple[tuple[int, ...], ...]) -> da.Array:
    """The lazy resampled array: one task per output chunk reading only its source window.

    ``plans`` is one :class:`Plan`, or one per index of the first axis (a
    slice's own transform, e.g. its drift), which ``out_chunks`` then cut in
    blocks of one.
    """
    plan0 = _plan_of(plans, (0,))
    name = "resample-" + tokenize(src, plans, out_chunks)
    order = _pass_order(plans, src.shape)
    dsk = {}
    for index in itertools.product(*(range(len(c)) for c in out_chunks)):
        plan = _plan_of(plans, index)
        shape, window, local, warp = _localise(plan, index, out_chunks)
        key = (name, *index)
        if window is None:
            dsk[key] = (_full, shape, plan.fill, plan.dtype)
            continue
        parts, cut = _source_keys(src, window)
        origin = (window[-2][0], window[-1][0]) if warp is not None else (0, 0)
        dsk[key] = (_resample_block, parts, cut, local, warp, origin, shape, order, plan.kernel, plan.a, plan.fill, plan.dtype)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[src])
    return da.Array(graph, name, chunks=out_chunks, dtype=plan0.dtype)


#: Output pixels a thread of :func:`resample_numpy` takes at least (smaller outputs: one call, no thread).
EAGER_BAND = 1 << 21


def resample_numpy(src: np.ndarray, plans: Plan | Sequence[Plan], threads: int | None = None) -> np.ndarray:
    """The resampled array of an in-memory source, without dask.

    The output is cut into bands (at least :data:`EAGER_BAND` pixels each and
    at most one per thread, ``threads``, default the CPU count): along its
    second-to-last axis for one :class:`Plan`, along the first for one plan
    per slice.  Each band runs the kernels of :func:`resample_window` on its
    source window (a view) and is written in place, the bands in parallel
    (the kernels release the GIL).  A band is an output chunk: the result is
    the lazy one's, bit for bit.
    """
    plan0 = _plan_of(plans, (0,))
    shape = plan0.out_shape
    axis = max(len(shape) - 2, 0) if isinstance(plans, Plan) else 0
    n_threads = threads or cores()
    bands = max(1, min(n_threads, math.prod(shape) // EAGER_BAND, shape[axis]))
    if not isinstance(plans, Plan):
        bands = shape[0]  # a slice a block (its own plan); the blocks are shared among the threads
    edges = np.linspace(0, shape[axis], bands + 1).round().astype(int)
    out_chunks = tuple(tuple(np.diff(edges).tolist()) if k == axis else (n,) for k, n in enumerate(shape))
    order = _pass_order(plans, src.shape)

    def band(b: int) -> np.ndarray:
        index = tuple(b if k == axis else 0 for k in range(len(shape)))
        plan = _plan_of(plans, index)
        bshape, window, local, warp = _localise(plan, index, out_chunks)
        if window is None:
            return np.full(bshape, plan.fill, dtype=plan.dtype)
        origin = (window[-2][0], window[-1][0]) if warp is not None else (0, 0)
        cut = tuple(slice(lo, hi) for lo, hi in window)
        return resample_window(src[cut], local, warp, origin, bshape, order, plan.kernel, plan.a, plan.fill, plan.dtype)

    if bands == 1:
        return band(0)
    out = np.empty(shape, dtype=plan0.dtype)

    def store(b: int) -> None:
        out[tuple(slice(edges[b], edges[b + 1]) if k == axis else slice(None) for k in range(out.ndim))] = band(b)

    thread_map(store, range(bands), workers=max(1, min(n_threads, bands, math.prod(shape) // EAGER_BAND)))
    return out


def coverage_array(plans: Plan | Sequence[Plan], out_chunks: tuple[tuple[int, ...], ...]) -> da.Array:
    """Lazy boolean array: True where the output sample's source point lies in the field (plans as
    :func:`resample_array`)."""
    name = "coverage-" + tokenize(plans, out_chunks)
    dsk = {}
    for index in itertools.product(*(range(len(c)) for c in out_chunks)):
        plan = _plan_of(plans, index)
        starts, shape = _block_extent(out_chunks, index)
        local = tuple(ax.rows(slice(o, o + s)) if isinstance(ax, AxisWeights) else ax
                      for ax, o, s in zip(plan.axes, starts, shape, strict=True))
        warp = None if plan.warp is None else plan.warp.at(starts[-2], starts[-1])
        dsk[(name, *index)] = (_coverage_block, local, warp, shape)
    return da.Array(HighLevelGraph.from_collections(name, dsk, dependencies=[]), name, chunks=out_chunks, dtype=bool)


def warp_row_intervals(w: Warp, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per output row ``i``, the columns ``[jlo, jhi)`` whose source point is inside the field.

    Exact (half-plane intersection per row), O(rows): tells without touching
    data whether a warp covers any or every output pixel.
    """
    i = np.arange(shape[0], dtype=np.float64)
    jlo = np.zeros(shape[0])
    jhi = np.full(shape[0], float(shape[1] - 1))
    for axis in range(2):
        c = w.m[axis, 0] * i + w.m[axis, 2]
        s = w.m[axis, 1]
        lo_b, hi_b = -0.5 - EDGE_TOL, w.n_src[axis] - 0.5 + EDGE_TOL
        if abs(s) < 1e-15:
            inside = (c >= lo_b) & (c <= hi_b)
            jhi = np.where(inside, jhi, -1.0)
            continue
        a1, a2 = (lo_b - c) / s, (hi_b - c) / s
        jlo = np.maximum(jlo, np.minimum(a1, a2))
        jhi = np.minimum(jhi, np.maximum(a1, a2))
    return np.ceil(jlo - 1e-9).astype(np.int64), np.floor(jhi + 1e-9).astype(np.int64) + 1
