"""Drift as per-slice transforms: the drift table checked and turned into one in-plane Affine a slice."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from .._xr import dequantify
from ..errors import DataModelError, PfibsimsError, UnitsError
from ..transform import Affine
from ..units import length_nm


def compose(transform: Affine, shifts: np.ndarray) -> list[Affine]:
    return [Affine.translation((float(dy), float(dx))) @ transform for dy, dx in shifts]


def slice_transforms(transform: Affine, drift: xr.DataArray) -> list[Affine]:
    """One in-plane transform per slice: ``Affine.translation(drift[k]) @ transform``.

    Slice ``k``'s fixed point ``p`` maps to ``transform(p) + drift[k]`` in the
    moving slice (the phantom's truth contract), so
    ``resample(moving, onto=fixed, transform=slice_transforms(T, drift))``
    corrects the drift and registers in one interpolation, and
    ``coverage(moving, fixed, transform=slice_transforms(T, drift))`` is its mask.

    Parameters
    ----------
    transform : Affine
        In-plane ``(y, x)`` transform, fixed point -> moving point, nm
        (e.g. :func:`register`'s result; the identity for drift alone).
    drift : xarray.DataArray
        ``(z, component)`` with a length ``units`` attr (:func:`estimate_drift`).

    Returns
    -------
    list of Affine
        Plain ``Affine`` objects on ``("y", "x")``, one per slice of ``drift``.

    Raises
    ------
    PfibsimsError
        When ``transform`` is not an in-plane Affine.
    DataModelError, UnitsError
        For a malformed drift (as :func:`correct_drift`).

    Examples
    --------
    >>> import xarray as xr
    >>> d = xr.DataArray([[0.0, 0.0], [5.0, -2.0]], dims=("z", "component"),
    ...                  coords={"component": ["y", "x"]}, attrs={"units": "nm"})
    >>> Ts = slice_transforms(Affine.translation((100.0, 0.0)), d)
    >>> Ts[1]([[0.0, 0.0]]).tolist()
    [[105.0, -2.0]]
    """
    if not isinstance(transform, Affine) or transform.dims != ("y", "x"):
        raise PfibsimsError(f"transform: expected an in-plane pfibsims.Affine on ('y', 'x'), got "
                            f"{getattr(transform, 'dims', type(transform).__name__)}")
    shifts = drift_nm(drift, None)
    return compose(Affine(transform.matrix, transform.dims), shifts)


def _listed(values: Any, most: int = 8) -> str:
    v = [f"{float(x):.6g}" for x in np.asarray(values).reshape(-1)]
    return ", ".join(v if len(v) <= most else v[: most - 1] + ["...", v[-1]])


def _table(drift: Any, name: str) -> xr.DataArray:
    """``drift`` checked as a drift table: dims ``(z, component)``, components ``y`` and ``x``."""
    drift = dequantify(drift, name)  # pint-xarray's quantities: numbers with a 'units' attr
    if not isinstance(drift, xr.DataArray) or set(drift.dims) != {"z", "component"}:
        raise DataModelError(
            f"{name}: expected a DataArray with dims (z, component) as estimate_drift returns, got "
            f"{type(drift).__name__} with dims {getattr(drift, 'dims', None)}"
        )
    if "component" not in drift.coords or set(drift.coords["component"].values.tolist()) != {"y", "x"}:
        raise DataModelError(f"{name}: expected a 'component' coordinate ['y', 'x']")
    return drift


def _depths_nm(coord: Any, units: Any, name: str) -> np.ndarray:
    return np.asarray(coord.values, dtype=np.float64).reshape(-1) * length_nm(f"1 {units}", name=name)


def match_drift(drift: Any, slices: Any = None, *, name: str = "drift", of: str = "data") -> xr.DataArray:
    """The rows of a drift table for the z slices of ``slices``, in their order: matched by depth.

    A table with a ``z`` coordinate (as :func:`~pfibsims.registration.estimate_drift` returns) gives
    each slice the row at its depth (``z`` in any length unit; a ``z`` without units is read in the
    slices' units), whatever the order of the rows; rows for other slices are left out. A slice with
    no row, or with two, is a :class:`DataModelError` naming ``name``. A table without a ``z``
    coordinate, or slices without one (or ``slices`` a number of slices), is taken row by row and
    must have one row a slice. ``slices`` None: the whole table, as it is.
    """
    drift = _table(drift, name)
    if slices is None:
        return drift
    nz = slices if isinstance(slices, (int, np.integer)) else slices.sizes["z"]
    z_slices = None if isinstance(slices, (int, np.integer)) or "z" not in slices.coords else slices.coords["z"]
    if z_slices is None or "z" not in drift.coords or drift.coords["z"].dims != ("z",):
        if drift.sizes["z"] != nz:
            raise DataModelError(f"{name}: expected {nz} slices (those of {of}), got {drift.sizes['z']}")
        return drift
    units = z_slices.attrs.get("units")
    if units is None:
        raise UnitsError(f"{of}: expected a length 'units' attribute on z (e.g. 'nm') to match {name}'s rows by depth, "
                         f"found none")
    zs = _depths_nm(z_slices, units, f"{of}.z.attrs['units']")
    zt = _depths_nm(drift.coords["z"], drift.coords["z"].attrs.get("units", units), f"{name}.z.attrs['units']")
    bad = np.flatnonzero(~np.isfinite(zt))
    if bad.size:
        raise DataModelError(f"{name}: expected finite depths z, found {zt[bad[0]]} nm at row {int(bad[0])}")
    steps = np.diff(np.sort(zs))
    tol = 1e-6 * (float(steps[steps > 0].min()) if (steps > 0).any() else max(1.0, float(np.abs(zs).max())))
    hits = np.abs(zs[:, None] - zt[None, :]) <= tol
    count = hits.sum(axis=1)
    if (count == 0).any():
        raise DataModelError(
            f"{name}: expected a row for each z slice of {of} (z {_listed(zs)} nm), found none at z "
            f"{_listed(zs[count == 0])} nm (the table's z: {_listed(zt)} nm); rows are matched by depth: "
            f"give the drift of these slices (estimate_drift on them)")
    if (count > 1).any():
        k = int(np.flatnonzero(count > 1)[0])
        raise DataModelError(f"{name}: expected one row a depth, found {int(count[k])} rows at z {zs[k]:.6g} nm")
    rows = hits.argmax(axis=1)
    return drift if np.array_equal(rows, np.arange(drift.sizes["z"])) else drift.isel(z=rows)


def drift_nm(drift: Any, slices: Any = None, *, name: str = "drift", of: str = "data") -> np.ndarray:
    """The shifts ``(y, x)`` in nm of a drift table, one row per z slice of ``slices`` (see :func:`match_drift`)."""
    drift = match_drift(drift, slices, name=name, of=of)
    units = drift.attrs.get("units")
    if units is None:
        raise UnitsError(f"{name}: expected a length 'units' attribute (e.g. 'nm'), found none")
    factor = length_nm(f"1 {units}", name=f"{name}.attrs['units']")
    values = np.asarray(drift.transpose("z", "component").sel(component=["y", "x"]).values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise DataModelError(f"{name}: expected finite shifts, found NaN or inf")
    return values * factor
