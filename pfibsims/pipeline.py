"""`fuse`: the whole workflow in one call, composed of the public steps.

drift (:func:`~pfibsims.registration.estimate_drift`) -> registration
(:func:`~pfibsims.registration.register`) -> per-slice drift against EDS ->
resampling of every channel onto one grid (:func:`~pfibsims.resampling.resample`
with ``transform=`` and ``drift=``, one Lanczos interpolation per voxel: the
drift and the registration are composed into one transform per slice) ->
optional normalisation (:func:`~pfibsims.normalization.normalize`).  `fuse`
adds no step of its own.
"""

from __future__ import annotations

import json
import math
import numbers
import warnings
from typing import Any

import dask
import numpy as np
import xarray as xr

from ._engine.views import MAX_PIXELS, block_factor
from ._xr import as_stack, ascending, block_mean, dequantify
from .dataset import HISTORY, HISTORY_JSON, history, history_attrs, record, validate
from .errors import CoverageWarning, DataModelError, EstimationWarning, GridError, PfibsimsError
from .grid import Grid
from .normalization import normalize as _normalize
from .progress import steps
from .registration import Registration, estimate_drift
from .registration import register as _register
from .registration.crossdrift import WEAK_LINEAR, weak_linear
from .registration.levels import shared_fixed_sides
from .resampling import coverage, resample
from .resampling.drift import drift_nm, match_drift
from .resampling.slices import SliceMatch, describe, match_slices
from .transform import Affine

__all__ = ["fuse", "working_view"]

_MODELS = ("translation", "rigid", "similarity", "affine")
#: Largest in-plane size (pixels per slice) that drift and registration estimate from;
#: larger fields are estimated on block means (see :func:`working_view`).
MAX_WORKING_PIXELS = MAX_PIXELS


def working_view(ds: xr.Dataset, *, max_pixels: int = MAX_WORKING_PIXELS) -> xr.Dataset:
    """A reduced in-plane view of ``ds`` for estimation: ``f x f`` block means, lazily.

    ``f = ceil(sqrt(ny * nx / max_pixels))``, so the view has at most about
    ``max_pixels`` pixels a slice; ``f = 1`` returns ``ds`` itself. Block means
    (dask ``coarsen``, trailing pixels that do not fill a block are dropped)
    in float32; each coordinate is the mean of its block's centres, so the
    view is in the same physical frame (nm) as ``ds`` and an estimate made on
    it (a drift in nm, an `Affine`) applies to ``ds`` as it is, to within the
    view's pixel size (``f`` x the original).

    Examples
    --------
    >>> import numpy as np
    >>> from pfibsims import stack
    >>> ds = stack({"Li6": np.ones((2, 8, 8))}, pixel_size="72 nm", slice_thickness="60 nm")
    >>> dict(working_view(ds, max_pixels=16).sizes), float(working_view(ds, max_pixels=16).y[0])
    ({'z': 2, 'y': 4, 'x': 4}, 72.0)
    """
    out = block_mean(ds, max_pixels)
    if out is ds:
        return ds
    f = block_factor(ds.sizes["y"], ds.sizes["x"], max_pixels)
    return record(out, "working_view", block=int(f), max_pixels=int(max_pixels))


def _estimation_views(eds: xr.Dataset, sims: xr.Dataset, sem: xr.Dataset | None, max_pixels: int) -> tuple:
    """The inputs of steps 1-3: the data itself, or (large fields) persisted block-mean views."""
    views = [None if ds is None else working_view(ds, max_pixels=max_pixels) for ds in (eds, sims, sem)]
    reduced = [v for v, ds in zip(views, (eds, sims, sem), strict=False) if v is not None and v is not ds]
    if reduced:  # one read of the large inputs feeds every estimate, a slice at a time (bounded memory)
        persisted = iter(_persist_by_slice(reduced))
        views = [v if v is None or v is ds else next(persisted) for v, ds in zip(views, (eds, sims, sem), strict=False)]
    return tuple(views)


