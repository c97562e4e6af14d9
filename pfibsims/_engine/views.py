"""Reduced views for every step that estimates (drift, registration, thresholds): one pixel budget.

* :func:`block_factor` and :func:`dask_block_mean` -- ``f x f`` in-plane block means of
  a dask array, chunk by chunk, with no re-chunking (the xarray face is
  :func:`pfibsims._xr.block_mean`);
* :func:`sample_tiles` -- tiles spread evenly over a volume, for a sample of its voxels.

``MAX_PIXELS`` is the one budget: an estimate works on at most about that many
pixels a slice (and a voxel sample on ``SAMPLE_SLICES`` slices' worth).
"""

from __future__ import annotations

import itertools
import math
from functools import partial

import dask.array as da
import numpy as np
from dask.array.overlap import ensure_minimum_chunksize

from .numba import compiled, njit

__all__ = ["MAX_PIXELS", "SAMPLE_SLICES", "block_factor", "check_max_pixels", "dask_block_mean", "sample_tiles"]

#: Largest in-plane size (pixels a slice) an estimate works on; larger fields are reduced
#: to block means first.  At 700 um (8600^2 EDS px) a 39-slice persisted view of both
#: modalities at this size is a few hundred MB.
MAX_PIXELS = 1024 * 1024

#: A voxel sample (e.g. for classification thresholds) holds at most this many slices' worth
#: of ``MAX_PIXELS``.
SAMPLE_SLICES = 2


def check_max_pixels(max_pixels: object, name: str = "max_pixels") -> int:
    """``max_pixels`` as an int of at least 64, or a PfibsimsError naming it."""
    from ..errors import PfibsimsError

    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 64:
        raise PfibsimsError(f"{name}: expected an integer of at least 64 (pixels a slice), got {max_pixels!r}")
    return int(max_pixels)


def block_factor(ny: int, nx: int, max_pixels: int) -> int:
    """The block side ``f`` for which ``(ny / f) * (nx / f) <= max_pixels`` (1: no reduction)."""
    return max(1, math.ceil(math.sqrt(ny * nx / max_pixels)))


#: Blocks of fewer than this many integers of up to 32 bits sum exactly in float64 (2^53 / 2^32).
_EXACT_BLOCK = 2**21


