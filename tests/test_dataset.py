import json

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import pfibsims
from pfibsims.dataset import channel_attrs, history, record, stack, validate
from pfibsims.errors import DataModelError, UnitsError
from pfibsims.grid import Grid
from pfibsims.transform import Affine
from pfibsims.units import ureg


def _eds(nz=3, chunks=None, **kw):
    rng = np.random.default_rng(0)
    ch = {n: rng.poisson(5, (nz, 6, 8)) for n in ("Zr_La", "Co_La")}
    return stack(ch, pixel_size="81.4 nm", slice_thickness="60 nm", chunks=chunks, **kw)


def test_stack_builds_the_data_model():
    ds = _eds(attrs={"beam_energy": ureg.Quantity(5, "kV"), "probe_current": "1.6 nA"})
    assert ds.attrs["modality"] == "EDS"
    assert history(ds) == []
    assert ds.attrs["beam_energy"] == "5 kV"
    assert dict(ds.sizes) == {"z": 3, "y": 6, "x": 8}
    np.testing.assert_allclose(ds.z, [0, 60, 120])
    np.testing.assert_allclose(ds.x, 40.7 + 81.4 * np.arange(8))  # field corner at 0
    assert ds.x.attrs["units"] == "nm"
    assert ds.z.attrs["units"] == "nm"
    assert ds.Zr_La.attrs == {"units": "counts", "element": "Zr", "line": "La"}
    np.testing.assert_array_equal(ds.slice, [0, 1, 2])
    assert Grid.of(ds) == Grid((3, 6, 8), (60, 81.4, 81.4), origin=(0, 40.7, 40.7))
    validate(ds)


def test_stack_quantifies_with_pint_xarray():
    q = _eds().pint.quantify()
    assert str(q.Zr_La.pint.units) == "count"
    assert str(q.x.pint.units) == "nanometer"


def test_stack_from_list_of_slices_and_dask_keeps_laziness():
    slices = [da.ones((4, 5), chunks=2) * i for i in range(3)]
    ds = stack({"Li6": slices}, pixel_size=("72 nm", "70 nm"), slice_thickness="0.06 um")
    assert isinstance(ds.Li6.data, da.Array)
    assert ds.Li6.attrs["isotope"] == "6Li"
    assert ds.attrs["modality"] == "SIMS"
    assert Grid.of(ds).spacing == (60.0, 72.0, 70.0)
    np.testing.assert_array_equal(ds.Li6.isel(z=2).values, 2)


def test_single_map_and_measured_depths():
    one = stack({"BSE": np.zeros((4, 4))}, pixel_size="5 nm")
    assert one.sizes["z"] == 1
    assert one.attrs["modality"] == "SEM"
    ds = stack({"Li6": np.zeros((3, 4, 4))}, pixel_size="72 nm", z=["0 nm", "55 nm", "121 nm"])
    np.testing.assert_allclose(ds.z, [0, 55, 121])
    validate(ds)  # uneven z is allowed in the data model


def test_origin_and_chunks():
    ds = _eds(origin=("1 um", "2 um", "3 um"), chunks=(1, 3, 4))
    assert float(ds.z[0]) == 1000
    assert float(ds.y[0]) == 2000
    assert float(ds.x[0]) == 3000
    assert ds.Zr_La.data.chunks == ((1, 1, 1), (3, 3), (4, 4))


def test_channel_attrs():
    assert channel_attrs("Al_Ka")["line"] == "Ka"
    assert channel_attrs("Li7+") == {"units": "counts", "element": "Li", "isotope": "7Li", "mass": 7, "polarity": "+"}
    assert channel_attrs("BSE")["detector"] == "BSE"
    assert channel_attrs("whatever") == {"units": "counts"}


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"channels": {}}, DataModelError, "channels: expected a non-empty mapping"),
        ({"channels": {"Zr_La": np.zeros((2, 2)), "Co_La": np.zeros((2, 3))}}, DataModelError, "channels: expected arrays of one shape"),
        ({"channels": {"Zr_La": np.zeros((2, 2, 2, 2))}}, DataModelError, r"channels\['Zr_La'\]: expected a 2-D map or a 3-D"),
        ({"channels": {"Zr_La": [np.zeros((2, 2)), np.zeros((3, 2))]}}, DataModelError, r"channels\['Zr_La'\]: expected slices of one shape"),
        ({"channels": {"Zr_La": np.zeros((2, 2, 2))}, "slice_thickness": None}, DataModelError, "slice_thickness: expected a length"),
        ({"pixel_size": "1.6 nA"}, UnitsError, r"pixel_size: expected a length such as '81.4 nm', got '1.6 nA' \(a current\)"),
        ({"pixel_size": 81.4}, UnitsError, "pixel_size: .*plain number"),
        ({"slice_thickness": "-60 nm"}, UnitsError, "slice_thickness: expected a positive length"),
        ({"z": [0, 1]}, DataModelError, "slice_thickness, z: expected one of them"),
        ({"channels": {"foo": np.zeros((2, 2))}}, DataModelError, "modality: expected 'EDS', 'SIMS' or 'SEM'"),
        ({"units": "flibbles"}, UnitsError, "units: expected a unit such as 'nm' or 'counts/s', got 'flibbles'"),
        ({"origin": (1,)}, DataModelError, r"origin: expected \(y, x\) or \(z, y, x\)"),
        ({"attrs": {"when": object()}}, DataModelError, r"attrs\['when'\]: expected a JSON-serialisable value"),
    ],
)
def test_stack_errors_name_argument(kwargs, err, match):
    args = {"channels": {"Zr_La": np.zeros((2, 2))}, "pixel_size": "81.4 nm", "slice_thickness": "60 nm"}
    args.update(kwargs)
    channels = args.pop("channels")
    if "z" in kwargs:
        args["z"] = kwargs["z"]
    with pytest.raises(err, match=match):
        stack(channels, **args)


