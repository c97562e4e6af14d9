"""EDS line maps by fitting (pfibsims.io.fitting) against spectrum images with known line counts.

The synthetic spectrum images are written with RosettaSciIO's own Ripple
writer (``rsciio.ripple.file_writer``, the EDS_SEM metadata it knows: beam
energy, detector resolution) and read back through ``pfs.read_eds``. Pixels
hold LLZTO (La, Zr, O), LCO (Co, O) or a Pt cap at 5 kV, noise-free, on a
smooth continuum (Kramers' law times a low-energy absorption cut-off) that is
outside the model's background space.
"""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest
import xraydb
from scipy.optimize import lsq_linear
from scipy.special import ndtr

import pfibsims as pfs
from pfibsims.errors import DataModelError
from pfibsims.io.fitting import _design, _solve, fit_lines, line_family, spectrum_maps
from pfibsims.io.lines import LineOverlapWarning, detector_fwhm

LINES = ["Co_La", "La_Ma", "Zr_La", "O_Ka", "Pt_Ma"]
ENERGY = -200.0 + 10.0 * np.arange(600)  # 10 eV channels up to 5.8 keV
#: true net counts per line family in each kind of pixel
PHASES = {
    "LCO": {"Co_La": 1200.0, "O_Ka": 900.0},
    "LLZTO": {"La_Ma": 800.0, "Zr_La": 1500.0, "O_Ka": 1100.0},
    "Pt": {"Pt_Ma": 2000.0},
}


def _family_counts(name: str, counts: float) -> np.ndarray:
    """Counts per channel of a line family (Gaussians integrated over each 10 eV channel)."""
    edges = np.r_[ENERGY - 5.0, ENERGY[-1] + 5.0]
    fam = line_family(name, beam_energy_ev=5000.0)
    out = np.zeros(ENERGY.size)
    for e, w in zip(fam.energies, fam.weights, strict=True):
        out += counts * w * np.diff(ndtr((edges - e) / (detector_fwhm(e) / 2.3548)))
    return out


def _continuum(level: float) -> np.ndarray:
    e = np.clip(ENERGY, 50.0, None)
    return np.where(ENERGY > 50, level * (5000.0 - np.minimum(e, 5000.0)) / e * np.exp(-((300.0 / e) ** 3)), 0.0)


def _cube() -> tuple[np.ndarray, np.ndarray]:
    """(4, 6, 600) spectra: LCO in the left columns, LLZTO in the middle, Pt on the right; and the phase map."""
    phase = np.array([["LCO", "LCO", "LLZTO", "LLZTO", "Pt", "Pt"]] * 4)
    spectra = {k: sum(_family_counts(n, c) for n, c in v.items()) + _continuum(2.0) for k, v in PHASES.items()}
    cube = np.stack([[spectra[p] for p in row] for row in phase]).astype(np.float32)
    return cube, phase


def _write(tmp_path, cube):
    from rsciio.ripple import file_writer

    axes = [
        {"name": "y", "size": cube.shape[0], "offset": 0.0, "scale": 0.0814, "units": "µm", "navigate": True},
        {"name": "x", "size": cube.shape[1], "offset": 0.0, "scale": 0.0814, "units": "µm", "navigate": True},
        {"name": "Energy", "size": cube.shape[2], "offset": ENERGY[0] / 1000, "scale": 0.01, "units": "keV", "navigate": False},
    ]
    md = {"Signal": {"signal_type": "EDS_SEM"}, "General": {"title": "cathode"},
          "Acquisition_instrument": {"SEM": {"beam_energy": 5.0, "Detector": {"EDS": {"energy_resolution_MnKa": 130.0}}}}}
    path = tmp_path / "cathode.rpl"
    file_writer(str(path), {"data": cube, "axes": axes, "metadata": md, "original_metadata": {}})
    return path


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    cube, phase = _cube()
    return _write(tmp_path_factory.mktemp("fit"), cube), cube, phase


