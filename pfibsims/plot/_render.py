"""The VTK render of :func:`pfibsims.plot.scene.volume_3d`, run as a child interpreter of its own.

VTK with Mesa's software OpenGL (llvmpipe) takes ~250-330 MB for its context
and the first frame and keeps it until the process ends (closing the plotter
returns almost none). Run here, in ``python -P _render.py <folder>``, that
memory is the child's and is given back when it exits; the child imports only
numpy and PyVista (not pfibsims). The folder holds the input ``scene.npz``
(the reduced volume, the phase labels and what to draw, written by
``scene.volume_3d``) and receives the screenshot ``image.npy`` (uint8,
height x width x 3).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


def _image_data(pv: Any, coords: dict[str, np.ndarray], z_scale: float) -> Any:
    """A PyVista ImageData (um; z stretched by ``z_scale``) of the voxel centres ``coords`` (nm)."""
    c = {d: np.asarray(v, dtype=np.float64) / 1e3 for d, v in coords.items()}
    step = {d: float(np.mean(np.diff(v))) if v.size > 1 else 1.0 for d, v in c.items()}
    return pv.ImageData(dimensions=(c["x"].size, c["y"].size, c["z"].size),
                        spacing=(step["x"], step["y"], step["z"] * z_scale),
                        origin=(c["x"][0], c["y"][0], c["z"][0] * z_scale))


def render(values: np.ndarray, labels: np.ndarray | None, coords: dict[str, np.ndarray], spec: dict[str, Any]) -> np.ndarray:
    """The off-screen screenshot (uint8, height x width x 3) of the phases as surfaces and ``values`` as a volume.

    ``spec`` holds ``channel`` (the scalar name), ``z_scale``, ``size`` (width, height px), ``cmap``,
    ``clim`` ((lo, hi) or None: no volume render), ``opacity`` (the volume's lookup table of opacities, 0-255,
    one an entry), ``bar_title``, ``z_title`` and ``phases`` (``[value, name, [r, g, b]]`` each, colours 0-255).
    """
    import pyvista as pv

    grid = _image_data(pv, coords, spec["z_scale"])
    grid.point_data[spec["channel"]] = np.nan_to_num(values, nan=0.0).ravel()
    plotter = pv.Plotter(off_screen=True, window_size=tuple(spec["size"]))
    plotter.set_background("white")
    if labels is not None:
        for v, name, colour in spec["phases"]:
            g = grid.copy()
            g.point_data["m"] = (labels == v).astype(np.float32).ravel()
            surf = g.contour([0.5], scalars="m").smooth_taubin(n_iter=30)
            plotter.add_mesh(surf, color=[c / 255 for c in colour[:3]], opacity=0.35, label=name)
        plotter.add_legend(bcolor="white", size=(0.15, 0.15))
    if spec["clim"] is not None:
        plotter.add_volume(grid, scalars=spec["channel"], cmap=spec["cmap"], clim=tuple(spec["clim"]),
                           n_colors=len(spec["opacity"]), opacity=np.asarray(spec["opacity"], np.uint8),
                           scalar_bar_args={"title": spec["bar_title"]})
    plotter.show_bounds(xtitle="x (um)", ytitle="y (um)", ztitle=spec["z_title"], font_size=10, color="black")
    plotter.camera_position = "iso"
    plotter.camera.elevation = 15
    img = plotter.screenshot(return_img=True)
    plotter.close()
    return np.asarray(img)[..., :3]


def main(folder: str) -> None:
    """Read ``folder/scene.npz``, write ``folder/image.npy``."""
    with np.load(Path(folder) / "scene.npz") as f:
        spec = json.loads(str(f["spec"]))
        labels = f["labels"] if "labels" in f else None
        img = render(f["values"], labels, {d: f[d] for d in ("z", "y", "x")}, spec)
    np.save(Path(folder) / "image.npy", img)


if __name__ == "__main__":
    main(sys.argv[1])
