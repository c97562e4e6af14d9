"""Gaussian smoothing and labelling of channels in one pass, streamed slab by slab.

Numpy/numba layer of :func:`pfibsims.segmentation.classify_phases`:

* the kernel is the one Gaussian of :mod:`pfibsims._engine.smooth`
  (:func:`~pfibsims._engine.smooth.gaussian_half`, ``truncate=4.0``);
* :func:`label_window` smooths a window of every channel (:mod:`.smoothing`:
  separable, scipy's float32 values to the bit; next to a NaN the normalised
  convolution of :func:`~pfibsims._engine.smooth.gaussian`, as the class
  sample does), gives each voxel the class of its partial-volume nearest
  centroid and that class's label, one output slice at a time: no smoothed
  volume is ever held, only a few planes;
* :func:`label_array` builds the dask graph that feeds it.

Streaming plan (why the graph looks as it does).  An output slab (``s``
slices of one in-plane chunk) needs its own input chunks, ``r_z`` slices
above and below (z halo) and ``r_y``/``r_x`` pixels of the eight in-plane
neighbour chunks (in-plane halo).  If those came from the same chunk tasks as
the neighbours' own data, each chunk would have to stay in memory until every
neighbour slab had run, and dask would hold about a row of chunks across the
field and the whole depth.  Instead every big input chunk has a single
consumer: a slab task reads its own chunks and its z halo itself (the
chunks' read tasks are inlined into it, see :class:`_Inliner`), and its
in-plane halo comes from the *frames* (the outer ``r`` rows and columns, a
few kB) of the neighbour chunks, cut by one task per chunk that reads the
chunk again.  Only frames are shared, so the peak memory is
a few slabs per thread whatever the field or the number of slices; the price
is reading each input chunk about ``2 + 2 r_z / s`` times (once for its own
slab, once for its frames, and for the slices next to a slab boundary once
more as a z halo).  For a Zarr store, reading is cheap next to keeping a
row of the field in memory.
"""

from __future__ import annotations

import itertools
from typing import Any

import dask.array as da
import numpy as np
from dask._task_spec import Alias, DataNode, Task, convert_legacy_graph, parse_input
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from .._engine.numba import njit
from .smoothing import smooth_slice, smooth_window

__all__ = ["label_array", "label_window", "pad_window", "prepare", "smooth_window"]

#: Voxels per channel an output slab aims at (its depth is this over the in-plane chunk area).
SLAB_VOXELS = 1 << 24

#: The share of a two-class mixture a *yielding* class needs to take the voxel (0.5 for the others).
#: A layer thinner than the probe (the 50-100 nm Al2O3 coating under a 100 nm EDS probe) has a
#: blurred centroid among its neighbours' mixtures and would otherwise take their edges; 0.65 was
#: chosen on the cathode phantom (precision and recall of every phase, tests/segmentation).
YIELD_SHARE = 0.65

#: In-plane chunks larger than this are split (a slab of a whole 8600^2 slice would not stream) ...
MAX_TILE = 4096

#: ... into chunks this wide.
SPLIT_TILE = 1024

#: Relative margin of the labeller's filter (in :func:`_label_row`), a million times the float64 rounding
#: (about 1e-15 a channel) of the quantities it compares; a voxel within it of a decision takes the full test.
_FILTER_TOL = 1e-9


@njit(nogil=True, cache=True, inline="always")
def _segment(x, db, a, b, diff, base, inv2, span2, need, best, win):  # pragma: no cover - compiled
    """The segment from centroid ``b`` to ``a``: if ``x`` is nearer to it than ``best``, its nearer end's class."""
    t = -base[a, b]  # (x - c_b) . (c_a - c_b), c_b . (c_a - c_b) precomputed
    for c in range(x.size):
        t += x[c] * diff[a, b, c]
    f = min(max(t * inv2[a, b], 0.0), 1.0)
    r = db - 2.0 * f * t + f * f * span2[a, b]
    if r < best:
        return r, (a if f >= need[a, b] else b)
    return best, win


