"""What one block task of the phantom computes: the scene it reads and the numpy kernels.

A :class:`Scene` holds every number a block needs besides the particle list (grids,
the EDS-to-SIMS pull, the drift, the blur and the count tables), as plain picklable
values; each kernel draws one dask block of :func:`pfibsims.synthetic.cathode` from
it, over the block plus a halo, so blocks need no neighbours and any chunking gives
the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._engine.smooth import gaussian
from .noise import poisson_counts
from .particles import Lattice, Particles, query, render


@dataclass(frozen=True)
class Scene:
    """Everything a block task needs besides the particles (plain numbers, picklable)."""

    z: tuple[float, ...]
    eds_origin: tuple[float, float]
    eds_spacing: tuple[float, float]
    sims_origin: tuple[float, float]
    sims_spacing: tuple[float, float]  # reported
    pull: tuple[tuple[float, float, float], tuple[float, float, float]]  # p = L q + o (rows of T^-1)
    drift: tuple[tuple[float, float], ...]
    ss: int
    eds_sigma: float  # px
    eds_halo: int
    sims_sigma: float  # SIMS px
    sims_halo: int
    eds_table: tuple[tuple[float, ...], ...]  # per channel, counts per phase
    sims_table: tuple[tuple[float, float], ...]  # per channel, (background, gain)
    depletion_depth: float
    li_levels: tuple[tuple[str, float], ...]  # Li signal per phase: yield x concentration

    def eds_lattice(self, rows: tuple[int, int], cols: tuple[int, int], ss: int, halo: int) -> Lattice:
        (oy, ox), (dy, dx) = self.eds_origin, self.eds_spacing
        f = 0.5 / ss - 0.5
        return Lattice(
            (oy + f * dy, ox + f * dx), (dy / ss, 0.0), (0.0, dx / ss),
            (rows[0] - halo) * ss, (rows[1] - rows[0] + 2 * halo) * ss,
            (cols[0] - halo) * ss, (cols[1] - cols[0] + 2 * halo) * ss,
        )

    def sims_lattice(self, k: int, rows: tuple[int, int], cols: tuple[int, int]) -> Lattice:
        """EDS-frame points seen by SIMS pixels (sub-sampled, with halo) in slice ``k``."""
        (l0, l1, o0), (l2, l3, o1) = self.pull
        qy = self.sims_origin[0] - self.drift[k][0]
        qx = self.sims_origin[1] - self.drift[k][1]
        sy, sx = self.sims_spacing
        step_i = (l0 * sy, l2 * sy)
        step_j = (l1 * sx, l3 * sx)
        f = 0.5 / self.ss - 0.5
        p0 = (l0 * qy + l1 * qx + o0 + f * (step_i[0] + step_j[0]), l2 * qy + l3 * qx + o1 + f * (step_i[1] + step_j[1]))
        ss, h = self.ss, self.sims_halo
        return Lattice(
            p0, (step_i[0] / ss, step_i[1] / ss), (step_j[0] / ss, step_j[1] / ss),
            (rows[0] - h) * ss, (rows[1] - rows[0] + 2 * h) * ss,
            (cols[0] - h) * ss, (cols[1] - cols[0] + 2 * h) * ss,
        )


# -- numpy kernels (one block in, one block out) ------------------------------
def _draw(particles: Particles, scene: Scene, k: int, lattice: Lattice) -> tuple[np.ndarray, np.ndarray]:
    z = scene.z[k]
    ylo, yhi, xlo, xhi = lattice.bounds()
    ids = query(particles, (z, z, ylo, yhi, xlo, xhi))
    return render(particles, ids, z, lattice, depletion_depth=scene.depletion_depth, li_levels=dict(scene.li_levels))


def _bin(a: np.ndarray, ss: int) -> np.ndarray:
    """Mean over ``ss x ss`` sub-pixels, summed in a fixed order (bit-reproducible)."""
    if ss == 1:
        return a.astype(np.float64, copy=False)
    acc = a[0::ss, 0::ss].astype(np.float64)
    for s in range(ss):
        for t in range(ss):
            if s or t:
                acc += a[s::ss, t::ss]
    return acc / (ss * ss)


def _blur(a: np.ndarray, sigma: float, halo: int, out: np.ndarray | None = None) -> np.ndarray:
    """Gaussian probe blur (sigma in px) of a halo-padded float64 array, without the halo.

    The one smoother (:func:`pfibsims._engine.smooth.gaussian`, kernel radius ``halo``)
    cropped by ``halo``, so the crop never sees the boundary mode; written into
    ``out`` (float32 or float64) if given.
    """
    full = gaussian(np.asarray(a, dtype=np.float64), sigma, radius=halo) if sigma > 0 else a
    kept = full[halo : a.shape[0] - halo, halo : a.shape[1] - halo]
    if out is None:
        return np.array(kept, dtype=np.float64)
    out[...] = kept
    return out


def _location(block_info: dict) -> list[tuple[int, int]]:
    return block_info[0]["array-location"]


def eds_field(base: np.ndarray, particles: Particles, scene: Scene, block_info: Any = None) -> np.ndarray:
    """Phase and Li of one EDS block on its halo-padded (sub-sampled) lattice: (2, z, Y, X)
    float32. One drawing feeds every channel of the block and, at ``supersample == 1``, the truth."""
    (z0, z1), rows, cols = _location(block_info)
    lattice = scene.eds_lattice(rows, cols, scene.ss, scene.eds_halo)
    out = np.empty((2, z1 - z0, lattice.ni, lattice.nj), dtype=np.float32)
    for k in range(z0, z1):
        out[:, k - z0] = _draw(particles, scene, k, lattice)
    return out


def eds_truth(base: np.ndarray, field: np.ndarray | None, particles: Particles, scene: Scene, block_info: Any = None) -> np.ndarray:
    """Truth phase and Li at the voxel centres of one EDS block: (2, z, y, x) float32 (the
    field cropped, or drawn again without sub-samples when ``supersample > 1``)."""
    if field is not None:
        h = scene.eds_halo
        return field[:, :, h : field.shape[2] - h, h : field.shape[3] - h]
    (z0, z1), rows, cols = _location(block_info)
    out = np.empty((2, *base.shape), dtype=np.float32)
    for k in range(z0, z1):
        out[:, k - z0] = _draw(particles, scene, k, scene.eds_lattice(rows, cols, 1, 0))
    return out


def eds_counts(
    base: np.ndarray, phase: np.ndarray, c: int, scene: Scene, key: int, shape: tuple[int, int, int], dtype: Any,
    block_info: Any = None,
) -> np.ndarray:
    """Counts of EDS channel ``c`` in one block: expected counts of the block's padded phase
    field, binned, blurred, cropped, then Poisson noise from the global voxel indices."""
    counts = np.asarray(scene.eds_table[c], dtype=np.float64)
    lam = np.empty(base.shape, dtype=np.float32)
    for k in range(base.shape[0]):
        _blur(_bin(counts[phase[k].astype(np.intp)], scene.ss), scene.eds_sigma, scene.eds_halo, out=lam[k])
    return noise(lam, key, shape, dtype, block_info)


def sims_expected(base: np.ndarray, particles: Particles, scene: Scene, block_info: Any = None) -> np.ndarray:
    """Expected SIMS counts of one block: (channel, z, y, x) float32."""
    (z0, z1), rows, cols = _location(block_info)
    out = np.empty((len(scene.sims_table), z1 - z0, rows[1] - rows[0], cols[1] - cols[0]), dtype=np.float32)
    for k in range(z0, z1):
        _, li = _draw(particles, scene, k, scene.sims_lattice(k, rows, cols))
        li = _blur(_bin(li, scene.ss), scene.sims_sigma, scene.sims_halo)
        for c, (background, gain) in enumerate(scene.sims_table):
            out[c, k - z0] = background + gain * li
    return out


def noise(lam: np.ndarray, key: int, shape: tuple[int, int, int], dtype: Any, block_info: Any = None) -> np.ndarray:
    """Poisson counts of one block, from the global voxel indices (chunking-independent)."""
    start = tuple(lo for lo, _ in _location(block_info))
    return poisson_counts(lam, key, start, shape, dtype)


def percent(phase: np.ndarray, li: np.ndarray, *, yields: np.ndarray) -> np.ndarray:
    """The Li concentration (at. %) of a truth block: the signal over the yield of each voxel's phase."""
    return (li / yields[phase.astype(np.intp)]).astype(np.float32)
