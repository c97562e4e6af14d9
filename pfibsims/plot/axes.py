"""Shared drawing helpers: figures on the Agg canvas, physical extents, scale bars, phase outlines.

matplotlib is the optional ``plot`` extra: importing this module without it raises an ImportError that says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

try:
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar
except ImportError as _exc:  # pragma: no cover - exercised by a test that hides matplotlib
    raise ImportError(
        "pfibsims.plot: expected matplotlib (the optional 'plot' extra), found it missing; "
        "install pfibsims[plot], e.g. pip install 'pfibsims[plot]'"
    ) from _exc

from ..errors import PfibsimsError
from ..grid import Grid
from ..units import length_nm

#: Default resolution of saved PNGs, dots per inch.
DPI = 150


PHASE_COLOURS = ("#ffd700", "#00e5ff", "#ff4df0", "#7cff4d", "#ff8c00", "#b0b0ff", "#ffffff")


# -- figure and data helpers ---------------------------------------------------
def new_figure(width: float, height: float) -> Figure:
    """A Figure on its own Agg canvas (no pyplot), constrained layout."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def channel_of(data: Any, name: str) -> xr.DataArray:
    if isinstance(data, xr.Dataset):
        raise PfibsimsError(
            f"{name}: expected a DataArray (one channel), got a Dataset with {list(data.data_vars)}; "
            f"pick one, e.g. ds['{next(iter(data.data_vars), 'Li6')}']"
        )
    if not isinstance(data, xr.DataArray):
        raise PfibsimsError(f"{name}: expected an xarray DataArray, got {type(data).__name__}")
    if data.dtype.kind not in "biuf":
        raise PfibsimsError(f"{name}: expected real numbers, got dtype {data.dtype}")
    return data


def index_of(da_: xr.DataArray, dim: str, at: Any, name: str) -> int:
    """Index along ``dim``: ``None`` is the middle, an int an index, a length the nearest coordinate."""
    n = da_.sizes[dim]
    if at is None:
        return n // 2
    if isinstance(at, (int, np.integer)) and not isinstance(at, bool):
        if not -n <= at < n:
            raise PfibsimsError(f"{name}: expected an index in [{-n}, {n}) along {dim}, got {at}")
        return int(at) % n
    if dim not in da_.coords:
        raise PfibsimsError(f"{name}: a length needs a '{dim}' coordinate; give an index instead")
    pos = length_nm(at, name=name)
    scale = length_nm(f"1 {da_.coords[dim].attrs.get('units', 'nm')}", name=f"{dim}.attrs['units']")
    return int(np.argmin(np.abs(np.asarray(da_.coords[dim].values, dtype=float) * scale - pos)))


def plane_of(data: xr.DataArray, dims: tuple[str, str], at: Mapping[str, Any] | None = None) -> xr.DataArray:
    """The 2-D plane ``dims`` of ``data`` (other spatial dims at ``at`` or the middle), computed."""
    at = dict(at or {})
    for d in data.dims:
        if d not in dims:
            data = data.isel({d: index_of(data, d, at.get(d), d)})
    missing = [d for d in dims if d not in data.dims]
    if missing or data.ndim != 2:
        raise PfibsimsError(f"data: expected dims including {dims}, got {tuple(data.dims)}")
    return data.transpose(*dims).compute()


def axis_extent(plane: xr.DataArray, dim: str) -> tuple[float, float] | None:
    """(first edge, last edge) of ``dim`` in um from its physical voxel centres, or None without units."""
    try:
        (lo, hi), = Grid.of(plane, dims=(dim,)).extent
    except PfibsimsError:
        return None
    return lo / 1e3, hi / 1e3


def extent_um(plane: xr.DataArray) -> list[float]:
    """imshow extent (left, right, bottom, top) in um, from the plane's physical voxel centres.

    Rows run downwards (``origin="upper"``); a plane without physical
    coordinates is placed in pixel indices.
    """
    rows, cols = (axis_extent(plane, d) for d in plane.dims)
    if rows is None or cols is None:
        nr, nc = plane.shape
        return [-0.5, nc - 0.5, nr - 0.5, -0.5]
    return [cols[0], cols[1], rows[1], rows[0]]


def centre_um(data: xr.DataArray, dim: str, i: int) -> float:
    """Centre of voxel ``i`` along ``dim`` in um (the index itself without physical coordinates)."""
    if axis_extent(data, dim) is None:
        return float(i)
    scale = length_nm(f"1 {data.coords[dim].attrs['units']}", name=f"{dim}.attrs['units']")
    return float(data.coords[dim].values[i]) * scale / 1e3


def has_units(plane: xr.DataArray) -> bool:
    return all(axis_extent(plane, d) is not None for d in plane.dims)


