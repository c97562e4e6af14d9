"""resample(..., drift=) and coverage(..., drift=): a per-slice drift composed with the transform, one interpolation."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from conftest import raise_if_dask_computes
from stacks import drift_table, shifted_stack

from pfibsims import Affine, Grid, coverage, resample
from pfibsims.dataset import history
from pfibsims.errors import DataModelError, PfibsimsError, UnitsError
from pfibsims.resampling import slice_transforms

CHUNKINGS = [None, -1, {"z": 1, "y": 24, "x": 24}]


@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_drift_correction_undoes_known_shifts_lazily(chunks):
    shifts = [(0.0, 0.0), (2.0, -3.0), (-1.0, 4.0)]
    ds = shifted_stack(shifts, counts=1e6, chunks=chunks)
    if chunks is None:
        out = resample(ds, ds, drift=drift_table(np.asarray(shifts) * 72))
    else:
        with raise_if_dask_computes():
            out = resample(ds, ds, drift=drift_table(np.asarray(shifts) * 72))
        assert isinstance(out.Li6.data, da.Array)
    vals = np.asarray(out.Li6.values)
    inner = (slice(None), slice(6, -6), slice(6, -6))
    ref = np.broadcast_to(ds.Li6.values[0], vals.shape)
    rel = np.abs(vals[inner] - ref[inner]) / ref[inner].mean()
    assert rel.max() < 0.01  # integer shifts: Lanczos reproduces the samples up to the Poisson-free noise
    rec = history(out)[-1]
    assert rec["step"] == "resample"
    assert rec["params"]["drift_nm"] == (np.asarray(shifts) * 72).tolist()
    assert out.Li6.attrs["units"] == "counts"
    assert out.attrs["modality"] == "SIMS"
    assert np.array_equal(out.z.values, ds.z.values)


def test_drift_correction_equals_per_slice_resample():
    ds = shifted_stack([(0, 0), (0.3, 0.6)])
    d = drift_table([[0, 0], [0.03, 0.06]], units="um")
    out = resample(ds, ds, drift=d)
    ref = resample(ds.isel(z=[1]), Grid.of(ds, ("y", "x")), transform=Affine.translation((30.0, 60.0)))
    np.testing.assert_allclose(out.Li6.values[1], ref.Li6.values[0])


def test_drift_errors():
    ds = shifted_stack([(0, 0), (1, 1)])
    with pytest.raises(DataModelError, match="drift: expected 2 slices"):
        resample(ds, ds, drift=drift_table([[0, 0]]))
    with pytest.raises(UnitsError, match="drift: expected a length 'units'"):
        resample(ds, ds, drift=drift_table([[0, 0], [1, 1]]).drop_attrs())
    with pytest.raises(DataModelError, match=r"drift: expected a DataArray with dims \(z, component\)"):
        resample(ds, ds, drift=np.zeros((2, 2)))
    with pytest.raises(DataModelError, match=r"drift: expected \(z, y, x\) data"):
        resample(ds.isel(z=0), Grid.of(ds, ("y", "x")), drift=drift_table([[0, 0], [1, 1]]))
    with pytest.raises(PfibsimsError, match=r"transform: with a drift, expected an in-plane pfibsims.Affine"):
        resample(ds, Grid.of(ds, ("y", "x")), transform=np.eye(3), drift=drift_table([[0, 0], [1, 1]]))


def test_slice_transforms_compose_drift_after_transform():
    T = Affine.from_parameters(rotation=1.5, scale=1.02, shift=(300.0, -120.0), center=(1000, 2000))
    d = drift_table([[0, 0], [12.5, -3.0], [0.02, 0.01]], units="um")
    Ts = slice_transforms(T, d)
    p = np.array([[100.0, 200.0], [3000.0, -50.0]])
    for k, shift in enumerate([(0, 0), (12500.0, -3000.0), (20.0, 10.0)]):
        np.testing.assert_allclose(Ts[k](p), T(p) + np.asarray(shift), atol=1e-9)
        assert type(Ts[k]) is Affine
    with pytest.raises(PfibsimsError, match=r"transform: expected an in-plane pfibsims.Affine on \('y', 'x'\)"):
        slice_transforms(np.eye(3), d)
    with pytest.raises(DataModelError, match=r"drift: expected a DataArray with dims \(z, component\)"):
        slice_transforms(T, np.zeros((3, 2)))


@pytest.mark.parametrize("chunks", [None, {"z": 1, "y": 24, "x": 24}])
def test_transform_with_drift_is_one_resample_per_slice(chunks):
    ds = shifted_stack([(0, 0), (0.3, 0.6), (-1.0, 0.2)], chunks=chunks)
    T = Affine.from_parameters(rotation=2.0, shift=(100, -50), center=(2000, 2000))
    d = drift_table([[0, 0], [21.6, 43.2], [-72.0, 14.4]])
    onto = Grid((40, 40), "81.4 nm", origin="400 nm")
    if chunks is not None:
        with raise_if_dask_computes():
            out = resample(ds, onto, transform=T, drift=d, kernel="linear")
        ref = resample(ds, onto, transform=slice_transforms(T, d), kernel="linear")
        np.testing.assert_allclose(out.Li6.values, ref.Li6.values)
        return
    out = resample(ds, onto, transform=T, drift=d)
    for k in range(3):  # against an independent per-slice resampling through translation(drift[k]) @ T
        Tk = Affine.translation(tuple(d.values[k])) @ T
        ref = resample(ds.isel(z=[k]), onto, transform=Tk)
        np.testing.assert_allclose(out.Li6.values[k], ref.Li6.values[0])
    rec = history(out)[-1]
    assert rec["step"] == "resample"
    assert rec["params"]["drift_nm"] == d.values.tolist()
    assert Affine.from_dict(rec["params"]["transform"]) == T
    with pytest.raises(DataModelError, match="drift: expected 3 slices"):
        resample(ds, onto, transform=T, drift=d.isel(z=[0, 1]))


def test_coverage_with_drift_is_the_mask_of_that_resampling():
    ds = shifted_stack([(0, 0), (0.3, 0.6), (-1.0, 0.2)])
    T = Affine.from_parameters(rotation=2.0, shift=(900, -750), center=(2000, 2000))
    d = drift_table([[0, 0], [216.0, 432.0], [-720.0, 144.0]])
    onto = Grid((40, 40), "81.4 nm", origin="400 nm")
    cov = coverage(ds, onto, transform=T, drift=d).values
    out = resample(ds, onto, transform=T, drift=d, kernel="linear").Li6.values
    assert cov.shape == out.shape
    np.testing.assert_array_equal(cov, np.isfinite(out))
    assert 0 < cov.mean() < 1  # the drift moves the field edge differently on each slice
    assert not np.array_equal(cov[0], cov[2])


def test_a_pint_quantified_drift_is_taken_in_its_units():
    """A drift table quantified by pint-xarray was refused ("found none"): dequantified at the edge, in its units."""
    pytest.importorskip("pint_xarray")
    shifts = [(0.0, 0.0), (2.0, -3.0), (-1.0, 4.0)]
    ds = shifted_stack(shifts, counts=1e6)
    table = drift_table(np.asarray(shifts) * 72)
    um = table.copy(data=table.values / 1000.0).assign_attrs(units="um")
    ref = resample(ds, ds, drift=table)
    for drift in (table.pint.quantify(), um.pint.quantify()):
        np.testing.assert_allclose(resample(ds, ds, drift=drift).Li6.values, ref.Li6.values, rtol=1e-12)
    with pytest.raises(UnitsError, match=r"drift.attrs\['units'\]: expected a length .* \(a time\)"):
        resample(ds, ds, drift=table.assign_attrs(units="s").pint.quantify())


# -- a drift table is matched to the slices by depth (z), not by row position --------------------------
def _with_z(table, ds, units="nm", scale=1.0):
    return table.assign_coords(z=("z", ds.z.values * scale, {"units": units}))


def test_a_drift_table_is_matched_to_the_slices_by_depth():
    """Rows were taken by position: a table in another row order, or of a wider stack, shifted the wrong slices."""
    shifts = [(0.0, 0.0), (2.0, -3.0), (-1.0, 4.0)]
    ds = shifted_stack(shifts, counts=1e6)
    table = _with_z(drift_table(np.asarray(shifts) * 72), ds)
    ref = resample(ds, ds, drift=drift_table(np.asarray(shifts) * 72))  # no z: rows in order
    inner = (slice(None), slice(6, -6), slice(6, -6))
    truth = np.broadcast_to(ds.Li6.values[0], ref.Li6.shape)[inner]  # the known shifts undone
    assert (np.abs(ref.Li6.values[inner] - truth) / truth.mean()).max() < 0.01
    for given in (table.isel(z=[2, 0, 1]), _with_z(table, ds, "um", 1e-3).isel(z=[1, 2, 0])):
        out = resample(ds, ds, drift=given)
        np.testing.assert_array_equal(out.Li6.values, ref.Li6.values)
        np.testing.assert_allclose(history(out)[-1]["params"]["drift_nm"], np.asarray(shifts) * 72, rtol=1e-12)
    # a table of the whole stack applied to some of its slices takes their rows
    plane = Grid.of(ds, ("y", "x"))
    part = resample(ds.isel(z=[1, 2]), plane, drift=table)
    np.testing.assert_array_equal(part.Li6.values, ref.Li6.values[[1, 2]])
    cov = coverage(ds.isel(z=[1, 2]), plane, drift=table.isel(z=[1, 0, 2]))
    np.testing.assert_array_equal(cov.values, np.isfinite(part.Li6.values))


def test_a_drift_table_whose_depths_do_not_match_the_slices_is_refused():
    ds = shifted_stack([(0, 0), (1, 1), (2, 2)])  # z 0, 60, 120 nm
    table = _with_z(drift_table(np.zeros((3, 2))), ds)
    with pytest.raises(DataModelError, match=r"drift: expected a row for each z slice of data \(z 0, 60, 120 nm\), "
                                             r"found none at z 120 nm \(the table's z: 0, 60, 90 nm\)"):
        resample(ds, ds, drift=table.assign_coords(z=("z", [0.0, 60.0, 90.0], {"units": "nm"})))
    with pytest.raises(DataModelError, match=r"drift: expected a row for each z slice of data"):
        resample(ds, ds, drift=table.isel(z=[0, 1]))
    with pytest.raises(DataModelError, match=r"drift: expected one row a depth, found 2 rows at z 60 nm"):
        resample(ds, ds, drift=table.isel(z=[0, 1, 1, 2]))
    with pytest.raises(DataModelError, match=r"drift: expected finite depths z, found nan nm at row 1"):
        resample(ds, ds, drift=table.assign_coords(z=("z", [0.0, np.nan, 120.0], {"units": "nm"})))
    with pytest.raises(UnitsError, match=r"drift\.z\.attrs\['units'\]: expected a length"):
        resample(ds, ds, drift=table.assign_coords(z=("z", [0.0, 60.0, 120.0], {"units": "s"})))
