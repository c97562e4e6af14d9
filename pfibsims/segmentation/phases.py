"""Phases from element channels: :func:`classify_phases`, classes of smoothed counts named from a phase table."""

from __future__ import annotations

import itertools
import json
import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import dask
import dask.array as darr
import numpy as np
import scipy.ndimage as ndi
import xarray as xr

from .._engine.clusters import MAX_CLASSES, choose_classes, kmeans, subsample
from .._engine.smooth import gaussian, gaussian_half, radius
from .._engine.threads import thread_map
from .._engine.views import MAX_PIXELS, SAMPLE_SLICES, sample_tiles
from .._xr import as_array, ascending, dequantify, spacing_nm, spatial_dims
from ..dataset import channel_attrs, history, history_attrs, record
from ..errors import DataModelError, EstimationWarning, GridError, PfibsimsError
from ..grid import SPATIAL_DIMS
from ..units import LENGTH_UNIT, length_nm
from . import labeller as _labeller
from .labels import PHASE_CHANNELS
from .naming import CATHODE_PHASES, UNASSIGNED, check_table, class_levels, dominant_names, element_of, name_classes

__all__ = ["CATHODE_PHASES", "classify_phases"]

#: Largest Gaussian ``smooth`` in pixels (its kernel spans 8 sigma).
MAX_SMOOTH_PX = 256

#: At most this many voxels are read (as tiles) to fit the classes.
_SAMPLE = SAMPLE_SLICES * MAX_PIXELS

#: The class centroids are fitted on at most this many of the sampled voxels.
FIT_VOXELS = 100_000


#: A class named by two phases' elements together is their boundary mixture when at most this share of
#: its sampled voxels lies ``MIXTURE_REACH`` px or more from either of them (see :func:`_mixtures`).
MIXTURE_CORE = 0.05

#: In-plane reach (px) of a boundary mixture to the two phases it mixes (one slice along z).
MIXTURE_REACH = 3


def _feature_channels(ds: xr.Dataset, channels: Any) -> list[str]:
    """The channels classified: those given, else every EDS line channel (``Zr_La``, ``Fe_Ka`` ...)."""
    if channels is None:
        names = [str(n) for n, v in ds.data_vars.items() if "line" in v.attrs or "line" in channel_attrs(str(n))]
        if not names:
            raise DataModelError(
                f"ds: expected EDS element channels such as 'Zr_La' to classify, found {list(ds.data_vars)}; "
                "name them with channels="
            )
        return names
    names = [channels] if isinstance(channels, str) else list(channels)
    if not names:
        raise DataModelError("channels: expected at least one channel name, got none")
    missing = [c for c in names if c not in ds.data_vars]
    if missing:
        raise DataModelError(f"channels: {missing} not found; the dataset has {list(ds.data_vars)}")
    return names


def _phase_table(phases: Any, elements: list[str]) -> tuple[dict | None, str]:
    """The table used (None: names from dominant elements) and how it was chosen."""
    if phases is None:
        if {el for sig in CATHODE_PHASES.values() for el in sig} <= set(elements):
            return check_table(CATHODE_PHASES), "cathode"
        return None, "elements"
    if isinstance(phases, str):
        if phases == "elements":
            return None, "elements"
        if phases == "cathode":
            return check_table(CATHODE_PHASES), "cathode"
        raise PfibsimsError(f"phases: expected None, 'cathode', 'elements' or a table {{phase: {{element: level}}}}, "
                            f"got {phases!r}")
    return check_table(phases), "given"


def _expand(arr: Any, dims: tuple[str, ...]) -> Any:
    """A channel as (z, y, x): size-1 axes for the spatial dims it lacks."""
    return arr[tuple(slice(None) if d in dims else None for d in SPATIAL_DIMS)]


