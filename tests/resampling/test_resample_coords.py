"""resample and coverage and the coordinates they are given: targets that decrease, ties, non-finite sources.

The truth is scipy.ndimage.map_coordinates at the source index of every target centre (a known
transform: a pure change of grid, so index = (target coordinate - first source centre) / spacing).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import xarray as xr

import pfibsims as pfs
from pfibsims import Grid, coverage, resample
from pfibsims.errors import GridError

CHUNKINGS = [None, -1, 7]


def _source(chunks=None):
    img = ndi.gaussian_filter(np.random.default_rng(3).random((30, 40)), 2)
    ds = pfs.stack({"Li6": img}, pixel_size="72 nm", units="1")
    return ds if chunks in (None, -1) else ds.chunk({"y": chunks, "x": chunks})


def _target(grid, flip):
    """A DataArray on ``grid`` whose ``flip`` axes run high -> low (as image rows stored top down)."""
    onto = xr.DataArray(np.zeros(grid.shape), dims=grid.dims, coords=grid.xr_coords())
    return onto.isel({d: slice(None, None, -1) for d in flip})


def _scipy_on(src, onto, order):
    """scipy's samples of ``src`` (y, x, 72 nm, first centre 36 nm) at the centres of ``onto``, in onto's order."""
    iy = (onto.y.values - 36.0) / 72.0
    ix = (onto.x.values - 36.0) / 72.0
    yy, xx = np.meshgrid(iy, ix, indexing="ij")
    return ndi.map_coordinates(src, [yy, xx], order=order, mode="nearest")


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("flip", [("y",), ("x",), ("y", "x")])
def test_a_decreasing_target_is_resampled_in_its_own_order(chunks, flip):
    """Onto coordinates running high -> low were refused (GridError 'expected increasing coordinates')."""
    ds = _source(chunks)
    grid = Grid((23, 31), "36 nm", origin=(400.0, 300.0))  # 2x upsampling, inside the field: scipy's order 1 is exact
    onto = _target(grid, flip)
    out = resample(ds, onto, kernel="linear", chunks=None if chunks is None else chunks)
    out = out.compute()
    for d in ("y", "x"):
        np.testing.assert_array_equal(out[d].values, onto[d].values)
        assert out[d].attrs["units"] == "nm"
    ref = _scipy_on(ds.Li6.values[0], onto, order=1)
    np.testing.assert_allclose(out.Li6.values[0], ref, rtol=0, atol=1e-6)
    # and the same data as on the increasing grid, flipped
    inc = resample(ds, grid, kernel="linear").Li6.isel({d: slice(None, None, -1) for d in flip})
    np.testing.assert_allclose(out.Li6.values, inc.values, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kernel", ["lanczos", "cubic", "nearest"])
def test_a_decreasing_target_equals_the_increasing_one_flipped(kernel):
    ds = _source()
    grid = Grid((30, 25), "81.4 nm", origin=(30.0, 40.0))  # downsampling, partly outside the field (NaN)
    onto = _target(grid, ("y",))
    out = resample(ds, onto, kernel=kernel)
    ref = resample(ds, grid, kernel=kernel).isel(y=slice(None, None, -1))
    np.testing.assert_array_equal(np.isnan(out.Li6.values), np.isnan(ref.Li6.values))
    np.testing.assert_allclose(out.Li6.values, ref.Li6.values, rtol=0, atol=1e-6)
    assert np.isnan(out.Li6.values).any()
    assert np.isfinite(out.Li6.values).any()
    cov = coverage(ds, onto)
    np.testing.assert_array_equal(cov.y.values, onto.y.values)
    np.testing.assert_array_equal(cov.values, np.isfinite(out.Li6.values[0]))


def test_a_decreasing_target_with_a_rotation_and_a_stack():
    ds = pfs.stack({"Li6": np.stack([_source().Li6.values[0]] * 2)}, pixel_size="72 nm", slice_thickness="60 nm")
    T = pfs.Affine.from_parameters(rotation=3.0, center=(1000.0, 1400.0))
    grid = Grid((20, 25), "60 nm", origin=(500.0, 600.0))
    onto = _target(grid, ("y", "x"))
    out = resample(ds, onto, transform=T, kernel="linear")
    ref = resample(ds, grid, transform=T, kernel="linear").isel(y=slice(None, None, -1), x=slice(None, None, -1))
    np.testing.assert_array_equal(out.y.values, onto.y.values)
    np.testing.assert_allclose(out.Li6.values, ref.Li6.values, rtol=0, atol=1e-6)


def test_nearest_breaks_exact_ties_towards_the_larger_coordinate():
    """A target centre half way between two source centres takes the one of larger coordinate, as scipy's order 0."""
    src = np.arange(40.0).reshape(5, 8) * 3.0
    ds = pfs.stack({"Li6": src}, pixel_size="72 nm", units="1")
    grid = Grid((4, 7), "72 nm", origin=(72.0, 72.0))  # every centre on a source edge: all ties
    for flip in ((), ("y",), ("y", "x")):
        onto = _target(grid, flip)
        out = resample(ds, onto, kernel="nearest").Li6.values[0]
        np.testing.assert_array_equal(out, _scipy_on(src, onto, order=0))
    inc = resample(ds, grid, kernel="nearest").Li6.values[0]
    np.testing.assert_array_equal(inc, src[1:, 1:])  # by hand: index i + 0.5 goes to i + 1


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize(("dim", "index"), [("y", 3), ("x", 0), ("x", -1)])
def test_a_source_with_non_finite_coordinates_is_refused(dim, index, bad):
    """NaN/inf source coordinates gave NaN rows or silently wrong values (never an error)."""
    ds = _source()
    c = ds[dim].values.copy()
    c[index] = bad
    ds = ds.assign_coords({dim: (dim, c, dict(ds[dim].attrs))})
    grid = Grid((20, 25), "81.4 nm", origin=(30.0, 40.0))
    with pytest.raises(GridError, match=rf"data: coordinate '{dim}' expected finite voxel centres, found "
                                        rf"{bad!r:.4} at index {index % c.size}"):
        resample(ds, grid, kernel="linear")
    with pytest.raises(GridError, match=rf"data: coordinate '{dim}' expected finite"):
        resample(ds.Li6, grid, kernel="nearest")
    with pytest.raises(GridError, match=rf"data: coordinate '{dim}' expected finite"):
        coverage(ds, grid)


