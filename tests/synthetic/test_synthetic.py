"""Tests of pfibsims.synthetic: the cathode phantom honours its truth contract."""

from __future__ import annotations

import hashlib
import json

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from scipy import ndimage, special, stats
from skimage.registration import phase_cross_correlation

from pfibsims import Affine, PfibsimsError, UnitsError
from pfibsims.dataset import history, validate
from pfibsims.synthetic import EDS_COUNTS, LI7_RATIO, SIMS_COUNTS, blocks, cathode
from pfibsims.synthetic.noise import EXACT_MAX, poisson_counts, poisson_from_uniform, stream_key, uniform
from pfibsims.synthetic.particles import (
    LI_LEVELS,
    Lattice,
    expected_fractions,
    make_particles,
    query,
    render,
)

SMALL = {"n_slices": 3, "eds_shape": (64, 96), "sims_shape": (128, 128)}


def _raise_if_computes(*args, **kwargs):
    raise AssertionError("the library computed a dask graph while building")


def _values(ds: xr.Dataset) -> dict[str, np.ndarray]:
    return {k: np.asarray(v.values) for k, v in ds.data_vars.items()}


@pytest.fixture(scope="module")
def small():
    """The small phantom, computed (numpy) once."""
    return tuple(ds.compute() for ds in cathode(seed=0, **SMALL))


@pytest.fixture(scope="module")
def default():
    """The default phantom, computed once."""
    return tuple(ds.compute() for ds in cathode(seed=0))


# -- the data model -------------------------------------------------------------
def test_build_is_lazy():
    with dask.config.set(scheduler=_raise_if_computes):
        eds, sims, truth = cathode(seed=0)
    for ds in (eds, sims):
        assert all(isinstance(v.data, da.Array) for v in ds.data_vars.values())
    assert isinstance(truth.phase.data, da.Array)
    assert isinstance(truth.li.data, da.Array)


def test_default_structure():
    eds, sims, truth = cathode(seed=0)
    assert dict(eds.sizes) == {"z": 39, "y": 216, "x": 352}
    assert dict(sims.sizes) == {"z": 39, "y": 500, "x": 500}
    assert list(eds.data_vars) == ["Zr_La", "Co_La", "Al_Ka", "C_Ka"]
    assert list(sims.data_vars) == ["Li6"]
    assert eds.attrs["modality"] == "EDS"
    assert sims.attrs["modality"] == "SIMS"
    validate(eds), validate(sims)
    np.testing.assert_allclose(eds.x.values[:2], [40.7, 122.1])
    np.testing.assert_allclose(sims.x.values[:2], [36.0, 108.0])
    np.testing.assert_array_equal(eds.z.values, sims.z.values)
    np.testing.assert_allclose(eds.z.values, 60.0 * np.arange(39))
    assert eds.Zr_La.dtype == np.uint16
    assert eds.Zr_La.attrs["element"] == "Zr"
    assert sims.Li6.attrs["isotope"] == "6Li"
    assert truth.phase.dtype == np.uint8
    assert truth.li.dtype == np.float32
    assert truth.phase.attrs["flag_values"].tolist() == [0, 1, 2, 3, 4]
    assert truth.phase.attrs["flag_meanings"] == "matrix LLZTO LCO Al2O3 SP"
    assert truth.phase.attrs["units"] == "1"  # labels, as classify_phases gives them: save and to_hyperspy take it
    assert truth.drift.dims == ("z", "component")
    assert list(truth.component.values) == ["y", "x"]
    np.testing.assert_array_equal(truth.drift.values[0], [0.0, 0.0])
    assert truth.particle_center.dims == ("particle", "axis")
    assert list(truth.axis.values) == ["z", "y", "x"]
    assert truth.particle_radius.dims == ("particle", "axis")
    T = Affine.from_attrs(truth.attrs)
    assert abs(T.decompose()["rotation"] - 1.5) < 1e-9
    assert truth.attrs["depletion_depth"] == "300 nm"
    assert truth.attrs["true_sims_pixel_size"] == "72 nm"
    assert set(json.loads(truth.attrs["volume_fractions"])) == {"matrix", "LLZTO", "LCO", "Al2O3", "SP"}
    assert json.loads(truth.attrs["eds_counts"])["Zr_La"] == list(EDS_COUNTS["Zr_La"])
    assert json.loads(truth.attrs["sims_counts"])["Li6"] == dict(zip(("background", "gain"), SIMS_COUNTS["Li6"], strict=False))
    for ds in (eds, sims, truth):
        assert history(ds)[-1]["step"] == "synthetic.cathode"


