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


def drift_nm(drift: Any, nz: int | None) -> np.ndarray:
    drift = dequantify(drift, "drift")  # pint-xarray's quantities: numbers with a 'units' attr
    if not isinstance(drift, xr.DataArray) or set(drift.dims) != {"z", "component"}:
        raise DataModelError(
            f"drift: expected a DataArray with dims (z, component) as estimate_drift returns, got "
            f"{type(drift).__name__} with dims {getattr(drift, 'dims', None)}"
        )
    if "component" not in drift.coords or set(drift.coords["component"].values.tolist()) != {"y", "x"}:
        raise DataModelError("drift: expected a 'component' coordinate ['y', 'x']")
    if nz is not None and drift.sizes["z"] != nz:
        raise DataModelError(f"drift: expected {nz} slices (those of ds), got {drift.sizes['z']}")
    units = drift.attrs.get("units")
    if units is None:
        raise UnitsError("drift: expected a length 'units' attribute (e.g. 'nm'), found none")
    factor = length_nm(f"1 {units}", name="drift.attrs['units']")
    values = np.asarray(drift.transpose("z", "component").sel(component=["y", "x"]).values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise DataModelError("drift: expected finite shifts, found NaN or inf")
    return values * factor