def _sample(channels: list[Any], sigma: tuple[float, ...], budget: int) -> tuple[list[np.ndarray], int]:
    """The smoothed voxels of a few tiles spread over the (z, y, x) channels (the same voxels of each).

    Only the tiles, each with its halo of the kernel radius, are read and
    smoothed (:func:`pfibsims._engine.views.sample_tiles`), on the shared threads; ``nearest`` at the faces.
    A voxel whose own value is not finite (or with less than 1e-3 of the kernel weight finite) is NaN, as
    in the labels: :func:`_fit` leaves it out.
    Returns the samples (float32, the smoother's own type: 4 bytes a voxel of the sample) and the number of tiles.
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
    blocks = [(next(done) if isinstance(p, darr.Array) else p, tile, w) for ps in parts
              for tile, w, p in zip(tiles, windows, ps, strict=True)]

    def smoothed(item: tuple[Any, tuple[slice, ...], tuple[slice, ...]]) -> np.ndarray:
        block, tile, w = item
        block = np.asarray(block, dtype=np.float32)
        pads = [(a.start - (t.start - k), (t.stop + k) - a.stop) for a, t, k in zip(w, tile, r, strict=True)]
        block = np.pad(block, pads, mode="edge") if any(map(any, pads)) else block
        core = tuple(slice(k, k + t.stop - t.start) for t, k in zip(tile, r, strict=True))
        out = gaussian(block, sigma, fill=np.nan)[core]  # NaN where no finite value is in reach, as the labeller
        if not np.isfinite(block[core]).all():
            out[~np.isfinite(block[core])] = np.nan  # a voxel with no value of its own is no sample (nor labelled)
        return out.ravel()

    values = thread_map(smoothed, blocks)  # scipy.ndimage releases the GIL: the blocks smooth on every core
    n = len(tiles)
    return [np.concatenate(values[i:i + n]) for i in range(0, len(values), n)], n


def _yielding(yielding: Any, kind: str, flags: list[str]) -> list[str]:
    if yielding is None:
        return ["Al2O3"] if kind == "cathode" else []
    weak = [yielding] if isinstance(yielding, str) else list(yielding)
    unknown = [p for p in weak if p not in flags[1:]]
    if unknown:
        raise PfibsimsError(f"yielding: expected phases among {flags[1:]}, got {unknown}")
    return weak


def _fit(samples: list[np.ndarray], names: list[str], classes: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Class centroids (counts per channel), sizes (sample fractions) and the within-class standard deviation
    per channel (counts) of the smoothed voxels, and how ``k`` was set."""
    x = np.stack(samples, axis=1)  # float32 until the fit's subsample (float64 from float32 is exact)
    x = x[np.isfinite(x).all(axis=1)]
    if x.shape[0] < 2:
        raise DataModelError(f"ds: expected finite values in the channels {names} to classify, found {x.shape[0]} voxel(s)")
    for j, c in enumerate(names):
        if np.ptp(x[:, j]) == 0:
            warnings.warn(f"classify_phases: channel {c!r} is constant in the sample; it separates no class",
                          EstimationWarning, stacklevel=3)
    fit = subsample(x, FIT_VOXELS).astype(np.float64)
    if classes is None:
        k, bic = choose_classes(fit)
        how = {"classes_by": f"BIC (diagonal Gaussian per class), first local minimum over k = 2..{MAX_CLASSES}",
               "bic": {str(key): round(v, 3) for key, v in bic.items()}}
    else:
        if isinstance(classes, bool) or not isinstance(classes, (int, np.integer)) or not 1 <= classes <= 254:
            raise PfibsimsError(f"classes: expected None (chosen by BIC) or a number of classes from 1 to 254, got {classes!r}")
        k, how = int(classes), {"classes_by": "given"}
    distinct = np.unique(fit, axis=0).shape[0]
    if k > distinct:
        warnings.warn(f"classify_phases: {k} classes asked but the sample has {distinct} distinct voxel(s); "
                      f"using {distinct}", EstimationWarning, stacklevel=3)
        k = distinct
    if k == 1:
        centres, labels = fit.mean(axis=0, keepdims=True), np.zeros(fit.shape[0], np.intp)
    else:
        centres, labels, _ = kmeans(fit, k)
    sizes = np.bincount(labels, minlength=k) / labels.size
    noise = np.sqrt(np.mean((fit - centres[labels]) ** 2, axis=0))
    return centres, sizes, noise, {"classes": k, **how, "fit_voxels": int(fit.shape[0])}