def test_results_quantify():
    for ds in cathode(seed=0, **SMALL):
        q = ds.pint.quantify()
        assert str(q.x.data.units) == "nanometer"


def test_counts_are_low_dose(default):
    eds, sims, _ = default
    for name in EDS_COUNTS:
        assert 0 < eds[name].mean() < 30
        assert eds[name].max() < 100
    assert sims.Li6.max() < 200


def test_options_li7_bse_scale_error():
    eds, sims, truth = cathode(seed=1, li7=True, bse=True, sims_scale_error=0.05, **SMALL)
    assert list(sims.data_vars) == ["Li6", "Li7"]
    assert sims.Li7.attrs["isotope"] == "7Li"
    assert "BSE" in eds
    assert eds.BSE.attrs["detector"] == "BSE"
    li6, li7 = sims.Li6.values.astype(float), sims.Li7.values.astype(float)
    ratio = (li7.mean() - 5.0) / (li6.mean() - SIMS_COUNTS["Li6"][0])
    assert abs(ratio / LI7_RATIO - 1) < 0.03
    assert truth.attrs["true_sims_pixel_size"] == "75.6 nm"
    np.testing.assert_allclose(Affine.from_attrs(truth.attrs).decompose()["scale"], [1 / 1.05] * 2)


# -- determinism and chunking ----------------------------------------------------
def test_same_seed_same_data(small):
    again = [ds.compute() for ds in cathode(seed=0, **SMALL)]
    other = cathode(seed=1, **SMALL)[0].compute()
    for a, b in zip(small, again, strict=False):
        for k, v in _values(a).items():
            np.testing.assert_array_equal(v, b[k].values)
    assert not np.array_equal(small[0].Zr_La.values, other.Zr_La.values)


@pytest.mark.parametrize("chunks", [(3, -1, -1), (2, 17, 23), {"y": 32, "x": 48}, 40])
def test_chunkings_give_identical_arrays(small, chunks):
    lazy = cathode(seed=0, chunks=chunks, **SMALL)
    for ref, ds in zip(small, lazy, strict=False):
        for k, v in _values(ds.compute()).items():
            np.testing.assert_array_equal(v, ref[k].values, err_msg=f"{k} with chunks={chunks}")


def test_a_chunk_alone_equals_the_region_of_the_whole(small):
    eds, sims, truth = cathode(seed=0, chunks=(1, 16, 16), **SMALL)
    np.testing.assert_array_equal(eds.Co_La.data.blocks[1, 2, 3].compute(), small[0].Co_La.values[1:2, 32:48, 48:64])
    np.testing.assert_array_equal(sims.Li6.data.blocks[2, 7, 0].compute(), small[1].Li6.values[2:3, 112:128, 0:16])
    np.testing.assert_array_equal(truth.li[0, 5:9, 90:96].values, small[2].li.values[0, 5:9, 90:96])


def test_runs_on_distributed(small, dask_client):
    eds, sims, _ = cathode(seed=0, **SMALL)
    zr, li6 = dask_client.compute([eds.Zr_La, sims.Li6], sync=True)
    np.testing.assert_array_equal(zr.values, small[0].Zr_La.values)
    np.testing.assert_array_equal(li6.values, small[1].Li6.values)