def test_family_weights_follow_xraydb():
    """Co L: each line's xraydb intensity x subshell occupancy x fluorescence yield, normalised."""
    fam = line_family("Co_La", beam_energy_ev=5000.0)
    t = xraydb.xray_lines("Co")
    w = dict(zip(fam.labels, fam.weights, strict=True))
    ratio = (t["Lb1"].intensity * 2 * xraydb.fluor_yield("Co", "L2", "L", 1e6)[0]) / (
        t["La1"].intensity * 4 * xraydb.fluor_yield("Co", "L3", "L", 1e6)[0])
    assert w["Lb1"] / w["La1"] == pytest.approx(ratio, rel=1e-9)
    assert sum(fam.weights) == pytest.approx(1.0)
    # La at 5 kV: the L shell (edges 5.48-6.27 keV) is not excited, so La_La cannot be mapped
    with pytest.raises(DataModelError, match=r"lines: expected lines the beam can excite, got La_La .*\(5 kV\)"):
        line_family("La_La", beam_energy_ev=5000.0)
    # a second requested line of the element takes its own lines from the alpha family
    assert "Lb1" not in line_family("Zr_La", claimed=["Zr_La", "Zr_Lb"]).labels


def test_fit_recovers_the_true_counts_within_3_percent(written):
    path, cube, phase = written
    ds = pfs.read_eds(path, lines=LINES)
    assert ds.attrs["line_maps"] == "fit"
    assert ds.attrs["detector_fwhm_mnka"] == "130.0 eV"  # from the file's detector-peak-width-ev
    assert ds.Co_La.attrs["method"] == "fit"
    for kind, truth in PHASES.items():
        sel = phase == kind
        for line in LINES:
            got, want = ds[line].values[0][sel], truth.get(line, 0.0)
            if want:
                np.testing.assert_allclose(got, want, rtol=0.03, err_msg=f"{line} in {kind}")
            else:  # absent: below 3 % of the pixel's strongest line
                assert np.all(np.abs(got) <= 0.03 * max(truth.values())), (kind, line, got)


def test_fit_separates_co_la_from_la_ma_and_zr_la_from_pt_ma(written):
    """One detector resolution apart: Co La (776 eV) / La Ma (833 eV), Zr La (2042 eV) / Pt Ma (2048 eV)."""
    path, _, phase = written
    ds = pfs.read_eds(path, lines=LINES)
    co = ds.Co_La.values[0]
    assert co[phase == "LLZTO"].max() < 0.05 * co[phase == "LCO"].min()
    zr = ds.Zr_La.values[0]
    assert zr[phase == "Pt"].max() < 0.05 * zr[phase == "LLZTO"].min()
    with pytest.warns(LineOverlapWarning, match=r"Co_La .* and La_Ma .* overlap"):
        win = pfs.read_eds(path, lines=LINES, method="window")
    co_w = win.Co_La.values[0]
    assert co_w[phase == "LLZTO"].min() > 0.3 * co_w[phase == "LCO"].max()  # the window map cannot tell them apart


def test_fit_is_lazy_and_matches_the_eager_path(written, no_compute):
    path, cube, _ = written
    with no_compute():
        ds = pfs.read_eds(path, lines=LINES)
    assert isinstance(ds.Co_La.data, da.Array)
    eager, _ = fit_lines(cube, ENERGY, LINES, beam_energy_ev=5000.0)
    np.testing.assert_allclose(ds.Co_La.values[0], eager["Co_La"], rtol=1e-9, atol=1e-9)


def test_nonneg_fit_matches_a_bounded_least_squares_reference():
    """Noisy counts: every pixel equals scipy's lsq_linear with lines >= 0 and a free background."""
    cube, _ = _cube()
    rng = np.random.default_rng(0)
    noisy = rng.poisson(cube * 0.05).astype(np.uint16)
    maps, _ = fit_lines(noisy, ENERGY, LINES, beam_energy_ev=5000.0)
    got = np.stack([maps[n] for n in LINES], axis=-1)
    assert got.min() >= 0
    families = [line_family(n, beam_energy_ev=5000.0) for n in LINES]
    idx, A, _ = _design(ENERGY, families, "130 eV", "test")
    k = len(LINES)
    lower = np.r_[np.zeros(k), np.full(A.shape[1] - k, -np.inf)]
    for i, j in [(0, 0), (1, 2), (2, 4), (3, 5), (0, 3)]:
        ref = lsq_linear(A, noisy[i, j, idx].astype(float), bounds=(lower, np.inf), tol=1e-12).x[:k]
        np.testing.assert_allclose(got[i, j], ref, atol=1e-6 * max(ref.max(), 1.0))


