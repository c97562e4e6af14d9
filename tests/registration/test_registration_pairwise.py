"""pfibsims.registration.pairwise: register on hand-made scenes and on the phantom (truth known)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import scipy.ndimage as ndi
import xarray as xr
from conftest import raise_if_dask_computes
from scenes import CROSS_DRIFT, CROSS_T, field_errors, max_error, phantom, scene_pair, scene_stack
from stacks import drift_table, texture

import pfibsims.registration as reg
from pfibsims import Affine, Grid, Registration, stack
from pfibsims.errors import DataModelError, EstimationWarning, GridError, PfibsimsError, RegistrationError, UnitsError
from pfibsims.registration import levels, search


@pytest.mark.parametrize(("model", "truth"), [
    ("translation", Affine.translation((1130.0, 400.0))),
    ("rigid", Affine.from_parameters(rotation=2.2, shift=(900.0, 500.0), center=(2880, 3840))),
    ("similarity", Affine.from_parameters(rotation=-1.0, scale=1.03, shift=(700.0, 450.0), center=(2880, 3840))),
    ("affine", Affine.from_parameters(rotation=1.0, scale=(1.02, 0.99), shear=0.01, shift=(800, 400),
                                      center=(2880, 3840))),
])
def test_register_recovers_known_transforms(model, truth):
    moving, fixed = scene_pair(truth)
    r = reg.register(moving.Li6, fixed, model=model)
    assert isinstance(r, Registration)
    assert r.transform.dims == ("y", "x")
    assert type(r.transform) is Affine
    assert max_error(r.transform, truth, Grid.of(fixed, ("y", "x"))) < 0.25 * 80
    rep = r.report
    assert rep.success
    assert rep.model == model
    assert rep.metric == "mi"
    assert rep.search == "global"
    assert rep.metric_after > rep.metric_before
    assert rep.overlap > 0.9
    assert rep.iterations > 0
    assert rep.flags == ()
    assert rep.agreement[0] >= 3
    assert rep.agreement[1] == 4
    assert rep.candidates[0]["agreement"] == list(rep.agreement)
    assert "z-mean" in rep.reduced_view  # stack() gives a one-slice z
    assert "jittered" in rep.refinement
    json.dumps(rep.to_dict())
    assert r.slices == ()


@pytest.mark.parametrize("metric", ["ncc", "phase"])
def test_register_other_metrics(metric):
    truth = Affine.translation((640.0, -320.0))
    moving, fixed = scene_pair(truth, moving_fn=lambda m: 2 + 10 * m)  # linear relation
    r = reg.register(moving.Li6, fixed.Zr_La, model="translation", metric=metric)
    tol = 0.25 * 80 if metric == "ncc" else 80
    assert max_error(r.transform, truth, Grid.of(fixed, ("y", "x"))) < tol
    assert r.report.agreement == ((0, 0) if metric == "phase" else r.report.agreement)


def test_register_2d_maps():
    truth = Affine.translation((560.0, -240.0))
    moving, fixed = scene_pair(truth)
    r = reg.register(moving.Li6.isel(z=0), fixed.isel(z=0), model="translation")
    assert max_error(r.transform, truth, Grid.of(fixed, ("y", "x"))) < 0.25 * 80
    assert "the map" in r.report.reduced_view
    r2 = reg.register(moving.Li6.isel(z=0), fixed.Zr_La.isel(z=0), model="rigid", metric="ncc")
    assert max_error(r2.transform, truth, Grid.of(fixed, ("y", "x"))) < 0.5 * 80


def test_register_unrelated_images_fail_with_what_was_tried():
    moving, fixed = scene_pair(Affine.identity())
    noise = moving.Li6.copy(data=np.random.default_rng(5).poisson(20, moving.Li6.shape))
    with pytest.raises(RegistrationError, match=r"no significant placement after a global search \(11 angle") as info:
        reg.register(noise, fixed)
    rep = info.value.report
    assert rep.success is False
    assert "failed" in rep.flags
    assert rep.agreement[0] < 2
    assert len(rep.candidates) >= 2
    assert "best, moving the fixed field's centre by" in str(info.value)
    assert "tiles" in str(info.value)


def test_register_failure_gives_the_centre_shift_at_stage_coordinates():
    """Fields at stage coordinates (x = 12.5 mm): a rotated candidate's offset about the frame's origin is
    hundreds of um; the message gives the fixed field centre's displacement, checked against the candidate's
    transform rebuilt from its offset, rotation and scale."""
    moving, fixed = scene_pair(Affine.identity())
    noise = moving.Li6.copy(data=np.random.default_rng(5).poisson(20, moving.Li6.shape))
    def far(a):
        return a.assign_coords(x=a.x + 12.5e6, y=a.y - 3.2e6)
    with pytest.raises(RegistrationError, match="no significant placement") as info:
        reg.register(far(noise), far(fixed))
    grid = Grid.of(far(fixed), ("y", "x"))
    centre = np.asarray(grid.center)
    size = max(hi - lo for lo, hi in grid.extent)
    rotated = 0
    for c in info.value.report.candidates:
        T = Affine.translation(tuple(c["shift_nm"])) @ Affine.from_parameters(rotation=c["rotation_deg"], scale=c["scale"])
        np.testing.assert_allclose(c["centre_shift_nm"], T([centre])[0] - centre, atol=1e-6)
        assert np.hypot(*c["centre_shift_nm"]) < 2 * size  # the offset itself is ~rotation x 12.5 mm
        rotated += abs(c["rotation_deg"]) > 0.1 and np.hypot(*c["shift_nm"]) > 10 * size
    assert rotated  # a candidate whose offset about the origin would have misled
    best = info.value.report.candidates[0]
    assert f"centre by {np.round(best['centre_shift_nm'], 1).tolist()} nm" in str(info.value)


def test_register_warns_at_a_search_bound():
    # the true rotation (7 deg) is beyond the +/- 5 deg searched
    truth = Affine.from_parameters(rotation=7.0, center=(2880, 3840))
    moving, fixed = scene_pair(truth)
    with pytest.warns(EstimationWarning, match="at_bound"):
        r = reg.register(moving.Li6, fixed, model="rigid")
    assert "at_bound" in r.report.flags


def test_register_local_search_from_initial():
    truth = Affine.translation((1130.0, 400.0))
    moving, fixed = scene_pair(truth)
    start = Affine.translation((1000.0, 500.0))  # 1.6 fixed pixels off
    r = reg.register(moving.Li6, fixed, model="translation", initial=start)
    assert r.report.search == "local"
    assert max_error(r.transform, truth, Grid.of(fixed, ("y", "x"))) < 0.25 * 80
    assert json.loads(json.dumps(r.report.to_dict()))["agreement"] == list(r.report.agreement)  # plain ints
    r2 = reg.register(moving.Li6, fixed, model="translation", initial=start, search="global")
    assert r2.report.search == "global"
    assert max_error(r2.transform, truth, Grid.of(fixed, ("y", "x"))) < 0.25 * 80
    # a local search does not look beyond its reach: a start 2.5 um off finds nothing significant there
    with pytest.raises(RegistrationError, match="after a local search") as info:
        reg.register(moving.Li6, fixed, model="translation", initial=Affine.translation((-1400.0, -2100.0)))
    assert "search='global'" in str(info.value)  # advice that applies to a local search
    assert "give initial=" not in str(info.value)


def test_register_initial_on_z_y_x_that_keeps_z_is_the_in_plane_start():
    # a 3-D Affine that does not move z (Affine.embed of the in-plane one) is the same start; it was refused with
    # a message about a (2, 2) matrix (the check built a one-axis Affine). One that moves z is refused
    truth = Affine.translation((1130.0, 400.0))
    moving, fixed = scene_pair(truth)
    start = Affine.translation((1000.0, 500.0))
    r2 = reg.register(moving.Li6, fixed, model="translation", initial=start)
    r3 = reg.register(moving.Li6, fixed, model="translation", initial=start.embed(("z", "y", "x")))
    assert r3.transform.isclose(r2.transform)
    tilted = Affine(np.array([[1.0, 0, 0, 5.0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]), ("z", "y", "x"))
    with pytest.raises(PfibsimsError, match="moves z"):
        reg.register(moving.Li6, fixed, model="translation", initial=tilted @ start.embed(("z", "y", "x")))


def test_register_3d_z_mean_and_per_slice():
    truth = Affine.translation((480.0, 240.0))
    m2, f2 = scene_pair(truth)
    moving = stack({"Li6": np.stack([m2.Li6.values[0]] * 3)}, pixel_size="72 nm", slice_thickness="60 nm",
                   chunks={"z": 1})
    fixed = stack({k: np.stack([f2[k].values[0]] * 3) for k in f2.data_vars}, pixel_size="80 nm",
                  slice_thickness="60 nm", chunks={"z": 1})
    r = reg.register(moving.Li6, fixed, model="translation")
    assert "z-mean" in r.report.reduced_view
    rs = reg.register(moving, fixed, model="translation", per_slice=True)
    assert len(rs.slices) == 3
    assert all(s.report.success and s.report.search == "local" for s in rs.slices)
    for s in rs.slices:
        assert max_error(s.transform, truth, Grid.of(fixed, ("y", "x"))) < 0.25 * 80


def test_register_errors():
    moving, fixed = scene_pair(Affine.identity())
    with pytest.raises(PfibsimsError, match="model: expected one of"):
        reg.register(moving.Li6, fixed, model="elastic")
    with pytest.raises(PfibsimsError, match=r"model: expected one of .*, got \[\]"):
        reg.register(moving.Li6, fixed, model=[])  # was TypeError: unhashable type: 'list'
    with pytest.raises(PfibsimsError, match="metric: expected one of"):
        reg.register(moving.Li6, fixed, metric="mse")
    with pytest.raises(PfibsimsError, match="search: expected one of"):
        reg.register(moving.Li6, fixed, search="exhaustive")
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
    with pytest.raises(GridError, match="do not overlap"):
        reg.register(moving.Li6, fixed, initial=Affine.translation((1e6, 1e6)))
    with pytest.raises(PfibsimsError, match="initial: expected a pfibsims.Affine"):
        reg.register(moving.Li6, fixed, initial=np.eye(3))
    with pytest.raises(DataModelError, match="per_slice: expected 3-D"):
        reg.register(moving.Li6.isel(z=0), fixed.isel(z=0), per_slice=True)
    with pytest.raises(DataModelError, match="mask: expected a boolean DataArray with dims"):
        reg.register(moving.Li6, fixed, mask=np.ones((72, 96), bool))
    with pytest.raises(PfibsimsError, match="mask: expected booleans"):
        reg.register(moving.Li6, fixed, mask=fixed.Zr_La.isel(z=0).astype(float))


def test_register_computes_only_the_reduced_view():
    truth = Affine.translation((400.0, 160.0))
    m2, f2 = scene_pair(truth)
    moving = m2.chunk({"y": 32, "x": 32})
    fixed = f2.chunk({"y": 32, "x": 32})
    with raise_if_dask_computes(max_computes=1):
        r = reg.register(moving.Li6, fixed, model="translation")
    assert max_error(r.transform, truth, Grid.of(fixed, ("y", "x"))) < 20
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert r.report.to_dict()["success"] is True


def test_register_excludes_nan_outside_a_corrected_fixed_field():
    # e.g. EDS drift-corrected from SEM: NaN where the shifted field left the original one
    truth = Affine.from_parameters(rotation=1.0, shift=(600.0, 350.0), center=(2880, 3840))
    moving, fixed = scene_pair(truth)
    f = fixed.astype(float)
    for c in f.data_vars:
        v = f[c].values.copy()
        v[:, :10, :] = np.nan
        v[:, :, -15:] = np.nan
        f[c] = (f[c].dims, v, f[c].attrs)
    r = reg.register(moving.Li6, f)
    assert max_error(r.transform, truth, Grid.of(fixed, ("y", "x"))) < 0.25 * 80
    assert r.report.flags == ()


def test_register_masked_regions_as_scikit_image_masked_registration():
    # scikit-image's masked-registration cases: a real photograph, a translation, large invalid regions
    # (Padfield: 66-77 % of the pixels). Here 70 % of the fixed field is masked and a third of the moving
    # field is NaN; what remains still pins the shift.
    from skimage.data import camera

    img = ndi.zoom(camera().astype(float), 0.375, order=1)  # 192 x 192 (a quick test)
    shift = (-5.3, 9.2)
    moved = ndi.shift(img, shift, order=3, mode="nearest")  # moved(q) = img(q - shift)
    fixed = stack({"SE": img}, pixel_size="10 nm", modality="SEM")
    mov = moved.copy()
    mov[:, :64] = np.nan
    moving = stack({"SE": mov}, pixel_size="10 nm", modality="SEM").SE
    yy, xx = np.mgrid[:192, :192]
    keep = (yy - 105) ** 2 + (xx - 112) ** 2 < 58**2  # a disc: 29 % of the field
    mask = fixed.SE.isel(z=0).copy(data=keep)
    r = reg.register(moving, fixed, model="translation", mask=mask)
    truth = Affine.translation((shift[0] * 10, shift[1] * 10))
    assert max_error(r.transform, truth, Grid.of(fixed, ("y", "x"))) < 0.15 * 10
    # the mask is what makes it work: the masked-out region of the fixed image is replaced by another scene
    other = img.copy()
    other[~keep] = np.random.default_rng(0).permutation(img[~keep])
    r2 = reg.register(moving, stack({"SE": other}, pixel_size="10 nm", modality="SEM"), model="translation",
                      mask=mask)
    assert max_error(r2.transform, truth, Grid.of(fixed, ("y", "x"))) < 0.15 * 10


def test_register_with_drift():
    moving, fixed = scene_stack(CROSS_T, CROSS_DRIFT)
    r = reg.register(moving.Li6, fixed, model="rigid", drift=drift_table(CROSS_DRIFT))
    assert max_error(r.transform, CROSS_T, Grid.of(fixed, ("y", "x"))) < 0.25 * 80
    assert "drift-corrected" in r.report.reduced_view
    assert "ncc" not in r.report.refinement  # "mi": every stage maximises MI
    rn = reg.register(moving.Li6, fixed, model="rigid", metric="ncc", drift=drift_table(CROSS_DRIFT))
    assert rn.report.refinement.startswith("ncc at")
    assert max_error(rn.transform, CROSS_T, Grid.of(fixed, ("y", "x"))) < 0.25 * 80
    rs = reg.register(moving.Li6, fixed, model="translation", drift=drift_table(CROSS_DRIFT), per_slice=True)
    assert all(s.report.success for s in rs.slices)  # each slice's transform includes its drift
    p = [[2880.0, 3840.0]]
    assert np.linalg.norm(rs.slices[4].transform(p)[0] - CROSS_T(p)[0] - CROSS_DRIFT[4]) < 20
    with pytest.raises(DataModelError, match=r"drift: expected 3-D \(z, y, x\) data"):
        reg.register(moving.Li6.isel(z=0), fixed.isel(z=0), drift=drift_table(CROSS_DRIFT))


def test_register_matches_the_drift_rows_to_the_slices_by_depth():
    """drift= was taken by row position: a table in another order corrected each slice by another's drift."""
    big = [(0.0, 0.0), (700.0, -500.0), (1400.0, -1000.0), (-700.0, 900.0), (300.0, 1500.0)]
    moving, fixed = scene_stack(CROSS_T, big)
    table = drift_table(big).assign_coords(z=moving.z)
    r = reg.register(moving.Li6, fixed, model="rigid", drift=table.isel(z=[3, 0, 4, 1, 2]))
    assert max_error(r.transform, CROSS_T, Grid.of(fixed, ("y", "x"))) < 0.25 * 80
    ordered = reg.register(moving.Li6, fixed, model="rigid", drift=drift_table(big))
    np.testing.assert_array_equal(r.transform.matrix, ordered.transform.matrix)
    with pytest.raises(DataModelError, match=r"drift: expected a row for each z slice of moving \(z 0, 60, 120, 180, "
                                             r"240 nm\), found none at z 0, 60, 120, 180, 240 nm \(the table's z: "
                                             r"0.06, 0.12, 0.18, 0.24, 0.3 nm\)"):
        reg.register(moving.Li6, fixed, drift=table.assign_coords(z=("z", moving.z.values / 1000 + 0.06, {"units": "nm"})))


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "model", "scale_error"), [
    (0, "rigid", 0.0), (3, "similarity", 0.02),  # more seeds: benchmarks/bench_register.py
])
def test_register_phantom_accuracy(seed, model, scale_error):
    # The registration alone, its drift source removed: the true drift is given.
    eds, sims, truth = phantom(seed, 8, sims_scale_error=scale_error)
    T = Affine.from_attrs(truth.attrs)
    r = reg.register(sims.Li6, eds, model=model, drift=truth.drift)
    err = field_errors(r.transform, T, eds)
    assert err["centre"] <= 20.0, err
    assert err["corners"] <= 20.0, err
    assert err["rotation"] <= 0.05, err
    if model == "similarity":
        assert err["scale"] <= 0.002, err  # 0.2 %; with a 2 % wrong SIMS pixel size too
    assert r.report.flags == ()


