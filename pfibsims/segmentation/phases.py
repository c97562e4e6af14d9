"""Phases from element channels: :func:`classify_phases`."""

from __future__ import annotations

import json
import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import dask
import dask.array as darr
import numpy as np
import xarray as xr

from .._engine.smooth import gaussian, gaussian_half, radius
from .._engine.views import MAX_PIXELS, SAMPLE_SLICES, sample_tiles
from .._xr import as_array, dequantify, spacing_nm, spatial_dims
from ..dataset import history, history_attrs, record
from ..errors import DataModelError, EstimationWarning, PfibsimsError
from ..grid import SPATIAL_DIMS
from ..units import LENGTH_UNIT, length_nm
from . import labeller as _smooth_mod
from .labels import MATRIX, PHASE_CHANNELS
from .thresholds import METHODS, threshold

#: The cathode default: which channel defines which phase (label = position + 1).
CATHODE_PHASES = {"Zr_La": "LLZTO", "Co_La": "LCO", "Al_Ka": "Al2O3", "C_Ka": "SP"}

#: Largest Gaussian ``smooth`` in pixels (its kernel spans 8 sigma).
MAX_SMOOTH_PX = 256


# At most this many voxels are read to estimate the thresholds.
_SAMPLE = SAMPLE_SLICES * MAX_PIXELS


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
    smoothed (:func:`pfibsims._engine.views.sample_tiles`); ``nearest`` at the faces.
    Returns the samples (float64) and the number of tiles.
    """
    shape = channels[0].shape
    r = [radius(s) for s in sigma]
    tiles = sample_tiles(shape, budget)
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
            block = gaussian(np.pad(block, pads, mode="edge") if any(map(any, pads)) else block, sigma)
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
    :mod:`pfibsims.segmentation.labeller`. The labels keep the in-plane chunks of ``ds``
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
    ds = dequantify(ds, "ds")
    if not isinstance(ds, xr.Dataset):
        raise DataModelError(f"ds: expected an xarray Dataset of channels, got {type(ds).__name__}")
    if method not in METHODS:
        raise PfibsimsError(f"method: expected one of {METHODS}, got {method!r}")
    table = _resolve_channels(ds, channels, phases)
    names = list(table)
    first = ds[names[0]]
    dims = spatial_dims(first, f"ds['{names[0]}']")
    spacing = spacing_nm(first, f"ds['{names[0]}']")
    sigma_nm = 0.0 if smooth is None or (isinstance(smooth, numbers.Real) and smooth == 0) else length_nm(smooth, name="smooth")
    if not 0 <= sigma_nm <= MAX_SMOOTH_PX * min(spacing_ for spacing_ in spacing if spacing_ == spacing_):
        raise PfibsimsError(f"smooth: expected a length from 0 to {MAX_SMOOTH_PX} pixels, got {smooth!r} ({sigma_nm:.6g} nm)")
    for c in names:
        if ds[c].dtype.kind not in "biuf":
            raise PfibsimsError(f"ds['{c}']: expected real numbers, got dtype {ds[c].dtype}")
    per_dim = dict(zip(dims, (sigma_nm / s if n > 1 else 0.0 for s, n in zip(spacing, first.shape, strict=False)), strict=True))
    sigma = tuple(per_dim.get(d, 0.0) for d in SPATIAL_DIMS)  # as (z, y, x)
    arrays = [_expand(as_array(ds[c].transpose(*dims).data), dims) for c in names]
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
    weights = tuple(gaussian_half(s) for s in sigma)
    if lazy is not None:  # slabs that smooth, score and label in one task; see pfibsims.segmentation.labeller
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
        "flag_values": np.arange(len(phase_names), dtype=out.dtype),  # CF: flags typed like the labels
        "flag_meanings": " ".join(phase_names),
        PHASE_CHANNELS: json.dumps({p: c for c, p in table.items()}),
        **history_attrs(history(ds)),
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
