"""Where each target voxel samples the source: physical geometry -> one index-space spec an axis.

The source's voxel centres and units, the target grid, the transform (target point -> source point,
nm), the kernel: from these :func:`axis_specs` makes, per target axis, a :class:`~.graph.Keep`
(the axis is unchanged), the :class:`~.kernels.AxisWeights` of a separable axis, or ``None``
for the in-plane axes of a rotation or shear, which share one :class:`~.graph.Warp`. The output
dtype and chunks are decided here too. Nothing here touches data: :mod:`.graph` runs the plan.
"""

from __future__ import annotations

import functools
import numbers
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from ..errors import DataModelError, GridError, PfibsimsError, UnitsError
from ..grid import Grid
from ..transform import Affine
from ..units import length_nm
from .graph import Keep, Warp, warp_row_intervals
from .kernels import KERNELS, AxisWeights, axis_weights, filter_scale, nearest_index

_REGULAR_RTOL = 1e-4


class _Axis:
    """Voxel centres (nm) of one source axis; regular axes also keep origin and spacing."""

    def __init__(self, centres: np.ndarray, spacing: float | None) -> None:
        self.centres = centres
        self.n = centres.size
        steps = np.diff(centres)
        if spacing is None:
            spacing = float((centres[-1] - centres[0]) / (self.n - 1))
        self.regular = self.n == 1 or bool(np.max(np.abs(steps - spacing)) <= _REGULAR_RTOL * spacing)
        self.spacing = spacing
        self.steps = steps

    def index(self, q: np.ndarray) -> np.ndarray:
        """Fractional index of physical points ``q`` (linear extrapolation beyond the ends)."""
        c = self.centres
        if self.regular:
            return (q - c[0]) / self.spacing
        i = np.arange(self.n, dtype=np.float64)
        u = np.interp(q, c, i)
        u = np.where(q < c[0], (q - c[0]) / self.steps[0], u)
        return np.where(q > c[-1], self.n - 1 + (q - c[-1]) / self.steps[-1], u)

    def local_spacing(self, u: np.ndarray) -> np.ndarray:
        if self.regular:
            return np.full(np.shape(u), self.spacing)
        return np.interp(u, np.arange(self.n - 1) + 0.5, self.steps)


@functools.lru_cache(maxsize=64)
def _unit_nm(units: str, d: str) -> float:
    """nm per ``units`` (parsed once per unit: the parser costs more than a small resampling)."""
    return length_nm(f"1 {units}", name=f"data['{d}'].attrs['units']")


def source_axis(obj: Any, d: str) -> _Axis:
    if isinstance(obj, Grid):
        return _Axis(obj.coords()[d], obj.spacing[obj.dims.index(d)])
    if d not in obj.coords:
        raise DataModelError(f"data: expected a coordinate '{d}' of voxel centres in nm, found none")
    coord = obj.coords[d]
    units = coord.attrs.get("units")
    if units is None:
        raise UnitsError(f"data: coordinate '{d}' expected a length 'units' attribute (e.g. 'nm'), found none")
    try:
        scale = _unit_nm(str(units), d)
    except UnitsError as exc:
        raise UnitsError(f"data: {exc}") from None
    centres = np.asarray(coord.values, dtype=np.float64) * scale
    bad = np.flatnonzero(~np.isfinite(centres))
    if bad.size:  # NaN compares false with everything: it would pass the order check and give NaN weights
        raise GridError(f"data: coordinate '{d}' expected finite voxel centres, found {float(coord.values[bad[0]])} "
                        f"at index {int(bad[0])}; give every voxel its centre, e.g. data.assign_coords({d}=...)")
    spacing = None
    if centres.size == 1:
        if "spacing" not in coord.attrs:
            raise GridError(f"data: coordinate '{d}' of one voxel needs a 'spacing' attribute (e.g. '60 nm'), found none")
        spacing = length_nm(coord.attrs["spacing"], default_unit=units, name=f"data['{d}'].attrs['spacing']")
    elif np.any(np.diff(centres) <= 0):
        raise GridError(f"data: coordinate '{d}' expected increasing values; use data.sortby('{d}')")
    return _Axis(centres, spacing)


