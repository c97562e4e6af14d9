"""Particles of one phase: 3-D connected components with their volume, diameter and centroid."""

from __future__ import annotations

import numbers
from typing import Any

import dask.array as darr
import numpy as np
import xarray as xr
from scipy import ndimage as ndi

from .._xr import ascending, coord_nm, spatial_dims
from ..dataset import history, history_attrs, record
from ..errors import PfibsimsError
from ..units import LENGTH_UNIT
from .labels import phase_value
from .statistics import voxel_volume_um3


def _centres(obj: xr.DataArray, d: str) -> np.ndarray:
    """Voxel centres along ``d`` in nm."""
    return coord_nm(obj.coords[d], d)


def _mean_coordinate(comp: np.ndarray, n: int, voxels: np.ndarray, centres: np.ndarray, ax: int) -> np.ndarray:
    """Mean of the voxel centres along ``ax`` of each component ``1 .. n`` (nm): per slice along ``ax``, its
    voxels of each component times the slice's centre, summed, over the component's voxels."""
    total = np.zeros(n + 1)
    for k, c in enumerate(centres):
        total += c * np.bincount(np.take(comp, k, axis=ax).ravel(), minlength=n + 1)
    return total[1:] / np.maximum(voxels, 1)


def _centroids(comp: np.ndarray, mask: np.ndarray, n: int, voxels: np.ndarray, centres: list[np.ndarray]) -> np.ndarray:
    """``(n, ndim)`` centroids in nm: the mean of each component's voxel centres. Along an evenly spaced axis
    that is the centre at the mean index (interpolated); along uneven measured depths it is summed slice by slice."""
    idx = np.array(ndi.center_of_mass(mask, comp, np.arange(1, n + 1))).reshape(n, mask.ndim)
    out = np.empty((n, mask.ndim))
    for ax, c in enumerate(centres):
        step = np.diff(c)
        if step.size < 2 or np.ptp(step) <= 1e-9 * np.abs(step).max():  # even: the mean index maps linearly
            out[:, ax] = np.interp(idx[:, ax], np.arange(mask.shape[ax]), c)
        else:
            out[:, ax] = _mean_coordinate(comp, n, voxels, c, ax)
    return out


# -- particles -----------------------------------------------------------------------
def particles(labels: xr.DataArray, phase: Any, *, connectivity: int = 1) -> xr.Dataset:
    """3-D connected components of one phase, with their size and position.

    Computes: the phase mask of the whole label volume is loaded (1 byte a
    voxel) and labelled in memory with :func:`scipy.ndimage.label`; pass a
    sub-volume (``labels.isel(...)``) when the volume does not fit.
    Measured, uneven slice depths (``z`` increasing in unequal steps): sizes
    take their median step along ``z`` (an approximation); centroids are the
    mean of the voxels' measured depths.

    Parameters
    ----------
    labels : xarray.DataArray
        Phase labels with CF flags (from :func:`classify_phases`).
    phase : str or int
        The phase, by name (``"LLZTO"``) or label integer.
    connectivity : {1, 2, 3}
        Neighbours that join: 1 shares a face, 2 an edge, 3 a corner.

    Returns
    -------
    xarray.Dataset
        Along ``particle`` (1, 2, ...): ``voxels``; ``volume`` (um^3; a
        map selected as ``labels.isel(z=k)`` counts the slice thickness of
        its scalar ``z``, NaN if unknown);
        ``equivalent_diameter`` (um, of the sphere of that volume,
        ``(6 V / pi)**(1/3)``); ``centroid`` (particle, axis) in nm, physical
        voxel-centre coordinates; ``touches_border`` (True when the particle
        reaches a face of the volume, so it may be cut; the faces of an axis
        of one voxel, a single map, do not count); and ``labels``, the
        component image (uint32, 0 outside the phase), on the coordinates of ``labels`` (a decreasing axis
        too: measured ascending, returned in its order).

    Raises
    ------
    DataModelError
        On an unknown phase or labels without flags.
    PfibsimsError
        On a bad ``connectivity``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from pfibsims.dataset import stack
    >>> lab = stack({"BSE": np.zeros((1, 4, 6))}, pixel_size="100 nm").BSE.astype(np.uint8)
    >>> lab[0, 1:3, 1:3] = 1; lab[0, 0:2, 5] = 1
    >>> lab.attrs.update(flag_values=[0, 1], flag_meanings="matrix LCO")
    >>> p = particles(lab, "LCO")
    >>> p["voxels"].values.tolist(), p["touches_border"].values.tolist()
    ([2, 4], [True, False])
    """
    value, name = phase_value(labels, phase)
    dims = spatial_dims(labels, "labels")
    labels, flipped = ascending(labels)  # a decreasing axis: measured ascending, the image returned in its order
    voxel_um3 = voxel_volume_um3(labels, "labels", uneven_z="median")
    if isinstance(connectivity, bool) or not isinstance(connectivity, numbers.Integral) or connectivity not in (1, 2, 3):
        raise PfibsimsError(f"connectivity: expected 1 (faces), 2 (edges) or 3 (corners), got {connectivity!r:.60}")
    mask = labels.data == value
    mask = np.asarray(mask.compute() if isinstance(mask, darr.Array) else mask)
    structure = ndi.generate_binary_structure(mask.ndim, min(connectivity, mask.ndim))
    comp, n = ndi.label(mask, structure=structure)
    comp = comp.astype(np.uint32)
    index = np.arange(1, n + 1)
    voxels = np.bincount(comp.ravel(), minlength=n + 1)[1:]
    centroid = _centroids(comp, mask, n, voxels, [_centres(labels, d) for d in dims])
    border = np.zeros(n + 1, dtype=bool)
    for ax in range(mask.ndim):
        if mask.shape[ax] == 1:  # a single slice: its faces are not a border in that axis
            continue
        for end in (0, -1):
            border[np.unique(np.take(comp, end, axis=ax))] = True
    volume = voxels * voxel_um3
    out = xr.Dataset(
        {
            "voxels": ("particle", voxels.astype(np.int64), {"units": "1"}),
            "volume": ("particle", volume, {"units": "um**3"}),
            "equivalent_diameter": ("particle", (6 * volume / np.pi) ** (1 / 3), {"units": "um"}),
            "centroid": (("particle", "axis"), centroid, {"units": LENGTH_UNIT}),
            "touches_border": ("particle", border[1:]),
            "labels": (dims, comp, {"units": "1", "long_name": f"{name} particle"}),
        },
        coords={"particle": index, "axis": list(dims), **{d: labels.coords[d] for d in dims if d in labels.coords}},
        attrs={"phase": name, **history_attrs(history(labels))},
    )
    out = out.isel({d: slice(None, None, -1) for d in flipped}) if flipped else out
    return record(out, "particles", phase=name, connectivity=connectivity)