def _persist_by_slice(views: list[xr.Dataset]) -> list[xr.Dataset]:
    """``dask.persist`` of the views one z slice at a time, concatenated back (lazily) along z.

    One persist of the whole stack lets the scheduler interleave the slices, and the block-mean
    rechunking then holds partial chunks of many slices at once (2.4 GB for 10 slices of a 700 um
    field, growing with the slice count); a slice at a time holds one slice's chunks.
    """
    nzs = [v.sizes["z"] if "z" in v.dims else 1 for v in views]
    if max(nzs) == 1:
        return list(dask.persist(*views))
    parts: list[list] = [[] for _ in views]
    with steps("fuse: reduced views, slice by slice", max(nzs)) as advance:
        for k in range(max(nzs)):  # stacks of different slice counts (slices paired by depth): those with slice k
            have = [i for i, n in enumerate(nzs) if k < n]
            for i, done in zip(have, dask.persist(*[views[i].isel(z=slice(k, k + 1)) for i in have]), strict=True):
                parts[i].append(done)
            advance()
    return [xr.concat(p, dim="z", combine_attrs="override") for p in parts]


def _first_channel(ds: xr.Dataset, name: str) -> xr.DataArray:
    if not isinstance(ds, xr.Dataset) or not ds.data_vars:
        raise DataModelError(f"{name}: expected a Dataset with at least one channel, got {type(ds).__name__}")
    return ds[next(iter(ds.data_vars))]


# -- the frame: inputs as stacks with increasing axes, the target grid and its coordinates -----------
def _frame_inputs(eds: Any, sims: Any, sem: Any) -> tuple[Any, Any, Any, dict[str, Any]]:
    """Single maps as stacks of one slice and decreasing axes reversed (lazily), and what was done."""
    out, done = [], {"map": False, "map_z": "z" in eds.coords if hasattr(eds, "coords") else False, "reversed": {}}
    for name, ds in (("eds", eds), ("sims", sims), ("sem", sem)):
        if ds is None:
            out.append(None)
            continue
        if not isinstance(ds, xr.Dataset):
            raise DataModelError(f"{name}: expected an xarray Dataset of channels, got {type(ds).__name__}")
        ds, was_map = as_stack(ds)
        done["map"] = done["map"] or (was_map and name == "eds")
        ds, flipped = ascending(ds)
        if flipped:
            done["reversed"][name] = list(flipped)
        out.append(ds)
    return out[0], out[1], out[2], done


def _target(onto: Any, eds: xr.Dataset) -> tuple[Grid, dict[str, Any]]:
    """The in-plane target grid and the coordinates the result takes from it, built once.

    The EDS (or a given dataset's) coordinate variables are used as they are, so
    the result's grid is exactly the target's, to the last bit.
    """
    if isinstance(onto, str):
        if onto != "eds":
            raise PfibsimsError(f"onto: expected 'eds', a Grid or a dataset, got {onto!r}")
        onto = eds
    if isinstance(onto, (xr.Dataset, xr.DataArray)):
        onto, _ = ascending(onto)
    grid = Grid.of(onto, dims=None if isinstance(onto, Grid) else ("y", "x"))  # in-plane only: z may be uneven
    if "y" not in grid.dims or "x" not in grid.dims:
        raise PfibsimsError(f"onto: expected a grid with y and x, got dims {grid.dims}")
    grid = grid.select(("y", "x"))
    if isinstance(onto, (xr.Dataset, xr.DataArray)):
        return grid, {d: onto.coords[d].variable for d in ("y", "x")}
    return grid, {d: xr.Variable(*v) for d, v in grid.xr_coords().items()}