@njit(nogil=True, cache=True)
def _label_row(sm, y, centres, diff, base, inv2, span2, lut, need, clear, scale, d2, out):  # pragma: no cover - compiled
    """Labels of row ``y`` of the smoothed channels ``sm`` (channel, y, x): the partial-volume nearest centroid."""
    m, nc = centres.shape
    nx = out.size
    x = np.empty(nc, np.float64)
    s0, s1 = scale[0], scale[1]
    for j in range(m):  # squared distances to every centroid, a row at a time (vectorised over x)
        dj = d2[j]
        dj[:] = 0.0
        for c in range(nc):
            e = centres[j, c]
            row = sm[c, y]
            for i in range(nx):
                v = np.float64(row[i]) - e
                dj[i] += v * v
    for i in range(nx):
        if not d2[0, i] == d2[0, i]:  # a non-finite channel: NaN distances, label 0
            continue
        i0 = i1 = i2 = -1  # the three nearest centroids, nearest first; ties to the lower index
        for j in range(m):
            v = d2[j, i]
            if i0 < 0 or v < d2[i0, i]:
                i0, i1, i2 = j, i0, i1
            elif i1 < 0 or v < d2[i1, i]:
                i1, i2 = j, i1
            elif i2 < 0 or v < d2[i2, i]:
                i2 = j
        best, win = d2[i0, i], i0
        if i1 < 0:
            out[i] = lut[win]
            continue
        # The filter (most voxels): the full test surely gives i0 when both segments from i0 end at i0 (f >= need,
        # i.e. d_b - d_0 >= clear[i0, b]: the law of cosines, t = (d_b - d_a + |c_a - c_b|^2) / 2, gives each share
        # from the squared distances) and the far segment's line (i1 to i2) is farther than i0; each comparison with
        # a margin tol far above the rounding of either evaluation. Written out here: as a called function, even
        # inlined, it cost the kernel twice the time (measured).
        v1 = d2[i1, i]
        tol = s0 * (best + s1)
        if v1 - best >= clear[i0, i1] + tol:
            if i2 < 0:
                out[i] = lut[win]
                continue
            v2 = d2[i2, i]
            t = 0.5 * (v2 - v1 + span2[i1, i2])
            if v2 - best >= clear[i0, i2] + tol and v2 - t * t * inv2[i1, i2] >= best + tol:
                out[i] = lut[win]
                continue
        for c in range(nc):
            x[c] = sm[c, y, i]
        best, win = _segment(x, d2[i1, i], i0, i1, diff, base, inv2, span2, need, best, win)
        if i2 >= 0:
            best, win = _segment(x, d2[i2, i], i0, i2, diff, base, inv2, span2, need, best, win)
            best, win = _segment(x, d2[i2, i], i1, i2, diff, base, inv2, span2, need, best, win)
        out[i] = lut[win]


@njit(nogil=True, cache=True)
def _label_window(win, depth, wz, wy, wx, centres, diff, base, inv2, span2, lut, need, clear, scale):  # pragma: no cover - compiled
    nc, _, yw, xw = win.shape
    m = centres.shape[0]
    ny, nx = yw - 2 * (wy.size - 1), xw - 2 * (wx.size - 1)
    out = np.zeros((depth, ny, nx), np.uint8)
    zp = np.empty((yw, xw), np.float32)
    yp = np.empty((ny, xw), np.float32)
    sm = np.empty((nc, ny, nx), np.float32)
    d2 = np.empty((m, nx), np.float64)
    none = np.empty((0, 0))
    bufs = (none, none, none, none, none, none)
    for o in range(depth):
        bufs = smooth_slice(win, o, wz, wy, wx, zp, yp, sm, bufs)
        for y in range(ny):
            _label_row(sm, y, centres, diff, base, inv2, span2, lut, need, clear, scale, d2, out[o, y])
    return out


