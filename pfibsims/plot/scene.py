"""The 3-D figure of a fused volume (paper Fig. 5(g)): phases as surfaces, one channel as a volume render.

Rendered off-screen by VTK through PyVista (the optional ``render`` extra:
``pip install 'pfibsims[render]'``), which needs no display (VTK falls back
to EGL or OSMesa), in a child interpreter of its own (:mod:`pfibsims.plot._render`:
VTK's OpenGL state, ~300 MB, is never given back by a process that held it).
The render is placed in a matplotlib Figure, so it is saved like every other
figure.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from .._xr import as_stack
from ..errors import PfibsimsError
from ..grid import Grid
from ..io.ome import coarsen
from ..io.palette import label_colours
from .axes import new_figure

__all__ = ["volume_3d"]

#: Most voxels the rendered (reduced) view holds.
MAX_VOXELS = 2**21


#: The volume render's opacity at evenly spaced points of its colour range (low values clear).
OPACITY = (0.0, 0.0, 0.05, 0.2, 0.5)


def opacity_table(points: tuple[float, ...], n: int) -> np.ndarray:
    """``points`` (opacities 0-1 at evenly spaced points of the colour range) on ``n`` lookup-table entries,
    uint8 0-255: the table PyVista's ``LookupTable.apply_opacity`` makes of them (quadratic
    ``scipy.interpolate.interp1d``; the same numbers), made here, where scipy is loaded, and not in the
    render's child, where importing ``scipy.interpolate`` for it took 0.6 s of the render's 3-4 s.

    Examples
    --------
    >>> opacity_table((0.0, 1.0), 5).tolist()
    [0, 51, 102, 153, 255]
    """
    from scipy.interpolate import interp1d

    xo = np.linspace(0, n, len(points), dtype=np.int_)
    xx = np.linspace(0, n, n, dtype=np.int_)
    kind = "quadratic" if len(points) > 2 else "linear"
    return (np.clip(interp1d(xo, np.asarray(points, np.float64), kind=kind)(xx), 0.0, 1.0) * 255.0).astype(np.uint8)


def have_renderer() -> bool:
    """True when PyVista (and so VTK) is installed (found, not imported: it renders in a child process)."""
    try:
        return importlib.util.find_spec("pyvista") is not None
    except (ImportError, ValueError):
        return False


def _need_renderer() -> None:
    if not have_renderer():
        raise ImportError(
            "volume_3d: expected PyVista (the optional 'render' extra), found it missing; "
            "install it with pip install 'pfibsims[render]'"
        )


def _reduced(src: xr.Dataset, max_voxels: int) -> tuple[xr.Dataset, int]:
    """In-plane ``f x f`` blocks of every variable (mean; mode for labels), at most ``max_voxels`` voxels; computed."""
    nz, ny, nx = (src.sizes[d] for d in ("z", "y", "x"))
    f = max(1, math.ceil(math.sqrt(nz * ny * nx / max_voxels)))
    if f == 1:
        return src.compute(), f
    coords = {"z": src.z.values}
    for d in ("y", "x"):
        n = src.sizes[d] // f * f
        coords[d] = np.asarray(src[d].values[:n], dtype=np.float64).reshape(-1, f).mean(axis=1)
    out = {}
    for n, var in src.data_vars.items():
        data = var.data if isinstance(var.data, da.Array) else da.from_array(var.data, chunks=var.shape)
        out[n] = (("z", "y", "x"), coarsen(data, f, label=var.dtype.kind in "biu"), var.attrs)
    return xr.Dataset(out, coords=coords).compute(), f


def auto_z_scale(vol: xr.Dataset) -> float:
    """The whole stretch of ``z`` that makes the stack's depth about a quarter of its shorter in-plane side (at least 1).

    Extents run edge to edge (voxel centres plus half a spacing each side).

    Examples
    --------
    >>> import numpy as np, pfibsims as pfs
    >>> vol = pfs.stack({"Li6": np.zeros((10, 200, 300))}, pixel_size="100 nm", slice_thickness="50 nm")
    >>> auto_z_scale(vol)  # 0.5 um deep under a 20 um x 30 um field: 0.25 * 20 / 0.5
    10.0
    """
    (y0, y1), (x0, x1) = Grid.of(vol, dims=("y", "x")).extent
    z = np.asarray(vol["z"].values, dtype=np.float64)  # nm, as the data model's coordinates
    step = float(np.mean(np.diff(z))) if z.size > 1 else 0.0
    depth, side = float(z[-1] - z[0]) + step, min(y1 - y0, x1 - x0)
    return float(max(1, round(0.25 * side / depth))) if depth > 0 else 1.0


class Render:
    """The screenshot of :func:`pfibsims.plot._render.render`, taken in a child interpreter (see that module:
    VTK's ~300 MB of OpenGL state are the child's and are given back when it exits).

    The child starts at construction and runs while the caller does other work (``save_figures`` draws the
    other figures meanwhile: the render takes the second core); :meth:`image` waits for it. :meth:`close`
    (also called by :meth:`image`) stops a child still running and removes its folder.
    """

    def __init__(self, values: np.ndarray, labels: np.ndarray | None, coords: dict[str, np.ndarray], spec: dict,
                 title: str = ""):
        self.size, self.title = spec["size"], title
        self.folder = Path(tempfile.mkdtemp(prefix="pfibsims-render-"))
        self.script = Path(__file__).with_name("_render.py")
        arrays = {"values": values, **coords, **({"labels": labels} if labels is not None else {})}
        np.savez(self.folder / "scene.npz", spec=json.dumps(spec), **arrays)
        # Mesa's llvmpipe rasterises in the calling thread (unless the user set LP_NUM_THREADS): its worker
        # threads keep scene bins of their own, ~110 MB more at the demo's 1200 x 800 px for one frame
        env = {"LP_NUM_THREADS": "0", **os.environ}
        self.log = open(self.folder / "stderr.txt", "w+")  # a file, not a pipe: a chatty child never blocks
        self.proc = subprocess.Popen([sys.executable, "-P", str(self.script), str(self.folder)], cwd=self.folder,
                                     env=env, stdout=subprocess.DEVNULL, stderr=self.log)

    def image(self) -> np.ndarray:
        """The render, (height, width, 3) uint8 (waits for the child)."""
        try:
            code = self.proc.wait()
            image = self.folder / "image.npy"
            if code != 0 or not image.is_file():
                self.log.seek(0)
                tail = "\n".join(self.log.read().strip().splitlines()[-5:])
                raise PfibsimsError(f"volume_3d: expected the VTK render (child process {self.script}) "
                                    f"to write {image.name}, it exited with code {code}: {tail}")
            return np.load(image)
        finally:
            self.close()

    def figure(self) -> Figure:
        """The render in a matplotlib Figure, titled (waits for the child)."""
        img = self.image()
        fig = new_figure(self.size[0] / 150, self.size[1] / 150)
        ax = fig.add_subplot()
        # RGBA: matplotlib resamples it in half the memory it takes for RGB (~50 instead of ~95 MB at 1200 x 800)
        ax.imshow(np.dstack([img, np.full(img.shape[:2], 255, np.uint8)]))
        ax.set_axis_off()
        ax.set_title(self.title)
        return fig

    def close(self) -> None:
        """Stop the child if it still runs; remove its folder."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def volume_3d(vol: xr.Dataset, *, channel: str | None = None, labels: Any = "phase",
              z_scale: float | None = None, max_voxels: int = MAX_VOXELS, size: tuple[int, int] = (1200, 800),
              cmap: str = "Reds") -> Figure:
    """3-D view of a fused volume: the phases as smoothed surfaces, a channel (Li) as a volume render.

    Parameters
    ----------
    vol : xarray.Dataset
        A fused volume with dims ``(z, y, x)`` (a single 2-D map is drawn as
        one slice); its ``coverage`` (if any) masks the channel.
    channel : str, optional
        The channel rendered as a volume; default ``Li6`` or ``Li7``, else the first channel.
    labels : str, DataArray or None
        The labels drawn as surfaces (CF ``flag_values``; a variable of
        ``vol`` by name, or labels on its grid), in the phase colours of
        :mod:`pfibsims.io.palette`; None for none. A name ``vol`` lacks
        (the default ``"phase"``) draws none.
    z_scale : float, optional
        Stretch of ``z`` (a milled depth of 2 um under a 30 um field is
        otherwise a sheet); default: the smallest factor that makes the
        depth a quarter of the shorter in-plane side (1 when it already is).
        The z axis title states it.
    max_voxels : int
        Most voxels rendered: the volume is reduced by in-plane block means
        (the mode for labels) first. Reads the volume once.
    size : (int, int)
        Render size in pixels (width, height).
    cmap : str
        Colour map of the volume render.

    Returns
    -------
    matplotlib.figure.Figure
        The render, with physical axes in um.
    """
    return start_volume_3d(vol, channel=channel, labels=labels, z_scale=z_scale, max_voxels=max_voxels, size=size,
                           cmap=cmap).figure()