def unit_scale(values: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Values scaled to [0, 1] by their finite min and max (or given ``lo``, ``hi``); NaN kept."""
    v = np.asarray(values, dtype=float)
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return np.full(v.shape, np.nan)
    lo = float(finite.min()) if lo is None else lo
    hi = float(finite.max()) if hi is None else hi
    if hi <= lo:
        return np.where(np.isfinite(v), 0.0, np.nan)
    return np.clip((v - lo) / (hi - lo), 0.0, 1.0)


def nice_length(span: float) -> float:
    """A round length (1, 2 or 5 x 10^k) about a fifth of ``span``."""
    target = span / 5
    if not target > 0:
        return span
    k = np.floor(np.log10(target))
    for m in (5, 2, 1):
        if m * 10**k <= target:
            return float(m * 10**k)
    return float(10**k)


def draw_scale_bar(ax: Any, extent: Sequence[float], colour: str = "white") -> None:
    """A scale bar in um at the lower right of an image placed by its extent in um."""
    width = abs(extent[1] - extent[0])
    length = nice_length(width)
    label = f"{length:g} \N{MICRO SIGN}m"
    bar = AnchoredSizeBar(
        ax.transData, length, label, "lower right", pad=0.3, borderpad=0.3, sep=2, color=colour, frameon=True,
        size_vertical=abs(extent[2] - extent[3]) / 80, fontproperties={"size": 8},
    )
    bar.patch.set(facecolor="black", alpha=0.45, edgecolor="none")  # readable on any image
    ax.add_artist(bar)


def axis_labels(ax: Any, plane: xr.DataArray) -> None:
    physical = has_units(plane)
    ax.set_ylabel(f"{plane.dims[0]} (\N{MICRO SIGN}m)" if physical else f"{plane.dims[0]} (px)")
    ax.set_xlabel(f"{plane.dims[1]} (\N{MICRO SIGN}m)" if physical else f"{plane.dims[1]} (px)")


def draw_image(ax: Any, plane: xr.DataArray, values: np.ndarray | None = None, *, scale_bar: bool = True,
           title: str | None = None, **kwargs: Any) -> Any:
    """Show a 2-D plane at its physical extent (equal aspect in um), optional scale bar."""
    extent = extent_um(plane)
    if isinstance(kwargs.get("cmap"), str):  # NaN (outside a field) in light grey, not the colour of 0
        kwargs["cmap"] = matplotlib.colormaps[kwargs["cmap"]].with_extremes(bad="0.85")
    im = ax.imshow(plane.values if values is None else values, extent=extent, origin="upper",
                   interpolation="nearest", aspect="equal", **kwargs)
    if scale_bar and has_units(plane):
        draw_scale_bar(ax, extent)
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        axis_labels(ax, plane)
    if title:
        ax.set_title(title, fontsize=9)
    return im


def label_of(da_: xr.DataArray, fallback: str = "data") -> str:
    name = str(da_.name) if da_.name is not None else fallback
    units = da_.attrs.get("units")
    return f"{name} ({units})" if units not in (None, "", "1") else name


# -- Fig. 2: histograms --------------------------------------------------------
def channels_of(data: Any, channels: Sequence[str] | None, name: str) -> list[xr.DataArray]:
    items = data if isinstance(data, (list, tuple)) else [data]
    out: list[xr.DataArray] = []
    for i, item in enumerate(items):
        if isinstance(item, xr.Dataset):
            names = [n for n in item.data_vars if item[n].dtype.kind in "biuf" and item[n].ndim >= 2]
            out += [item[n] for n in names if channels is None or n in channels]
        else:
            out.append(channel_of(item, f"{name}[{i}]" if len(items) > 1 else name))
    if channels is not None:
        found = [str(c.name) for c in out]
        if missing := [c for c in channels if c not in found]:
            raise PfibsimsError(f"channels: {missing} not found; the data hold {found}")
    if not out:
        raise PfibsimsError(f"{name}: expected at least one channel of numbers, found none")
    return out


def edges_of(h: xr.DataArray, dim: str) -> np.ndarray:
    """Bin edges along ``dim`` of a histogram (``<dim>_lower``/``_upper`` coords, or centres)."""
    lo, hi = f"{dim}_lower", f"{dim}_upper"
    if lo in h.coords and hi in h.coords:
        return np.r_[np.asarray(h.coords[lo].values, float), float(h.coords[hi].values[-1])]
    c = np.asarray(h.coords[dim].values, dtype=float) if dim in h.coords else np.arange(h.sizes[dim], dtype=float)
    step = c[1] - c[0] if c.size > 1 else 1.0
    return np.r_[c - step / 2, c[-1] + step / 2]


# -- orthogonal slices with phase outlines -------------------------------------
def phase_names(labels: xr.DataArray) -> dict[int, str]:
    values = labels.attrs.get("flag_values")
    meanings = labels.attrs.get("flag_meanings")
    if values is None or meanings is None:
        return {}
    if isinstance(meanings, str):
        meanings = meanings.split()
    return {int(v): str(m) for v, m in zip(np.atleast_1d(values), meanings, strict=False)}


def draw_outline(ax: Any, lab: xr.DataArray, phases: Sequence[int]) -> None:
    extent = extent_um(lab)
    vals = np.asarray(lab.values)
    ny, nx = vals.shape
    # pixel centres in um, to match the image placed at ``extent``
    xs = np.linspace(extent[0], extent[1], 2 * nx + 1)[1::2]
    ys = np.linspace(extent[3], extent[2], 2 * ny + 1)[1::2]
    for i, ph in enumerate(phases):
        mask = (vals == ph).astype(float)
        if 0 < mask.sum() < mask.size and min(ny, nx) > 1:
            ax.contour(xs, ys, mask, levels=[0.5], colors=[PHASE_COLOURS[i % len(PHASE_COLOURS)]], linewidths=0.8)
