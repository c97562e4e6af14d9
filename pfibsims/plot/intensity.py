"""Intensity histograms, raw vs normalised (Fig. 2), and min-max vs log normalisation (Fig. 3)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from ..errors import PfibsimsError
from ..units import length_nm
from .axes import (
    channel_of,
    channels_of,
    draw_image,
    extent_um,
    label_of,
    new_figure,
    plane_of,
)


def _log_counts(ax: Any) -> None:
    """A log pixel-count axis ticked at the decades only: the minor ticks of six decades on six axes were half
    of the figure's drawing time (each tick is four artists, measured twice by the constrained layout)."""
    ax.set_yscale("log")
    ax.yaxis.set_minor_locator(NullLocator())


def _not_defined(ax: Any, title: str, exc: PfibsimsError) -> None:
    """A panel whose statistic the data do not define (a constant channel, a maximum of 1 under log): its title
    and the reason, instead of the whole figure failing."""
    ax.set_title(title, fontsize=9)
    ax.text(0.5, 0.5, textwrap.fill(f"not defined: {exc}", 36), ha="center", va="center", fontsize=6,
            transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _raw_histogram(x: xr.DataArray, bins: int) -> xr.DataArray:
    """The raw histogram of ``x``; a constant ``x`` (a channel of zeros) in one bin of width 1 about its value."""
    from ..normalization import histogram

    try:
        return histogram(x, bins=bins).compute()
    except PfibsimsError:
        value = float(x.min())
        if not np.isfinite(value):
            raise
        return histogram(x, bins=bins, range=(value - 0.5, value + 0.5)).compute()


def _eight_bit(x: xr.DataArray, method: str) -> xr.DataArray | PfibsimsError:
    """``x`` normalised by ``method`` (``zeros="clip"``) as 8-bit codes, or the error saying why it is not defined."""
    from ..normalization import normalize, to_uint8

    try:
        return to_uint8(normalize(x, method=method, zeros="clip"))
    except PfibsimsError as exc:
        return exc


def histograms(
    raw: Any,
    *,
    channels: Sequence[str] | None = None,
    methods: Sequence[str] = ("minmax", "log"),
    bins: int = 256,
) -> Figure:
    """Intensity histograms of raw and normalised channels, as Fig. 2 of the paper.

    One row per channel; the first column is the raw count histogram (log
    frequency axis), then one column per normalisation ``method``: the 8-bit
    gray-level histogram (0-255) after :func:`pfibsims.normalization.normalize`
    and :func:`pfibsims.normalization.to_uint8`. Counts of 0 are clipped to 1
    before a log (``zeros="clip"``: gray level 0). A normalisation the data
    do not define (min-max of a constant channel, log of a channel whose
    maximum is 1 or less) leaves its panel empty with the reason.

    Parameters
    ----------
    raw : DataArray, Dataset, or a list of them
        Raw intensities (counts), e.g. ``[eds.Zr_La, sims.Li6]``.
    channels : sequence of str, optional
        Channel names to show (default: every channel given).
    methods : sequence of {"minmax", "log", "percentile"}
        Normalisations to compare.
    bins : int
        Bins of the raw histogram.

    Returns
    -------
    matplotlib.figure.Figure
        ``3.2 * (1 + len(methods))`` by ``2.4 * n_channels`` inches. Computes
        the histograms (one pass per histogram) and the normalisation
        statistics, nothing else.

    Examples
    --------
    >>> import numpy as np, pfibsims as pfs
    >>> ds = pfs.stack({"Zr_La": np.arange(1.0, 65.0).reshape(1, 8, 8)}, pixel_size="81.4 nm")
    >>> fig = histograms(ds)
    >>> len(fig.axes)
    3
    """
    from ..normalization import histogram

    das = channels_of(raw, channels, "raw")
    methods = tuple(methods)
    fig = new_figure(3.2 * (1 + len(methods)), 2.4 * len(das))
    axes = np.atleast_2d(fig.subplots(len(das), 1 + len(methods), squeeze=False))
    letters = "abcdefghijklmnopqrstuvwxyz"
    for row, x in enumerate(das):
        h = _raw_histogram(x, bins)
        ax = axes[row, 0]
        ax.stairs(h.values, np.r_[h.bin_lower.values, h.bin_upper.values[-1:]], fill=True, color="0.35")
        _log_counts(ax)
        ax.set_xlabel(label_of(x, "raw"))
        ax.set_ylabel("pixels")
        ax.set_title(f"({letters[row]}1) {x.name} raw", fontsize=9)
        for col, method in enumerate(methods, start=1):
            u8, ax = _eight_bit(x, method), axes[row, col]
            if isinstance(u8, PfibsimsError):
                _not_defined(ax, f"({letters[row]}{col + 1}) {x.name} {method}", u8)
                continue
            hu = histogram(u8, bins=256, range=(-0.5, 255.5)).compute()
            # one artist for the 256 bars (a bar a gray level, edges at the half levels)
            ax.stairs(hu.values, np.arange(257) - 0.5, fill=True, color="C0" if method == "minmax" else "C3")
            _log_counts(ax)
            ax.set_xlim(-1, 256)
            ax.set_xlabel("gray level (8-bit)")
            ax.set_title(f"({letters[row]}{col + 1}) {x.name} {method}", fontsize=9)
    return fig


# -- Fig. 3: min-max vs log ----------------------------------------------------
def _default_zoom(plane: xr.DataArray) -> tuple[slice, slice]:
    ny, nx = plane.shape
    return slice(ny // 4, ny // 4 + max(ny // 2, 1)), slice(nx // 4, nx // 4 + max(nx // 2, 1))


def _zoom_slices(plane: xr.DataArray, zoom: Any) -> tuple[slice, slice]:
    if zoom is None:
        return _default_zoom(plane)
    try:
        (y0, y1), (x0, x1) = zoom
        idx = []
        for dim, (lo, hi) in zip(plane.dims, ((y0, y1), (x0, x1)), strict=True):
            c = np.asarray(plane.coords[dim].values, dtype=float)
            lo_nm, hi_nm = length_nm(lo, name="zoom"), length_nm(hi, name="zoom")
            sel = np.nonzero((c >= lo_nm) & (c <= hi_nm))[0]
            if sel.size == 0:
                raise PfibsimsError(f"zoom: the window {zoom!r} holds no pixel of the field along {dim}")
            idx.append(slice(int(sel[0]), int(sel[-1]) + 1))
    except (TypeError, ValueError, KeyError) as exc:
        if isinstance(exc, PfibsimsError):
            raise
        raise PfibsimsError(f"zoom: expected ((y0, y1), (x0, x1)) lengths such as (('2 um', '6 um'), ('3 um', '9 um')), got {zoom!r}") from None
    return idx[0], idx[1]


def _normalization_height(aspect: float) -> float:
    """Height in inches of :func:`normalization`'s figure for a field of aspect ``h / w``."""
    return 10 * min(max(aspect, 0.2), 3.0) + 1.2


def normalization(raw: xr.DataArray, *, z: Any = None, zoom: Any = None, cmap: str = "gray") -> Figure:
    """Min-max (eq. 1) vs log (eq. 2) normalisation of one map, as Fig. 3 of the paper.

    Row 1: the raw slice and its 8-bit min-max and log normalisations; row 2
    the same zoomed in; row 3 the pixels each normalisation loses: pixels
    with signal in the raw map (above its minimum) that become gray level 0
    (the "falsely removed pixels" of Fig. 3(g, h)), counted in the titles.
    A normalisation the data do not define (a constant map, or a maximum of
    1 or less under log) leaves its panels empty with the reason.

    Parameters
    ----------
    raw : DataArray
        Raw counts, 2-D ``(y, x)`` or 3-D ``(z, y, x)``.
    z : int or length, optional
        Slice (index, or depth such as ``"1.2 um"``); default the middle one.
    zoom : ((y0, y1), (x0, x1)) lengths, optional
        Zoom window; default the central half of the field.
    cmap : str
        Colour map of the images.

    Returns
    -------
    matplotlib.figure.Figure
        10 inches wide, ``10 * h / w + 1.2`` inches tall (``h / w`` the
        field's aspect ratio, clipped to [0.2, 3]). Only the chosen slice is computed and normalised
        (statistics of that slice, as the paper normalises each map).

    Examples
    --------
    >>> import numpy as np, pfibsims as pfs
    >>> ds = pfs.stack({"Zr_La": np.arange(1.0, 65.0).reshape(1, 8, 8)}, pixel_size="81.4 nm")
    >>> len(normalization(ds.Zr_La).axes)
    9
    """
    x = channel_of(raw, "raw")
    plane = plane_of(x, ("y", "x"), {"z": z})
    u8 = {m: _eight_bit(plane, m) for m in ("minmax", "log")}
    zy, zx = _zoom_slices(plane, zoom)
    vals = plane.values.astype(float)
    signal = np.isfinite(vals) & (vals > np.nanmin(vals))
    ext = extent_um(plane)
    fig = new_figure(10, _normalization_height(abs(ext[2] - ext[3]) / abs(ext[1] - ext[0])))
    axes = fig.subplots(3, 3)
    panels = [("raw", "raw counts", plane), ("min-max", "min-max, eq. 1", u8["minmax"]), ("log", "log, eq. 2", u8["log"])]
    for col, (short, title, img) in enumerate(panels):
        if isinstance(img, PfibsimsError):
            for ax, letter in ((axes[0, col], "abc"[col]), (axes[1, col], "def"[col]), (axes[2, col - 1], "gh"[col - 1])):
                _not_defined(ax, f"({letter}) {title}", img)
            continue
        vmin, vmax = (None, None) if col == 0 else (0, 255)
        draw_image(axes[0, col], img, title=f"({'abc'[col]}) {title}", cmap=cmap, vmin=vmin, vmax=vmax)
        zoomed = img[zy, zx]
        draw_image(axes[1, col], zoomed, title=f"({'def'[col]}) zoom of ({'abc'[col]})", cmap=cmap, vmin=vmin, vmax=vmax)
        if col:
            lost = signal[zy, zx] & (zoomed.values == 0)
            n_all = int((signal & (img.values == 0)).sum())
            draw_image(axes[2, col - 1], zoomed, lost.astype(float), cmap="magma", vmin=0, vmax=1,
                   title=f"({'gh'[col - 1]}) pixels lost by {short}: {int(lost.sum())} (field: {n_all})")
    axes[2, 2].axis("off")
    axes[2, 2].text(0.0, 0.5, "Lost pixel: raw count above the\nminimum that becomes gray level 0.\n"
                    f"{x.name}, slice {z if z is not None else 'middle'}", transform=axes[2, 2].transAxes, fontsize=9)
    return fig