# -- slices: SIMS paired with EDS by depth --------------------------------------------------------
def _pair_slices(eds: xr.Dataset, sims: xr.Dataset, pair: Any) -> SliceMatch:
    """SIMS slices paired with EDS slices (see ``pair`` in :func:`fuse`); warns about the left-out ones."""
    if isinstance(pair, str) and pair == "index":
        if sims.sizes["z"] != eds.sizes["z"]:
            raise DataModelError(
                f"sims: expected {eds.sizes['z']} slices (as eds: pair='index' matches slice k with slice k), "
                f"found {sims.sizes['z']}; pair='z' pairs them by depth"
            )
        n = eds.sizes["z"]
        match = SliceMatch(tuple(range(n)), tuple(range(n)), (), (), (0.0,) * n, math.inf)
    elif isinstance(pair, str) and pair == "z":
        match = match_slices(eds, sims)
    elif isinstance(pair, str) or isinstance(pair, bool):
        raise PfibsimsError(f"pair: expected 'z', 'index' or a depth tolerance such as '30 nm', got {pair!r}")
    else:
        match = match_slices(eds, sims, tolerance=pair)
    if not match.reference:
        raise DataModelError(
            f"sims: no slice lies within {match.tolerance_nm:.6g} nm of an eds slice (eds z from "
            f"{float(eds.z[0]):.6g} to {float(eds.z[-1]):.6g}, sims z from {float(sims.z[0]):.6g} to "
            f"{float(sims.z[-1]):.6g} {eds.z.attrs.get('units', 'nm')}); check slice_thickness/z, or pass pair="
        )
    if match.unmatched_other or match.unmatched_reference:
        warnings.warn(f"fuse: {describe(match)}; the result has no SIMS data there (see attrs['pfibsims:slices'])",
                      CoverageWarning, stacklevel=3)
    return match


def _paired(ds: Any, index: tuple[int, ...], like: xr.Dataset | None = None) -> Any:
    """The slices ``index`` of ``ds`` (all, in order: ``ds`` itself), with the z of ``like`` when given."""
    if ds is None:
        return None
    out = ds if tuple(index) == tuple(range(ds.sizes["z"])) else ds.isel(z=list(index))
    return out if like is None else out.assign_coords(z=like.coords["z"].variable)


def _paired_drift(drift: Any, sims: xr.Dataset, match: SliceMatch, paired: xr.Dataset) -> Any:
    """A given drift's rows for the paired SIMS slices, labelled with the depths those slices take (``paired``'s z).

    Each SIMS slice takes the row at its own depth (:func:`~pfibsims.resampling.drift.match_drift`:
    a table with a ``z`` coordinate in any row order, or of more slices; a table without ``z`` row by row).
    """
    if not isinstance(drift, xr.DataArray):
        return drift
    rows = match_drift(drift, sims, name="drift", of="sims")  # one row per SIMS slice, in its order
    rows = rows if match.other == tuple(range(sims.sizes["z"])) else rows.isel(z=list(match.other))
    return rows.assign_coords(z=paired.coords["z"].variable)


def _slice_drift(value: Any, stack: xr.Dataset | None, name: str, trend: str | None = None) -> xr.DataArray | None:
    """``drift=`` as a drift DataArray (slice-to-slice estimate, or given) or None (no correction)."""
    if stack is None or value is None or value is False:
        return None
    if value is True:
        return estimate_drift(_first_channel(stack, name), trend=trend) if stack.sizes.get("z", 1) > 1 else None
    if isinstance(value, xr.DataArray):
        return value
    raise PfibsimsError(f"drift: expected True, False or a drift DataArray (z, component), got {type(value).__name__}")


def _drift_json(drift: xr.DataArray | None) -> list | None:
    return None if drift is None else drift.transpose("z", "component").sel(component=["y", "x"]).values.tolist()


def _fused_attrs(eds: xr.Dataset, sims: xr.Dataset, sem: Any, sims_history: list, extra: dict) -> dict[str, Any]:
    """The fused dataset's attrs: the inputs' histories (each record tagged with its input), their settings, ``extra``."""
    records = []
    for name, hist in (("eds", history(eds)), ("sims", sims_history), ("sem", [] if sem is None else history(sem))):
        records += [{**h, "input": name} for h in hist]
    sources = {n: {k: v for k, v in ds.attrs.items() if k not in (HISTORY, HISTORY_JSON)}
               for n, ds in (("eds", eds), ("sims", sims), ("sem", sem)) if ds is not None}
    return {"modality": "fused", **history_attrs(records), "sources": json.dumps(sources), **extra}