def test_methods_and_errors():
    cube, _ = _cube()
    with pytest.raises(DataModelError, match=r"method: expected one of \['fit', 'window'\], got 'peak'"):
        spectrum_maps(cube, ENERGY, LINES, method="peak")
    with pytest.raises(DataModelError, match=r"Zr_Ka .*inside the energy range"):
        fit_lines(cube, ENERGY, ["Zr_Ka"])
    with pytest.raises(DataModelError, match="at least one line"):
        fit_lines(cube, ENERGY, [])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spectrum_maps(cube, ENERGY, ["Zr_La", "O_Ka"], method="window")  # far apart: no warning


def test_a_detector_fwhm_narrower_than_a_channel_is_an_error_naming_fwhm_mnka():
    # 40 eV at Mn Ka: the Fano model gives sqrt(40^2 + 2.5 (2042 - 5899)) < 1 eV at Zr La (clamped to 1 eV),
    # narrower than a 10 eV channel: the background knots fall between channels (numpy raised LinAlgError)
    cube, _ = _cube()
    assert detector_fwhm(2042.4, fwhm_mnka="40 eV") == 1.0
    with pytest.raises(pfs.PfibsimsError, match=r"fwhm_mnka: expected the detector resolution .* got '40 eV', .*Zr_La .*1 eV wide, "
                                                r"narrower than one channel \(10 eV\)"):
        fit_lines(cube, ENERGY, ["Zr_La"], fwhm_mnka="40 eV")
    fit_lines(cube, ENERGY, LINES, fwhm_mnka="122 eV")  # every peak >= 10 eV wide: solvable
    with pytest.raises(pfs.PfibsimsError, match=r"lines: expected lines the channels of cube can tell apart, got \['Zr_La'\] "
                                                r"with fwhm_mnka='130 eV'"):
        _solve(np.zeros((2, 2)), np.eye(2), ["Zr_La"], "130 eV", "cube")  # a singular normal matrix


def test_compiled_and_python_paths_agree():
    """The numba kernels and their numpy/Python twins (pfibsims._engine.numba.use_compiled(False)) give one answer."""
    from pfibsims._engine.numba import use_compiled

    cube, _ = _cube()
    noisy = np.random.default_rng(1).poisson(cube[:2, :3] * 0.05).astype(np.uint16)
    fast, _ = fit_lines(noisy, ENERGY, LINES, beam_energy_ev=5000.0)
    with use_compiled(False):
        slow, _ = fit_lines(noisy, ENERGY, LINES, beam_energy_ev=5000.0)
    for n in LINES:
        np.testing.assert_allclose(fast[n], slow[n], rtol=1e-9, atol=1e-9)


def test_cached_active_sets_agree_with_lawson_hanson_on_every_pixel():
    """Five L lines and O K in one cluster, each element present or not at random: more active sets than the
    compiled kernel caches (so sets are evicted and met again). Every pixel equals the numpy/Python twin
    (Lawson-Hanson on the whole problem, no cache, dense product), and sampled pixels scipy's BVLS."""
    from pfibsims._engine.numba import use_compiled
    from pfibsims.io._fitkernels import SLOTS

    lines = ["O_Ka", "Mn_La", "Fe_La", "Co_La", "Ni_La", "Cu_La", "Zr_La", "Pt_Ma"]
    rng = np.random.default_rng(7)
    counts = (rng.random((24, 24, len(lines))) < 0.5) * rng.uniform(50.0, 400.0, (24, 24, len(lines)))
    shapes = np.stack([_family_counts(n, 1.0) for n in lines])
    cube = rng.poisson(counts @ shapes + _continuum(0.5)).astype(np.uint16)
    fast, _ = fit_lines(cube, ENERGY, lines, beam_energy_ev=5000.0)
    with use_compiled(False):
        slow, _ = fit_lines(cube, ENERGY, lines, beam_energy_ev=5000.0)
    got, ref = np.stack([fast[n] for n in lines], axis=-1), np.stack([slow[n] for n in lines], axis=-1)
    assert len({tuple(s) for s in (got[..., :6] > 0).reshape(-1, 6)}) > SLOTS  # the cache overflows
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)
    idx, A, _ = _design(ENERGY, [line_family(n, beam_energy_ev=5000.0) for n in lines], "130 eV", "test")
    k = len(lines)
    lower = np.r_[np.zeros(k), np.full(A.shape[1] - k, -np.inf)]
    for i, j in rng.integers(0, 24, (12, 2)):
        want = lsq_linear(A, cube[i, j, idx].astype(float), bounds=(lower, np.inf), method="bvls").x[:k]
        np.testing.assert_allclose(got[i, j], want, atol=1e-9 * max(want.max(), 1.0))


