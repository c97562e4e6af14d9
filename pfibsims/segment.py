"""Phases, particles, and a channel versus distance from particle surfaces.

* :func:`classify_phases`: a uint8 label volume from element channels (the
  cathode default: Zr_La -> LLZTO, Co_La -> LCO, Al_Ka -> Al2O3, C_Ka -> SP,
  the rest matrix), with CF ``flag_values`` / ``flag_meanings``;
* :func:`phase_statistics`: per-phase voxel count, volume, fraction and the
  distribution of a channel;
* :func:`particles`: 3-D connected components of one phase (volume,
  equivalent diameter, centroid, touching-the-border flag);
* :func:`boundary_profile`: mean (spread, count) of a channel versus the signed
  distance from a phase boundary (negative inside the phase), from an
  anisotropic physical-units distance transform;
* :func:`depletion_depth`: the depth of a surface depletion read from such a
  profile.

Label volumes follow the CF conventions for flags: ``flag_values`` (the label
integers) and ``flag_meanings`` (space-separated names), so any phase can be
named (``"LLZTO"``) or given by its integer.
"""

from __future__ import annotations

import json
import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import dask
import dask.array as darr
import numpy as np
import xarray as xr
from scipy import ndimage as ndi
from scipy.optimize import curve_fit

from . import _smooth as _smooth_mod
from ._distance import signed_distance
from ._grouped import grouped_statistics
from ._threshold import METHODS, threshold
from .dataset import record
from .errors import DataModelError, EstimationWarning, GridError, PfibsimsError
from .grid import SPATIAL_DIMS, Grid
from .units import LENGTH_UNIT, length_nm, lengths_nm

__all__ = [
    "CATHODE_PHASES",
    "boundary_profile",
    "classify_phases",
    "depletion_depth",
    "particles",
    "phase_statistics",
]

#: The cathode default: which channel defines which phase (label = position + 1).
CATHODE_PHASES = {"Zr_La": "LLZTO", "Co_La": "LCO", "Al_Ka": "Al2O3", "C_Ka": "SP"}

#: The name of label 0: every voxel no channel claims.
MATRIX = "matrix"

#: Attribute recording which channel defined which phase (JSON ``{phase: channel}``).
PHASE_CHANNELS = "pfibsims:phase_channels"

# At most this many voxels are read to estimate the thresholds.
_SAMPLE = 1 << 21

_QUANTILES = (0.25, 0.5, 0.75)


# -- small shared helpers ------------------------------------------------------
def _spatial(obj: Any, name: str) -> tuple[str, ...]:
    if not isinstance(obj, (xr.DataArray, xr.Dataset)):
        raise DataModelError(f"{name}: expected an xarray DataArray or Dataset, got {type(obj).__name__}")
    dims = tuple(d for d in obj.dims if d in SPATIAL_DIMS)
    if not dims or len(dims) != len(obj.dims) or list(dims) != sorted(dims, key=SPATIAL_DIMS.index):
        raise DataModelError(f"{name}: expected dims from (z, y, x) in that order, found {tuple(obj.dims)}")
    return dims


def _spacing(obj: Any, name: str) -> tuple[float, ...]:
    """Spacing per spatial axis in nm; NaN for a one-voxel axis that does not state its spacing."""
    dims = _spatial(obj, name)
    out = []
    for d in dims:
        if obj.sizes[d] == 1 and d in obj.coords and "spacing" not in obj.coords[d].attrs:
            out.append(math.nan)  # a single map: no thickness, so volumes are NaN; distances are in-plane
            continue
        try:
            out.append(Grid.of(obj, (d,)).spacing[0])
        except PfibsimsError as exc:
            raise GridError(f"{name}: {exc}") from None
    return tuple(out)


def _flags(labels: Any) -> tuple[list[int], list[str]]:
    """The (values, names) of a label volume's CF flags."""
    _spatial(labels, "labels")
    if not isinstance(labels, xr.DataArray) or labels.dtype.kind not in "iu":
        raise DataModelError(f"labels: expected an integer label DataArray (from classify_phases), got {getattr(labels, 'dtype', type(labels).__name__)}")
    values, meanings = labels.attrs.get("flag_values"), labels.attrs.get("flag_meanings")
    if values is None or meanings is None:
        raise DataModelError(
            "labels: expected CF attrs 'flag_values' and 'flag_meanings' naming the phases, found "
            f"{sorted(labels.attrs)}; set e.g. labels.attrs.update(flag_values=[0, 1], flag_meanings='matrix LLZTO')"
        )
    values = [int(v) for v in np.atleast_1d(values)]
    names = str(meanings).split()
    if len(values) != len(names):
        raise DataModelError(f"labels: expected as many flag_meanings as flag_values, got {names} for {values}")
    return values, names