def _check_options(normalize: Any, register: Any, initial: Any, max_pixels: Any, min_coverage: Any) -> None:
    if normalize is not None and not isinstance(normalize, str):
        raise PfibsimsError(f"normalize: expected None or a method name such as 'log', got {normalize!r}")
    if not (isinstance(register, Affine) or register is None or register is False or register in _MODELS):
        raise PfibsimsError(f"register: expected one of {_MODELS}, an Affine, or None, got {register!r}")
    if initial is not None and not isinstance(initial, Affine):
        raise PfibsimsError(f"initial: expected a pfibsims.Affine (EDS point -> SIMS point, nm) or None, got "
                            f"{type(initial).__name__}")
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 64:
        raise PfibsimsError(f"max_pixels: expected an integer of at least 64 (pixels a slice), got {max_pixels!r}")
    _check_fraction(min_coverage, "min_coverage")


def _check_fraction(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= float(value) <= 1:
        raise PfibsimsError(f"{name}: expected a fraction between 0 and 1 such as 0.1, got {value!r}")
    return float(value)


#: The SIMS coverage of the target is checked on at most this many target points a slice.
COVERAGE_POINTS = 256 * 256


def _check_coverage(sims: xr.Dataset, grid: Grid, T: Affine, drift: Any, min_coverage: float, strict: bool) -> float:
    """The fraction of the target grid (paired slices) that the SIMS field reaches; warns or raises below the minimum.

    Geometry only (numpy, no data read): the target voxel centres on a sub-lattice
    of at most :data:`COVERAGE_POINTS` a slice, mapped through each slice's transform
    into the SIMS extent.
    """
    step = max(1, math.ceil(math.sqrt(grid.size / COVERAGE_POINTS)))
    ys, xs = (c[::step] for c in grid.coords().values())
    points = np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)
    (ylo, yhi), (xlo, xhi) = Grid.of(sims, dims=("y", "x")).extent
    shifts = np.zeros((sims.sizes["z"], 2)) if drift is None else drift_nm(drift, sims, of="sims")
    inside = 0
    for dy, dx in shifts:
        q = (Affine.translation((float(dy), float(dx))) @ T)(points)
        inside += int(np.count_nonzero((q[:, 0] >= ylo) & (q[:, 0] <= yhi) & (q[:, 1] >= xlo) & (q[:, 1] <= xhi)))
    fraction = inside / (points.shape[0] * len(shifts))
    if fraction < min_coverage:
        message = (
            f"sims: the SIMS field covers {100 * fraction:.3g} % of the target grid through the transform, below "
            f"min_coverage={100 * min_coverage:.3g} % (target y {grid.extent[0][0]:.6g}..{grid.extent[0][1]:.6g} nm, "
            f"x {grid.extent[1][0]:.6g}..{grid.extent[1][1]:.6g} nm; SIMS y {ylo:.6g}..{yhi:.6g} nm, x {xlo:.6g}.."
            f"{xhi:.6g} nm); the fields barely overlap: give an initial transform (initial=, CLI --initial) or "
            f"register= a known Affine"
        )
        if strict or fraction == 0:  # no SIMS data at all would remain: never a result
            raise GridError(message)
        warnings.warn(message, CoverageWarning, stacklevel=3)
    return fraction


def _nan_fillable(ds: xr.Dataset, kernel: str) -> xr.Dataset:
    """``ds`` with integer and boolean channels as floats (exactly: float32 up to 16 bits) for ``kernel="nearest"``,
    which keeps the dtype: NaN then marks the target voxels the field misses, as with the other kernels."""
    if kernel != "nearest":
        return ds
    return ds.assign({v: ds[v].astype(np.float32 if ds[v].dtype.itemsize <= 2 else np.float64)
                      for v in ds.data_vars if ds[v].dtype.kind in "biu"})


