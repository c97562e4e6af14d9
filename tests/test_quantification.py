"""Tests of pfibsims.quantification (Li concentration), pfibsims.isotopes (isotope ratios) and pfibsims._chemistry.

Truths: hand-computed stoichiometry and densities from literature; volumes
built from a known concentration and known per-phase yields (exact, then
blurred by a known probe); the phantom's concentration truth; scipy's exact
binomial intervals; simulated Poisson counts of a known ratio; the
non-paralysable dead-time loss applied to known counts.
"""

from __future__ import annotations

import json
import math
import re

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.stats as st
import xarray as xr
from conftest import raise_if_dask_computes

import pfibsims as pfs
from pfibsims._chemistry import atom_fractions, atoms_per_cm3, mean_atomic_mass, theoretical_density
from pfibsims.dataset import stack
from pfibsims.errors import DataModelError, GridError, PfibsimsError, UnitsError
from pfibsims.isotopes import isotope_ratio
from pfibsims.quantification import quantify
from pfibsims.transform import Affine

LLZTO_PERCENT = 100 * 6.4 / 23.4  # Li6.4La3Zr1.4Ta0.6O12: 6.4 Li of 23.4 atoms


# -- chemistry ---------------------------------------------------------------------------
def test_atom_fractions_by_hand():
    f = atom_fractions("Li6.4La3Zr1.4Ta0.6O12")
    assert f["Li"] == pytest.approx(6.4 / 23.4)
    assert f["O"] == pytest.approx(12 / 23.4)
    assert sum(f.values()) == pytest.approx(1.0)
    assert atom_fractions("LiCoO2") == pytest.approx({"Li": 0.25, "Co": 0.25, "O": 0.5})
    assert atom_fractions("Ca3(PO4)2") == pytest.approx({"Ca": 3 / 13, "P": 2 / 13, "O": 8 / 13})
    # standard atomic weights (IUPAC): Li 6.94, Co 58.933, O 15.999
    assert mean_atomic_mass("LiCoO2") == pytest.approx((6.94 + 58.933 + 2 * 15.999) / 4, rel=1e-4)



@pytest.mark.parametrize(
    ("formula", "counts"),
    [("LiOH\u00b7H2O", {"Li": 1, "O": 2, "H": 3}), ("LiOH*H2O", {"Li": 1, "O": 2, "H": 3}),
     ("LiOH.H2O", {"Li": 1, "O": 2, "H": 3}), ("CuSO4\u00b75H2O", {"Cu": 1, "S": 1, "O": 9, "H": 10}),
     ("CuSO4 * 5 H2O", {"Cu": 1, "S": 1, "O": 9, "H": 10}), ("Li2CO3\u20220.5H2O", {"Li": 2, "C": 1, "O": 3.5, "H": 1}),
     ("CuSO4(H2O)5", {"Cu": 1, "S": 1, "O": 9, "H": 10}), ("Li6.4La3Zr1.4Ta0.6O12", {"Li": 6.4, "La": 3, "Zr": 1.4, "Ta": 0.6, "O": 12})],
)
def test_hydrate_formulae_by_hand(formula, counts):
    # hydrates (adducts) add their parts: LiOH.H2O had 2 H (the '.H' read as nothing), the middle dot and '*' were errors
    total = sum(counts.values())
    assert atom_fractions(formula) == pytest.approx({el: n / total for el, n in counts.items()})


def test_a_space_between_two_numbers_is_an_error_not_one_number():
    # 'CuSO4 5H2O' read as CuSO4 with 45 more O (O 46): the parser ignores spaces, so the digits ran together
    with pytest.raises(PfibsimsError, match=r"formula: .*'CuSO4 5H2O'.* a space between two numbers"):
        atom_fractions("CuSO4 5H2O")
    assert atom_fractions("Li7 La3 Zr2 O12") == pytest.approx(atom_fractions("Li7La3Zr2O12"))