def label_window(win: np.ndarray, *, depth: int, weights: tuple, centres: Any, labels: Any,
                 yields: Any = None) -> np.ndarray:
    """uint8 labels of the ``depth`` central slices of ``win`` (channel, z, y, x), halos included.

    ``win`` holds, per channel, the output slab with ``len(w) - 1`` voxels of
    halo on each side of each axis (``nearest`` padding at the faces of the
    field, see :func:`pad_window`). Each voxel's smoothed channels ``x``
    (float32, as scipy smooths float32) take the class of a partial-volume
    nearest centroid, in float64: among the three centroids nearest to ``x``
    (ties to the lower index), the nearest point of their centroids and of
    the segments between two of them; on a segment from ``b`` to ``a`` the
    point ``b + f (a - b)`` goes to ``a`` when ``f >= 0.5`` (the class with
    the larger share of a two-class mixture, as the probe blur makes at
    every boundary), else ``b``; a *yielding* class (``yields[class]``)
    needs a share of :data:`YIELD_SHARE` against one that does not. The
    label is ``labels[class]``. Next to a non-finite value (a masked region,
    a missing tile) the smoothing is the normalised convolution of the class
    sample (:func:`.smoothing.smooth_window`): the voxel is labelled from its finite
    neighbours, and is 0 only when one of its own channels is not finite (or
    less than 1e-3 of the kernel weight in its reach is finite).
    Most voxels skip the segments' dot products: their squared distances
    alone show, with a margin far above rounding (:data:`_FILTER_TOL`), that
    the full test takes their nearest centroid (the same labels, to the voxel).

    Examples
    --------
    >>> win = np.zeros((2, 1, 1, 4)); win[0, 0, 0] = [0, 3, 6, 10]; win[1, 0, 0] = [10, 7, 4, 0]
    >>> one = (np.ones(1),) * 3
    >>> label_window(win, depth=1, weights=one, centres=[[0, 10], [10, 0]], labels=[1, 2])[0].tolist()
    [[1, 1, 2, 2]]
    """
    wz, wy, wx = (np.ascontiguousarray(w, dtype=np.float64) for w in weights)
    e = np.ascontiguousarray(centres, dtype=np.float64)
    diff = np.ascontiguousarray(e[:, None, :] - e[None, :, :])  # [a, b] = c_a - c_b
    span2 = (diff**2).sum(axis=2)
    base = np.einsum("bc,abc->ab", e, diff)  # c_b . (c_a - c_b)
    with np.errstate(divide="ignore"):
        inv2 = np.where(span2 > 0, 1.0 / span2, 0.0)  # two equal centroids: the segment is a point (f = 0)
    lut = np.ascontiguousarray(labels, dtype=np.uint8)
    weak = np.zeros(e.shape[0], dtype=bool) if yields is None else np.asarray(yields, dtype=bool)
    need = np.full((e.shape[0],) * 2, 0.5)  # the share of the nearer centroid a wins a mixture with
    need[np.ix_(weak, ~weak)] = YIELD_SHARE
    need[np.ix_(~weak, weak)] = 1.0 - YIELD_SHARE
    # the filter of _label_row: the d_b - d_a a segment from b to a needs to end at a (never, between equal
    # centroids: f = 0 there), and its margin, _FILTER_TOL x (channels + 5) x (d_0 + max |c|^2)
    clear = np.where(span2 > 0, (2.0 * need - 1.0) * span2, np.inf)
    scale = np.array([_FILTER_TOL * (e.shape[1] + 5), float((e**2).sum(axis=1).max())])
    return _label_window(np.ascontiguousarray(win), int(depth), wz, wy, wx, e, diff, base, inv2, span2, lut, need,
                         clear, scale)


