"""Colocalisation as Fiji's Coloc 2 defines it, against Coloc 2's own test images and asserted values.

The images are byte copies of fiji/Colocalisation_Analysis src/test/resources
(../shared/data/coloc2, see SOURCES.md); the expected numbers are those its
JUnit tests assert (src/test/java/sc/fiji/coloc/tests/*). Kendall's tau and
Spearman's rho are also compared with scipy and a brute-force count, Li's ICQ
with a hand count, Costes' significance test with Costes' own simulation
(fig. 3 of Costes et al. 2004, as Coloc 2's CostesSignificanceTest).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.stats as st
import xarray as xr

from pfibsims.correlate import colocalisation
from pfibsims.errors import PfibsimsError


def _load(folder, name):
    from PIL import Image, ImageSequence  # Coloc 2's Manders images are LZW-compressed, which Pillow reads

    with Image.open(folder / "coloc2" / name) as im:
        frames = [np.array(page) for page in ImageSequence.Iterator(im)]
    arr = np.stack(frames)
    return xr.DataArray(arr, dims=("z", "y", "x"))


@pytest.fixture
def coloc2(shared_data):
    return lambda name: _load(shared_data, name)


@pytest.fixture
def sample1b(coloc2):
    return coloc2("colocsample1b-green.tif"), coloc2("colocsample1b-red.tif"), coloc2("colocsample1b-mask.tif") > 0


def test_thresholded_manders_at_coloc2_bisection_thresholds(sample1b):
    # MandersColocalizationTest.mandersRealNoisyImagesTest: tM1 0.705665, tM2 0.724752 at (70, 53), with the mask,
    # "the results from a Costes Autothreshold using bisection implementation of regression"
    green, red, mask = sample1b
    c = colocalisation(green, red, mask=mask, thresholds="bisection", n_iter=0)
    assert (c.threshold_a, c.threshold_b) == (70.0, 53.0)
    assert c.m1 == pytest.approx(0.705665, abs=1e-6)
    assert c.m2 == pytest.approx(0.724752, abs=1e-6)
    given = colocalisation(green, red, mask=mask, thresholds=(70, 53), n_iter=0)
    assert (given.m1, given.m2) == (c.m1, c.m2)
    # the older definition, kept under its own name: a > T_a and b > T_b, over a > T_a
    a, b = green.values[mask].astype(float), red.values[mask].astype(float)
    both = (a > 70) & (b > 53)
    assert c.m1_both_above == pytest.approx(a[both].sum() / a[a > 70].sum())
    assert c.m2_both_above == pytest.approx(b[both].sum() / b[b > 53].sum())
    # at Costes' thresholds Pearson's r below them is about 0 (Coloc 2: a < T_a or b < T_b)
    below = (a < 70) | (b < 53)
    assert c.pearson_below == pytest.approx(np.corrcoef(a[below], b[below])[0, 1], abs=1e-12)
    above = (a > 70) | (b > 53)
    assert c.pearson_above == pytest.approx(np.corrcoef(a[above], b[above])[0, 1], abs=1e-12)


def test_costes_stepper_stops_where_r_below_reaches_zero(sample1b):
    green, red, mask = sample1b
    c = colocalisation(green, red, mask=mask, thresholds="costes", n_iter=0)
    a, b = green.values[mask].astype(float), red.values[mask].astype(float)

    def r_below(ta):  # the stepper walks channel 1 (slope < 1) one unit a step, channel 2 on the regression line
        tb = math.floor(ta * c.slope + c.intercept + 0.5)
        sel = (a < ta) | (b < tb)
        return np.corrcoef(a[sel], b[sel])[0, 1], tb

    r_here, tb = r_below(c.threshold_a)
    assert tb == c.threshold_b
    assert r_here < 1e-4
    assert r_below(c.threshold_a + 1)[0] >= 1e-4  # ... one unit after the last above it
    # both regressions walk the same line: the thresholds differ by a few units
    bis = colocalisation(green, red, mask=mask, thresholds="bisection", n_iter=0)
    assert abs(c.threshold_a - bis.threshold_a) <= 3
    assert abs(c.threshold_b - bis.threshold_b) <= 3


def test_pearson_icq_spearman_kendall_on_coloc2_images(sample1b, coloc2):
    green, red, _ = sample1b
    c = colocalisation(green, red, n_iter=0)
    assert c.r == pytest.approx(0.75, abs=0.01)  # PearsonsCorrelationTest.*PositiveCorrTest
    assert 0.34 < c.icq < 0.35  # LiICQTest.liPositiveCorrTest
    assert 0.546 < c.spearman < 0.547  # SpearmanRankTest.spearmanPositiveCorrTest
    a, b = green.values.ravel().astype(float), red.values.ravel().astype(float)
    assert c.spearman == pytest.approx(st.spearmanr(a, b).statistic, abs=1e-12)
    assert c.kendall_tau == pytest.approx(st.kendalltau(a, b).statistic, abs=1e-12)
    # zero correlation stacks: Pearson 0 +- 0.05, ICQ |.| < 0.01, Spearman |.| < 0.012
    z = colocalisation(coloc2("greenZstack.tif"), coloc2("redZstack.tif"), n_iter=0)
    assert abs(z.r) < 0.05
    assert abs(z.icq) < 0.01
    assert abs(z.spearman) < 0.012


def test_spearman_t_statistic_on_synthetic_negative(coloc2):
    # SpearmanRankTest.statisticsTest / spearmanSyntheticNegCorrTest: rho -0.1743, t -0.6382 on 13 df
    c = colocalisation(coloc2("syntheticNegCh1.tif"), coloc2("syntheticNegCh2.tif"), n_iter=0)
    assert -0.178 < c.spearman < -0.173
    assert c.spearman_t == pytest.approx(-0.6382, abs=1e-3)
    assert c.spearman_df == 13


@pytest.mark.parametrize(
    ("other", "m1", "m2", "r"),
    [("A", 1.0, 1.0, 1.0), ("B", 0.75, 0.75, 0.72), ("C", 0.5, 0.5, 0.44), ("D", 0.25, 0.25, 0.16),
     ("E", 0.0, 0.0, -0.12), ("F", 0.25, 0.3333, 0.22), ("G", 0.25, 0.50, 0.30), ("H", 0.25, 1.00, 0.48),
     ("I", 0.083, 0.75, 0.23)],
)
def test_manders_paper_images(coloc2, other, m1, m2, r):
    # MandersColocalizationTest.mandersPaperImagesTest (M1, M2 above zero) and PearsonsCorrelationTest
    c = colocalisation(coloc2("mandersA.tiff"), coloc2(f"manders{other}.tiff"), thresholds=(0, 0), n_iter=0)
    assert c.m1_above_zero == pytest.approx(m1, abs=1e-3 if other == "I" else 1e-4)
    assert c.m2_above_zero == pytest.approx(m2, abs=1e-4)
    assert c.r == pytest.approx(r, abs=0.01)


def test_commutativity(coloc2):
    # CommutativityTest and AutoThresholdRegressionTest.cummutativityTest: swapping the channels swaps the results
    a, b = coloc2("syntheticNegCh1.tif"), coloc2("syntheticNegCh2.tif")
    for method in ("bisection", "costes"):
        ab = colocalisation(a, b, thresholds=method, n_iter=0)
        ba = colocalisation(b, a, thresholds=method, n_iter=0)
        # float images: pfibsims does not round thresholds to integers (Coloc 2 does), so equal to rounding
        assert (ab.threshold_a, ab.threshold_b) == pytest.approx((ba.threshold_b, ba.threshold_a), rel=1e-12)
    g, r = coloc2("greenZstack.tif"), coloc2("redZstack.tif")
    ab, ba = colocalisation(g, r, n_iter=0), colocalisation(r, g, n_iter=0)
    assert ab.r == pytest.approx(ba.r)
    assert ab.icq == pytest.approx(ba.icq)
    assert ab.spearman == pytest.approx(ba.spearman)
    assert (ab.m1_above_zero, ab.m2_above_zero) == pytest.approx((ba.m2_above_zero, ba.m1_above_zero))


# -- without Coloc 2's images -------------------------------------------------------------------
def _tau_b_brute(x, y):
    """Kendall's tau-b by counting every pair (KendallTauRankCorrelation's definition)."""
    nc = nd = tx = ty = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        s = np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
        nc, nd = nc + (s > 0), nd + (s < 0)
        tx, ty = tx + (x[i] == x[j]), ty + (y[i] == y[j])
    n0 = len(x) * (len(x) - 1) / 2
    return (nc - nd) / math.sqrt((n0 - tx) * (n0 - ty))


def _line(values):
    return xr.DataArray(np.asarray(values, dtype=float), dims="x")


def test_kendall_tau_b_cases():
    # KendallTauTest: Armitage & Berry (1994) p. 466, 23/45; ties (1,3),(1,2),(2,1),(3,1): -0.8
    x, y = [4, 10, 3, 1, 9, 2, 6, 7, 8, 5], [5, 8, 6, 2, 10, 3, 9, 4, 7, 1]
    assert colocalisation(_line(x), _line(y), thresholds=(0, 0), n_iter=0).kendall_tau == pytest.approx(23 / 45, abs=1e-10)
    c = colocalisation(_line([1, 1, 2, 3]), _line([3, 2, 1, 1]), thresholds=(0, 0), n_iter=0)
    assert c.kendall_tau == pytest.approx(-0.8, abs=1e-10)
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 6, 60), rng.integers(0, 6, 60) + rng.integers(0, 2, 60) * rng.integers(0, 6, 60)
    c = colocalisation(_line(a), _line(b), thresholds=(0, 0), n_iter=0)
    assert c.kendall_tau == pytest.approx(_tau_b_brute(a, b), abs=1e-12)
    n = len(a)
    rho = np.corrcoef(st.rankdata(a), st.rankdata(b))[0, 1]  # Spearman: Pearson of mid-ranks
    assert c.spearman == pytest.approx(rho, abs=1e-12)
    assert c.spearman_t == pytest.approx(rho * math.sqrt((n - 2) / (1 - rho**2)))


def test_icq_by_hand():
    a, b = np.array([1.0, 2, 3, 4, 10]), np.array([2.0, 1, 5, 3, 9])
    # means 4 and 4: products (3)(2), (2)(3), (1)(-1), (0)(1), (-6)(-5) -> one negative of five
    c = colocalisation(_line(a), _line(b), thresholds=(0, 0), n_iter=0)
    assert c.icq == pytest.approx(4 / 5 - 0.5)
    assert c.m1 == pytest.approx(1.0)
    assert c.m1_above_zero == pytest.approx(1.0)


def _costes_pair(seed, percent, shape=(256, 256), d=7):
    """Costes et al. (2004) fig. 3, as Coloc 2's CostesSignificanceTest: two independent smooth
    backgrounds (band-limited noise, ~10 px features, as its Perlin noise at scale 0.1) carrying the same
    7-px discs over ``percent`` % of the area, then a Gaussian of sigma 3."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:d, :d]
    disc = (yy - (d - 1) / 2) ** 2 + (xx - (d - 1) / 2) ** 2 <= (d / 2) ** 2
    objects = np.zeros(shape)
    for _ in range(int(shape[0] * shape[1] / 100 * percent / d**2)):
        y, x = rng.integers(0, shape[0] - d, 2)
        objects[y:y + d, x:x + d][disc] = 1.0
    out = []
    for _ in range(2):
        w = rng.standard_normal(shape)
        bg = ndi.gaussian_filter(w, 2.5, mode="wrap") - ndi.gaussian_filter(w, 5.0, mode="wrap")
        bg = (bg - bg.min()) / (bg.max() - bg.min())
        bg = np.where(objects > 0, objects, bg)
        out.append(xr.DataArray(ndi.gaussian_filter(bg, 3.0, mode="mirror")[None], dims=("z", "y", "x")))
    return out