def test_formula_parser_is_xraydbs_without_the_database():
    """Parsing a formula loads xraydb's parser alone (not SQLAlchemy and the database: 0.5-1 s), and it is
    xraydb's own chemparse: the same answers and the same errors (a fresh process: nothing imported before)."""
    import subprocess
    import sys

    import xraydb

    formulas = ["Li6.4La3Zr1.4Ta0.6O12", "Ca3(PO4)2", "Mn(SO4)2(H2O)7", "Zn1.e-5Fe3O4", "LiNi0.8Mn0.1Co0.1O2",
                "co", "Xx2", "Li(CoO2"]

    def parse(fn, f):
        try:
            return fn(f)
        except ValueError as exc:
            return f"ValueError: {exc}"

    code = ("import json, sys; from pfibsims._chemistry import _chemparse\n"
            "def parse(f):\n try:\n  return _chemparse()(f)\n except ValueError as exc:\n  return f'ValueError: {exc}'\n"
            f"print(json.dumps([[parse(f) for f in {formulas!r}], [m for m in ('xraydb', 'sqlalchemy') if m in sys.modules]]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    parsed, loaded = json.loads(out)
    assert loaded == []
    assert parsed == [parse(xraydb.chemparse, f) for f in formulas]
    assert parsed[0] == {"Li": 6.4, "La": 3.0, "Zr": 1.4, "Ta": 0.6, "O": 12.0}
    assert parsed[-1].startswith("ValueError")


def test_theoretical_densities_match_literature():
    # X-ray densities: LiCoO2 5.05 g/cm^3, corundum 3.987 g/cm^3, cubic LLZO 5.1 g/cm^3
    assert theoretical_density("LiCoO2") == pytest.approx(5.05, abs=0.01)
    assert theoretical_density("Al2O3") == pytest.approx(3.987, abs=0.005)
    assert theoretical_density("Li7La3Zr2O12") == pytest.approx(5.1, abs=0.03)
    # LiCoO2 at 5.05 g/cm^3: 5.05 * N_A / (97.87 / 4) atoms per cm^3
    assert atoms_per_cm3("LiCoO2", 5.05) == pytest.approx(5.05 * 6.02214076e23 / (97.8712 / 4), rel=1e-5)


def test_theoretical_density_finds_a_cell_by_composition():
    # the table was looked up by the exact string: 'CoLiO2', 'Li1Co1O2' or 'Li7 La3 Zr2 O12' had "no density known"
    assert theoretical_density("CoLiO2") == pytest.approx(theoretical_density("LiCoO2"), rel=1e-12)
    assert theoretical_density("Li1Co1O2") == pytest.approx(theoretical_density("LiCoO2"), rel=1e-12)
    assert theoretical_density("Li7 La3 Zr2 O12") == pytest.approx(theoretical_density("Li7La3Zr2O12"), rel=1e-12)
    with pytest.raises(PfibsimsError, match="no density known for 'Li2Co2O4'"):
        theoretical_density("Li2Co2O4")  # another formula unit: Z of the cell would not hold


@pytest.mark.parametrize(
    ("formula", "match"),
    [("", "expected a chemical formula"), ("co", "unrecognized element"), ("Xx2", "not an element symbol"),
     ("Li(CoO2", "expected right paren"), ("Li0", "positive element counts"), (12, "expected a chemical formula")],
)
def test_formula_errors(formula, match):
    with pytest.raises(PfibsimsError, match=match):
        atom_fractions(formula)
    with pytest.raises(PfibsimsError, match="no density known for 'NaCl'"):
        theoretical_density("NaCl")


# -- quantify on volumes of known concentration ----------------------------------------------
YIELD = {"LCO": 2.0, "LLZTO": 0.8}  # counts per at. % (the matrix effect: 2.5x)


def _two_phase(blur_px=0.0, lazy=False, background=0.0, shape=(2, 48, 64)):
    """LCO left, LLZTO right (a depleted 4-voxel shell at its surface); noise-free expected counts."""
    lab = np.zeros(shape, np.uint8)
    lab[..., shape[-1] // 2:] = 1
    conc = np.where(lab == 0, 25.0, LLZTO_PERCENT)
    conc[..., shape[-1] // 2: shape[-1] // 2 + 4] = 8.0  # depleted surface of LLZTO
    signal = np.where(lab == 0, YIELD["LCO"], YIELD["LLZTO"]) * conc
    if blur_px:
        signal = ndi.gaussian_filter(signal, (0, blur_px, blur_px), mode="nearest", truncate=4.0)
    ds = stack({"Li6": signal + background}, pixel_size="100 nm", slice_thickness="60 nm")
    ph = xr.DataArray(lab, dims=ds.Li6.dims, coords=ds.Li6.coords, name="phase",
                      attrs={"flag_values": [0, 1], "flag_meanings": "LCO LLZTO"})
    li = ds.Li6
    if lazy:
        li, ph = li.chunk({"z": 1, "y": 16, "x": 32}), ph.chunk({"z": 1, "y": 16, "x": 32})
    return li, ph, conc


@pytest.mark.parametrize("lazy", [False, True])
def test_quantify_exact_per_phase_factors(lazy):
    li, ph, conc = _two_phase(lazy=lazy, background=3.0)
    with raise_if_dask_computes(max_computes=1) as counted:  # the calibration: one pass
        q = quantify(li, ph, interior="500 nm", background=3.0)
    assert counted.total == (1 if lazy else 0)
    assert isinstance(q.data, da.Array) == lazy
    np.testing.assert_allclose(q.values, conc, rtol=1e-5)
    cal = json.loads(q.attrs[pfs.quantification.CALIBRATION])
    assert cal["phases"]["LCO"]["sensitivity"] == pytest.approx(YIELD["LCO"])
    assert cal["phases"]["LLZTO"]["sensitivity"] == pytest.approx(YIELD["LLZTO"])
    assert cal["phases"]["LCO"]["relative_sensitivity"] == pytest.approx(2.5)
    assert cal["phases"]["LLZTO"]["nominal_percent"] == pytest.approx(LLZTO_PERCENT)
    assert q.attrs["units"] == "percent"
    assert q.uncertainty.attrs["units"] == "percent"
    # noise-free data: the uncertainty is the counting statistics of the counts, sqrt(N) / S
    np.testing.assert_allclose(q.uncertainty.values, np.sqrt(li.values) / np.where(ph == 0, 2.0, 0.8), rtol=1e-4)


def test_quantify_calibration_by_hand_with_sample_standard_error():
    # the standard error of a standard's interior mean is s / sqrt(n) with the sample s (ddof 1);
    # the population s understated it (by 1.7 % at the 30-voxel minimum)
    rng = np.random.default_rng(3)
    lab = np.zeros((1, 40, 40), np.uint8)
    lab[:, :, 20:] = 1
    counts = np.where(lab == 0, 50.0, 20.0) + rng.poisson(5, lab.shape)
    ds = stack({"Li6": counts}, pixel_size="100 nm")
    ph = xr.DataArray(lab, dims=ds.Li6.dims, coords=ds.Li6.coords,
                      attrs={"flag_values": [0, 1], "flag_meanings": "LCO LLZTO"})
    q = quantify(ds.Li6, ph, interior="500 nm", background=3.0)
    cal = json.loads(q.attrs[pfs.quantification.CALIBRATION])["phases"]
    inner = counts[:, :, :15]  # deeper than 500 nm: centres (19 - j) * 100 + 50 nm from the face
    assert cal["LCO"]["voxels"] == inner.size
    assert cal["LCO"]["mean_counts"] == pytest.approx(inner.mean(), rel=1e-12)
    assert cal["LCO"]["sem_counts"] == pytest.approx(inner.std(ddof=1) / np.sqrt(inner.size), rel=1e-9)
    s = (inner.mean() - 3.0) / 25.0
    np.testing.assert_allclose(q.values[lab == 0], (counts[lab == 0] - 3.0) / s, rtol=1e-6)
    u_rel = inner.std(ddof=1) / np.sqrt(inner.size) / (inner.mean() - 3.0)
    c = (counts - 3.0) / s
    want = np.sqrt(counts / s**2 + (c * u_rel) ** 2)
    np.testing.assert_allclose(q.uncertainty.values[lab == 0], want[lab == 0], rtol=1e-6)


def test_quantify_three_phases_with_a_background_phase_by_hand():
    """LCO | LLZTO | Al2O3 (Li-free: the background) stripes of Poisson counts; the interior (centres farther than
    400 nm from a face: |x + 0.5 - face| * 80 nm), the background, the factors and every voxel by numpy."""
    rng = np.random.default_rng(5)
    shape = (3, 30, 72)
    lab = np.zeros(shape, np.uint8)
    lab[..., 24:48] = 1
    lab[..., 48:] = 2
    counts = rng.poisson(np.choose(lab, [54.0, 26.0, 4.0])).astype(float)
    ds = stack({"Li6": counts}, pixel_size="80 nm", slice_thickness="60 nm")
    ph = xr.DataArray(lab, dims=ds.Li6.dims, coords=ds.Li6.coords,
                      attrs={"flag_values": [0, 1, 2], "flag_meanings": "LCO LLZTO Al2O3"})
    q = quantify(ds.Li6, ph, interior="400 nm", background="Al2O3")
    cal = json.loads(q.attrs[pfs.quantification.CALIBRATION])
    deep = np.min(np.abs(np.arange(72)[:, None] + 0.5 - np.array([24, 48])[None]) * 80.0, axis=1) > 400
    inner = [np.broadcast_to(deep, shape) & (lab == p) for p in range(3)]
    bg = counts[inner[2]].mean()
    s_lco, s_llzto = (counts[inner[0]].mean() - bg) / 25.0, (counts[inner[1]].mean() - bg) / LLZTO_PERCENT
    assert cal["background"] == pytest.approx(bg, rel=1e-12)
    assert cal["phases"]["LCO"]["voxels"] == inner[0].sum()
    assert cal["phases"]["LCO"]["sensitivity"] == pytest.approx(s_lco, rel=1e-12)
    assert cal["phases"]["LLZTO"]["rsf"] == pytest.approx(1 / s_llzto, rel=1e-12)
    assert cal["phases"]["LCO"]["relative_sensitivity"] == pytest.approx(s_lco / s_llzto, rel=1e-12)  # vs LLZTO, the first
    want = np.where(lab == 0, (counts - bg) / s_lco, np.where(lab == 1, (counts - bg) / s_llzto, np.nan))
    np.testing.assert_allclose(q.values, want, rtol=1e-6, atol=1e-5)  # Al2O3: no standard, NaN


@pytest.mark.parametrize("lazy", [False, True])
def test_quantify_mixing_model_recovers_blurred_boundaries(lazy):
    li, ph, conc = _two_phase(blur_px=1.2)
    if lazy:  # chunks thinner than the mixing model's halo (4 sigma = 5 voxels) are joined
        li, ph = li.chunk({"z": 1, "y": 4, "x": 32}), ph.chunk({"z": 1, "y": 4, "x": 32})
    near = np.abs(np.arange(64) - 31.5)[None, None, :] < 4  # voxels within 4 of the boundary
    near = np.broadcast_to(near, conc.shape)
    hard = quantify(li, ph, interior="800 nm")
    mixed = quantify(li, ph, interior="800 nm", psf="120 nm")
    err_hard = np.abs(hard.values - conc) / conc
    err_mixed = np.abs(mixed.values - conc) / conc
    assert np.nanmedian(err_hard[~near]) < 1e-3
    assert np.nanmedian(err_mixed[~near]) < 1e-3
    # at the boundary the LCO signal spills into the depleted LLZTO shell; the mixing model removes most of it
    assert np.nanmedian(err_hard[near]) > 0.2
    assert np.nanmedian(err_mixed[near]) < 0.5 * np.nanmedian(err_hard[near])
    eager = quantify(*_two_phase(blur_px=1.2)[:2], interior="800 nm", psf="120 nm")
    np.testing.assert_allclose(mixed.values, eager.values, rtol=1e-6)


def test_quantify_atoms_per_cm3():
    li, ph, conc = _two_phase()
    q = quantify(li, ph, interior="500 nm", units="atoms/cm^3", densities={"LCO": "5.05 g/cm^3"})
    assert q.attrs["units"] == "cm**-3"
    lco = 0.25 * 5.05 * 6.02214076e23 / (97.8712 / 4)  # Li atoms per cm^3 of LiCoO2 at 5.05 g/cm^3
    assert q.values[0, 0, 0] == pytest.approx(lco, rel=1e-4)
    llzto = LLZTO_PERCENT / 100 * theoretical_density("Li6.4La3Zr1.4Ta0.6O12") * 6.02214076e23 / (889.40 / 23.4)
    assert q.values[0, 0, -1] == pytest.approx(llzto, rel=1e-3)


def test_quantify_densities_are_checked():
    # a negative density gave negative atoms/cm^3, and a density for a misspelt phase was silently replaced by the table's
    li, ph, conc = _two_phase()
    for bad in ("-5.05 g/cm^3", "0 g/cm^3"):
        with pytest.raises(PfibsimsError, match=rf"densities\['LCO'\]: expected a positive density .* got {re.escape(repr(bad))}"):
            quantify(li, ph, interior="500 nm", units="atoms/cm^3", densities={"LCO": bad})
    with pytest.raises(DataModelError, match=r"densities: phase 'lco' is not among the labels' phases \['LCO', 'LLZTO'\]"):
        quantify(li, ph, interior="500 nm", units="atoms/cm^3", densities={"lco": "4.9 g/cm^3"})
    # the output's own units string (and other spellings of per cm^3) are accepted as units=
    want = quantify(li, ph, interior="500 nm", units="atoms/cm^3", densities={"LCO": "5050 kg/m^3"})
    assert float(want[0, 0, 0]) == pytest.approx(0.25 * 5.05 * 6.02214076e23 / (97.8712 / 4), rel=1e-4)
    for spelling in ("cm**-3", "atoms/cm**3", "1/cm^3", "cm^-3"):
        q = quantify(li, ph, interior="500 nm", units=spelling, densities={"LCO": "5050 kg/m^3"})
        assert q.attrs["units"] == "cm**-3"
        np.testing.assert_array_equal(q.values, want.values)


def test_quantify_non_standard_phase_is_nan_or_given():
    li, ph, conc = _two_phase()
    q = quantify(li, ph, standards={"LCO": "LiCoO2"}, interior="500 nm")
    assert np.isnan(q.values[ph.values == 1]).all()
    q = quantify(li, ph, standards={"LCO": "LiCoO2"}, interior="500 nm", rsf={"LLZTO": "LCO"})
    np.testing.assert_allclose(q.values[ph.values == 1], (conc * 0.8 / 2.0)[ph.values == 1], rtol=1e-5)
    q = quantify(li, ph, standards={"LCO": "LiCoO2"}, interior="500 nm", rsf={"LLZTO": 1.25})
    np.testing.assert_allclose(q.values[ph.values == 1], conc[ph.values == 1], rtol=1e-5)


def test_quantify_errors():
    li, ph, _ = _two_phase()
    with pytest.raises(UnitsError, match="li: expected raw SIMS counts"):
        quantify(li.assign_attrs(units="1"), ph)
    with pytest.raises(DataModelError, match="standards: phase 'NMC' is not among"):
        quantify(li, ph, standards={"NMC": "LiNiO2"})
    with pytest.raises(PfibsimsError, match=r"standards\['LCO'\]: expected a formula containing Li"):
        quantify(li, ph, standards={"LCO": "CoO"})
    with pytest.raises(PfibsimsError, match="interior: standard 'LLZTO' has 0 voxels deeper than 5000 nm"):
        quantify(li, ph, interior="5 um")
    with pytest.raises(PfibsimsError, match="units: expected 'percent' or 'atoms/cm"):
        quantify(li, ph, interior="500 nm", units="ppm")
    with pytest.raises(PfibsimsError, match=r"rsf\['LLZTO'\]: expected a positive factor"):
        quantify(li, ph, standards={"LCO": "LiCoO2"}, interior="500 nm", rsf={"LLZTO": -1})
    # a factor for a standard silently replaced its calibration (LCO at 50 at. % with its nominal 25 in the record)
    with pytest.raises(PfibsimsError, match=r"rsf\['LCO'\]: 'LCO' is a standard, calibrated on its interior; give rsf only "
                                            r"for phases without a standard"):
        quantify(li, ph, interior="500 nm", rsf={"LCO": 1.0})
    with pytest.raises(PfibsimsError, match="background: expected counts"):
        quantify(li, ph, interior="500 nm", background=-2)
    with pytest.raises(PfibsimsError, match="psf: expected a positive length"):
        quantify(li, ph, interior="500 nm", psf="0 nm")
    with pytest.raises(UnitsError, match="interior"):
        quantify(li, ph, interior="5 kV")
    # a list for a mapping: raw TypeError / AttributeError
    with pytest.raises(PfibsimsError, match=r"densities: expected a mapping phase -> density .* got \['5 g/cm\^3'\]"):
        quantify(li, ph, interior="500 nm", units="atoms/cm^3", densities=["5 g/cm^3"])
    with pytest.raises(PfibsimsError, match=r"rsf: expected a mapping phase -> factor .* got \[1.25\]"):
        quantify(li, ph, standards={"LCO": "LiCoO2"}, interior="500 nm", rsf=[1.25])
    # labels whose flags repeat a value (both phases read one label), or span more than a lookup table holds (MemoryError)
    with pytest.raises(DataModelError, match=r"phases: expected distinct flag_values, got \[0, 0\]"):
        quantify(li, ph.assign_attrs(flag_values=[0, 0]), interior="500 nm")
    with pytest.raises(DataModelError, match=r"phases: expected distinct flag_meanings, got \['LCO', 'LCO'\]"):
        quantify(li, ph.assign_attrs(flag_meanings="LCO LCO"), interior="500 nm")
    with pytest.raises(DataModelError, match=r"phases: expected flag_values within a range of 2\*\*24, got 0 to 1099511627776"):
        quantify(li, ph.assign_attrs(flag_values=[0, 2**40]), standards={"LCO": "LiCoO2"}, interior="500 nm")


def test_quantify_standard_or_background_phase_without_counts():
    # a standard (or the background phase) that the labels name but the volume does not hold, or holds only where
    # the counts are NaN (outside the SIMS field): the message blamed the interior ('give a smaller interior') or
    # another standard ('LLZTO: its interior holds no counts above the background (nan)')
    li, ph, _ = _two_phase()
    three = ph.assign_attrs(flag_values=[0, 1, 2], flag_meanings="LCO LLZTO Al2O3")
    with pytest.raises(PfibsimsError, match=r"standards\['Al2O3'\]: the volume holds no voxel of phase 'Al2O3' with "
                                            r"finite counts; leave it out of standards"):
        quantify(li, three, interior="500 nm", standards={"LCO": "LiCoO2", "Al2O3": "LiAlO2"})
    with pytest.raises(PfibsimsError, match=r"background: the volume holds no voxel of phase 'Al2O3' with finite counts"):
        quantify(li, three, interior="500 nm", background="Al2O3")
    outside = li.where(ph != 0)  # LCO outside the SIMS field
    with pytest.raises(PfibsimsError, match=r"standards\['LCO'\]: the volume holds no voxel of phase 'LCO' with finite counts"):
        quantify(outside, ph, interior="500 nm")
    # a phase that has no standard may be absent: nothing to convert
    q = quantify(li, three, interior="500 nm", psf="100 nm")
    assert np.isfinite(q.values).any()


def test_quantify_uncertainty_matches_a_monte_carlo_of_poisson_counts():
    """Redraw the Poisson counts (and so the calibration) 150 times: the spread of each voxel's concentration is
    the reported standard uncertainty (counting statistics plus the standard's calibration), phase by phase."""
    rng = np.random.default_rng(0)
    lab = np.zeros((1, 20, 40), np.uint8)
    lab[..., 20:] = 1
    lam = np.where(lab == 0, 2.0 * 25.0, 0.8 * LLZTO_PERCENT) + 4.0
    ph = None
    qs, us = [], []
    for _ in range(150):
        ds = stack({"Li6": rng.poisson(lam).astype(float)}, pixel_size="100 nm")
        if ph is None:
            ph = xr.DataArray(lab, dims=ds.Li6.dims, coords=ds.Li6.coords,
                              attrs={"flag_values": [0, 1], "flag_meanings": "LCO LLZTO"})
        q = quantify(ds.Li6, ph, interior="500 nm", background=4.0)
        qs.append(q.values)
        us.append(q.uncertainty.values)
    spread, reported = np.std(qs, axis=0, ddof=1), np.mean(us, axis=0)
    for p in (0, 1):
        assert np.median(spread[lab == p] / reported[lab == p]) == pytest.approx(1.0, abs=0.06)
    truth = np.where(lab == 0, 25.0, LLZTO_PERCENT)
    assert np.abs(np.mean(qs, axis=0) - truth).max() < 4 * reported.max() / np.sqrt(150)  # no bias beyond noise


# -- the phantom: yield differs by phase -----------------------------------------------------
def _fused_phantom(**kw):
    """A phantom fused with its true drift and transform (the quantification alone is under test)."""
    eds, sims, truth = pfs.synthetic.cathode(seed=3, n_slices=3, eds_shape=(96, 128), sims_shape=(192, 192), **kw)
    vol = pfs.fuse(eds, sims, drift=truth.drift, register=Affine.from_attrs(truth.attrs)).compute()
    return vol, truth.compute()


@pytest.fixture(scope="module")
def phantom():
    """Counting noise small (sims_dose 20: ~600 counts in LCO), so the method's own error shows."""
    return _fused_phantom(sims_dose=20.0)


@pytest.fixture(scope="module")
def phantom_li7():
    """The default dose (~30 counts in LCO), with Li7."""
    return _fused_phantom(li7=True)


def _label(labels, name):
    """A phase's label value, by name (CF flags)."""
    return np.asarray(labels.attrs["flag_values"])[labels.attrs["flag_meanings"].split().index(name)]


def _median_error(q, truth, phase):
    lab, ct = truth.phase.values, truth.li_percent.values
    m = (lab == _label(truth.phase, phase)) & np.isfinite(q)
    return float(np.median(np.abs(q[m] - ct[m]) / ct[m]))


def test_quantify_phantom_per_phase_factors_within_10_percent(phantom):
    vol, truth = phantom
    bg = json.loads(truth.attrs["sims_counts"])["Li6"]["background"]
    q = quantify(vol.Li6, truth.phase, interior="400 nm", background=bg, psf=truth.attrs["sims_blur"]).values
    for phase in ("LLZTO", "LCO"):
        assert _median_error(q, truth, phase) < 0.10
    depleted = (truth.phase.values == _label(truth.phase, "LLZTO")) & (truth.li_percent.values < 0.9 * LLZTO_PERCENT)
    depleted &= np.isfinite(q)
    ct = truth.li_percent.values
    assert depleted.sum() > 100
    assert np.median(np.abs(q[depleted] - ct[depleted]) / ct[depleted]) < 0.10
    # one global factor (LCO's for every voxel) misses LLZTO by about 2x
    one = quantify(vol.Li6, truth.phase, interior="400 nm", background=bg, standards={"LCO": "LiCoO2"},
                   rsf={"LLZTO": "LCO"}).values
    assert 0.4 < _median_error(one, truth, "LLZTO") < 0.6  # yields 1.99 : 1, so ~50 % low


def test_quantify_uncertainty_covers_counting_noise(phantom_li7):
    vol, truth = phantom_li7
    bg = json.loads(truth.attrs["sims_counts"])["Li6"]["background"]
    q = quantify(vol.Li6, truth.phase, interior="400 nm", background=bg, psf=truth.attrs["sims_blur"])
    c, u, ct = q.values, q.uncertainty.values, truth.li_percent.values
    m = (truth.phase.values == _label(truth.phase, "LLZTO")) & np.isfinite(c)  # uniform bulk, depleted shell
    inside = np.abs(c[m] - ct[m]) <= u[m]
    assert 0.6 < inside.mean() < 0.9  # ~68 % for one standard uncertainty (Poisson overstated after resampling)


# -- isotope ratios ----------------------------------------------------------------------------
def _pair(a, b, **attrs):
    ds = stack({"Li6": np.asarray(a, float), "Li7": np.asarray(b, float)}, pixel_size="72 nm")
    return ds.Li6, ds.Li7


def test_isotope_ratio_delta_by_hand():
    a, b = _pair(np.full((1, 2, 3), 90.0), np.full((1, 2, 3), 1000.0))
    r = isotope_ratio(a, b)
    natural = 7.59 / 92.41
    assert r.attrs["ratio"] == "6Li/7Li"
    assert r.attrs["natural_ratio"] == pytest.approx(natural)
    np.testing.assert_allclose(r.ratio.values, 0.09, rtol=1e-6)
    np.testing.assert_allclose(r.delta.values, (0.09 / natural - 1) * 1000, rtol=1e-5)
    assert r.delta.attrs["units"] == "permille"
    assert "delta" not in isotope_ratio(a, b, natural=None)
    np.testing.assert_allclose(isotope_ratio(a, b, natural=0.1).delta.values, -100.0, rtol=1e-5)


def test_isotope_ratio_intervals_match_scipy_exact_binomial():
    k = np.array([[[0.0, 3, 17, 250]]])
    m = np.array([[[12.0, 40, 0, 3000]]])
    r = isotope_ratio(*_pair(k, m), confidence=0.9)
    for i in range(4):
        if m[0, 0, i] == 0:
            assert np.isnan(r.ratio.values[0, 0, i])
            assert np.isinf(r.ratio_high.values[0, 0, i])
            continue
        ci = st.binomtest(int(k[0, 0, i]), int(k[0, 0, i] + m[0, 0, i])).proportion_ci(0.9, method="exact")
        assert r.ratio_low.values[0, 0, i] == pytest.approx(ci.low / (1 - ci.low), rel=1e-5, abs=1e-12)
        assert r.ratio_high.values[0, 0, i] == pytest.approx(ci.high / (1 - ci.high), rel=1e-5)


def test_isotope_ratio_of_infinite_counts_is_nan():
    # an infinite count is no count: 5 / inf gave a ratio of 0 (delta -1000 per mil), inf / 5 a ratio of inf
    r = isotope_ratio(*_pair([[[5.0, np.inf, np.nan, 4.0]]], [[[np.inf, 5.0, 5.0, 8.0]]]))
    np.testing.assert_array_equal(np.isnan(r.ratio.values), [[[True, True, True, False]]])
    np.testing.assert_array_equal(np.isnan(r.delta.values), [[[True, True, True, False]]])
    assert float(r.ratio[0, 0, 3]) == 0.5
    assert np.isnan(r.ratio_low.values[..., :3]).all()
    assert np.isnan(r.ratio_high.values[..., :3]).all()


def test_isotope_ratio_interval_coverage_on_poisson_counts():
    rng = np.random.default_rng(7)
    true = 0.0821
    b = rng.poisson(400.0, (1, 60, 60)).astype(float)
    a = rng.poisson(400.0 * true, (1, 60, 60)).astype(float)
    r = isotope_ratio(*_pair(a, b))
    inside = (r.ratio_low.values <= true) & (true <= r.ratio_high.values)
    assert 0.93 < inside.mean() < 0.99  # exact intervals are conservative: at least 95 %


@pytest.mark.parametrize("lazy", [False, True])
def test_isotope_ratio_dead_time_and_phases(lazy):
    true_a = np.array([[[100.0, 2000, 50000, 0.0]]])
    true_b = np.array([[[1000.0, 20000, 500000, 10.0]]])
    tau, dwell = 20e-9, 1e-3  # s
    measured = [t / (1 + t * tau / dwell) for t in (true_a, true_b)]  # non-paralysable loss
    a, b = _pair(*measured)
    lab = xr.DataArray(np.array([[[0, 0, 1, 1]]], np.uint8), dims=a.dims, coords=a.coords,
                       attrs={"flag_values": [0, 1], "flag_meanings": "LLZTO LCO"})
    if lazy:
        a, b, lab = a.chunk({"x": 2}), b.chunk({"x": 2}), lab.chunk({"x": 2})
    r = isotope_ratio(a, b, dead_time="20 ns", dwell_time="1 ms", phases=lab)
    assert isinstance(r.ratio.data, da.Array) == lazy
    np.testing.assert_allclose(r.ratio.values[0, 0, :3], 0.1, rtol=1e-5)
    np.testing.assert_allclose(r.phase_counts_a.values, [2100.0, 50000.0], rtol=1e-9)
    np.testing.assert_allclose(r.phase_ratio.values, [2100 / 21000, 50000 / 500010], rtol=1e-9)
    assert list(r.phase.values) == ["LLZTO", "LCO"]
    uncorrected = isotope_ratio(a, b)
    assert uncorrected.ratio.values[0, 0, 2] > 0.1  # the 7Li count rate loses more counts
    saturated = isotope_ratio(*_pair(np.array([[[10.0]]]), np.array([[[60000.0]]])), dead_time="20 ns", dwell_time="1 ms")
    assert np.isnan(saturated.ratio.values).all()  # 60000 counts x 20 ns > 1 ms: the detector saturates


def test_isotope_ratio_phantom_is_natural(phantom_li7):
    vol, truth = phantom_li7
    bg = json.loads(truth.attrs["sims_counts"])
    r = isotope_ratio(vol.Li6, vol.Li7, phases=truth.phase, background=(bg["Li6"]["background"], bg["Li7"]["background"]))
    true = 1 / pfs.synthetic.LI7_RATIO  # the phantom's 6Li/7Li
    for phase in ("LLZTO", "LCO"):
        row = r.sel(phase=phase)
        assert float(row.phase_ratio_low) <= true <= float(row.phase_ratio_high)
        assert abs(float(row.phase_delta)) < 10  # per mil; natural 6Li/7Li = 7.59 / 92.41


def test_isotope_ratio_errors():
    a, b = _pair(np.ones((1, 2, 2)), np.ones((1, 2, 2)))
    with pytest.raises(PfibsimsError, match="dead_time, dwell_time: expected both"):
        isotope_ratio(a, b, dead_time="20 ns")
    with pytest.raises(UnitsError, match="dwell_time"):
        isotope_ratio(a, b, dead_time="20 ns", dwell_time="1 nm")
    with pytest.raises(PfibsimsError, match="confidence: expected a level"):
        isotope_ratio(a, b, confidence=95)
    with pytest.raises(PfibsimsError, match="natural: expected 'auto', None or a positive"):
        isotope_ratio(a, b, natural=-1)
    with pytest.raises(PfibsimsError, match="natural: expected 'auto', None or a positive"):
        isotope_ratio(a, b, natural=np.inf)  # every delta was -1000 per mil
    with pytest.raises(UnitsError, match="b: expected raw SIMS counts"):
        isotope_ratio(a, b.assign_attrs(units="1"))
    with pytest.raises(PfibsimsError, match="background: expected counts"):
        isotope_ratio(a, b, background=3)
    for bad in ((np.nan, 0.0), (0.0, -2.0), (np.inf, 1.0)):  # NaN made every ratio NaN, a negative one added counts
        with pytest.raises(PfibsimsError, match=r"background: expected counts \(background_a, background_b\) >= 0"):
            isotope_ratio(a, b, background=bad)


def test_depletion_profile_in_atomic_percent(phantom):
    """boundary_profile and depletion_depth on the quantified map: the phantom's 300 nm ramp from
    7.46 to 27.35 at. % inside LLZTO surfaces, read in at. % (the probe blur widens the ramp a little)."""
    vol, truth = phantom
    bg = json.loads(truth.attrs["sims_counts"])["Li6"]["background"]
    q = quantify(vol.Li6, truth.phase, interior="400 nm", background=bg, psf=truth.attrs["sims_blur"])
    prof = pfs.boundary_profile(q, truth.phase, "LLZTO", distances=("-1 um", "1 um"))
    assert prof["mean"].attrs["units"] == "percent"
    fit = pfs.depletion_depth(prof)
    assert fit["bulk"].attrs["units"] == "percent"
    assert fit["surface"].attrs["units"] == "percent"
    assert float(fit["bulk"]) == pytest.approx(LLZTO_PERCENT, rel=0.03)
    assert float(fit["depth"]) == pytest.approx(300.0, rel=0.25)
    surface = json.loads(truth.attrs["li_percent"])["LLZTO_surface"]
    assert surface < float(fit["surface"]) < 1.5 * surface
    # LCO's factor for every phase puts LLZTO's bulk at about half its Li: the matrix effect
    one = quantify(vol.Li6, truth.phase, interior="400 nm", background=bg, standards={"LCO": "LiCoO2"},
                   rsf={"LLZTO": "LCO"})
    bulk_one = float(pfs.depletion_depth(pfs.boundary_profile(one, truth.phase, "LLZTO", distances=("-1 um", "1 um")))["bulk"])
    assert 0.4 * LLZTO_PERCENT < bulk_one < 0.6 * LLZTO_PERCENT


def test_quantify_and_isotope_ratio_take_pint_quantified_counts():
    """pint-xarray's quantified counts were refused ("got units None"): they are dequantified at the edge."""
    pint_xarray = pytest.importorskip("pint_xarray")  # noqa: F841
    li, ph, _ = _two_phase(background=3.0)
    q = quantify(li.pint.quantify(), ph, interior="500 nm", background=3.0)
    plain = quantify(li, ph, interior="500 nm", background=3.0)
    np.testing.assert_array_equal(q.values, plain.values)
    np.testing.assert_array_equal(q.uncertainty.values, plain.uncertainty.values)
    assert q.attrs["units"] == "percent"
    twice = li.copy(data=2 * li.values)
    r = isotope_ratio(li.pint.quantify(), twice.pint.quantify())
    xr.testing.assert_equal(r, isotope_ratio(li, twice))
    with pytest.raises(UnitsError, match=r"li: expected raw SIMS counts .* got units 'percent'"):
        quantify(li.assign_attrs(units="percent").pint.quantify(), ph, interior="500 nm")


def _with_void():
    """LCO | LLZTO | a void labelled -1 (a negative CF flag value, int8 labels), Li6 and Li7 counts."""
    lab = np.zeros((1, 40, 60), np.int8)
    lab[..., 20:40] = 1
    lab[..., 40:] = -1
    li6 = np.where(lab == 0, 50.0, np.where(lab == 1, 20.0, 7.0))
    ds = stack({"Li6": li6, "Li7": 12 * li6 + 1}, pixel_size="100 nm")
    ph = xr.DataArray(lab, dims=ds.Li6.dims, coords=ds.Li6.coords,
                      attrs={"flag_values": [-1, 0, 1], "flag_meanings": "void LCO LLZTO"})
    return ds, ph, lab


@pytest.mark.parametrize("psf", [None, "100 nm"])
def test_quantify_leaves_a_phase_with_a_negative_flag_value_unquantified(psf):
    # the void (label -1, no standard) was converted with LCO's factor (7 counts / 2 = 3.5 at. %): labels were
    # clipped to the lookup tables' range, so -1 read the table of label 0
    ds, ph, lab = _with_void()
    q = quantify(ds.Li6, ph, interior="500 nm", psf=psf)
    assert np.isnan(q.values[lab == -1]).all()
    inner = np.zeros(lab.shape, bool)
    inner[..., 5:15] = inner[..., 25:35] = True  # away from the boundaries (the mixing model on unblurred counts)
    np.testing.assert_allclose(q.values[(lab == 0) & inner], 25.0, rtol=1e-5)
    np.testing.assert_allclose(q.values[(lab == 1) & inner], LLZTO_PERCENT, rtol=1e-5)
    cal = json.loads(q.attrs[pfs.quantification.CALIBRATION])["phases"]
    assert (cal["LCO"]["label"], cal["LLZTO"]["label"]) == (0, 1)
    rsf = quantify(ds.Li6, ph, interior="500 nm", rsf={"void": "LCO"})
    np.testing.assert_allclose(rsf.values[lab == -1], 3.5, rtol=1e-6)
    assert json.loads(rsf.attrs[pfs.quantification.CALIBRATION])["phases"]["void"]["label"] == -1


def test_isotope_ratio_per_phase_with_a_negative_flag_value():
    # the void's counts (label -1) were lost (0 counts): the lookup table was indexed by the raw label value
    ds, ph, lab = _with_void()
    r = isotope_ratio(ds.Li6, ds.Li7, phases=ph)
    assert list(r.label.values) == [-1, 0, 1]
    for k, v in enumerate((-1, 0, 1)):
        a, b = ds.Li6.values[lab == v].sum(), ds.Li7.values[lab == v].sum()
        assert float(r.phase_counts_a[k]) == pytest.approx(a)
        assert float(r.phase_counts_b[k]) == pytest.approx(b)
        assert float(r.phase_ratio[k]) == pytest.approx(a / b)


def test_isotope_ratio_of_a_real_nanosims_image(shared_data):
    """The OpenMIMS sample (Cameca NanoSIMS, 12C 13C 12C14N 12C15N): 13C/12C against the numpy ratio of sums and
    scipy's exact binomial interval, delta against the natural 13C/12C (IUPAC 2009: 1.07 / 98.93), which 'auto'
    did not know (no delta for C)."""
    ds = pfs.read_sims(shared_data / "sims" / "OpenMIMS_doc_051117_05-32dRe-03b.im")
    a, b = ds.C13.values.astype(float), ds.C12.values.astype(float)
    whole = xr.DataArray(np.zeros(ds.C12.shape, np.uint8), dims=ds.C12.dims, coords=ds.C12.coords,
                         attrs={"flag_values": [0], "flag_meanings": "field"})
    r = isotope_ratio(ds.C13, ds.C12, phases=whole)
    natural = 1.07 / 98.93
    assert r.attrs["ratio"] == "13C/12C"
    assert r.attrs["natural_ratio"] == pytest.approx(natural)
    with np.errstate(divide="ignore", invalid="ignore"):
        want = np.where(b > 0, a / b, np.nan)
    np.testing.assert_allclose(r.ratio.values, want, rtol=1e-6)
    total = a.sum() / b.sum()
    assert float(r.phase_ratio[0]) == pytest.approx(total, rel=1e-12)
    ci = st.binomtest(int(a.sum()), int(a.sum() + b.sum())).proportion_ci(0.95, method="exact")
    assert float(r.phase_ratio_low[0]) == pytest.approx(ci.low / (1 - ci.low), rel=1e-9)
    assert float(r.phase_ratio_high[0]) == pytest.approx(ci.high / (1 - ci.high), rel=1e-9)
    assert float(r.phase_delta[0]) == pytest.approx((total / natural - 1) * 1000, rel=1e-9)
    assert -100 < float(r.phase_delta[0]) < 0  # an unlabelled sample, a few % of instrumental mass fractionation
    swapped = isotope_ratio(ds.C12, ds.C13, phases=whole)
    assert swapped.attrs["natural_ratio"] == pytest.approx(1 / natural)
    assert float(swapped.phase_ratio[0]) == pytest.approx(1 / total, rel=1e-12)


def _two_phase_map():
    from pfibsims.dataset import stack

    lab = np.zeros((1, 40, 40), np.uint8)
    lab[:, :, 20:] = 1
    ds = stack({"Li6": np.where(lab == 0, 50.0, 20.0)}, pixel_size="100 nm")
    ph = xr.DataArray(lab, dims=ds.Li6.dims, coords=ds.Li6.coords, attrs={"flag_values": [0, 1], "flag_meanings": "LCO LLZTO"})
    return ds, ph


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"element": 5}, r"element: expected an element symbol such as 'Li', got 5"),
    ({"element": "Li6"}, r"element: expected an element symbol such as 'Li', got 'Li6' \(an isotope"),
    ({"element": "6Li"}, r"element: expected an element symbol such as 'Li', got '6Li' \(an isotope"),
    ({"element": "Xx"}, r"element: expected an element symbol such as 'Li', got 'Xx'"),
    ({"element": ""}, r"element: expected an element symbol such as 'Li', got ''"),
    ({"min_fraction": True}, r"min_fraction: expected a number in \(0, 1\], got True"),
])
def test_quantify_names_the_invalid_argument(kwargs, match):
    # element "Li6", 5 or "Xx" blamed the standards ("standards['LCO']: expected a formula containing Li6"),
    # min_fraction=True was taken as 1
    ds, ph = _two_phase_map()
    with pytest.raises(PfibsimsError, match=match):
        quantify(ds.Li6, ph, standards={"LCO": "LiCoO2"}, **kwargs)


