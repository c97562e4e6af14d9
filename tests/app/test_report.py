import json

import numpy as np
import pytest
import xarray as xr

import pfibsims as pfs
from pfibsims.app.report import drift_error, measure, registration_error, write_report


def test_registration_error_by_hand():
    g = pfs.Grid((100, 200), "10 nm", origin=(5, 5))  # extent 0..1000 x 0..2000 nm
    e = registration_error(pfs.Affine.from_parameters(rotation=0.1), pfs.Affine.identity(), g)
    # a rotation about the origin moves the field centre (500, 1000) by |c| * 2 sin(theta / 2)
    c = np.hypot(500, 1000)
    assert e["translation_nm"] == pytest.approx(c * 2 * np.sin(np.radians(0.05)))
    assert e["max_error_nm"] == pytest.approx(np.hypot(1000, 2000) * 2 * np.sin(np.radians(0.05)))
    assert e["rotation_deg"] == pytest.approx(0.1)
    s = registration_error(pfs.Affine.from_parameters(scale=1.002), pfs.Affine.identity(), g)
    assert s["scale_rel"] == pytest.approx(0.002)


def test_drift_error_by_hand():
    t = xr.DataArray([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]], dims=("z", "component"), coords={"component": ["y", "x"]})
    e = drift_error(np.zeros((3, 2)), t)
    assert e == {"rms_nm": pytest.approx(np.sqrt((25 + 100) / 3)), "max_nm": 10.0}


@pytest.fixture(scope="module")
def fused():
    eds, sims, truth = pfs.synthetic.cathode(seed=2, n_slices=4, eds_shape=(96, 128), sims_shape=(180, 180))
    vol = pfs.fuse(eds, sims, register=pfs.Affine.from_attrs(truth.attrs), drift=truth.drift)
    return vol.compute(), truth.compute(), {"eds": eds, "sims": sims}


def test_measure_matches_numpy_and_truth(fused):
    vol, truth, _ = fused
    rep = measure(vol, truth=truth)
    ok = vol.coverage.values
    li, zr = vol.Li6.values[ok], vol.Zr_La.values[ok].astype(float)
    assert rep["pearson"]["r"] == pytest.approx(np.corrcoef(li, zr)[0, 1], rel=1e-9)
    assert rep["pearson"]["covariance"] == pytest.approx(np.cov(li, zr)[0, 1], rel=1e-9)
    assert rep["pearson"]["n"] == ok.sum()
    assert rep["registration_error"]["max_error_nm"] == pytest.approx(0.0, abs=1e-6)  # the true transform was given
    assert rep["drift_error"]["rms_nm"] == pytest.approx(0.0, abs=1e-9)
    assert rep["phase_accuracy"]["LLZTO"] > 0.9
    assert rep["phase_precision"]["LLZTO"] > 0.9
    labels = pfs.classify_phases(vol)  # phases matched by name: recall by hand
    lab = np.asarray(labels.values)
    names = labels.attrs["flag_meanings"].split()
    for k, name in enumerate(truth.phase.attrs["flag_meanings"].split()):
        want = truth.phase.values == k
        assert rep["phase_accuracy"][name] == pytest.approx((lab[want] == names.index(name)).mean())
    assert 100 < rep["llzto_depletion_depth_nm"] < 700
    assert set(rep["phases"]) == {"unassigned", "matrix", "LLZTO", "LCO", "Al2O3", "SP"}
    # Li in at. %: one sensitivity factor per standard phase, checked against the phantom's concentration truth
    q = rep["li_percent"]
    bulk = json.loads(truth.attrs["li_percent"])["LLZTO_bulk"]  # 100 * 6.4 / 23.4
    assert q["assumed"]["psf"] == "80 nm"
    names = truth.phase.attrs["flag_meanings"].split()
    llzto, lco = (truth.li_percent.values[truth.phase.values == truth.phase.attrs["flag_values"][names.index(p)]]
                  for p in ("LLZTO", "LCO"))  # depleted shells included
    assert q["phases"]["LLZTO"]["median"] == pytest.approx(np.median(llzto), rel=0.15)
    assert q["phases"]["LCO"]["mean"] == pytest.approx(lco.mean(), rel=0.1)
    assert q["phases"]["LCO"]["relative_sensitivity"] == pytest.approx(
        json.loads(truth.attrs["sims_yield"])["LCO"] / json.loads(truth.attrs["sims_yield"])["LLZTO"], rel=0.1)
    assert q["llzto_depletion"]["bulk"] == pytest.approx(bulk, rel=0.05)
    assert q["truth"]["LLZTO_surface"] < q["llzto_depletion"]["surface"] < bulk / 2
    json.dumps(rep)