# -- microstructure truth ----------------------------------------------------------
def _phase_brute_force(truth: xr.Dataset, k: int) -> np.ndarray:
    """Phase at voxel centres from the particle table alone (independent of the renderer)."""
    z = float(truth.z[k])
    yy, xx = np.meshgrid(truth.y.values, truth.x.values, indexing="ij")
    c, r = truth.particle_center.values, truth.particle_radius.values
    t, ph = truth.particle_coating.values, truth.particle_phase.values

    def inside(semi: np.ndarray) -> np.ndarray:
        near = np.abs(z - c[:, 0]) < semi[:, 0]
        q = sum(((p[..., None] - c[near, a]) / semi[near, a]) ** 2 for a, p in ((1, yy), (2, xx)))
        q = q + ((z - c[near, 0]) / semi[near, 0]) ** 2
        out = np.zeros((ph.size,) + yy.shape, dtype=bool)
        out[near] = np.moveaxis(q <= 1.0, -1, 0)
        return out

    core, coated = inside(r), inside(r + t[:, None])
    phase = np.zeros(yy.shape, dtype=np.uint8)
    phase[(core & (ph == 4)[:, None, None]).any(0)] = 4
    phase[(coated & (ph == 2)[:, None, None]).any(0)] = 3
    phase[(core & (ph == 2)[:, None, None]).any(0)] = 2
    phase[(core & (ph == 1)[:, None, None]).any(0)] = 1
    return phase


def test_phase_follows_the_particle_table(small, default):
    truth = small[2]
    for k in (0, 2):
        np.testing.assert_array_equal(truth.phase.values[k], _phase_brute_force(truth, k))
    part = default[2].isel(y=slice(100, 160), x=slice(200, 290))
    np.testing.assert_array_equal(part.phase.values[20], _phase_brute_force(part, 20))
    assert set(np.unique(default[2].phase.values).tolist()) == {0, 1, 2, 3, 4}


@pytest.mark.parametrize(
    "fractions", [None, {"LLZTO": 0.2, "LCO": 0.4, "SP": 0.1}], ids=["default", "custom"]
)
def test_volume_fractions_match(fractions):
    truth = cathode(seed=2, n_slices=1, eds_shape=(1500, 1500), sims_shape=(8, 8), volume_fractions=fractions)[2]
    phase = truth.phase[0].values
    want = json.loads(truth.attrs["volume_fractions"])
    assert want == expected_fractions(fractions)
    for label, name in enumerate(truth.phase.attrs["flag_meanings"].split()):
        assert abs((phase == label).mean() - want[name]) < 0.04, name


def test_expected_fractions_sum_to_one():
    f = expected_fractions(None)
    assert abs(sum(f.values()) - 1) < 1e-12
    assert f["LLZTO"] == 0.35
    assert 0.02 < f["Al2O3"] < 0.1


def test_li_truth_levels(default):
    _, _, truth = default
    phase, li = truth.phase.values, truth.li.values
    assert np.all(li[phase == 0] == np.float32(LI_LEVELS["matrix"]))
    assert np.all(li[phase == 4] == np.float32(LI_LEVELS["SP"]))
    lco = li[phase == 2]
    assert lco.mean() > 0.8
    assert lco.std() > 0.1
    llzto = li[phase == 1]
    assert llzto.min() < 0.25
    assert llzto.max() == pytest.approx(LI_LEVELS["LLZTO_bulk"])


def test_depletion_ramp_of_a_sphere():
    p = make_particles([1], [[0.0, 0.0, 0.0]], [[2000.0, 2000.0, 2000.0]])
    x = 10.0 * np.arange(250)  # along +x through the centre, nm
    lat = Lattice((0.0, 0.0), (10.0, 0.0), (0.0, 10.0), 0, 1, 0, 250)
    phase, li = render(p, query(p, (0, 0, -10, 10, 0, 2500)), 0.0, lat, depletion_depth=300.0)
    inside = x <= 2000
    np.testing.assert_array_equal(phase[0], np.where(inside, 1, 0))
    s, b = LI_LEVELS["LLZTO_surface"], LI_LEVELS["LLZTO_bulk"]
    want = np.where(inside, s + (b - s) * np.minimum((2000 - x) / 300.0, 1.0), LI_LEVELS["matrix"])
    np.testing.assert_allclose(li[0], want, atol=1e-9)