def test_stack_rejects_decreasing_depths():
    with pytest.raises(DataModelError, match=r"z: expected increasing slice depths"):
        stack({"Li6": np.zeros((2, 2, 2))}, pixel_size="72 nm", z=["60 nm", "0 nm"])


def test_validate_names_what_is_wrong():
    ds = _eds()
    bad = ds.copy()
    del bad.x.attrs["units"]
    with pytest.raises(DataModelError, match=r"x: expected a 'units' attribute"):
        validate(bad)
    bad = ds.copy()
    bad.Zr_La.attrs.pop("units")
    with pytest.raises(DataModelError, match=r"Zr_La: expected a 'units' attribute"):
        validate(bad)
    with pytest.raises(DataModelError, match=r"Zr_La: expected dims in the order \(z, y, x\).*transpose"):
        validate(ds.transpose("x", "y", "z"))
    bad = ds.copy()
    bad.attrs.pop("modality")
    with pytest.raises(DataModelError, match="attrs: expected a 'modality'"):
        validate(bad)
    with pytest.raises(DataModelError, match="ds: expected an xarray"):
        validate(np.zeros(3))
    irregular = ds.assign_coords(x=("x", np.r_[0.0, 1, 2, 3, 5, 6, 7, 8], {"units": "nm"}))
    with pytest.raises(DataModelError, match="x: expected regularly spaced"):
        validate(irregular)
    bad = ds.copy()
    bad.Zr_La.attrs["units"] = "flibbles"
    with pytest.raises(DataModelError, match=r"Zr_La: expected a pint-parsable 'units'"):
        validate(bad)
    assert validate(ds.Zr_La) is not None  # a DataArray is checked too


def test_record_appends_json_ready_history_without_touching_input():
    ds = _eds()
    T = Affine.from_parameters(rotation=1)
    out = record(ds, "register", transform=T, pixel_size=ureg.Quantity(72, "nm"), grid=Grid.of(ds), n=np.int64(3))
    assert history(ds) == []  # input untouched
    rec = history(out)[-1]
    assert rec["step"] == "register"
    assert rec["version"] == pfibsims.__version__
    assert rec["params"]["pixel_size"] == "72 nm"
    assert rec["params"]["n"] == 3
    assert Affine.from_dict(rec["params"]["transform"]) == T
    json.dumps(history(out))
    assert out.Zr_La.data is ds.Zr_La.data  # no data copied
    out2 = record(out, "normalize", method="log")
    assert [h["step"] for h in history(out2)] == ["register", "normalize"]


def test_public_names_import():
    for name in ("Grid", "Affine", "stack", "PfibsimsError", "resample", "register", "fuse"):
        assert hasattr(pfibsims, name)
    assert issubclass(pfibsims.PfibsimsError, ValueError)
    assert isinstance(xr.Dataset(), xr.Dataset)


# --- bad arguments (issue 21) -------------------------------------------------------------------


@pytest.mark.parametrize("chunks", ["garbage", -5, 0, (100000, 100000), [], 2.5, "10 nm"])
def test_stack_refuses_chunks_dask_cannot_use(chunks):
    with pytest.raises(DataModelError, match="chunks: expected a chunk size per axis such as"):
        stack({"Li6": np.ones((2, 4, 4))}, pixel_size="72 nm", slice_thickness="60 nm", chunks=chunks)


def test_stack_refuses_a_missing_pixel_size_and_unknown_units():
    with pytest.raises(UnitsError, match="pixel_size: expected one length such as '81.4 nm' or 2 of them, got None"):
        stack({"Li6": np.ones((4, 4))}, pixel_size=None)
    with pytest.raises(UnitsError, match="units: expected a unit .*'10\\*\\*10\\*\\*10'"):
        stack({"Li6": np.ones((4, 4))}, pixel_size="72 nm", units="10**10**10")


