"""The phantom's microstructure: a seeded list of ellipsoidal particles in nm.

The cathode is a *Boolean model* with priorities: LLZTO particles first, then
Al2O3-coated LCO particles, then Super P (SP) carbon agglomerates, and a dense
matrix wherever none of them reaches.  Each family is a Poisson process of
axis-aligned ellipsoids whose number density is solved analytically so that the
expected volume fractions equal the requested ones (overlaps included):

* LLZTO: ``f1 = 1 - exp(-l1 E[V1])``;
* LCO cores: ``(1 - f1) (1 - exp(-l2 E[V2]))`` (a core beats any coating);
* Al2O3 (coatings): ``(1 - f1) (exp(-l2 E[V2]) - exp(-l2 E[V2c]))``, set by the
  coating thickness, not requested;
* SP: ``(1 - f1) exp(-l2 E[V2c]) (1 - exp(-l3 E[V3]))``.

The phase and the noise-free Li at any point are evaluated analytically by
:func:`render` from the particles that can reach it, found through a uniform
grid index (:func:`query`), so any region can be drawn alone and equals the
same region drawn as part of a larger one.

No xarray, no dask: numpy, with the drawing loops compiled by numba.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._engine.numba import njit
from ..errors import PfibsimsError

__all__ = [
    "FLAG_MEANINGS",
    "LI_LEVELS",
    "LI_PERCENT",
    "SIMS_YIELD",
    "PHASES",
    "Particles",
    "expected_fractions",
    "check_fractions",
    "generate",
    "li_levels",
    "make_particles",
    "query",
    "render",
]

#: Phase labels, in label order (label = index).
PHASES = ("matrix", "LLZTO", "LCO", "Al2O3", "SP")
FLAG_MEANINGS = " ".join(PHASES)
MATRIX, LLZTO, LCO, AL2O3, SP = range(5)

#: Default requested volume fractions (LCO = the cores; Al2O3 follows from the coatings).
DEFAULT_FRACTIONS = {"LLZTO": 0.35, "LCO": 0.35, "SP": 0.08}

#: The Li concentration truth, atomic percent. LLZTO from its formula Li6.4La3Zr1.4Ta0.6O12 (6.4 Li
#: of 23.4 atoms) deep inside, falling linearly to ``surface`` (Li lost to processing) at its surface;
#: LCO from LiCoO2 (about it: a per-particle gradient and radial term, a state of charge that varies);
#: a little Li in the coating, the carbon and the matrix.
LI_PERCENT = {"matrix": 5.0, "LLZTO_bulk": 100 * 6.4 / 23.4, "LLZTO_surface": 100 * 6.4 / 23.4 * 0.15 / 0.55,
              "LCO": 25.0, "Al2O3": 1.0, "SP": 0.5}

#: The matrix effect: the relative SIMS yield of Li in each phase (signal per atomic percent).
#: Li sputtered from LCO gives about twice the signal of the same Li from LLZTO.
SIMS_YIELD = {"matrix": 0.04, "LLZTO": 0.55 / LI_PERCENT["LLZTO_bulk"], "LCO": 0.04, "Al2O3": 0.03, "SP": 0.06}

#: Noise-free Li signal (dimensionless, what Li6 counts are proportional to above background):
#: ``SIMS_YIELD x LI_PERCENT`` of each phase (so that the default phantom is what it was before the
#: yield was separated from the concentration).
LI_LEVELS = {"matrix": 0.2, "LLZTO_bulk": 0.55, "LLZTO_surface": 0.15, "LCO": 1.0, "Al2O3": 0.03, "SP": 0.03}


def li_levels(sims_yield: dict[str, float] | None = None) -> dict[str, float]:
    """The Li signal of each phase for relative yields ``sims_yield`` (default :data:`SIMS_YIELD`).

    Examples
    --------
    >>> li_levels() == LI_LEVELS, li_levels({**SIMS_YIELD, "LLZTO": 0.04})["LLZTO_bulk"] > 1
    (True, True)
    """
    if sims_yield is None or sims_yield == SIMS_YIELD:
        return dict(LI_LEVELS)
    phase_of = {"LLZTO_bulk": "LLZTO", "LLZTO_surface": "LLZTO"}
    return {k: sims_yield[phase_of.get(k, k)] * v for k, v in LI_PERCENT.items()}


@dataclass(frozen=True)
class _Family:
    """Size law of one particle family (lengths in nm)."""

    phase: int
    d_min: float  # diameter, log-uniform between d_min and d_max
    d_max: float
    aspect: tuple[float, float]  # each semi-axis is r * U(aspect)
    coat: tuple[float, float] = (0.0, 0.0)  # coating thickness U(coat)

    @property
    def reach(self) -> float:
        """The largest semi-axis including the coating."""
        return self.d_max / 2 * self.aspect[1] + self.coat[1]

    def mean_volume(self, coated: bool) -> float:
        """Exact E[4/3 pi (r a_z + t)(r a_y + t)(r a_x + t)] in nm^3 (t = 0 if not coated)."""
        lo, hi = self.d_min / 2, self.d_max / 2
        log = math.log(hi / lo)

        def r_moment(n: int) -> float:  # log-uniform radius
            return (hi**n - lo**n) / (n * log) if n else 1.0

        def u_moment(a: float, b: float, n: int) -> float:  # uniform
            return (b ** (n + 1) - a ** (n + 1)) / ((n + 1) * (b - a)) if b > a else a**n

        m1 = u_moment(*self.aspect, 1)
        t = self.coat if coated else (0.0, 0.0)
        total = sum(math.comb(3, m) * r_moment(m) * m1**m * u_moment(*t, 3 - m) for m in range(4))
        return 4.0 / 3.0 * math.pi * total


_FAMILIES = (
    _Family(LLZTO, 2000.0, 8000.0, (0.85, 1.15)),
    _Family(LCO, 400.0, 3000.0, (0.85, 1.15), (50.0, 100.0)),
    _Family(SP, 1000.0, 4000.0, (0.7, 1.3)),
)


@dataclass(frozen=True, eq=False)
class Particles:
    """A particle table with its spatial index (lengths in nm, axes ``(z, y, x)``).

    ``radius`` holds the core semi-axes, ``coat`` the coating thickness (LCO
    only), ``reach`` the semi-axes including the coating. Particles are sorted
    by family (LLZTO, LCO, SP); the index keeps that global order.
    """

    phase: np.ndarray  # (n,) uint8
    center: np.ndarray  # (n, 3)
    radius: np.ndarray  # (n, 3)
    coat: np.ndarray  # (n,)
    li_base: np.ndarray  # (n,) LCO only
    li_grad: np.ndarray  # (n, 3)
    li_radial: np.ndarray  # (n,)
    cell: float  # index cell size, nm
    cell_origin: tuple[float, float]  # (y, x) of the index's first cell corner
    cell_shape: tuple[int, int]
    cell_start: np.ndarray  # CSR offsets, (ny * nx + 1,)
    cell_ids: np.ndarray  # particle ids per cell, ascending within a cell

    @property
    def reach(self) -> np.ndarray:
        return self.radius + self.coat[:, None]

    def __len__(self) -> int:
        return int(self.phase.size)


def _solve(fractions: dict[str, float]) -> tuple[dict[int, float], dict[str, float]]:
    """Poisson intensities (per nm^3) per family and the expected fractions of all five phases."""
    f1, f2, f3 = fractions["LLZTO"], fractions["LCO"], fractions["SP"]
    llzto, lco, sp = _FAMILIES
    x1 = -math.log1p(-f1)
    rest = 1.0 - f1
    if f2 >= rest:
        raise PfibsimsError(
            f"volume_fractions: expected LLZTO + LCO < 1, got LLZTO={f1:g}, LCO={f2:g}"
        )
    x2 = -math.log1p(-f2 / rest)
    lam2 = x2 / lco.mean_volume(coated=False)
    x2c = lam2 * lco.mean_volume(coated=True)
    free = rest * math.exp(-x2c)
    if f3 >= free:
        raise PfibsimsError(
            f"volume_fractions: expected SP < {free:.3f} (what LLZTO={f1:g}, LCO={f2:g} and their "
            f"Al2O3 coatings leave free), got SP={f3:g}"
        )
    x3 = -math.log1p(-f3 / free)
    al = rest * (math.exp(-x2) - math.exp(-x2c))
    expected = {"matrix": 1.0 - f1 - f2 - al - f3, "LLZTO": f1, "LCO": f2, "Al2O3": al, "SP": f3}
    lam = {LLZTO: x1 / llzto.mean_volume(False), LCO: lam2, SP: x3 / sp.mean_volume(False)}
    return lam, expected


def check_fractions(volume_fractions: Any) -> dict[str, float]:
    """The requested fractions with defaults filled in, validated.

    Examples
    --------
    >>> check_fractions({"LLZTO": 0.3})["LLZTO"], check_fractions(None)["SP"]
    (0.3, 0.08)
    """
    out = dict(DEFAULT_FRACTIONS)
    if volume_fractions is None:
        return out
    if not isinstance(volume_fractions, Mapping):
        raise PfibsimsError(
            f"volume_fractions: expected a dict such as {DEFAULT_FRACTIONS}, got {volume_fractions!r:.60}"
        )
    for key, value in volume_fractions.items():
        if key not in DEFAULT_FRACTIONS:
            raise PfibsimsError(
                f"volume_fractions: expected keys among {sorted(DEFAULT_FRACTIONS)} (Al2O3 follows from the "
                f"LCO coating, the matrix fills the rest), got {key!r}"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 <= value < 1:
            raise PfibsimsError(f"volume_fractions['{key}']: expected a fraction in [0, 1), got {value!r}")
        out[key] = float(value)
    _solve(out)
    return out


def expected_fractions(volume_fractions: dict[str, float] | None = None) -> dict[str, float]:
    """The expected volume fraction of each of the five phases.

    Examples
    --------
    >>> f = expected_fractions({"LLZTO": 0.3, "LCO": 0.3, "SP": 0.05})
    >>> round(sum(f.values()), 12), f["LLZTO"], 0 < f["Al2O3"] < 0.1
    (1.0, 0.3, True)
    """
    return _solve(check_fractions(volume_fractions))[1]


def generate(seed: int, region: tuple[float, ...], volume_fractions: dict[str, float] | None = None) -> Particles:
    """Draw the particles of every family that can reach ``region``.

    Parameters
    ----------
    seed : int
        The phantom seed; each family draws from its own stream.
    region : (zlo, zhi, ylo, yhi, xlo, xhi)
        The box (nm) where the phase will be evaluated. Centres are drawn in
        the box grown by the family's largest semi-axis, so the model is
        stationary inside ``region``.
    volume_fractions : dict, optional
        Requested fractions of ``LLZTO``, ``LCO`` (cores) and ``SP``.

    Examples
    --------
    >>> p = generate(0, (0, 600, 0, 20000, 0, 20000))
    >>> len(p) > 100, sorted(set(p.phase.tolist()))
    (True, [1, 2, 4])
    """
    lam, _ = _solve(check_fractions(volume_fractions))
    lo = np.asarray(region[0::2], dtype=np.float64)
    hi = np.asarray(region[1::2], dtype=np.float64)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("phase", "center", "radius", "coat", "base", "grad", "rad")}
    for fam in _FAMILIES:
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(4, fam.phase)))
        blo, bhi = lo - fam.reach, hi + fam.reach
        n = int(rng.poisson(lam[fam.phase] * float(np.prod(bhi - blo))))
        center = blo + rng.random((n, 3)) * (bhi - blo)
        r = 0.5 * np.exp(rng.uniform(math.log(fam.d_min), math.log(fam.d_max), n))
        radius = r[:, None] * rng.uniform(*fam.aspect, (n, 3))
        coat = rng.uniform(*fam.coat, n) if fam.coat[1] > 0 else np.zeros(n)
        # Uneven Li inside LCO: a random gradient across the particle and a radial term.
        base = rng.uniform(0.75, 1.15, n)
        direction = rng.normal(size=(n, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True) + 1e-300
        grad = direction * rng.uniform(0.0, 0.35, n)[:, None]
        rad = rng.uniform(-0.25, 0.25, n)
        if fam.phase != LCO:
            base, grad, rad = np.zeros(n), np.zeros((n, 3)), np.zeros(n)
        for key, value in zip(parts, (np.full(n, fam.phase, np.uint8), center, radius, coat, base, grad, rad), strict=False):
            parts[key].append(value)
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    return make_particles(
        cat["phase"], cat["center"], cat["radius"], coat=cat["coat"], li_base=cat["base"], li_grad=cat["grad"],
        li_radial=cat["rad"],
    )


def make_particles(
    phase: Any,
    center: Any,
    radius: Any,
    *,
    coat: Any = None,
    li_base: Any = None,
    li_grad: Any = None,
    li_radial: Any = None,
) -> Particles:
    """A :class:`Particles` table (with its index) from arrays; lengths in nm, axes (z, y, x).

    Examples
    --------
    >>> p = make_particles([1], [[0.0, 0.0, 0.0]], [[2000.0, 2000.0, 2000.0]])
    >>> len(p), p.reach.tolist()
    (1, [[2000.0, 2000.0, 2000.0]])
    """
    phase = np.asarray(phase, dtype=np.uint8).reshape(-1)
    n = phase.size
    center = np.asarray(center, dtype=np.float64).reshape(n, 3)
    radius = np.asarray(radius, dtype=np.float64).reshape(n, 3)

    def opt(value: Any, shape: tuple, fill: float) -> np.ndarray:
        return np.full(shape, fill) if value is None else np.asarray(value, dtype=np.float64).reshape(shape)

    coat = opt(coat, (n,), 0.0)
    reach = radius + coat[:, None]
    cell = max(2 * float(reach.max(initial=0.0)), 2 * max(f.reach for f in _FAMILIES), 10_000.0)
    return Particles(
        phase=phase,
        center=center,
        radius=radius,
        coat=coat,
        li_base=opt(li_base, (n,), 1.0),
        li_grad=opt(li_grad, (n, 3), 0.0),
        li_radial=opt(li_radial, (n,), 0.0),
        **_index(center, reach, cell),
    )


def _index(center: np.ndarray, reach: np.ndarray, cell: float) -> dict[str, Any]:
    """A uniform (y, x) grid of cells listing the particles whose box touches each cell."""
    origin = (float(np.min(center[:, 1] - reach[:, 1], initial=0.0)), float(np.min(center[:, 2] - reach[:, 2], initial=0.0)))
    top = (float(np.max(center[:, 1] + reach[:, 1], initial=0.0)), float(np.max(center[:, 2] + reach[:, 2], initial=0.0)))
    shape = tuple(max(1, math.floor((t - o) / cell) + 1) for o, t in zip(origin, top, strict=False))
    lo = [np.clip(np.floor((center[:, a] - reach[:, a] - o) / cell).astype(np.int64), 0, s - 1)
          for a, o, s in zip((1, 2), origin, shape, strict=False)]
    hi = [np.clip(np.floor((center[:, a] + reach[:, a] - o) / cell).astype(np.int64), 0, s - 1)
          for a, o, s in zip((1, 2), origin, shape, strict=False)]
    ids = np.arange(center.shape[0], dtype=np.int64)
    cells, owners = [], []
    # The cell is at least a particle diameter wide, so a box spans at most 2 x 2 cells.
    for dy in (0, 1):
        for dx in (0, 1):
            ok = (lo[0] + dy <= hi[0]) & (lo[1] + dx <= hi[1])
            cells.append((lo[0][ok] + dy) * shape[1] + lo[1][ok] + dx)
            owners.append(ids[ok])
    cell_of, owner = np.concatenate(cells), np.concatenate(owners)
    order = np.lexsort((owner, cell_of))
    start = np.zeros(shape[0] * shape[1] + 1, dtype=np.int64)
    np.cumsum(np.bincount(cell_of, minlength=shape[0] * shape[1]), out=start[1:])
    return {"cell": cell, "cell_origin": origin, "cell_shape": shape, "cell_start": start, "cell_ids": owner[order]}


def query(particles: Particles, box: tuple[float, ...]) -> np.ndarray:
    """Ids (ascending) of the particles whose coated bounding box meets ``box``.

    ``box`` is ``(zlo, zhi, ylo, yhi, xlo, xhi)`` in nm.

    Examples
    --------
    >>> p = generate(1, (0, 600, 0, 20000, 0, 20000))
    >>> ids = query(p, (0, 0, 0, 2000, 0, 2000))
    >>> bool(np.all(np.diff(ids) > 0))
    True
    """
    zlo, zhi, ylo, yhi, xlo, xhi = box
    (oy, ox), (ny, nx), c = particles.cell_origin, particles.cell_shape, particles.cell
    iy0, iy1 = max(0, math.floor((ylo - oy) / c)), min(ny - 1, math.floor((yhi - oy) / c))
    ix0, ix1 = max(0, math.floor((xlo - ox) / c)), min(nx - 1, math.floor((xhi - ox) / c))
    if iy1 < iy0 or ix1 < ix0:
        return np.zeros(0, dtype=np.int64)
    start = particles.cell_start
    rows = [particles.cell_ids[start[iy * nx + ix0] : start[iy * nx + ix1 + 1]] for iy in range(iy0, iy1 + 1)]
    ids = np.unique(np.concatenate(rows))
    cen, reach = particles.center[ids], particles.reach[ids]
    lo, hi = cen - reach, cen + reach
    keep = (
        (lo[:, 0] <= zhi) & (hi[:, 0] >= zlo) & (lo[:, 1] <= yhi) & (hi[:, 1] >= ylo) & (lo[:, 2] <= xhi) & (hi[:, 2] >= xlo)
    )
    return ids[keep]


@dataclass(frozen=True)
class Lattice:
    """Points ``p(I, J) = origin + I * step_i + J * step_j`` (y, x in nm) for global indices
    ``I`` in ``[i0, i0 + ni)`` and ``J`` in ``[j0, j0 + nj)``.

    Points are always computed from *global* indices with the same floats, so a
    sub-block of a lattice gives bit-identical points.
    """

    origin: tuple[float, float]
    step_i: tuple[float, float]
    step_j: tuple[float, float]
    i0: int
    ni: int
    j0: int
    nj: int

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        i = (self.i0 + np.arange(self.ni, dtype=np.float64))[:, None]
        j = (self.j0 + np.arange(self.nj, dtype=np.float64))[None, :]
        py = (self.origin[0] + i * self.step_i[0]) + j * self.step_j[0]
        px = (self.origin[1] + i * self.step_i[1]) + j * self.step_j[1]
        return py, px

    def bounds(self) -> tuple[float, float, float, float]:
        """``(ylo, yhi, xlo, xhi)`` of the lattice's points."""
        corners = np.array(
            [[i, j] for i in (self.i0, self.i0 + self.ni - 1) for j in (self.j0, self.j0 + self.nj - 1)], dtype=float
        )
        y = self.origin[0] + corners[:, 0] * self.step_i[0] + corners[:, 1] * self.step_j[0]
        x = self.origin[1] + corners[:, 0] * self.step_i[1] + corners[:, 1] * self.step_j[1]
        return float(y.min()), float(y.max()), float(x.min()), float(x.max())

    def __post_init__(self) -> None:
        m = np.array([[self.step_i[0], self.step_j[0]], [self.step_i[1], self.step_j[1]]])
        inv = np.linalg.inv(m)
        object.__setattr__(self, "_inv", tuple(float(v) for v in inv.ravel()))

    def window(self, ylo: float, yhi: float, xlo: float, xhi: float) -> tuple[slice, slice] | None:
        """Local index slices covering every lattice point inside a (y, x) box, or None."""
        a, b, c, d = self._inv  # type: ignore[attr-defined]
        y0, x0 = ylo - self.origin[0], xlo - self.origin[1]
        y1, x1 = yhi - self.origin[0], xhi - self.origin[1]
        ii = (a * y0 + b * x0, a * y0 + b * x1, a * y1 + b * x0, a * y1 + b * x1)
        jj = (c * y0 + d * x0, c * y0 + d * x1, c * y1 + d * x0, c * y1 + d * x1)
        i_lo = max(math.floor(min(ii)) - 1 - self.i0, 0)
        i_hi = min(math.ceil(max(ii)) + 2 - self.i0, self.ni)
        j_lo = max(math.floor(min(jj)) - 1 - self.j0, 0)
        j_hi = min(math.ceil(max(jj)) + 2 - self.j0, self.nj)
        if i_hi <= i_lo or j_hi <= j_lo:
            return None
        return slice(i_lo, i_hi), slice(j_lo, j_hi)