def pad_window(block: np.ndarray, have: tuple[tuple[int, int], ...], r: tuple[int, ...]) -> np.ndarray:
    """Fill the halo of ``block`` (channel, z, y, x) that lies outside the field by ``nearest`` padding.

    ``have[a] = (lo, hi)``: the block's valid data along spatial axis ``a``
    spans ``block[..., lo:hi, ...]``; outside it, up to ``r[a]`` voxels each
    side, the edge value is repeated (in place, in-plane axes first so
    corners take the corner value).
    """
    for a in (2, 1, 0):
        lo, hi = have[a]
        ax = a + 1
        n = block.shape[ax]
        if lo > 0:
            edge = np.take(block, [lo], axis=ax)
            idx = [slice(None)] * block.ndim
            idx[ax] = slice(0, lo)
            block[tuple(idx)] = edge
        if hi < n:
            edge = np.take(block, [hi - 1], axis=ax)
            idx = [slice(None)] * block.ndim
            idx[ax] = slice(hi, n)
            block[tuple(idx)] = edge
    return block


# -- dask layer ------------------------------------------------------------------------------
def _frames(block: np.ndarray, ry: int, rx: int) -> tuple[np.ndarray, ...]:
    """The outer ``ry`` rows (top, bottom) and ``rx`` columns (left, right) of a chunk, copied."""
    b = np.asarray(block)
    return (
        b[:, :ry].copy(), b[:, b.shape[1] - ry:].copy(),
        b[:, :, :rx].copy(), b[:, :, b.shape[2] - rx:].copy(),
    )


def _place(dst: np.ndarray, parts: list, part_z0: int, zlo: int, zhi: int, cut: tuple = ()) -> None:
    """Copy ``[zlo, zhi)`` of consecutive z chunks (the first starts at ``part_z0``) into ``dst``, no temporary."""
    z = part_z0
    for part in parts:
        a, b = max(z, zlo), min(z + part.shape[0], zhi)
        if a < b:
            dst[a - zlo:b - zlo] = part[(slice(a - z, b - z), *cut)]
        z += part.shape[0]


#: The eight in-plane neighbours of a chunk, (dy, dx).
_DIRS = tuple(d for d in itertools.product((-1, 0, 1), repeat=2) if d != (0, 0))

#: The frames of a chunk, in the order :func:`_frames` returns them.
_TOP, _BOTTOM, _LEFT, _RIGHT = range(4)


def _slab_task(own, below, above, frames, geom, weights, params, dtype):
    """Assemble the halo window of one slab for every channel and label it (one dask task)."""
    (z0, z1, zlo, zhi, part_z0, frame_z0), r, (cy, cx) = geom
    rz, ry, rx = r
    nc = len(own)
    depth = z1 - z0
    win = np.empty((nc, depth + 2 * rz, cy + 2 * ry, cx + 2 * rx), dtype=dtype)
    zs = slice(rz - (z0 - zlo), rz - (z0 - zlo) + (zhi - zlo))  # window slices of [zlo, zhi)
    ysl = {-1: slice(0, ry), 0: slice(ry, ry + cy), 1: slice(ry + cy, 2 * ry + cy)}
    xsl = {-1: slice(0, rx), 0: slice(rx, rx + cx), 1: slice(rx + cx, 2 * rx + cx)}
    for c in range(nc):
        _place(win[c, zs, ry:ry + cy, rx:rx + cx], [*below[c], *own[c], *above[c]], part_z0, zlo, zhi)
        for (dy, dx), fr in zip(_DIRS, frames[c], strict=True):
            if not fr:  # no neighbour there (a face of the field), or no halo on that axis
                continue
            if dy:  # the neighbour's bottom rows (it is above) or top rows (below), and the columns needed
                which = _BOTTOM if dy == -1 else _TOP
                cut = (slice(None), slice(None) if dx == 0 else (slice(-rx, None) if dx == -1 else slice(0, rx)))
            else:  # the neighbour's right columns (it is on the left) or left columns
                which, cut = (_RIGHT if dx == -1 else _LEFT), ()
            _place(win[c, zs, ysl[dy], xsl[dx]], [f[which] for f in fr], frame_z0, zlo, zhi, cut)
    near = dict(zip(_DIRS, frames[0], strict=True))
    have = (
        (zs.start, zs.stop),
        (0 if near[(-1, 0)] else ry, win.shape[2] - (0 if near[(1, 0)] else ry)),
        (0 if near[(0, -1)] else rx, win.shape[3] - (0 if near[(0, 1)] else rx)),
    )
    pad_window(win, have, r)
    return label_window(win, depth=depth, weights=weights, **params)