def test_quantify_and_isotope_ratio_name_the_phases_argument():
    # phases given as numpy, or on another grid, were reported as "labels" / "b" (names of other functions' arguments)
    ds, ph = _two_phase_map()
    with pytest.raises(DataModelError, match="phases: expected an xarray DataArray"):
        quantify(ds.Li6, ph.values, standards={"LCO": "LiCoO2"})
    with pytest.raises(DataModelError, match="phases: expected CF attrs 'flag_values'"):
        quantify(ds.Li6, ph.drop_attrs(), standards={"LCO": "LiCoO2"})
    with pytest.raises(GridError, match="phases: expected the grid of li"):
        quantify(ds.Li6, ph.isel(x=slice(1, None)), standards={"LCO": "LiCoO2"})
    li7 = ds.Li6.copy().rename("Li7").assign_attrs(isotope="7Li", mass=7)
    with pytest.raises(GridError, match="phases: expected the grid of a"):
        isotope_ratio(ds.Li6, li7, phases=ph.isel(x=slice(1, None)))


@pytest.mark.parametrize("psf", [None, "100 nm"])
def test_quantify_uncertainty_of_a_zero_count_voxel_has_a_one_count_floor(psf):
    # a voxel with no count had a counting uncertainty of 0 (Poisson variance = counts = 0): c = 0 +- 0 percent.
    # Zero observed counts do not make the rate exactly zero; the variance is floored at one count.
    ds, ph = _two_phase_map()
    counts = ds.Li6.values.copy()
    counts[0, 5:8, 2:4] = 0.0  # in the LCO standard's interior (the volume's edge is not a boundary)
    counts[0, 30, 30] = 0.0  # in LLZTO
    li = ds.Li6.copy(data=counts)
    q = quantify(li, ph, standards={"LCO": "LiCoO2", "LLZTO": "Li6.4La3Zr1.4Ta0.6O12"}, interior="500 nm", psf=psf)
    cal = json.loads(q.attrs["pfibsims:calibration"])["phases"]
    zero = counts == 0
    lab = ph.values
    for k, name in enumerate(("LCO", "LLZTO")):
        sel = zero & (lab == k)
        s, urel = cal[name]["sensitivity"], cal[name]["sensitivity_rel_uncertainty"]
        c = q.values[sel]
        if psf is None:  # by hand: c = 0 / S, u^2 = 1 count / S^2 + (c urel)^2
            np.testing.assert_allclose(c, 0.0, atol=1e-6)
            np.testing.assert_allclose(q.uncertainty.values[sel], math.sqrt(1.0 / s**2), rtol=1e-6)
        assert (q.uncertainty.values[sel] >= 1.0 / s * (1 - 1e-6)).all()  # at least one count's worth
        if psf is None:  # voxels with counts: unchanged, u^2 = counts / S^2 + (c urel)^2
            far = ~zero & (lab == k)
            want = np.sqrt(counts[far] / s**2 + (q.values[far] * urel) ** 2)
            np.testing.assert_allclose(q.uncertainty.values[far], want, rtol=1e-6)


