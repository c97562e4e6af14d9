"""The compiled metric kernels (registration/kernels.py) against their numpy twin (the scipy/numpy path
of search.evaluate_many): the same metric values to rounding, on levels with and without NaN, for MI and
NCC, rotations, and points leaving the field."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi

from pfibsims._engine.numba import INSTALLED, use_compiled
from pfibsims.grid import Grid
from pfibsims.registration import kernels, levels, search
from pfibsims.registration.metrics import correlation_moments

pytestmark = pytest.mark.skipif(not INSTALLED, reason="numba not installed")


def _level(nan: bool, labels: bool, jitter: bool):
    rng = np.random.default_rng(3)
    scene = ndi.gaussian_filter(rng.random((90, 110)), 3)
    moving = np.exp(-6 * scene) + 0.02 * rng.standard_normal(scene.shape)
    fixed = np.stack([scene[10:70, 15:95], 1 - scene[10:70, 15:95] ** 2])
    if nan:
        moving[:7, 40:60] = np.nan
        fixed[:, -5:, :9] = np.nan
    mg, fg = Grid(moving.shape, "50 nm"), Grid(fixed.shape[1:], "50 nm", origin=(500.0, 750.0))
    return levels.make_level(moving, mg, fixed, fg, 50.0 if jitter else 100.0, labels=labels, jitter=jitter)


@pytest.mark.parametrize("nan", [False, True])
def test_sampled_values_and_moments_equal_scipy(nan):
    """The spline values equal map_coordinates' to 1e-15 and the moments einsum's to 1e-14 relative; the
    two fixed channels here are nearly collinear, so the correlation from them (the Gram solve) amplifies
    that rounding to ~1e-9 relative, the tolerance of the metric comparisons."""
    level = _level(nan, False, False)
    T = search.model_affine(np.array([-900.0, 1400.0, -4.0]), "rigid", level.fixed_grid.center)
    ref, ref_inside = search.sample_moving(level, T)
    g = level.moving_grid
    n = level.points.shape[0]
    vals, inside = np.empty(n), np.empty(n, bool)
    valid = level.moving_valid if nan else np.ones((1, 1))
    k = kernels.sample(level.moving_coef, valid, nan, kernels.index_map(T.matrix, g.spacing, g.origin),
                       level.points, vals, inside)
    assert 0 < k < n
    assert k == ref_inside.sum()
    assert np.array_equal(inside, ref_inside)
    np.testing.assert_allclose(vals[inside], ref, rtol=0, atol=1e-15 * np.abs(ref).max())
    s, zz = np.zeros(3), np.zeros((3, 3))
    kernels.moments(vals, inside, np.ascontiguousarray(level.design.T), s, zz, True)
    n_ref, s_ref, zz_ref = correlation_moments(ref, level.design.T[:, ref_inside])
    np.testing.assert_allclose(s, s_ref, rtol=1e-14)
    np.testing.assert_allclose(zz, zz_ref, rtol=1e-14)


@pytest.mark.parametrize("nan", [False, True])
@pytest.mark.parametrize(("metric", "jitter"), [("mi", False), ("mi", True), ("ncc", False)])
def test_compiled_evaluation_equals_numpy(nan, metric, jitter):
    level = _level(nan, metric == "mi", jitter)
    centre = level.fixed_grid.center
    # near the truth, rotated, and shifted so that part of the fixed field leaves the moving one
    for p in ([0.0, 0.0, 0.0], [37.0, -12.5, 1.3], [-900.0, 1400.0, -4.0], [1e6, 0.0, 0.0]):
        T = search.model_affine(np.array(p), "rigid", centre)
        with use_compiled(False):
            ref = search.evaluate(level, T, metric)
        got = search.evaluate(level, T, metric)
        got_matrix = search.evaluate_many([level], [T.matrix], metric)
        assert got == got_matrix
        if not np.isfinite(ref[0]):
            assert got[0] == ref[0]
            assert got[1] == ref[1]
            continue
        assert got[1] == ref[1]  # the same points inside, to the bit
        assert got[0] == pytest.approx(ref[0], rel=1e-8, abs=1e-14)  # see below: conditioning


def test_compiled_pooled_slices_equal_numpy():
    levels = [_level(False, True, False), _level(True, True, False)]
    Ts = [search.model_affine(np.array(p), "rigid", levels[0].fixed_grid.center) for p in ([5.0, 3.0, 0.2], [0, 0, 0])]
    for metric in ("mi", "ncc"):
        with use_compiled(False):
            ref = search.evaluate_many(levels, Ts, metric)
        got = search.evaluate_many(levels, Ts, metric)
        assert got[1] == ref[1]
        assert got[0] == pytest.approx(ref[0], rel=1e-8)


@pytest.mark.parametrize("shape", [(96, 96), (97, 130), (64, 63)])
def test_phase_peak_equals_scikit_image(shape):
    """The half-spectrum phase correlation of estimate_drift against scikit-image's
    phase_cross_correlation (full spectra, upsample 20, normalization=None): the same shift, the same
    error to float32 rounding, compiled and numpy."""
    import scipy.fft
    from skimage.registration import phase_cross_correlation

    from pfibsims.registration import phase

    rng = np.random.default_rng(1)
    base = ndi.gaussian_filter(rng.random((shape[0] + 20, shape[1] + 20)), 2)
    a = base[10:-10, 10:-10]
    b = ndi.shift(base, (1.37, -2.61))[10:-10, 10:-10] + 0.01 * rng.standard_normal(shape)
    sa, sb = phase.spectra(a, 1.0), phase.spectra(b, 1.0)
    full = [scipy.fft.fft2(scipy.fft.irfft2(s[0], shape).astype(np.float32)) for s in (sa, sb)]
    shift, error, _ = phase_cross_correlation(*full, space="fourier", upsample_factor=20, normalization=None)
    for flag in (True, False):
        with use_compiled(flag):
            got, got_error = phase.phase_peak(sa[0], sb[0], shape, 20)
        np.testing.assert_allclose(got, shift, atol=1e-9)
        assert got_error == pytest.approx(float(error), abs=1e-5)


def test_count_sigma_compiled_equals_numpy():
    rng = np.random.default_rng(2)
    cases = [rng.poisson(3.0, (40, 50)).astype(np.float64), rng.poisson(0.2, (40, 50)).astype(np.float32),
             rng.random((40, 50)), -rng.poisson(3.0, (4, 5)).astype(np.float64), np.zeros((3, 3)),
             np.full((3, 3), np.nan)]
    with_nan = rng.poisson(5.0, (30, 30)).astype(np.float64)
    with_nan[3:9, 4] = np.nan
    cases.append(with_nan)
    for a in cases:
        with use_compiled(False):
            ref = levels.count_sigma(a)
        # numpy takes the mean of float32 in float32 (pairwise), the kernel sums in float64
        assert levels.count_sigma(a) == pytest.approx(ref, rel=1e-12 if a.dtype == np.float64 else 1e-6)
    assert levels.count_sigma(cases[0]) > 0
    assert levels.count_sigma(cases[2]) == 0.0


@pytest.mark.parametrize("nan", [False, True])
def test_evaluate_shifts_equals_one_at_a_time(nan):
    """The batched translations of the cross-modal drift give, to the bit, what evaluate_many gives for each
    translated transform, including translations that leave most of the field (-inf, or fewer than half
    the samples inside)."""
    level = _level(nan, False, False)
    base = search.model_matrix(np.array([20.0, -35.0, 1.5]), "rigid", level.fixed_grid.center)
    shifts = np.array([[0.0, 0.0], [40.7, -81.4], [-162.8, 0.0], [1500.0, 2600.0], [2900.0, 0.0], [1e6, 0.0]])
    got = search.evaluate_shifts(level, base, shifts)
    for shift, value in zip(shifts, got, strict=True):
        m = base.copy()
        m[:2, 2] += shift
        assert value == search.evaluate_many([level], [m], "ncc")[0]
    assert np.isfinite(got[:5]).all()
    assert got[-1] == -np.inf
    with use_compiled(False):
        np.testing.assert_allclose(search.evaluate_shifts(level, base, shifts)[:5], got[:5], rtol=1e-8)


# 7 x 7: scratch on the heap; the others on the stack (span x Kx <= STACK_MAX)
@pytest.mark.parametrize(("ky", "kx", "step"), [(7, 7, 4.5), (5, 5, 1.13), (3, 3, 0.565), (3, 1, 0.5)])
def test_grid_moments_equal_shifted_moments_to_the_bit(ky, kx, step):
    """A grid of translations shares the B-spline weights and row sums among them: the sums are still
    those of one translation at a time, to the bit, for points inside, at the edges and outside."""
    rng = np.random.default_rng(ky * 10 + kx)
    coef = rng.random((60, 70))
    n = 4000
    pts = np.column_stack([rng.uniform(-300, 62 * 50, n), rng.uniform(-300, 72 * 50, n)])  # some leave the field
    th = np.deg2rad(1.7)
    m = np.array([[np.cos(th) / 50, -np.sin(th) / 50, 0.7], [np.sin(th) / 50, np.cos(th) / 50, -1.3]])
    design_t = np.ascontiguousarray(rng.random((3, n)))
    ys, xs = (np.arange(ky) - ky // 2) * step + 0.31, (np.arange(kx) - kx // 2) * step - 0.17
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    k, c = yy.size, design_t.shape[0]
    out = []
    for grid in (False, True):
        s, zz, count = np.zeros((k, c + 1)), np.zeros((k, c + 1, c + 1)), np.zeros(k, np.int64)
        if grid:
            kernels.grid_moments(coef, m, ys, xs, pts, design_t, s, zz, count)
        else:
            kernels.shifted_moments(coef, np.ones((1, 1)), False, m, yy.ravel().copy(), xx.ravel().copy(), pts,
                                    design_t, s, zz, count)
        out.append((s, zz, count))
    for a, b in zip(*out, strict=True):
        np.testing.assert_array_equal(a, b)
    assert 0 < out[0][2].min() < n  # some points inside and some outside for every translation


def test_evaluate_shifts_takes_the_grid_path_only_for_a_grid():
    level = _level(False, False, False)
    base = search.model_matrix(np.array([20.0, -35.0, 1.5]), "rigid", level.fixed_grid.center)
    offsets = np.array([-81.4, 0.0, 81.4])
    grid = np.stack(np.meshgrid(offsets, offsets, indexing="ij"), axis=-1).reshape(-1, 2)
    assert search._product_grid(grid) == (3, 3)
    assert search._product_grid(grid[::-1]) is None  # not in ij order
    assert search._product_grid(grid[:-1]) is None  # not a whole grid
    assert search._product_grid(grid[:1]) is None  # a single translation
    got = search.evaluate_shifts(level, base, grid)
    for shift, value in zip(grid, got, strict=True):
        m = base.copy()
        m[:2, 2] += shift
        assert value == search.evaluate_many([level], [m], "ncc")[0]


def test_shift_bilinear_equals_scipy_shift_to_the_bit():
    """The reduced view's drift shift: scipy.ndimage.shift(order=1, mode="constant", cval=NaN) in float64,
    rounded to float32, to the bit -- sub-pixel, whole-pixel and half-pixel shifts, shifts past the field,
    one-pixel axes, integer counts and float32 / float64 images with NaN (spread through a zero-weight tap as
    scipy's), into a new array or a given slice of a stack."""
    rng = np.random.default_rng(11)
    cases = 0
    for trial in range(240):
        ny, nx = (int(v) for v in rng.integers(1, 40, 2))
        if trial % 3 == 0:
            image = rng.poisson(rng.uniform(1, 200), (ny, nx)).astype(np.uint16)
        else:
            image = rng.normal(0, 1, (ny, nx)).astype(np.float32 if trial % 3 == 1 else np.float64)
            image[rng.random((ny, nx)) < 0.05] = np.nan
        kind = trial % 4
        shift = (rng.normal(0, 3, 2) if kind == 0 else rng.integers(-5, 6, 2).astype(float) if kind == 1
                 else rng.integers(-5, 6, 2) + rng.choice([0.0, 0.5, 0.25], 2) if kind == 2 else rng.normal(0, 40, 2))
        want = ndi.shift(image.astype(np.float64), -shift, order=1, mode="constant", cval=np.nan).astype(np.float32)
        got = kernels.shift_bilinear(image, shift)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want, err_msg=f"{(ny, nx)} shift {shift}")
        if trial % 5 == 0:  # a strided view (a transposed stack's slice): read as it is
            view = np.asfortranarray(image)
            np.testing.assert_array_equal(kernels.shift_bilinear(view[:, :], shift), want)
        stack = np.zeros((2, ny, nx), np.float32)  # into a slice of a stack
        into = stack[1]
        assert kernels.shift_bilinear(image, shift, out=into) is into
        np.testing.assert_array_equal(stack[1], want)
        cases += np.isfinite(want).any() and not np.isfinite(want).all()
        with use_compiled(False):
            np.testing.assert_array_equal(kernels.shift_bilinear(image, shift), want)
    assert cases > 100  # most cases have a field edge inside the output