@dataclass(frozen=True)
class _Cut:
    """The particles of one family cut by a plane, as arrays (nm)."""

    ids: np.ndarray
    dz: np.ndarray
    center: np.ndarray  # (m, 3)
    radius: np.ndarray  # (m, 3) core semi-axes
    coat: np.ndarray


def _sections(particles: Particles, ids: np.ndarray, z: float, label: int) -> _Cut:
    """The particles of one family (ascending ids) cut by the plane at depth z."""
    ids = ids[particles.phase[ids] == label]
    dz = z - particles.center[ids, 0]
    cut = np.abs(dz) < particles.radius[ids, 0] + particles.coat[ids]
    ids = ids[cut]
    return _Cut(ids, dz[cut], particles.center[ids], particles.radius[ids], particles.coat[ids])


def _boxes(lattice: Lattice, cut: _Cut) -> np.ndarray:
    """Per particle of ``cut``, the local index box ``(i_lo, i_hi, j_lo, j_hi)`` (half-open)
    holding every lattice point of its coated section's bounding box, (m, 4) int64."""
    a, b, c, d = lattice._inv  # type: ignore[attr-defined]
    big = cut.radius + cut.coat[:, None]
    s = np.sqrt(np.maximum(1.0 - (cut.dz / big[:, 0]) ** 2, 0.0))
    hy, hx = big[:, 1] * s, big[:, 2] * s
    yc, xc = cut.center[:, 1] - lattice.origin[0], cut.center[:, 2] - lattice.origin[1]
    ic, ri = a * yc + b * xc, abs(a) * hy + abs(b) * hx
    jc, rj = c * yc + d * xc, abs(c) * hy + abs(d) * hx
    # Indices whose points can lie in the section's box (a hair wider against rounding).
    return np.stack([
        np.clip(np.ceil(ic - ri - 1e-6).astype(np.int64) - lattice.i0, 0, lattice.ni),
        np.clip(np.floor(ic + ri + 1e-6).astype(np.int64) + 1 - lattice.i0, 0, lattice.ni),
        np.clip(np.ceil(jc - rj - 1e-6).astype(np.int64) - lattice.j0, 0, lattice.nj),
        np.clip(np.floor(jc + rj + 1e-6).astype(np.int64) + 1 - lattice.j0, 0, lattice.nj),
    ], axis=1).reshape(-1, 4)