@pytest.mark.slow
def test_register_phantom_rotation_does_not_hang_on_the_draw_of_the_jittered_samples(monkeypatch):
    # 12-slice phantom, seed 1, true drift. With one jittered point a fixed pixel (and the z-mean), draws 0-3 of
    # the positions put the MI rotation at +0.024, -0.006, -0.007, +0.005 deg off and the worst field corner at
    # 22.7, 12.5, 12.8, 11.7 nm; with 2 x 2 cells a pixel (and the means of 2 groups of 6 slices) at +0.014,
    # +0.011, +0.021, +0.025 deg and 9.8-14.0 nm (benchmarks/README.md, issue 22).
    eds, sims, truth = phantom(1, 12)
    T = Affine.from_attrs(truth.attrs)
    rotations = []
    for draw in range(4):
        monkeypatch.setattr(levels, "JITTER_SEED", draw)
        r = reg.register(sims.Li6, eds, model="rigid", drift=truth.drift)
        assert field_errors(r.transform, T, eds)["corners"] <= 16.0, draw
        rotations.append(r.transform.decompose()["rotation"] - T.decompose()["rotation"])
    assert np.ptp(rotations) <= 0.02, rotations


def test_register_phantom_noise_fails():
    eds, sims, _ = phantom(1, 1)
    counts = np.random.default_rng(0).poisson(float(sims.Li6.mean()), sims.Li6.shape).astype(float)
    for data in (counts, ndi.gaussian_filter(counts, (0, 3, 3))):  # white and smoothed noise
        with pytest.raises(RegistrationError, match="no significant placement") as info:
            reg.register(sims.Li6.copy(data=data), eds, model="rigid")
        assert info.value.report.agreement[0] < 2
        assert "failed" in info.value.report.flags