def _phase_value(labels: Any, phase: Any) -> tuple[int, str]:
    values, names = _flags(labels)
    if isinstance(phase, str) and phase in names:
        return values[names.index(phase)], phase
    if isinstance(phase, numbers.Integral) and not isinstance(phase, bool) and int(phase) in values:
        return int(phase), names[values.index(int(phase))]
    raise DataModelError(f"phase: expected one of {names} or its label {values}, got {phase!r}")


def _check_same_grid(a: xr.DataArray, labels: xr.DataArray) -> None:
    if a.sizes != labels.sizes:
        raise GridError(f"labels: expected the grid of the data, sizes {dict(a.sizes)}, got sizes {dict(labels.sizes)}")
    for d in a.dims:
        if d in a.coords and d in labels.coords and not np.allclose(a[d].values, labels[d].values, rtol=0, atol=1e-3):
            raise GridError(f"labels: expected the coordinates of the data along '{d}', got different ones; resample first")


def _as_array(x: Any) -> Any:
    return x if isinstance(x, darr.Array) else np.asarray(x)


# -- classification --------------------------------------------------------------
def _gaussian_block(block: np.ndarray, *, sigma: tuple[float, ...]) -> np.ndarray:
    return ndi.gaussian_filter(np.asarray(block, dtype=np.float32), sigma, mode="nearest", truncate=4.0)


def _smooth(arr: Any, sigma: tuple[float, ...]) -> Any:
    """An eager channel smoothed in float32 (no smoothing: a float32 copy)."""
    return _gaussian_block(arr, sigma=sigma) if any(sigma) else np.asarray(arr, dtype=np.float32)


def _resolve_channels(ds: xr.Dataset, channels: Any, phases: Any) -> dict[str, str]:
    """``{channel: phase}`` in label order."""
    if phases is not None and not isinstance(phases, Mapping):
        raise PfibsimsError(f"phases: expected a mapping of channel to phase name such as {{'Zr_La': 'LLZTO'}}, got {phases!r}")
    table = dict(CATHODE_PHASES if phases is None else phases)
    if channels is None:
        channels = [c for c in table if c in ds.data_vars] if phases is None else list(table)
    elif isinstance(channels, str):
        channels = [channels]
    channels = list(channels)
    if not channels:
        raise DataModelError(
            f"ds: expected at least one of the channels {list(table)}, found {list(ds.data_vars)}; "
            "name them with channels= and phases="
        )
    missing = [c for c in channels if c not in ds.data_vars]
    if missing:
        raise DataModelError(f"channels: {missing} not found; the dataset has {list(ds.data_vars)}")
    out = {c: str(table.get(c, c.split("_")[0])) for c in channels}
    names = list(out.values())
    bad = [n for n in names if not n or " " in n or n == MATRIX]
    if bad or len(set(names)) != len(names):
        raise PfibsimsError(f"phases: expected distinct names without spaces, other than '{MATRIX}', got {names}")
    if len(names) > 254:
        raise PfibsimsError(f"channels: expected at most 254 phases for a uint8 label, got {len(names)}")
    return out


def _expand(arr: Any, dims: tuple[str, ...]) -> Any:
    """A channel as (z, y, x): size-1 axes for the spatial dims it lacks."""
    return arr[tuple(slice(None) if d in dims else None for d in SPATIAL_DIMS)]


def _sample(channels: list[Any], sigma: tuple[float, ...], budget: int) -> tuple[list[np.ndarray], int]:
    """The smoothed voxels of a few tiles spread over the (z, y, x) channels (the same voxels of each).

    Only the tiles, each with its halo of the kernel radius, are read and
    smoothed (:func:`pfibsims._smooth.sample_tiles`); ``nearest`` at the faces.
    Returns the samples (float64) and the number of tiles.
    """
    shape = channels[0].shape
    r = [_smooth_mod.radius(s) for s in sigma]
    tiles = _smooth_mod.sample_tiles(shape, budget)
    windows = [
        tuple(slice(max(t.start - k, 0), min(t.stop + k, n)) for t, k, n in zip(tile, r, shape, strict=True)) for tile in tiles
    ]
    parts = [[c[w] for w in windows] for c in channels]
    lazy = [p for ps in parts for p in ps if isinstance(p, darr.Array)]
    done = iter(dask.compute(*lazy)) if lazy else iter(())
    out = []
    for ps in parts:
        values = []
        for tile, w, p in zip(tiles, windows, ps, strict=True):
            block = np.asarray(next(done) if isinstance(p, darr.Array) else p, dtype=np.float32)
            pads = [(a.start - (t.start - k), (t.stop + k) - a.stop) for a, t, k in zip(w, tile, r, strict=True)]
            block = _smooth(np.pad(block, pads, mode="edge") if any(map(any, pads)) else block, sigma)
            core = tuple(slice(k, k + t.stop - t.start) for t, k in zip(tile, r, strict=True))
            values.append(block[core].astype(np.float64).ravel())
        out.append(np.concatenate(values))
    return out, len(tiles)