def test_nanmeans_equal_numpy_to_the_bit():
    """The reduced view's z-means of a drift-corrected stack and of its groups: one compiled pass, column bands
    on threads, equal to numpy's NaN-aware mean (float32 sums slice by slice, divided in float64) to the bit --
    NaN, all-NaN columns (NaN, its sign bit aside), negative zeros, one-slice groups, uneven column bands; other groups
    (overlapping, unordered) and other dtypes take numpy."""
    from pfibsims.registration.views import _nanmean, _nanmeans

    rng = np.random.default_rng(5)
    for z, shape, groups in ((39, (50, 47), [np.arange(0, 7), np.arange(7, 14), np.arange(14, 39)]),
                             (5, (3, 1), [np.array([0]), np.array([1, 2, 3, 4])]), (4, (9, 11), []),
                             (6, (8, 8), [np.array([0, 2]), np.array([1, 5])])):
        stack = (rng.standard_normal((z, *shape)) * 10.0 ** rng.uniform(-3, 4, (z, 1, 1))).astype(np.float32)
        stack[rng.random(stack.shape) < 0.2] = np.nan
        stack[:, 0, 0] = np.nan  # a column without data
        stack[:, -1, -1] = -0.0  # a column of negative zeros: numpy's sum starts at +0.0, its mean is +0.0
        got = _nanmeans(stack, groups)
        want = [_nanmean(stack), *[_nanmean(stack[g]) for g in groups]]
        assert len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            assert a.dtype == b.dtype == np.float64
            assert a.shape == shape
            np.testing.assert_array_equal(a, b)  # NaN where numpy's is NaN
            ok = np.isfinite(b)
            assert a[ok].tobytes() == b[ok].tobytes()  # to the bit, signed zeros included
        assert np.isnan(got[0][0, 0])
        assert got[0][-1, -1] == 0
        assert not np.signbit(got[0][-1, -1])
    for stack, groups in ((rng.random((6, 4, 4)), [np.arange(3)]),  # float64: numpy
                          (rng.random((6, 4, 4)).astype(np.float32), [np.array([2, 1])]),  # unordered
                          (rng.random((6, 4, 4)).astype(np.float32), [np.arange(3), np.arange(2, 5)])):  # overlapping
        got = _nanmeans(stack, groups)
        want = [_nanmean(stack), *[_nanmean(stack[g]) for g in groups]]
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)


