"""HyperSpy bridge: calibration (names, scale, offset, units), laziness and attrs survive both ways."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from conftest import raise_if_dask_computes

import pfibsims as pfs
from pfibsims.dataset import history, record
from pfibsims.errors import DataModelError, UnitsError
from pfibsims.io import from_hyperspy, to_hyperspy

hs = pytest.importorskip("hyperspy.api")


def _dataset(chunks=None, z=None):
    rng = np.random.default_rng(0)
    kw = {"z": z} if z is not None else {"slice_thickness": "60 nm"}
    ds = pfs.stack({"Zr_La": rng.poisson(5, (3, 6, 8)).astype(np.uint16), "Li6": rng.random((3, 6, 8)).astype(np.float32)},
                   pixel_size=("72 nm", "81.4 nm"), origin=("100 nm", "1 um", "2 um") if z is None else ("1 um", "2 um"),
                   modality="fused", chunks=chunks, **kw)
    return record(ds, "test_step", threshold=0.5)


@pytest.mark.parametrize("chunks", [None, (1, 3, 4)], ids=["numpy", "dask"])
def test_to_hyperspy_keeps_calibration_and_laziness(chunks):
    ds = _dataset(chunks)
    with raise_if_dask_computes():
        s = to_hyperspy(ds.Zr_La)
    assert s._lazy == (chunks is not None)
    assert isinstance(s.data, da.Array) == (chunks is not None)
    am = s.axes_manager
    assert [(a.name, a.navigate) for a in sorted(am._axes, key=lambda a: a.index_in_array)] == [
        ("z", True), ("y", False), ("x", False)]
    z, y, x = (am[n] for n in ("z", "y", "x"))
    assert (z.scale, z.offset, z.units) == (60.0, 100.0, "nm")
    assert (y.scale, y.offset, y.units) == (72.0, 1000.0, "nm")
    assert (x.scale, x.offset, x.units) == (81.4, 2000.0, "nm")
    np.testing.assert_array_equal(x.axis, ds.x.values)  # HyperSpy's axis values are our voxel centres
    assert (s.metadata.General.title, s.metadata.Signal.quantity) == ("Zr_La", "Zr_La (counts)")
    assert (s.metadata.Sample.xray_lines, s.metadata.Sample.elements) == (["Zr_La"], ["Zr"])
    np.testing.assert_array_equal(np.asarray(s.data), ds.Zr_La.values)


def test_uneven_slices_give_a_non_uniform_z_axis():
    ds = _dataset(z=["0 nm", "55 nm", "130 nm"])
    s = to_hyperspy(ds.Li6)
    assert not s.axes_manager["z"].is_uniform
    np.testing.assert_array_equal(s.axes_manager["z"].axis, [0.0, 55.0, 130.0])
    back = from_hyperspy(s)
    np.testing.assert_array_equal(back.z.values, [0.0, 55.0, 130.0])


@pytest.mark.parametrize("chunks", [None, (1, 3, 4)], ids=["numpy", "dask"])
def test_round_trip_is_exact(chunks):
    ds = _dataset(chunks)
    with raise_if_dask_computes():
        signals = to_hyperspy(ds)
        back = from_hyperspy(signals)
    assert [s.metadata.General.title for s in signals] == ["Zr_La", "Li6"]
    assert all(isinstance(v.data, da.Array) == (chunks is not None) for v in back.data_vars.values())
    xr.testing.assert_identical(back.compute(), ds.compute())
    assert history(back)[-1]["step"] == "test_step"
    assert back.Zr_La.dtype == np.uint16
    one = from_hyperspy(to_hyperspy(ds.Li6))
    xr.testing.assert_identical(one.compute(), ds.Li6.compute())


def test_a_plain_hyperspy_signal_in_micrometres():
    data = np.arange(20.0).reshape(4, 5)
    s = hs.signals.Signal2D(data)
    s.metadata.General.title = "BSE"
    s.metadata.Signal.quantity = "BSE (counts)"
    for a, scale in zip(s.axes_manager.signal_axes, (0.05, 0.1), strict=True):  # x, then y
        a.units, a.scale, a.offset = "µm", scale, 1.0
    out = from_hyperspy(s)
    assert (out.name, out.dims, out.attrs["units"]) == ("BSE", ("z", "y", "x"), "counts")
    np.testing.assert_allclose(out.x.values, 1000.0 + 50.0 * np.arange(5))
    np.testing.assert_allclose(out.y.values, 1000.0 + 100.0 * np.arange(4))
    np.testing.assert_array_equal(out.values[0], data)
    assert pfs.Grid.of(out, dims=["y", "x"]).spacing == pytest.approx((100.0, 50.0))


def test_errors():
    s = hs.signals.Signal2D(np.ones((4, 5)))
    with pytest.raises(UnitsError, match=r"signal axis at array index 0 calibrated in a length .* found units '<undefined>'"):
        from_hyperspy(s)
    with pytest.raises(DataModelError, match=r"expected a 2-D signal .* found 1 signal and 1 navigation axes"):
        from_hyperspy(hs.signals.Signal1D(np.ones((4, 5))))
    with pytest.raises(DataModelError, match="expected at least one HyperSpy signal"):
        from_hyperspy([])
    a, b = to_hyperspy(_dataset().Li6), to_hyperspy(_dataset().isel(x=slice(1, None)).Zr_La)
    with pytest.raises(DataModelError, match=r"expected signals on one grid, found different axes among \['Li6', 'Zr_La'\]"):
        from_hyperspy([a, b])
    with pytest.raises(DataModelError, match=r"distinct titles .* found \['Li6', 'Li6'\]"):
        from_hyperspy([a, a])
    with pytest.raises(DataModelError, match="expected an xarray DataArray or Dataset, got ndarray"):
        to_hyperspy(np.ones((3, 3)))
    with pytest.raises(DataModelError, match=r"expected dims \('z', 'y', 'x'\) or \('y', 'x'\)"):
        to_hyperspy(_dataset().Li6.isel(y=0))


def test_coordinates_in_micrometres_give_axes_in_nanometres():
    """Axes of a dataset in um were labelled 'um' with scale and offset in nm (1000x off; back 1000x again)."""
    ds = _dataset()
    um = ds.assign_coords({d: (d, ds[d].values / 1000.0, {**ds[d].attrs, "units": "um"}) for d in ("z", "y", "x")})
    s = to_hyperspy(um.Li6)
    for d in ("z", "y", "x"):
        axis = s.axes_manager[d]
        assert axis.units == "nm", d
        np.testing.assert_allclose(axis.axis, ds[d].values, rtol=1e-12, err_msg=d)
    back = from_hyperspy(s)
    for d in ("z", "y", "x"):
        np.testing.assert_allclose(back[d].values, ds[d].values, rtol=1e-12, err_msg=d)
    uneven = _dataset(z=["0 nm", "55 nm", "130 nm"])
    uneven = uneven.assign_coords(z=("z", uneven.z.values / 1000.0, {**uneven.z.attrs, "units": "um"}))
    z = to_hyperspy(uneven.Li6).axes_manager["z"]
    assert z.units == "nm"
    np.testing.assert_allclose(z.axis, [0.0, 55.0, 130.0])


def test_pint_quantified_input():
    pytest.importorskip("pint_xarray")
    ds = _dataset()
    s = to_hyperspy(ds.pint.quantify().Li6)
    assert s.metadata.Signal.quantity in ("Li6 (counts)", "Li6 (count)")  # pint's name after dequantify
    np.testing.assert_array_equal(s.axes_manager["x"].axis, ds.x.values)
    assert [t.metadata.General.title for t in to_hyperspy(ds.pint.quantify())] == ["Zr_La", "Li6"]


def test_a_negative_or_zero_scale_is_refused_naming_the_axis():
    s = hs.signals.Signal2D(np.ones((4, 5)))
    for a in s.axes_manager.signal_axes:
        a.units, a.scale, a.name = "nm", 10.0, "width" if a.index_in_array == 1 else "height"
    s.axes_manager["width"].scale = -10.0
    with pytest.raises(DataModelError, match=r"signal: expected a positive scale on axis 'width', found -10.0 nm"):
        from_hyperspy(s)


def test_a_real_bcf_through_hyperspy_and_through_read_eds():
    """HyperSpy's axis values are pixel centres (taken as coordinates unchanged); RosettaSciIO gives a BCF
    offset 0 (first centre at 0), pfibsims' reader the first corner at 0: same spacing, half a pixel apart."""
    from io_helpers import data_file

    path = data_file("eds/30x30_instructively_packed_16bit_compressed.bcf")
    image = next(s for s in hs.load(path) if s.axes_manager.signal_dimension == 2)
    ours = pfs.read_eds(path)
    back = from_hyperspy(image)
    for d, name in (("y", "height"), ("x", "width")):
        axis = image.axes_manager[name]
        np.testing.assert_allclose(back[d].values, axis.axis * 1000.0, rtol=1e-9)  # um -> nm, centres as given
        np.testing.assert_allclose(np.diff(back[d].values), np.diff(ours[d].values), rtol=1e-9)
        np.testing.assert_allclose(ours[d].values - back[d].values, axis.scale * 1000.0 / 2, rtol=1e-9)