def test_quantify_level_standard_error_includes_the_background_phase():
    # the standard's level is (its mean - the background phase's mean): its standard error was the standard's
    # alone; by hand it is sqrt(se_std^2 + se_bg^2), each se = std(ddof=1) / sqrt(n) over the voxels used
    from pfibsims.dataset import stack

    rng = np.random.default_rng(11)
    lab = np.zeros((1, 40, 60), np.uint8)
    lab[:, :, 30:] = 1
    counts = np.where(lab == 0, rng.poisson(50.0, lab.shape), rng.poisson(6.0, lab.shape)).astype(np.float64)
    ds = stack({"Li6": counts}, pixel_size="100 nm")
    ph = xr.DataArray(lab, dims=ds.Li6.dims, coords=ds.Li6.coords, attrs={"flag_values": [0, 1], "flag_meanings": "LCO SP"})
    q = quantify(ds.Li6, ph, standards={"LCO": "LiCoO2"}, background="SP", interior="0 nm")  # every voxel is interior
    cal = json.loads(q.attrs["pfibsims:calibration"])
    std, bg = counts[lab == 0], counts[lab == 1]
    se_std, se_bg = std.std(ddof=1) / math.sqrt(std.size), bg.std(ddof=1) / math.sqrt(bg.size)
    row = cal["phases"]["LCO"]
    assert row["sem_counts"] == pytest.approx(se_std, rel=1e-10)
    assert cal["phases"]["SP"]["sem_counts"] == pytest.approx(se_bg, rel=1e-10)
    assert row["level"] == pytest.approx(std.mean() - bg.mean(), rel=1e-12)
    assert row["sem_level"] == pytest.approx(math.hypot(se_std, se_bg), rel=1e-10)
    assert row["sensitivity_rel_uncertainty"] == pytest.approx(math.hypot(se_std, se_bg) / (std.mean() - bg.mean()), rel=1e-10)
    assert cal["phases"]["SP"]["sem_level"] == 0.0  # the background's own level is 0 by definition
    given = json.loads(quantify(ds.Li6, ph, standards={"LCO": "LiCoO2"}, background=6.0, interior="0 nm")
                       .attrs["pfibsims:calibration"])["phases"]["LCO"]  # a given background has no error
    assert given["sensitivity_rel_uncertainty"] == pytest.approx(se_std / (std.mean() - 6.0), rel=1e-10)


