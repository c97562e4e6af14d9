"""Tests of pfibsims.plot: figures render headless to PNG, non-trivial, of the documented size, from the right data."""

from __future__ import annotations

import subprocess
import sys

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from PIL import Image

import pfibsims as pfs
from pfibsims import plot
from pfibsims.errors import PfibsimsError
from pfibsims.plot import axes

DPI = 40  # small PNGs keep the tests fast

CHUNKINGS = [None, "whole", "small"]


def _chunk(ds, chunking):
    if chunking is None:
        return ds
    if chunking == "whole":
        return ds.chunk(-1)
    return ds.chunk({"z": 2, "y": 9, "x": 11})


@pytest.fixture(params=CHUNKINGS, ids=["numpy", "one-chunk", "small-chunks"])
def chunking(request):
    return request.param


def _eds(chunking=None, nz=5, ny=24, nx=36, seed=0):
    rng = np.random.default_rng(seed)
    zr = rng.poisson(4.0, (nz, ny, nx)).astype(float)
    zr[:, 6:14, 8:20] += 40  # a "particle"
    co = rng.poisson(6.0, (nz, ny, nx)).astype(float)
    co[:, 14:, 20:] += 30
    ds = pfs.stack({"Zr_La": zr, "Co_La": co}, pixel_size="81.4 nm", slice_thickness="60 nm")
    return _chunk(ds, chunking)


def _sims(chunking=None, nz=5, n=30, seed=1):
    rng = np.random.default_rng(seed)
    li = rng.poisson(20.0, (nz, n, n)).astype(float)
    li[:, 5:12, 10:25] += 200
    ds = pfs.stack({"Li6": li}, pixel_size="72 nm", slice_thickness="60 nm")
    return _chunk(ds, chunking)


def _fused(chunking=None):
    eds = _eds(chunking)
    rng = np.random.default_rng(2)
    li = 50 + 100 * (eds.Co_La > 20) + rng.normal(0, 5, eds.Co_La.shape)
    vol = eds.assign(Li6=li.assign_attrs(units="counts", element="Li"))
    return vol


def _check_png(path, size_inches, dpi=DPI):
    """The PNG has the documented size, is not blank, and has several distinct colours."""
    with Image.open(path) as im:
        w, h = im.size
        assert abs(w - size_inches[0] * dpi) < 1, (im.size, size_inches)
        assert abs(h - size_inches[1] * dpi) < 1, (im.size, size_inches)
        rgb = np.asarray(im.convert("RGB"))
    assert rgb.std() > 0
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 8


def _save(fig, tmp_path, name="fig"):
    path = tmp_path / f"{name}.png"
    fig.savefig(path, dpi=DPI)
    return path


# -- helpers -------------------------------------------------------------------
@pytest.mark.parametrize(("span", "expected"), [(28.65, 5.0), (17.6, 2.0), (3.3, 0.5), (0.9, 0.1), (100, 20.0)])
def test_nice_length_is_round_and_about_a_fifth(span, expected):
    assert axes.nice_length(span) == expected


def test_extent_honours_physical_spacing():
    vol = _eds()
    xz = vol.Zr_La.isel(y=0).transpose("z", "x")
    left, right, bottom, top = axes.extent_um(xz)
    assert (right - left) == pytest.approx(36 * 81.4 / 1e3)
    assert (bottom - top) == pytest.approx(5 * 60 / 1e3)
    assert top == pytest.approx(-30 / 1e3)  # first z centre is 0: its edge is half a slice above


def test_extent_without_units_falls_back_to_pixels():
    plane = xr.DataArray(np.zeros((3, 4)), dims=("y", "x"))
    assert axes.extent_um(plane) == [-0.5, 3.5, 2.5, -0.5]