def _chunk_range(bounds: np.ndarray, lo: int, hi: int) -> range:
    """Indices of the chunks (edges ``bounds``) overlapping ``[lo, hi)``."""
    if hi <= lo:
        return range(0)
    c0 = int(np.searchsorted(bounds, lo, side="right")) - 1
    c1 = int(np.searchsorted(bounds, hi, side="left"))
    return range(c0, c1)


def _slabs(zchunks: tuple[int, ...], area: int, rz: int) -> list[tuple[int, int]]:
    """Group whole z chunks into slabs of about ``SLAB_VOXELS / area`` slices: ``[(chunk0, chunk1), ...]``.

    At least ``2 rz`` slices deep, so that a slice is in the z halo of one other slab at most.
    """
    want = max(1, 2 * rz, SLAB_VOXELS // max(area, 1))
    out, start, depth = [], 0, 0
    for k, c in enumerate(zchunks):
        depth += c
        if depth >= want:
            out.append((start, k + 1))
            start, depth = k + 1, 0
    if start < len(zchunks):
        out.append((start, len(zchunks)))
    return out


def _fit(chunks: tuple[int, ...], r: int) -> tuple[int, ...]:
    """Chunks along one in-plane axis that stream: each at least ``r`` (a neighbour's frame), at most MAX_TILE."""
    if max(chunks) <= MAX_TILE and (len(chunks) == 1 or min(chunks) >= r):
        return chunks
    if len(chunks) > 1 and min(chunks[:-1]) >= r and max(chunks) <= MAX_TILE:  # only a thin last chunk: join it to the one before
        return (*chunks[:-2], chunks[-2] + chunks[-1])
    n = sum(chunks)
    size = min(n, max(SPLIT_TILE if max(chunks) > MAX_TILE else 64, 2 * r))
    out = [size] * (n // size) + ([n % size] if n % size else [])
    if len(out) > 1 and out[-1] < r:
        out[-2:] = [out[-2] + out[-1]]
    return tuple(out)


def prepare(arrays: list[da.Array], r: tuple[int, int, int]) -> list[da.Array]:
    """One in-plane chunking for all channels fit for streaming (see :func:`_fit`)."""
    base = arrays[0]
    chunks = (base.chunks[0], _fit(base.chunks[1], r[1]), _fit(base.chunks[2], r[2]))
    return [a.rechunk(chunks) for a in arrays]


def label_array(arrays: list[da.Array], *, weights: tuple, params: dict) -> da.Array:
    """Lazy uint8 labels of (z, y, x) channels sharing one chunking (see the module docstring).

    Output chunks: the input's in-plane chunks, and in z slabs of whole input
    z chunks about ``SLAB_VOXELS`` voxels deep (regular when the input's are).
    """
    r = tuple(w.size - 1 for w in weights)
    base = arrays[0]
    nz = base.shape[0]
    zb, yb, xb = (np.cumsum((0,) + tuple(c)) for c in base.chunks)
    nyc, nxc = len(base.chunks[1]), len(base.chunks[2])
    area = max(base.chunks[1]) * max(base.chunks[2])
    slabs = _slabs(base.chunks[0], area, r[0])
    dtype = np.result_type(*[a.dtype for a in arrays])
    token = tokenize([a.name for a in arrays], [w.tobytes() for w in weights], params)
    read = [_Inliner(a) for a in arrays]
    fname = "classify-frames-" + token
    name = "classify-phases-" + token
    dsk: dict = {}
    out_z = []
    for s, (k0, k1) in enumerate(slabs):
        z0, z1 = int(zb[k0]), int(zb[k1])
        out_z.append(z1 - z0)
        zlo, zhi = max(z0 - r[0], 0), min(z1 + r[0], nz)
        kb, ka = _chunk_range(zb, zlo, z0), _chunk_range(zb, z1, zhi)
        kf = _chunk_range(zb, zlo, zhi)
        for i, j in itertools.product(range(nyc), range(nxc)):
            own = [[rd((a.name, k, i, j)) for k in range(k0, k1)] for a, rd in zip(arrays, read, strict=True)]
            below = [[rd((a.name, k, i, j)) for k in kb] for a, rd in zip(arrays, read, strict=True)]
            above = [[rd((a.name, k, i, j)) for k in ka] for a, rd in zip(arrays, read, strict=True)]
            frames = []
            for c, (a, rd) in enumerate(zip(arrays, read, strict=True)):
                fr = []
                for dy, dx in _DIRS:
                    keys = []
                    if 0 <= i + dy < nyc and 0 <= j + dx < nxc and not ((dy and not r[1]) or (dx and not r[2])):
                        keys = [(fname, c, k, i + dy, j + dx) for k in kf]
                        for fk in keys:
                            if fk not in dsk:
                                dsk[fk] = Task(fk, _frames, rd((a.name, *fk[2:])), r[1], r[2])
                    fr.append([Alias(k) for k in keys])
                frames.append(fr)
            geom = (
                (z0, z1, zlo, zhi, int(zb[kb[0]]) if kb else z0, int(zb[kf[0]])),
                r,
                (int(yb[i + 1] - yb[i]), int(xb[j + 1] - xb[j])),
            )
            key = (name, s, i, j)
            args = (own, below, above, frames, geom, weights, params, dtype)
            dsk[key] = Task(key, _slab_task, *map(parse_input, args))
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=_unique(list(arrays)))
    return da.Array(graph, name, chunks=(tuple(out_z), base.chunks[1], base.chunks[2]), dtype=np.uint8)


class _Inliner:
    """Tasks that recompute a chunk of a dask array inside another task (its read, inlined).

    A chunk's task is copied with the chunk tasks it alone depends on
    substituted in turn (a private chain: a store read, a crop, a cast), down
    to the roots (for a Zarr store, the array object), so the task that
    embeds it reads the chunk itself when it runs: no such chunk is ever kept
    in the scheduler's memory between tasks.  A task that several chunks
    share (e.g. one large input chunk split by a rechunk) stays a task of its
    own, computed once.
    """

    def __init__(self, arr: da.Array) -> None:
        self.graph = convert_legacy_graph(dict(arr.__dask_graph__()))
        self.users: dict = {}
        for node in self.graph.values():
            for d in node.dependencies:
                self.users[d] = self.users.get(d, 0) + 1
        self.memo: dict = {}

    def _private(self, key) -> bool:
        return isinstance(key, tuple) and key in self.graph and self.users.get(key, 0) <= 1

    def __call__(self, key):
        if key not in self.memo:
            node = self.graph[key]
            if isinstance(node, Alias):
                out = self(node.target) if self._private(node.target) else Alias(node.target)
            elif isinstance(node, DataNode):
                out = node
            else:
                subs = {d: self(d) for d in node.dependencies if self._private(d)}
                out = node.substitute(subs) if subs else node
            self.memo[key] = out
        return self.memo[key]


def _unique(arrays: list[da.Array]) -> list[da.Array]:
    seen, out = set(), []
    for a in arrays:
        if a.name not in seen:
            seen.add(a.name)
            out.append(a)
    return out
