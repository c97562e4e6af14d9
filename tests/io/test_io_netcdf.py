"""netCDF: ``to_netcdf`` works on every dataset pfibsims returns, and the CF attrs survive the round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from io_helpers import data_file

import pfibsims as pfs
from pfibsims.dataset import HISTORY_JSON, history

h5netcdf = pytest.importorskip("h5netcdf")  # the optional 'netcdf' extra: netCDF-4 through h5py


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """The outputs of the public functions on a small phantom, by name."""
    eds, sims, truth = pfs.synthetic.cathode(seed=1, n_slices=3, eds_shape=(96, 128), sims_shape=(180, 180))
    vol = pfs.fuse(eds, sims)
    phase = pfs.classify_phases(vol)
    vol = vol.assign(phase=phase)
    store = pfs.save(vol, tmp_path_factory.mktemp("nc") / "vol.zarr")
    out = {
        "stack": pfs.stack({"Li6": np.ones((2, 3, 4))}, pixel_size="72 nm", slice_thickness="60 nm"),
        "cathode.eds": eds, "cathode.sims": sims, "cathode.truth": truth,
        "normalize": pfs.normalize(eds, method="log", zeros="clip"), "to_uint8": pfs.to_uint8(pfs.normalize(eds, method="minmax")),
        "histogram": pfs.histogram(eds.Zr_La, bins=16),
        "estimate_drift": pfs.estimate_drift(sims.Li6),
        "resample": pfs.resample(sims, onto=eds), "coverage": pfs.coverage(sims, eds),
        "fuse": vol, "classify_phases": phase,
        "phase_statistics": pfs.phase_statistics(vol.Li6, phase),
        "particles": pfs.particles(phase, "LLZTO"),
        "boundary_profile": pfs.boundary_profile(vol.Li6, phase, "LLZTO"),
        "covariance_map": pfs.covariance_map(vol.Li6, vol.Zr_La),
        "joint_histogram": pfs.joint_histogram(vol.Li6, vol.Zr_La, bins=16),
        "profile": pfs.profile(vol.Li6, start=("1 um", "1 um"), end=("6 um", "5 um")),
        "local_correlation": pfs.local_correlation(vol.Li6, vol.Zr_La, window={"y": "1 um", "x": "1 um"}),
        "open_dataset": pfs.open_dataset(store),
        "quantify": pfs.quantify(vol.Li6, phase, interior="300 nm", psf="80 nm"),
        "isotope_ratio": pfs.isotope_ratio(vol.Li6, vol.Li6 + 10, phases=phase),
    }
    return out


NAMES = ["stack", "cathode.eds", "cathode.sims", "cathode.truth", "normalize", "to_uint8", "histogram",
         "estimate_drift", "resample", "coverage", "fuse", "classify_phases", "phase_statistics", "particles",
         "boundary_profile", "covariance_map", "joint_histogram", "profile", "local_correlation", "open_dataset",
         "quantify", "isotope_ratio"]


@pytest.mark.parametrize("name", NAMES)
def test_to_netcdf_round_trips(results, name, tmp_path):
    obj = results[name]
    path = tmp_path / f"{name}.nc"
    obj.to_netcdf(path)  # xarray's default engine: h5netcdf when netCDF4 is absent
    with xr.open_dataset(path) as back:
        back = back.load()
    ds = obj.to_dataset() if isinstance(obj, xr.DataArray) else obj
    if isinstance(obj, xr.DataArray):
        back = back[obj.name] if obj.name in back else back[next(iter(back.data_vars))]
        ds, back = obj.to_dataset(name=back.name or obj.name), back.to_dataset(name=back.name or obj.name)
    for v in ds.data_vars:
        np.testing.assert_array_equal(back[v].values, ds[v].values, err_msg=v)
        assert back[v].dtype == ds[v].dtype, v
    for src in (ds, *ds.data_vars.values()):
        if "history" in src.attrs:
            dst = back if src is ds else back[src.name]
            assert dst.attrs["history"] == src.attrs["history"]
            assert history(dst) == history(src)


def test_history_is_a_cf_string_once_per_dataset(results):
    vol = results["fuse"]
    assert isinstance(vol.attrs["history"], str)
    steps = [h["step"] for h in history(vol)]
    assert steps[-1] == "fuse"
    assert "synthetic.cathode" in steps
    assert vol.attrs["history"].splitlines()[-1].endswith("pfibsims " + pfs.__version__ + ": fuse")
    assert len(vol.attrs["history"].splitlines()) == len(steps)
    assert json.loads(vol.attrs[HISTORY_JSON]) == history(vol)
    for name in ("Zr_La", "Li6", "coverage"):  # the channels carry no copy of it
        assert "history" not in vol[name].attrs
        assert HISTORY_JSON not in vol[name].attrs


def test_cf_flags_typed_like_the_labels_and_coordinate_axes(results, tmp_path):
    for name in ("classify_phases", "cathode.truth", "open_dataset"):
        obj = results[name]
        lab = obj if isinstance(obj, xr.DataArray) else obj["phase"]
        assert isinstance(lab.attrs["flag_values"], np.ndarray), name
        assert lab.attrs["flag_values"].dtype == lab.dtype, name
    vol = results["fuse"]
    assert [vol[d].attrs["axis"] for d in ("z", "y", "x")] == ["Z", "Y", "X"]
    path = tmp_path / "phase.nc"
    results["classify_phases"].to_netcdf(path, engine="h5netcdf")
    with xr.open_dataset(path, engine="h5netcdf") as back:
        flags = back["phase"].attrs["flag_values"]
        assert flags.dtype == back["phase"].dtype
        assert back["phase"].attrs["flag_meanings"].split()[:2] == ["unassigned", "LLZTO"]
        assert back["x"].attrs["axis"] == "X"


@pytest.mark.parametrize("name", NAMES)
def test_every_output_quantifies_with_pint_xarray(results, name):
    import pint_xarray  # noqa: F401

    q = results[name].pint.quantify()
    variables = q.data_vars.values() if isinstance(q, xr.Dataset) else [q]
    assert any(hasattr(v.data, "units") for v in variables), name


#: Real files and the reader options they need (the readers' outputs are datasets pfibsims returns too).
REAL = {
    "eds/30x30_instructively_packed_16bit_compressed.bcf": ("read_eds", {}),
    "eds/bcf_v2_50x50px.bcf": ("read_eds", {}),
    "eds/test_TEM.bcf": ("read_eds", {}),
    "eds/jeol_View000": ("read_eds", {}),
    "eds/jeol_spectrum_image/View000_0000006.pts": ("read_eds", {"lines": ["Fe_Ka"]}),
    "sem/FEI-Helios-Ebeam-16bits.tif": ("read_sem", {}),
    "sem/test_tiff_Zeiss_SEM_512pix.tif": ("read_sem", {}),
    "sem/ZEISS_SEM_multipage.tif": ("read_sem", {"slice_thickness": "60 nm"}),
    "sims/RTIimage.im": ("read_sims", {}),
}


@pytest.mark.parametrize("rel", sorted(REAL))
def test_readers_outputs_of_real_files_round_trip_through_netcdf(rel, tmp_path):
    """The readers' attrs are netCDF attributes (a dict such as stage_position could not be written)."""
    reader, kw = REAL[rel]
    ds = getattr(pfs, reader)(data_file(rel), **kw)
    path = tmp_path / "read.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    with xr.open_dataset(path, engine="h5netcdf") as back:
        back = back.load()
    for v in ds.variables:
        np.testing.assert_array_equal(back[v].values, ds[v].values, err_msg=v)
        assert back[v].dtype == ds[v].dtype, v
    for k, v in ds.attrs.items():  # netCDF has no one-element list: a list of one string comes back as the string
        want = v[0] if isinstance(v, list) and len(v) == 1 else v
        assert np.asarray(back.attrs[k]).tolist() == np.asarray(want).tolist(), k
    assert history(back) == history(ds)
    back.pint.quantify()