# -- Fig. 2 ------------------------------------------------------------------------
def test_histograms_png_and_counts(tmp_path, chunking):
    eds, sims = _eds(chunking), _sims(chunking)
    fig = plot.histograms([eds.Zr_La, sims.Li6])
    assert fig.get_size_inches().tolist() == [3.2 * 3, 2.4 * 2]
    _check_png(_save(fig, tmp_path), (9.6, 4.8))
    # every voxel is counted once in each 8-bit histogram
    (bars,) = fig.axes[2].patches  # the 256 bars are one StepPatch: its heights, its edges
    heights, edges, _ = bars.get_data()
    assert heights.sum() == eds.Zr_La.size
    assert edges.tolist() == (np.arange(257) - 0.5).tolist()  # a bar a gray level
    # the min-max histogram matches numpy on eq. 1 quantised to 8 bits
    x = eds.Zr_La.values
    codes = np.round((x - x.min()) / (x.max() - x.min()) * 255).astype(int)
    expected = np.bincount(codes.ravel(), minlength=256)
    (bars,) = fig.axes[1].patches
    assert bars.get_data().values.tolist() == expected.tolist()


def test_histograms_count_axes_are_ticked_at_the_decades_only():
    fig = plot.histograms([_eds().Zr_La])
    fig.canvas.draw()
    for ax in fig.axes:
        assert ax.get_yscale() == "log"
        assert ax.yaxis.get_minorticklocs().size == 0
        lo, hi = ax.get_ylim()
        major = [t for t in ax.yaxis.get_majorticklocs() if lo <= t <= hi]
        # a labelled tick at every decade the axis spans
        assert np.allclose(np.log10(major), np.round(np.log10(major)))
        assert len(major) == int(np.floor(np.log10(hi))) - int(np.ceil(np.log10(lo))) + 1


def test_histograms_of_a_dataset_selects_channels():
    fig = plot.histograms(_eds(), channels=["Co_La"], methods=("log",))
    assert len(fig.axes) == 2
    assert "Co_La" in fig.axes[0].get_title()


def test_histograms_errors():
    with pytest.raises(PfibsimsError, match=r"channels: \['Li6'\] not found"):
        plot.histograms(_eds(), channels=["Li6"])
    with pytest.raises(PfibsimsError, match="raw: expected an xarray DataArray, got ndarray"):
        plot.histograms(np.zeros((3, 3)))


# -- Fig. 3 ------------------------------------------------------------------------
def test_normalization_png_and_lost_pixels(tmp_path, chunking):
    x = np.zeros((1, 20, 30))  # background at the minimum, 0 counts
    x[0, 2:, :10] = 2.0  # weak signal: eq. 1 rounds 2 / 2000 * 255 to gray level 0
    x[0, 2:, 10:] = 50.0
    x[0, 0, 0] = 2000.0  # one outlier sets x_max
    ds = _chunk(pfs.stack({"Zr_La": x}, pixel_size="81.4 nm"), chunking)
    fig = plot.normalization(ds.Zr_La, zoom=(("0 um", "1.6 um"), ("0 um", "2.4 um")))
    height = 10 * 20 / 30 + 1.2
    assert fig.get_size_inches() == pytest.approx([10, height])
    _check_png(_save(fig, tmp_path), (10, height))
    # min-max loses the 180 weak pixels (Fig. 3g), the log keeps them: log10(2) / log10(2000) * 255 = 23 (Fig. 3h)
    titles = [ax.get_title() for ax in fig.axes]
    lost_minmax = int(((x > 0) & (np.round(x / 2000 * 255) == 0)).sum())
    assert lost_minmax == 180
    assert any("lost by min-max" in t and f"(field: {lost_minmax})" in t for t in titles)
    assert any("lost by log" in t and "(field: 0)" in t for t in titles)


def test_normalization_errors():
    ds = _eds()
    with pytest.raises(PfibsimsError, match="zoom: expected"):
        plot.normalization(ds.Zr_La, zoom="centre")
    with pytest.raises(PfibsimsError, match="zoom: the window .* holds no pixel"):
        plot.normalization(ds.Zr_La, zoom=(("100 um", "101 um"), ("0 um", "1 um")))
    with pytest.raises(PfibsimsError, match=r"z: expected an index in \[-5, 5\)"):
        plot.normalization(ds.Zr_La, z=7)
    with pytest.raises(PfibsimsError, match="raw: expected a DataArray .* got a Dataset"):
        plot.normalization(ds)