def test_validate_refuses_renamed_dims_and_nan_coordinates():
    ds = stack({"Li6": np.ones((2, 4, 5))}, pixel_size="72 nm", slice_thickness="60 nm")
    with pytest.raises(DataModelError, match=r"Li6: expected dims \('z', 'y', 'x'\) or \('y', 'x'\) \(an image\), found \('z', 'y', 'a'\)"):
        validate(ds.rename(x="a"))
    x = ds.x.values.copy()
    x[2] = np.nan
    with pytest.raises(DataModelError, match=r"x: expected finite coordinates, found nan at index 2 \(1 in all\)"):
        validate(ds.assign_coords(x=("x", x, ds.x.attrs)))
    with pytest.raises(DataModelError, match=r"Li6: expected a pint-parsable 'units' attribute .*does not parse"):
        validate(ds.assign(Li6=ds.Li6.assign_attrs(units="10**10**10")))


def test_record_refuses_what_has_no_history():
    with pytest.raises(DataModelError, match="obj: expected an xarray Dataset or DataArray, got object"):
        record(object(), "s")
    ds = stack({"Li6": np.ones((4, 4))}, pixel_size="72 nm")
    with pytest.raises(DataModelError, match="step: expected the name of the step"):
        record(ds, object())


def test_validate_refuses_complex_channels():
    ds = stack({"Li6": np.ones((2, 4, 5))}, pixel_size="72 nm", slice_thickness="60 nm")
    with pytest.raises(DataModelError, match="Li6: expected real numbers .*, found dtype complex128"):
        validate(ds.assign(Li6=ds.Li6 * (1 + 1j)))


def test_total_milled_depth_sets_or_scales_the_slice_depths():
    # the paper: 39 slices over a measured 2.3 um
    even = stack({"Li6": np.zeros((39, 2, 2))}, pixel_size="72 nm", total_depth="2.3 um")
    assert even.z.attrs["spacing"] == f"{2300 / 39:.12g} nm"
    np.testing.assert_allclose(np.diff(even.z.values), 2300 / 39)
    # uneven logged positions: scaled about the first so that the mean slice is total / n, unevenness kept
    logged = ["10 nm", "70 nm", "110 nm", "190 nm"]
    ds = stack({"Li6": np.zeros((4, 2, 2))}, pixel_size="72 nm", z=logged, total_depth="400 nm")
    want = 10 + (np.array([10, 70, 110, 190]) - 10) * (400 * 3 / 4) / 180
    np.testing.assert_allclose(ds.z.values, want)
    assert "spacing" not in ds.z.attrs
    from pfibsims.dataset import with_depths

    again = with_depths(stack({"Li6": np.zeros((4, 2, 2))}, pixel_size="72 nm", z=logged), total_depth="400 nm")
    np.testing.assert_allclose(again.z.values, want)
    assert history(again)[-1]["step"] == "with_depths"
    np.testing.assert_allclose(with_depths(ds, slice_thickness="50 nm").z.values, 10 + 50 * np.arange(4))
    one = stack({"Li6": np.zeros((2, 2))}, pixel_size="72 nm", total_depth="60 nm")
    assert one.z.attrs["spacing"] == "60 nm"


def test_depth_errors_name_the_argument():
    from pfibsims.dataset import with_depths

    with pytest.raises(DataModelError, match="slice_thickness, total_depth: expected one of them"):
        stack({"Li6": np.zeros((2, 2, 2))}, pixel_size="72 nm", slice_thickness="60 nm", total_depth="1 um")
    with pytest.raises(UnitsError, match="total_depth: expected a positive length"):
        stack({"Li6": np.zeros((2, 2, 2))}, pixel_size="72 nm", total_depth="0 nm")
    with pytest.raises(UnitsError, match="total_depth"):
        stack({"Li6": np.zeros((2, 2, 2))}, pixel_size="72 nm", total_depth="2 nA")
    with pytest.raises(DataModelError, match="ds: expected a Dataset or DataArray with a z dim"):
        with_depths(np.zeros(3), total_depth="1 um")
    with pytest.raises(DataModelError, match="z, slice_thickness, total_depth: expected one of them, got none"):
        with_depths(_eds(), z=None)


def test_stack_takes_pint_quantities_in_their_units():
    """A pint quantity (or a pint-xarray channel) lost its units silently: one in nm was stored as 'counts'."""
    pint_xarray = pytest.importorskip("pint_xarray")  # noqa: F841
    import pint

    app = pint.get_application_registry()  # pint-xarray's, not pfibsims' own registry
    counts = np.arange(12.0).reshape(3, 4)
    plain = stack({"Li6": counts}, pixel_size="72 nm")
    for given in (app.Quantity(counts, "count"), plain.Li6.pint.quantify(), [app.Quantity(counts, "count")]):
        ds = stack({"Li6": given}, pixel_size="72 nm")
        np.testing.assert_array_equal(ds.Li6.values, plain.Li6.values)
        assert ds.Li6.attrs["units"] == "counts"
    kilo = stack({"Li6": app.Quantity(counts / 1000.0, "kilocount")}, pixel_size="72 nm")
    np.testing.assert_allclose(kilo.Li6.values, plain.Li6.values, rtol=1e-12)
    with pytest.raises(UnitsError, match=r"channels\['Li6'\]: expected values in 'counts' \(the units argument\), got a quantity in nanometer"):
        stack({"Li6": app.Quantity(counts, "nm")}, pixel_size="72 nm")
