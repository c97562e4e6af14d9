"""Hand-made two-modality scenes and the phantom, their transform known (registration and drift tests)."""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi
from stacks import texture

from pfibsims import Affine, Grid, stack


def _scene_sampler(seed):
    big = Grid((400, 400), 30.0, origin=(-2000.0, -2000.0))
    field = texture(big.shape, seed, sigma=6)
    phase = (field > np.median(field)).astype(float)

    def sample(points):
        return ndi.map_coordinates(phase, np.moveaxis(big.to_index(points), -1, 0), order=1)

    return sample


def _points(grid):
    return np.stack(np.meshgrid(*grid.coords().values(), indexing="ij"), -1)


def scene_pair(T, *, seed=0, fixed_shape=(72, 96), moving_shape=(110, 110), fs=80.0, ms=72.0, counts=40.0,
               moving_fn=None):
    """A fixed (two channels) and moving map of one random two-phase scene; moving(T(p)) shows fixed(p)."""
    rng = np.random.default_rng(seed + 10)
    sample = _scene_sampler(seed)
    fg, mg = Grid(fixed_shape, fs), Grid(moving_shape, ms)
    f = sample(_points(fg))
    m = sample(T.inverse()(_points(mg)))
    m = moving_fn(m) if moving_fn else 3.0 + 10.0 * (1 - m) ** 2  # Li high where the fixed phase is low
    fixed = stack({"Zr_La": rng.poisson(counts * f + 2), "Co_La": rng.poisson(counts * (1 - f) + 2)},
                  pixel_size=f"{fs} nm")
    moving = stack({"Li6": rng.poisson(counts / 4 * m)}, pixel_size=f"{ms} nm")
    return moving, fixed


def scene_stack(T, drifts, *, seed=0, fs=80.0, ms=72.0, counts=40.0, chunks=None):
    """A (z, y, x) fixed stack (two channels, no drift) and a moving stack whose slice k shows the
    fixed point p at T(p) + drifts[k] (the phantom's contract)."""
    rng = np.random.default_rng(seed + 20)
    sample = _scene_sampler(seed)
    fg, mg = Grid((72, 96), fs), Grid((110, 110), ms)
    f = sample(_points(fg))
    inv = T.inverse()
    m = np.stack([3.0 + 10.0 * (1 - sample(inv(_points(mg) - np.asarray(d)))) ** 2 for d in drifts])
    nz = len(drifts)
    fixed = stack({"Zr_La": rng.poisson(counts * np.stack([f] * nz) + 2),
                   "Co_La": rng.poisson(counts * (1 - np.stack([f] * nz)) + 2)},
                  pixel_size=f"{fs} nm", slice_thickness="60 nm", chunks=chunks)
    moving = stack({"Li6": rng.poisson(counts / 4 * m)}, pixel_size=f"{ms} nm", slice_thickness="60 nm",
                   chunks=chunks)
    return moving, fixed


def max_error(T1, T2, grid):
    pts = np.stack(np.meshgrid(*grid.coords().values(), indexing="ij"), -1)
    return float(np.linalg.norm(T1(pts) - T2(pts), axis=-1).max())


CROSS_T = Affine.from_parameters(rotation=1.2, shift=(600.0, 350.0), center=(2880, 3840))
CROSS_DRIFT = [(0.0, 0.0), (35.0, -20.0), (80.0, -10.0), (60.0, 45.0), (130.0, 70.0)]


# Phantom errors: displacements of the estimated against the true transform at the EDS field centre and
# at its four corners (the largest).
# Errors are displacements of the estimated against the true transform at the
# EDS field centre and at its four corners (the largest).
def field_errors(Te, T, eds):
    ys, xs = eds.y.values, eds.x.values
    pts = np.array([[ys.mean(), xs.mean()], [ys[0], xs[0]], [ys[0], xs[-1]], [ys[-1], xs[0]], [ys[-1], xs[-1]]])
    e = np.linalg.norm(Te(pts) - T(pts), axis=1)
    de, dt = Te.decompose(), T.decompose()
    return {"centre": e[0], "corners": e[1:].max(), "rotation": abs(de["rotation"] - dt["rotation"]),
            "scale": abs(de["scale"][0] / dt["scale"][0] - 1)}


def phantom(seed, n_slices, **kw):
    from pfibsims.synthetic import cathode

    eds, sims, truth = cathode(seed=seed, n_slices=n_slices, **kw)
    return eds.persist(), sims.persist(), truth