def test_slice_by_depth_picks_the_nearest_slice():
    vol = _eds()
    assert axes.index_of(vol.Zr_La, "z", "0.13 um", "z") == 2
    assert axes.index_of(vol.Zr_La, "z", -1, "z") == 4


# -- Fig. 6 ------------------------------------------------------------------------
def test_element_maps_png_and_scale(tmp_path, chunking):
    pytest.importorskip("pfibsims.resampling").profile  # noqa: B018
    vol = _fused(chunking)
    fig = plot.element_maps(vol.Li6, vol.Zr_La, z=2)
    assert fig.get_size_inches().tolist() == [13, 7]
    _check_png(_save(fig, tmp_path), (13, 7))
    maps = [ax for ax in fig.axes if ax.images][:3]
    for ax in maps:  # one colour scale: 0-255
        assert ax.images[0].get_clim() == (0, 255)
        # scale bar in um on every map
        assert any("\N{MICRO SIGN}m" in t.get_text() for t in ax.findobj(lambda o: hasattr(o, "get_text")))
    # panel (c) is eq. 3 per voxel, scaled to 0-255 on the slice shown
    a, b = vol.Li6.values, vol.Zr_La.values
    prod = ((a - a.mean()) * (b - b.mean()))[2]
    expected = 255 * (prod - prod.min()) / (prod.max() - prod.min())
    np.testing.assert_allclose(np.asarray(maps[2].images[0].get_array()), expected, atol=1e-9)


def test_element_maps_plain_product_and_nan_outside_the_field():
    vol = _fused()
    li = vol.Li6.where(vol.x < 2000)  # outside the SIMS field
    fig = plot.element_maps(li, vol.Zr_La, center=None, z=0)
    maps = [ax for ax in fig.axes if ax.images][:3]
    prod = (li.values * vol.Zr_La.values)[0]
    expected = 255 * (prod - np.nanmin(prod)) / (np.nanmax(prod) - np.nanmin(prod))
    got = np.ma.filled(maps[2].images[0].get_array().astype(float), np.nan)
    np.testing.assert_allclose(got, expected, atol=1e-9)
    assert np.isnan(got[:, -1]).all()
    assert maps[0].images[0].get_cmap().get_bad()[:3] == pytest.approx((0.85, 0.85, 0.85))


def test_element_maps_errors():
    vol = _fused()
    with pytest.raises(PfibsimsError, match="a: expected a DataArray"):
        plot.element_maps(vol, vol.Zr_La)


# -- joint histogram ----------------------------------------------------------------
def test_joint_histogram_png_and_truth(tmp_path, chunking):
    vol = _fused(chunking)
    fig = plot.joint_histogram(vol.Li6, vol.Zr_La, bins=20)
    assert fig.get_size_inches().tolist() == [6, 5]
    _check_png(_save(fig, tmp_path), (6, 5))
    mesh = fig.axes[0].collections[0]
    assert np.nansum(mesh.get_array()) == vol.Li6.size
    assert mesh.norm.__class__.__name__ == "LogNorm"
    r = np.corrcoef(vol.Li6.values.ravel(), vol.Zr_La.values.ravel())[0, 1]
    assert f"r = {r:.3f}" in fig.axes[0].get_title()


def test_joint_histogram_mask_counts_only_masked_voxels():
    vol = _fused()
    mask = vol.Zr_La > 10
    fig = plot.joint_histogram(vol.Li6, vol.Zr_La, bins=10, mask=mask)
    assert np.nansum(fig.axes[0].collections[0].get_array()) == int(mask.sum())