def _phases(centres: np.ndarray, sizes: np.ndarray, noise: np.ndarray, names: list[str], elements: list[str],
            table: dict | None, mixtures: dict | None = None) -> dict:
    """Class names, the labels (flag order), and one endmember per phase (its classes' mean) for the labeller.

    The classes' levels (:func:`~pfibsims.segmentation.naming.class_levels`) take a channel whose class
    means span no more than its within-class ``noise`` as flat: an absent element names no class."""
    levels = class_levels(centres, noise)
    class_names = dominant_names(levels, elements) if table is None else name_classes(levels, elements, table)
    class_names = [(mixtures or {}).get(j, n) for j, n in enumerate(class_names)]  # boundary mixtures: see _mixtures
    if table is not None:
        flags = [UNASSIGNED, *table]
    else:  # phases by the sample fraction of their classes, largest first
        totals: dict[str, float] = {}
        for n, w in zip(class_names, sizes, strict=True):
            totals[n] = totals.get(n, 0.0) + float(w)
        flags = [UNASSIGNED, *sorted((n for n in totals if n != UNASSIGNED), key=lambda n: -totals[n])]
    if len(flags) > 255:
        raise PfibsimsError(f"phases: expected at most 254 phases for a uint8 label, got {len(flags) - 1}")
    ends, lut, defining = [], [], {}
    for phase in dict.fromkeys(class_names):
        members = [j for j, n in enumerate(class_names) if n == phase]
        groups = [[j] for j in members] if phase == UNASSIGNED else [members]  # unassigned classes stay apart
        for g in groups:
            w = sizes[g] if sizes[g].sum() > 0 else np.ones(len(g))
            ends.append(np.average(centres[g], axis=0, weights=w))
            lut.append(flags.index(phase))
        if phase != UNASSIGNED:
            top = int(np.argmax(levels[members].max(axis=0)))
            if levels[members, top].max() >= 0.5:
                defining[phase] = names[top]
    return {"class_names": class_names, "flags": flags, "endmembers": np.array(ends), "lut": np.array(lut, np.uint8),
            "defining": defining, "levels": levels}


