"""Grid-to-grid resampling: windowed-sinc (Lanczos), cubic, linear, nearest; lazy and chunked.

``resample(sims, onto=eds, transform=T)`` puts SIMS on the EDS grid.  The
transform *pulls*: it maps a point of the target grid (nm) to the point of
the source field whose value lands there, as ``scipy.ndimage.affine_transform``
and ITK do.

Pixel-centre convention: coordinates are voxel centres and a grid's extent
runs half a spacing beyond its first and last centres.  The target voxel at
``p`` takes the source value at ``T(p)``; with ``T`` the identity and two
grids with the same extent (``Grid.with_shape``) this is exactly the geometry
of Pillow's ``Image.resize``, and with ``kernel="lanczos", a=3`` the weights
are Pillow's LANCZOS weights.

Layers: this front door (inputs, fill, clip, drift, coverage) -> the geometry
(:mod:`.geometry`: physical units to one index-space spec an axis) -> the graph
(:mod:`.graph`) -> numpy/numba kernels on one window (:mod:`.kernels`).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from .._xr import ascending, check_not_empty, dequantify
from ..dataset import record
from ..errors import DataModelError, GridError, PfibsimsError
from ..grid import Grid
from ..transform import Affine
from .drift import compose, drift_nm
from .geometry import (
    as_affine,
    axis_specs,
    check_kernel,
    coverage_summary,
    default_chunks,
    out_dtype,
    output_chunks,
    source_axis,
    target_grid,
)
from .graph import Keep, Plan, coverage_array, resample_array, resample_numpy

__all__ = ["coverage", "resample"]


# -- the front door -------------------------------------------------------
def _is_counts(arr: Any) -> bool:
    return str(arr.attrs.get("units", "")).strip().lower() in ("counts", "count")


def _clips(arr: Any, clip: Any, kernel: str) -> bool:
    """Whether the resampled ``arr`` is clipped at 0 (see ``clip`` in :func:`resample`)."""
    if kernel == "nearest":
        return False
    return bool(clip) if clip is not None else _is_counts(arr)


def _check_clip(clip: Any) -> None:
    if clip is not None and not isinstance(clip, (bool, np.bool_)):
        raise PfibsimsError(f"clip: expected None (clip count channels), True or False, got {clip!r}")


def _resample_da(arr: xr.DataArray, grid: Grid, coords: dict, kernel: str, a: int, fill: Any, chunks: Any,
                 geometry: list, per_slice: bool, clip: Any = False) -> xr.DataArray:
    """Resample one variable; ``geometry`` holds one ``(specs, warp)``, or one per z slice (``per_slice``)."""
    if arr.dtype.kind not in "biuf":
        raise DataModelError(f"data: expected real numbers in {arr.name!r}, got dtype {arr.dtype} (an imaginary part would be lost)")
    dims_r = grid.dims
    missing = [d for d in dims_r if d not in arr.dims]
    if missing:
        raise DataModelError(f"data: expected dims including {dims_r} (those of the target grid), "
                             f"found {tuple(arr.dims)} in {arr.name!r}")
    order = [d for d in arr.dims if d not in dims_r] + list(dims_r)
    n_keep = arr.ndim - len(dims_r)
    if per_slice and (order[0] != "z" or n_keep != 1 or arr.sizes["z"] != len(geometry)):
        raise DataModelError(f"data: per-slice transforms need (z, {', '.join(dims_r)}) variables, found {arr.dims} "
                             f"in {arr.name!r}")
    arr_t = arr.transpose(*order)
    out_shape = arr_t.shape[:n_keep] + grid.shape
    dtype = out_dtype(arr.dtype, kernel)
    if kernel == "nearest" and dtype.kind != "f":
        covered = all(coverage_summary(specs_r, warp, grid.shape)[1] for specs_r, warp in geometry)
        fill = _integer_fill(fill, dtype, covered, arr.name)
    elif dtype.kind == "f" and math.isfinite(fill) and abs(fill) > float(np.finfo(dtype).max):  # not cast to inf
        raise PfibsimsError(f"fill: expected a value that {dtype} holds (up to {np.finfo(dtype).max:.6g} in size), "
                            f"got {fill!r} for {arr.name!r}")
    plans = [Plan(tuple([Keep()] * n_keep + list(specs_r)), out_shape, warp, kernel, int(a), fill, dtype)
             for specs_r, warp in geometry]
    data = arr_t.data
    lazy = isinstance(data, da.Array)
    identity = all(p.warp is None and all(isinstance(s, Keep) for s in p.axes) for p in plans)
    if not lazy and chunks is None:  # numpy in, numpy out: no dask (small inputs do not pay its fixed costs)
        result = np.asarray(data).astype(dtype) if identity else resample_numpy(np.asarray(data),
                                                                                plans if per_slice else plans[0])
    else:
        src = data if lazy else da.from_array(np.asarray(data), chunks=data.shape)
        keep_defaults = tuple(src.chunks[k] if lazy else (1 if d == "z" else n) for k, (d, n) in
                              enumerate(zip(order, out_shape, strict=True)))
        src_chunks = keep_defaults[:n_keep] + tuple(src.chunks[n_keep:])
        if per_slice:  # a slice a block by default, as each slice is its own resampling
            src_chunks = ((1,) * out_shape[0],) + src_chunks[1:]
        defaults = default_chunks(tuple(order), plans[0].axes, src_chunks, out_shape)
        out_chunks = output_chunks(chunks, tuple(order), out_shape, defaults, dtype)
        if identity:
            result = src.astype(dtype)
            result = result.rechunk(out_chunks) if chunks is not None else result
        elif per_slice:  # one plan a slice: blocks of one slice (then the z chunks asked for, if any)
            result = resample_array(src, plans, ((1,) * out_shape[0],) + out_chunks[1:])
            result = result.rechunk(out_chunks) if result.chunks != out_chunks else result
        else:
            result = resample_array(src, plans[0], out_chunks)
    if _clips(arr, clip, kernel):  # NaN (outside the field) stays NaN, and so does a negative fill
        result = _clip_at_zero(result, plans if per_slice else plans[0], fill)
    keep_coords = {k: v.variable for k, v in arr.coords.items() if not set(v.dims) & set(dims_r)}
    out = xr.DataArray(result, dims=order, coords={**keep_coords, **coords}, attrs=dict(arr.attrs), name=arr.name)
    return out.transpose(*arr.dims)


def _clip_at_zero(result: Any, plans: Any, fill: Any) -> Any:
    """``result`` clipped at 0 where the target sees the source; outside, the fill is kept as given."""
    eager = isinstance(result, np.ndarray)
    if not fill < 0:  # NaN and fills >= 0 are unchanged by the clip
        return np.maximum(result, 0, out=result) if eager else da.maximum(result, np.zeros((), result.dtype))
    chunks = tuple((n,) for n in result.shape) if eager else result.chunks
    if not isinstance(plans, Plan):  # one plan a slice: blocks of one slice
        chunks = ((1,) * result.shape[0],) + chunks[1:]
    inside = coverage_array(plans, chunks)
    if eager:
        return np.where(inside.compute(), np.maximum(result, 0), result)
    inside = inside.rechunk(result.chunks) if inside.chunks != result.chunks else inside
    return da.where(inside, da.maximum(result, np.zeros((), result.dtype)), result)


def _integer_fill(fill: Any, dtype: np.dtype, covered: bool, name: Any) -> Any:
    """The fill of nearest-neighbour integer data, as ``dtype`` (NaN only where every voxel is covered)."""
    if isinstance(fill, float) and math.isnan(fill):
        fill_v = 0
        if not covered:
            raise PfibsimsError(f"fill: expected a value of {dtype} for {name!r} (NaN does not fit), got nan; "
                                f"part of the target lies outside the source: pass e.g. fill=0")
    else:
        fill_v = fill
        lo, hi = (np.iinfo(dtype).min, np.iinfo(dtype).max) if dtype.kind in "iu" else (0, 1)  # bool: 0 or 1
        if not (float(fill).is_integer() and lo <= fill <= hi):  # never wrapped (-1 is not 4294967295)
            raise PfibsimsError(f"fill: expected a value that fits {dtype} ({lo}..{hi}), got {fill!r}")
    return np.asarray(fill_v).astype(dtype)[()]


def resample(
    data: xr.DataArray | xr.Dataset,
    onto: Any,
    *,
    transform: Affine | None = None,
    drift: xr.DataArray | None = None,
    kernel: str = "lanczos",
    a: int = 3,
    fill: Any = np.nan,
    clip: bool | None = None,
    chunks: Any = None,
) -> xr.DataArray | xr.Dataset:
    """Resample data onto a target grid, optionally through an affine map and each slice's drift.

    Parameters
    ----------
    data : xarray.DataArray or xarray.Dataset
        Channels with spatial coordinates in a length unit (every channel of a
        Dataset is resampled); a NaN or infinite centre on a resampled axis
        is a ``GridError`` naming the coordinate. Along ``z`` the coordinate may be uneven
        (measured slice depths); in-plane it must be regular when
        ``transform`` rotates or shears. A ``y`` or ``x`` running high -> low
        (rows stored top down) is read at its own positions (the result of
        ``data.sortby``); slices keep their order.
    onto : Grid, xarray.DataArray or xarray.Dataset
        The target grid (its ``Grid.of``). Its dims are the axes resampled: a
        ``(y, x)`` target with ``(z, y, x)`` data resamples slice by slice,
        keeping ``z``. A target axis whose coordinate runs high -> low (image
        rows stored top down) is resampled on the increasing grid and the
        result reversed along it: the output has ``onto``'s coordinates in
        ``onto``'s order, each voxel the value at its position.
    transform : Affine or sequence of Affine, optional
        Maps a *target* point (nm) to the *source* point whose value lands
        there (it pulls). ``None``: the same frame (a change of grid only).
        A 2-D ``(y, x)`` transform acts on every slice; ``z`` may be scaled
        and shifted but not mixed with ``y``/``x``. A sequence holds one
        in-plane transform per ``z`` slice of ``data`` (e.g. a registration
        composed with each slice's drift), for an in-plane target grid.
    drift : xarray.DataArray, optional
        Per-slice drift ``(z, component)`` with length units, as
        :func:`~pfibsims.registration.estimate_drift` returns: each ``z``
        slice of ``data`` takes the row at its depth (the table's ``z``
        coordinate, any row order, rows of other slices left out; a slice
        with no row is an error; a table without ``z`` is taken row by row,
        one a slice). Slice ``k`` goes through
        ``Affine.translation(drift[k]) @ transform``
        (:func:`~pfibsims.resampling.slice_transforms`), so drift correction
        and registration are one interpolation.  ``transform`` must then be
        in-plane (or ``None``: drift correction alone, onto the data's own
        grid when ``onto`` is the data).
    kernel : {"lanczos", "cubic", "linear", "nearest"}
        ``lanczos`` is ``sinc(x) sinc(x/a)``; ``cubic`` is Keys' cubic with
        ``-0.5`` (Pillow's BICUBIC); ``nearest`` keeps the dtype (labels).
        ``nearest`` breaks an exact tie (a source point half way between two
        source centres) towards the centre of larger coordinate (fractional
        source index ``i + 0.5`` takes ``i + 1``, as
        ``scipy.ndimage.map_coordinates`` with ``order=0``), whatever the
        order of the target's coordinates.
    a : int
        Lanczos lobes (3 is Pillow's LANCZOS).
    fill : scalar
        Value of target voxels whose source point lies outside the source
        field (its extent: half a voxel beyond the outer centres). NaN by
        default; integer data with ``nearest`` need an integer fill that
        their dtype holds (0 or 1 for a boolean mask) when any voxel is
        outside.
    clip : bool, optional
        Clip the result at 0. Lanczos and cubic kernels overshoot next to
        sharp edges (ringing: up to about 7 % of a step for Lanczos-3), so a
        saturated or high-contrast image gets negative values beside its
        bright features, which no count can be. By default (``None``)
        channels whose ``units`` are ``"counts"`` are clipped at 0 and other
        channels are not; ``True`` clips every channel, ``False`` none.
        ``nearest`` never clips, nor is ``fill`` clipped (NaN or a negative
        sentinel stays as given outside the field). The history records
        which channels were.
    chunks : int, dict or tuple, optional
        Output chunks on the target grid. Default: 1024 in-plane, 8 along a
        resampled z, the source chunks along kept axes. With numpy data and
        no ``chunks`` the result is computed (threads) and numpy-backed;
        otherwise it is a lazy dask array.

    Returns
    -------
    xarray.DataArray or xarray.Dataset
        On the target grid: target coordinates (with their units), the data's
        attrs, a ``"resample"`` history record. Float kernels give float32
        for float32 and small-integer data, float64 otherwise.

    Notes
    -----
    Weights follow Pillow: the kernel is evaluated at source-sample offsets
    ``(j - u) / f``, where ``u`` is the fractional source index of the target
    point and ``f >= 1`` the number of source samples per target sample (so
    downsampling widens the kernel and does not alias), only taps inside the
    field count, and they are normalised to sum 1.

    * Axis-aligned maps (scale, shift, flips) run as separable 1-D passes
      with exact, precomputed per-axis weight tables.
    * Rotations and shears run a true 2-D windowed evaluation: at every
      target pixel the separable product kernel ``k(dy/fy) k(dx/fx)`` over the
      whole 2-D source neighbourhood, read from a table (4096 samples per
      unit, linear interpolation; < 1e-6 weight error). ``fy``, ``fx`` are
      the norms of the rows of the index-space Jacobian (1 for a pure
      rotation).
    * Along an uneven z, the kernel acts in slice-index space (positions are
      interpolated between the measured depths), widened by the local ratio
      of target to source spacing.

    Each output chunk reads only the source window it needs (its taps, plus
    the kernel radius for rotations), so memory is set by the chunk size.

    Examples
    --------
    >>> import numpy as np, pfibsims as pfs
    >>> sims = pfs.stack({"Li6": np.ones((1, 50, 50), np.float32)}, pixel_size="72 nm")
    >>> eds_grid = pfs.Grid((48, 48), "81.4 nm")  # 3.9 um field, wider than the 3.6 um source
    >>> out = resample(sims, eds_grid)
    >>> dict(out.sizes), float(out.Li6[0, 0, 0]), bool(np.isnan(out.Li6[0, -1, -1]))
    ({'z': 1, 'y': 48, 'x': 48}, 1.0, True)
    """
    data = _ascending_source(dequantify(data, "data"))
    onto, flipped = _ascending_target(dequantify(onto, "onto"))
    check_kernel(kernel, a)
    _check_clip(clip)
    if not isinstance(data, (xr.DataArray, xr.Dataset)):
        raise DataModelError(f"data: expected an xarray DataArray or Dataset, got {type(data).__name__}")
    check_not_empty(data, "data")
    if isinstance(fill, (bool, np.bool_)) or not isinstance(fill, (numbers.Real, np.floating, np.integer)):
        raise PfibsimsError(f"fill: expected a number for the target voxels outside the source (NaN by default), got {fill!r:.60}")
    fill_ = fill if isinstance(fill, (numbers.Number, np.generic)) else str(fill)
    clipped = [str(n) for n, v in _variables(data) if _clips(v, clip, kernel)]
    base = transform
    if drift is not None:
        transform, shifts = _with_drift(transform, drift, data)
    per_slice = _is_sequence(transform)
    if per_slice:
        grid, coords, geometry = _slice_geometry(data, onto, transform, kernel, int(a))
    else:
        grid, coords = target_grid(onto, data)
        T = as_affine(transform, grid.dims)
        missing = [d for d in grid.dims if d not in data.dims]
        if missing:
            raise DataModelError(f"data: expected dims including {grid.dims} (those of onto), found {tuple(data.dims)}")
        geometry = [axis_specs(data, grid, T, kernel, int(a))]
    for specs_r, warp in geometry:
        if not coverage_summary(specs_r, warp, grid.shape)[0]:
            raise GridError(f"onto: the target grid {grid} does not overlap the source field "
                            f"{_extent_text(data, grid.dims)} through the transform")
    args = (grid, coords, kernel, int(a), fill, chunks, geometry, per_slice, clip)
    if isinstance(data, xr.DataArray):
        out: Any = _resample_da(data, *args)
    else:
        variables = {}
        for name, var in data.data_vars.items():
            touched = set(var.dims) & set(grid.dims)
            if not touched:
                variables[name] = var
            elif touched == set(grid.dims):
                variables[name] = _resample_da(var, *args)
            else:
                raise DataModelError(f"data: variable {name!r} has dims {var.dims}, only part of the resampled "
                                     f"{grid.dims}; drop it first")
        keep = {k: v.variable for k, v in data.coords.items() if not set(v.dims) & set(grid.dims)}
        out = xr.Dataset(variables, coords={**keep, **coords}, attrs=dict(data.attrs))
    out = _target_order(out, flipped, grid.dims)
    if drift is not None:
        return record(out, "resample", onto=target_grid(onto, data)[0], transform=base,
                      drift_nm=shifts.tolist(), kernel=kernel, a=int(a), fill=fill_,
                      clipped_at_zero=clipped)
    if per_slice:
        return record(out, "resample", onto=target_grid(onto, data)[0], transform=list(transform), kernel=kernel,
                      a=int(a), fill=fill_, clipped_at_zero=clipped)
    return record(out, "resample", onto=grid, transform=None if transform is None else T, kernel=kernel,
                  a=int(a), fill=fill_, clipped_at_zero=clipped)


def _ascending_target(onto: Any) -> tuple[Any, tuple[str, ...]]:
    """``onto`` with the axes whose coordinate decreases reversed (a view), and those axes.

    The resampling runs on the increasing grid; :func:`_target_order` then
    puts its result back in ``onto``'s order (a lazy reversal, no
    interpolation), so each target voxel gets the value of its position.
    """
    return ascending(onto)


def _ascending_source(data: Any) -> Any:
    """``data`` with its y and x reversed where their coordinates decrease (rows stored top down under a stage
    ``y`` growing upwards): the same samples at the same positions, so the same result as ``data.sortby``. The
    slices (``z``) keep their order: per-slice transforms are matched to them by position."""
    return ascending(data, ("y", "x"))[0]


def _target_order(out: Any, flipped: tuple[str, ...], dims: tuple[str, ...]) -> Any:
    """``out`` (on the increasing target grid) reversed along the target axes that ``onto`` runs high -> low."""
    back = {d: slice(None, None, -1) for d in flipped if d in dims}
    return out.isel(back) if back else out


def _variables(data: Any) -> list:
    """``(name, variable)`` of every channel of a Dataset, or of a DataArray itself."""
    return list(data.data_vars.items()) if isinstance(data, xr.Dataset) else [(data.name, data)]


def _is_sequence(transform: Any) -> bool:
    return isinstance(transform, (list, tuple))


def _with_drift(transform: Any, drift: Any, data: Any) -> tuple[list[Affine], np.ndarray]:
    """``transform`` (in-plane, or None: the identity) composed with each slice's drift (its row at the
    slice's depth, :func:`~.drift.match_drift`), and those drifts (nm)."""
    if "z" not in data.dims:
        raise DataModelError(f"drift: expected (z, y, x) data to apply a per-slice drift to, got dims {tuple(data.dims)}")
    base = Affine.identity(("y", "x")) if transform is None else transform
    if not isinstance(base, Affine) or base.dims != ("y", "x"):
        raise PfibsimsError(f"transform: with a drift, expected an in-plane pfibsims.Affine on ('y', 'x') or None, got "
                            f"{getattr(base, 'dims', type(base).__name__)}")
    shifts = drift_nm(drift, data, name="drift", of="data")
    return compose(base, shifts), shifts


def _slice_target(data: Any, onto: Any, transforms: Any) -> tuple[Grid, dict]:
    """The in-plane target grid and its coordinates for one transform per z slice of ``data``."""
    nz = data.sizes["z"] if "z" in data.dims else None
    if nz is None or len(transforms) != nz:
        raise DataModelError(
            f"transform: expected one Affine per z slice of data ({nz} slices), got a sequence of {len(transforms)}"
        )
    grid, coords = target_grid(onto, data)
    if "z" in grid.dims:
        z_data = source_axis(data, "z").centres
        if grid.shape[grid.dims.index("z")] != z_data.size or not np.allclose(grid.coords()["z"], z_data, rtol=0, atol=1e-6):
            raise GridError(f"onto: per-slice transforms resample in-plane; expected a (y, x) target grid or one with "
                            f"the data's z, got {grid}")
        grid = grid.select([d for d in grid.dims if d != "z"])
        coords = grid.xr_coords()
    return grid, coords


def _slice_geometry(data: Any, onto: Any, transforms: Any, kernel: str, a: int) -> tuple[Grid, dict, list]:
    """In-plane target, its coordinates and one geometry (specs, warp) per z slice."""
    grid, coords = _slice_target(data, onto, transforms)
    missing = [d for d in grid.dims if d not in data.dims]
    if missing:
        raise DataModelError(f"data: expected dims including {grid.dims} (those of onto), found {tuple(data.dims)}")
    return grid, coords, [axis_specs(data, grid, as_affine(t, grid.dims), kernel, a) for t in transforms]


def _extent_text(data: Any, dims: tuple[str, ...]) -> str:
    parts = []
    for d in dims:
        ax = source_axis(data, d)
        half = (ax.steps[0] if ax.n > 1 else ax.spacing) / 2
        parts.append(f"{d} {ax.centres[0] - half:.6g}..{ax.centres[-1] + half:.6g} nm")
    return "(" + ", ".join(parts) + ")"


def coverage(data_or_grid: Any, onto: Any, *, transform: Affine | None = None,
             drift: xr.DataArray | None = None) -> xr.DataArray:
    """Where the target grid sees the source field: a lazy boolean DataArray.

    Parameters
    ----------
    data_or_grid : xarray.DataArray, xarray.Dataset or Grid
        The source (only its coordinates are read; y or x running high -> low as in :func:`resample`).
    onto : Grid, xarray.DataArray or xarray.Dataset
        The target grid (coordinates that run high -> low kept in that order,
        as in :func:`resample`).
    transform : Affine or sequence of Affine, optional
        Target point -> source point (pulls), as in :func:`resample`; a
        sequence holds one in-plane transform per ``z`` slice of the source
        data, and the result then has the source's ``z``.
    drift : xarray.DataArray, optional
        Per-slice drift, as in :func:`resample` (the mask of that resampling).

    Returns
    -------
    xarray.DataArray
        bool, dims and coordinates of the target grid, dask-backed: True where
        the target voxel's source point lies inside the source extent (the
        voxels :func:`resample` does not fill).

    Examples
    --------
    >>> import pfibsims as pfs
    >>> cov = coverage(pfs.Grid((10, 10), "72 nm"), pfs.Grid((10, 10), "81.4 nm"))
    >>> int(cov.sum())  # target centres up to 691.9 nm fall in the 720 nm source field
    81
    """
    data_or_grid = _ascending_source(dequantify(data_or_grid, "data_or_grid"))
    onto, flipped = _ascending_target(dequantify(onto, "onto"))
    if not isinstance(data_or_grid, (Grid, xr.DataArray, xr.Dataset)):
        raise DataModelError(f"data_or_grid: expected a Grid, DataArray or Dataset, got {type(data_or_grid).__name__}")
    if not isinstance(data_or_grid, Grid):
        check_not_empty(data_or_grid, "data_or_grid")
    if drift is not None:
        if isinstance(data_or_grid, Grid):
            raise DataModelError("data_or_grid: a per-slice drift needs the source data (its z), got a Grid")
        transform = _with_drift(transform, drift, data_or_grid)[0]
    if _is_sequence(transform):
        if isinstance(data_or_grid, Grid):
            raise DataModelError("data_or_grid: per-slice transforms need the source data (its z), got a Grid")
        grid, coords, geometry = _slice_geometry(data_or_grid, onto, transform, "linear", 1)
        z = data_or_grid.coords["z"]
        shape = (z.size,) + grid.shape
        plans = [Plan((Keep(),) + tuple(specs), shape, warp, "linear", 1, np.nan, np.dtype(bool))
                 for specs, warp in geometry]
        chunks = ((1,) * z.size,) + output_chunks(None, grid.dims, grid.shape, default_chunks(
            grid.dims, plans[0].axes[1:], [(n,) for n in grid.shape], grid.shape), bool)
        out = xr.DataArray(coverage_array(plans, chunks), dims=("z",) + grid.dims, coords={"z": z.variable, **coords},
                           name="coverage", attrs={"units": "1", "long_name": "target voxel sees the source field"})
        return _target_order(out, flipped, grid.dims)
    grid, coords = target_grid(onto, None if isinstance(data_or_grid, Grid) else data_or_grid)
    T = as_affine(transform, grid.dims)
    have = data_or_grid.dims
    missing = [d for d in grid.dims if d not in have]
    if missing:
        raise DataModelError(f"data_or_grid: expected dims including {grid.dims} (those of onto), found {tuple(have)}")
    specs, warp = axis_specs(data_or_grid, grid, T, "linear", 1)
    plan = Plan(tuple(specs), grid.shape, warp, "linear", 1, np.nan, np.dtype(bool))
    chunks = output_chunks(None, grid.dims, grid.shape, default_chunks(grid.dims, specs, [(n,) for n in grid.shape],
                                                                  grid.shape), bool)
    arr = coverage_array(plan, chunks)
    out = xr.DataArray(arr, dims=grid.dims, coords=coords, name="coverage",
                       attrs={"units": "1", "long_name": "target voxel sees the source field"})
    return _target_order(out, flipped, grid.dims)