def classify_phases(
    ds: xr.Dataset,
    *,
    channels: Sequence[str] | None = None,
    method: str = "rules",
    phases: Mapping[str, str] | None = None,
    smooth: Any = "50 nm",
    yielding: Sequence[str] | None = None,
    sample: int = _SAMPLE,
) -> xr.DataArray:
    """A phase label volume from element channels, with automatic thresholds.

    Each channel is denoised with a Gaussian of standard deviation ``smooth``
    (a physical length, so ``smooth / spacing`` voxels per axis: anisotropic
    voxels are honoured; the values of ``scipy.ndimage.gaussian_filter``
    with ``mode="nearest"``, ``truncate=4.0`` on float32, to the bit),
    normalised by its 99.5th percentile, and split in two by an
    automatic threshold. A voxel takes the phase of the channel whose
    normalised excess over its threshold, ``(value - threshold) /
    (mean above - mean below)``, is largest, if any is positive; otherwise
    label 0, ``"matrix"``. A *yielding* phase (default: the thin Al2O3
    coating of the cathode) takes only voxels that no other channel claims:
    the blurred signal of a layer thinner than the probe spills into its
    neighbours, and would otherwise eat their edges. Non-finite voxels are
    matrix.

    Estimates: the percentiles, thresholds and class means are computed on a
    sample: the smoothed voxels of a few tiles (one slice by 256 x 256 px,
    spread evenly over the volume, at most ``sample`` voxels in all; the
    whole volume when it is smaller), of which only the tiles and their
    halos are read and smoothed, in one ``dask.compute``. The tiles depend
    on the shape alone, so eager and lazy data give the same thresholds.

    Lazy labels stream with bounded memory whatever the chunking of ``ds``:
    one task smooths, scores and labels a slab of whole input z chunks
    (about 16 M voxels a channel) of one in-plane chunk, reading its chunks
    and z halo itself, and its in-plane halo from the few outer rows and
    columns of the neighbour chunks (read once more for that); see
    :mod:`pfibsims._smooth`. The labels keep the in-plane chunks of ``ds``
    (so they can be written to a Zarr store with them as they are) and come
    in such slabs along z. Each computation of the labels reads the
    channels again: persist or store them when several steps use them.

    Parameters
    ----------
    ds : xarray.Dataset
        Channels with dims ``(z, y, x)`` (or a subset), e.g. EDS counts.
    channels : sequence of str, optional
        The channels that define phases, in label order (label 1, 2, ...).
        By default the channels of ``phases`` that ``ds`` holds.
    method : {"rules", "gmm", "kmeans"}
        The threshold per channel: Otsu ("rules"), the crossing of a
        two-Gaussian mixture fitted by EM ("gmm"), or 1-D two-means / ISODATA
        ("kmeans"). A mixture of two Gaussians suits lightly smoothed counts
        (``smooth`` up to about half a pixel): strong smoothing makes the
        background peak narrow and partial-volume voxels a broad second
        component, which pulls the crossing down towards the background.
    phases : mapping of str to str, optional
        Channel to phase name; default :data:`CATHODE_PHASES` (Zr_La ->
        LLZTO, Co_La -> LCO, Al_Ka -> Al2O3, C_Ka -> SP). A channel not in it
        is named after its element.
    smooth : length or None
        Gaussian standard deviation, e.g. ``"50 nm"``; ``None`` or 0: none.
    yielding : sequence of str, optional
        Phases that yield to any other claiming channel. Default ``("Al2O3",)``
        when ``phases`` is the cathode default, otherwise none.
    sample : int
        Most voxels read to estimate the thresholds.

    Returns
    -------
    xarray.DataArray
        ``uint8`` labels named ``phase`` on the grid of ``ds``, lazy if the
        channels are; attrs ``flag_values``, ``flag_meanings`` (``"matrix
        LLZTO LCO Al2O3 SP"``), ``pfibsims:phase_channels`` (JSON ``{phase:
        channel}``) and ``history`` whose last record holds the thresholds
        (normalised and in the channel's units).

    Raises
    ------
    DataModelError
        When ``ds`` is not a dataset or holds none of the channels.
    PfibsimsError
        On an unknown ``method`` or unusable phase names.
    UnitsError
        When ``smooth`` is not a length.

    Examples
    --------
    >>> import numpy as np
    >>> from pfibsims.dataset import stack
    >>> zr = np.zeros((2, 8, 8)); zr[:, :, :4] = 50
    >>> co = np.zeros((2, 8, 8)); co[:, :4, 4:] = 50
    >>> ph = classify_phases(stack({"Zr_La": zr, "Co_La": co}, pixel_size="81.4 nm",
    ...                            slice_thickness="60 nm"), smooth=None)
    >>> ph.attrs["flag_meanings"], ph.values[0, :, 3:5].tolist()
    ('matrix LLZTO LCO', [[1, 2], [1, 2], [1, 2], [1, 2], [1, 0], [1, 0], [1, 0], [1, 0]])
    """
    if not isinstance(ds, xr.Dataset):
        raise DataModelError(f"ds: expected an xarray Dataset of channels, got {type(ds).__name__}")
    if method not in METHODS:
        raise PfibsimsError(f"method: expected one of {METHODS}, got {method!r}")
    table = _resolve_channels(ds, channels, phases)
    names = list(table)
    first = ds[names[0]]
    dims = _spatial(first, f"ds['{names[0]}']")
    spacing = _spacing(first, f"ds['{names[0]}']")
    sigma_nm = 0.0 if smooth is None or smooth == 0 else length_nm(smooth, name="smooth")
    per_dim = dict(zip(dims, (sigma_nm / s if n > 1 else 0.0 for s, n in zip(spacing, first.shape, strict=False)), strict=True))
    sigma = tuple(per_dim.get(d, 0.0) for d in SPATIAL_DIMS)  # as (z, y, x)
    arrays = [_expand(_as_array(ds[c].transpose(*dims).data), dims) for c in names]
    lazy = next((a for a in arrays if isinstance(a, darr.Array)), None)
    if lazy is not None:  # one chunking for all, so blocks of every channel line up
        arrays = [darr.asarray(a).rechunk(lazy.chunks) for a in arrays]
    samples, n_tiles = _sample(arrays, sigma, int(sample))
    scale, cut, spread, record_t = [], [], [], {}
    for c, x in zip(names, samples, strict=False):
        x = x[np.isfinite(x)]
        s = float(np.percentile(x, 99.5)) if x.size else 0.0
        if not s > 0 or x.size < 2 or np.ptp(x) == 0:
            warnings.warn(
                f"classify_phases: channel {c!r} is constant or empty in the sample; phase {table[c]!r} gets no voxel",
                EstimationWarning,
                stacklevel=2,
            )
            scale.append(1.0), cut.append(np.inf), spread.append(1.0)
            record_t[c] = {"phase": table[c], "threshold": None}
            continue
        xn = x / s
        t = threshold(xn, method)
        lo, hi = xn[xn <= t], xn[xn > t]
        w = float(hi.mean() - lo.mean()) if lo.size and hi.size else 1.0
        scale.append(s), cut.append(t), spread.append(max(w, 1e-12))
        record_t[c] = {
            "phase": table[c],
            "scale": s,
            "threshold_normalised": t,
            "threshold": t * s,
            "fraction_above": float(hi.size / xn.size),
        }
    if yielding is None:
        yielding = ("Al2O3",) if phases is None else ()
    yielding = [yielding] if isinstance(yielding, str) else list(yielding)
    unknown = [p for p in yielding if p not in table.values()]
    if unknown and not (phases is None and unknown == ["Al2O3"]):
        raise PfibsimsError(f"yielding: expected phases among {list(table.values())}, got {unknown}")
    yields = np.array([table[c] in yielding for c in names])
    kw = {"scale": np.array(scale), "cut": np.array(cut), "spread": np.array(spread), "yields": yields}
    weights = tuple(_smooth_mod.gaussian_half(s) for s in sigma)
    if lazy is not None:  # slabs that smooth, score and label in one task; see pfibsims._smooth
        r = tuple(w.size - 1 for w in weights)
        data = _smooth_mod.label_array(_smooth_mod.prepare(arrays, r), weights=weights, params=kw)
    else:
        r = [(w.size - 1,) * 2 for w in weights]
        win = np.stack([np.pad(np.asarray(a), r, mode="edge") for a in arrays])
        data = _smooth_mod.label_window(win, depth=arrays[0].shape[0], weights=weights, **kw)
    data = data[tuple(slice(None) if d in dims else 0 for d in SPATIAL_DIMS)]
    coords = {k: v for k, v in first.coords.items() if set(v.dims) <= set(dims)}
    out = xr.DataArray(data, dims=dims, coords=coords, name="phase")
    phase_names = [MATRIX, *table.values()]
    out.attrs = {
        "units": "1",
        "long_name": "phase",
        "flag_values": list(range(len(phase_names))),
        "flag_meanings": " ".join(phase_names),
        PHASE_CHANNELS: json.dumps({p: c for c, p in table.items()}),
        "history": list(ds.attrs.get("history", [])),
    }
    return record(
        out,
        "classify_phases",
        method=method,
        smooth=f"{sigma_nm:.6g} {LENGTH_UNIT}",
        yielding=[table[c] for c in names if table[c] in yielding],
        sample_tiles=n_tiles,
        sample_voxels=int(samples[0].size),
        thresholds=record_t,
    )


