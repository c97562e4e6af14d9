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
from typing import Any

import dask
import numpy as np
import xarray as xr

from ._engine.views import MAX_PIXELS, block_factor
from ._xr import block_mean, dequantify
from .dataset import HISTORY, HISTORY_JSON, history, history_attrs, record, validate
from .errors import DataModelError, PfibsimsError
from .grid import Grid
from .normalization import normalize as _normalize
from .progress import steps
from .registration import estimate_drift
from .registration import register as _register
from .resampling import coverage, resample
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
    if "z" not in views[0].dims or views[0].sizes["z"] == 1:
        return list(dask.persist(*views))
    parts = []
    with steps("fuse: reduced views, slice by slice", views[0].sizes["z"]) as advance:
        for k in range(views[0].sizes["z"]):
            parts.append(dask.persist(*[v.isel(z=slice(k, k + 1)) for v in views]))
            advance()
    return [xr.concat([p[i] for p in parts], dim="z", combine_attrs="override") for i in range(len(views))]


def _first_channel(ds: xr.Dataset, name: str) -> xr.DataArray:
    if not isinstance(ds, xr.Dataset) or not ds.data_vars:
        raise DataModelError(f"{name}: expected a Dataset with at least one channel, got {type(ds).__name__}")
    return ds[next(iter(ds.data_vars))]


def _target_grid(onto: Any, eds: xr.Dataset) -> Grid:
    if isinstance(onto, str):
        if onto != "eds":
            raise PfibsimsError(f"onto: expected 'eds', a Grid or a dataset, got {onto!r}")
        return Grid.of(eds, dims=("y", "x"))
    grid = Grid.of(onto)
    if "y" not in grid.dims or "x" not in grid.dims:
        raise PfibsimsError(f"onto: expected a grid with y and x, got dims {grid.dims}")
    return grid.select(("y", "x"))


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