def test_cores_beat_coatings_and_coatings_beat_carbon():
    # LCO A (core r 1000, coat 100) at x=0; LCO B at x=1950, its coat over A's core; SP under A's coat.
    p = make_particles(
        [2, 2, 4],
        [[0, 0, 0], [0, 0, 1950.0], [0, 0, -1500.0]],
        [[1000.0] * 3, [1000.0] * 3, [450.0] * 3],
        coat=[100.0, 100.0, 0.0],
    )
    x = np.array([-1900.0, -1050.0, -990.0, 900.0, 3000.0, 2000.0])
    got = []
    for xi in x:
        lat = Lattice((0.0, xi), (1.0, 0.0), (0.0, 1.0), 0, 1, 0, 1)
        got.append(int(render(p, query(p, (0, 0, -1, 1, xi - 1, xi + 1)), 0.0, lat, depletion_depth=300.0)[0][0, 0]))
    # SP alone, A's coat over SP, A's core, B's coat over A's core is still A's core, B's coat, B's core
    assert got == [4, 3, 2, 2, 3, 2]


# -- the SIMS frame ----------------------------------------------------------------
def _li_seen_by_sims(truth: xr.Dataset, sims: xr.Dataset, k: int, *, drift: bool = True) -> np.ndarray:
    """Truth Li pulled to the SIMS grid with scipy through q = T(p) + drift[k] (independent path)."""
    T = Affine.from_attrs(truth.attrs)
    qy, qx = np.meshgrid(sims.y.values, sims.x.values, indexing="ij")
    q = np.stack([qy, qx], -1) - (truth.drift.values[k] if drift else 0.0)
    p = T.inverse()(q)
    iy = (p[..., 0] - float(truth.y[0])) / float(truth.y[1] - truth.y[0])
    ix = (p[..., 1] - float(truth.x[0])) / float(truth.x[1] - truth.x[0])
    return ndimage.map_coordinates(truth.li.values[k].astype(float), [iy, ix], order=1, cval=np.nan)


def test_sims_frame_maps_through_the_affine_and_drift():
    eds, sims, truth = (ds.compute() for ds in cathode(seed=4, n_slices=8, drift_step="80 nm", sims_dose=10.0))
    k = int(np.argmax(np.hypot(*truth.drift.values.T)))
    drift_px = truth.drift.values[k] / 72.0
    assert np.hypot(*drift_px) > 1.5
    seen = sims.Li6.values[k].astype(float)

    def offset(pred: np.ndarray) -> np.ndarray:
        ok = np.isfinite(pred)
        rows, cols = np.flatnonzero(ok.any(1)), np.flatnonzero(ok.any(0))
        win = (slice(rows[0] + 16, rows[-1] - 16), slice(cols[0] + 16, cols[-1] - 16))
        assert ok[win].all()
        assert pred[win].size > 40_000
        assert stats.pearsonr(pred[win].ravel(), seen[win].ravel())[0] > 0.75
        return phase_cross_correlation(pred[win], seen[win], upsample_factor=20)[0]

    np.testing.assert_allclose(offset(_li_seen_by_sims(truth, sims, k)), 0.0, atol=0.25)
    # Without the drift, the map is off by the drift: the SIMS map must move by -drift to match.
    np.testing.assert_allclose(offset(_li_seen_by_sims(truth, sims, k, drift=False)), -drift_px, atol=0.3)


def test_fields_overlap_partly():
    eds, sims, truth = cathode(seed=0)
    T = Affine.from_attrs(truth.attrs)
    corners = np.array([[y, x] for y in eds.y.values[[0, -1]] for x in eds.x.values[[0, -1]]])
    q = T(corners)
    inside = (q[:, 0] > 0) & (q[:, 0] < 36000) & (q[:, 1] > 0) & (q[:, 1] < 36000)
    assert 0 < inside.sum() < 4


# -- noise --------------------------------------------------------------------
def test_poisson_statistics_in_a_flat_region(default):
    eds, _, truth = default
    flat = ndimage.binary_erosion(truth.phase.values == 1, structure=np.ones((1, 9, 9)))
    zr = eds.Zr_La.values[flat].astype(float)
    assert zr.size > 5000
    lam = EDS_COUNTS["Zr_La"][1]
    assert abs(zr.mean() - lam) < 4 * np.sqrt(lam / zr.size)
    assert abs(zr.var() / lam - 1) < 4 * np.sqrt(2 / zr.size) + 0.01


