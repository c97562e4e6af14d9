"""Tests of pfibsims.registration (drift, registration) and its metric/search modules."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.ndimage as ndi
from conftest import raise_if_dask_computes
from stacks import drift_table as _drift
from stacks import shifted_stack, texture

import pfibsims.registration as reg
from pfibsims import Affine, Grid, stack
from pfibsims.dataset import history
from pfibsims.errors import DataModelError, EstimationWarning, GridError, PfibsimsError, RegistrationError, UnitsError
from pfibsims.registration.metrics import bin_edges, fixed_labels, mi_surface, multiple_correlation, mutual_information
from pfibsims.resampling import slice_transforms

CHUNKINGS = [None, -1, {"z": 1, "y": 24, "x": 24}]






# --------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------
def test_mutual_information_related_and_unrelated():
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 5, 20000)
    m = np.exp(lab) + 0.2 * rng.standard_normal(lab.size)  # nonlinear, not monotone-linear
    edges = bin_edges(m, 16)
    assert mutual_information(m, lab, edges, 5) > 1.2  # close to log(5) = 1.61
    assert abs(mutual_information(rng.permutation(m), lab, edges, 5)) < 0.005


def test_multiple_correlation_predicts_from_several_channels():
    rng = np.random.default_rng(1)
    x = rng.random((500, 3))
    y = 2 * x[:, 0] - x[:, 2] + 0.5
    assert multiple_correlation(y, x) == pytest.approx(1.0)
    assert multiple_correlation(rng.random(500), x) < 0.2


def test_fixed_labels_single_channel_quantiles_and_kmeans():
    img = np.repeat(np.arange(8.0)[None], 4, axis=0)
    lab = fixed_labels(img[None], np.ones(img.shape, bool), n_labels=4)
    assert np.array_equal(lab[0], [0, 0, 1, 1, 2, 2, 3, 3])
    two = np.stack([np.r_[np.zeros(50), np.ones(50)].reshape(10, 10), np.r_[np.ones(50), np.zeros(50)].reshape(10, 10)])
    valid = np.ones((10, 10), bool)
    valid[0, 0] = False
    lab = fixed_labels(two, valid, n_labels=2)
    assert lab[0, 0] == -1
    assert len(np.unique(lab[valid])) == 2


def test_mi_surface_matches_direct_hard_binned_mi():
    rng = np.random.default_rng(2)
    canvas = texture((40, 50), 3)
    labels = fixed_labels(canvas[10:30, 5:35][None], np.ones((20, 30), bool), n_labels=4)
    edges = bin_edges(canvas, 8)
    mi, count = mi_surface(canvas, np.ones(canvas.shape, bool), labels, edges, 4)
    assert mi.shape == (21, 21)
    assert np.unravel_index(np.argmax(mi), mi.shape) == (10, 5)
    # direct hard-binned MI at one placement
    i, j = 3, 7
    m = canvas[i : i + 20, j : j + 30].ravel()
    mb = np.clip(np.searchsorted(edges, m, side="right") - 1, 0, 7)
    joint = np.zeros((4, 8))
    np.add.at(joint, (labels.ravel(), mb), 1)
    p = joint / joint.sum()
    pl, pm = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    direct = (p[nz] * np.log(p[nz] / (pl @ pm)[nz])).sum() - ((pl > 0).sum() - 1) * ((pm > 0).sum() - 1) / (2 * 600)
    assert count[i, j] == 600
    assert mi[i, j] == pytest.approx(direct, abs=1e-9)
    del rng


# --------------------------------------------------------------------------
# estimate_drift
# --------------------------------------------------------------------------
SHIFTS = [(0.0, 0.0), (0.4, -0.7), (1.1, -1.2), (1.5, -0.3), (2.6, 0.2), (3.0, 1.4)]


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("reference", ["previous", "first", "mean"])
def test_estimate_drift_recovers_known_subpixel_shifts(chunks, reference):
    ds = shifted_stack(SHIFTS, chunks=chunks)
    with raise_if_dask_computes(max_computes=1):
        d = reg.estimate_drift(ds.Li6, reference=reference)
    truth = np.asarray(SHIFTS) * 72.0
    est = d.sel(component=["y", "x"]).values
    if reference == "mean":  # relative to the mean frame: compare up to a common offset
        est = est - est[0]
    assert d.dims == ("z", "component")
    assert d.attrs["units"] == "nm"
    assert np.sqrt(((est - truth) ** 2).sum(1).mean()) < 0.1 * 72
    assert np.all((d.quality >= 0) & (d.quality <= 1))
    assert d.quality.min() > 0.8
    assert not d.outlier.any()
    assert history(d)[-1]["step"] == "estimate_drift"
    assert np.array_equal(d.z.values, ds.z.values)


def test_estimate_drift_with_image_reference_and_roi():
    ds = shifted_stack(SHIFTS[:3])
    ref = ds.Li6.isel(z=0)
    d = reg.estimate_drift(ds.Li6, reference=ref, roi={"y": ("0.5 um", "4 um")})
    assert np.allclose(d.values, np.asarray(SHIFTS[:3]) * 72, atol=15)


def test_estimate_drift_flags_an_outlier_slice():
    ds = shifted_stack(SHIFTS + [(3.2, 1.5), (3.5, 1.6)])
    bad = ds.Li6.values.copy()
    bad[4] = np.random.default_rng(9).poisson(50, bad[4].shape)  # an unrelated slice
    ds = ds.assign(Li6=(("z", "y", "x"), bad, ds.Li6.attrs))
    with pytest.warns(EstimationWarning, match=r"slices \[.*4.*\] look like outliers"):
        d = reg.estimate_drift(ds.Li6)
    assert bool(d.outlier[4])


def test_estimate_drift_errors():
    ds = shifted_stack(SHIFTS[:2])
    with pytest.raises(DataModelError, match=r"da: expected dims \('z', 'y', 'x'\)"):
        reg.estimate_drift(ds.Li6.isel(z=0))
    with pytest.raises(PfibsimsError, match="reference: expected one of"):
        reg.estimate_drift(ds.Li6, reference="last")
    with pytest.raises(PfibsimsError, match="upsample: expected a whole number from 1 to 1000"):
        reg.estimate_drift(ds.Li6, upsample=0)
    with pytest.raises(PfibsimsError, match="roi: expected a mapping"):
        reg.estimate_drift(ds.Li6, roi=("1 um", "2 um"))
    with pytest.raises(DataModelError, match="reference: expected a 2-D"):
        reg.estimate_drift(ds.Li6, reference=ds.Li6.isel(z=0, x=slice(0, 10)))
    with pytest.raises(PfibsimsError, match="transform: a 3-D reference needs the reference-to-da transform"):
        reg.estimate_drift(ds.Li6, reference=ds.Li6)
    with pytest.raises(PfibsimsError, match="transform, initial: expected only with a 3-D"):
        reg.estimate_drift(ds.Li6, transform=Affine.identity())
    with pytest.raises(DataModelError, match="da: expected a DataArray"):
        reg.estimate_drift(ds.assign(Li7=ds.Li6))












# --------------------------------------------------------------------------
# register on hand-made images
# --------------------------------------------------------------------------
def _scene_sampler(seed):
    big = Grid((400, 400), 30.0, origin=(-2000.0, -2000.0))
    field = texture(big.shape, seed, sigma=6)
    phase = (field > np.median(field)).astype(float)

    def sample(points):
        return ndi.map_coordinates(phase, np.moveaxis(big.to_index(points), -1, 0), order=1)

    return sample


def _points(grid):
    return np.stack(np.meshgrid(*grid.coords().values(), indexing="ij"), -1)


def scene_pair(T, *, seed=0, fixed_shape=(72, 96), moving_shape=(110, 110), fs=80.0, ms=72.0, counts=40.0,
               moving_fn=None):
    """A fixed (two channels) and moving map of one random two-phase scene; moving(T(p)) shows fixed(p)."""
    rng = np.random.default_rng(seed + 10)
    sample = _scene_sampler(seed)
    fg, mg = Grid(fixed_shape, fs), Grid(moving_shape, ms)
    f = sample(_points(fg))
    m = sample(T.inverse()(_points(mg)))
    m = moving_fn(m) if moving_fn else 3.0 + 10.0 * (1 - m) ** 2  # Li high where the fixed phase is low
    fixed = stack({"Zr_La": rng.poisson(counts * f + 2), "Co_La": rng.poisson(counts * (1 - f) + 2)},
                  pixel_size=f"{fs} nm")
    moving = stack({"Li6": rng.poisson(counts / 4 * m)}, pixel_size=f"{ms} nm")
    return moving, fixed


def scene_stack(T, drifts, *, seed=0, fs=80.0, ms=72.0, counts=40.0, chunks=None):
    """A (z, y, x) fixed stack (two channels, no drift) and a moving stack whose slice k shows the
    fixed point p at T(p) + drifts[k] (the phantom's contract)."""
    rng = np.random.default_rng(seed + 20)
    sample = _scene_sampler(seed)
    fg, mg = Grid((72, 96), fs), Grid((110, 110), ms)
    f = sample(_points(fg))
    inv = T.inverse()
    m = np.stack([3.0 + 10.0 * (1 - sample(inv(_points(mg) - np.asarray(d)))) ** 2 for d in drifts])
    nz = len(drifts)
    fixed = stack({"Zr_La": rng.poisson(counts * np.stack([f] * nz) + 2),
                   "Co_La": rng.poisson(counts * (1 - np.stack([f] * nz)) + 2)},
                  pixel_size=f"{fs} nm", slice_thickness="60 nm", chunks=chunks)
    moving = stack({"Li6": rng.poisson(counts / 4 * m)}, pixel_size=f"{ms} nm", slice_thickness="60 nm",
                   chunks=chunks)
    return moving, fixed


def max_error(T1, T2, grid):
    pts = np.stack(np.meshgrid(*grid.coords().values(), indexing="ij"), -1)
    return float(np.linalg.norm(T1(pts) - T2(pts), axis=-1).max())


@pytest.mark.parametrize(("model", "truth"), [
    ("translation", Affine.translation((1130.0, 400.0))),
    ("rigid", Affine.from_parameters(rotation=2.2, shift=(900.0, 500.0), center=(2880, 3840))),
    ("similarity", Affine.from_parameters(rotation=-1.0, scale=1.03, shift=(700.0, 450.0), center=(2880, 3840))),
    ("affine", Affine.from_parameters(rotation=1.0, scale=(1.02, 0.99), shear=0.01, shift=(800, 400),
                                      center=(2880, 3840))),
])
def test_register_recovers_known_transforms(model, truth):
    moving, fixed = scene_pair(truth)
    T = reg.register(moving.Li6, fixed, model=model)
    assert isinstance(T, Affine)
    assert T.dims == ("y", "x")
    assert max_error(T, truth, Grid.of(fixed, ("y", "x"))) < 0.25 * 80
    rep = T.report
    assert rep
    assert rep.success
    assert rep.model == model
    assert rep.metric == "mi"
    assert rep.metric_after > rep.metric_before
    assert rep.overlap > 0.9
    assert rep.iterations > 0
    assert rep.flags == ()
    assert rep.zscore > 20
    assert "z-mean" in rep.reduced_view  # stack() gives a one-slice z
    import json

    json.dumps(rep.to_dict())


@pytest.mark.parametrize("metric", ["ncc", "phase"])
def test_register_other_metrics(metric):
    truth = Affine.translation((640.0, -320.0))
    moving, fixed = scene_pair(truth, moving_fn=lambda m: 2 + 10 * m)  # linear relation
    T = reg.register(moving.Li6, fixed.Zr_La, model="translation", metric=metric)
    tol = 0.25 * 80 if metric == "ncc" else 80
    assert max_error(T, truth, Grid.of(fixed, ("y", "x"))) < tol


def test_register_unrelated_images_fail():
    truth = Affine.translation((0.0, 0.0))
    moving, fixed = scene_pair(truth)
    noise = moving.assign(Li6=(("z", "y", "x"), np.random.default_rng(5).poisson(20, moving.Li6.shape),
                               moving.Li6.attrs))
    with pytest.raises(RegistrationError, match="no significant optimum") as info:
        reg.register(noise.Li6, fixed)
    assert info.value.report.success is False
    assert "failed" in info.value.report.flags


def test_register_warns_at_a_search_bound():
    # the true rotation (7 deg) is beyond the +/- 5 deg searched
    truth = Affine.from_parameters(rotation=7.0, center=(2880, 3840))
    moving, fixed = scene_pair(truth)
    with pytest.warns(EstimationWarning, match="at_bound"):
        T = reg.register(moving.Li6, fixed, model="rigid")
    assert "at_bound" in T.report.flags


def test_register_3d_z_mean_and_per_slice():
    truth = Affine.translation((480.0, 240.0))
    m2, f2 = scene_pair(truth)
    moving = stack({"Li6": np.stack([m2.Li6.values[0]] * 3)}, pixel_size="72 nm", slice_thickness="60 nm",
                   chunks={"z": 1})
    fixed = stack({k: np.stack([f2[k].values[0]] * 3) for k in f2.data_vars}, pixel_size="80 nm",
                  slice_thickness="60 nm", chunks={"z": 1})
    T = reg.register(moving.Li6, fixed, model="translation")
    assert "z-mean" in T.report.reduced_view
    Ts = reg.register(moving, fixed, model="translation", per_slice=True)
    assert len(Ts) == 3
    assert all(t.report.success for t in Ts)
    for t in Ts:
        assert max_error(t, truth, Grid.of(fixed, ("y", "x"))) < 0.25 * 80


def test_register_errors():
    truth = Affine.translation((0.0, 0.0))
    moving, fixed = scene_pair(truth)
    with pytest.raises(PfibsimsError, match="model: expected one of"):
        reg.register(moving.Li6, fixed, model="elastic")
    with pytest.raises(PfibsimsError, match="metric: expected one of"):
        reg.register(moving.Li6, fixed, metric="mse")
    with pytest.raises(PfibsimsError, match="'phase' estimates a translation only"):
        reg.register(moving.Li6, fixed, model="rigid", metric="phase")
    with pytest.raises(DataModelError, match="expected both 2-D .* or both 3-D"):
        reg.register(moving.Li6, fixed.isel(z=0))
    three = stack({"Zr_La": np.ones((3, 8, 8))}, pixel_size="80 nm", slice_thickness="60 nm")
    two = stack({"Li6": np.ones((2, 8, 8))}, pixel_size="80 nm", slice_thickness="60 nm")
    with pytest.raises(DataModelError, match="same number of slices, got 2 and 3"):
        reg.register(two.Li6, three)
    bad = moving.Li6.assign_coords(x=moving.x.assign_attrs(units="counts"))
    with pytest.raises(UnitsError, match="moving: "):
        reg.register(bad, fixed)
    far = Affine.translation((1e6, 1e6))
    with pytest.raises(GridError, match="do not overlap"):
        reg.register(moving.Li6, fixed, initial=far)
    with pytest.raises(PfibsimsError, match="initial: expected a pfibsims.Affine"):
        reg.register(moving.Li6, fixed, initial=np.eye(3))
    with pytest.raises(DataModelError, match="per_slice: expected 3-D"):
        reg.register(moving.Li6.isel(z=0), fixed.isel(z=0), per_slice=True)


def test_register_computes_only_the_reduced_view():
    truth = Affine.translation((400.0, 160.0))
    m2, f2 = scene_pair(truth)
    moving = m2.chunk({"y": 32, "x": 32})
    fixed = f2.chunk({"y": 32, "x": 32})
    with raise_if_dask_computes(max_computes=1):
        T = reg.register(moving.Li6, fixed, model="translation")
    assert max_error(T, truth, Grid.of(fixed, ("y", "x"))) < 20
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert T.report.to_dict()["success"] is True






CROSS_T = Affine.from_parameters(rotation=1.2, shift=(600.0, 350.0), center=(2880, 3840))
CROSS_DRIFT = [(0.0, 0.0), (35.0, -20.0), (80.0, -10.0), (60.0, 45.0), (130.0, 70.0)]


@pytest.mark.parametrize("chunks", [None, {"z": 1, "y": 36, "x": 48}])
def test_estimate_drift_cross_modal_recovers_known_drift(chunks):
    moving, fixed = scene_stack(CROSS_T, CROSS_DRIFT, chunks=chunks)
    with raise_if_dask_computes(max_computes=1):
        d = reg.estimate_drift(moving.Li6, reference=fixed, transform=CROSS_T)
    err = d.values - np.asarray(CROSS_DRIFT)
    assert np.sqrt((err**2).sum(1).mean()) < 0.1 * 80  # sub-pixel: a tenth of a fixed pixel
    assert d.quality.min() > 0.8
    assert not d.outlier.any()
    rec = history(d)[-1]
    assert rec["step"] == "estimate_drift"
    assert rec["params"]["reference"] == "cross-modal"
    # a starting drift, a single reference channel and a window of the reference also work
    d1 = reg.estimate_drift(moving.Li6, reference=fixed.Zr_La, transform=CROSS_T, initial=d,
                            roi={"y": ("0.5 um", "5 um"), "x": ("1 um", "7 um")})
    assert np.abs(d1.values - np.asarray(CROSS_DRIFT)).max() < 0.25 * 80


def test_estimate_drift_cross_modal_flags_a_bad_slice_and_errors():
    moving, fixed = scene_stack(CROSS_T, CROSS_DRIFT + [(140.0, 60.0), (150.0, 40.0)])
    bad = moving.Li6.values.copy()
    bad[3] = np.random.default_rng(4).poisson(bad.mean(), bad[3].shape)
    moving = moving.assign(Li6=(("z", "y", "x"), bad, moving.Li6.attrs))
    with pytest.warns(EstimationWarning, match=r"slices \[3\] look like outliers"):
        d = reg.estimate_drift(moving.Li6, reference=fixed, transform=CROSS_T)
    assert d.outlier.values.tolist() == [False, False, False, True, False, False, False]
    with pytest.raises(DataModelError, match="reference: expected 7 slices"):
        reg.estimate_drift(moving.Li6, reference=fixed.isel(z=[0, 1]), transform=CROSS_T)
    with pytest.raises(DataModelError, match="drift: expected 7 slices"):
        reg.estimate_drift(moving.Li6, reference=fixed, transform=CROSS_T, initial=_drift([[0, 0]]))


def test_register_with_drift_uses_raw_slices():
    moving, fixed = scene_stack(CROSS_T, CROSS_DRIFT)
    T = reg.register(moving.Li6, fixed, model="rigid", drift=_drift(CROSS_DRIFT))
    assert max_error(T, CROSS_T, Grid.of(fixed, ("y", "x"))) < 0.25 * 80
    assert "drift-corrected" in T.report.reduced_view
    assert T.report.refinement.startswith("ncc")
    assert "each through its drift" in T.report.refinement
    Ts = reg.register(moving.Li6, fixed, model="translation", drift=_drift(CROSS_DRIFT), per_slice=True)
    for t in Ts:  # each slice's transform includes its drift
        assert t.report.success
    assert np.linalg.norm(Ts[4]([[2880.0, 3840.0]])[0] - CROSS_T([[2880.0, 3840.0]])[0] - CROSS_DRIFT[4]) < 20
    with pytest.raises(DataModelError, match=r"drift: expected 3-D \(z, y, x\) data"):
        reg.register(moving.Li6.isel(z=0), fixed.isel(z=0), drift=_drift(CROSS_DRIFT))


# --------------------------------------------------------------------------
# accuracy on the phantom (pfibsims.synthetic.cathode), default dose and field
# --------------------------------------------------------------------------
# Errors are measured as displacements of the estimated against the true
# transform at the EDS field centre and at its four corners (the largest).
EDS_PX = 81.4


def field_errors(Te, T, eds):
    ys, xs = eds.y.values, eds.x.values
    pts = np.array([[ys.mean(), xs.mean()], [ys[0], xs[0]], [ys[0], xs[-1]], [ys[-1], xs[0]], [ys[-1], xs[-1]]])
    e = np.linalg.norm(Te(pts) - T(pts), axis=1)
    de, dt = Te.decompose(), T.decompose()
    return {"centre": e[0], "corners": e[1:].max(), "rotation": abs(de["rotation"] - dt["rotation"]),
            "scale": abs(de["scale"][0] / dt["scale"][0] - 1)}


def phantom(seed, n_slices, **kw):
    from pfibsims.synthetic import cathode

    eds, sims, truth = cathode(seed=seed, n_slices=n_slices, **kw)
    return eds.persist(), sims.persist(), truth


@pytest.mark.parametrize(("seed", "model", "scale_error"), [
    (0, "rigid", 0.0), (1, "similarity", 0.0), (2, "rigid", 0.0), (3, "similarity", 0.02),
])
def test_register_phantom_accuracy(seed, model, scale_error):
    # The registration alone, its drift source removed: the true drift is given
    # (the slice count does not matter to it: 8 slices, the final refinement uses 6).
    eds, sims, truth = phantom(seed, 8, sims_scale_error=scale_error)
    T = Affine.from_attrs(truth.attrs)
    Te = reg.register(sims.Li6, eds, model=model, drift=truth.drift)
    err = field_errors(Te, T, eds)
    assert err["centre"] <= 20.0, err
    assert err["corners"] <= 20.0, err
    assert err["rotation"] <= 0.05, err
    if model == "similarity":
        assert err["scale"] <= 0.002, err  # 0.2 %; with a 2 % wrong SIMS pixel size too
    assert Te.report.flags == ()


def test_drift_pipeline_phantom_39_slices():
    # The fusion chain without truth: slice-to-slice drift, registration of the
    # roughly corrected stack, then the cross-modal drift against the EDS slices.
    # A smaller in-plane field than the default (160 x 256 EDS px, 360 x 360 SIMS px) keeps it fast.
    eds, sims, truth = phantom(0, 39, eds_shape=(160, 256), sims_shape=(360, 360))
    T = Affine.from_attrs(truth.attrs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EstimationWarning)
        rough = reg.estimate_drift(sims.Li6)
    T0 = reg.register(sims.Li6, eds, model="rigid", drift=rough)
    d = reg.estimate_drift(sims.Li6, reference=eds, transform=T0, initial=rough)
    # drift relative to slice 0 (the truth's convention), RMS over the 39 slices
    rel = d.values - d.values[0]
    rms = np.sqrt(((rel - truth.drift.values) ** 2).sum(1).mean())
    assert rms <= 0.25 * EDS_PX, rms
    # what fusion uses: each slice's composite transform, at the field centre and corners
    Tk = slice_transforms(T0, d)
    Tt = slice_transforms(T, truth.drift)
    worst = max(max(field_errors(a, b, eds)["centre"], field_errors(a, b, eds)["corners"]) for a, b in zip(Tk, Tt, strict=True))
    assert worst <= 0.25 * EDS_PX, worst
    assert not d.outlier.any()
    # the slice-to-slice estimate accumulates error along the stack: the cross-modal one is far better
    rough_rms = np.sqrt(((rough.values - truth.drift.values) ** 2).sum(1).mean())
    assert rough_rms > 2 * rms


def test_register_phantom_noise_fails():
    eds, sims, truth = phantom(1, 1)
    counts = np.random.default_rng(0).poisson(float(sims.Li6.mean()), sims.Li6.shape).astype(float)
    for data in (counts, ndi.gaussian_filter(counts, (0, 3, 3))):  # white and smoothed noise
        with pytest.raises(RegistrationError, match="no significant optimum") as info:
            reg.register(sims.Li6.copy(data=data), eds, model="rigid")
        assert info.value.report.zscore < 10
        assert "failed" in info.value.report.flags


def test_register_ignores_nan_outside_a_corrected_fixed_field():
    # e.g. EDS drift-corrected from SEM: NaN where the shifted field left the original one
    truth = Affine.from_parameters(rotation=1.0, shift=(600.0, 350.0), center=(2880, 3840))
    moving, fixed = scene_pair(truth)
    f = fixed.astype(float)
    for c in f.data_vars:
        v = f[c].values.copy()
        v[:, :10, :] = np.nan
        v[:, :, -15:] = np.nan
        f[c] = (f[c].dims, v, f[c].attrs)
    T = reg.register(moving.Li6, f)
    assert max_error(T, truth, Grid.of(fixed, ("y", "x"))) < 0.25 * 80
    assert T.report.flags == ()
