"""Two-channel statistics as plans of the one engine: evaluated together, equal to the public functions."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from conftest import raise_if_dask_computes

import pfibsims as pfs
from pfibsims._engine.reduce import evaluate
from pfibsims.correlate.histogram import joint_histogram_plan
from pfibsims.correlate.moments import pearson_plan
from pfibsims.dataset import history
from pfibsims.errors import PfibsimsError


def _pair(chunks=(2, 9, 13)):
    rng = np.random.default_rng(11)
    a = rng.gamma(3.0, 2.0, (4, 30, 40))
    b = 0.3 * a + rng.normal(0, 1, a.shape)
    a[0, 0, :5] = np.nan
    m = rng.random(a.shape) > 0.2
    dims = ("z", "y", "x")
    return (xr.DataArray(da.from_array(a, chunks=chunks), dims=dims, name="Li6"),
            xr.DataArray(da.from_array(b, chunks=chunks), dims=dims, name="Zr_La"),
            xr.DataArray(da.from_array(m, chunks=chunks), dims=dims))


def test_pearson_and_joint_histogram_together_are_two_passes():
    a, b, m = _pair()
    with raise_if_dask_computes(max_computes=2):
        r, h, h2 = evaluate(pearson_plan(a, b, mask=m), joint_histogram_plan(a, b, bins=32, mask=m),
                            joint_histogram_plan(a, b, bins=(8, 4), range=((0, 30), (-5, 10))))
    assert r == pfs.pearson(a, b, mask=m)
    ref = pfs.joint_histogram(a, b, bins=32, mask=m)
    np.testing.assert_array_equal(h.values, ref.values)
    for c in ref.coords:
        np.testing.assert_array_equal(h[c].values, ref[c].values)
    av, bv, mv = a.values, b.values, m.values
    ok = np.isfinite(av) & np.isfinite(bv) & mv
    np.testing.assert_array_equal(h.values, np.histogram2d(av[ok], bv[ok], 32)[0])
    np.testing.assert_array_equal(h2.values, np.histogram2d(av[np.isfinite(av)], bv[np.isfinite(av)], (8, 4),
                                                            range=((0, 30), (-5, 10)))[0])
    assert history(h)[-1]["params"] == history(ref)[-1]["params"]


def test_joint_histogram_plan_errors_at_once_and_without_finite_values():
    a, b, _ = _pair()
    with pytest.raises(PfibsimsError, match=r"bins: expected an int or \(bins_a, bins_b\)"):
        joint_histogram_plan(a, b, bins=(1, 2, 3))
    with pytest.raises(PfibsimsError, match="a: expected some finite values"):
        evaluate(joint_histogram_plan(a * np.nan, b))