def fuse(
    eds: xr.Dataset,
    sims: xr.Dataset,
    sem: xr.Dataset | None = None,
    *,
    drift: Any = True,
    register: Any = "rigid",
    metric: str = "mi",
    kernel: str = "lanczos",
    a: int = 3,
    normalize: str | None = None,
    onto: Any = "eds",
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
       search from the first answer (the global search runs once). The
       drift is then expressed relative to slice 0 (the data model's
       convention), its slice-0 offset folded into the transform.
    4. Resampling (:func:`~pfibsims.resampling.resample`) of every SIMS channel
       onto the target grid, the drift and the transform composed into one
       transform per slice, so each voxel is interpolated once; EDS channels
       are resampled only when the target is not the EDS grid.
    5. Optional normalisation of every channel
       (:func:`~pfibsims.normalization.normalize`, ``method=normalize``).

    SIMS slice ``k`` is matched with EDS slice ``k``: the stacks must have
    the same number of slices, and the result takes the EDS ``z``.

    Parameters
    ----------
    eds, sims : xarray.Dataset
        Stacks in the pfibsims data model, e.g. ``pfs.synthetic.cathode()``.
    sem : xarray.Dataset, optional
        SEM images (e.g. BSE) on the EDS frame, used for the EDS drift and
        kept as channels.
    drift : bool or xarray.DataArray
        SIMS drift handling (see step 1).
    register : {"translation", "rigid", "similarity", "affine"}, Affine or None
        Registration model, a known transform (fixed -> moving, nm), or none.
    metric : {"mi", "ncc", "phase"}
        Registration metric (mutual information by default).
    kernel, a : str, int
        Resampling kernel (Lanczos, ``a=3`` lobes by default).
    normalize : {"log", "minmax", "percentile"}, optional
        Normalise every channel after fusion.
    onto : "eds", Grid or Dataset
        Target grid (in-plane): the EDS grid by default.
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
        (``"pfibsims:affine"``, JSON), the SIMS (and EDS) drift in nm
        (``"pfibsims:drift"``), the registration report
        (``"pfibsims:registration"``) and the full history of both inputs
        and of every step.

    Raises
    ------
    DataModelError
        When the inputs are not in the data model or have different slice counts.
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
    eds = dequantify(eds, "eds")
    sims = dequantify(sims, "sims")
    sem = dequantify(sem, "sem")
    validate(eds)
    validate(sims)
    if sem is not None:
        validate(sem)
    nz = eds.sizes.get("z", 1)
    for name, ds in (("sims", sims), ("sem", sem)):
        if ds is not None and ds.sizes.get("z", 1) != nz:
            raise DataModelError(
                f"{name}: expected {nz} slices (as eds: slice k of each is matched), found {ds.sizes.get('z', 1)}"
            )
    if normalize is not None and not isinstance(normalize, str):
        raise PfibsimsError(f"normalize: expected None or a method name such as 'log', got {normalize!r}")
    if not (isinstance(register, Affine) or register is None or register is False or register in _MODELS):
        raise PfibsimsError(f"register: expected one of {_MODELS}, an Affine, or None, got {register!r}")
    grid = _target_grid(onto, eds)
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 64:
        raise PfibsimsError(f"max_pixels: expected an integer of at least 64 (pixels a slice), got {max_pixels!r}")

    # 1. drift slice to slice: EDS from SEM (the EDS frame then has none), SIMS from its first channel
    estimating = (drift is True) or (isinstance(register, str) and register in _MODELS)
    veds, vsims, vsem = _estimation_views(eds, sims, sem, max_pixels) if estimating else (eds, sims, sem)
    eds_drift = _slice_drift(drift is not False and drift is not None, vsem, "sem")
    fixed = veds if eds_drift is None else resample(veds, Grid.of(veds, dims=("y", "x")), drift=eds_drift)
    # the whole slice-to-slice drift (its trend too) when the cross-modal step measures it again (step 3)
    sims_drift = _slice_drift(drift, vsims, "sims", "keep" if isinstance(register, str) else None)
    moving = _first_channel(vsims, "sims")
    # 2. registration of SIMS onto the (drift-free) EDS frame, on reduced views
    report = None
    if isinstance(register, Affine):
        T = register
    elif register is None or register is False:
        T = Affine.identity()
    else:
        found = _register(moving, fixed, model=register, metric=metric, drift=sims_drift)
        T, report = found.transform, found.report
    # 3. an estimated SIMS drift is measured again against the matching EDS slices
    if drift is True and sims_drift is not None and isinstance(register, str):
        sims_drift = estimate_drift(moving, reference=fixed, transform=T, initial=sims_drift)
        # refined locally from the global answer through the new drift (a sharper pooled view), not searched again
        found = _register(moving, fixed, model=register, metric=metric, drift=sims_drift, initial=T, search="local")
        T, report = found.transform, found.report
        # the data model's gauge: drift relative to slice 0, its offset folded into the transform
        d0 = sims_drift.isel(z=0).sel(component=["y", "x"]).values
        T = Affine.translation(tuple(float(v) for v in d0)) @ T
        sims_drift = (sims_drift - sims_drift.isel(z=0)).assign_attrs(sims_drift.attrs)
    # 4. one interpolation per voxel: drift and registration composed per slice
    plain = Affine(T.matrix, T.dims)
    sims_on = resample(sims, grid, transform=plain, drift=sims_drift, kernel=kernel, a=a, chunks=chunks)
    parts = []
    for ds in (eds, sem):
        if ds is not None and (eds_drift is not None or Grid.of(ds, dims=("y", "x")) != grid):
            ds = resample(ds, grid, drift=eds_drift, kernel=kernel, a=a, chunks=chunks)
        if ds is not None:
            parts.append(ds)
    covered = coverage(sims, grid, transform=plain, drift=sims_drift)
    if "z" not in covered.dims:
        covered = covered.expand_dims(z=eds.sizes.get("z", 1))
    z = eds.coords["z"].variable
    pieces = [p.drop_vars([c for c in p.coords if c not in p.dims]).assign_coords(z=z) for p in parts + [sims_on]]
    pieces.append(covered.rename("coverage").drop_vars([c for c in covered.coords if c not in covered.dims]).assign_coords(z=z))
    fused = xr.merge(pieces, combine_attrs="override", join="exact")
    if "slice" in eds.coords:
        fused = fused.assign_coords(slice=eds.coords["slice"])
    # 5. optional normalisation
    if normalize is not None:
        channels = [v for v in fused.data_vars if v != "coverage"]
        fused = fused.assign(_normalize(fused[channels].where(fused["coverage"]), method=normalize, zeros="nan"))
    records = []
    for name, ds in (("eds", eds), ("sims", sims_on), ("sem", sem)):
        if ds is not None:
            records += [{**h, "input": name} for h in history(ds)]
    attrs = {
        "modality": "fused",
        **history_attrs(records),
        "sources": json.dumps(
            {n: {k: v for k, v in ds.attrs.items() if k not in (HISTORY, HISTORY_JSON)}
             for n, ds in (("eds", eds), ("sims", sims), ("sem", sem)) if ds is not None}
        ),
        "pfibsims:drift": json.dumps({"units": "nm", "sims": _drift_json(sims_drift), "eds": _drift_json(eds_drift)}),
        "pfibsims:registration": json.dumps(None if report is None else report.to_dict()),
    }
    fused.attrs = plain.to_attrs(attrs)
    return record(
        fused, "fuse", drift="estimated" if drift is True else "given" if sims_drift is not None else "none",
        register=register if isinstance(register, str) or register is None else "given", metric=metric,
        kernel=kernel, a=int(a), normalize=normalize, onto=grid,
    )
