"""`Grid`: the one geometric abstraction of pfibsims.

A grid is a regular lattice of voxel *centres* in physical space: per axis a
name, a number of voxels, a spacing and the centre of the first voxel, all
lengths in nanometres.  Its extent runs from the first centre minus half a
spacing to the last centre plus half a spacing, so a 216 x 352 map at 81.4 nm
spans 17.58 x 28.65 um, and resampling between two grids whose extents
coincide is what Pillow's ``resize`` does.

This module is plain numbers: no xarray, no dask.  `Grid.of` reads any object
with ``.dims`` and ``.coords`` (an xarray Dataset or DataArray) without
importing xarray.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import GridError
from .units import LENGTH_UNIT, length_nm, lengths_nm, ureg

__all__ = ["SPATIAL_DIMS", "Grid"]

#: The spatial dimension names, in the order pfibsims always keeps them.
SPATIAL_DIMS = ("z", "y", "x")
#: CF ``axis`` attribute of each spatial coordinate.
_CF_AXIS = {"z": {"axis": "Z"}, "y": {"axis": "Y"}, "x": {"axis": "X"}}

# Relative tolerance (of a spacing) under which two lattices are the same.
_RTOL = 1e-6


def _default_dims(ndim: int) -> tuple[str, ...]:
    if not 1 <= ndim <= 3:
        raise GridError(f"shape: expected 1 to 3 axes, got {ndim}")
    return SPATIAL_DIMS[3 - ndim :]


def _shape(shape: Any) -> tuple[int, ...]:
    """A shape as a tuple of ints; a non-integral size (2.5) is an error, never truncated."""
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        return (int(shape),)
    try:
        items = tuple(shape)
    except TypeError:
        raise GridError(f"shape: expected a sequence of voxel counts such as (216, 352), got {shape!r:.60}") from None
    if not items or not all(isinstance(n, numbers.Real) and not isinstance(n, bool) and float(n).is_integer() for n in items):
        raise GridError(f"shape: expected whole numbers of voxels such as (216, 352), got {shape!r:.60}")
    return tuple(int(n) for n in items)


def _flat_z(obj: Any) -> bool:
    """``obj`` has a ``z`` of one slice whose coordinate states no thickness (a single map)."""
    return obj.sizes["z"] == 1 and ("z" not in obj.coords or "spacing" not in obj.coords["z"].attrs)


@dataclass(frozen=True, eq=False, repr=False, init=False)
class Grid:
    """A regular grid of voxel centres in physical space (lengths in nm).

    Parameters
    ----------
    shape : sequence of int
        Number of voxels per axis.
    spacing : length or sequence of lengths
        Distance between voxel centres per axis: ``"81.4 nm"``, a pint
        quantity, or a number in nm. One value is used for every axis.
    origin : length or sequence of lengths, default 0
        Centre of the first voxel per axis (not its corner).
    dims : sequence of str, optional
        Axis names, a subsequence of ``("z", "y", "x")`` in that order;
        by default the last ``len(shape)`` of them.

    Notes
    -----
    Grids are immutable and compare equal when their dims and shapes match and
    their spacings and origins agree to within 1e-6 of a spacing, so grids
    built from "0.0814 um" and "81.4 nm" are equal.

    Examples
    --------
    >>> g = Grid((216, 352), "81.4 nm")
    >>> g
    Grid(shape=(216, 352), spacing=(81.4, 81.4), origin=(0.0, 0.0), dims=('y', 'x'))
    >>> [round(hi - lo, 2) for lo, hi in g.extent]
    [17582.4, 28652.8]
    """

    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    dims: tuple[str, ...]

    units = LENGTH_UNIT

    def __init__(
        self,
        shape: Sequence[int],
        spacing: Any,
        origin: Any = 0.0,
        dims: Sequence[str] | None = None,
    ) -> None:
        shape = _shape(shape)
        dims = _default_dims(len(shape)) if dims is None else tuple(dims)
        if len(dims) != len(shape):
            raise GridError(f"dims: expected {len(shape)} names for shape {shape}, got {dims}")
        if len(set(dims)) != len(dims) or any(d not in SPATIAL_DIMS for d in dims) or list(dims) != sorted(
            dims, key=SPATIAL_DIMS.index
        ):
            raise GridError(f"dims: expected names from {SPATIAL_DIMS} in that order, got {dims}")
        if any(n < 1 for n in shape):
            raise GridError(f"shape: expected at least one voxel per axis, got {shape}")
        spacing = lengths_nm(spacing, len(shape), default_unit=LENGTH_UNIT, name="spacing")
        if any(not s > 0 for s in spacing):
            raise GridError(f"spacing: expected positive lengths, got {spacing} nm")
        origin = lengths_nm(origin, len(shape), default_unit=LENGTH_UNIT, name="origin")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "dims", dims)

    # -- construction -------------------------------------------------------
    @classmethod
    def from_extent(cls, extent: Sequence[tuple[Any, Any]], spacing: Any, dims: Sequence[str] | None = None) -> Grid:
        """The grid of a given spacing that tiles ``extent`` (edges) from its start.

        The number of voxels is ``round(length / spacing)`` (at least one); the
        grid starts at the lower edge, so its upper edge may differ from the
        requested one by up to half a spacing.

        Examples
        --------
        >>> Grid.from_extent([("0 um", "2 um")], "100 nm")
        Grid(shape=(20,), spacing=(100.0,), origin=(50.0,), dims=('x',))
        """
        n = len(extent)
        spacing = lengths_nm(spacing, n, default_unit=LENGTH_UNIT, name="spacing")
        los, his = [], []
        for lo, hi in extent:
            los.append(length_nm(lo, default_unit=LENGTH_UNIT, name="extent"))
            his.append(length_nm(hi, default_unit=LENGTH_UNIT, name="extent"))
        shape = tuple(max(1, round((hi - lo) / s)) for lo, hi, s in zip(los, his, spacing, strict=True))
        origin = tuple(lo + s / 2 for lo, s in zip(los, spacing, strict=True))
        return cls(shape, spacing, origin, dims)

    @classmethod
    def of(cls, obj: Any, dims: Sequence[str] | None = None) -> Grid:
        """The grid of an xarray Dataset or DataArray (or a Grid, returned as is).

        Parameters
        ----------
        obj : xarray.Dataset, xarray.DataArray or Grid
            Its spatial coordinates must be regular, increasing, and carry a
            length ``units`` attribute. An axis of one voxel takes its spacing
            from the coordinate's ``spacing`` attribute.
        dims : sequence of str, optional
            Which spatial axes to take; by default every one of ``z, y, x``
            that ``obj`` has, except a ``z`` of one slice that states no
            thickness (a single map read without ``slice_thickness``): its
            grid is then the in-plane ``(y, x)`` one.

        Raises
        ------
        GridError
            On irregular or decreasing coordinates, a missing coordinate, or
            a one-voxel axis with no ``spacing`` attribute.
        UnitsError
            On a missing or non-length ``units`` attribute.

        Examples
        --------
        >>> import numpy as np, xarray as xr
        >>> da = xr.DataArray(np.zeros((2, 3)), dims=("y", "x"), coords={
        ...     "y": ("y", [0.5, 1.5], {"units": "um"}),
        ...     "x": ("x", [50.0, 150.0, 250.0], {"units": "nm"})})
        >>> Grid.of(da)
        Grid(shape=(2, 3), spacing=(1000.0, 100.0), origin=(500.0, 50.0), dims=('y', 'x'))
        >>> Grid.of(da.expand_dims(z=[0.0]).assign_coords(z=("z", [0.0], {"units": "nm"}))).dims  # one map
        ('y', 'x')
        """
        if isinstance(obj, Grid):
            return obj if dims is None else obj.select(dims)
        if not hasattr(obj, "dims") or not hasattr(obj, "coords"):
            raise GridError(f"obj: expected an xarray Dataset, DataArray or Grid, got {type(obj).__name__}")
        present = tuple(d for d in SPATIAL_DIMS if d in obj.dims)
        if dims is None and "z" in present and len(present) > 1 and _flat_z(obj):
            present = present[1:]  # a single map with no slice thickness: its grid is in-plane
        dims = present if dims is None else tuple(dims)
        if not dims:
            raise GridError(f"obj: expected spatial dims among {SPATIAL_DIMS}, found dims {tuple(obj.dims)}")
        missing = [d for d in dims if d not in obj.dims]
        if missing:
            raise GridError(f"dims: {missing} not found; the data have dims {tuple(obj.dims)}")
        shape, spacing, origin = [], [], []
        for d in dims:
            if d not in obj.coords:
                raise GridError(f"{d}: expected a coordinate of voxel centres with units, found none")
            coord = obj.coords[d]
            units, raw = coord.attrs.get("units"), coord.data
            if units is None and hasattr(raw, "units") and hasattr(raw, "magnitude"):  # quantified by pint-xarray
                units, raw = str(raw.units), raw.magnitude
            if units is None:
                raise GridError(
                    f"{d}: expected a 'units' attribute on the coordinate (e.g. 'nm'), found none; "
                    f"set it with ds['{d}'].attrs['units'] = 'nm'"
                )
            scale = length_nm(f"1 {units}", name=f"{d}.attrs['units']")
            try:
                values = np.asarray(raw, dtype=float) * scale
            except (TypeError, ValueError):
                raise GridError(f"{d}: expected numeric coordinates in {units}, found dtype {coord.dtype}") from None
            if values.size == 0:
                raise GridError(f"{d}: expected at least one voxel, found an empty axis (size 0)")
            if not np.isfinite(values).all():
                raise GridError(f"{d}: expected finite coordinates, found NaN or inf at index {int(np.flatnonzero(~np.isfinite(values))[0])}")
            shape.append(values.size)
            origin.append(float(values[0]))
            if values.size == 1:
                if "spacing" not in coord.attrs:
                    raise GridError(
                        f"{d}: an axis of one voxel needs a 'spacing' attribute on its coordinate "
                        f"(e.g. '60 nm'), found none"
                    )
                spacing.append(length_nm(coord.attrs["spacing"], default_unit=units, name=f"{d}.attrs['spacing']"))
                continue
            steps = np.diff(values)
            step = (values[-1] - values[0]) / (values.size - 1)
            if not step > 0:
                raise GridError(f"{d}: expected increasing coordinates, found a step of {step} nm; use ds.sortby('{d}')")
            if np.max(np.abs(steps - step)) > 1e-4 * step:
                raise GridError(
                    f"{d}: expected regularly spaced coordinates, found steps from {steps.min():.6g} to "
                    f"{steps.max():.6g} nm; resample onto a regular grid first"
                )
            spacing.append(float(step))
        return cls(shape, spacing, origin, dims)

    # -- basic properties ---------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def extent(self) -> tuple[tuple[float, float], ...]:
        """Per axis ``(lower edge, upper edge)`` in nm: centres -/+ half a spacing."""
        return tuple(
            (o - s / 2, o + (n - 0.5) * s) for n, s, o in zip(self.shape, self.spacing, self.origin, strict=True)
        )

    @property
    def center(self) -> tuple[float, ...]:
        """The centre of the extent per axis, nm (the middle of the middle voxel for an odd shape)."""
        return tuple(0.5 * (lo + hi) for lo, hi in self.extent)

    def coords(self) -> dict[str, np.ndarray]:
        """Voxel-centre coordinates per axis, float64 in nm.

        Examples
        --------
        >>> Grid((3,), "10 nm", origin="5 nm").coords()["x"]
        array([ 5., 15., 25.])
        """
        return {
            d: o + s * np.arange(n, dtype=np.float64)
            for d, n, s, o in zip(self.dims, self.shape, self.spacing, self.origin, strict=True)
        }

    def xr_coords(self) -> dict[str, tuple]:
        """Coordinates in the form ``xarray`` takes: ``{dim: (dim, values, attrs)}``.

        The attrs hold ``units`` ("nm"), the axis ``spacing`` (so that a
        one-voxel axis keeps its spacing) and the CF ``axis`` (``"Z"``,
        ``"Y"``, ``"X"``).
        """
        return {
            d: (d, v, {"units": LENGTH_UNIT, "spacing": f"{s:.12g} {LENGTH_UNIT}", **_CF_AXIS.get(d, {})})
            for (d, v), s in zip(self.coords().items(), self.spacing, strict=True)
        }

    # -- indices <-> physical points ----------------------------------------
    def to_index(self, points: np.ndarray) -> np.ndarray:
        """Fractional voxel indices of physical points (``(..., ndim)`` in nm)."""
        p = np.asarray(points, dtype=np.float64)
        return (p - np.asarray(self.origin)) / np.asarray(self.spacing)

    def from_index(self, index: np.ndarray) -> np.ndarray:
        """Physical points (nm) of fractional voxel indices (``(..., ndim)``)."""
        i = np.asarray(index, dtype=np.float64)
        return np.asarray(self.origin) + i * np.asarray(self.spacing)

    # -- derived grids ------------------------------------------------------
    def select(self, dims: Sequence[str]) -> Grid:
        """The grid of some of the axes, e.g. ``grid.select(("y", "x"))``."""
        dims = tuple(dims)
        missing = [d for d in dims if d not in self.dims]
        if missing:
            raise GridError(f"dims: {missing} are not axes of this grid, which has {self.dims}")
        idx = [self.dims.index(d) for d in dims]
        return Grid(
            [self.shape[i] for i in idx], [self.spacing[i] for i in idx], [self.origin[i] for i in idx], dims
        )

    def __getitem__(self, index: Any) -> Grid:
        """A sub-grid by index slices (step 1), e.g. ``grid[:, 10:20]``."""
        if not isinstance(index, tuple):
            index = (index,)
        if len(index) > self.ndim:
            raise GridError(f"index: expected at most {self.ndim} slices, got {len(index)}")
        index = index + (slice(None),) * (self.ndim - len(index))
        shape, origin = [], []
        for sl, n, s, o in zip(index, self.shape, self.spacing, self.origin, strict=True):
            if isinstance(sl, numbers.Integral):
                sl = slice(int(sl), int(sl) + 1 if sl != -1 else None)
            if not isinstance(sl, slice) or sl.step not in (None, 1):
                raise GridError(f"index: expected slices with step 1, got {sl!r}")
            start, stop, _ = sl.indices(n)
            if stop <= start:
                raise GridError(f"index: slice {sl!r} selects no voxel of an axis of {n}")
            shape.append(stop - start)
            origin.append(o + start * s)
        return Grid(shape, self.spacing, origin, self.dims)

    def with_spacing(self, spacing: Any) -> Grid:
        """The grid over (about) the same extent with another spacing.

        The lower edge is kept and the voxel count is ``round(length /
        spacing)``, so the upper edge moves by at most half a new spacing.

        Examples
        --------
        >>> Grid((500, 500), "72 nm").with_spacing("81.4 nm").shape
        (442, 442)
        """
        return Grid.from_extent(self.extent, spacing, self.dims)

    def with_shape(self, shape: Sequence[int]) -> Grid:
        """The grid with exactly the same extent divided into ``shape`` voxels.

        This is the geometry of Pillow's ``Image.resize``.
        """
        shape = tuple(int(n) for n in shape)
        if len(shape) != self.ndim:
            raise GridError(f"shape: expected {self.ndim} sizes, got {shape}")
        spacing = [(hi - lo) / n for (lo, hi), n in zip(self.extent, shape, strict=True)]
        origin = [lo + s / 2 for (lo, _), s in zip(self.extent, spacing, strict=True)]
        return Grid(shape, spacing, origin, self.dims)

    def crop(self, **bounds: tuple[Any, Any]) -> Grid:
        """The sub-grid of voxels whose centres lie within physical bounds.

        Parameters
        ----------
        **bounds : (lower, upper) per axis
            Lengths (``"2 um"``, or numbers in nm); ``None`` leaves that side open.

        Examples
        --------
        >>> Grid((10,), "100 nm", origin="50 nm").crop(x=("0.2 um", "0.5 um")).coords()["x"]
        array([250., 350., 450.])
        """
        index = []
        for d, n, s, o in zip(self.dims, self.shape, self.spacing, self.origin, strict=True):
            lo, hi = bounds.pop(d, (None, None))
            start = 0 if lo is None else math.ceil((length_nm(lo, default_unit="nm", name=d) - o) / s - _RTOL)
            stop = n if hi is None else math.floor((length_nm(hi, default_unit="nm", name=d) - o) / s + _RTOL) + 1
            start, stop = max(start, 0), min(stop, n)
            if stop <= start:
                raise GridError(f"{d}: bounds {lo!r}..{hi!r} hold no voxel centre of this grid, extent {self.extent}")
            index.append(slice(start, stop))
        if bounds:
            raise GridError(f"bounds: {sorted(bounds)} are not axes of this grid, which has {self.dims}")
        return self[tuple(index)]

    def _check_dims(self, other: Grid, what: str) -> None:
        if not isinstance(other, Grid):
            raise GridError(f"other: expected a Grid, got {type(other).__name__}")
        if other.dims != self.dims:
            raise GridError(f"other: {what} needs grids of the same dims, got {self.dims} and {other.dims}")

    def _lattice(self, other: Grid) -> Grid:
        """Per axis, the finer of the two lattices (ties: the lower origin), as a one-voxel grid.

        Choosing the lattice by value, not by operand order, is what makes
        :meth:`intersection` and :meth:`union` commutative.
        """
        self._check_dims(other, "this operation")
        spacing, origin = [], []
        for s1, o1, s2, o2 in zip(self.spacing, self.origin, other.spacing, other.origin, strict=True):
            if abs(s1 - s2) <= _RTOL * min(s1, s2):
                s, o = s1, min(o1, o2)
            else:
                s, o = (s1, o1) if s1 < s2 else (s2, o2)
            spacing.append(s)
            origin.append(o)
        return Grid((1,) * self.ndim, spacing, origin, self.dims)

    def intersection(self, other: Grid) -> Grid:
        """The grid of whole voxels lying inside both extents.

        Per axis it takes the finer of the two lattices (spacing and
        alignment; on equal spacings the one with the lower origin), so
        ``a.intersection(b) == b.intersection(a)`` and the result is contained
        in both grids.

        Raises
        ------
        GridError
            When the extents do not overlap by at least one voxel of the finer lattice.

        Examples
        --------
        >>> a = Grid((10,), "100 nm", origin="50 nm")      # 0 .. 1000 nm
        >>> b = Grid((10,), "100 nm", origin="550 nm")     # 500 .. 1500 nm
        >>> a.intersection(b)
        Grid(shape=(5,), spacing=(100.0,), origin=(550.0,), dims=('x',))
        """
        lattice = self._lattice(other)
        shape, origin = [], []
        for d, s, o, (lo1, hi1), (lo2, hi2) in zip(
            self.dims, lattice.spacing, lattice.origin, self.extent, other.extent, strict=False
        ):
            lo, hi = max(lo1, lo2), min(hi1, hi2)
            edge = o - s / 2
            start = math.ceil((lo - edge) / s - _RTOL)
            stop = math.floor((hi - edge) / s + _RTOL)
            if stop <= start:
                raise GridError(
                    f"other: the grids do not overlap by a voxel along {d}: {lo1:.6g}..{hi1:.6g} nm "
                    f"and {lo2:.6g}..{hi2:.6g} nm"
                )
            shape.append(stop - start)
            origin.append(o + start * s)
        return Grid(shape, lattice.spacing, origin, self.dims)

    def union(self, other: Grid) -> Grid:
        """The smallest grid covering both extents, on the finer lattice per axis (commutative).

        Examples
        --------
        >>> Grid((5,), "100 nm").union(Grid((5,), "100 nm", origin="1 um"))
        Grid(shape=(15,), spacing=(100.0,), origin=(0.0,), dims=('x',))
        """
        lattice = self._lattice(other)
        shape, origin = [], []
        for s, o, (lo1, hi1), (lo2, hi2) in zip(lattice.spacing, lattice.origin, self.extent, other.extent, strict=True):
            edge = o - s / 2
            start = math.floor((min(lo1, lo2) - edge) / s + _RTOL)
            stop = math.ceil((max(hi1, hi2) - edge) / s - _RTOL)
            shape.append(stop - start)
            origin.append(o + start * s)
        return Grid(shape, lattice.spacing, origin, self.dims)

    def contains(self, other: Any) -> bool:
        """Whether a point (sequence of lengths, one per axis) or a grid lies inside the extent."""
        tol = [_RTOL * s for s in self.spacing]
        if isinstance(other, Grid):
            self._check_dims(other, "contains")
            return all(
                lo1 - t <= lo2 and hi2 <= hi1 + t
                for (lo1, hi1), (lo2, hi2), t in zip(self.extent, other.extent, tol, strict=True)
            )
        point = lengths_nm(other, self.ndim, default_unit="nm", name="point")
        return all(lo - t <= p <= hi + t for (lo, hi), p, t in zip(self.extent, point, tol, strict=True))

    # -- value semantics ----------------------------------------------------
    def isclose(self, other: Any, rtol: float = _RTOL) -> bool:
        """Equal dims and shape, spacing and origin within ``rtol`` of a spacing."""
        if not isinstance(other, Grid) or other.dims != self.dims or other.shape != self.shape:
            return False
        return all(
            abs(s1 - s2) <= rtol * s1 and abs(o1 - o2) <= rtol * s1
            for s1, s2, o1, o2 in zip(self.spacing, other.spacing, self.origin, other.origin, strict=True)
        )

    def __eq__(self, other: object) -> bool:
        return self.isclose(other)

    def __hash__(self) -> int:  # equal grids share dims and shape
        return hash((self.dims, self.shape))

    def __repr__(self) -> str:
        def fmt(values: tuple[float, ...]) -> str:
            inner = ", ".join(f"{v:.12g}" if v != int(v) else f"{v:.1f}" for v in values)
            return f"({inner},)" if len(values) == 1 else f"({inner})"

        return (
            f"Grid(shape={self.shape}, spacing={fmt(self.spacing)}, origin={fmt(self.origin)}, dims={self.dims})"
        )

    def __dask_tokenize__(self) -> tuple:
        return ("pfibsims.Grid", self.shape, self.spacing, self.origin, self.dims)

    def quantity(self, attr: str) -> Any:
        """``spacing``, ``origin`` as a pint quantity array in nm."""
        return ureg.Quantity(np.asarray(getattr(self, attr)), LENGTH_UNIT)
