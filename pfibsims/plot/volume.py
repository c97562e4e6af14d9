"""Orthogonal slices (xy, xz, yz) of a volume with phase outlines."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..errors import PfibsimsError
from .axes import (
    PHASE_COLOURS,
    centre_um,
    channel_of,
    draw_image,
    draw_outline,
    extent_um,
    has_units,
    index_of,
    new_figure,
    phase_names,
    plane_of,
    unit_scale,
)


def orthoslices(
    vol: Any,
    *,
    channel: str | None = None,
    labels: xr.DataArray | None = None,
    at: Any = None,
    cmap: str = "gray",
) -> Figure:
    """Orthogonal slices (xy, xz, yz) of a volume, with phase outlines.

    The panels are laid out at their physical extents: the xz panel under the
    xy one shares its x axis, the yz panel beside it shares its y axis, so a
    60 nm slice spacing looks thinner than an 81.4 nm pixel, as it is.

    Parameters
    ----------
    vol : Dataset or DataArray
        A 3-D ``(z, y, x)`` volume (e.g. the output of ``fuse``).
    channel : str, optional
        Channel of a Dataset to show (default: the first data variable).
    labels : DataArray, optional
        Phase labels on the same grid (e.g. from
        :func:`pfibsims.segmentation.classify_phases`); each labelled phase other
        than 0 is outlined, named from the ``flag_values``/``flag_meanings``
        attrs.
    at : (z, y, x) indices or lengths, optional
        Where the three planes cut; default the centre of the volume.
    cmap : str
        Colour map of the intensities (scaled to the 1-99 % range of each plane).

    Returns
    -------
    matplotlib.figure.Figure
        9 x 7 inches. Computes the three planes only.

    Examples
    --------
    >>> import numpy as np, pfibsims as pfs
    >>> ds = pfs.stack({"Zr_La": np.random.default_rng(0).random((4, 16, 20))},
    ...                pixel_size="81.4 nm", slice_thickness="60 nm")
    >>> len(orthoslices(ds).axes)
    3
    """
    if isinstance(vol, xr.Dataset):
        if channel is None:
            channel = next((str(n) for n in vol.data_vars if vol[n].ndim == 3 and vol[n].dtype.kind in "iuf"), None)
        if channel not in vol.data_vars:
            raise PfibsimsError(f"channel: expected one of {list(vol.data_vars)}, got {channel!r}")
        vol = vol[channel]
    x = channel_of(vol, "vol")
    if tuple(d for d in x.dims if d in "zyx") != ("z", "y", "x") or x.ndim != 3:
        raise PfibsimsError(f"vol: expected a 3-D (z, y, x) volume, got dims {tuple(x.dims)}")
    if at is None:
        at = (None, None, None)
    if not isinstance(at, (list, tuple)) or len(at) != 3:
        raise PfibsimsError(f"at: expected (z, y, x) indices or lengths, got {at!r}")
    pos = {d: index_of(x, d, v, f"at[{i}]") for i, (d, v) in enumerate(zip(("z", "y", "x"), at, strict=True))}
    planes = {
        "xy": plane_of(x, ("y", "x"), pos),
        "xz": plane_of(x, ("z", "x"), pos),
        "yz": plane_of(x, ("y", "z"), pos),
    }
    names = {}
    lab_planes = {}
    if labels is not None:
        if not isinstance(labels, xr.DataArray) or labels.sizes != x.sizes:
            raise PfibsimsError(
                f"labels: expected a DataArray on the volume's grid {dict(x.sizes)}, got "
                f"{dict(labels.sizes) if isinstance(labels, xr.DataArray) else type(labels).__name__}"
            )
        names = phase_names(labels)
        lab_planes = {k: plane_of(labels, p.dims, pos) for k, p in planes.items()}
        present = sorted(set().union(*(np.unique(p.values).tolist() for p in lab_planes.values())))
        phases = [int(v) for v in (names or {v: str(v) for v in present}) if v != 0 and v in present]
    ext = {k: extent_um(p) for k, p in planes.items()}
    wx = abs(ext["xy"][1] - ext["xy"][0])
    hy = abs(ext["xy"][2] - ext["xy"][3])
    dz = abs(ext["xz"][2] - ext["xz"][3])
    fig = new_figure(9, 7)
    gs = fig.add_gridspec(2, 2, width_ratios=(wx, max(dz, 0.05 * wx)), height_ratios=(hy, max(dz, 0.05 * hy)))
    ax_xy = fig.add_subplot(gs[0, 0])
    ax_xz = fig.add_subplot(gs[1, 0], sharex=ax_xy)
    ax_yz = fig.add_subplot(gs[0, 1], sharey=ax_xy)
    finite = np.concatenate([p.values[np.isfinite(p.values)].ravel() for p in planes.values()])
    lo, hi = (np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0))
    cuts = {d: centre_um(x, d, pos[d]) for d in "zyx"}
    for key, ax in (("xy", ax_xy), ("xz", ax_xz), ("yz", ax_yz)):
        plane = planes[key]
        draw_image(ax, plane, unit_scale(plane.values, lo, hi), scale_bar=False, cmap=cmap, vmin=0, vmax=1)
        ax.set_aspect("equal", adjustable="box")
        if lab_planes:
            draw_outline(ax, lab_planes[key], phases)
        # where the other planes cut this one
        row_dim, col_dim = plane.dims
        ax.axhline(cuts[row_dim], color="white", lw=0.6, ls="--", alpha=0.6)
        ax.axvline(cuts[col_dim], color="white", lw=0.6, ls="--", alpha=0.6)
    ax_xy.set_title(f"{x.name}, xy at z = {cuts['z']:.3g}" + (" \N{MICRO SIGN}m" if has_units(planes["xz"]) else ""),
                    fontsize=9)
    ax_xz.set_title("xz", fontsize=9)
    ax_yz.set_title("yz", fontsize=9)
    ax_xy.tick_params(labelbottom=False)
    ax_xy.set_xlabel("")
    ax_yz.tick_params(labelleft=False)
    ax_yz.set_ylabel("")
    if lab_planes and phases:
        handles = [Line2D([], [], color=PHASE_COLOURS[i % len(PHASE_COLOURS)], lw=1.5, label=names.get(p, str(p)))
                   for i, p in enumerate(phases)]
        legend_ax = fig.add_subplot(gs[1, 1])
        legend_ax.axis("off")
        legend_ax.legend(handles=handles, loc="center", fontsize=7, frameon=False, facecolor="0.2")
    return fig