# -- statistics --------------------------------------------------------------------
def _groups(labels: xr.DataArray, values: list[int]) -> tuple[Any, np.ndarray]:
    """The labels as they are (numpy or dask, own dtype) and the label -> phase index table.

    The block kernels of :func:`grouped_statistics` apply the table voxel by
    voxel, so no int64 group array is made (labels outside the table: -1).
    """
    lut = np.full(max(values) + 1, -1, dtype=np.int64)
    lut[values] = np.arange(len(values))
    return _as_array(labels.data), lut


def _stats_vars(stats: dict[str, np.ndarray], dim: str, units: Any) -> dict[str, tuple]:
    q = stats["quantiles"]
    u = {} if units is None else {"units": units}
    return {
        "count": (dim, stats["count"], {"units": "1", "long_name": "voxels with a finite value"}),
        "mean": (dim, stats["mean"], u),
        "std": (dim, stats["std"], {**u, "long_name": "population standard deviation"}),
        "min": (dim, stats["min"], u),
        "q25": (dim, q[:, 0], {**u, "long_name": "first quartile"}),
        "median": (dim, q[:, 1], u),
        "q75": (dim, q[:, 2], {**u, "long_name": "third quartile"}),
        "max": (dim, stats["max"], u),
    }


def phase_statistics(da: xr.DataArray, labels: xr.DataArray, *, bins: int = 4096) -> xr.Dataset:
    """Per phase: voxel count, volume, fraction, and the distribution of a channel.

    Computes: two streaming passes over the channel and the labels (chunk by
    chunk, one ``dask.compute`` each; memory bounded by a chunk): moments,
    minimum and maximum per phase, then a per-phase histogram of ``bins``
    bins between that phase's minimum and maximum. Median and quartiles are
    interpolated in that histogram, so they are exact to ``(max - min) /
    bins`` of the phase; mean and std are exact.

    Parameters
    ----------
    da : xarray.DataArray
        The channel (e.g. ``vol.Li6``); non-finite voxels (outside a SIMS
        field) are left out of every statistic.
    labels : xarray.DataArray
        Integer labels on the same grid with CF ``flag_values`` /
        ``flag_meanings`` (from :func:`classify_phases`).
    bins : int
        Histogram bins per phase for the quantiles.

    Returns
    -------
    xarray.Dataset
        Along ``phase`` (the names; coordinate ``label`` the integers):
        ``count`` (voxels with a finite value), ``volume`` (um^3),
        ``fraction`` (of the counted voxels), ``mean``, ``std`` (population),
        ``min``, ``q25``, ``median``, ``q75``, ``max`` in the channel's units;
        NaN for a phase with no voxel.

    Raises
    ------
    DataModelError
        When ``labels`` lacks the flag attrs or the dims are not spatial.
    GridError
        When ``labels`` is not on the grid of the data.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from pfibsims.dataset import stack
    >>> ds = stack({"Li6": np.arange(8.0).reshape(1, 2, 4)}, pixel_size="100 nm")
    >>> lab = xr.zeros_like(ds.Li6, dtype=np.uint8).where(ds.x < 200, 1).astype(np.uint8)
    >>> lab.attrs.update(flag_values=[0, 1], flag_meanings="matrix LLZTO")
    >>> st = phase_statistics(ds.Li6, lab)
    >>> st["mean"].values.tolist(), st["count"].values.tolist()
    ([2.5, 4.5], [4, 4])
    """
    _spatial(da, "da")
    values, names = _flags(labels)
    _check_same_grid(da, labels)
    spacing = _spacing(da, "da")
    groups, lut = _groups(labels, values)
    stats = grouped_statistics(_as_array(da.data), groups, len(values), bins=int(bins), quantiles=_QUANTILES, lut=lut)
    total = stats["count"].sum()
    voxel_um3 = math.prod(spacing) * 1e-9
    data_vars = _stats_vars(stats, "phase", da.attrs.get("units"))
    data_vars["volume"] = ("phase", stats["count"] * voxel_um3, {"units": "um**3"})
    data_vars["fraction"] = ("phase", stats["count"] / max(total, 1), {"units": "1"})
    out = xr.Dataset(
        data_vars,
        coords={"phase": ("phase", names), "label": ("phase", np.array(values))},
        attrs={"history": list(da.attrs.get("history", [])), "channel": str(da.name)},
    )
    out = out[["count", "volume", "fraction", "mean", "std", "min", "q25", "median", "q75", "max"]]
    return record(out, "phase_statistics", bins=int(bins), quantiles="interpolated in per-phase histograms")