def target_grid(onto: Any, data: Any = None) -> tuple[Grid, dict[str, Any]]:
    """The target grid and the coordinates the output takes from it.

    A target whose ``z`` is not a regular grid (one slice without a spacing,
    or measured depths) but matches the data's ``z`` is taken as in-plane.
    """
    if isinstance(onto, Grid):
        return onto, onto.xr_coords()
    if not isinstance(onto, (xr.DataArray, xr.Dataset)):
        raise GridError(f"onto: expected a Grid, DataArray or Dataset, got {type(onto).__name__}")
    try:
        grid = Grid.of(onto)
    except PfibsimsError as exc:
        same_z = (data is not None and "z" in onto.dims and "z" in getattr(data, "coords", {})
                  and data.sizes["z"] == onto.sizes["z"]
                  and np.allclose(np.asarray(data.z, float), np.asarray(onto.z, float), rtol=1e-9))
        if not same_z or exc.args[0].startswith(("x", "y")):
            raise type(exc)(f"onto: {exc}") from None
        try:
            grid = Grid.of(onto, dims=[d for d in ("y", "x") if d in onto.dims])
        except PfibsimsError as exc2:
            raise type(exc2)(f"onto: {exc2}") from None
    coords = {name: c.variable for name, c in onto.coords.items() if c.dims and set(c.dims) <= set(grid.dims)}
    return grid, coords


def as_affine(transform: Any, dims: tuple[str, ...]) -> Affine:
    if transform is None:
        return Affine.identity(dims)
    if not isinstance(transform, Affine):
        raise PfibsimsError(f"transform: expected a pfibsims.Affine (target point -> source point) or None, "
                            f"got {type(transform).__name__}")
    if set(transform.dims) <= set(dims):
        return transform.embed(dims)
    if set(dims) < set(transform.dims):
        rest = tuple(d for d in transform.dims if d not in dims)
        try:
            extra = transform.restrict(rest)
            inner = transform.restrict(dims)
        except PfibsimsError:
            extra = None
        if extra is not None and extra.is_identity():
            return inner
        raise PfibsimsError(f"transform: acts on {transform.dims} but the target grid has only {dims}, and its "
                            f"{rest} part is not the identity; give a target grid with {transform.dims}")
    raise PfibsimsError(f"transform: expected dims among the target grid's {dims}, got {transform.dims}")


#: Most Lanczos lobes: the kernel's tables grow with ``a`` (4096 samples per source pixel of its support).
MAX_LOBES = 64


def check_kernel(kernel: Any, a: Any) -> None:
    if kernel not in KERNELS:
        raise PfibsimsError(f"kernel: expected one of {KERNELS}, got {kernel!r}")
    if isinstance(a, bool) or not isinstance(a, numbers.Integral) or not 1 <= a <= MAX_LOBES:
        raise PfibsimsError(f"a: expected a positive whole number of Lanczos lobes (at most {MAX_LOBES}) such as 3, got {a!r}")


def axis_specs(source: Any, grid: Grid, T: Affine, kernel: str, a: int) -> tuple[list, Warp | None]:
    """Per target axis a spec (Keep, AxisWeights, or None for warp axes) and the warp."""
    dims = grid.dims
    axes = {d: source_axis(source, d) for d in dims}
    lin, off = T.linear, T.offset
    mixed = np.abs(lin - np.diag(np.diag(lin))) > 1e-12
    warp_dims: tuple[str, ...] = ()
    if mixed.any():
        bad = [(dims[i], dims[j]) for i, j in zip(*np.nonzero(mixed), strict=True) if {dims[i], dims[j]} != {"y", "x"}]
        if bad:
            raise PfibsimsError(f"transform: mixes {bad[0][0]} with {bad[0][1]}; only in-plane (y, x) rotation and "
                                f"shear are supported (z may only be scaled and shifted)")
        warp_dims = ("y", "x")
    targets = grid.coords()
    specs: list = []
    for k, d in enumerate(dims):
        if d in warp_dims:
            specs.append(None)
            continue
        ax = axes[d]
        u = ax.index(lin[k, k] * targets[d] + off[k])
        step = abs(lin[k, k]) * grid.spacing[k] / ax.local_spacing(u)
        if u.size == ax.n and np.allclose(u, np.arange(ax.n), rtol=0, atol=1e-9) and np.allclose(step, 1, atol=1e-9):
            specs.append(Keep())
        elif kernel == "nearest":
            idx, valid = nearest_index(u, ax.n)
            specs.append(_nearest_weights(idx, valid))
        else:
            specs.append(axis_weights(u, filter_scale(step), ax.n, kernel, a))
    warp = None
    if warp_dims:
        ky, kx = dims.index("y"), dims.index("x")
        sy, sx = axes["y"], axes["x"]
        for name, ax in (("y", sy), ("x", sx)):
            if not ax.regular:
                raise GridError(f"data: coordinate '{name}' must be regular for a rotation or shear, got uneven steps")
        l2 = lin[np.ix_([ky, kx], [ky, kx])]
        s_src = np.array([sy.spacing, sx.spacing])
        o_src = np.array([sy.centres[0], sx.centres[0]])
        s_t = np.array([grid.spacing[ky], grid.spacing[kx]])
        o_t = np.array([grid.origin[ky], grid.origin[kx]])
        m = np.empty((2, 3))
        m[:, :2] = (l2 * s_t[None, :]) / s_src[:, None]
        m[:, 2] = (l2 @ o_t + off[[ky, kx]] - o_src) / s_src
        f = filter_scale(np.hypot(m[:, 0], m[:, 1]))
        warp = Warp(m, (sy.n, sx.n), (float(f[0]), float(f[1])))
    return specs, warp


