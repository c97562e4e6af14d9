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
from pfibsims.io.fitting import _design, fit_lines, line_family, spectrum_maps
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