def _assemble(eds: xr.Dataset, sem: Any, sims: xr.Dataset, match: SliceMatch, grid: Grid, coords: dict,
              T: Affine, sims_drift: Any, eds_drift: Any, *, kernel: str, a: int, chunks: Any) -> tuple[xr.Dataset, list]:
    """Every channel on the target grid and the EDS z, with the target's own coordinates: one exact merge.

    SIMS (its paired slices) is resampled through its per-slice transforms; EDS and
    SEM only when the target is not their grid or they drift. EDS slices without a
    SIMS partner get NaN SIMS channels and no coverage. Returns the merged dataset
    and the history of the SIMS resampling.
    """
    sims_on = resample(_nan_fillable(sims, kernel), grid, transform=T, drift=sims_drift, kernel=kernel, a=a, chunks=chunks)
    covered = coverage(sims, grid, transform=T, drift=sims_drift).rename("coverage")
    if "z" not in covered.dims:
        covered = covered.expand_dims(z=sims.sizes["z"])
    parts = []
    for ds in (eds, sem):
        if ds is not None and (eds_drift is not None or Grid.of(ds, dims=("y", "x")) != grid):
            ds = resample(_nan_fillable(ds, kernel), grid, drift=eds_drift, kernel=kernel, a=a, chunks=chunks)
        if ds is not None:
            parts.append(ds)
    z = eds.coords["z"].variable
    paired_z = z[list(match.reference)] if not match.one_to_one else z
    pieces = []
    for p, zc in [(p, z) for p in parts] + [(sims_on, paired_z), (covered, paired_z)]:
        p = p.drop_vars([c for c in p.coords if c not in p.dims]).assign_coords({**coords, "z": zc})
        pieces.append(p)
    if not match.one_to_one:  # EDS slices without a SIMS partner: NaN channels, no coverage
        pieces[-2] = pieces[-2].reindex(z=z.values)
        pieces[-1] = pieces[-1].reindex(z=z.values, fill_value=False)
        pieces[-2:] = [p.assign_coords(z=z) for p in pieces[-2:]]
    fused = xr.merge(pieces, combine_attrs="override", join="exact")
    if "slice" in eds.coords:
        fused = fused.assign_coords(slice=eds.coords["slice"])
    return fused, history(sims_on)