def test_reduced_view_holds_the_means_of_groups_of_slices():
    from pfibsims.registration.pairwise import slice_groups
    from pfibsims.registration.views import reduced_view

    drifts = [(7.0 * k, -4.0 * k) for k in range(14)]
    moving, fixed = scene_stack(CROSS_T, drifts)
    groups = slice_groups(14)
    assert [len(g) for g in groups] == [5, 5, 4]
    assert slice_groups(6) is None
    view = reduced_view(moving.Li6, fixed, groups=groups)
    assert len(view.groups) == 3
    assert "means of 3 groups of 4-5 slices" in view.description
    m = moving.Li6.transpose("z", "y", "x").values.astype(float)
    f = np.stack([fixed[c].transpose("z", "y", "x").values.astype(float) for c in fixed.data_vars])
    for g, (gm, gf) in zip(groups, view.groups, strict=True):
        np.testing.assert_allclose(gm, m[g].mean(0))
        np.testing.assert_allclose(gf, f[:, g].mean(1))
    np.testing.assert_allclose(view.moving, m.mean(0))
    # drift-corrected: the groups are of the same corrected slices as the z-mean (no NaN here: the size-weighted
    # mean of the group means is the z-mean)
    small = [(0.0, 0.0)] * 14
    dv = reduced_view(moving.Li6, fixed, groups=groups, drift=np.asarray(small))
    np.testing.assert_allclose(sum(len(g) * gm for g, (gm, _) in zip(groups, dv.groups, strict=True)) / 14,
                               dv.moving, rtol=1e-6)
    # a slice, not a stack: no groups
    assert reduced_view(moving.Li6, fixed, z=3, groups=groups).groups == []