def test_cf_flags_come_back_typed_like_the_labels(tmp_path):
    """flag_values came back a list (JSON): not the labels' type, so to_netcdf wrote int64 flags on uint8 labels."""
    ds = _dataset()
    ds["phase"] = xr.DataArray(np.arange(48, dtype=np.uint8).reshape(1, 6, 8).repeat(3, 0) % 3, dims=("z", "y", "x"),
                               attrs={"units": "1", "flag_values": np.array([0, 1, 2], np.uint8),
                                      "flag_meanings": "matrix LLZTO LCO"})
    for back in (from_hyperspy(to_hyperspy(ds)).phase, from_hyperspy(to_hyperspy(ds.phase))):
        flags = back.attrs["flag_values"]
        assert isinstance(flags, np.ndarray)
        assert flags.dtype == np.uint8
        np.testing.assert_array_equal(flags, [0, 1, 2])


def test_single_maps_and_uneven_slices_round_trip_with_the_cf_axis():
    """A single map (z of one, as every reader gives a map) and uneven slices lost z's CF axis 'Z'."""
    one = pfs.stack({"Li6": np.arange(12.0).reshape(3, 4)}, pixel_size="72 nm")
    xr.testing.assert_identical(from_hyperspy(to_hyperspy(one)).compute(), one)
    uneven = _dataset(z=["0 nm", "55 nm", "130 nm"])
    xr.testing.assert_identical(from_hyperspy(to_hyperspy(uneven)).compute(), uneven.compute())
    plain = hs.signals.Signal2D(np.ones((4, 5)))
    for a in plain.axes_manager.signal_axes:
        a.units, a.scale = "nm", 10.0
    assert from_hyperspy(plain).z.attrs == one.z.attrs