def test_write_report_writes_json_text_and_figures(fused, tmp_path):
    vol, truth, raw = fused
    rep = write_report(vol, tmp_path, raw=raw, truth=truth)
    assert json.loads((tmp_path / "report.json").read_text())["pearson"]["r"] == pytest.approx(rep["pearson"]["r"])
    text = (tmp_path / "report.txt").read_text()
    assert "Pearson r(Li6, Zr_La)" in text
    assert "registration error vs truth" in text
    assert "Li concentration (one sensitivity factor per standard phase" in text
    q, d = rep["li_percent"]["phases"]["LCO"], rep["li_percent"]["llzto_depletion"]
    assert f"LCO      mean {q['mean']:.3g} at. %, median {q['median']:.3g} at. %" in text
    assert f"LLZTO surfaces: Li {d['surface']:.3g} at. % -> {d['bulk']:.3g} at. % over {d['depth_nm']:.3g} nm" in text
    assert {"histograms", "element_maps", "joint_histogram", "orthoslices", "registration"} <= set(rep["figures"])
    if pytest.importorskip("pfibsims.plot.scene").have_renderer():
        assert "volume_3d" in rep["figures"]
    # every number to 3 significant digits, with units
    r = rep["pearson"]
    assert f"Pearson r(Li6, Zr_La) = {r['r']:.3g}  [{r['ci'][0]:.3g}, {r['ci'][1]:.3g}]" in text
    assert f"Li6 depletion depth at LLZTO surfaces: {rep['llzto_depletion_depth_nm']:.3g} nm" in text
    phase = rep["phases"]["LLZTO"]
    assert f"fraction {phase['fraction']:.3g}, mean {phase['mean']:.3g} counts" in text
    import re

    decimals = re.findall(r"\d+\.\d+", text)
    assert decimals
    assert all(len(re.sub(r"^0\.0*", "", d).replace(".", "")) <= 3 for d in decimals), decimals  # no long decimals
    for path in rep["figures"].values():
        assert (tmp_path / "figures").is_dir()
        assert path.endswith(".png")


def test_measure_needs_the_channels(fused):
    vol, _, _ = fused
    with pytest.raises(pfs.DataModelError, match=r"channels: \['Nope'\] not among the channels of the volume"):
        measure(vol, channels=("Li6", "Nope"))
    with pytest.raises(pfs.DataModelError, match="channels: expected two different channel names"):
        measure(vol, channels=("Li6",))


def _other_sample(vol):
    """The fused phantom under the channel names of another sample: Fe, S, Cu and O maps and an 18O SIMS map."""
    names = {"Zr_La": "Fe_Ka", "Co_La": "S_Ka", "Al_Ka": "Cu_Ka", "C_Ka": "O_Ka", "Li6": "O18"}
    out = vol.rename(names)
    for new in names.values():
        out[new].attrs = pfs.dataset.channel_attrs(new)
    return out


@pytest.mark.slow
def test_report_and_figures_on_a_volume_of_another_sample(fused, tmp_path):
    vol, truth, _ = fused
    other = _other_sample(vol)
    rep = write_report(other, tmp_path)
    ok = other.coverage.values
    assert (rep["pearson"]["a"], rep["pearson"]["b"]) == ("O18", "Fe_Ka")  # a SIMS isotope and the first EDS line
    assert rep["pearson"]["r"] == pytest.approx(np.corrcoef(other.O18.values[ok], other.Fe_Ka.values[ok])[0, 1], rel=1e-9)
    named = [n for n in rep["phases"] if n != "unassigned"]
    assert named
    assert all(set(n.split("+")) <= {"Fe", "S", "Cu", "O"} for n in named)
    assert not {"LLZTO", "LCO", "SP", "matrix"} & set(rep["phases"])  # no cathode names for other elements
    assert "llzto_depletion_depth_nm" not in rep
    assert {"histograms", "element_maps", "joint_histogram", "orthoslices"} <= set(rep["figures"])
    assert "Pearson r(O18, Fe_Ka)" in (tmp_path / "report.txt").read_text()
    chosen = write_report(other, tmp_path / "chosen", channels=("S_Ka", "O18"), figures=False)
    assert chosen["pearson"]["r"] == pytest.approx(np.corrcoef(other.S_Ka.values[ok], other.O18.values[ok])[0, 1], rel=1e-9)


