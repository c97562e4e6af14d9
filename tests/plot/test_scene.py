"""The 3-D figure (paper Fig. 5(g)): a real off-screen VTK render through PyVista, or a clean skip."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import xarray as xr

import pfibsims as pfs
from pfibsims.plot.scene import auto_z_scale, have_renderer, volume_3d

pv = pytest.importorskip("pyvista")


def _volume():
    """A ball of 'LLZTO' (label 1, Zr) beside a Li-rich ball, in a matrix, on a paper-like grid (thin in z)."""
    z, y, x = np.meshgrid(np.arange(6), np.arange(40), np.arange(60), indexing="ij")
    ball = (y - 20) ** 2 + (x - 15) ** 2 + (3 * (z - 3)) ** 2 < 10**2
    li = (y - 20) ** 2 + (x - 45) ** 2 + (3 * (z - 3)) ** 2 < 10**2
    vol = pfs.stack({"Li6": np.where(li, 50.0, 5.0), "Zr_La": np.where(ball, 40.0, 2.0)}, pixel_size="81.4 nm",
                    slice_thickness="60 nm", modality="fused")
    vol["phase"] = xr.DataArray(ball.astype(np.uint8), dims=("z", "y", "x"), attrs={
        "units": "1", "flag_values": np.array([0, 1], np.uint8), "flag_meanings": "matrix LLZTO",
        "pfibsims:phase_channels": '{"LLZTO": "Zr_La"}'})
    return vol


def _pixels(fig):
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)


def test_renders_phases_and_li_off_screen():
    vol = _volume()
    img = _pixels(volume_3d(vol, size=(480, 360)))
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    green = (g > r + 40) & (g > b + 40)  # the LLZTO surface, in the Zr green (translucent)
    red = (r > g + 40) & (r > b + 40)    # the Li volume render ("Reds")
    assert green.sum() > 500
    assert red.sum() > 500
    # without labels (and reduced to 4 x 4 blocks in-plane: each render is a child process, ~2 CPU s)
    fig = volume_3d(vol, labels=None, max_voxels=6 * 10 * 15, size=(480, 360))
    assert "in-plane blocks of 4 x 4 voxels" in fig.axes[0].get_title()
    bare = _pixels(fig)
    assert ((bare[..., 1] > bare[..., 0] + 40) & (bare[..., 1] > bare[..., 2] + 40)).sum() < green.sum() / 10
    assert ((bare[..., 0] > bare[..., 1] + 40) & (bare[..., 0] > bare[..., 2] + 40)).sum() > 100  # Li still drawn


def test_auto_z_scale():
    vol = _volume()  # 0.36 um deep under 3.3 x 4.9 um: 0.25 * 3.256 / 0.36 = 2.26 -> 2
    assert auto_z_scale(vol) == 2.0


def test_errors_and_a_missing_renderer(monkeypatch):
    vol = _volume()
    with pytest.raises(pfs.PfibsimsError, match=r"channel: expected one of \['Li6', 'Zr_La'\], got 'Co_La'"):
        volume_3d(vol, channel="Co_La")
    with pytest.raises(pfs.PfibsimsError, match="labels: expected integer labels on the volume's grid"):
        volume_3d(vol, labels=vol.Li6)
    with monkeypatch.context() as m:  # the render's child process fails: an error naming it and its exit code
        m.setattr(sys, "executable", "/bin/false")
        with pytest.raises(pfs.PfibsimsError, match=r"volume_3d: expected the VTK render \(child process .*_render.py\) "
                                                    r"to write image.npy, it exited with code 1"):
            volume_3d(vol)
    monkeypatch.setitem(sys.modules, "pyvista", None)
    assert not have_renderer()
    with pytest.raises(ImportError, match=r"pip install 'pfibsims\[render\]'"):
        volume_3d(vol)


def test_a_single_2d_map_renders_as_one_slice():
    """Regression: a map without a z dim (fuse of 2-D inputs) raised a raw KeyError 'z'."""
    one = _volume().isel(z=[3])
    flat = one.isel(z=0, drop=True)
    assert "z" not in flat.dims
    np.testing.assert_array_equal(_pixels(volume_3d(flat, size=(240, 180))),
                                  _pixels(volume_3d(one.assign_coords(z=[0.0]).assign_coords(z=one.z.attrs and
                                          ("z", [0.0], {"units": "nm"})), size=(240, 180))))


def test_save_figures_writes_volume_3d(tmp_path):
    vol = _volume()
    paths = pfs.plot.save_figures(vol, tmp_path, a="Li6", b="Zr_La", labels=vol.phase, dpi=40)
    assert paths["volume_3d"].is_file()
    assert "volume_3d" not in pfs.plot.save_figures(vol, tmp_path / "flat", a="Li6", b="Zr_La", dpi=40, render=False)


def test_the_render_runs_while_the_caller_works_and_close_stops_it(tmp_path, monkeypatch):
    from pfibsims.plot import gallery
    from pfibsims.plot.scene import start_volume_3d

    vol = _volume()
    running = start_volume_3d(vol, labels=None, size=(240, 180))
    assert running.proc.poll() is None  # the child works; the caller is free
    folder = running.folder
    running.close()  # stopped (killed) before it finished: nothing left behind
    assert running.proc.returncode is not None
    assert not folder.exists()
    # save_figures starts the render before drawing the 2-D figures, and stops it when a figure fails
    order = []
    started = []

    def start_spy(*args, **kwargs):
        order.append("volume_3d started")
        started.append(start_volume_3d(*args, **kwargs))
        return started[-1]

    def failing(*args, **kwargs):
        order.append("orthoslices")
        raise RuntimeError("a figure failed")

    monkeypatch.setattr(gallery, "start_volume_3d", start_spy)
    monkeypatch.setattr(gallery, "orthoslices", failing)
    with pytest.raises(RuntimeError, match="a figure failed"):
        gallery.save_figures(vol, tmp_path, dpi=40, render=True)
    assert order == ["volume_3d started", "orthoslices"]
    assert started[0].proc.returncode is not None
    assert not started[0].folder.exists()


def test_the_opacity_table_is_pyvistas_own():
    """The render's opacity lookup table, made in the parent (the child would import scipy.interpolate for it),
    holds the numbers PyVista's ``LookupTable.apply_opacity`` makes of the same points (quadratic; linear for
    two points), entry by entry."""
    from pfibsims.plot.scene import OPACITY, opacity_table

    for points in (OPACITY, (0.0, 1.0), (0.1, 0.9, 0.3), (0.0, 0.2, 0.2, 1.0)):
        lut = pv.LookupTable(cmap="viridis", n_values=256)
        lut.apply_opacity(list(points))
        np.testing.assert_array_equal(opacity_table(points, 256), np.asarray(lut.values[:, -1]))