def render(
    particles: Particles,
    ids: np.ndarray,
    z: float,
    lattice: Lattice,
    *,
    depletion_depth: float,
    li_levels: dict[str, float] = LI_LEVELS,
) -> tuple[np.ndarray, np.ndarray]:
    """Phase labels and noise-free Li at the points of ``lattice`` on the plane at depth ``z``.

    Each family is drawn particle by particle (ascending ids) over the lattice
    points of the particle's section bounding box, in a compiled loop.

    Parameters
    ----------
    particles : Particles
    ids : array of int
        The particles that may reach the points (from :func:`query`), ascending.
    z : float
        Depth of the plane, nm.
    lattice : Lattice
        Where to evaluate (EDS-frame y, x in nm).
    depletion_depth : float
        Thickness (nm) of the Li-depleted layer inside LLZTO surfaces: Li rises
        linearly from ``LLZTO_surface`` at the surface to ``LLZTO_bulk`` at this
        depth. The depth is measured along the ray from the particle centre
        (exact for spheres), and the deepest of overlapping particles counts.
    li_levels : dict
        Li of each phase (see :data:`LI_LEVELS`).

    Returns
    -------
    phase : uint8 array (ni, nj)
        0 matrix, 1 LLZTO, 2 LCO, 3 Al2O3, 4 SP.
    li : float64 array (ni, nj)

    Examples
    --------
    >>> p = generate(0, (0, 0, 0, 8000, 0, 8000))
    >>> lat = Lattice((40.7, 40.7), (81.4, 0.0), (0.0, 81.4), 0, 50, 0, 50)
    >>> phase, li = render(p, query(p, (0, 0, 0, 4070, 0, 4070)), 0.0, lat, depletion_depth=300.0)
    >>> phase.shape, phase.dtype, bool(li.min() >= 0)
    ((50, 50), dtype('uint8'), True)
    """
    shape = (lattice.ni, lattice.nj)
    phase = np.zeros(shape, dtype=np.uint8)
    li = np.full(shape, li_levels["matrix"], dtype=np.float64)
    depth = np.zeros(shape, dtype=np.float64)
    ids = np.asarray(ids, dtype=np.int64)
    geo = np.array([*lattice.origin, *lattice.step_i, *lattice.step_j], dtype=np.float64)
    at = (geo, lattice.i0, lattice.j0)

    def core(cut: _Cut) -> tuple[np.ndarray, ...]:
        """Box, centre (y, x), core semi-axes (y, x) and the plane's (dz / r_z)^2 per particle."""
        r = cut.radius
        return (_boxes(lattice, cut), cut.center[:, 1].copy(), cut.center[:, 2].copy(), r[:, 1].copy(),
                r[:, 2].copy(), (cut.dz / r[:, 0]) ** 2)

    # Later families beat earlier ones: SP < Al2O3 coatings < LCO cores < LLZTO.
    cut = _sections(particles, ids, z, SP)
    _draw_sp(phase, li, *at, *core(cut), li_levels["SP"])
    # LCO: a coating never covers a core, cores cover all; where cores overlap the
    # last particle (highest id) gives the Li.
    cut = _sections(particles, ids, z, LCO)
    t = cut.coat
    _draw_lco(
        phase, li, *at, *core(cut),
        cut.radius[:, 1] + t, cut.radius[:, 2] + t, (cut.dz / (cut.radius[:, 0] + t)) ** 2,
        np.abs(cut.dz) < cut.radius[:, 0], cut.dz, particles.li_grad[cut.ids], cut.radius.mean(axis=1),
        particles.li_base[cut.ids], particles.li_radial[cut.ids], li_levels["Al2O3"], li_levels["LCO"],
    )
    cut = _sections(particles, ids, z, LLZTO)
    _draw_llzto(phase, depth, *at, *core(cut), cut.dz, cut.radius.min(axis=1))
    in_llzto = phase == LLZTO
    if in_llzto.any():
        ramp = np.minimum(depth[in_llzto] / depletion_depth, 1.0) if depletion_depth > 0 else 1.0
        surface, bulk = li_levels["LLZTO_surface"], li_levels["LLZTO_bulk"]
        li[in_llzto] = surface + (bulk - surface) * ramp
    return phase, li