def _owned(chunks: tuple[int, ...], f: int, n: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per chunk along one axis: the offset of its first block start from the chunk start, and its block count.

    A chunk *owns* the full blocks (``f`` pixels, ``f * b + f <= n``) that start inside it.
    """
    starts = np.cumsum((0, *chunks[:-1]))
    first = [(-o) % f for o in starts]
    counts = [len(range(o + s, min(o + c, n - f + 1), f)) for o, c, s in zip(starts, chunks, first, strict=True)]
    return tuple(first), tuple(counts)


def _block_means(block: np.ndarray, *, f: int, axes: tuple[int, int], first: tuple, counts: tuple,
                 block_id: tuple[int, ...] | None = None) -> np.ndarray:
    """Block means (float32) of the blocks one chunk owns; ``block`` carries ``f - 1`` pixels of its next chunk."""
    index = [slice(None)] * block.ndim
    shape = list(block.shape)
    for ax, s, c in zip(axes, first, counts, strict=True):
        k = block_id[ax]
        index[ax] = slice(s[k], s[k] + c[k] * f)
        shape[ax] = c[k]
    part = block[tuple(index)]
    if compiled() and part.dtype.kind in "biu" and part.dtype.itemsize <= 4 and f * f < _EXACT_BLOCK and tuple(
            axes) == (part.ndim - 2, part.ndim - 1) and part.ndim >= 2:
        # integer counts: every float64 sum of f^2 values is exact, so the compiled loop is numpy's mean
        lead = part.shape[:-2]
        flat = part.reshape((math.prod(lead),) + part.shape[-2:])
        out = np.empty((flat.shape[0], shape[-2], shape[-1]), dtype=np.float32)
        _int_block_means(flat.view(np.uint8) if flat.dtype == bool else flat, f, out)
        return out.reshape(tuple(lead) + (shape[-2], shape[-1]))
    split, reduce_axes = [], []
    for ax, n in enumerate(shape):
        split.append(n)
        if ax in axes:
            split.append(f)
            reduce_axes.append(len(split) - 1)
    return part.reshape(split).mean(axis=tuple(reduce_axes), dtype=np.float64).astype(np.float32)


@njit(nogil=True, cache=True)
def _int_block_means(part, f, out):  # pragma: no cover - compiled
    """``out[p, i, j]`` = the mean of the ``f x f`` block ``(i, j)`` of ``part[p]`` (integers), in float32.

    Summed in float64: exact for integers of up to 32 bits and ``f^2 < 2^21``, so equal to numpy's mean
    whatever the order; divided by ``f^2`` as numpy does, then rounded to float32.
    """
    n = np.float64(f * f)
    width = out.shape[2] * f
    rows = np.zeros(width, dtype=np.float64)
    for p in range(out.shape[0]):
        for i in range(out.shape[1]):
            rows[:] = 0.0
            for r in range(i * f, i * f + f):  # column sums of the block row (a vectorised loop)
                row = part[p, r, :width]
                for c in range(width):
                    rows[c] += np.float64(row[c])
            for j in range(out.shape[2]):
                s = 0.0
                for c in range(j * f, j * f + f):
                    s += rows[c]
                out[p, i, j] = np.float32(s / n)


def dask_block_mean(data: da.Array, f: int, axes: tuple[int, int]) -> da.Array:
    """Lazy ``f x f`` block means without re-chunking: each chunk reduces the blocks it owns, reading
    only ``f - 1`` pixels of its next chunk along each axis (a one-sided halo)."""
    small = {ax: ensure_minimum_chunksize(f - 1, data.chunks[ax]) for ax in axes if min(data.chunks[ax]) < f - 1}
    if small:  # as map_overlap would do: every chunk at least as large as the halo
        data = data.rechunk(small)
    owned = [_owned(data.chunks[ax], f, data.shape[ax]) for ax in axes]
    depth = {ax: (0, f - 1) for ax in axes}
    chunks = tuple(owned[axes.index(ax)][1] if ax in axes else c for ax, c in enumerate(data.chunks))
    func = partial(_block_means, f=f, axes=axes, first=tuple(o[0] for o in owned), counts=tuple(o[1] for o in owned))
    return da.map_overlap(func, data, depth=depth, boundary="none", trim=False, chunks=chunks, dtype=np.float32)


# -- voxel samples --------------------------------------------------------------------
# -- the threshold sample ------------------------------------------------------------------
#: In-plane side of a sample tile, px (a tile is one slice thick).
SAMPLE_TILE = 256


def sample_tiles(shape: tuple[int, int, int], budget: int) -> list[tuple[slice, ...]]:
    """Tiles of a (z, y, x) volume spread evenly over it, about ``budget`` voxels in all.

    The whole volume when it holds at most ``budget`` voxels; otherwise tiles
    one slice thick and ``SAMPLE_TILE`` px square (or the whole side), as many
    per axis as keep the total within ``budget`` and the spacing alike in
    proportion on every axis, centred in equal parts of the volume.  Depends
    on the shape only, never on the chunks, so eager and lazy data give the
    same sample.

    Examples
    --------
    >>> sample_tiles((2, 8, 8), 1000)
    [(slice(0, 2, None), slice(0, 8, None), slice(0, 8, None))]
    >>> len(sample_tiles((39, 8600, 8600), 1 << 21))  # 3 x 3 x 3 tiles of 256^2 px
    27
    """
    if math.prod(shape) <= budget:
        return [tuple(slice(0, n) for n in shape)]
    tile = (1, min(shape[1], SAMPLE_TILE), min(shape[2], SAMPLE_TILE))
    cap = [max(1, n // t) for n, t in zip(shape, tile, strict=True)]
    most = max(1, budget // math.prod(tile))
    frac = min(1.0, most / math.prod(cap))
    free = [c > 1 for c in cap]
    k = [max(1, int(c * frac ** (1 / max(sum(free), 1)))) if f else 1 for c, f in zip(cap, free, strict=True)]
    while math.prod(k) > most:  # a guess above the budget: thin the axis with the densest tiles
        a = max((a for a in range(3) if k[a] > 1), key=lambda a: (k[a] / cap[a], a))
        k[a] -= 1
    while True:  # grow the axis with the widest spacing while the budget allows
        grow = [a for a in range(3) if k[a] < cap[a] and math.prod(k) // k[a] * (k[a] + 1) <= most]
        if not grow:
            break
        a = max(grow, key=lambda a: (cap[a] / k[a], -a))
        k[a] += 1
    starts = [
        [min(max(int((q + 0.5) * n / kk - t / 2), 0), n - t) for q in range(kk)]
        for n, t, kk in zip(shape, tile, k, strict=True)
    ]
    return [tuple(slice(s, s + t) for s, t in zip(p, tile, strict=True)) for p in itertools.product(*starts)]