def test_a_one_voxel_source_axis_with_a_nan_centre_is_refused():
    ds = _source().isel(y=[0])
    ds = ds.assign_coords(y=("y", [np.nan], {"units": "nm", "spacing": "72 nm"}))
    with pytest.raises(GridError, match=r"data: coordinate 'y' expected finite voxel centres, found nan at index 0"):
        resample(ds, Grid((1, 25), "81.4 nm", origin=(36.0, 40.0)), kernel="linear")


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("flip", [("y",), ("x",), ("y", "x")])
def test_a_source_stored_top_down_is_resampled_as_its_positions(chunks, flip):
    """A source whose y (or x) runs high -> low (rows stored top down under a stage y growing upwards) was
    refused ('use data.sortby'); its samples are now taken at their own positions: scipy's values at the
    target centres, and the result of the source sorted, to the bit -- also rotated, per slice, and coverage."""
    ds = _source(chunks)
    stored = ds.isel({d: slice(None, None, -1) for d in flip})
    assert all(np.all(np.diff(stored[d].values) < 0) for d in flip)
    grid = Grid((23, 31), "36 nm", origin=(400.0, 300.0))  # inside the field: scipy's order 1 is exact
    out = resample(stored, grid, kernel="linear").compute()
    np.testing.assert_allclose(out.Li6.values[0], _scipy_on(ds.Li6.values[0], _target(grid, ()), order=1),
                               rtol=0, atol=1e-6)
    for kw in ({"kernel": "lanczos"}, {"transform": pfs.Affine.from_parameters(rotation=2.0, center=(1000.0, 1400.0))}):
        got = resample(stored, grid, **kw).Li6.values
        np.testing.assert_array_equal(got, resample(stored.sortby(list(flip)), grid, **kw).Li6.values)
        np.testing.assert_array_equal(got, resample(ds, grid, **kw).Li6.values)
    np.testing.assert_array_equal(coverage(stored, grid).values, coverage(ds, grid).values)
    # per-slice transforms stay matched to the slices by position (z keeps its order)
    two = pfs.stack({"Li6": np.stack([ds.Li6.values[0], 2 * ds.Li6.values[0]])}, pixel_size="72 nm",
                    slice_thickness="60 nm", units="1")
    shifts = [pfs.Affine.translation((0.0, 0.0)), pfs.Affine.translation((72.0, -36.0))]
    want = resample(two, grid, transform=shifts, kernel="linear").Li6.values
    got = resample(two.isel({d: slice(None, None, -1) for d in flip}), grid, transform=shifts, kernel="linear")
    np.testing.assert_array_equal(got.Li6.values, want)