# -- orthogonal slices ---------------------------------------------------------------
def test_orthoslices_png_layout_and_outlines(tmp_path, chunking):
    vol = _eds(chunking)
    labels = xr.where(vol.Zr_La > 20, 1, 0).astype(np.uint8)
    labels.attrs.update(flag_values=[0, 1], flag_meanings="matrix LLZTO")
    fig = plot.orthoslices(vol, channel="Zr_La", labels=labels, at=(2, "0.8 um", 10))
    assert fig.get_size_inches().tolist() == [9, 7]
    _check_png(_save(fig, tmp_path), (9, 7))
    xy, xz, yz = fig.axes[:3]
    # physical extents: the z axis is 5 x 60 nm, the in-plane ones 81.4 nm per pixel
    assert xz.images[0].get_extent()[2] - xz.images[0].get_extent()[3] == pytest.approx(0.3)
    assert yz.images[0].get_extent()[1] - yz.images[0].get_extent()[0] == pytest.approx(0.3)
    assert xy.images[0].get_extent()[1] == pytest.approx(36 * 0.0814)
    assert all(ax.get_aspect() == 1.0 for ax in (xy, xz, yz))
    # the LLZTO outline is drawn and named in the legend
    assert xy.collections, "no phase outline in the xy plane"
    legend = fig.axes[3].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["LLZTO"]


def test_orthoslices_without_labels(tmp_path):
    fig = plot.orthoslices(_eds().Co_La)
    _check_png(_save(fig, tmp_path), (9, 7))
    assert len(fig.axes) == 3


def test_orthoslices_computes_only_three_planes():
    """A 26 GB virtual volume: only the chunks the three planes cross are made."""
    shape = (400, 4000, 2000)
    data = da.ones(shape, chunks=(8, 500, 500), dtype=np.float64)
    vol = xr.DataArray(data, dims=("z", "y", "x"), name="Zr_La", attrs={"units": "counts"}, coords={
        "z": ("z", 60.0 * np.arange(shape[0]), {"units": "nm"}),
        "y": ("y", 40.7 + 81.4 * np.arange(shape[1]), {"units": "nm"}),
        "x": ("x", 40.7 + 81.4 * np.arange(shape[2]), {"units": "nm"}),
    })
    fig = plot.orthoslices(vol)
    assert len(fig.axes) == 3


def test_orthoslices_errors():
    vol = _eds()
    with pytest.raises(PfibsimsError, match=r"channel: expected one of \['Zr_La', 'Co_La'\], got 'Li6'"):
        plot.orthoslices(vol, channel="Li6")
    with pytest.raises(PfibsimsError, match=r"vol: expected a 3-D \(z, y, x\) volume"):
        plot.orthoslices(vol.Zr_La.isel(z=0))
    with pytest.raises(PfibsimsError, match=r"at: expected \(z, y, x\)"):
        plot.orthoslices(vol, at=(1, 2))
    with pytest.raises(PfibsimsError, match="labels: expected a DataArray on the volume's grid"):
        plot.orthoslices(vol, labels=vol.Zr_La.isel(x=slice(0, 3)))


# -- registration overlay ------------------------------------------------------------
def test_registration_overlay_aligned_is_yellow(tmp_path, chunking):
    eds = _eds(chunking)
    shifted = eds.Zr_La.shift(x=4)  # misregistered by 4 pixels
    fig = plot.registration_overlay(eds.Zr_La, shifted.fillna(0), after=eds.Zr_La)
    assert fig.get_size_inches().tolist() == [10, 4.5]
    _check_png(_save(fig, tmp_path), (10, 4.5))
    before = np.asarray(fig.axes[0].images[0].get_array())
    after = np.asarray(fig.axes[1].images[0].get_array())
    np.testing.assert_array_equal(after[..., 0], after[..., 1])  # red == green where aligned
    assert np.abs(before[..., 0] - before[..., 1]).max() > 0.5


def test_registration_overlay_resamples_with_the_transform(tmp_path):
    eds, sims = _eds(), _sims()
    T = pfs.Affine.translation(("100 nm", "-50 nm"))
    fig = plot.registration_overlay(eds.Zr_La, sims.Li6, transform=T, style="checkerboard", tiles=4)
    _check_png(_save(fig, tmp_path), (10, 4.5))
    rgb = np.asarray(fig.axes[1].images[0].get_array())
    assert rgb.shape == (24, 36, 3)
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])  # grey checkerboard


