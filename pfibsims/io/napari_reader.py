"""napari reader: a pfibsims store (Zarr or OME-Zarr) as calibrated image and labels layers.

Registered through the npe2 manifest ``pfibsims/io/napari.yaml`` (entry
point ``napari.manifest``), so ``napari run.zarr`` or File > Open on a store
written by :func:`pfibsims.save` gives:

* one image layer per channel, lazy (an OME-Zarr store as its multiscale
  pyramid), with physical ``scale`` and ``translate`` (nm), ``units`` and
  ``axis_labels`` ``(z, y, x)``, the channel's colour from
  :mod:`pfibsims.io.palette` (additive blending, so channels overlay) and
  contrast limits from the stored display window (OME-Zarr) or a reduced
  view (see :func:`pfibsims.io.ome.display_windows`);
* one labels layer per label variable (``phase``, ``coverage``) with the
  phase colours and the phase names as ``features`` (shown in the status
  bar under the cursor).

The functions only build napari's layer-data tuples ``(data, kwargs,
layer_type)``; napari itself is needed only to view them
(``pip install 'pfibsims[napari]'``). OME-Zarr written by other tools is
left to the napari-ome-zarr plugin.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from ..grid import Grid
from .ome import display_windows, is_label, ome_attrs, pyramid, z_axis
from .palette import channel_colours, label_colours, rgba

__all__ = ["get_reader", "read_layers"]

LayerData = tuple[Any, dict[str, Any], str]


def _kind(path: Path) -> str | None:
    """``"ome"`` or ``"zarr"`` for a store pfibsims wrote, else None."""
    if not path.is_dir():
        return None
    try:
        found = ome_attrs(path)
        if found is not None:
            attrs = json.loads((path / ("zarr.json" if found[1] == "0.5" else ".zattrs")).read_text(encoding="utf-8"))
            return "ome" if "pfibsims" in attrs.get("attributes", attrs) else None
        meta = path / "zarr.json"
        if meta.is_file():
            attrs = json.loads(meta.read_text(encoding="utf-8")).get("attributes", {})
            return "zarr" if {"modality", "history"} <= set(attrs) else None
    except (OSError, ValueError, AttributeError):
        return None
    return None


def get_reader(path: str | list[str]) -> Callable[[Any], list[LayerData]] | None:
    """The napari reader contribution: :func:`read_layers` for a pfibsims store, None for anything else.

    Examples
    --------
    >>> get_reader("/no/such/store.zarr") is None
    True
    """
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    return read_layers if _kind(Path(str(path))) else None


def _geometry(ds: xr.Dataset) -> dict[str, Any]:
    grid = Grid.of(ds, dims=["y", "x"])
    dz, z0 = z_axis(ds)  # in nm; napari needs one z step: uneven slices use the mean
    return {"scale": (dz, *grid.spacing), "translate": (z0, *grid.origin),
            "units": ("nm", "nm", "nm"), "axis_labels": ("z", "y", "x")}


def _label_layer(name: str, data: Any, attrs: dict[str, Any], channels: dict[str, dict], geometry: dict) -> LayerData:
    table = label_colours(attrs, channels)
    colormap: dict[Any, list[float]] = {v: [c / 255 for c in colour] for v, _, colour in table}
    colormap[None] = [0.0, 0.0, 0.0, 0.0]
    features = {"index": [v for v, _, _ in table], "name": [n for _, n, _ in table]}
    kwargs = {"name": name, "colormap": colormap, "features": features, "opacity": 0.5,
              "multiscale": isinstance(data, list), **geometry}
    return data, kwargs, "labels"


def read_layers(path: str | list[str]) -> list[LayerData]:
    """napari layer-data tuples of a pfibsims store: image channels, then label variables.

    Parameters
    ----------
    path : str or list of one str
        A store written by :func:`pfibsims.save` (``format="zarr"`` or ``"ome-zarr"``).

    Returns
    -------
    list of (data, kwargs, layer_type)
        ``layer_type`` is ``"image"`` or ``"labels"``; ``data`` a dask
        array, or a list of them (the pyramid, ``multiscale=True``).
    """
    from .store import open_dataset

    p = Path(str(path[0] if isinstance(path, (list, tuple)) else path))
    ds = open_dataset(p)
    geometry = _geometry(ds)
    images = [str(n) for n in ds.data_vars if not is_label(ds[n]) and ds[n].dims == ("z", "y", "x")]
    labels = [str(n) for n in ds.data_vars if is_label(ds[n]) and ds[n].dims == ("z", "y", "x")]
    channels = {n: dict(ds[n].attrs) for n in images}
    colours = channel_colours(channels)
    found = ome_attrs(p) if _kind(p) == "ome" else None
    if found is not None:
        levels = pyramid(p)[0]
        windows = {c["label"]: c["window"] for c in found[0].get("omero", {}).get("channels", [])}
    else:
        levels = [da.stack([da.asarray(ds[n].data) for n in images])] if images else []
        windows = dict(zip(images, display_windows(levels[0]), strict=True)) if images else {}
    layers: list[LayerData] = []
    for i, n in enumerate(images):
        data = [lv[i] for lv in levels] if len(levels) > 1 else levels[0][i]
        w = windows.get(n, {"start": 0.0, "end": 1.0})
        hi = w["end"] if w["end"] > w["start"] else w["start"] + 1.0
        kwargs = {"name": n, "colormap": {"name": n, "colors": [[0.0, 0.0, 0.0, 1.0], [c / 255 for c in rgba(colours[n])]]},
                  "blending": "additive", "contrast_limits": (w["start"], hi), "multiscale": len(levels) > 1,
                  "metadata": {"pfibsims": {"attrs": channels[n]}}, **geometry}
        layers.append((data, kwargs, "image"))
    for n in labels:
        if found is not None:
            lv = pyramid(p, f"labels/{n}")[0]
            data: Any = lv if len(lv) > 1 else lv[0]
        else:
            data = da.asarray(ds[n].data)
            data = data.astype(np.uint8) if data.dtype == bool else data
        layers.append(_label_layer(n, data, dict(ds[n].attrs), channels, geometry))
    return layers