@pytest.mark.parametrize(("quantity", "units"), [
    ("X-rays (Counts)", "counts"), ("X-rays (CPS)", "counts/s"), ("Intensity (a.u.)", "1"), ("Li6 (counts/s)", "counts/s")])
def test_hyperspy_quantity_spellings(quantity, units):
    """RosettaSciIO's EDS signals say 'X-rays (Counts)': a map summed from a real BCF was refused ('Counts')."""
    s = hs.signals.Signal2D(np.ones((4, 5)))
    for a in s.axes_manager.signal_axes:
        a.units, a.scale = "nm", 10.0
    s.metadata.Signal.quantity = quantity
    assert from_hyperspy(s).attrs["units"] == units


def test_a_window_map_of_a_real_bcf_spectrum_image():
    from io_helpers import data_file

    cube = next(s for s in hs.load(data_file("eds/bcf_v2_50x50px.bcf")) if s.axes_manager.signal_dimension == 1)
    window = cube.isig[100:120].sum(axis=-1).T  # counts of channels 100-119 per pixel, as an image
    assert window.metadata.Signal.quantity == "X-rays (Counts)"
    out = from_hyperspy(window)
    assert out.attrs["units"] == "counts"
    np.testing.assert_array_equal(out.values[0], np.asarray(cube.data)[:, :, 100:120].sum(axis=-1))
    window.metadata.Signal.quantity = "X-rays (bananas)"
    with pytest.raises(DataModelError, match=r"signal: expected units in metadata.Signal.quantity such as 'Li6 \(counts\)', found 'bananas'"):
        from_hyperspy(window)