@pytest.mark.slow
def test_costes_significance_detects_three_percent_colocalisation():
    # Coloc 2 asserts P > 0.95 above 3 % colocalised area (P = Phi((r - mean) / sd): high is significant)
    for percent in (3.16, 10.0):
        a, b = _costes_pair(1, percent)
        c = colocalisation(a, b, n_iter=10, psf=3, seed=1)
        assert c.p_value > 0.95, (percent, c)
        assert c.n_randomised_at_least_r == 0
    # independent channels: P is a probability of the null, spread over (0, 1), not pinned near 1; with no
    # correlation the regression line can put a threshold below the data (seed 2), which Coloc 2 warns of
    from pfibsims.errors import EstimationWarning

    with pytest.warns(EstimationWarning, match="thresholds too low"):
        p = [colocalisation(*_costes_pair(s, 0.0), n_iter=10, psf=3, seed=s).p_value for s in range(6)]
    assert 0.15 < np.mean(p) < 0.85, p


def test_costes_randomisation_is_seeded_and_masked():
    a, b = _costes_pair(2, 10.0, shape=(64, 64))
    c1 = colocalisation(a, b, n_iter=8, seed=4)
    assert c1 == colocalisation(a, b, n_iter=8, seed=4)
    assert c1.psf == (3, 3, 3)
    assert c1.thresholds == "bisection"
    holes = a.copy()
    holes[0, :10, :10] = np.nan  # NaNs (outside a field of view) move with their blocks
    c2 = colocalisation(holes, b, n_iter=8, seed=4)
    assert np.isfinite(c2.p_value)
    assert c2.n == a.size - 100


