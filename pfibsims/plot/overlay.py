"""The moving modality over the fixed one, before and after registration."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from ..errors import PfibsimsError
from ..grid import Grid
from ..units import length_nm
from .axes import (
    channel_of,
    draw_image,
    index_of,
    new_figure,
    plane_of,
    unit_scale,
)


# -- registration overlay ------------------------------------------------------
def _on_grid(moving: xr.DataArray, fixed: xr.DataArray, transform: Any) -> xr.DataArray:
    """``moving`` on the in-plane grid of ``fixed`` (resampled unless already there)."""
    same = transform is None and all(
        d in moving.coords and d in fixed.coords and moving.sizes[d] == fixed.sizes[d]
        and np.allclose(moving.coords[d].values, fixed.coords[d].values) for d in ("y", "x")
    )
    if same:
        return moving
    from ..resampling import resample

    return resample(moving, Grid.of(fixed, dims=("y", "x")), transform=transform)


def _depths_nm(data: xr.DataArray) -> np.ndarray | None:
    """The ``z`` coordinate of ``data`` in nm, or None without one (or without length units)."""
    if "z" not in data.coords:
        return None
    try:
        scale = length_nm(f"1 {data.z.attrs.get('units', 'nm')}", name="z.attrs['units']")
    except PfibsimsError:
        return None
    return np.asarray(data.z.values, dtype=float) * scale


def _same_depth(data: xr.DataArray, fixed: xr.DataArray, k: int | None) -> int:
    """The slice of ``data`` to draw with slice ``k`` of ``fixed``: ``k`` itself when the stacks have as many
    slices, else the one nearest in depth (a SIMS stack of every other slice), else the middle one."""
    n = data.sizes["z"]
    if k is not None and n == fixed.sizes.get("z"):
        return k
    depths, at = _depths_nm(data), _depths_nm(fixed)
    if k is None or depths is None or at is None:
        return n // 2
    return int(np.argmin(np.abs(depths - at[k])))


def _rgb(fixed: np.ndarray, moving: np.ndarray, style: str, tiles: int) -> np.ndarray:
    f = np.nan_to_num(unit_scale(fixed, *np.nanpercentile(fixed, [1, 99])) if np.isfinite(fixed).any() else fixed)
    m = np.nan_to_num(unit_scale(moving, *np.nanpercentile(moving, [1, 99])) if np.isfinite(moving).any() else moving)
    if style == "redgreen":
        return np.stack([f, m, np.zeros_like(f)], axis=-1)
    ny, nx = f.shape
    yy, xx = np.meshgrid(np.arange(ny) * tiles // ny, np.arange(nx) * tiles // nx, indexing="ij")
    board = (yy + xx) % 2 == 0
    grey = np.where(board, f, m)
    return np.stack([grey, grey, grey], axis=-1)


def registration_overlay(
    fixed: xr.DataArray,
    moving: xr.DataArray,
    *,
    after: xr.DataArray | None = None,
    transform: Any = None,
    z: Any = None,
    style: str = "redgreen",
    tiles: int = 8,
) -> Figure:
    """Overlay of the moving modality on the fixed one, before and after registration.

    "Before" is ``moving`` placed on the fixed grid by its own coordinates
    (the identity transform); "after" is ``after`` (data already on the fixed
    grid, e.g. ``vol.Li6`` of a fused volume) or ``moving`` resampled with
    ``transform`` by :func:`pfibsims.resampling.resample`. Red/green: fixed in
    red, moving in green, so aligned features turn yellow; checkerboard:
    alternate tiles of the two.

    Parameters
    ----------
    fixed : DataArray
        The reference channel, e.g. ``eds.Zr_La`` (its in-plane grid is the
        frame of the figure).
    moving : DataArray
        The channel to align, on its own grid, e.g. ``sims.Li6``; a stack of
        other slices than ``fixed`` (SIMS on every other slice) is drawn at
        its slice nearest in depth to the fixed one.
    after : DataArray, optional
        The aligned moving channel on the fixed grid.
    transform : Affine, optional
        The pull transform fixed -> moving (as ``register`` returns), used when
        ``after`` is not given.
    z : int or length, optional
        Slice; default the middle one.
    style : {"redgreen", "checkerboard"}
        How the two are combined.
    tiles : int
        Checkerboard tiles across each axis.

    Returns
    -------
    matplotlib.figure.Figure
        10 x 4.5 inches. Computes the one slice of each input.

    Examples
    --------
    >>> import numpy as np, pfibsims as pfs
    >>> ds = pfs.stack({"Zr_La": np.random.default_rng(0).random((1, 16, 16))}, pixel_size="81.4 nm")
    >>> len(registration_overlay(ds.Zr_La, ds.Zr_La, after=ds.Zr_La).axes)
    2
    """
    if style not in ("redgreen", "checkerboard"):
        raise PfibsimsError(f"style: expected 'redgreen' or 'checkerboard', got {style!r}")
    if isinstance(tiles, bool) or not isinstance(tiles, (int, np.integer)) or tiles < 1:
        raise PfibsimsError(f"tiles: expected a positive number of tiles such as 8, got {tiles!r}")
    fixed, moving = channel_of(fixed, "fixed"), channel_of(moving, "moving")
    if after is None and transform is None:
        raise PfibsimsError("after, transform: expected the aligned data (after=) or the transform (transform=), got neither")
    ref = plane_of(fixed, ("y", "x"), {"z": z})
    k = index_of(fixed, "z", z, "z") if "z" in fixed.dims else None

    def pick(data: xr.DataArray) -> xr.DataArray:
        if "z" in data.dims:
            data = data.isel(z=_same_depth(data, fixed, k))
        return data

    before = plane_of(_on_grid(pick(moving), ref, None), ("y", "x"))
    aligned = plane_of(_on_grid(pick(channel_of(after, "after")), ref, None) if after is not None
                     else _on_grid(pick(moving), ref, transform), ("y", "x"))
    fig = new_figure(10, 4.5)
    axes = fig.subplots(1, 2)
    for ax, img, title in ((axes[0], before, "before registration"), (axes[1], aligned, "after registration")):
        rgb = _rgb(ref.values.astype(float), img.values.astype(float), style, tiles)
        draw_image(ax, ref, rgb, title=f"{title}: {fixed.name} (red) / {moving.name} (green)" if style == "redgreen"
               else f"{title}: {fixed.name} / {moving.name} checkerboard")
    return fig