def _centres(obj: xr.DataArray, d: str) -> np.ndarray:
    """Voxel centres along ``d`` in nm."""
    c = obj.coords[d]
    return np.asarray(c.values, dtype=np.float64) * length_nm(f"1 {c.attrs.get('units', LENGTH_UNIT)}", name=f"{d}.attrs['units']")


# -- particles -----------------------------------------------------------------------
def particles(labels: xr.DataArray, phase: Any, *, connectivity: int = 1) -> xr.Dataset:
    """3-D connected components of one phase, with their size and position.

    Computes: the phase mask of the whole label volume is loaded (1 byte a
    voxel) and labelled in memory with :func:`scipy.ndimage.label`; pass a
    sub-volume (``labels.isel(...)``) when the volume does not fit.

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
        Along ``particle`` (1, 2, ...): ``voxels``; ``volume`` (um^3);
        ``equivalent_diameter`` (um, of the sphere of that volume,
        ``(6 V / pi)**(1/3)``); ``centroid`` (particle, axis) in nm, physical
        voxel-centre coordinates; ``touches_border`` (True when the particle
        reaches a face of the volume, so it may be cut; the faces of an axis
        of one voxel, a single map, do not count); and ``labels``, the
        component image (uint32, 0 outside the phase).

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
    value, name = _phase_value(labels, phase)
    dims = _spatial(labels, "labels")
    spacing = _spacing(labels, "labels")
    if connectivity not in (1, 2, 3):
        raise PfibsimsError(f"connectivity: expected 1 (faces), 2 (edges) or 3 (corners), got {connectivity!r}")
    mask = labels.data == value
    mask = np.asarray(mask.compute() if isinstance(mask, darr.Array) else mask)
    structure = ndi.generate_binary_structure(mask.ndim, min(connectivity, mask.ndim))
    comp, n = ndi.label(mask, structure=structure)
    comp = comp.astype(np.uint32)
    index = np.arange(1, n + 1)
    voxels = np.bincount(comp.ravel(), minlength=n + 1)[1:]
    centre_idx = np.array(ndi.center_of_mass(mask, comp, index)).reshape(n, mask.ndim)
    centroid = np.stack(
        [np.interp(centre_idx[:, ax], np.arange(mask.shape[ax]), _centres(labels, d)) for ax, d in enumerate(dims)],
        axis=-1,
    ).reshape(n, mask.ndim)
    border = np.zeros(n + 1, dtype=bool)
    for ax in range(mask.ndim):
        if mask.shape[ax] == 1:  # a single slice: its faces are not a border in that axis
            continue
        for end in (0, -1):
            border[np.unique(np.take(comp, end, axis=ax))] = True
    volume = voxels * math.prod(spacing) * 1e-9
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
        attrs={"phase": name, "history": list(labels.attrs.get("history", []))},
    )
    return record(out, "particles", phase=name, connectivity=connectivity)


# -- profiles versus distance from a boundary -------------------------------------------
def _bin_block(dist: np.ndarray, *, lo: float, width: float, n: int) -> np.ndarray:
    k = np.floor((np.asarray(dist) - lo) / width)
    ok = np.isfinite(k) & (k >= 0) & (k < n)
    return np.where(ok, k, -1).astype(np.int64)


def _bins(bins: Any, lo: float, hi: float) -> tuple[float, int]:
    if isinstance(bins, numbers.Integral) and not isinstance(bins, bool):
        if bins < 1:
            raise PfibsimsError(f"bins: expected a positive number of bins or a bin width such as '20 nm', got {bins}")
        return (hi - lo) / int(bins), int(bins)
    width = length_nm(bins, name="bins")
    if not width > 0:
        raise PfibsimsError(f"bins: expected a positive bin width, got {bins!r}")
    return width, max(1, round((hi - lo) / width))


def boundary_profile(
    da: xr.DataArray,
    labels: xr.DataArray,
    phase: Any,
    *,
    distances: Sequence[Any] = ("-0.5 um", "1 um"),
    bins: Any = "20 nm",
    mask: xr.DataArray | None = None,
    hist_bins: int = 1024,
) -> xr.Dataset:
    """A channel's mean, spread and count versus signed distance from a phase boundary.

    The signed distance of a voxel is the Euclidean distance, in nm, from its
    centre to the nearest centre of a voxel face shared by the phase and
    another phase (so a voxel next to a flat boundary is half a spacing from
    it), negative inside the phase. It comes from
    :func:`scipy.ndimage.distance_transform_edt` with ``sampling=`` the
    physical voxel size (anisotropic voxels, e.g. 60 x 81.4 x 81.4 nm, are
    honoured) on a grid refined twice per axis. On dask arrays it is computed
    chunk by chunk with :func:`dask.array.map_overlap`, each chunk extended
    by at least the largest ``|distance|`` plus a bin (so distances in range
    are exact); the volume border is not a boundary (the phase is not assumed
    to continue or stop beyond it), so voxels near the border may lie
    farther from the true surface than measured.

    Computes: two streaming passes (per-bin moments, then per-bin histograms
    for median and quartiles; see :func:`phase_statistics`).

    Parameters
    ----------
    da : xarray.DataArray
        The channel (e.g. Li); non-finite voxels are left out.
    labels : xarray.DataArray
        Phase labels with CF flags, on the grid of ``da``.
    phase : str or int
        The phase whose boundary is measured from, e.g. ``"LLZTO"``.
    distances : (length, length)
        The range of signed distance, e.g. ``("-0.5 um", "1 um")``: negative
        inside the phase.
    bins : length or int
        Bin width (``"20 nm"``) or number of bins over ``distances``.
    mask : xarray.DataArray of bool, optional
        Only voxels where True count (e.g. the SIMS coverage); the distance
        is still measured in the whole volume.
    hist_bins : int
        Histogram bins per distance bin for median and quartiles.

    Returns
    -------
    xarray.Dataset
        Along ``distance`` (bin centres, nm): ``mean``, ``std``, ``sem``
        (std / sqrt(count)), ``count``, ``min``, ``q25``, ``median``, ``q75``,
        ``max``; coordinates ``distance_lower`` and ``distance_upper`` (bin
        edges, nm); attrs ``phase`` and ``sign`` ("negative inside the phase").

    Raises
    ------
    DataModelError
        On an unknown phase, or labels without flags.
    GridError
        When ``labels`` or ``mask`` is not on the grid of the data.
    UnitsError
        When ``distances`` or ``bins`` are not lengths.
    PfibsimsError
        When the distance range is empty.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from pfibsims.dataset import stack
    >>> x = np.arange(10) * 100.0 + 50          # nm; the phase fills x < 500
    >>> ds = stack({"Li6": np.tile(x, (1, 3, 1))}, pixel_size="100 nm")
    >>> lab = (ds.Li6 < 500).astype(np.uint8)
    >>> lab.attrs.update(flag_values=[0, 1], flag_meanings="matrix LLZTO")
    >>> p = boundary_profile(ds.Li6, lab, "LLZTO", distances=("-200 nm", "200 nm"), bins="100 nm")
    >>> p.distance.values.tolist(), p["mean"].values.tolist()
    ([-150.0, -50.0, 50.0, 150.0], [350.0, 450.0, 550.0, 650.0])
    """
    dims = _spatial(da, "da")
    value, name = _phase_value(labels, phase)
    _check_same_grid(da, labels)
    spacing = _spacing(da, "da")
    lo, hi = lengths_nm(distances, 2, name="distances")
    if not hi > lo:
        raise PfibsimsError(f"distances: expected (lower, upper) with lower < upper, got {distances!r}")
    width, n = _bins(bins, lo, hi)
    hi = lo + n * width
    phase_mask = _as_array(labels.transpose(*dims).data) == value
    dist = signed_distance(phase_mask, sampling=spacing, reach=max(abs(lo), abs(hi)) + width)
    if isinstance(dist, darr.Array):
        groups = darr.map_blocks(_bin_block, dist, dtype=np.int64, lo=lo, width=width, n=n)
    else:
        groups = _bin_block(dist, lo=lo, width=width, n=n)
    values = _as_array(da.transpose(*dims).data)
    if mask is not None:
        _check_same_grid(da, mask)
        m = _as_array(mask.transpose(*dims).data)
        groups = darr.where(m, groups, -1) if isinstance(groups, darr.Array) or isinstance(m, darr.Array) else np.where(m, groups, -1)
    stats = grouped_statistics(values, groups, n, bins=int(hist_bins), quantiles=_QUANTILES)
    edges = lo + width * np.arange(n + 1)
    data_vars = _stats_vars(stats, "distance", da.attrs.get("units"))
    data_vars["sem"] = ("distance", stats["std"] / np.sqrt(np.maximum(stats["count"], 1)), data_vars["mean"][2])
    out = xr.Dataset(
        data_vars,
        coords={
            "distance": ("distance", (edges[:-1] + edges[1:]) / 2, {"units": LENGTH_UNIT}),
            "distance_lower": ("distance", edges[:-1], {"units": LENGTH_UNIT}),
            "distance_upper": ("distance", edges[1:], {"units": LENGTH_UNIT}),
        },
        attrs={
            "phase": name,
            "channel": str(da.name),
            "sign": "negative inside the phase",
            "history": list(da.attrs.get("history", [])),
        },
    )
    out = out[["mean", "std", "sem", "count", "min", "q25", "median", "q75", "max"]]
    return record(
        out,
        "boundary_profile",
        phase=name,
        distances=[f"{lo:.6g} nm", f"{hi:.6g} nm"],
        bin_width=f"{width:.6g} nm",
        spacing=[f"{s:.6g} nm" for s in spacing],
    )


# -- depletion depth ----------------------------------------------------------------------
def _ramp_mean(a: np.ndarray, b: np.ndarray, depth: float) -> np.ndarray:
    """Mean of ``min(d / depth, 1)`` over each depth interval ``[a, b]`` (nm)."""
    a, b, depth = np.maximum(a, 0.0), np.maximum(b, 1e-9), max(abs(depth), 1e-9)
    lo, hi = np.minimum(a, depth), np.minimum(b, depth)
    integral = (hi**2 - lo**2) / (2 * depth) + (b - np.maximum(a, depth)).clip(0)
    return integral / np.maximum(b - a, 1e-9)


def _exp_mean(a: np.ndarray, b: np.ndarray, depth: float) -> np.ndarray:
    """Mean of ``1 - exp(-d / depth)`` over each depth interval ``[a, b]`` (nm)."""
    a, b, depth = np.maximum(a, 0.0), np.maximum(b, 1e-9), max(abs(depth), 1e-9)
    return 1 - depth * (np.exp(-a / depth) - np.exp(-b / depth)) / np.maximum(b - a, 1e-9)


_MODELS = {"ramp": _ramp_mean, "exponential": _exp_mean}


def depletion_depth(profile: xr.Dataset, *, model: str = "ramp", exclude: Any = "0 nm") -> xr.Dataset:
    """The depth of a surface depletion (or enrichment) fitted to a :func:`boundary_profile`.

    Only the bins inside the phase (``distance < 0``) are used; depth is
    ``d = -distance`` (nm). The value is modelled as rising from the surface
    value ``S`` to the bulk value ``B``:

    * ``"ramp"`` (default): linearly, reaching ``B`` at the depletion depth
      ``delta`` and constant beyond, ``S + (B - S) * min(d / delta, 1)``.
      This is how :func:`pfibsims.synthetic.cathode` sets its
      ``depletion_depth`` (the thickness of the depleted layer of LLZTO);
    * ``"exponential"``: ``B - (B - S) * exp(-d / delta)``; ``delta`` is the
      e-folding length (the value has recovered 63 % of the way at ``delta``).

    ``S``, ``B`` and ``delta`` are fitted by weighted least squares (weights
    ``count``), comparing each bin's ``mean`` with the model averaged over
    the bin's depth interval.

    Parameters
    ----------
    profile : xarray.Dataset
        From :func:`boundary_profile` (``mean``, ``count`` along ``distance``,
        bin edges ``distance_lower`` / ``distance_upper``).
    model : {"ramp", "exponential"}
    exclude : length
        Bins shallower than this are left out of the fit (``S`` is then the
        model extrapolated to the surface). Set it to about twice the blur of
        the channel (probe, interaction volume, resampling), which mixes the
        neighbouring phase into the first bins, e.g. ``"150 nm"`` for SIMS.

    Returns
    -------
    xarray.Dataset
        Scalars ``depth`` (nm), ``surface`` and ``bulk`` (channel units);
        attrs ``model``.

    Raises
    ------
    PfibsimsError
        On an unknown model, a profile with fewer than 4 populated bins
        inside the phase, or a fit that fails.
    DataModelError
        When ``profile`` is not a boundary profile.

    Warns
    -----
    EstimationWarning
        When the fitted depth reaches the profile's depth range, so it is a
        bound rather than an estimate.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> d = -np.arange(5.0, 1000.0, 10.0)
    >>> prof = xr.Dataset({"mean": ("distance", 0.15 + 0.4 * np.minimum(-d / 300.0, 1)),
    ...                    "count": ("distance", np.full(d.size, 100))},
    ...                   coords={"distance": d, "distance_lower": ("distance", d - 5),
    ...                           "distance_upper": ("distance", d + 5)})
    >>> round(float(depletion_depth(prof).depth))
    300
    """
    if model not in _MODELS:
        raise PfibsimsError(f"model: expected one of {tuple(_MODELS)}, got {model!r}")
    if not isinstance(profile, xr.Dataset) or "mean" not in profile or "count" not in profile or "distance" not in profile.coords:
        raise DataModelError("profile: expected the Dataset boundary_profile returns (mean, count along distance)")
    skip = length_nm(exclude, name="exclude")
    inside = (profile.distance < -skip) & (profile["count"] > 0) & np.isfinite(profile["mean"])
    p = profile.where(inside, drop=True).sortby("distance", ascending=False)
    if p.sizes["distance"] < 4:
        raise PfibsimsError(f"profile: expected at least 4 populated bins inside the phase, found {p.sizes['distance']}")
    d = -p.distance.values
    lower = -p["distance_upper"].values if "distance_upper" in p.coords else d
    upper = -p["distance_lower"].values if "distance_lower" in p.coords else d
    y, w = p["mean"].values.astype(float), p["count"].values.astype(float)
    shape = _MODELS[model]

    def binned(_d, bulk, surface, depth):
        return surface + (bulk - surface) * shape(lower, upper, depth)

    span = float(upper.max())
    quarter = max(1, y.size // 4)
    guess = (float(np.average(y[-quarter:], weights=w[-quarter:])), float(y[0]), span / 4)
    try:
        popt, _ = curve_fit(binned, d, y, p0=guess, sigma=1 / np.sqrt(np.maximum(w, 1)), maxfev=20000)
    except (RuntimeError, ValueError) as exc:
        raise PfibsimsError(f"profile: the {model} model did not fit ({exc})") from None
    bulk, surface, depth = float(popt[0]), float(popt[1]), abs(float(popt[2]))
    if depth >= span:
        warnings.warn(
            f"depletion_depth: the fitted depth {depth:.4g} nm reaches the profile's depth range {span:.4g} nm; "
            "widen distances= in boundary_profile",
            EstimationWarning,
            stacklevel=2,
        )
    return xr.Dataset(
        {
            "depth": ((), depth, {"units": LENGTH_UNIT, "long_name": "depletion depth"}),
            "surface": ((), surface),
            "bulk": ((), bulk),
        },
        attrs={"model": model, "exclude": f"{skip:.6g} {LENGTH_UNIT}"},
    )
