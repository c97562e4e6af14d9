"""pint-quantified inputs (pint-xarray's ``.pint.quantify()``) are dequantified at the edge, units checked."""

from __future__ import annotations

import numpy as np
import pint_xarray  # noqa: F401
import pytest
import xarray as xr

import pfibsims as pfs
from pfibsims._xr import dequantify
from pfibsims.errors import UnitsError


def _pair():
    rng = np.random.default_rng(2)
    li = rng.gamma(2.0, 10.0, (3, 12, 16))
    ds = pfs.stack({"Li6": li, "Zr_La": 2 * li + rng.normal(0, 5, li.shape)}, pixel_size="81.4 nm",
                   slice_thickness="60 nm", modality="fused")
    return ds, ds.pint.quantify()


def test_grid_of_quantified_data():
    ds, q = _pair()
    assert pfs.Grid.of(q) == pfs.Grid.of(ds)
    assert pfs.Grid.of(q.Li6, dims=["y", "x"]) == pfs.Grid.of(ds.Li6, dims=["y", "x"])


def test_statistics_take_quantified_channels():
    ds, q = _pair()
    assert float(pfs.pearson(q.Li6, q.Zr_La)) == pytest.approx(float(pfs.pearson(ds.Li6, ds.Zr_La)), rel=1e-12)
    assert float(pfs.covariance(q.Li6, q.Zr_La)) == pytest.approx(float(pfs.covariance(ds.Li6, ds.Zr_La)), rel=1e-12)
    np.testing.assert_allclose(pfs.normalize(q, method="minmax").Li6.values, pfs.normalize(ds, method="minmax").Li6.values)
    np.testing.assert_allclose(pfs.histogram(q.Li6, bins=8).values, pfs.histogram(ds.Li6, bins=8).values)


def test_resample_and_save_take_quantified_datasets(tmp_path):
    ds, q = _pair()
    onto = pfs.Grid((6, 8), "162.8 nm", origin=("81.4 nm", "81.4 nm"))
    np.testing.assert_allclose(pfs.resample(q, onto).Li6.values, pfs.resample(ds, onto).Li6.values)
    back = pfs.open_dataset(pfs.save(q, tmp_path / "q.zarr"))
    np.testing.assert_array_equal(back.Li6.values, ds.Li6.values)
    assert back.Li6.attrs["units"] == "count"  # pint's name for the data model's 'counts'
    assert back.x.attrs["units"] == "nanometer"


def test_dequantify_passes_plain_data_through_and_checks_lengths():
    ds, q = _pair()
    assert dequantify(ds, "ds") is ds
    plain = dequantify(q, "ds")
    xr.testing.assert_allclose(plain.Li6, ds.Li6)
    seconds = ds.assign_coords(x=ds.x.assign_attrs(units="s")).pint.quantify()
    with pytest.raises(UnitsError, match=r"x.attrs\['units'\]: expected a length"):
        pfs.Grid.of(seconds)