def fuse(
    eds: xr.Dataset,
    sims: xr.Dataset,
    sem: xr.Dataset | None = None,
    *,
    drift: Any = True,
    register: Any = "rigid",
    metric: str = "mi",
    initial: Affine | None = None,
    kernel: str = "lanczos",
    a: int = 3,
    normalize: str | None = None,
    onto: Any = "eds",
    pair: Any = "z",
    min_coverage: float = 0.1,
    strict: bool = False,
    chunks: Any = None,
    max_pixels: int = MAX_WORKING_PIXELS,
) -> xr.Dataset:
    """Fuse EDS and SIMS (and SEM) stacks into one dataset on one voxel grid.

    Steps, each a public function (see the module docstring):

    1. Drift, slice to slice (:func:`~pfibsims.registration.estimate_drift`,
       relative to slice 0): of SIMS from its first channel (``drift=True``;
       a drift DataArray is used as given; ``False`` skips it; its smooth
       trend is kept when step 3 measures the drift again, removed
       otherwise: see ``trend`` there) and, with ``sem``, of EDS from the
       first SEM channel.
    2. Registration of SIMS onto EDS (:func:`~pfibsims.registration.register`,
       ``model=register``, on drift-corrected reduced views), or the
       `Affine` given, or none (``register=None``: same frame).
    3. With ``drift=True`` and a registration, the SIMS drift is measured
       again slice by slice against the matching (drift-free) EDS slice
       through the transform (cross-modal
       :func:`~pfibsims.registration.estimate_drift`), so no error accumulates
       along the stack, and the transform is refined through it by a local
       search from the first answer (the global search runs once). Where
       the EDS channels predict SIMS poorly by a linear relation (median
       multiple correlation below
       :data:`~pfibsims.registration.crossdrift.WEAK_LINEAR`, e.g. a
       non-monotonic contrast), that drift can be pixels off: it is not
       used, the slice-to-slice drift (trend kept) and the first
       registration stand, with an EstimationWarning. The
       drift is then expressed relative to slice 0 (the data model's
       convention), its slice-0 offset folded into the transform.
    4. Resampling (:func:`~pfibsims.resampling.resample`) of every SIMS channel
       onto the target grid, the drift and the transform composed into one
       transform per slice, so each voxel is interpolated once; EDS channels
       are resampled only when the target is not the EDS grid.
    5. Optional normalisation of every channel
       (:func:`~pfibsims.normalization.normalize`, ``method=normalize``).

    Frames: any regular grids in any frame. Origins may be anywhere (stage
    or centred coordinates); an axis whose coordinate decreases (image rows
    stored top down) is reversed first, lazily (the result's axes
    increase, as the data model wants; the history records which were).
    A 2-D map (no ``z``, or one slice) is fused as one slice and the result
    is a 2-D map again. The result's in-plane coordinates are the target's
    own (the EDS ones by default), taken once: its grid is exactly the
    target grid.

    Slices are paired by depth (``pair="z"``,
    :func:`~pfibsims.resampling.match_slices`): each SIMS slice goes with
    the EDS slice nearest in ``z``, within half a slice spacing, mutual
    nearest only. The result has every EDS slice (the EDS ``z``); EDS slices
    without a SIMS partner have NaN SIMS channels and no coverage, SIMS
    slices without an EDS partner are left out, and both are warned about
    (:class:`~pfibsims.errors.CoverageWarning`) and listed in
    ``attrs["pfibsims:slices"]``. Give measured or scaled depths to the
    inputs (``stack(z=...)``, :func:`~pfibsims.dataset.with_depths` with a
    ``total_depth``) when the slices are uneven.

    Parameters
    ----------
    eds, sims : xarray.Dataset
        Stacks in the pfibsims data model, e.g. ``pfs.synthetic.cathode()``,
        or single maps.
    sem : xarray.Dataset, optional
        SEM images (e.g. BSE) on the EDS frame, one per EDS slice, used for
        the EDS drift and kept as channels.
    drift : bool or xarray.DataArray
        SIMS drift handling (see step 1); a given drift has a row for each
        SIMS slice, matched by depth (its ``z``, in the SIMS stack's depths,
        as :func:`resample` matches them; a table without ``z``: one row a
        SIMS slice, in order). ``False`` (or None) also skips the EDS drift from ``sem``:
        no drift is corrected at all.
    register : {"translation", "rigid", "similarity", "affine"}, Affine, Registration or None
        Registration model, a known transform (fixed -> moving, nm; a
        :class:`Registration` from :func:`register` gives its ``transform``), or none.
    metric : {"mi", "ncc", "phase"}
        Registration metric (mutual information by default).
    initial : Affine, optional
        A first guess of the transform (EDS point -> SIMS point, nm), e.g.
        the stage offset between the two fields: the registration starts from
        it; with ``register=None`` it is the transform used.
    kernel, a : str, int
        Resampling kernel (Lanczos, ``a=3`` lobes by default). Count
        channels are clipped at 0 after resampling
        (:func:`~pfibsims.resampling.resample`, ``clip=None``): Lanczos
        ringing would make negative counts. With ``"nearest"`` the integer
        channels resampled come out as floats (float32 up to 16 bits, exact),
        NaN where the field misses the target.
    normalize : {"log", "minmax", "percentile"}, optional
        Normalise every channel after fusion, over the voxels the SIMS field
        covers: every channel, EDS included, is NaN outside the ``coverage``,
        and under ``"log"`` counts of 0 or less are NaN (``zeros="nan"`` of
        :func:`~pfibsims.normalization.normalize`).
    onto : "eds", Grid or Dataset
        Target grid (in-plane): the EDS grid by default.
    pair : {"z", "index"} or length
        How SIMS slices pair with EDS slices: by depth (``"z"``, within half
        a slice spacing), by depth within a given tolerance (e.g.
        ``"20 nm"``), or slice ``k`` with slice ``k`` (``"index"``; the
        counts must then agree).
    min_coverage : float
        The fraction of the target (paired slices) the SIMS field must reach
        through the transform (default 0.1); below it :func:`fuse` warns
        (:class:`~pfibsims.errors.CoverageWarning`), or raises under
        ``strict`` (and always when the fields do not overlap at all).
        Checked from the geometry alone.
    strict : bool
        Raise :class:`~pfibsims.errors.GridError` instead of warning when
        the coverage is below ``min_coverage``.
    chunks : optional
        Output chunks of the resampled channels (see :func:`~pfibsims.resampling.resample`).
    max_pixels : int
        Steps 1-3 estimate from at most about this many pixels a slice: a
        larger field (e.g. 700 um: 9722^2 SIMS px) is estimated on block means
        (:func:`working_view`, persisted once, a few hundred MB for 39
        slices), so the estimates are limited to the view's pixel size and
        no step holds a full-resolution slice. Steps 4-5 use the full data.

    Returns
    -------
    xarray.Dataset
        Every channel on one grid, plus a boolean ``coverage`` (True where the
        SIMS field reaches), lazy. Attrs: ``modality="fused"``, the transform
        (``"pfibsims:affine"``, JSON), the SIMS (and EDS) drift in nm of the
        paired SIMS slices (``"pfibsims:drift"``), the registration report
        (``"pfibsims:registration"``), the slice pairs
        (``"pfibsims:slices"``) and the full history of both inputs and of
        every step (the ``fuse`` record holds the SIMS coverage fraction).

    Raises
    ------
    DataModelError
        When the inputs are not in the data model, no SIMS slice pairs with
        an EDS slice, or the SEM slices are not the EDS ones.
    GridError
        When the SIMS field misses the target, or under ``strict`` when the
        SIMS coverage is below ``min_coverage``.
    RegistrationError
        When registration fails (see :func:`~pfibsims.registration.register`).

    Examples
    --------
    >>> import pfibsims as pfs
    >>> eds, sims, truth = pfs.synthetic.cathode(seed=0, n_slices=2, eds_shape=(48, 64), sims_shape=(96, 96))
    >>> vol = pfs.fuse(eds, sims, register=pfs.Affine.from_attrs(truth.attrs), drift=truth.drift)
    >>> sorted(vol.data_vars)
    ['Al_Ka', 'C_Ka', 'Co_La', 'Li6', 'Zr_La', 'coverage']
    """
    eds, sims, sem = (None if ds is None else dequantify(ds, n) for ds, n in ((eds, "eds"), (sims, "sims"), (sem, "sem")))
    eds, sims, sem, framing = _frame_inputs(eds, sims, sem)
    for ds, name in ((eds, "eds"), (sims, "sims"), (sem, "sem")):
        try:
            validate(ds) if ds is not None else None
        except DataModelError as exc:  # validate's message names a variable or coordinate, not the argument
            raise DataModelError(f"{name}: {exc}") from None
    if sem is not None:
        if sem.sizes["z"] != eds.sizes["z"]:
            raise DataModelError(
                f"sem: expected {eds.sizes['z']} slices (as eds: SEM images are on the EDS frame), found {sem.sizes['z']}"
            )
    register = register.transform if isinstance(register, Registration) else register
    _check_options(normalize, register, initial, max_pixels, min_coverage)
    grid, coords = _target(onto, eds)
    match = _pair_slices(eds, sims, pair)
    paired = _paired(sims, match.other, like=_paired(eds, match.reference))  # paired SIMS slice k: EDS z of its pair
    drift = _paired_drift(drift, sims, match, paired)
    sims = paired

    # 1. drift slice to slice: EDS from SEM (the EDS frame then has none), SIMS from its first channel
    estimating = (drift is True) or (isinstance(register, str) and register in _MODELS)
    veds, vsims, vsem = _estimation_views(eds, sims, sem, max_pixels) if estimating else (eds, sims, sem)
    eds_drift = _slice_drift(drift is not False and drift is not None, vsem, "sem")
    fixed = veds if eds_drift is None else resample(veds, Grid.of(veds, dims=("y", "x")), drift=eds_drift)
    fixed = _paired(fixed, match.reference)  # the EDS slices the SIMS slices are paired with
    # the whole slice-to-slice drift (its trend too) when the cross-modal step measures it again (step 3)
    sims_drift = _slice_drift(drift, vsims, "sims", "keep" if isinstance(register, str) else None)
    moving = _first_channel(vsims, "sims")
    # 2.-3. the two registrations share the fixed sides of their levels (the same EDS view): the second makes none
    with shared_fixed_sides():
        # 2. registration of SIMS onto the (drift-free) EDS frame, on reduced views
        report = None
        if isinstance(register, Affine):
            T = register
        elif register is None or register is False:
            T = Affine.identity() if initial is None else initial
        else:
            # from the initial guess, when given: a local search around it (see register)
            found = _register(moving, fixed, model=register, metric=metric, drift=sims_drift, initial=initial)
            T, report = found.transform, found.report
        # 3. an estimated SIMS drift is measured again against the matching EDS slices
        if drift is True and sims_drift is not None and isinstance(register, str):
            cross = estimate_drift(moving, reference=fixed, transform=T, initial=sims_drift)
            if not weak_linear(cross.quality):
                sims_drift = cross
                # refined locally from the global answer through the new drift (a sharper pooled view), not searched again
                found = _register(moving, fixed, model=register, metric=metric, drift=sims_drift, initial=T, search="local")
                T, report = found.transform, found.report
            else:  # a linear prediction this weak can put the drift pixels off (a non-monotonic contrast): not used
                warnings.warn(
                    f"fuse: the cross-modal drift is not used (the EDS channels predict SIMS poorly by a linear relation: "
                    f"median multiple correlation {float(np.median(cross.quality)):.2f}, below {WEAK_LINEAR}); the "
                    "slice-to-slice drift, its smooth trend kept, and the first registration stand. Slice-to-slice "
                    "correlation cannot tell a smooth drift from structures that lean through the stack: give drift= "
                    "(e.g. estimate_drift(sims[...], fiducial=...)) if that matters",
                    EstimationWarning, stacklevel=2)
            # the data model's gauge: drift relative to slice 0, its offset folded into the transform
            d0 = sims_drift.isel(z=0).sel(component=["y", "x"]).values
            T = Affine.translation(tuple(float(v) for v in d0)) @ T
            sims_drift = (sims_drift - sims_drift.isel(z=0)).assign_attrs(sims_drift.attrs)
    # 4. one interpolation per voxel: drift and registration composed per slice
    plain = Affine(T.matrix, T.dims)
    covered_fraction = _check_coverage(sims, grid, plain, sims_drift, min_coverage, strict)
    fused, sims_history = _assemble(eds, sem, sims, match, grid, coords, plain, sims_drift, eds_drift,
                                    kernel=kernel, a=a, chunks=chunks)
    # 5. optional normalisation
    if normalize is not None:
        channels = [v for v in fused.data_vars if v != "coverage"]
        try:
            fused = fused.assign(_normalize(fused[channels].where(fused["coverage"]), method=normalize, zeros="nan"))
        except PfibsimsError as exc:  # normalize names its own arguments ('method: ...', 'data: ...')
            raise type(exc)(f"normalize={normalize!r}: {exc}") from None
    if framing["map"]:  # a single map in, a single map out (its depth a scalar coordinate if it had one)
        fused = fused.isel(z=0, drop=not framing["map_z"])
    fused.attrs = plain.to_attrs(_fused_attrs(eds, sims, sem, sims_history, {
        "pfibsims:drift": json.dumps({"units": "nm", "sims": _drift_json(sims_drift), "eds": _drift_json(eds_drift)}),
        "pfibsims:registration": json.dumps(None if report is None else report.to_dict()),
        "pfibsims:slices": json.dumps({"eds": "reference", "sims": "other", **match.to_dict()}),
    }))
    return record(
        fused, "fuse", drift="estimated" if drift is True else "given" if sims_drift is not None else "none",
        register=register if isinstance(register, str) or register is None else "given", metric=metric,
        kernel=kernel, a=int(a), normalize=normalize, onto=grid, initial=initial,
        sims_coverage=covered_fraction, min_coverage=float(min_coverage), pair=pair if isinstance(pair, str) else str(pair),
        reversed_axes=framing["reversed"], single_map=framing["map"],
    )