def test_registration_overlay_before_takes_the_moving_slice_at_the_fixed_depth():
    """Regression: a moving stack of fewer slices (SIMS on every other EDS slice) was drawn at its own middle
    slice, whatever the fixed slice shown; the slice at the same depth is the one to compare."""
    eds = _eds(nz=4)
    li = np.zeros((2, 24, 36))
    li[0, :, :18] = 100.0  # the SIMS slice at z = 60 nm: left half bright
    li[1, :, 18:] = 100.0  # the one at z = 180 nm: right half bright
    sims = pfs.stack({"Li6": li}, pixel_size="81.4 nm", z=["60 nm", "180 nm"])
    for k, bright in ((1, np.s_[:, :18]), (3, np.s_[:, 18:])):
        fig = plot.registration_overlay(eds.Zr_La, sims.Li6, after=eds.Zr_La, z=k)
        green = np.asarray(fig.axes[0].images[0].get_array())[..., 1]
        assert green[bright].min() == 1.0, k
        assert green.sum() == green[bright].sum(), k


def test_registration_overlay_errors():
    eds = _eds()
    with pytest.raises(PfibsimsError, match="style: expected 'redgreen' or 'checkerboard', got 'blend'"):
        plot.registration_overlay(eds.Zr_La, eds.Co_La, after=eds.Co_La, style="blend")
    with pytest.raises(PfibsimsError, match="tiles: expected a positive number"):
        plot.registration_overlay(eds.Zr_La, eds.Co_La, after=eds.Co_La, style="checkerboard", tiles=0)
    with pytest.raises(PfibsimsError, match="after, transform: expected"):
        plot.registration_overlay(eds.Zr_La, eds.Co_La)


# -- save_figures -------------------------------------------------------------------
def test_save_figures_writes_every_figure(tmp_path):
    pytest.importorskip("pfibsims.resampling").profile  # noqa: B018
    vol = _fused()
    paths = plot.save_figures(vol, tmp_path / "figs", raw={"eds": _eds(), "sims": _sims()}, dpi=DPI, render=False)
    assert sorted(paths) == ["element_maps", "histograms", "joint_histogram", "normalization", "orthoslices",
                             "registration"]  # volume_3d: tests/plot/test_scene.py
    for path in paths.values():
        assert path.is_file()
        assert path.parent == tmp_path / "figs"
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        assert rgb.std() > 0


def test_save_figures_leaves_the_cycle_collector_as_it_found_it(tmp_path):
    import gc

    vol = _eds()
    assert gc.get_freeze_count() == 0
    plot.save_figures(vol, tmp_path / "a", dpi=DPI, render=False)
    assert gc.get_freeze_count() == 0  # what it froze for its loop is given back
    gc.freeze()  # a caller's own freeze is left alone (not given back: a few of its objects may die meanwhile)
    try:
        plot.save_figures(vol, tmp_path / "b", dpi=DPI, render=False)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_save_figures_outlines_the_volumes_own_phases(tmp_path, monkeypatch):
    vol = _fused()
    phase = (vol.Zr_La > 20).astype(np.uint8).assign_attrs(flag_values=[0, 1], flag_meanings="matrix LLZTO")
    seen = {}
    real = plot.orthoslices

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(plot.gallery, "orthoslices", spy)
    plot.save_figures(vol.assign(phase=phase), tmp_path, dpi=DPI, render=False)
    assert seen["labels"].name == "phase"
    assert seen["channel"] == "Zr_La"


def test_save_figures_on_any_channels(tmp_path):
    # no Li6, no Zr_La: a volume of two EDS lines is drawn with them (issue 16)
    vol = _eds()
    paths = plot.save_figures(vol, tmp_path, dpi=DPI, render=False)
    assert {"histograms", "element_maps", "joint_histogram", "orthoslices"} <= set(paths)
    assert all(p.stat().st_size > 0 for p in paths.values())


