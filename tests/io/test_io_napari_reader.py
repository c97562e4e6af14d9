"""napari reader: layer-data tuples of pfibsims stores (no display, napari itself optional), npe2 manifest."""

from __future__ import annotations

import json
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import pfibsims as pfs
from pfibsims.io.napari_reader import get_reader, read_layers

MANIFEST = Path(pfs.__file__).parent / "io" / "napari.yaml"


def _volume():
    rng = np.random.default_rng(5)
    ds = pfs.stack({"Zr_La": rng.poisson(30, (4, 18, 26)).astype(np.uint16), "Li6": rng.gamma(3.0, 20.0, (4, 18, 26))},
                   pixel_size="81.4 nm", slice_thickness="60 nm", origin=("60 nm", "500 nm", "900 nm"), modality="fused",
                   chunks=(1, 9, 13))
    ds["phase"] = xr.DataArray(rng.integers(0, 2, (4, 18, 26)).astype(np.uint8), dims=("z", "y", "x"), attrs={
        "units": "1", "flag_values": np.array([0, 1], dtype=np.uint8), "flag_meanings": "matrix LLZTO",
        "pfibsims:phase_channels": json.dumps({"LLZTO": "Zr_La"})})
    ds["coverage"] = xr.DataArray(rng.random((4, 18, 26)) > 0.2, dims=("z", "y", "x"), attrs={"units": "1"})
    return ds


@pytest.fixture(params=["zarr", "ome-zarr"])
def store(request, tmp_path):
    ds = _volume()
    return ds, pfs.save(ds, tmp_path / f"run.{request.param}", format=request.param, levels=2), request.param


def test_reader_claims_pfibsims_stores_only(store, tmp_path):
    _, path, _ = store
    assert get_reader(str(path)) is read_layers
    assert get_reader([str(path)]) is read_layers
    assert get_reader([str(path), str(path)]) is None
    (tmp_path / "notes.txt").write_text("x")
    assert get_reader(str(tmp_path / "notes.txt")) is None
    foreign = tmp_path / "foreign.zarr"
    foreign.mkdir()
    (foreign / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {
        "ome": {"version": "0.5", "multiscales": [{"axes": [], "datasets": []}]}}}))
    assert get_reader(str(foreign)) is None  # other OME-Zarr: napari-ome-zarr's
    (foreign / "zarr.json").write_text("{broken")
    assert get_reader(str(foreign)) is None


def test_layers_carry_scale_units_colours_and_windows(store):
    ds, path, fmt = store
    layers = read_layers(str(path))
    kinds = {k["name"]: t for _, k, t in layers}
    assert kinds == {"Zr_La": "image", "Li6": "image", "phase": "labels", "coverage": "labels"}
    assert [t for _, _, t in layers] == ["image", "image", "labels", "labels"]  # images first, labels over them
    for data, kwargs, _ in layers:
        assert kwargs["scale"] == pytest.approx((60.0, 81.4, 81.4))
        assert kwargs["translate"] == pytest.approx((60.0, 500.0, 900.0))
        assert kwargs["units"] == ("nm", "nm", "nm")
        assert kwargs["axis_labels"] == ("z", "y", "x")
        levels = data if kwargs["multiscale"] else [data]
        assert all(isinstance(lv, da.Array) for lv in levels)  # lazy
        assert levels[0].shape == (4, 18, 26)
        assert kwargs["multiscale"] == (fmt == "ome-zarr")
    zr, li, phase, coverage = (next(t for t in layers if t[1]["name"] == n) for n in ("Zr_La", "Li6", "phase", "coverage"))
    assert zr[1]["colormap"]["colors"][-1] == [0.0, 1.0, 0.0, 1.0]  # Zr green
    assert li[1]["colormap"]["colors"][-1] == [1.0, 0.0, 0.0, 1.0]  # Li red
    assert zr[1]["blending"] == "additive"
    for (data, kwargs, _), name in ((zr, "Zr_La"), (li, "Li6")):
        full = ds[name].values.astype(np.float64)
        # OME-Zarr: the coarsest level, 2x2 means (float64, the channels' common dtype, so not rounded)
        view = full if fmt == "zarr" else full.reshape(4, 9, 2, 13, 2).mean(axis=(2, 4))
        lo, hi = np.percentile(view, [0.5, 99.5])
        assert kwargs["contrast_limits"] == pytest.approx((lo, hi), rel=1e-6)
        np.testing.assert_array_equal(np.asarray(data[0] if kwargs["multiscale"] else data), ds[name].values)
    assert phase[1]["colormap"][1] == [0.0, 1.0, 0.0, 1.0]
    assert phase[1]["colormap"][0][3] == 0.0
    assert phase[1]["features"] == {"index": [0, 1], "name": ["matrix", "LLZTO"]}
    assert coverage[1]["features"] == {"index": [0, 1], "name": ["outside", "inside"]}
    labels = phase[0][0] if phase[1]["multiscale"] else phase[0]
    np.testing.assert_array_equal(np.asarray(labels), ds.phase.values)
    cov = coverage[0][0] if coverage[1]["multiscale"] else coverage[0]
    assert cov.dtype == np.uint8
    np.testing.assert_array_equal(np.asarray(cov), ds.coverage.values)


def test_manifest_is_valid_and_reads_through_npe2(store):
    npe2 = pytest.importorskip("npe2")
    _, path, _ = store
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    assert manifest.name == "pfibsims"
    (reader,) = manifest.contributions.readers
    assert reader.accepts_directories
    assert reader.filename_patterns == ["*.zarr"]
    pm = npe2.PluginManager.instance()
    pm.discover()  # the installed package's napari.manifest entry point
    assert pm.get_manifest("pfibsims").contributions.readers == manifest.contributions.readers
    layers = npe2.read([str(path)], stack=False, plugin_name="pfibsims")
    assert [t for _, _, t in layers] == ["image", "image", "labels", "labels"]


def test_layers_build_in_napari_when_it_is_installed(store):
    layers_mod = pytest.importorskip("napari.layers")
    _, path, _ = store
    built = [layers_mod.Layer.create(*t) for t in read_layers(str(path))]
    assert [type(b).__name__ for b in built] == ["Image", "Image", "Labels", "Labels"]
    assert [str(u) for u in built[0].units] == ["nanometer"] * 3
    phase = next(b for b in built if b.name == "phase")
    assert phase.colormap.map(np.array([1]))[0].tolist() == [0.0, 1.0, 0.0, 1.0]


@pytest.mark.parametrize("fmt", ["zarr", "ome-zarr"])
def test_layers_of_a_store_in_micrometres_or_of_one_slice_are_scaled_in_nanometres(fmt, tmp_path):
    """z coordinates in um gave a z scale in um labelled nm; one slice of 60 nm a z scale of 1 nm."""
    ds = _volume()
    um = ds.assign_coords({d: (d, ds[d].values / 1000.0, {**ds[d].attrs, "units": "um"}) for d in ("z", "y", "x")})
    for vol, scale, translate in ((um, (60.0, 81.4, 81.4), (60.0, 500.0, 900.0)),
                                  (ds.isel(z=[1]), (60.0, 81.4, 81.4), (120.0, 500.0, 900.0))):
        path = pfs.save(vol, tmp_path / f"{len(vol.z)}.{fmt}", format=fmt, levels=2)
        for _, kwargs, _ in read_layers(str(path)):
            assert kwargs["scale"] == pytest.approx(scale), kwargs["name"]
            assert kwargs["translate"] == pytest.approx(translate), kwargs["name"]
