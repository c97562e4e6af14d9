import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from pfibsims.errors import GridError, UnitsError
from pfibsims.grid import Grid


def test_published_eds_extent_by_hand():
    # 216 x 352 px at 81.4 nm span 17.5824 x 28.6528 um (DESIGN.md)
    g = Grid((216, 352), "81.4 nm")
    (ylo, yhi), (xlo, xhi) = g.extent
    assert yhi - ylo == pytest.approx(216 * 81.4)
    assert xhi - xlo == pytest.approx(352 * 81.4)
    assert (ylo, xlo) == (-40.7, -40.7)  # origin is the first centre, the edge is half a pixel out


def test_coords_are_voxel_centres():
    g = Grid((3, 4), ("60 nm", "81.4 nm"), origin=("30 nm", "40.7 nm"), dims=("z", "x"))
    c = g.coords()
    np.testing.assert_allclose(c["z"], [30, 90, 150])
    np.testing.assert_allclose(c["x"], 40.7 + 81.4 * np.arange(4))
    assert list(c) == ["z", "x"]


def test_units_nm_and_um_compare_and_combine():
    a = Grid((10, 10), "0.0814 um", origin=("1 um", "2 um"))
    b = Grid((10, 10), "81.4 nm", origin=(1000, 2000))
    assert a == b
    assert a.union(b) == a
    assert a.intersection(b) == a


def _da(values_y, values_x, units=("nm", "nm")):
    return xr.DataArray(
        np.zeros((len(values_y), len(values_x))),
        dims=("y", "x"),
        coords={"y": ("y", values_y, {"units": units[0]}), "x": ("x", values_x, {"units": units[1]})},
    )


def test_of_reads_coords_in_any_length_unit():
    g = Grid.of(_da([0.5, 1.5, 2.5], [100.0, 200.0], units=("um", "nm")))
    assert g == Grid((3, 2), (1000, 100), origin=(500, 100))


def test_of_round_trips_xr_coords():
    g = Grid((5, 7, 9), ("60 nm", "81.4 nm", "72 nm"), origin=(30, -5, 11))
    ds = xr.Dataset(coords=g.xr_coords())
    assert Grid.of(ds) == g
    one = Grid((1, 4, 4), "60 nm")
    assert Grid.of(xr.Dataset(coords=one.xr_coords())) == one  # one-voxel axis keeps its spacing


def test_of_rejects_irregular_spacing():
    with pytest.raises(GridError, match=r"x: expected regularly spaced coordinates"):
        Grid.of(_da([0.0, 1.0], [0.0, 1.0, 3.0]))


def test_of_rejects_missing_units():
    da = _da([0.0, 1.0], [0.0, 1.0])
    del da.x.attrs["units"]
    with pytest.raises(GridError, match=r"x: expected a 'units' attribute"):
        Grid.of(da)


def test_of_rejects_non_length_units():
    with pytest.raises(UnitsError, match=r"y.attrs\['units'\]: expected a length"):
        Grid.of(_da([0.0, 1.0], [0.0, 1.0], units=("nA", "nm")))


def test_of_rejects_decreasing_and_missing_coords():
    with pytest.raises(GridError, match=r"y: expected increasing coordinates.*sortby"):
        Grid.of(_da([1.0, 0.0], [0.0, 1.0]))
    bare = xr.DataArray(np.zeros((2, 2)), dims=("y", "x"))
    with pytest.raises(GridError, match=r"y: expected a coordinate"):
        Grid.of(bare)
    with pytest.raises(GridError, match=r"obj: expected an xarray"):
        Grid.of(np.zeros((2, 2)))


def test_one_voxel_axis_without_spacing_is_an_error_when_asked_for():
    da = xr.DataArray(np.zeros((1, 2)), dims=("z", "x"), coords={"z": ("z", [0.0], {"units": "nm"}), "x": ("x", [0.0, 1.0], {"units": "nm"})})
    with pytest.raises(GridError, match=r"z: an axis of one voxel needs a 'spacing'"):
        Grid.of(da, dims=("z", "x"))
    assert Grid.of(da, dims=("x",)).shape == (2,)