def _nearest_weights(idx: np.ndarray, valid: np.ndarray) -> AxisWeights:
    return AxisWeights(idx, np.ones((idx.size, 1)), valid)


def coverage_summary(specs: list, warp: Warp | None, shape: tuple[int, ...]) -> tuple[bool, bool]:
    """(any target point covered, every target point covered), from geometry alone."""
    any_, all_ = True, True
    for spec in specs:
        if spec is not None and not isinstance(spec, Keep):
            any_ &= bool(spec.valid.any())
            all_ &= bool(spec.valid.all())
    if warp is not None:
        jlo, jhi = warp_row_intervals(warp, shape[-2:])
        any_ &= bool(np.any(jhi > jlo))
        all_ &= bool(np.all((jlo <= 0) & (jhi >= shape[-1])))
    return any_, all_


def out_dtype(dtype: np.dtype, kernel: str) -> np.dtype:
    if kernel == "nearest":
        return dtype
    if dtype.kind == "f" and dtype.itemsize <= 4 or dtype.kind in "biu" and dtype.itemsize <= 2:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def output_chunks(chunks: Any, dims: tuple[str, ...], shape: tuple[int, ...], defaults: tuple, dtype) -> tuple:
    if chunks is None:
        spec: Any = defaults
    elif isinstance(chunks, dict):
        unknown = set(chunks) - set(dims)
        if unknown:
            raise PfibsimsError(f"chunks: expected dims among {dims}, got {sorted(unknown)}")
        spec = tuple(chunks.get(d, dflt) for d, dflt in zip(dims, defaults, strict=True))
    elif isinstance(chunks, numbers.Integral) and not isinstance(chunks, bool):
        spec = tuple(int(chunks) for _ in dims)
    elif isinstance(chunks, (tuple, list)) and len(chunks) == len(dims):
        spec = tuple(chunks)
    else:
        raise PfibsimsError(f"chunks: expected an int, a dict {{dim: size}} or one size per dim of {dims}, got {chunks!r}")
    try:
        out = da.core.normalize_chunks(spec, shape=shape, dtype=dtype)
    except (ValueError, TypeError, ZeroDivisionError, OverflowError) as exc:
        raise PfibsimsError(f"chunks: could not chunk shape {shape} of dims {dims} with {chunks!r} ({exc})") from None
    if any(c < 1 for axis, n in zip(out, shape, strict=True) if n for c in axis):  # -5 "fits" a shape as -5 chunks of -1
        raise PfibsimsError(f"chunks: expected positive chunk sizes (or -1: a whole axis), got {chunks!r}")
    return out


def default_chunks(dims, specs, src_chunks, shape) -> tuple:
    out = []
    for d, spec, sc, n in zip(dims, specs, src_chunks, shape, strict=True):
        if isinstance(spec, Keep):
            out.append(sc)
        elif d == "z":
            out.append(min(n, 8))
        else:
            out.append(min(n, 1024))
    return tuple(out)