# -- compiled loops (numba, nogil: dask threads draw blocks in parallel) --------
# Every float operation below is the one, in the same order, of the vectorised
# numpy version this replaced, so the drawn values are bit-identical to it.
@njit(nogil=True, cache=True)
def _offset(geo, i0, j0, a, b, cy, cx, sy, sx, zq):  # pragma: no cover - compiled
    """``(dy, dx, q)`` of local lattice index (a, b) from a section centre ``(cy, cx)`` with
    semi-axes ``(sy, sx)``; ``q = (dy / sy)^2 + (dx / sx)^2 + zq``. The point is the one
    ``Lattice.points`` computes."""
    fi, fj = np.float64(i0 + a), np.float64(j0 + b)
    dy = ((geo[0] + fi * geo[2]) + fj * geo[4]) - cy
    dx = ((geo[1] + fi * geo[3]) + fj * geo[5]) - cx
    return dy, dx, (dy / sy) ** 2 + (dx / sx) ** 2 + zq


@njit(nogil=True, cache=True)
def _draw_sp(phase, li, geo, i0, j0, box, cy, cx, sy, sx, zq, level):  # pragma: no cover - compiled
    for m in range(box.shape[0]):
        for a in range(box[m, 0], box[m, 1]):
            for b in range(box[m, 2], box[m, 3]):
                if _offset(geo, i0, j0, a, b, cy[m], cx[m], sy[m], sx[m], zq[m])[2] <= 1.0:
                    phase[a, b] = 4
                    li[a, b] = level