def test_save_figures_draws_a_slice_with_sims_data_when_the_middle_has_none(tmp_path, monkeypatch):
    """Regression: with SIMS on every other EDS slice (39 slices: the middle one, 19, has none) the element
    maps and the registration overlay were drawn at the middle slice, all NaN: blank Li panels."""
    eds = _eds(nz=5)
    rng = np.random.default_rng(3)
    sims = pfs.stack({"Li6": 20.0 + rng.poisson(5.0, (2, 24, 36))}, pixel_size="81.4 nm", z=["60 nm", "180 nm"])
    with pytest.warns(pfs.CoverageWarning, match=r"eds slices \[0, 2, 4\] have no sims slice"):
        vol = pfs.fuse(eds, sims, register=None, drift=False)
    seen = {}

    def spy(name):
        real = getattr(plot.gallery, name)

        def drawn(*args, **kwargs):
            seen[name] = kwargs.get("z")
            return real(*args, **kwargs)
        return drawn

    for name in ("element_maps", "registration_overlay"):
        monkeypatch.setattr(plot.gallery, name, spy(name))
    plot.save_figures(vol, tmp_path, raw={"eds": eds, "sims": sims}, dpi=DPI, render=False)
    assert seen["element_maps"] in (1, 3)  # nearest the middle (2) among the slices with SIMS data
    assert seen["registration_overlay"] == seen["element_maps"]
    assert bool(vol.coverage.isel(z=seen["element_maps"]).any())
    plot.save_figures(vol, tmp_path, z=2, dpi=DPI, render=False)  # a slice asked for is drawn as asked


def test_save_figures_of_a_single_2d_map(tmp_path, monkeypatch):
    """Regression: a fused single map without a z dim (fuse gives one back for 2-D inputs) made save_figures
    fail: a raw KeyError 'z' in the 3-D figure, and 'expected a 3-D (z, y, x) volume' from the orthoslices."""
    eds, sims = _eds().isel(z=0, drop=True), _sims().isel(z=0, drop=True)
    vol = pfs.fuse(eds, sims, register=None, drift=False)
    assert "z" not in vol.dims
    phase = (vol.Zr_La > 20).astype(np.uint8).assign_attrs(flag_values=[0, 1], flag_meanings="matrix Zr")
    started = {}
    monkeypatch.setattr(plot.gallery, "have_renderer", lambda: True)  # the 3-D figure's inputs, without VTK
    monkeypatch.setattr(plot.gallery, "start_volume_3d", lambda v, **kw: started.update(v=v, **kw) or _NoScene())
    paths = plot.save_figures(vol.assign(phase=phase), tmp_path, raw={"eds": eds, "sims": sims}, dpi=DPI)
    assert {"element_maps", "orthoslices", "registration", "volume_3d"} <= set(paths)
    assert dict(started["v"].sizes) == {"z": 1, "y": 24, "x": 36}
    assert started["labels"].dims == ("z", "y", "x")


class _NoScene:
    def figure(self):
        from matplotlib.figure import Figure

        return Figure()

    def close(self):
        pass


def test_save_figures_errors(tmp_path):
    vol = _eds()
    with pytest.raises(PfibsimsError, match=r"a: expected a channel of the volume \['Zr_La', 'Co_La'\], got 'Li6'"):
        plot.save_figures(vol, tmp_path, a="Li6")
    with pytest.raises(PfibsimsError, match=r"ds: expected two data channels to correlate, found \['Zr_La'\]"):
        plot.save_figures(vol[["Zr_La"]], tmp_path)
    with pytest.raises(PfibsimsError, match="vol: expected a Dataset"):
        plot.save_figures(vol.Zr_La, tmp_path)
    with pytest.raises(PfibsimsError, match="raw: expected Datasets"):
        plot.save_figures(vol, tmp_path, a="Co_La", raw=[vol.Zr_La])


# -- the optional extra ---------------------------------------------------------------
def test_missing_matplotlib_says_which_extra_to_install():
    code = "import sys; sys.modules['matplotlib'] = None\nimport pfibsims.plot"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert "ImportError" in res.stderr
    assert "install pfibsims[plot]" in res.stderr