def test_isotope_ratio_natural_of_molecular_ions(shared_data):
    """The OpenMIMS NanoSIMS image's CN- ions (isotope attrs '12C 15N', '12C 14N'): 'auto' gave no delta; the
    natural ratio of two isotopologues is that of their differing isotopes, times the multinomial counts of
    identical atoms (by hand: 15N/14N = 0.364 / 99.636; 16O18O/16O2 = 2 x 0.205 / 99.757)."""
    ds = pfs.read_sims(shared_data / "sims" / "OpenMIMS_doc_051117_05-32dRe-03b.im")
    r = isotope_ratio(ds.C12N15, ds.C12N14)
    assert r.attrs["natural_ratio"] == pytest.approx(0.364 / 99.636, rel=1e-12)
    np.testing.assert_allclose(r.delta.values, (r.ratio.values / (0.364 / 99.636) - 1) * 1000, rtol=1e-5)
    ones = np.ones((1, 2, 2))
    cases = [("16O 18O", "16O2", 2 * 0.205 / 99.757), ("12C15N-", "12C14N-", 0.364 / 99.636),
             ("13C 12C", "12C2", 2 * 1.07 / 98.93), ("7Li", "6Li", 92.41 / 7.59)]
    for ia, ib, want in cases:
        a = xr.DataArray(ones, dims=("z", "y", "x"), name="a", attrs={"units": "counts", "isotope": ia})
        b = xr.DataArray(ones, dims=("z", "y", "x"), name="b", attrs={"units": "counts", "isotope": ib})
        assert isotope_ratio(a, b).attrs["natural_ratio"] == pytest.approx(want, rel=1e-12), (ia, ib)
    # not isotopologues of one molecule (CN- against C-), or elements without a table (Fe): no reference, no delta
    assert "delta" not in isotope_ratio(ds.C12N14, ds.C12)
    fe = stack({"Fe56": ones, "Fe54": ones}, pixel_size="50 nm")
    assert "delta" not in isotope_ratio(fe.Fe54, fe.Fe56)