def test_colocalisation_psf_as_a_length():
    from pfibsims.dataset import stack

    rng = np.random.default_rng(0)
    ds = stack({"Zr_La": rng.random((3, 24, 24)), "Co_La": rng.random((3, 24, 24))}, pixel_size="80 nm",
               slice_thickness="60 nm")
    c = colocalisation(ds.Zr_La, ds.Co_La, n_iter=2, psf="240 nm")
    assert c.psf == (4, 3, 3)


def test_colocalisation_errors():
    a = _line(np.arange(10.0))
    with pytest.raises(PfibsimsError, match="thresholds: expected 'bisection', 'costes'"):
        colocalisation(a, a, thresholds="otsu")
    with pytest.raises(PfibsimsError, match="psf: expected a positive number of voxels"):
        colocalisation(a, a, psf=(1, 2))
    with pytest.raises(PfibsimsError, match="n_iter: expected"):
        colocalisation(a, a, n_iter=-1)
    with pytest.raises(PfibsimsError, match="at least 3 valid voxel pairs"):
        colocalisation(a[:2], a[:2])


def test_pearson_of_offset_float_channels_equals_scipy():
    # Coloc 2's "fast" sums of products cancel catastrophically when a channel sits on a large offset
    # (r was 0.7932 for 0.7944 at 1e8): the sums are taken about the means
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (4, 30, 40)).astype(float)
    b = a // 2 + rng.integers(0, 100, a.shape)
    xa, xb = xr.DataArray(a + 1e8, dims=("z", "y", "x")), xr.DataArray(b, dims=("z", "y", "x"))
    c = colocalisation(xa, xb, thresholds=(1e8 + 100, 50), n_iter=0)
    assert c.r == pytest.approx(st.pearsonr(a.ravel(), b.ravel()).statistic, abs=1e-12)
    below, above = (a < 100) | (b < 50), (a > 100) | (b > 50)
    assert c.pearson_below == pytest.approx(np.corrcoef(a[below], b[below])[0, 1], abs=1e-12)
    assert c.pearson_above == pytest.approx(np.corrcoef(a[above], b[above])[0, 1], abs=1e-12)