def test_a_small_view_is_reduced_in_memory_as_the_graph_reduces_it(monkeypatch):
    """A view of at most IN_MEMORY_VALUES values is reduced with numpy (no graph of small tasks); the same
    means as the dask path, drift-corrected (NaN where a slice leaves the field) and by groups."""
    from pfibsims.registration import views
    from pfibsims.registration.pairwise import slice_groups

    drifts = [(7.0 * k, -4.0 * k) for k in range(14)]
    moving, fixed = scene_stack(CROSS_T, drifts)
    moving, fixed = moving.chunk({"z": 1}), fixed.chunk({"z": 1})
    groups = slice_groups(14)
    drift = np.asarray(drifts) * 1.3  # off the truth: the shifted slices leave the field (NaN there)
    assert moving.Li6.size + sum(c.size for c in fixed.data_vars.values()) <= views.IN_MEMORY_VALUES
    with raise_if_dask_computes(max_computes=1):
        small = views.reduced_view(moving.Li6, fixed, drift=drift, groups=groups)
    monkeypatch.setattr(views, "IN_MEMORY_VALUES", 0)
    graph = views.reduced_view(moving.Li6, fixed, drift=drift, groups=groups)
    assert np.isnan(graph.moving).any() or np.isnan(graph.groups[-1][0]).any()
    np.testing.assert_allclose(small.moving, graph.moving, rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(small.fixed, graph.fixed, rtol=1e-12)
    for (sm, sf), (gm, gf) in zip(small.groups, graph.groups, strict=True):
        np.testing.assert_allclose(sm, gm, rtol=1e-6, equal_nan=True)
        np.testing.assert_allclose(sf, gf, rtol=1e-12)
    assert small.description == graph.description


def test_a_grouped_view_reads_its_stacks_in_chunks_of_a_group():
    import dask.array as da

    from pfibsims.registration.pairwise import slice_groups
    from pfibsims.registration.views import _group_chunks

    groups = slice_groups(14)  # 5, 5, 4
    stack = da.zeros((14, 8, 8), chunks=(1, 8, 8))
    assert _group_chunks(stack, groups).chunks[0] == (5, 5, 4)  # a group's mean: one task over one chunk
    arr = xr.DataArray(stack, dims=("z", "y", "x"))
    assert _group_chunks(arr, groups).chunks[0] == (5, 5, 4)
    assert _group_chunks(arr.compute(), groups).chunks is None  # in memory: left as it is
    shuffled = [groups[1], groups[0], groups[2]]  # not consecutive runs in order: left as it is
    assert _group_chunks(stack, shuffled).chunks[0] == (1,) * 14


def test_register_refines_a_deep_stack_on_groups_of_slices():
    drifts = [(0.0, 0.0)] * 8
    moving, fixed = scene_stack(CROSS_T, drifts)
    r = reg.register(moving.Li6, fixed, model="rigid")
    assert max_error(r.transform, CROSS_T, Grid.of(fixed, ("y", "x"))) < 0.25 * 80
    assert "pooled over the means of 2 groups of slices" in r.report.refinement
    assert "means of 2 groups of 4 slices" in r.report.reduced_view


@pytest.mark.parametrize("corner", [(20, 150), (110, 5)])
def test_register_a_moving_field_smaller_than_the_fixed_one(corner):
    # a moving field of a sixth of the fixed field, near one of its corners, another contrast and Poisson noise:
    # the search reaches the whole fixed field and the tiles are the quarters of the part it covers (before,
    # no translation "overlapped a quarter of the fixed field" and register refused)
    big = texture((200, 260), 5, sigma=2.0)
    fixed = stack({"SE": big}, pixel_size="10 nm", modality="SEM")
    s = np.array([23.0, -17.0])  # nm: the moving frame's point of a fixed point p is p + s
    y0, x0 = corner
    crop = big[y0:y0 + 80, x0:x0 + 105]
    lam = 4.0 + 30.0 * np.sin(2.5 * (crop - crop.min()) / np.ptp(crop)) ** 2
    origin = np.array([fixed.y.values[y0], fixed.x.values[x0]]) + s
    moving = stack({"Li6": np.random.default_rng(1).poisson(lam).astype(float)}, pixel_size="10 nm",
                   origin=tuple(f"{float(o)!r} nm" for o in origin), modality="SIMS")
    r = reg.register(moving.Li6, fixed, model="rigid")
    # over the part of the fixed field the moving field covers (its rotation, 0.1 deg at most, is fitted there)
    assert max_error(r.transform, Affine.translation(tuple(s)), Grid.of(moving, ("y", "x"))) < 0.25 * 10
    assert r.report.agreement[0] >= 3
    assert r.report.overlap < 0.2
    assert search.coverable(levels.make_level(moving.Li6.values[0], Grid.of(moving, ("y", "x")), big[None],
                                              Grid.of(fixed, ("y", "x")), 10.0)) == pytest.approx(80 * 105 / (200 * 260))


def test_images_stored_top_down_register_and_drift_as_their_positions():
    """Images whose y (or x) runs high -> low (rows stored top down under a stage y growing upwards) were refused
    ('expected increasing coordinates'); register and estimate_drift now read them at their own positions: the
    same transform and drift as the sorted images, to the bit (a positional mask flipped with its image)."""
    rng = np.random.default_rng(0)
    scene = ndi.gaussian_filter(rng.random((160, 160)), 3)
    fixed = stack({"Zr_La": scene[30:126, 20:116]}, pixel_size="80 nm")
    moving = stack({"Li6": np.exp(-8 * scene)}, pixel_size="80 nm")
    want = reg.register(moving.Li6, fixed, model="translation").transform
    np.testing.assert_allclose(want.offset / 80, [30.0, 20.0], atol=0.05)  # the truth, by construction
    mask = xr.zeros_like(fixed.Zr_La.isel(z=0), dtype=bool)
    mask[10:80, 5:90] = True
    masked = reg.register(moving.Li6, fixed, model="translation", mask=mask).transform
    for flip in (("y",), ("x",), ("y", "x")):
        down = {d: slice(None, None, -1) for d in flip}
        got = reg.register(moving.Li6.isel(down), fixed.isel(down), model="translation").transform
        np.testing.assert_array_equal(got.matrix, want.matrix)
        got = reg.register(moving.Li6, fixed.isel(down), model="translation", mask=mask.isel(down)).transform
        np.testing.assert_array_equal(got.matrix, masked.matrix)
    drifts = [(0.0, 0.0), (144.0, -72.0), (216.0, 72.0)]
    slices = [ndi.shift(scene, np.array(d) / 80, order=1, mode="nearest") for d in drifts]
    st = stack({"Li6": slices}, pixel_size="80 nm", slice_thickness="60 nm")
    ref = reg.estimate_drift(st.Li6, reference="first", trend="keep")  # kept: the truth's drift is a trend
    got = reg.estimate_drift(st.Li6.isel(y=slice(None, None, -1)), reference="first", trend="keep")
    np.testing.assert_array_equal(got.values, ref.values)
    np.testing.assert_allclose(ref.sel(component=["y", "x"]).values, drifts, atol=4.0)


def test_non_xarray_inputs_are_named_not_flipped():
    """The top-down check (``ascending``) met a numpy array before register's own check: an AttributeError
    (found by the API fuzz test); the array is now named as before."""
    with pytest.raises(DataModelError, match="moving: expected an xarray DataArray or Dataset, got ndarray"):
        reg.register(np.ones((8, 8)), np.ones((8, 8)))
    fixed = stack({"Zr_La": np.ones((8, 8))}, pixel_size="80 nm")
    with pytest.raises(DataModelError, match="fixed: expected an xarray DataArray or Dataset"):
        reg.register(fixed.Zr_La, np.ones((8, 8)))