@pytest.mark.parametrize("lam", [0.0, 0.3, 3.0, 17.5, EXACT_MAX])
def test_poisson_inversion_is_the_exact_quantile(lam):
    u = uniform(stream_key(0, 1), np.arange(20000))
    got = poisson_from_uniform(u, np.full(u.shape, lam))
    np.testing.assert_array_equal(got, stats.poisson.ppf(u, lam) if lam else 0.0)


def test_poisson_normal_regime_mean_and_variance():
    u = uniform(stream_key(0, 2), np.arange(200_000))
    got = poisson_from_uniform(u, np.full(u.shape, 400.0))
    assert abs(got.mean() - 400) < 0.3
    assert abs(got.var() / 400 - 1) < 0.02


def test_uniform_is_uniform_and_keyed():
    u = uniform(stream_key(3, 6, 0), np.arange(100_000))
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert np.corrcoef(u[:-1], u[1:])[0, 1] < 0.02
    assert not np.array_equal(u[:10], uniform(stream_key(3, 6, 1), np.arange(10)))


def _poisson_reference(u: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """The vectorised numpy inversion the compiled one replaced (same float operations)."""
    u, lam = np.asarray(u, np.float64).ravel(), np.asarray(lam, np.float64).ravel()
    out = np.zeros(u.shape)
    big = lam > EXACT_MAX
    out[big] = np.maximum(0.0, np.floor(lam[big] + np.sqrt(lam[big]) * special.ndtri(u[big]) + 0.5))
    sel = np.flatnonzero(~big & (lam > 0))
    if sel.size:
        uu, ll = u[sel], lam[sel]
        p = np.exp(-ll)
        cdf, cnt = p.copy(), np.zeros(sel.size)
        top = float(ll.max())
        for k in range(1, int(top + 8.0 * np.sqrt(top) + 20.0)):
            cnt += uu > cdf
            p *= ll
            p /= k
            cdf += p
        out[sel] = cnt
    return out


@pytest.mark.parametrize("start", [(0, 0, 0), (2, 7, 13)])
def test_compiled_poisson_equals_the_vectorised_reference(start):
    rng = np.random.default_rng(5)
    lam = rng.choice([0.0, 0.2, 3.0, 17.5, 39.9, EXACT_MAX, 41.0, 400.0], (3, 9, 21)) * rng.uniform(0.9, 1.0, (3, 9, 21))
    lam[0, 0, :4] = (0.0, EXACT_MAX, np.nan, -1000.0)
    shape = (6, 20, 40)
    k, i, j = np.meshgrid(*(np.arange(s, s + n) for s, n in zip(start, lam.shape, strict=True)), indexing="ij")
    u = uniform(11, (k * shape[1] + i) * shape[2] + j)
    want = _poisson_reference(u, lam).reshape(lam.shape)
    np.testing.assert_array_equal(poisson_from_uniform(u, lam), want)
    for dtype in (np.float32, np.float64):
        got = poisson_counts(lam.astype(dtype), 11, start, shape, np.uint16)
        ref = _poisson_reference(u, lam.astype(dtype)).reshape(lam.shape).astype(np.uint16)
        assert got.dtype == np.uint16
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize(("sigma", "halo"), [(100 / 81.4, 5), (80 / 72, 4), (2.7, 11), (0.1, 0), (0.0, 3)])
def test_blur_is_scipys_gaussian_filter_cropped(sigma, halo):
    a = np.random.default_rng(3).integers(0, 5, (40 + 2 * halo, 57 + 2 * halo)) * 7.3
    crop = (slice(halo, a.shape[0] - halo), slice(halo, a.shape[1] - halo))
    want = ndimage.gaussian_filter(a, sigma, mode="nearest", radius=halo)[crop] if sigma else a[crop]
    np.testing.assert_array_equal(blocks._blur(a, sigma, halo), want)
    out = np.empty((40, 57), np.float32)
    blocks._blur(a, sigma, halo, out=out)
    np.testing.assert_array_equal(out, want.astype(np.float32))


# -- exact values: checksums computed before the compiled kernels replaced numpy ----
def _digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return hashlib.sha256(a.dtype.str.encode() + str(a.shape).encode() + a.tobytes()).hexdigest()[:16]


def _digests(datasets) -> dict[str, str]:
    return {
        f"{ds.attrs['modality']}.{k}": _digest(v.values)
        for ds in datasets for k, v in ds.data_vars.items() if v.ndim == 3
    }


PINNED = {
    "small": {
        "EDS.Zr_La": "0e7f105e8af69ad0", "EDS.Co_La": "f01f42d3220a0729", "EDS.Al_Ka": "366a16597d3161d2",
        "EDS.C_Ka": "1b80d9c61e997464", "SIMS.Li6": "3566c5ef42f1ca83", "truth.phase": "03f698c302ee5372",
        "truth.li": "7d4f655ff0338f14", "truth.li_percent": "7c33d93f7e37dc9f",
    },
    "options": {
        "EDS.Zr_La": "5fc396295dafaffc", "EDS.Co_La": "13e52383a51ed615", "EDS.Al_Ka": "719446cdc6806d5a",
        "EDS.C_Ka": "f2e85c2e418ffafc", "EDS.BSE": "6a5c9e74bf19aae2", "SIMS.Li6": "c0c4dc82429825e1",
        "SIMS.Li7": "781d03fe7e6fc614", "truth.phase": "ba11a512407f6dd7", "truth.li": "521ac5cbbe956a92",
        "truth.li_percent": "fc3e0796e7393199",
    },
    "default": {
        "EDS.Zr_La": "6523aec49409d322", "EDS.Co_La": "057a81a62fb346e9", "EDS.Al_Ka": "f048cf27a2984ef6",
        "EDS.C_Ka": "5815154bde00a2ad", "SIMS.Li6": "5e45648ddd97aeac", "truth.phase": "58bbede89b09091d",
        "truth.li": "8d28278fd34ee83e", "truth.li_percent": "c56fabf041572b79",
    },
}


def test_values_are_pinned(small, default):
    """Every map of three phantoms, bit for bit as the numpy implementation drew them."""
    assert _digests(small) == PINNED["small"]
    assert _digests(default) == PINNED["default"]
    options = cathode(seed=1, li7=True, bse=True, sims_scale_error=0.05, supersample=2, **SMALL)
    assert _digests(ds.compute() for ds in options) == PINNED["options"]


# -- scale ----------------------------------------------------------------------
def test_700um_field_is_lazy_and_any_block_computes_alone():
    with dask.config.set(scheduler=_raise_if_computes):
        eds, sims, truth = cathode(seed=0, n_slices=2, field="700 um", chunks=(1, 256, 256))
    assert dict(eds.sizes) == {"z": 2, "y": 8600, "x": 8600}
    assert dict(sims.sizes) == {"z": 2, "y": 9722, "x": 9722}
    block = eds.Zr_La.data.blocks[1, 20, 30].compute()
    assert block.shape == (1, 256, 256)
    assert block.sum() > 0
    bigger = cathode(seed=0, n_slices=2, field="700 um", chunks=(1, 512, 512))[0].Zr_La.data.blocks[1, 10, 15].compute()
    np.testing.assert_array_equal(block, bigger[:, :256, :256])
    # pinned before the compiled kernels replaced numpy
    assert _digest(block) == "7a6aa029f44e232a"
    assert _digest(sims.Li6.data.blocks[1, 20, 30].compute()) == "ecedaad8bebe7d2b"


# -- errors ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"field": "700 um", "eds_shape": (10, 10)}, PfibsimsError, "field: expected either field or eds_shape"),
        ({"field": "700 nA"}, UnitsError, "field: expected a length"),
        ({"field": "-3 um"}, PfibsimsError, "field: expected a positive length"),
        ({"n_slices": 0}, PfibsimsError, "n_slices: expected a positive integer"),
        ({"seed": -1}, PfibsimsError, "seed: expected a non-negative integer"),
        ({"eds_shape": (10,)}, PfibsimsError, r"eds_shape: expected \(ny, nx\)"),
        ({"sims_shape": (10, 0)}, PfibsimsError, r"sims_shape: expected \(ny, nx\)"),
        ({"volume_fractions": {"LLZO": 0.3}}, PfibsimsError, "volume_fractions: expected keys among"),
        ({"volume_fractions": {"LLZTO": 1.2}}, PfibsimsError, r"volume_fractions\['LLZTO'\]: expected a fraction"),
        ({"volume_fractions": {"LLZTO": 0.5, "LCO": 0.5}}, PfibsimsError, "expected LLZTO \\+ LCO < 1"),
        ({"volume_fractions": {"SP": 0.6}}, PfibsimsError, "volume_fractions: expected SP <"),
        ({"volume_fractions": [0.3]}, PfibsimsError, "volume_fractions: expected a dict"),
        ({"chunks": {"t": 3}}, PfibsimsError, "chunks: expected keys among"),
        ({"chunks": (1, 2)}, PfibsimsError, "chunks: expected dask chunks"),
        ({"sims_scale_error": 0.7}, PfibsimsError, "sims_scale_error: expected a number between"),
        ({"sims_rotation": "3 nm"}, UnitsError, "sims_rotation"),
        ({"depletion_depth": "-1 nm"}, PfibsimsError, "depletion_depth: expected a non-negative length"),
        ({"supersample": 0}, PfibsimsError, "supersample: expected an integer from 1 to 8"),
        ({"eds_dose": 0}, PfibsimsError, "eds_dose: expected a number between"),
    ],
)
def test_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        cathode(**{**SMALL, **kwargs} if "field" not in kwargs else kwargs)