# -- on the phantom -------------------------------------------------------------------
def test_save_figures_on_the_phantom(tmp_path):
    eds, sims, truth = pfs.synthetic.cathode(seed=0, n_slices=4, eds_shape=(54, 88), sims_shape=(125, 125))
    T = pfs.Affine.from_attrs(truth.attrs)
    li = pfs.resample(sims, pfs.Grid.of(eds, dims=("y", "x")), transform=T, drift=truth.drift)
    vol = eds.assign(Li6=li.Li6)
    paths = plot.save_figures(vol, tmp_path, raw={"eds": eds, "sims": sims}, truth=truth, dpi=DPI, render=False)
    assert len(paths) == 6
    sizes = {"histograms": (9.6, 4.8), "element_maps": (13, 7), "joint_histogram": (6, 5), "orthoslices": (9, 7),
             "registration": (10, 4.5)}
    for name, size in sizes.items():
        _check_png(paths[name], size)
    # the faster zlib level loses nothing: the pixels and the resolution of Matplotlib's default encoding
    fig = plot.joint_histogram(vol.Li6, vol.Zr_La)
    fig.savefig(tmp_path / "default.png", dpi=DPI)
    with Image.open(paths["joint_histogram"]) as ours, Image.open(tmp_path / "default.png") as ref:
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(ref))
        assert ours.info["dpi"] == pytest.approx(ref.info["dpi"])
    # the overlay shows the registration: with the true Li map (EDS grid) in red, the SIMS Li in green
    # agrees far better after than before
    fig = plot.registration_overlay(truth.li, sims.Li6, after=vol.Li6)

    def agreement(ax):
        rgb = np.asarray(ax.images[0].get_array())
        return abs(np.corrcoef(rgb[..., 0].ravel(), rgb[..., 1].ravel())[0, 1])
    assert agreement(fig.axes[1]) > 0.8 > agreement(fig.axes[0]) + 0.2


def test_save_figures_when_a_normalisation_or_r_is_undefined(tmp_path, shared_data):
    """Regression: the real JEOL C K map of a 128 x 128 px field counts 0 or 1 a pixel (log normalisation
    needs a maximum above 1) and an element absent from the sample maps all zeros (min-max and Pearson r
    undefined): save_figures raised from the histograms, normalization and joint histogram figures, so
    `pfibsims report` wrote nothing. Every figure is drawn; a panel the data do not define says why."""
    maps = pfs.read_eds(sorted((shared_data / "eds" / "jeol_View000").glob("*.map")))
    c = maps.C_Ka.values[:, :128, :128].astype(np.float64)
    assert c.max() == 1
    assert c.sum() > 0
    li = np.random.default_rng(0).poisson(5.0, c.shape).astype(np.float64)
    vol = pfs.stack({"Li6": li, "C_Ka": c, "Cu_Ka": np.zeros_like(c)}, pixel_size="8.69 nm", modality="fused")
    expected = ["element_maps", "histograms", "joint_histogram", "normalization", "orthoslices"]
    for b in ("C_Ka", "Cu_Ka"):
        paths = plot.save_figures(vol, tmp_path / b, labels=None, a="Li6", b=b, dpi=DPI, render=False)
        assert sorted(paths) == expected
        assert all(p.stat().st_size > 0 for p in paths.values())
    fig = plot.histograms([vol.C_Ka, vol.Cu_Ka])
    text = lambda ax: " ".join(t.get_text() for t in ax.texts)  # noqa: E731
    assert "not defined" not in text(fig.axes[1])
    assert len(fig.axes[1].patches) > 0
    assert "x_max > 1" in text(fig.axes[2]).replace("\n", " ")  # log of 0/1 counts: why not
    assert fig.axes[3].patches[0].get_data()[0].sum() == c.size  # the raw histogram of zeros: every voxel, one bin
    assert "constant" in text(fig.axes[4])
    assert "x_max > 1" in text(fig.axes[5]).replace("\n", " ")
    assert "undefined (Cu_Ka: constant" in plot.joint_histogram(vol.Li6, vol.Cu_Ka).axes[0].get_title()
    norm = plot.normalization(vol.Cu_Ka)
    assert all("not defined" in text(ax) for ax in (norm.axes[1], norm.axes[2], norm.axes[4], norm.axes[5], norm.axes[6]))