def test_a_nan_count_in_the_fit_channels_makes_the_pixel_nan():
    """Both paths: NaN or inf in a fit channel -> every line of that pixel NaN; NaN outside the fit channels -> no effect."""
    from pfibsims._engine.numba import use_compiled

    cube, _ = _cube()
    noisy = np.random.default_rng(1).poisson(cube * 0.05).astype(np.float32)
    clean, _ = fit_lines(noisy, ENERGY, LINES, beam_energy_ev=5000.0)
    noisy[0, 0, 100] = np.nan  # 800 eV: inside the O/Co/La cluster
    noisy[1, 1, 250] = np.inf  # 2300 eV: inside the Zr/Pt cluster
    noisy[2, 2, 10] = np.nan  # -100 eV: below the fit range
    for flag in (True, False):
        with use_compiled(flag):
            maps, _ = fit_lines(noisy, ENERGY, LINES, beam_energy_ev=5000.0)
        for n in LINES:
            assert np.isnan(maps[n][0, 0]), (flag, n)
            assert np.isnan(maps[n][1, 1]), (flag, n)
            keep = np.ones(maps[n].shape, bool)
            keep[0, 0] = keep[1, 1] = False
            np.testing.assert_allclose(maps[n][keep], clean[n][keep], rtol=1e-9, atol=1e-9)


def test_a_family_split_over_two_clusters_reads_both_and_not_the_gap():
    """A narrow detector (60 eV at Mn Ka) puts each K-alpha and its K-beta in separate clusters: each family
    reads two ranges of channels and nothing between them (counts there change no map); both paths agree."""
    from pfibsims._engine.numba import use_compiled
    from pfibsims.io.fitting import _segments

    energy = 4000.0 + 10.0 * np.arange(560)
    edges = np.r_[energy - 5.0, energy[-1] + 5.0]
    lines = ["Cr_Ka", "Cu_Ka"]
    fams = [line_family(n, beam_energy_ev=20000.0) for n in lines]
    shapes = np.stack([sum(w * np.diff(ndtr((edges - e) / (detector_fwhm(e, fwhm_mnka="60 eV") / 2.3548)))
                           for e, w in zip(f.energies, f.weights, strict=True)) for f in fams])
    rng = np.random.default_rng(3)
    cube = rng.poisson(rng.uniform(0.0, 300.0, (6, 7, 2)) @ shapes + 1.0).astype(np.float64)
    idx, A, clusters = _design(energy, fams, "60 eV", "test")
    _, lo, hi = _segments(np.linalg.solve(A.T @ A, A.T)[:2], idx, energy.size)
    assert len(clusters) == 4
    assert ((hi - lo) > 0).sum(axis=1).tolist() == [2, 2]  # Cr Ka + Cr Kb, Cu Ka + Cu Kb
    spiked = cube.copy()
    spiked[..., np.setdiff1d(np.arange(idx[0], idx[-1]), idx)] += 1e6  # the channels between the clusters
    kw = {"beam_energy_ev": 20000.0, "fwhm_mnka": "60 eV"}
    fast, _ = fit_lines(cube, energy, lines, **kw)
    spiked_fast, _ = fit_lines(spiked, energy, lines, **kw)
    with use_compiled(False):
        slow, _ = fit_lines(cube, energy, lines, **kw)
    for n in lines:
        np.testing.assert_allclose(spiked_fast[n], fast[n], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(fast[n], slow[n], rtol=1e-9, atol=1e-9)