def _sample_classes(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The nearest class of each sampled voxel (-1 where a channel is not finite), a block of rows at a time."""
    out = np.full(x.shape[0], -1, np.intp)
    for i in range(0, x.shape[0], 1 << 16):
        d2 = sum((x[i:i + (1 << 16), c, None].astype(np.float64) - centres[None, :, c]) ** 2 for c in range(x.shape[1]))
        ok = np.isfinite(d2).all(axis=1)
        out[i:i + (1 << 16)][ok] = np.argmin(d2[ok], axis=1)
    return out


def _mixtures(samples: list[np.ndarray], tiles: list, centres: np.ndarray, noise: np.ndarray, named: dict) -> dict:
    """Classes named by the elements of two phases together that are their boundary mixture: {class: phase}.

    Without a table, a class of boundary voxels between an ``Fe`` and an ``Ni`` phase can be rich in both (when a
    third phase, e.g. pores, sets the floor of both levels) and would make a phase ``Fe+Ni`` of the boundaries.
    Such a class is a mixture when its centroid lies on the segment between the two phases' centroids (within
    twice the within-class noise) and its sampled voxels have no core: at most :data:`MIXTURE_CORE` of them
    lie :data:`MIXTURE_REACH` px or more from either phase. It then takes the phase of its larger share, as
    its voxels do in the labeller. A compound (its counts lie between its elements' phases too) fills volumes:
    it keeps its name.
    """
    names = named["class_names"]
    ends = {named["flags"][int(v)]: e for e, v in zip(named["endmembers"], named["lut"], strict=True) if int(v)}
    elements = {p: set(p.split("+")) for p in ends}
    found = {}
    for j, n in enumerate(names):
        for a, b in itertools.combinations(ends, 2):
            if n in (a, b) or n not in elements or elements[a] & elements[b] or elements[a] | elements[b] != elements[n]:
                continue
            d = ends[a] - ends[b]
            if not np.dot(d, d) > 0:
                continue
            f = float(np.dot(centres[j] - ends[b], d) / np.dot(d, d))
            if 0 < f < 1 and np.linalg.norm(centres[j] - ends[b] - f * d) <= 2 * np.linalg.norm(noise):
                found[j] = (a, b, f)
    if not found:
        return {}
    labels, start = _sample_classes(np.stack(samples, axis=1), centres), 0
    core = {j: [0, 0] for j in found}
    win = np.ones((3, 2 * MIXTURE_REACH + 1, 2 * MIXTURE_REACH + 1), bool)
    for tile in tiles:
        shape = tuple(t.stop - t.start for t in tile)
        lab = labels[start:start + math.prod(shape)].reshape(shape)
        start += math.prod(shape)
        for j, (a, b, _) in found.items():
            near = [ndi.binary_dilation(np.isin(lab, [k for k, m in enumerate(names) if m == p]), win) for p in (a, b)]
            core[j][0] += int(np.count_nonzero((lab == j) & ~(near[0] & near[1])))
            core[j][1] += int(np.count_nonzero(lab == j))
    return {j: (a if f >= 0.5 else b) for j, (a, b, f) in found.items() if core[j][0] <= MIXTURE_CORE * core[j][1]}


def classify_phases(
    ds: xr.Dataset,
    *,
    channels: Sequence[str] | None = None,
    phases: Any = None,
    classes: int | None = None,
    yielding: Sequence[str] | None = None,
    smooth: Any = "50 nm",
    sample: int = _SAMPLE,
) -> xr.DataArray:
    """A phase label volume from element channels: classes of the smoothed counts, named from a phase table.

    1. Each channel is smoothed with a Gaussian of standard deviation
       ``smooth`` (a physical length: ``smooth / spacing`` voxels per axis,
       the values of ``scipy.ndimage.gaussian_filter`` with
       ``mode="nearest"``, ``truncate=4.0`` on float32, to the bit).
       At measured, uneven slice depths the z kernel is in slice steps of
       the *median* step (``smooth / median step`` slices; recorded as
       ``z_step`` in the history): the labels are those of the same stack
       at regular depths of that step, and a slice whose neighbours are
       nearer or farther than the median is smoothed with them as if they
       were one median step away. The labels keep the measured depths.
       Non-finite values (a masked region, a missing tile) carry no
       weight: a voxel whose kernel reaches one is smoothed from its finite
       neighbours (normalised convolution,
       :func:`pfibsims._engine.smooth.gaussian`); a voxel with a
       non-finite value of its own is left out of the class fit and
       labelled 0 (``"unassigned"``).
    2. The smoothed counts of a sample of voxels are split into classes by
       k-means (Euclidean, on the counts as measured: a boundary voxel, a
       mixture of two phases blurred by the probe, lies on the straight line
       between their centroids), the best of 4 k-means++ restarts. The
       number of classes is ``classes``, or chosen by BIC: the first local
       minimum over ``k = 2 ... 12`` of the BIC of one diagonal Gaussian per
       class, on 10 000 of the sampled voxels.
    3. Each class is named from its level in each element (0 for the
       poorest class, 1 for the richest; 0 in every class for a channel
       whose class means span at most its within-class standard
       deviation, an element absent from the sample) by the phase table (see
       :mod:`pfibsims.segmentation.naming`): the phase it matches with the
       largest margin, else ``"unassigned"`` (never forced into a phase).
       Without a table, a class is named by its elements at level 0.5 or
       more (``"Fe+S"``), except a boundary mixture: a class named by the
       elements of two phases together, whose centroid lies between theirs
       and whose sampled voxels all lie within 3 px of both (no core, see
       :data:`MIXTURE_CORE`), takes the phase of its larger share (recorded
       as ``mixture_classes``); a compound, which fills volumes, keeps its name.
    4. The classes of one phase merge into one centroid (their mean); an
       unassigned class keeps its own. Every voxel then takes the phase of
       its partial-volume nearest centroid
       (:func:`~pfibsims.segmentation.labeller.label_window`): the nearest
       point among the three nearest centroids and the segments between
       them, a mixture going to the phase with the larger share. A
       *yielding* phase (the cathode's Al2O3 by default: a coating thinner
       than the probe, whose blurred centroid sits among its neighbours'
       mixtures) needs a share of 0.65
       (:data:`~pfibsims.segmentation.labeller.YIELD_SHARE`).

    Measured on the phantom (``pfs.synthetic.cathode(seed=0)``, precision /
    recall per phase): LLZTO, LCO and SP at or above 0.9, with the default
    matrix and with a mixed one (``matrix_mixture=``); the thin Al2O3
    coatings (50-100 nm under a 100 nm probe) are found with recall about
    0.9 but precision about 0.5. See ``tests/segmentation``.

    Estimates: the classes are fitted on a sample, the smoothed voxels of a
    few tiles (one slice by 256 x 256 px, spread evenly over the volume, at
    most ``sample`` voxels in all; the whole volume when it is smaller), of
    which only the tiles and their halos are read and smoothed, in one
    ``dask.compute``. The tiles depend on the shape alone, so eager and lazy
    data give the same classes.

    Lazy labels stream with bounded memory whatever the chunking of ``ds``:
    one task smooths and labels a slab of whole input z chunks (about 16 M
    voxels a channel) of one in-plane chunk, reading its chunks and z halo
    itself, and its in-plane halo from the few outer rows and columns of the
    neighbour chunks (read once more for that); see
    :mod:`pfibsims.segmentation.labeller`. The labels keep the in-plane
    chunks of ``ds`` and come in such slabs along z. Each computation of the
    labels reads the channels again: persist or store them when several
    steps use them.

    Parameters
    ----------
    ds : xarray.Dataset
        Channels with dims ``(z, y, x)`` (or a subset), e.g. EDS counts.
    channels : sequence of str, optional
        The channels classified; default every EDS line channel of ``ds``
        (names such as ``Zr_La``, or a ``line`` attr).
    phases : None, "cathode", "elements" or mapping
        The phase table ``{phase: {element: level}}`` with levels
        ``"high"``, ``"low"``, ``"absent"`` or ``(low, high)``. ``None``:
        the paper's cathode (:data:`CATHODE_PHASES`: LLZTO, LCO, Al2O3, SP
        and a mixed matrix) when the channels measure Zr, Co, Al and C, else
        names from the dominant elements (``"elements"``).
    classes : int, optional
        The number of k-means classes; default chosen by BIC.
    yielding : sequence of str, optional
        Phases that take a boundary voxel only with a 0.65 share; default
        ``("Al2O3",)`` with the cathode table, else none.
    smooth : length or None
        Gaussian standard deviation, e.g. ``"50 nm"``; ``None`` or 0: none.
    sample : int
        Most voxels read to fit the classes.

    Returns
    -------
    xarray.DataArray
        ``uint8`` labels named ``phase`` on the grid of ``ds`` (a decreasing
        axis too: labelled ascending, returned in ``ds``'s order), lazy if the
        channels are; attrs ``flag_values``, ``flag_meanings`` (0 is
        ``"unassigned"``; for the cathode ``"unassigned LLZTO LCO Al2O3 SP
        matrix"``), ``pfibsims:phase_channels`` (JSON ``{phase: channel}``,
        the channel each phase is richest in) and ``history`` whose last
        record holds the classes (centroids in counts, names, levels), how
        their number was chosen, and each phase's centroid.

    Raises
    ------
    DataModelError
        When ``ds`` is not a dataset, has none of the channels, or no finite values.
    PfibsimsError
        On a malformed phase table, a table naming an element no channel
        measures, or a bad ``classes``.
    UnitsError
        When ``smooth`` is not a length.

    Examples
    --------
    >>> import numpy as np
    >>> from pfibsims.dataset import stack
    >>> zr = np.zeros((2, 8, 8)); zr[:, :, :4] = 50
    >>> fe = np.zeros((2, 8, 8)); fe[:, :4, 4:] = 50
    >>> ph = classify_phases(stack({"Zr_La": zr, "Fe_Ka": fe}, pixel_size="81.4 nm",
    ...                            slice_thickness="60 nm"), smooth=None, classes=3)
    >>> ph.attrs["flag_meanings"], ph.values[0, :, 3:5].tolist()
    ('unassigned Zr Fe', [[1, 2], [1, 2], [1, 2], [1, 2], [1, 0], [1, 0], [1, 0], [1, 0]])
    """
    ds = dequantify(ds, "ds")
    if not isinstance(ds, xr.Dataset):
        raise DataModelError(f"ds: expected an xarray Dataset of channels, got {type(ds).__name__}")
    ds, flipped = ascending(ds)  # stage y growing upwards: labelled ascending, returned in the input's order
    names = _feature_channels(ds, channels)
    elements = [element_of(c, ds[c].attrs) for c in names]
    table, kind = _phase_table(phases, elements)
    if table is not None:
        name_classes(np.zeros((1, len(elements))), elements, table)  # every element the table names is measured
    first = ds[names[0]]
    dims = spatial_dims(first, f"ds['{names[0]}']")
    try:
        spacing, uneven = spacing_nm(first, f"ds['{names[0]}']"), False
    except GridError:  # measured, uneven depths: the z kernel is in steps of their median
        spacing, uneven = spacing_nm(first, f"ds['{names[0]}']", uneven_z="median"), True
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
    centres, sizes, noise, how = _fit(samples, names, classes)
    named = _phases(centres, sizes, noise, names, elements, table)
    mixtures = {} if table is not None else _mixtures(samples, sample_tiles(arrays[0].shape, int(sample)), centres, noise, named)
    if mixtures:
        named = _phases(centres, sizes, noise, names, elements, table, mixtures)
    weak = _yielding(yielding, kind, named["flags"])
    params = {"centres": named["endmembers"], "labels": named["lut"],
              "yields": np.array([named["flags"][int(v)] in weak for v in named["lut"]])}
    weights = tuple(gaussian_half(s) for s in sigma)
    if lazy is not None:  # slabs that smooth and label in one task; see pfibsims.segmentation.labeller
        r = tuple(w.size - 1 for w in weights)
        data = _labeller.label_array(_labeller.prepare(arrays, r), weights=weights, params=params)
    else:
        r = [(w.size - 1,) * 2 for w in weights]
        win = np.stack([np.pad(np.asarray(a), r, mode="edge") for a in arrays])
        data = _labeller.label_window(win, depth=arrays[0].shape[0], weights=weights, **params)
    data = data[tuple(slice(None) if d in dims else 0 for d in SPATIAL_DIMS)]
    coords = {k: v for k, v in first.coords.items() if set(v.dims) <= set(dims)}
    out = xr.DataArray(data, dims=dims, coords=coords, name="phase").isel({d: slice(None, None, -1) for d in flipped})
    out.attrs = {
        "units": "1",
        "long_name": "phase",
        "flag_values": np.arange(len(named["flags"]), dtype=out.dtype),  # CF: flags typed like the labels
        "flag_meanings": " ".join(named["flags"]),
        PHASE_CHANNELS: json.dumps(named["defining"]),
        **history_attrs(history(ds)),
    }
    counts = lambda row: {c: round(float(v), 6) for c, v in zip(names, row, strict=True)}  # noqa: E731
    return record(
        out,
        "classify_phases",
        channels=names,
        smooth=f"{sigma_nm:.6g} {LENGTH_UNIT}",
        z_step=("median of uneven steps, " if uneven else "") + f"{spacing[0]:.6g} {LENGTH_UNIT}"
        if "z" in dims and first.sizes["z"] > 1 else None,
        phases=kind,
        table={p: {el: list(r) for el, r in sig.items()} for p, sig in (table or {}).items()},
        **how,
        class_centroids=[counts(c) for c in centres],
        within_class_std=counts(noise),
        class_levels=[counts(q) for q in named["levels"]],
        class_fractions=[round(float(w), 6) for w in sizes],
        class_names=named["class_names"],
        mixture_classes=sorted(mixtures),
        yielding=weak,
        phase_centroids={named["flags"][int(v)]: counts(e) for e, v in zip(named["endmembers"], named["lut"], strict=True)
                         if int(v) != 0},
        sample_tiles=n_tiles,
        sample_voxels=int(samples[0].size),
        reversed_axes=list(flipped),
    )