def test_single_map_without_slice_thickness_has_the_in_plane_grid():
    # the README quick start prints Grid.of(vol) on whatever it read: a single map states no thickness
    from pfibsims.dataset import stack

    one = stack({"Zr_La": np.ones((3, 4))}, pixel_size="81.4 nm")
    assert "spacing" not in one.z.attrs
    assert Grid.of(one) == Grid((3, 4), "81.4 nm", origin="40.7 nm")
    with pytest.raises(GridError, match=r"z: an axis of one voxel needs a 'spacing'"):
        Grid.of(one, dims=("z", "y", "x"))
    thick = stack({"Zr_La": np.ones((3, 4))}, pixel_size="81.4 nm", slice_thickness="60 nm")
    assert Grid.of(thick).dims == ("z", "y", "x")
    assert Grid.of(thick).spacing[0] == 60.0


def test_constructor_errors_name_argument():
    with pytest.raises(GridError, match="spacing: expected positive lengths"):
        Grid((2, 2), 0)
    with pytest.raises(GridError, match="shape: expected at least one voxel"):
        Grid((0, 2), 1)
    with pytest.raises(GridError, match=r"dims: expected names from \('z', 'y', 'x'\) in that order"):
        Grid((2, 2), 1, dims=("x", "y"))
    with pytest.raises(UnitsError, match="spacing: expected a length"):
        Grid((2, 2), "1 nA")


def test_with_spacing_keeps_lower_edge():
    g = Grid((500, 500), "72 nm")
    h = g.with_spacing("81.4 nm")
    assert h.shape == (442, 442)  # round(36000 / 81.4)
    assert h.extent[0][0] == pytest.approx(g.extent[0][0])
    assert h.spacing == (81.4, 81.4)


def test_with_shape_is_pillow_geometry():
    g = Grid((4,), "10 nm", origin="5 nm")  # extent 0..40
    h = g.with_shape((5,))
    assert h.spacing == (8.0,)
    assert h.extent[0] == pytest.approx((0.0, 40.0))
    np.testing.assert_allclose(h.coords()["x"], [4, 12, 20, 28, 36])


def test_crop_and_getitem():
    g = Grid((10, 10), "100 nm", origin=(50, 50))
    c = g.crop(x=("0.2 um", "0.5 um"))
    np.testing.assert_allclose(c.coords()["x"], [250, 350, 450])
    assert c.shape == (10, 3)
    assert g[2:4, 5] == Grid((2, 1), 100, origin=(250, 550))
    with pytest.raises(GridError, match="x: bounds"):
        g.crop(x=("5 um", "6 um"))
    with pytest.raises(GridError, match=r"bounds: \['q'\] are not axes"):
        g.crop(q=(0, 1))


def test_intersection_no_overlap_is_an_error():
    a = Grid((10,), 1.0)
    b = Grid((10,), 1.0, origin=100.0)
    with pytest.raises(GridError, match="other: the grids do not overlap by a voxel along x"):
        a.intersection(b)
    with pytest.raises(GridError, match="needs grids of the same dims"):
        a.intersection(Grid((2, 2), 1.0))


def test_contains_points_and_grids():
    g = Grid((10, 10), "100 nm", origin=(50, 50))  # extent 0..1000 nm
    assert g.contains(("0.5 um", "1 um"))
    assert not g.contains((500, 1001))
    assert g.contains(g[2:5, 3:4])
    assert not g[2:5, 3:4].contains(g)


def test_repr_pastes_back():
    g = Grid((39, 216, 352), ("60 nm", "81.4 nm", "81.4 nm"), origin=(30, 40.7, 40.7))
    assert eval(repr(g)) == g  # noqa: S307
    assert "spacing=(60.0, 81.4, 81.4)" in repr(g)


def test_hash_and_dask_token_are_by_value():
    from dask.base import tokenize

    a, b = Grid((3, 3), "0.1 um"), Grid((3, 3), "100 nm")
    assert hash(a) == hash(b)
    assert tokenize(a) == tokenize(b)
    assert len({a, b}) == 1