def test_costes_p_value_of_a_single_block_is_nan():
    # a psf block covering every valid voxel shuffles nothing: p was a confident 0.0 (or 1.0)
    from pfibsims.errors import EstimationWarning

    rng = np.random.default_rng(2)
    a = rng.random((2, 2))
    xa, xb = xr.DataArray(a, dims=("y", "x")), xr.DataArray(a + rng.random((2, 2)), dims=("y", "x"))
    with pytest.warns(EstimationWarning, match=r"psf: one block of \(3, 3\) voxels covers the valid voxels"):
        c = colocalisation(xa, xb, n_iter=5)
    assert math.isnan(c.p_value)
    assert math.isfinite(c.r)
    mask = np.zeros((8, 8), bool)
    mask[2:4, 5:8] = True  # a small region of a larger image: one block too
    big = xr.DataArray(rng.random((8, 8)), dims=("y", "x"))
    with pytest.warns(EstimationWarning, match="one block"):
        assert math.isnan(colocalisation(big, big + rng.random((8, 8)), mask=mask, n_iter=5).p_value)
    assert math.isfinite(colocalisation(big, big + rng.random((8, 8)), mask=mask, n_iter=5, psf=2).p_value)


def test_costes_stepper_walks_below_zero_on_signed_integers():
    # Coloc 2's stepper stops at t < 1 (unsigned images); on int16 data with negative values it stopped
    # there, at thresholds where r below was still 0.7: a shift of both channels shifts the thresholds
    rng = np.random.default_rng(2)
    a = (rng.random((2, 40, 40)) * 200).astype(np.uint8)
    b = (a * 0.5 + rng.random(a.shape) * 50).astype(np.uint8)
    dims = ("z", "y", "x")
    ref = colocalisation(xr.DataArray(a, dims=dims), xr.DataArray(b, dims=dims), n_iter=0, thresholds="costes")
    c = colocalisation(xr.DataArray(a.astype(np.int16) - 100, dims=dims), xr.DataArray(b.astype(np.int16) - 60, dims=dims),
                       n_iter=0, thresholds="costes")
    assert (c.threshold_a, c.threshold_b) == (ref.threshold_a - 100, ref.threshold_b - 60)
    assert c.pearson_below == pytest.approx(ref.pearson_below, abs=1e-9)