@pytest.mark.parametrize(("names", "match"), [
    (("Xx99", "Xx98"), r"a: isotope '99Xx': expected an element symbol such as 'Li', got 'Xx'"),
    (("Li8", "Li7"), r"a: isotope '8Li': natural='auto' knows Li at masses \[6, 7\] \(IUPAC 2009\), not \[8\]; "
                     r"give natural= the reference ratio a/b, or None"),
    (("Li6", "Li99"), r"b: isotope '99Li': natural='auto' knows Li at masses \[6, 7\]"),
])
def test_isotope_ratio_auto_natural_of_an_unknown_isotope_is_an_error(names, match):
    # an unknown element or a mass the table lacks gave no delta, silently, as if no reference was asked for
    ones = np.ones((1, 2, 2))
    ds = stack({names[0]: ones, names[1]: 2 * ones}, pixel_size="50 nm")
    with pytest.raises(PfibsimsError, match=match):
        isotope_ratio(ds[names[0]], ds[names[1]])
    assert "delta" not in isotope_ratio(ds[names[0]], ds[names[1]], natural=None)


def test_isotope_ratio_auto_reads_a_float_mass_without_an_isotope_attr():
    # a reader that records mass 7.0 and element 'Li' but no isotope label (e.g. a Hiden text header) keeps 'auto'
    ones = xr.DataArray(np.ones((1, 2, 2)), dims=("z", "y", "x"))
    a = ones.assign_attrs(units="counts", element="Li", mass=6.0)
    b = ones.assign_attrs(units="counts", element="Li", mass=7.0)
    assert isotope_ratio(a, b).attrs["natural_ratio"] == pytest.approx(7.59 / 92.41, rel=1e-12)
    assert "delta" not in isotope_ratio(a, b.assign_attrs(mass=7.016))  # not a mass number: no reference


