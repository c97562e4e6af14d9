"""Element maps with the per-pixel covariance and a line profile (Fig. 6), and the joint histogram."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from ..errors import PfibsimsError
from ..grid import Grid
from ..units import length_nm
from .axes import (
    channel_of,
    draw_image,
    edges_of,
    label_of,
    new_figure,
    plane_of,
    unit_scale,
)


# -- Fig. 6: Li, Zr, Li x Zr and the line profile ------------------------------
def _default_line(plane: xr.DataArray) -> tuple[tuple[str, str], tuple[str, str]]:
    (y0, y1), (x0, x1) = Grid.of(plane, dims=("y", "x")).extent
    ym = 0.5 * (y0 + y1)
    return (f"{ym} nm", f"{x0 + 0.1 * (x1 - x0)} nm"), (f"{ym} nm", f"{x0 + 0.9 * (x1 - x0)} nm")


def _profile_xy(p: xr.DataArray) -> tuple[np.ndarray, str]:
    dim = p.dims[0]
    c = p.coords[dim] if dim in p.coords else xr.DataArray(np.arange(p.sizes[dim]))
    units = c.attrs.get("units")
    if units is not None:
        try:
            return np.asarray(c.values, dtype=float) * length_nm(f"1 {units}", name=dim) / 1e3, "distance (\N{MICRO SIGN}m)"
        except PfibsimsError:
            pass
    return np.asarray(c.values, dtype=float), f"{dim}"


def element_maps(
    a: xr.DataArray,
    b: xr.DataArray,
    *,
    z: Any = None,
    start: Any = None,
    end: Any = None,
    width: Any = None,
    center: Any = "mean",
    cmap: str = "viridis",
) -> Figure:
    """Li, Zr and Li x Zr maps on one 0-255 colour scale, and the line profile (Fig. 6).

    Panel (c) is :func:`pfibsims.correlate.covariance_map` of ``a`` and ``b``
    (eq. 3 per voxel, ``(A_i - mu)(B_i - nu)``, centred on the means of the
    whole volume) at slice ``z``. Each map is scaled to 0-255 by its own
    minimum and maximum in the slice shown, as in the paper. Panel (d) is
    :func:`pfibsims.resampling.profile` of the three scaled maps along the line
    drawn on them.

    Parameters
    ----------
    a, b : DataArray
        Two channels on one grid, e.g. ``vol.Li6`` and ``vol.Zr_La``.
    z : int or length, optional
        Slice (index or depth); default the middle one.
    start, end : (y, x) lengths, optional
        The profile line; default a horizontal line across the middle of the
        field, from 10 % to 90 % of its width.
    width : length, optional
        Averaging width of the profile (see ``profile``).
    center : "mean", None or (float, float)
        Passed to ``covariance_map``: ``"mean"`` is eq. 3, ``None`` the
        plain product ``A x B``.
    cmap : str
        Colour map: perceptually uniform ``"viridis"`` by default (equal
        steps in value look like equal steps in colour); ``"jet"`` for the
        paper's blue-to-red. NaN (outside the SIMS field) is light grey.

    Returns
    -------
    matplotlib.figure.Figure
        13 x 7 inches. Computes the volume means (two numbers) and the slice.

    Examples
    --------
    >>> import numpy as np, pfibsims as pfs
    >>> rng = np.random.default_rng(0)
    >>> ds = pfs.stack({"Li6": rng.random((2, 16, 16)), "Zr_La": rng.random((2, 16, 16))},
    ...                pixel_size="81.4 nm", slice_thickness="60 nm", modality="EDS")
    >>> len(element_maps(ds.Li6, ds.Zr_La).axes)
    5
    """
    from ..correlate import covariance_map
    from ..resampling import profile

    a, b = channel_of(a, "a"), channel_of(b, "b")
    product = covariance_map(a, b, center=center)
    at = {"z": z}
    planes = {"a": plane_of(a, ("y", "x"), at), "b": plane_of(b, ("y", "x"), at), "ab": plane_of(product, ("y", "x"), at)}
    scaled = {k: p.copy(data=255 * unit_scale(p.values)) for k, p in planes.items()}
    if start is None or end is None:
        d_start, d_end = _default_line(planes["a"])
        start, end = start or d_start, end or d_end
    names = {"a": str(a.name or "a"), "b": str(b.name or "b"), "ab": f"{a.name or 'a'} \N{MULTIPLICATION SIGN} {b.name or 'b'}"}
    fig = new_figure(13, 7)
    gs = fig.add_gridspec(2, 3, height_ratios=(2.2, 1))
    line_y = [length_nm(start[0], name="start") / 1e3, length_nm(end[0], name="end") / 1e3]
    line_x = [length_nm(start[1], name="start") / 1e3, length_nm(end[1], name="end") / 1e3]
    im = None
    for col, key in enumerate(("a", "b", "ab")):
        ax = fig.add_subplot(gs[0, col])
        im = draw_image(ax, scaled[key], title=f"({'abc'[col]}) {names[key]}", cmap=cmap, vmin=0, vmax=255)
        ax.plot(line_x, line_y, color="white", lw=1.2, ls="--")
    fig.colorbar(im, ax=fig.axes, label="intensity (0-255)", shrink=0.8)
    ax = fig.add_subplot(gs[1, :])
    for key, colour in (("a", "C0"), ("b", "C2"), ("ab", "C3")):
        p = profile(scaled[key], start, end, width=width)
        d, label = _profile_xy(p)
        ax.plot(d, np.asarray(p.values, dtype=float), color=colour, lw=1.5 if key == "ab" else 1.0, label=names[key])
    ax.set_xlabel(label)
    ax.set_ylabel("intensity (0-255)")
    ax.set_title(f"(d) line profile of {names['ab']}", fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    return fig


# -- joint histogram -------------------------------------------------------------
def joint_histogram(
    a: xr.DataArray, b: xr.DataArray, *, bins: int = 128, range: Any = None, mask: Any = None, cmap: str = "viridis"
) -> Figure:
    """The joint ("correlation") histogram of two channels, log colour scale.

    Uses :func:`pfibsims.correlate.joint_histogram`, with Pearson's r from
    :func:`pfibsims.correlate.pearson` in the title ("undefined", and why,
    when a channel is constant over the voxels counted).

    Parameters
    ----------
    a, b : DataArray
        Two channels on one grid (``a`` on the horizontal axis).
    bins : int
        Bins per axis.
    range : ((a_lo, a_hi), (b_lo, b_hi)), optional
        Histogram limits (see ``joint_histogram``).
    mask : boolean DataArray, optional
        Voxels to count, e.g. ``vol.coverage``.
    cmap : str
        Colour map.

    Returns
    -------
    matplotlib.figure.Figure
        6 x 5 inches. Computes the histogram and r (reductions only).

    Examples
    --------
    >>> import numpy as np, pfibsims as pfs
    >>> rng = np.random.default_rng(0)
    >>> ds = pfs.stack({"Li6": rng.random((2, 16, 16)), "Zr_La": rng.random((2, 16, 16))},
    ...                pixel_size="81.4 nm", slice_thickness="60 nm", modality="EDS")
    >>> len(joint_histogram(ds.Li6, ds.Zr_La, bins=16).axes)
    2
    """
    from ..correlate import joint_histogram as _joint
    from ..correlate import pearson

    a, b = channel_of(a, "a"), channel_of(b, "b")
    h = _joint(a, b, bins=bins, range=range, mask=mask).compute()
    try:
        r = f"{float(pearson(a, b, mask=mask)):.3f}"
    except PfibsimsError as exc:  # a constant channel (an element absent): the histogram is still drawn
        r = f"undefined ({str(exc).split(', so')[0]})"
    counts = np.asarray(h.values, dtype=float)
    da_dim, db_dim = h.dims
    ea = edges_of(h, da_dim)
    eb = edges_of(h, db_dim)
    fig = new_figure(6, 5)
    ax = fig.add_subplot()
    positive = counts[counts > 0]
    norm = LogNorm(vmin=max(positive.min(), 1e-12), vmax=positive.max()) if positive.size else None
    mesh = ax.pcolormesh(ea, eb, np.where(counts > 0, counts, np.nan).T, norm=norm, cmap=cmap, shading="flat")
    fig.colorbar(mesh, ax=ax, label="voxels (log scale)")
    ax.set_xlabel(label_of(a, "a"))
    ax.set_ylabel(label_of(b, "b"))
    ax.set_title(f"joint histogram, Pearson r = {r}", fontsize=10)
    return fig