def test_grid_is_immutable():
    g = Grid((3, 3), 1.0)
    with pytest.raises(AttributeError):
        g.shape = (4, 4)


def test_index_physical_round_trip():
    g = Grid((5, 6), (3.0, 2.0), origin=(10, 20))
    p = g.from_index(np.array([[1.5, 2.25]]))
    np.testing.assert_allclose(p, [[14.5, 24.5]])
    np.testing.assert_allclose(g.to_index(p), [[1.5, 2.25]])


axis = st.tuples(
    st.integers(1, 40),
    st.sampled_from([1.0, 2.5, 60.0, 72.0, 81.4]),
    st.floats(-1000, 1000, allow_nan=False).map(lambda v: round(v, 3)),
)


@st.composite
def grids(draw, spacing=None):
    n = draw(st.integers(1, 3))
    axes = [draw(axis) for _ in range(n)]
    return Grid([a[0] for a in axes], spacing or [a[1] for a in axes], [a[2] for a in axes])


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_intersection_commutative_and_contained(data):
    a = data.draw(grids())
    b = data.draw(grids())
    pad = a.ndim - b.ndim
    b = Grid(b.shape[: a.ndim] + (5,) * max(0, pad), b.spacing[: a.ndim] + (1.0,) * max(0, pad), b.origin[: a.ndim] + (0.0,) * max(0, pad), a.dims)
    try:
        ab = a.intersection(b)
    except GridError:
        with pytest.raises(GridError):
            b.intersection(a)
        return
    assert ab == b.intersection(a)
    assert a.contains(ab)
    assert b.contains(ab)
    # on the finer lattice of each axis
    assert ab.spacing == tuple(min(s1, s2) for s1, s2 in zip(a.spacing, b.spacing, strict=False))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_intersection_exactly_commutative_on_one_lattice(data):
    s = data.draw(st.sampled_from([1.0, 81.4]))
    n1, n2 = data.draw(st.integers(1, 30)), data.draw(st.integers(1, 30))
    k = data.draw(st.integers(-35, 35))
    a = Grid((n1,), s, origin=0.0)
    b = Grid((n2,), s, origin=k * s)
    try:
        ab = a.intersection(b)
    except GridError:
        return
    assert ab == b.intersection(a)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_union_contains_both(data):
    a = data.draw(grids())
    b = Grid(a.shape, a.spacing, tuple(o + data.draw(st.floats(-500, 500)) for o in a.origin), a.dims)
    u = a.union(b)
    assert u.contains(a)
    assert u.contains(b)
    assert u == b.union(a)
    assert u.spacing == a.spacing


def test_shape_is_never_truncated():
    # issue 21: Grid((2.5, 5), ...) silently made a 2 x 5 grid
    with pytest.raises(GridError, match=r"shape: expected whole numbers of voxels such as \(216, 352\), got \(2.5, 5\)"):
        Grid((2.5, 5), "80 nm")
    with pytest.raises(GridError, match="shape: expected whole numbers"):
        Grid((True, 5), "80 nm")
    with pytest.raises(GridError, match="shape: expected a sequence of voxel counts"):
        Grid(None, "80 nm")
    assert Grid((2.0, np.int64(5)), "80 nm").shape == (2, 5)


def test_grid_of_empty_or_non_finite_axes_is_an_error():
    da_ = xr.DataArray(np.zeros((2, 3)), dims=("y", "x"), coords={
        "y": ("y", [0.5, 1.5], {"units": "um"}), "x": ("x", [50.0, 150.0, 250.0], {"units": "nm"})})
    with pytest.raises(GridError, match=r"x: expected at least one voxel, found an empty axis \(size 0\)"):
        Grid.of(da_.isel(x=slice(0, 0)))
    with pytest.raises(GridError, match="x: expected finite coordinates, found NaN or inf at index 1"):
        Grid.of(da_.assign_coords(x=("x", [50.0, np.nan, 250.0], {"units": "nm"})))
    with pytest.raises(GridError, match="x: expected numeric coordinates in nm, found dtype <U1"):
        Grid.of(da_.assign_coords(x=("x", ["a", "b", "c"], {"units": "nm"})))