def test_quantify_a_one_voxel_background_phase_has_its_counting_error():
    # one voxel has no sample standard deviation: the background's standard error was NaN, and with it every
    # level's and every uncertainty; it is now that voxel's Poisson error, sqrt(max(counts, 1)), by hand
    from pfibsims.dataset import stack

    rng = np.random.default_rng(5)
    lab = np.zeros((1, 30, 40), np.uint8)
    lab[0, 29, 39] = 1  # one background voxel, 9 counts
    counts = rng.poisson(50.0, lab.shape).astype(np.float64)
    counts[0, 29, 39] = 9.0
    ds = stack({"Li6": counts}, pixel_size="100 nm")
    ph = xr.DataArray(lab, dims=ds.Li6.dims, coords=ds.Li6.coords, attrs={"flag_values": [0, 1], "flag_meanings": "LCO SP"})
    q = quantify(ds.Li6, ph, standards={"LCO": "LiCoO2"}, background="SP", interior="0 nm")
    cal = json.loads(q.attrs["pfibsims:calibration"])
    assert cal["phases"]["SP"]["voxels"] == 1
    assert cal["phases"]["SP"]["sem_counts"] == pytest.approx(3.0, rel=1e-12)  # sqrt(9)
    std = counts[lab == 0]
    se_std = std.std(ddof=1) / math.sqrt(std.size)
    assert cal["phases"]["LCO"]["sem_level"] == pytest.approx(math.hypot(se_std, 3.0), rel=1e-10)
    assert np.isfinite(q.uncertainty.values[lab == 0]).all()
    counts[0, 29, 39] = 0.0  # no count: at least one count's error
    q0 = quantify(stack({"Li6": counts}, pixel_size="100 nm").Li6, ph, standards={"LCO": "LiCoO2"}, background="SP",
                  interior="0 nm")
    assert json.loads(q0.attrs["pfibsims:calibration"])["phases"]["SP"]["sem_counts"] == 1.0
