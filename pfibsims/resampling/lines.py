"""Line profiles between two physical points, sampled as :func:`~pfibsims.resampling.resample` samples."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import xarray as xr

from .._xr import as_dataarray, ascending
from ..dataset import record
from ..errors import PfibsimsError
from ..grid import Grid
from ..transform import Affine
from ..units import length_nm
from .interp import resample

# -- line profile --------------------------------------------------------------
#: Most samples a profile takes (samples along the segment times lines across it).
MAX_SAMPLES = 1 << 22


def _point_nm(p: Any, name: str) -> np.ndarray:
    if isinstance(p, (str, numbers.Real)) or not hasattr(p, "__len__") or len(p) not in (2, 3):
        raise PfibsimsError(f"{name}: expected a point (y, x) or (z, y, x) of lengths such as ('2 um', '3 um'), got {p!r}")
    return np.array([length_nm(v, name=name) for v in p])  # a unit is required: a plain 2 could be nm or um


def profile(da_: Any, start: Any, end: Any, *, width: Any = None, n: int | None = None,
            kernel: str = "lanczos", a: int = 3) -> xr.DataArray:
    """Line profile between two physical points, sampled as :func:`pfibsims.resample` samples.

    Parameters
    ----------
    da_ : xarray.DataArray
        Data with ``y``, ``x`` (and optionally ``z``) coordinates in length units,
        increasing or decreasing (rows stored top down): the profile is that of
        the physical points, whatever the order of the coordinates.
    start, end : (y, x) or (z, y, x) lengths
        End points, e.g. ``("2 um", "3 um")``, with units (a plain number is an error). A
        ``(y, x)`` segment is sampled on every slice (the result keeps
        ``z``); a ``(z, y, x)`` segment must lie in one plane of constant
        ``z`` (resampling does not mix ``z`` with ``y``/``x``), interpolated
        between slices along ``z``.
    width : length, optional
        Average across this width, perpendicular to the segment in-plane
        (samples about one pixel apart).
    n : int, optional
        Samples along the segment, end points included; by default one per
        in-plane pixel spacing.
    kernel, a : as :func:`pfibsims.resample`.

    Returns
    -------
    xarray.DataArray
        Along dim ``distance`` (nm from ``start``), with coordinates ``y`` and
        ``x`` of the samples along ``distance``; lazy when the data are; NaN
        where the line leaves the field.

    Examples
    --------
    >>> import numpy as np, pfibsims as pfs
    >>> ds = pfs.stack({"Li6": np.tile(np.arange(10.0), (10, 1))}, pixel_size="100 nm")
    >>> p = profile(ds.Li6, ("0.5 um", "0.05 um"), ("0.5 um", "0.45 um"), kernel="linear")
    >>> p.values.round(6).tolist(), p.distance.values.tolist()
    ([[0.0, 1.0, 2.0, 3.0, 4.0]], [0.0, 100.0, 200.0, 300.0, 400.0])
    """
    x = as_dataarray(da_, "da")
    p0, p1 = _point_nm(start, "start"), _point_nm(end, "end")
    if p0.size != p1.size:
        raise PfibsimsError(f"start, end: expected points of one dimensionality, got {p0.size} and {p1.size} components")
    z0 = None
    if p0.size == 3:
        if abs(p0[0] - p1[0]) > 1e-6:
            raise PfibsimsError(
                f"start, end: a (z, y, x) segment must keep z constant (got z {p0[0]:.6g} and {p1[0]:.6g} nm): "
                f"resampling does not mix z with y, x; take profiles per slice with (y, x) points")
        z0, p0, p1 = p0[0], p0[1:], p1[1:]
    x, flipped = ascending(x)  # a function of physical points: rows stored top down (y high -> low) read as such
    if z0 is None and "z" in flipped:  # a (y, x) segment on every slice: the slices keep the data's order
        x = x.isel(z=slice(None, None, -1))
    plane = Grid.of(x, dims=("y", "x"))
    length = float(np.hypot(*(p1 - p0)))
    if length <= 0:
        raise PfibsimsError("start, end: expected two different points, got the same")
    if n is None:
        n = int(math.ceil(length / min(plane.spacing))) + 1
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 2 <= n <= MAX_SAMPLES:
        raise PfibsimsError(f"n: expected at least 2 samples and at most {MAX_SAMPLES}, got {n!r:.60}")
    u = (p1 - p0) / length
    v = np.array([u[1], -u[0]])  # in-plane perpendicular
    w = 0.0 if width is None else length_nm(width, name="width")
    if not 0 <= w <= MAX_SAMPLES * min(plane.spacing):
        raise PfibsimsError(f"width: expected a length from 0 to {MAX_SAMPLES} pixels ({MAX_SAMPLES * min(plane.spacing):.6g} nm), got {width!r}")
    m = max(1, int(round(w / min(plane.spacing))))
    m = 1 if w == 0 else (m if m % 2 else m + 1)
    if m * n > MAX_SAMPLES:
        raise PfibsimsError(f"width, n: a profile of {n} samples over {m} lines is {m * n} samples, more than {MAX_SAMPLES}; "
                            "narrow it or sample fewer points")
    step_t = length / (n - 1)
    step_s = w / m if w else min(plane.spacing)
    # target (s, t) -> source (y, x) = p0 + s v + t u, as a pulling affine on ("y", "x")
    T = Affine([[v[0], u[0], p0[0]], [v[1], u[1], p0[1]]], dims=("y", "x"))
    target = Grid((m, n), (step_s, step_t), (-(m - 1) / 2 * step_s, 0.0), ("y", "x"))
    src = x
    if z0 is not None:
        zg = Grid.of(x, dims=("z",))
        target = Grid((1, m, n), (zg.spacing[0], step_s, step_t), (z0, target.origin[0], 0.0), ("z", "y", "x"))
        T = T.embed(("z", "y", "x"))
    out = resample(src, target, transform=T, kernel=kernel, a=a)
    vals = out.astype(np.float64)
    ok = np.isfinite(vals)
    mean = vals.where(ok, 0.0).sum("y") / ok.sum("y")
    mean = mean.where(ok.any("y"))
    if z0 is not None:
        mean = mean.isel(z=0, drop=True)
    t = np.arange(n) * step_t
    mean = mean.rename(x="distance").assign_coords(
        distance=("distance", t, {"units": "nm"}),
        y=("distance", p0[0] + t * u[0], {"units": "nm"}),
        x=("distance", p0[1] + t * u[1], {"units": "nm"}),
    )
    mean.name = x.name
    mean.attrs = dict(x.attrs)
    return record(mean, "profile", start=p0.tolist() if z0 is None else [z0, *p0.tolist()],
                  end=p1.tolist() if z0 is None else [z0, *p1.tolist()], width=w, n=int(n), kernel=kernel, a=int(a))