def test_joint_histogram_equals_the_interp_rule_to_the_bit():
    """The joint histogram's soft bins: each value's position between the two centres around it as np.interp
    finds them (searchsorted, then the bin's 1 / width), added in the values' order -- to the bit, for 1-17
    centres (powers of two and not), values on, just beside and outside the centres, and labels."""
    rng = np.random.default_rng(17)
    for trial in range(120):
        centres = np.unique(np.sort(rng.normal(size=int(rng.integers(1, 18)))))
        nc = centres.size
        values = np.concatenate([rng.normal(size=300) * 1.5, centres, np.nextafter(centres, -np.inf),
                                 np.nextafter(centres, np.inf)])
        inside = rng.random(values.size) < 0.9
        labels = rng.integers(0, 3, values.size)
        got = np.zeros(3 * nc)
        kernels.joint_histogram(values, inside, labels, centres, nc, got)
        want = np.zeros(3 * nc)
        for v, ok, lab in zip(values, inside, labels, strict=True):
            if not ok:
                continue
            if v <= centres[0]:
                pos = 0.0
            elif v >= centres[-1]:
                pos = nc - 1.0
            else:
                j = int(np.searchsorted(centres, v, side="right")) - 1
                pos = (v - centres[j]) * (1.0 / (centres[j + 1] - centres[j])) + j
            lo = min(max(int(np.floor(pos)), 0), max(nc - 2, 0))
            w = min(max(pos - lo, 0.0), 1.0) if nc > 1 else 0.0
            want[lab * nc + lo] += 1.0 - w
            want[lab * nc + min(lo + 1, nc - 1)] += w
        np.testing.assert_array_equal(got, want, err_msg=f"trial {trial}")
        pos = np.interp(values, centres, np.arange(nc, dtype=np.float64))  # the rule is np.interp's
        inner = (values > centres[0]) & (values < centres[-1])
        j = np.searchsorted(centres, values[inner], side="right") - 1
        np.testing.assert_allclose((values[inner] - centres[j]) / (centres[j + 1] - centres[j]) + j, pos[inner],
                                   rtol=0, atol=1e-12)
