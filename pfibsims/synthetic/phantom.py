"""A synthetic LLZTO / Al2O3-coated LCO / Super P cathode, milled and mapped, with its truth.

:func:`cathode` simulates a plasma-FIB slice-and-view run after Sun et al.
(Micron 2024): per slice, EDS maps (Zr La, Co La, Al Ka, C Ka; optionally a BSE
image) on the sample frame and a SIMS Li6 map (optionally Li7) in a rotated,
shifted, possibly mis-scaled frame that drifts from slice to slice. Every
array is a lazy dask array generated block by block from a seeded particle
list (see :mod:`pfibsims._phantom_particles`), with counter-based Poisson
noise (see :mod:`pfibsims._phantom_noise`), so any chunking gives the same
numbers and a 700 um field never needs more than a few blocks in memory.

The truth contract
------------------
The sample feature at EDS-frame point ``p`` (y, x in nm) appears in SIMS slice
``k`` at SIMS dataset coordinate ``q = T(p) + drift[k]``, where ``T =
Affine.from_attrs(truth.attrs)``. ``T`` maps the EDS frame to SIMS dataset
coordinates, i.e. it *pulls* when resampling SIMS onto the EDS grid:
``resample(correct_drift(sims, truth.drift), onto=eds, transform=T)``.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize

from ..dataset import history_attrs, record, stack
from ..errors import PfibsimsError
from ..grid import Grid
from ..transform import Affine
from ..units import LENGTH_UNIT, length_nm, lengths_nm, parse_quantity
from . import blocks as kernels
from .mixture import MIXED_MATRIX, check_mixture, mixed_counts
from .noise import stream_key
from .particles import (
    FLAG_MEANINGS,
    LI_PERCENT,
    PHASES,
    SIMS_YIELD,
    Particles,
    check_fractions,
    expected_fractions,
    generate,
    li_levels,
)

__all__ = ["EDS_COUNTS", "LI7_RATIO", "MIXED_MATRIX", "SIMS_COUNTS", "cathode"]

#: Expected EDS counts per pixel (at ``eds_dose=1``) of each phase, in the
#: order of ``truth.phase.attrs["flag_meanings"]`` (matrix, LLZTO, LCO, Al2O3, SP).
EDS_COUNTS = {
    "Zr_La": (1.0, 20.0, 0.4, 0.4, 0.3),
    "Co_La": (0.6, 0.5, 24.0, 2.0, 0.3),
    "Al_Ka": (0.4, 0.8, 0.5, 15.0, 0.3),
    "C_Ka": (3.0, 0.6, 0.6, 0.6, 12.0),
}
#: Expected BSE signal per pixel of each phase (mean electron counts).
BSE_COUNTS = (40.0, 90.0, 75.0, 50.0, 15.0)
#: SIMS expected counts per pixel (at ``sims_dose=1``): ``background + gain * li``.
SIMS_COUNTS = {"Li6": (1.5, 30.0)}
#: Natural 7Li / 6Li abundance ratio (92.41 % / 7.59 %).
LI7_RATIO = 12.18

_STREAM_DRIFT = 5
_STREAM_NOISE = 6


# -- option parsing ------------------------------------------------------------
def _shape2(value: Any, name: str) -> tuple[int, int]:
    ok = isinstance(value, Sequence) and len(value) == 2 and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in value
    )
    if not ok:
        raise PfibsimsError(f"{name}: expected (ny, nx), two positive integers, got {value!r}")
    return int(value[0]), int(value[1])


def _integer(value: Any, name: str, lo: int, hi: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < lo or (hi is not None and value > hi):
        want = f"an integer from {lo} to {hi}" if hi is not None else ("a positive" if lo == 1 else "a non-negative") + " integer"
        raise PfibsimsError(f"{name}: expected {want}, got {value!r}")


def _positive(value: Any, name: str, *, zero: bool = False) -> float:
    v = length_nm(value, name=name)
    if v < 0 or (v == 0 and not zero):
        raise PfibsimsError(f"{name}: expected a {'non-negative' if zero else 'positive'} length, got {value!r}")
    return v


def _number(value: Any, name: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not lo < float(value) < hi:
        raise PfibsimsError(f"{name}: expected a number between {lo:g} and {hi:g} (exclusive), got {value!r}")
    return float(value)


def _chunks(chunks: Any, shape: tuple[int, int, int]) -> tuple[tuple[int, ...], ...]:
    """Dask chunks for a (z, y, x) array; ``None`` is one slice per chunk."""
    if chunks is None:
        chunks = (1, -1, -1)
    if isinstance(chunks, Mapping):
        unknown = set(chunks) - {"z", "y", "x"}
        if unknown:
            raise PfibsimsError(f"chunks: expected keys among 'z', 'y', 'x', got {sorted(unknown)}")
        chunks = (chunks.get("z", 1), chunks.get("y", -1), chunks.get("x", -1))
    try:
        return da.core.normalize_chunks(chunks, shape, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        raise PfibsimsError(
            f"chunks: expected dask chunks for (z, y, x) such as (1, 512, 512) or {{'y': 512, 'x': 512}}, "
            f"got {chunks!r} ({exc})"
        ) from None


def _yields(sims_yield: Any) -> dict[str, float]:
    """The relative SIMS yield of every phase: the defaults, updated by ``sims_yield``."""
    if sims_yield is None:
        return dict(SIMS_YIELD)
    if not isinstance(sims_yield, Mapping) or set(sims_yield) - set(PHASES):
        raise PfibsimsError(f"sims_yield: expected a mapping from phases among {list(PHASES)} to yields, got {sims_yield!r}")
    for name, v in sims_yield.items():
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 < float(v) < math.inf:
            raise PfibsimsError(f"sims_yield[{name!r}]: expected a positive number, got {v!r}")
    return {**SIMS_YIELD, **{k: float(v) for k, v in sims_yield.items()}}


def _count_dtype(table: Sequence[float]) -> Any:
    top = max(table)
    return np.uint16 if top + 10 * math.sqrt(top) + 100 < np.iinfo(np.uint16).max else np.uint32


# -- the public function -----------------------------------------------------
def cathode(
    seed: int = 0,
    *,
    n_slices: int = 39,
    eds_shape: tuple[int, int] | None = None,
    sims_shape: tuple[int, int] | None = None,
    field: Any = None,
    chunks: Any = None,
    eds_pixel_size: Any = "81.4 nm",
    sims_pixel_size: Any = "72 nm",
    sims_scale_error: float = 0.0,
    slice_thickness: Any = "60 nm",
    sims_rotation: Any = "1.5 deg",
    sims_shift: Any = None,
    drift_step: Any = "30 nm",
    depletion_depth: Any = "300 nm",
    volume_fractions: Mapping[str, float] | None = None,
    matrix_mixture: Mapping[str, float] | None = None,
    eds_dose: float = 1.0,
    sims_dose: float = 1.0,
    eds_blur: Any = "100 nm",
    sims_blur: Any = "80 nm",
    sims_yield: Mapping[str, float] | None = None,
    li7: bool = False,
    bse: bool = False,
    supersample: int = 1,
) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset]:
    """Simulate an EDS + SIMS slice-and-view run on a composite cathode, with its ground truth.

    Nothing is computed here but the particle list: every map is a lazy dask
    array generated block by block (see Notes), the same for any chunking.

    Parameters
    ----------
    seed : int
        Seed of everything random (particles, drift, noise).
    n_slices : int
        Number of milled slices (default 39, as in the paper).
    eds_shape, sims_shape : (ny, nx), optional
        Pixels per map; default 216 x 352 (EDS) and 500 x 500 (SIMS).
    field : length, optional
        A square field of view for both maps (e.g. ``"700 um"``), instead of
        the shapes: ``round(field / pixel_size)`` pixels a side.
    chunks : optional
        Dask chunks for ``(z, y, x)`` (a tuple, an int or a dict with keys
        ``z``, ``y``, ``x``), used for both grids. Default: one slice per chunk.
    eds_pixel_size : length
        EDS pixel size (default 81.4 nm).
    sims_pixel_size : length
        The SIMS pixel size *reported* to the user (default 72 nm); the SIMS
        coordinates are built from it.
    sims_scale_error : float
        Relative error of the reported SIMS pixel size: the true one is
        ``sims_pixel_size * (1 + sims_scale_error)`` (default 0).
    slice_thickness : length
        Distance between slices (default 60 nm); slice ``k`` is at depth
        ``k * slice_thickness``.
    sims_rotation : angle
        Rotation of the SIMS frame (default 1.5 deg).
    sims_shift : (y, x) lengths, optional
        Offset of the SIMS field centre from the EDS field centre; default
        ``(-0.04, 0.14)`` of the SIMS field size (about -1.4 um, 5 um for the
        default 36 um field), so the fields overlap partly.
    drift_step : length
        Standard deviation per axis of the SIMS drift random walk per slice
        (default 30 nm); ``drift[0] = 0``.
    depletion_depth : length
        Depth of the Li-depleted layer inside LLZTO surfaces (default 300 nm).
    volume_fractions : dict, optional
        Requested volume fractions of ``"LLZTO"`` (0.35), ``"LCO"`` (the
        particle cores, 0.35) and ``"SP"`` carbon (0.08); Al2O3 follows from
        the 50-100 nm LCO coating, the matrix fills the rest.
    matrix_mixture : dict, optional
        The matrix between resolved particles as a fine mixture below the
        probe size: the fraction of its volume taken by unresolved
        ``"LLZTO"``, ``"LCO"``, ``"Al2O3"`` and ``"SP"`` (the rest is the
        default matrix), so its EDS (and BSE) counts are that mixture of the
        phases' counts (Super P is resolved only as agglomerates, the paper
        notes): e.g. :data:`MIXED_MATRIX`. Default: no mixture.
    eds_dose, sims_dose : float
        Multipliers of the expected counts (see :data:`EDS_COUNTS`,
        :data:`SIMS_COUNTS`).
    eds_blur, sims_blur : length
        Standard deviation of the Gaussian probe / interaction blur
        (default 100 nm for EDS, 80 nm for SIMS, physical lengths).
    sims_yield : mapping, optional
        The matrix effect: relative SIMS yield of Li per phase (signal per
        atomic percent), default :data:`~pfibsims.synthetic.particles.SIMS_YIELD`
        (LCO about twice LLZTO); phases not given keep theirs. The Li
        concentration truth (:data:`~pfibsims.synthetic.particles.LI_PERCENT`)
        does not change with it; the Li signal is yield x concentration.
    li7 : bool
        Also simulate Li7 (``LI7_RATIO`` x the Li6 signal, own background and noise).
    bse : bool
        Also simulate a BSE image on the EDS grid (channel ``BSE`` of ``eds``,
        as AZtec stores the electron image with the maps).
    supersample : int
        Sub-samples per pixel side for the pixel integration (default 1: the
        probe blur alone smooths the maps; 2 draws thin Al2O3 coatings more faithfully, 4x slower).

    Returns
    -------
    eds : xarray.Dataset
        Channels ``Zr_La, Co_La, Al_Ka, C_Ka`` (Poisson counts, uint16), dims
        ``(z, y, x)``, modality ``"EDS"``; its frame is the sample frame.
    sims : xarray.Dataset
        Channel ``Li6`` (and ``Li7``), modality ``"SIMS"``, coords from the
        reported pixel size, same ``z`` as ``eds``.
    truth : xarray.Dataset
        ``phase`` (uint8, ``flag_values``/``flag_meanings``), ``li`` (the
        noise-free Li signal, float32) and ``li_percent`` (the Li
        concentration, atomic percent: ``li`` / the yield of the voxel's
        phase) on the EDS grid; ``drift`` (z, component) in nm; the
        particle table ``particle_phase``, ``particle_center``,
        ``particle_radius`` (semi-axes; LCO cores), ``particle_coating``;
        attrs ``"pfibsims:affine"`` (the true EDS-to-SIMS ``Affine``, see the
        module docstring), ``depletion_depth``, ``true_sims_pixel_size``,
        ``volume_fractions`` (expected, all five phases), ``eds_counts``
        (expected counts per phase, per channel, dose included) and
        ``sims_counts`` (``background`` and ``gain``: Li6 expected counts are
        ``background + gain * li`` before the SIMS probe blur), ``sims_yield``
        and ``li_percent`` (nominal, per phase), ``sims_blur`` (the true SIMS
        probe standard deviation).

    Raises
    ------
    PfibsimsError
        On an invalid option (shape, fraction, chunks, both ``field`` and a shape).
    UnitsError
        On a length or angle that does not parse or has the wrong kind.

    Notes
    -----
    Each block is drawn from the particles that can reach it (a uniform-grid
    spatial index) over the block plus a halo of 4 blur sigmas; the blur of
    the halo-padded block is cropped, so blocks need no neighbours. Poisson
    noise comes from a hash of the seed, the channel and the global voxel
    index, so a block computed alone equals the same region of the whole.
    The phase at a point is evaluated analytically (particles overlap; LLZTO
    beats LCO cores, which beat Al2O3 coatings, which beat SP carbon). SIMS
    pixel ``q`` of slice ``k`` integrates the Li at ``T^-1(q - drift[k])``.

    For fast unit tests, ``cathode(n_slices=3, eds_shape=(64, 96),
    sims_shape=(128, 128))`` keeps the same physics on a 5 x 8 um EDS field.

    Examples
    --------
    >>> eds, sims, truth = cathode(seed=0, n_slices=2, eds_shape=(32, 48), sims_shape=(64, 64))
    >>> dict(eds.sizes), list(eds.data_vars), list(sims.data_vars)
    ({'z': 2, 'y': 32, 'x': 48}, ['Zr_La', 'Co_La', 'Al_Ka', 'C_Ka'], ['Li6'])
    >>> truth.phase.attrs["flag_meanings"]
    'matrix LLZTO LCO Al2O3 SP'
    >>> int(eds.Zr_La.sum().compute()) > 0
    True
    """
    for name, value, lo, hi in (("seed", seed, 0, None), ("n_slices", n_slices, 1, None), ("supersample", supersample, 1, 8)):
        _integer(value, name, lo, hi)
    seed, n_slices, ss = int(seed), int(n_slices), int(supersample)
    geo = _geometry(
        seed, n_slices, eds_shape, sims_shape, field, eds_pixel_size, sims_pixel_size, sims_scale_error,
        slice_thickness, sims_rotation, sims_shift, drift_step,
    )
    depth = _positive(depletion_depth, "depletion_depth", zero=True)
    eds_sigma_nm = _positive(eds_blur, "eds_blur", zero=True)
    sims_sigma_nm = _positive(sims_blur, "sims_blur", zero=True)
    eds_dose = _number(eds_dose, "eds_dose", 0.0, 1e6)
    sims_dose = _number(sims_dose, "sims_dose", 0.0, 1e6)
    fractions = check_fractions(volume_fractions)
    yields = _yields(sims_yield)
    levels = li_levels(yields)
    mixture = check_mixture(matrix_mixture)
    tables = _Tables.of(eds_dose, sims_dose, mixture, bse=bse, li7=li7)
    eds_sigma, sims_sigma = eds_sigma_nm / geo.eds_px, sims_sigma_nm / geo.sims_true
    scene = kernels.Scene(
        z=geo.z,
        eds_origin=geo.eds_grid.origin,
        eds_spacing=geo.eds_grid.spacing,
        sims_origin=geo.sims_grid.origin,
        sims_spacing=geo.sims_grid.spacing,
        pull=tuple(tuple(float(v) for v in row) for row in geo.T.inverse().matrix[:2]),
        drift=tuple((float(a), float(b)) for a, b in geo.drift),
        ss=ss,
        eds_sigma=eds_sigma,
        eds_halo=_halo(eds_sigma),
        sims_sigma=sims_sigma,
        sims_halo=_halo(sims_sigma),
        eds_table=tuple(tables.eds),
        sims_table=tuple(tables.sims),
        depletion_depth=depth,
        li_levels=tuple(levels.items()),
    )
    particles = generate(seed, _region(geo, scene), fractions)
    params = {
        "seed": seed, "n_slices": n_slices, "eds_shape": list(geo.eds_grid.shape), "sims_shape": list(geo.sims_grid.shape),
        "eds_pixel_size": f"{geo.eds_px:.12g} nm", "sims_pixel_size": f"{geo.sims_rep:.12g} nm",
        "sims_scale_error": geo.scale_error, "slice_thickness": f"{geo.thickness:.12g} nm",
        "sims_rotation": f"{geo.rotation:.12g} deg", "sims_shift": [f"{v:.12g} nm" for v in geo.shift],
        "drift_step": f"{geo.step:.12g} nm", "depletion_depth": f"{depth:.12g} nm", "volume_fractions": fractions,
        "eds_dose": eds_dose, "sims_dose": sims_dose, "eds_blur": f"{eds_sigma_nm:.12g} nm",
        "sims_blur": f"{sims_sigma_nm:.12g} nm", "sims_yield": yields, "li7": bool(li7), "bse": bool(bse),
        "supersample": ss,
    }
    params.update({"matrix_mixture": mixture} if mixture else {})  # only when used: default token unchanged
    token = tokenize("pfibsims.synthetic.cathode", params)
    eds_maps, sims_maps, truth_lazy = _lazy_maps(seed, geo, scene, tables, particles, chunks, token)
    eds = stack(
        eds_maps, pixel_size=f"{geo.eds_px!r} nm", slice_thickness=f"{geo.thickness!r} nm", modality="EDS",
        attrs={"beam_voltage": "5 kV", "beam_current": "1.6 nA", "binning": 4, "detector": "EDS (simulated)"},
    )
    sims = stack(
        sims_maps, pixel_size=f"{geo.sims_rep!r} nm", slice_thickness=f"{geo.thickness!r} nm", modality="SIMS",
        attrs={"primary_ion": "Xe+", "beam_energy": "30 keV", "beam_current": "1 nA", "frame_time": "5 min",
               "polarity": "+"},
    )
    counts = {
        "eds_counts": {n: list(t) for n, t in zip(tables.eds_names, tables.eds, strict=True)},
        "sims_counts": {n: {"background": b, "gain": g} for n, (b, g) in zip(tables.sims_names, tables.sims, strict=True)},
        "sims_yield": yields, "li_percent": dict(LI_PERCENT), "li_levels": levels,
    }
    truth = _truth(truth_lazy, eds, particles, geo.drift, geo.T, fractions, params, depth, geo.sims_true, counts)
    return (
        record(eds, "synthetic.cathode", **params),
        record(sims, "synthetic.cathode", **params),
        record(truth, "synthetic.cathode", **params),
    )


# -- the steps of cathode() ------------------------------------------------------
@dataclass(frozen=True)
class _Geometry:
    """The grids, the true EDS-to-SIMS affine and the drift of one phantom (lengths in nm)."""

    eds_grid: Grid
    sims_grid: Grid  # on the reported SIMS pixel size
    T: Affine  # EDS frame -> SIMS dataset coordinates
    drift: np.ndarray  # (n_slices, 2) nm, drift[0] = 0
    z: tuple[float, ...]  # slice depths, nm
    eds_px: float
    sims_rep: float  # reported SIMS pixel size
    sims_true: float  # true SIMS pixel size
    scale_error: float
    thickness: float
    rotation: float  # deg
    shift: np.ndarray  # SIMS field centre - EDS field centre, nm
    step: float  # drift random-walk step, nm


def _geometry(
    seed: int, n_slices: int, eds_shape: Any, sims_shape: Any, field: Any, eds_pixel_size: Any,
    sims_pixel_size: Any, sims_scale_error: Any, slice_thickness: Any, sims_rotation: Any, sims_shift: Any,
    drift_step: Any,
) -> _Geometry:
    """Parse the geometry options of :func:`cathode` and draw the drift random walk."""
    eds_px = _positive(eds_pixel_size, "eds_pixel_size")
    sims_rep = _positive(sims_pixel_size, "sims_pixel_size")
    err = _number(sims_scale_error, "sims_scale_error", -0.5, 0.5)
    sims_true = sims_rep * (1.0 + err)
    thickness = _positive(slice_thickness, "slice_thickness")
    if field is not None:
        if eds_shape is not None or sims_shape is not None:
            raise PfibsimsError(f"field: expected either field or eds_shape/sims_shape, got field={field!r} and shapes too")
        size = _positive(field, "field")
        eds_shape = (max(1, round(size / eds_px)),) * 2
        sims_shape = (max(1, round(size / sims_rep)),) * 2
    eds_grid = Grid(_shape2((216, 352) if eds_shape is None else eds_shape, "eds_shape"), eds_px, origin=eds_px / 2)
    sims_grid = Grid(_shape2((500, 500) if sims_shape is None else sims_shape, "sims_shape"), sims_rep, origin=sims_rep / 2)
    rotation = float(parse_quantity(sims_rotation, "deg", default_unit="deg", name="sims_rotation").magnitude)
    step = _positive(drift_step, "drift_step", zero=True)
    c_eds = np.array([(lo + hi) / 2 for lo, hi in eds_grid.extent])
    c_sims = np.array([(lo + hi) / 2 for lo, hi in sims_grid.extent])
    if sims_shift is None:
        shift = np.array([-0.04, 0.14]) * np.array([hi - lo for lo, hi in sims_grid.extent])
    else:
        shift = np.asarray(lengths_nm(sims_shift, 2, name="sims_shift"))
    T = Affine.from_parameters(
        rotation=rotation, scale=sims_rep / sims_true, shift=tuple(c_sims - c_eds + shift), center=tuple(c_eds)
    )
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_STREAM_DRIFT,)))
    drift = np.zeros((n_slices, 2))
    drift[1:] = np.cumsum(rng.normal(0.0, step, (n_slices - 1, 2)), axis=0) if step > 0 else 0.0
    z = tuple(float(v) for v in thickness * np.arange(n_slices, dtype=np.float64))
    return _Geometry(eds_grid, sims_grid, T, drift, z, eds_px, sims_rep, sims_true, err, thickness, rotation, shift, step)


@dataclass(frozen=True)
class _Tables:
    """Expected counts per phase of every channel, dose and matrix mixture included."""

    eds_names: list[str]
    eds: list[tuple[float, ...]]  # per EDS channel, counts per phase
    sims_names: list[str]
    sims: list[tuple[float, float]]  # per SIMS channel, (background, gain)

    @classmethod
    def of(cls, eds_dose: float, sims_dose: float, mixture: dict, *, bse: bool, li7: bool) -> _Tables:
        eds = [tuple(eds_dose * c for c in mixed_counts(EDS_COUNTS[ch], mixture)) for ch in EDS_COUNTS]
        eds_names = list(EDS_COUNTS)
        if bse:
            eds.append(tuple(eds_dose * c for c in mixed_counts(BSE_COUNTS, mixture)))
            eds_names.append("BSE")
        bg6, gain6 = SIMS_COUNTS["Li6"]
        sims, sims_names = [(sims_dose * bg6, sims_dose * gain6)], ["Li6"]
        if li7:
            sims.append((sims_dose * 5.0, sims_dose * gain6 * LI7_RATIO))
            sims_names.append("Li7")
        return cls(eds_names, eds, sims_names, sims)


def _halo(sigma_px: float) -> int:
    """Halo of a blur of ``sigma_px`` pixels: 4 sigma, at least none."""
    return int(4.0 * sigma_px + 0.5) if sigma_px > 0 else 0


def _region(geo: _Geometry, scene: kernels.Scene) -> tuple[float, ...]:
    """(z0, z1, y0, y1, x0, x1) nm: every EDS-frame point any map samples, plus the blur halos and margins."""
    pull = geo.T.inverse()
    corners = np.array([[y, x] for y in geo.sims_grid.extent[0] for x in geo.sims_grid.extent[1]])
    seen = np.vstack([pull(corners - d) for d in geo.drift] + [np.array([[lo, hi] for lo, hi in geo.eds_grid.extent]).T])
    margin = max(scene.eds_halo * geo.eds_px, scene.sims_halo * geo.sims_true) + 2 * max(geo.eds_px, geo.sims_true) + 100.0
    return (
        geo.z[0], geo.z[-1],
        float(seen[:, 0].min() - margin), float(seen[:, 0].max() + margin),
        float(seen[:, 1].min() - margin), float(seen[:, 1].max() + margin),
    )


def _lazy_maps(
    seed: int, geo: _Geometry, scene: kernels.Scene, tables: _Tables, particles: Particles, chunks: Any, token: str,
) -> tuple[dict[str, da.Array], dict[str, da.Array], da.Array]:
    """The lazy EDS and SIMS count maps and the (phase, Li) truth, one dask task a block."""
    lazy_particles = dask.delayed(particles, name=f"pfibsims-particles-{token}", traverse=False)
    n_slices = len(geo.z)
    eds_shape3 = (n_slices, *geo.eds_grid.shape)
    sims_shape3 = (n_slices, *geo.sims_grid.shape)
    eds_chunks, sims_chunks = _chunks(chunks, eds_shape3), _chunks(chunks, sims_shape3)

    def planes(kernel: Any, args: tuple, n: int, chunk: tuple, what: str) -> da.Array:
        """(n, z, y, x) float32 from a kernel of (z, y, x) blocks (a new leading axis unless an
        argument has it already)."""
        new_axis = None if any(isinstance(a, da.Array) and a.ndim == 4 for a in args) else 0
        return da.map_blocks(
            kernel, *args, new_axis=new_axis, chunks=((n,), *chunk), dtype=np.float32,
            meta=np.empty((0, 0, 0, 0), np.float32), name=f"pfibsims-{what}-{token}",
        )

    def noisy(kernel: Any, args: tuple, key: int, shape: tuple, table: Sequence[float], name: str) -> da.Array:
        dtype = _count_dtype(table)
        return da.map_blocks(
            kernel, *args, key, shape, dtype, dtype=dtype,
            meta=np.empty((0, 0, 0), dtype), name=f"pfibsims-{name}-{token}",
        )

    # EDS: one padded phase field a block (its chunks are the blocks plus halo, sub-sampled),
    # feeding the channels (blur + noise fused) and the truth.
    ss = scene.ss
    eds_base = da.broadcast_to(np.uint8(0), eds_shape3, chunks=eds_chunks)
    padded = tuple(tuple((n + 2 * scene.eds_halo) * ss for n in c) for c in eds_chunks[1:])
    field = planes(kernels.eds_field, (eds_base, lazy_particles, scene), 2, (eds_chunks[0], *padded), "eds-field")
    own = (eds_base, field if ss == 1 else None, lazy_particles, scene)  # ss > 1: truth is drawn alone
    truth = planes(kernels.eds_truth, own, 2, eds_chunks, "eds-truth")
    eds_maps = {
        n: noisy(kernels.eds_counts, (eds_base, field[0], c, scene), stream_key(seed, _STREAM_NOISE, c), eds_shape3,
                 tables.eds[c], n)
        for c, n in enumerate(tables.eds_names)
    }
    sims_base = da.broadcast_to(np.uint8(0), sims_shape3, chunks=sims_chunks)
    lam = planes(kernels.sims_expected, (sims_base, lazy_particles, scene), len(tables.sims), sims_chunks, "sims-expected")
    sims_maps = {
        n: noisy(
            kernels.noise, (lam[c],), stream_key(seed, _STREAM_NOISE, 100 + c), sims_shape3,
            (tables.sims[c][0] + 2 * tables.sims[c][1],), n,
        )
        for c, n in enumerate(tables.sims_names)
    }
    return eds_maps, sims_maps, truth


def _truth(
    lazy: da.Array, eds: xr.Dataset, particles: Particles, drift: np.ndarray, T: Affine,
    fractions: dict[str, float], params: dict, depth: float, sims_true: float, counts: dict,
) -> xr.Dataset:
    flags = {"flag_values": np.arange(len(PHASES), dtype=np.uint8), "flag_meanings": FLAG_MEANINGS}  # typed as the labels
    nm = {"units": LENGTH_UNIT}
    coords = {d: eds.coords[d] for d in ("z", "y", "x", "slice")}
    coords.update(component=("component", ["y", "x"]), axis=("axis", ["z", "y", "x"]))
    coords["particle"] = ("particle", np.arange(len(particles)))
    data = {
        "phase": (("z", "y", "x"), lazy[0].astype(np.uint8), {**flags, "units": "1", "long_name": "phase label at voxel centres"}),
        "li": (("z", "y", "x"), lazy[1], {"units": "1", "long_name": "noise-free Li signal (Li6 above background, per "
                                                                     "gain): SIMS yield x Li concentration"}),
        "li_percent": (("z", "y", "x"), da.map_blocks(kernels.percent, lazy[0], lazy[1], dtype=np.float32,
                                                      yields=np.array([counts["sims_yield"][p] for p in PHASES])),
                       {"units": "percent", "long_name": "Li concentration (atomic percent)"}),
        "drift": (("z", "component"), drift, {**nm, "long_name": "SIMS drift: q = T(p) + drift[k]"}),
        "particle_phase": ("particle", particles.phase, flags),
        "particle_center": (("particle", "axis"), particles.center, nm),
        "particle_radius": (("particle", "axis"), particles.radius, {**nm, "long_name": "semi-axes (LCO: core)"}),
        "particle_coating": ("particle", particles.coat, {**nm, "long_name": "Al2O3 coating thickness"}),
    }
    attrs = T.to_attrs({
        "modality": "truth",
        "depletion_depth": f"{depth:.12g} nm",
        "true_sims_pixel_size": f"{sims_true:.12g} nm",
        "reported_sims_pixel_size": params["sims_pixel_size"],
        # tables as JSON strings: every attr a string or a number, so the truth writes to netCDF too
        "volume_fractions": json.dumps(expected_fractions(fractions)),
        "requested_volume_fractions": json.dumps(dict(fractions)),
        **{k: json.dumps(v) for k, v in counts.items()},
        "sims_blur": params["sims_blur"],
        **history_attrs([]),
    })
    return xr.Dataset(data, coords=coords, attrs=attrs)