def test_the_3d_render_runs_beside_the_statistics_and_is_closed_if_they_fail(fused, tmp_path, monkeypatch):
    """write_report starts the 3-D figure's child render before the statistics (it runs on the core they leave
    idle), save_figures draws that render (no second one), and a failure of the statistics stops it."""
    scene = pytest.importorskip("pfibsims.plot.scene")
    if not scene.have_renderer():
        pytest.skip("the 3-D figure needs PyVista (the render extra)")
    import pfibsims.app.report as report_module
    import pfibsims.plot as plot

    vol, truth, raw = fused
    events, started = [], []
    real_start, real_measure, real_save = scene.start_volume_3d, report_module.measure, plot.save_figures

    def start(*args, **kwargs):
        events.append("render started")
        started.append(real_start(*args, **kwargs))
        return started[-1]

    def measure(*args, **kwargs):
        events.append("statistics")
        return real_measure(*args, **kwargs)

    def save(*args, render=None, **kwargs):
        events.append("figures given " + ("the started render" if render is started[-1] else repr(render)))
        return real_save(*args, render=render, **kwargs)

    monkeypatch.setattr(scene, "start_volume_3d", start)
    monkeypatch.setattr(report_module, "measure", measure)
    monkeypatch.setattr(plot, "save_figures", save)
    rep = write_report(vol, tmp_path, raw=raw, truth=truth)
    assert events == ["render started", "statistics", "figures given the started render"]
    assert "volume_3d" in rep["figures"]
    assert not started[-1].folder.exists()  # drawn, then closed

    def failing(*args, **kwargs):
        raise RuntimeError("the statistics failed")

    monkeypatch.setattr(report_module, "measure", failing)
    with pytest.raises(RuntimeError, match="the statistics failed"):
        write_report(vol, tmp_path / "failed", raw=raw, truth=truth)
    assert started[-1].proc.poll() is not None  # stopped
    assert not started[-1].folder.exists()  # and removed


def test_report_of_a_constant_channel_says_r_is_undefined_and_measures_the_rest(tmp_path):
    """Regression: a pair with a channel constant over the coverage (an element absent from the sample, all
    zeros) made `measure` raise from Pearson r, so no report was written at all. r is now reported
    undefined, with why, and the per-phase statistics are still computed (checked against numpy)."""
    rng = np.random.default_rng(3)
    s = np.zeros((3, 32, 32))
    s[:, :, 16:] = 40
    s = rng.poisson(s + 2).astype(np.float64)
    li = rng.poisson(np.where(s > 20, 30.0, 5.0)).astype(np.float64)
    vol = pfs.stack({"Li6": li, "S_Ka": s, "Fe_Ka": np.zeros_like(s)}, pixel_size="81.4 nm", slice_thickness="60 nm",
                    modality="fused")
    vol = vol.assign(coverage=xr.ones_like(vol.Li6, dtype=bool))
    with pytest.warns(pfs.EstimationWarning, match="'Fe_Ka' is constant"):
        rep = write_report(vol, tmp_path, channels=("Li6", "Fe_Ka"), figures=False)
    assert rep["pearson"]["r"] is None
    assert rep["pearson"]["n"] is None
    assert rep["pearson"]["undefined"].startswith("Fe_Ka: constant over the 3072 valid voxels")
    assert "(undefined: Fe_Ka: constant" in (tmp_path / "report.txt").read_text()
    with pytest.warns(pfs.EstimationWarning, match="'Fe_Ka' is constant"):
        labels = pfs.classify_phases(vol, channels=["S_Ka", "Fe_Ka"])
    assert len(rep["phases"]) >= 2
    for name, st in rep["phases"].items():
        sel = labels.values == labels.attrs["flag_values"][labels.attrs["flag_meanings"].split().index(name)]
        assert st["fraction"] == pytest.approx(sel.mean())
        assert st["mean"] == pytest.approx(li[sel].mean())


def test_li_concentration_is_measured_from_a_li_channel_only(fused):
    """Regression: `pfibsims report --channels Zr_La Li6` (or measure(channels=("Zr_La", "Li6"))) reported
    "Li concentration" computed from the Zr_La counts (phantom: LLZTO 26.7 at. %, LCO 50.7 at. % of "Li"),
    since the first channel was quantified whatever it measured. It is quantified only when it is a Li isotope."""
    vol, truth, _ = fused
    swapped = measure(vol, channels=("Zr_La", "Li6"), truth=truth)
    assert "li_percent" not in swapped
    assert (swapped["pearson"]["a"], swapped["pearson"]["b"]) == ("Zr_La", "Li6")
    li = measure(vol, channels=("Li6", "Zr_La"), truth=truth)
    assert set(li["li_percent"]["phases"]) == {"LLZTO", "LCO"}
    other = measure(vol.assign(Li7=vol.Li6.assign_attrs(pfs.dataset.channel_attrs("Li7"))), channels=("Li7", "Zr_La"),
                    truth=truth)
    assert "li_percent" in other  # any Li isotope


def test_drift_error_of_a_volume_with_unpaired_sims_slices(fused):
    """SIMS slices 1 and 3 of 4 only: the fused drift (2 rows, relative to slice 1) is compared with the
    truth's rows of those slices, not all 4 rows (a shape error before)."""
    _, truth, inputs = fused
    sims = inputs["sims"].isel(z=[1, 3])
    with pytest.warns(pfs.errors.CoverageWarning, match=r"eds slices \[0, 2\] have no sims slice"):
        vol = pfs.fuse(inputs["eds"], sims, register=pfs.Affine.from_attrs(truth.attrs), drift=truth.drift).compute()
    assert [b for _, b in json.loads(vol.attrs["pfibsims:slices"])["pairs"]] == [0, 1]  # indices into the 2 SIMS slices
    rep = measure(vol, truth=truth)
    assert rep["drift_error"]["rms_nm"] == pytest.approx(0.0, abs=1e-9)