def start_volume_3d(vol: xr.Dataset, *, channel: str | None = None, labels: Any = "phase",
                    z_scale: float | None = None, max_voxels: int = MAX_VOXELS, size: tuple[int, int] = (1200, 800),
                    cmap: str = "Reds") -> Render:
    """:func:`volume_3d` started: its child render runs while the caller goes on (same arguments and errors).

    Returns the running render; its ``figure()`` waits and gives the Figure of :func:`volume_3d`, its
    ``close()`` stops it (``figure()`` closes it too).
    """
    _need_renderer()
    if not isinstance(vol, xr.Dataset):
        raise PfibsimsError(f"vol: expected a Dataset (a fused volume), got {type(vol).__name__}")
    vol, _ = as_stack(vol)  # a single 2-D map: a stack of one slice
    if isinstance(labels, xr.DataArray):
        labels, _ = as_stack(labels)
    names = [n for n in vol.data_vars if vol[n].dtype.kind == "f" or (vol[n].dtype.kind in "iu" and "flag_values"
                                                                        not in vol[n].attrs)]
    if channel is None:
        channel = next((n for n in ("Li6", "Li7") if n in names), names[0] if names else None)
    if channel not in names:
        raise PfibsimsError(f"channel: expected one of {names}, got {channel!r}")
    if isinstance(labels, str):
        labels = vol[labels] if labels in vol.data_vars else None
    if labels is not None and (not isinstance(labels, xr.DataArray) or labels.dtype.kind not in "iu"
                               or labels.sizes != vol[channel].sizes):
        raise PfibsimsError(f"labels: expected integer labels on the volume's grid {dict(vol[channel].sizes)} "
                            "(e.g. vol['phase']) or None")
    data = vol[channel].astype(np.float32)
    if "coverage" in vol.data_vars:
        data = data.where(vol["coverage"])
    src = xr.Dataset({channel: data, **({"labels": labels.variable} if labels is not None else {})})
    view, f = _reduced(src, max_voxels)
    if z_scale is None:
        z_scale = auto_z_scale(vol)
    values = view[channel].values
    ph = view["labels"].values if labels is not None else None
    phases = [] if ph is None else [[int(v), name, [int(c) for c in colour[:3]]]
                                    for v, name, colour in label_colours(labels.attrs, {n: vol[n].attrs for n in names})
                                    if v != 0 and np.any(ph == v)]
    finite = values[np.isfinite(values)]
    clim = None
    if finite.size:
        lo, hi = np.percentile(finite, [50, 99.5])
        clim = [float(lo), float(hi if hi > lo else lo + 1)]
    spec = {"channel": channel, "z_scale": float(z_scale), "size": list(size), "cmap": cmap, "clim": clim,
            "opacity": opacity_table(OPACITY, 256).tolist(),
            "bar_title": f"{channel} ({vol[channel].attrs.get('units', '')})", "phases": phases,
            "z_title": "z (um)" if z_scale == 1 else f"z (um, x{z_scale:g})"}
    coords = {d: np.asarray(view[d].values, dtype=np.float64) for d in ("z", "y", "x")}
    title = f"{channel}" + (" and the phases" if labels is not None else "") + " in 3-D"
    return Render(values, ph, coords, spec, title + (f", in-plane blocks of {f} x {f} voxels" if f > 1 else ""))
