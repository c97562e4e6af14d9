"""Every figure of a fused volume, written as PNG files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .._engine.views import MAX_PIXELS, block_factor
from .._memory import frozen_heap, release_memory
from .._xr import as_stack, block_mean
from ..correlate import channel_pair
from ..errors import PfibsimsError
from .axes import (
    DPI,
)
from .intensity import histograms, normalization
from .maps import element_maps, joint_histogram
from .overlay import registration_overlay
from .scene import Render, have_renderer, start_volume_3d
from .volume import orthoslices

#: zlib level of the PNGs :func:`save_figures` writes: the demo's seven figures encode in ~0.27 s at 2
#: against ~0.53 s at Pillow's default 6, for files ~12 % larger (2.8 against 2.5 MB).
PNG_COMPRESSION = 2

#: Values in a chunk of an in-memory view (:func:`in_memory_view`): the figures' statistics stream over chunks
#: of this size (8 MB float64 temporaries a chunk in flight), not over single slices: the demo's histograms
#: figure makes 12 passes over its two raw stacks, and one slice a chunk (39 chunks, a few hundred tasks a
#: pass) cost 0.8-0.9 s of CPU against 0.55-0.65 s at 4-13 slices a chunk.
VIEW_CHUNK_VALUES = 1 << 20


# -- in-memory views ---------------------------------------------------------------
def in_memory_view(ds: xr.Dataset, max_pixels: int = MAX_PIXELS) -> xr.Dataset:
    """``ds`` in memory (one compute), in-plane block means when a slice has more than ``max_pixels``.

    Boolean and labelled variables (CF ``flag_values``) are sampled (the pixel
    nearest each block's centre) instead of averaged, on the same grid.  The
    result is held in memory in chunks of whole slices, as many as hold
    :data:`VIEW_CHUNK_VALUES` values (at least one), so what the figures
    compute from it streams chunk by chunk (no whole-volume float64
    temporaries) without reading the store again.
    """
    f = block_factor(ds.sizes.get("y", 1), ds.sizes.get("x", 1), max_pixels) if {"y", "x"} <= set(ds.dims) else 1
    if f > 1:
        sampled = [v for v in ds.data_vars if ds[v].dtype == bool or "flag_values" in ds[v].attrs]
        means = block_mean(ds.drop_vars(sampled))
        ny, nx = means.sizes["y"], means.sizes["x"]
        picks = {"y": slice(f // 2, f // 2 + ny * f, f), "x": slice(f // 2, f // 2 + nx * f, f)}
        ds = means.assign({v: ds[v].isel(picks).assign_coords(y=means.y, x=means.x) for v in sampled})
    ds = ds.compute()
    if "z" not in ds.dims:
        return ds
    plane = max(ds.sizes.get("y", 1) * ds.sizes.get("x", 1), 1)
    return ds.chunk({"z": max(1, VIEW_CHUNK_VALUES // plane)})


def _covered_slice(mask: xr.DataArray | None) -> int | None:
    """The slice the 2-D figures draw by default: the middle one (None), unless it has no SIMS data
    (``coverage`` False throughout, e.g. SIMS on every other slice), then the covered slice nearest it."""
    if mask is None or "z" not in mask.dims or mask.sizes["z"] < 2:
        return None
    covered = np.flatnonzero(np.asarray(mask.any([d for d in mask.dims if d != "z"]).values))
    middle = mask.sizes["z"] // 2
    if covered.size == 0 or middle in covered:
        return None
    return int(covered[np.argmin(np.abs(covered - middle))])


# -- all figures of a volume ---------------------------------------------------
def _raw_by_modality(raw: Any) -> dict[str, xr.Dataset]:
    if raw is None:
        return {}
    items = raw.values() if isinstance(raw, Mapping) else raw if isinstance(raw, (list, tuple)) else [raw]
    out = {}
    for ds in items:
        if not isinstance(ds, xr.Dataset):
            raise PfibsimsError(f"raw: expected Datasets (e.g. {{'eds': eds, 'sims': sims}}), got {type(ds).__name__}")
        out[str(ds.attrs.get("modality", "?")).upper()] = ds
    return out


def drawn(vol: xr.Dataset, a: str, b: str) -> list[str]:
    """The variables of ``vol`` the figures draw: the channels ``a`` and ``b``, and ``coverage`` when present
    (the 3-D figure's phase colours come from these channels' elements)."""
    return [v for v in dict.fromkeys((a, b, "coverage")) if v in vol.data_vars]


def save_figures(
    vol: xr.Dataset,
    outdir: str | Path,
    *,
    raw: Any = None,
    truth: xr.Dataset | None = None,
    labels: xr.DataArray | None = None,
    a: str | None = None,
    b: str | None = None,
    z: Any = None,
    dpi: int = DPI,
    render: bool | None = None,
) -> dict[str, Path]:
    """Write every figure of a fused volume as PNG into ``outdir``.

    Figures (file ``<name>.png``): ``histograms``, ``normalization``
    (from ``raw`` when given, else from the volume's channels),
    ``element_maps``, ``joint_histogram``, ``orthoslices``, when ``raw``
    holds the SIMS data ``registration``, and ``volume_3d`` (see ``render``).

    Parameters
    ----------
    vol : Dataset
        Fused volume (e.g. from ``fuse``): channels on one grid, optionally a
        boolean ``coverage`` variable (used as the joint histogram's mask); a
        single 2-D map is drawn as a stack of one slice.
    outdir : path
        Folder to write into (created if missing; existing PNGs of the same
        names are replaced).
    raw : mapping or sequence of Datasets, optional
        The raw acquisitions, e.g. ``{"eds": eds, "sims": sims}``, recognised
        by their ``modality`` attr.
    truth : Dataset, optional
        The phantom's truth; its ``phase`` outlines the orthogonal slices
        when ``labels`` is not given.
    labels : DataArray, optional
        Phase labels on the volume's grid; default the volume's own ``phase``
        variable, else ``truth.phase``; none: the orthogonal slices have no
        outlines (this function classifies nothing: pass
        ``labels=pfibsims.classify_phases(vol)`` for them).
    a, b : str, optional
        The two channels correlated; default the paper's ``Li6`` (or
        ``Li7``) and ``Zr_La`` when present, else a SIMS isotope and an EDS
        line (:func:`pfibsims.correlate.channel_pair`).
    z : int or length, optional
        The slice of the 2-D figures; default the middle one, or, when it has
        no SIMS data (``coverage`` False throughout: SIMS on every other
        slice), the slice with SIMS data nearest it.
    dpi : int
        Resolution of the PNGs (zlib level :data:`PNG_COMPRESSION`).
    render : bool or a started render, optional
        Write ``volume_3d`` (the 3-D figure, :func:`~pfibsims.plot.scene.volume_3d`; its child render starts first and runs while the other figures are drawn); default:
        when its renderer (PyVista, the ``render`` extra) is installed. A render already started by
        :func:`~pfibsims.plot.scene.start_volume_3d` (e.g. before the statistics, to run beside them) is
        drawn as ``volume_3d`` instead of starting one; it is closed here in any case.

    Returns
    -------
    dict of str to pathlib.Path
        Figure name to the PNG written.

    Examples
    --------
    >>> import numpy as np, pfibsims as pfs, tempfile
    >>> rng = np.random.default_rng(0)
    >>> vol = pfs.stack({"Li6": rng.random((3, 16, 16)), "Zr_La": 1 + rng.poisson(5, (3, 16, 16))},
    ...                 pixel_size="81.4 nm", slice_thickness="60 nm", modality="fused")
    >>> sorted(save_figures(vol, tempfile.mkdtemp(), labels=None, dpi=40))  # doctest: +SKIP
    ['element_maps', 'histograms', 'joint_histogram', 'normalization', 'orthoslices']
    """
    if not isinstance(vol, xr.Dataset):
        raise PfibsimsError(f"vol: expected a Dataset (a fused volume), got {type(vol).__name__}")
    for arg, name in (("a", a), ("b", b)):
        if name is not None and name not in vol.data_vars:
            raise PfibsimsError(
                f"{arg}: expected a channel of the volume {list(vol.data_vars)}, got {name!r}; pass {arg}='<channel>'"
            )
    if a is None or b is None:  # the paper's pair when present, else a SIMS isotope and an EDS line
        pa, pb = channel_pair(vol)
        if a is None:
            a = pb if pa == b else pa
        if b is None:
            b = pa if pb == a else pb
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    raws = _raw_by_modality(raw)
    vol, _ = as_stack(vol)  # a single 2-D map (as fuse gives back for 2-D inputs) is drawn as a stack of one slice
    if labels is not None:
        labels, _ = as_stack(labels)
    if labels is None and "phase" in vol.data_vars:
        labels = vol["phase"]
    if labels is None and truth is not None and "phase" in truth and truth["phase"].sizes == vol[b].sizes:
        labels = truth["phase"]
    # every figure draws from in-memory views, read once (one compute for the volume, one per raw stack)
    keep = drawn(vol, a, b)
    name = None if labels is None else labels.name
    if labels is not None:  # the labels' own values on the volume's grid (no alignment of coordinates)
        vol = vol.assign(_labels=(labels.dims, labels.data, labels.attrs))
        keep.append("_labels")
    vol = in_memory_view(vol[keep])
    if labels is not None:
        labels, vol = vol["_labels"].rename(name), vol.drop_vars("_labels")
    mask = vol["coverage"] if "coverage" in vol.data_vars else None
    if z is None:
        z = _covered_slice(mask)
    raws = {m: in_memory_view(ds[[c for c in (a, b) if c in ds.data_vars]]) for m, ds in raws.items()}
    hist_src = [raws[m][c] for m, c in (("EDS", b), ("SIMS", a)) if m in raws and c in raws[m]] or [vol[b], vol[a]]
    norm_src = raws["EDS"][b] if "EDS" in raws and b in raws["EDS"] else vol[b]
    figures = {
        "histograms": lambda: histograms(hist_src),
        "normalization": lambda: normalization(norm_src, z=z),
        "element_maps": lambda: element_maps(vol[a], vol[b], z=z),
        "joint_histogram": lambda: joint_histogram(vol[a], vol[b], mask=mask),
        "orthoslices": lambda: orthoslices(vol, channel=b, labels=labels),
    }
    if "SIMS" in raws and a in raws["SIMS"]:
        figures["registration"] = lambda: registration_overlay(vol[b], raws["SIMS"][a], after=vol[a], z=z)
    scene = render if isinstance(render, Render) else None
    if scene is None and (render or (render is None and have_renderer())):
        # started first: its child process renders on the other core while the figures above are drawn
        scene = start_volume_3d(vol, channel=a, labels=labels)
    if scene is not None:
        figures["volume_3d"] = scene.figure
    paths = {}
    # what exists now outlives the figures: out of the collector's reach, the collection after each figure
    # traverses only what the figures made (0.01 s instead of 0.15-0.2 s: some 260 000 objects in the demo)
    try:
        with frozen_heap():
            for name, make in figures.items():
                fig = make()
                path = outdir / f"{name}.png"
                fig.savefig(path, dpi=dpi, pil_kwargs={"compress_level": PNG_COMPRESSION})
                paths[name] = path
                fig.clear()  # a figure's artists hold reference cycles: free them now, not at the next collection
                del fig
                release_memory()
    finally:
        if scene is not None:
            scene.close()
    return paths