@pytest.mark.parametrize("given", [(math.nan, 0.5), (0.5, math.inf), ("0.5", None)])
def test_given_thresholds_must_be_numbers(given):
    # a NaN threshold gave tM1 = 0.84 and tM2 = 0.0 (every comparison with NaN false), no error
    rng = np.random.default_rng(0)
    a = xr.DataArray(rng.random((2, 10, 10)), dims=("z", "y", "x"))
    with pytest.raises(PfibsimsError, match=r"thresholds: expected 'bisection', 'costes' or \(threshold_a, threshold_b\)"):
        colocalisation(a, a + rng.random(a.shape), thresholds=given, n_iter=0)


def test_colocalisation_of_a_real_nanosims_image_equals_scipy(shared_data):
    # a real Cameca NanoSIMS raster (OpenMIMS sample, uint16 counts): 12C- against 12C14N- of the same pixels
    import pfibsims as pfs

    ds = pfs.read_sims(shared_data / "sims" / "OpenMIMS_doc_051117_05-32dRe-03b.im")
    a, b = ds.C12.values.astype(float).ravel(), ds.C12N14.values.astype(float).ravel()
    c = colocalisation(ds.C12, ds.C12N14, n_iter=0)
    assert c.n == a.size
    assert c.r == pytest.approx(st.pearsonr(a, b).statistic, abs=1e-12)
    assert c.spearman == pytest.approx(st.spearmanr(a, b).statistic, abs=1e-12)
    assert c.kendall_tau == pytest.approx(st.kendalltau(a, b).statistic, abs=1e-12)
    ta, tb = c.threshold_a, c.threshold_b
    assert (ta, tb) == (round(ta), round(tb))  # integer data: whole thresholds
    assert c.m1 == pytest.approx(a[(b > 0) & (b >= tb)].sum() / a.sum(), rel=1e-12)
    assert c.m2 == pytest.approx(b[(a > 0) & (a >= ta)].sum() / b.sum(), rel=1e-12)
    below = (a < ta) | (b < tb)
    assert c.pearson_below == pytest.approx(np.corrcoef(a[below], b[below])[0, 1], abs=1e-9)


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_costes_thresholds_below_the_data_warn_as_coloc2(dtype):
    # Coloc 2 (AutoThresholdRegression) adds the warning "thresholds too low" when a threshold falls below its
    # channel's lowest value: two equal ramps from 100 walk (Costes' stepper, r below stays 1) down to t = 1,
    # thresholds (1, 1) under minima of 100; the thresholded results were returned without a word
    from pfibsims.errors import EstimationWarning

    ramp = xr.DataArray((100 + np.arange(400) // 4).astype(dtype).reshape(1, 20, 20), dims=("z", "y", "x"))
    with pytest.warns(EstimationWarning, match=r"thresholds: Costes' thresholds \(1, 1\) fall below the data "
                                                r"\(minima 100, 100\).*thresholds too low"):
        c = colocalisation(ramp, ramp, n_iter=0, thresholds="costes")
    assert (c.threshold_a, c.threshold_b) == (1.0, 1.0)  # Coloc 2's values: the warning does not change them
    assert min(c.threshold_a, c.threshold_b) < int(ramp.min())  # the condition, by hand