# -- the matrix effect: SIMS yield separate from the Li concentration ---------------------------
def test_li_concentration_truth_and_yield(small):
    _, sims, truth = small
    lab, li, pct = truth.phase.values, truth.li.values, truth.li_percent.values
    assert truth.li_percent.attrs["units"] == "percent"
    bulk = 100 * 6.4 / 23.4  # Li6.4La3Zr1.4Ta0.6O12: 6.4 Li of 23.4 atoms
    assert pct[lab == 1].max() == pytest.approx(bulk, rel=1e-6)
    assert pct[lab == 1].min() >= bulk * 0.15 / 0.55 - 1e-4  # the depleted surface
    np.testing.assert_allclose(pct[lab == 0], 5.0, rtol=1e-6)
    np.testing.assert_allclose(pct[lab == 4], 0.5, rtol=1e-6)
    # LCO (LiCoO2, 25 at. %) varies from particle to particle; its signal per at. % is about twice LLZTO's
    yields = json.loads(truth.attrs["sims_yield"])
    np.testing.assert_allclose(li[lab == 2] / pct[lab == 2], yields["LCO"], rtol=1e-6)
    np.testing.assert_allclose(li[lab == 1] / pct[lab == 1], yields["LLZTO"], rtol=1e-6)
    assert yields["LCO"] / yields["LLZTO"] == pytest.approx((1.0 / 25.0) / (0.55 / bulk), rel=1e-6)  # 1.99
    assert truth.attrs["sims_blur"] == "80 nm"
    # the default levels are yield x concentration
    levels = json.loads(truth.attrs["li_levels"])
    assert levels["LLZTO_surface"] == pytest.approx(yields["LLZTO"] * json.loads(truth.attrs["li_percent"])["LLZTO_surface"])


def test_sims_yield_changes_the_signal_not_the_concentration(small):
    _, sims0, truth0 = small
    same = dict.fromkeys(("matrix", "LLZTO", "LCO", "Al2O3", "SP"), 0.04)
    _, sims, truth = (ds.compute() for ds in cathode(seed=0, sims_yield=same, **SMALL))
    np.testing.assert_array_equal(truth.phase.values, truth0.phase.values)
    np.testing.assert_allclose(truth.li_percent.values, truth0.li_percent.values, rtol=1e-6)
    # with one yield for all phases the signal is proportional to the concentration
    np.testing.assert_allclose(truth.li.values, 0.04 * truth.li_percent.values, rtol=1e-5)
    assert sims.Li6.values.mean() > sims0.Li6.values.mean()  # LLZTO (and carbon) yield changed
    with pytest.raises(PfibsimsError, match="sims_yield: expected a mapping from phases among"):
        cathode(sims_yield={"NMC": 1.0}, **SMALL)
    with pytest.raises(PfibsimsError, match=r"sims_yield\['LCO'\]: expected a positive number"):
        cathode(sims_yield={"LCO": 0}, **SMALL)