@njit(nogil=True, cache=True)
def _draw_lco(
    phase, li, geo, i0, j0, box, cy, cx, sy, sx, zq, sy_c, sx_c, zq_c, has_core, dz, grad, rbar, base, radial,
    al_level, lco_level,
):  # pragma: no cover - compiled
    for m in range(box.shape[0]):
        for a in range(box[m, 0], box[m, 1]):
            for b in range(box[m, 2], box[m, 3]):
                if _offset(geo, i0, j0, a, b, cy[m], cx[m], sy_c[m], sx_c[m], zq_c[m])[2] <= 1.0 and phase[a, b] != 2:
                    phase[a, b] = 3
                    li[a, b] = al_level
                dy, dx, q = _offset(geo, i0, j0, a, b, cy[m], cx[m], sy[m], sx[m], zq[m])
                if q <= 1.0 and has_core[m]:
                    g = (grad[m, 0] * dz[m] + grad[m, 1] * dy + grad[m, 2] * dx) / rbar[m]
                    val = base[m] * (1.0 + g + radial[m] * (q - 0.6))
                    phase[a, b] = 2
                    li[a, b] = max(val, 0.05) * lco_level


@njit(nogil=True, cache=True)
def _draw_llzto(phase, depth, geo, i0, j0, box, cy, cx, sy, sx, zq, dz, rmin):  # pragma: no cover - compiled
    for m in range(box.shape[0]):
        for a in range(box[m, 0], box[m, 1]):
            for b in range(box[m, 2], box[m, 3]):
                dy, dx, q = _offset(geo, i0, j0, a, b, cy[m], cx[m], sy[m], sx[m], zq[m])
                if q <= 1.0:
                    d = math.sqrt(dy * dy + dx * dx + dz[m] * dz[m]) * (1.0 / math.sqrt(q) - 1.0) if q > 0 else rmin[m]
                    depth[a, b] = max(depth[a, b], d)
                    phase[a, b] = 1
