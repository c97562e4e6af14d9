"""Store tests: exact lazy round trip, atomic save (a killed save leaves no half store), OME-Zarr validity."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import pfibsims as pfs
from pfibsims.dataset import history, record
from pfibsims.errors import DataModelError, FileFormatError
from pfibsims.transform import Affine


def _dataset(chunks=None):
    rng = np.random.default_rng(0)
    ds = pfs.stack(
        {"Zr_La": rng.poisson(5, (3, 20, 30)).astype(np.uint16), "Co_La": rng.random((3, 20, 30)).astype(np.float32)},
        pixel_size="81.4 nm", slice_thickness="60 nm", attrs={"beam_energy": "5 kV"}, chunks=chunks,
    )
    ds = record(ds, "test_step", threshold=0.5, ranges=[1, [2, 3]], nested={"a": {"b": None}})
    ds.attrs.update(Affine.identity(("y", "x")).to_attrs())
    ds.attrs["empty_list"] = []
    return ds


@pytest.fixture(params=[None, (1, 20, 30), (1, 7, 11)], ids=["numpy", "one-chunk", "small-chunks"])
def ds(request):
    return _dataset(request.param)


def _same_attrs(a: dict, b: dict, where: str) -> None:
    """Equal attrs; numpy arrays (CF flags) equal in values and dtype."""
    assert a.keys() == b.keys(), where
    for k, va in a.items():
        vb = b[k]
        if isinstance(va, np.ndarray) or isinstance(vb, np.ndarray):
            assert isinstance(va, np.ndarray), (where, k)
            assert isinstance(vb, np.ndarray), (where, k)
            assert va.dtype == vb.dtype, (where, k)
            assert np.array_equal(va, vb), (where, k)
        else:
            assert va == vb, (where, k)


def _assert_exact(a: xr.Dataset, b: xr.Dataset) -> None:
    xr.testing.assert_identical(a.compute(), b.compute())
    for name in a.variables:
        assert a[name].dtype == b[name].dtype, name
        _same_attrs(a[name].attrs, b[name].attrs, name)
    _same_attrs(a.attrs, b.attrs, "attrs")


def test_round_trip_is_exact_and_lazy(ds, tmp_path):
    path = pfs.save(ds, tmp_path / "run.zarr")
    back = pfs.open_dataset(path)
    assert all(isinstance(v.data, da.Array) for v in back.data_vars.values())
    _assert_exact(ds, back)
    assert isinstance(history(back), list)
    assert history(back)[-1]["params"]["ranges"] == [1, [2, 3]]
    assert Affine.from_attrs(back.attrs) == Affine.identity(("y", "x"))


def test_store_is_chunked_compressed_zarr_v3(tmp_path):
    path = pfs.save(_dataset((1, 7, 11)), tmp_path / "run.zarr")
    meta = json.loads((path / "Zr_La" / "zarr.json").read_text())
    assert meta["zarr_format"] == 3
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [1, 7, 11]
    blosc = [c for c in meta["codecs"] if c["name"] == "blosc"]
    assert blosc
    assert blosc[0]["configuration"]["cname"] == "lz4"
    assert blosc[0]["configuration"]["shuffle"] == "bitshuffle"
    assert meta["dimension_names"] == ["z", "y", "x"]


def test_plain_xarray_opens_it_without_pfibsims(tmp_path):
    ds = _dataset()
    path = pfs.save(ds, tmp_path / "run.zarr")
    code = f"import sys, xarray as xr; ds = xr.open_zarr({str(path)!r}); assert 'pfibsims' not in sys.modules; print(ds.Zr_La.dtype, ds.x.attrs['units'], int(ds.Zr_La.sum()))"
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["uint16", "nm", str(int(ds.Zr_La.sum()))]


def test_refuses_to_overwrite_unless_asked(tmp_path):
    ds = _dataset()
    path = pfs.save(ds, tmp_path / "run.zarr")
    with pytest.raises(FileFormatError, match="already exists; pass overwrite=True"):
        pfs.save(ds, path)
    ds2 = ds.assign(Zr_La=ds.Zr_La + 1)
    pfs.save(ds2, path, overwrite=True)
    _assert_exact(ds2, pfs.open_dataset(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.zarr"]  # no temporary or old store left


def test_save_errors(tmp_path):
    with pytest.raises(FileFormatError, match="format: expected one of"):
        pfs.save(_dataset(), tmp_path / "a.zarr", format="hdf5")
    with pytest.raises(FileFormatError, match="parent directory"):
        pfs.save(_dataset(), tmp_path / "no" / "a.zarr")
    with pytest.raises(DataModelError, match="expected an xarray Dataset"):
        pfs.save(np.zeros(3), tmp_path / "a.zarr")
    bad = _dataset()
    del bad.attrs["modality"]
    with pytest.raises(DataModelError, match="modality"):
        pfs.save(bad, tmp_path / "a.zarr")
    assert not any(tmp_path.iterdir())


def test_open_errors(tmp_path):
    with pytest.raises(FileFormatError, match="does not exist"):
        pfs.open_dataset(tmp_path / "none.zarr")
    (tmp_path / "d.zarr").mkdir()
    with pytest.raises(FileFormatError, match="expected a Zarr v3 store"):
        pfs.open_dataset(tmp_path / "d.zarr")
    path = pfs.save(_dataset(), tmp_path / "run.zarr")
    (path / "zarr.json").write_text("{not json")
    with pytest.raises(FileFormatError, match=r"run\.zarr/zarr\.json: expected Zarr metadata \(JSON\), but reading it failed"):
        pfs.open_dataset(path)


_SLOW_SAVE = textwrap.dedent(
    """
    import sys, time, numpy as np, dask.array as da, pfibsims as pfs
    def slow(block):
        time.sleep(0.05)
        return block
    arr = da.map_blocks(slow, da.ones((60, 40, 40), chunks=(1, 40, 40), dtype="float32"))
    ds = pfs.stack({"Li6": arr}, pixel_size="72 nm", slice_thickness="60 nm")
    print("start", flush=True)
    pfs.save(ds, sys.argv[1], overwrite=True)
    print("done", flush=True)
    """
)


@pytest.mark.parametrize("existing", [False, True])
def test_a_killed_save_leaves_no_half_store_and_keeps_the_old(tmp_path, existing):
    target = tmp_path / "run.zarr"
    old = _dataset()
    if existing:
        pfs.save(old, target)
    script = tmp_path / "slow_save.py"
    script.write_text(_SLOW_SAVE)
    proc = subprocess.Popen([sys.executable, str(script), str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "start"
        deadline = time.time() + 30
        while not any(p.name.startswith(".run.zarr.pfibsims-tmp-") and any(p.rglob("c/*")) for p in tmp_path.iterdir()):
            assert time.time() < deadline, "the save never started writing chunks"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    if existing:
        _assert_exact(old, pfs.open_dataset(target))  # the old store is intact
    else:
        assert not target.exists()  # no half store under the name
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".run.zarr.")]
    assert all(".pfibsims-tmp-" in n for n in leftovers)  # only the hidden, clearly named temporary


# ---------------------------------------------------------------- OME-Zarr


def test_ome_zarr_is_valid_ngff_that_ome_zarr_py_reads(tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader

    ds = _dataset((1, 7, 11))
    path = pfs.save(ds, tmp_path / "run.ome.zarr", format="ome-zarr", levels=3)
    reader = Reader(parse_url(str(path)))
    nodes = list(reader())
    image = nodes[0]
    assert image.specs
    assert isinstance(image.specs[0], Multiscales)
    levels = image.data
    assert [lv.shape for lv in levels] == [(2, 3, 20, 30), (2, 3, 10, 15), (2, 3, 5, 7)]
    ms = image.metadata
    assert [a["name"] for a in ms["axes"]] == ["c", "z", "y", "x"]
    assert ms["axes"][-1]["unit"] == "nanometer"
    t0, t1 = ms["coordinateTransformations"][0], ms["coordinateTransformations"][1]
    assert t0[0]["scale"] == [1.0, 60.0, 81.4, 81.4]
    assert t0[1]["translation"] == [0.0, 0.0, 40.7, 40.7]
    assert t1[0]["scale"] == [1.0, 60.0, 162.8, 162.8]
    assert t1[1]["translation"] == [0.0, 0.0, 81.4, 81.4]
    assert ms["channel_names"] == ["Zr_La", "Co_La"]
    np.testing.assert_array_equal(np.asarray(levels[0][0]), ds.Zr_La.values)
    np.testing.assert_allclose(np.asarray(levels[1][1]), ds.Co_La.coarsen(y=2, x=2).mean().values, rtol=1e-6)
    root = json.loads((path / "zarr.json").read_text())
    assert root["attributes"]["ome"]["version"] == "0.5"


def test_ome_zarr_validates_with_ome_zarr_models(tmp_path):
    models = pytest.importorskip("ome_zarr_models.v05")
    import zarr

    path = pfs.save(_dataset(), tmp_path / "run.ome.zarr", format="ome-zarr")
    models.Image.from_zarr(zarr.open_group(str(path), mode="r"))


def test_ome_zarr_reopens_at_full_resolution(tmp_path):
    ds = _dataset((1, 7, 11))
    path = pfs.save(ds, tmp_path / "run.ome.zarr", format="ome-zarr")
    back = pfs.open_dataset(path)
    _assert_exact(ds, back)


def test_a_fused_single_map_saves_as_ome_zarr(tmp_path):
    """Regression: fuse returns a 2-D map for 2-D inputs; save(format="ome-zarr") refused it ("expected dims
    ('z', 'y', 'x') for OME-Zarr, found ('y', 'x')"), though format="zarr" took it. It is written as a stack of one
    slice: the same values, grid and labels, with z of one slice at the map's depth (0 nm without one)."""
    rng = np.random.default_rng(4)
    eds = pfs.stack({"Fe_Ka": rng.poisson(4, (40, 50)).astype(np.uint16)}, pixel_size=("8.69 nm", "11.3 nm"),
                    origin=("12.5 mm", "-3.2 mm"), modality="EDS").isel(z=0, drop=True)
    sims = pfs.stack({"Li6": rng.random((30, 30))}, pixel_size="15 nm", origin=("12.5 mm", "-3.2 mm"),
                     modality="SIMS").isel(z=0, drop=True)
    vol = pfs.fuse(eds, sims, register=None, drift=False)
    vol = vol.assign(phase=pfs.classify_phases(vol, smooth=None, classes=2))
    assert vol.Fe_Ka.dims == ("y", "x")
    back = pfs.open_dataset(pfs.save(vol, tmp_path / "map.ome.zarr", format="ome-zarr"))
    assert dict(back.sizes) == {"z": 1, "y": 40, "x": 50}
    assert back.z.values.tolist() == [0.0]
    for name in ("y", "x"):
        np.testing.assert_array_equal(back[name].values, vol[name].values)
    for name in ("Fe_Ka", "Li6", "phase", "coverage"):
        np.testing.assert_array_equal(back[name].values[0], vol[name].values)


# ---------------------------------------------------------------- the phantom


def test_phantom_round_trips_exactly(tmp_path):
    synthetic = pytest.importorskip("pfibsims.synthetic")
    eds, sims, truth = synthetic.cathode(seed=0, n_slices=3, eds_shape=(24, 32), sims_shape=(30, 30))
    for name, d in (("eds", eds), ("sims", sims)):
        path = pfs.save(d, tmp_path / f"{name}.zarr")
        _assert_exact(d, pfs.open_dataset(path))
    tagged = eds.assign_attrs(truth.attrs)  # the true SIMS-to-EDS affine and the depletion depth, as JSON attrs
    back = pfs.open_dataset(pfs.save(tagged, tmp_path / "tagged.zarr"))
    assert Affine.from_attrs(back.attrs) == Affine.from_attrs(truth.attrs)


def test_a_lazy_stack_is_written_slab_by_slab(tmp_path):
    # one compute per slab of z chunks (bounded memory on large fields), and the same store as one write
    from dask.callbacks import Callback

    from pfibsims.io.store import _SLAB_TASKS, _slabs

    rng = da.random.default_rng(0)
    counts = rng.poisson(5, (13, 40, 50), chunks=(1, 20, 20)).astype("uint16")
    ds = pfs.stack({"Zr_La": counts, "Co_La": counts.astype("float32") / 3}, pixel_size="81.4 nm",
                   slice_thickness="60 nm")
    ds["coverage"] = xr.DataArray(counts > 3, dims=("z", "y", "x"), attrs={"units": "1"})
    ds = ds.assign_coords(slice=("z", da.arange(13, chunks=13)))  # a lazy coordinate, loaded first
    slabs = _slabs(ds.copy(deep=False))
    per_slice = 3 * 2 * 3  # variables x in-plane chunks
    step = -(-_SLAB_TASKS // per_slice)
    assert [(s.start, s.stop) for s in slabs] == [(a, min(a + step, 13)) for a in range(0, 13, step)]

    class Count(Callback):
        def __init__(self):
            super().__init__()
            self.n = 0

        def _start(self, dsk):
            self.n += 1

    with Count() as c:
        p = pfs.save(ds, tmp_path / "slabs.zarr")
    assert c.n == len(slabs) + 1  # the slabs, and the lazy coordinate
    back = pfs.open_dataset(p)
    expected = ds.compute()
    for v in expected.data_vars:
        np.testing.assert_array_equal(back[v].values, expected[v].values)
    np.testing.assert_array_equal(back["slice"].values, np.arange(13))
    assert back.Zr_La.dtype == np.uint16
    assert back.coverage.dtype == bool


def test_an_eager_or_single_slice_dataset_is_written_at_once(tmp_path):
    from pfibsims.io.store import _slabs

    assert _slabs(_dataset().copy(deep=False)) == []
    assert _slabs(_dataset((3, 20, 30)).isel(z=[0]).copy(deep=False)) == []


# ---------------------------------------------------------------- OME-Zarr labels, colours, windows, 0.4


def _labelled(chunks=None):
    """Channels, a phase label (uint8 with CF flags) and a boolean coverage, on an odd-sized grid."""
    rng = np.random.default_rng(3)
    ds = pfs.stack(
        {"Zr_La": rng.poisson(20, (3, 21, 34)).astype(np.uint16), "Li6": rng.gamma(2.0, 50.0, (3, 21, 34)).astype(np.float32),
         "W_Ma": rng.random((3, 21, 34))},
        pixel_size="81.4 nm", slice_thickness="60 nm", origin=("120 nm", "1 um", "2 um"), modality="fused", chunks=chunks,
    )
    ds["phase"] = xr.DataArray(rng.integers(0, 3, (3, 21, 34)).astype(np.uint8), dims=("z", "y", "x"), attrs={
        "units": "1", "flag_values": np.array([0, 1, 2], dtype=np.uint8), "flag_meanings": "matrix LLZTO tungsten",
        "pfibsims:phase_channels": json.dumps({"LLZTO": "Zr_La", "tungsten": "W_Ma"})})
    ds["coverage"] = xr.DataArray(rng.random((3, 21, 34)) > 0.3, dims=("z", "y", "x"), attrs={"units": "1"})
    if chunks is not None:
        ds = ds.chunk(dict(zip(("z", "y", "x"), chunks, strict=True)))
    return ds


def _mode_reference(a):
    """2x2 mode of the last two axes by collections.Counter (ties: first in raster order), trimming odd edges."""
    from collections import Counter

    *lead, ny, nx = a.shape
    out = np.empty((*lead, ny // 2, nx // 2), a.dtype)
    for idx in np.ndindex(*lead, ny // 2, nx // 2):
        *lead_idx, i, j = idx
        block = a[(*lead_idx, slice(2 * i, 2 * i + 2), slice(2 * j, 2 * j + 2))].ravel().tolist()
        out[idx] = Counter(block).most_common(1)[0][0]
    return out


@pytest.mark.parametrize("chunks", [None, (1, 7, 11)], ids=["numpy", "small-chunks"])
def test_ome_labels_are_integer_label_images_downsampled_by_mode(tmp_path, chunks):
    import zarr

    ds = _labelled(chunks)
    path = pfs.save(ds, tmp_path / "fused.ome.zarr", format="ome-zarr", levels=3)
    root = zarr.open_group(str(path), mode="r")
    assert root["labels"].attrs["ome"]["labels"] == ["phase", "coverage"]
    assert root["0"].shape == (3, 3, 21, 34)  # the labels are not image channels
    phase = [np.asarray(root[f"labels/phase/{k}"]) for k in range(3)]
    cover = [np.asarray(root[f"labels/coverage/{k}"]) for k in range(3)]
    assert [p.dtype for p in phase] == [np.uint8] * 3
    assert [c.dtype for c in cover] == [np.uint8] * 3
    np.testing.assert_array_equal(phase[0], ds.phase.values)
    np.testing.assert_array_equal(phase[1], _mode_reference(ds.phase.values))
    np.testing.assert_array_equal(phase[2], _mode_reference(_mode_reference(ds.phase.values)))
    np.testing.assert_array_equal(cover[1], _mode_reference(ds.coverage.values.astype(np.uint8)))
    assert set(np.unique(phase[1])) <= {0, 1, 2}  # no averaged phase values (0.25, 0.5, ...)
    meta = root["labels/phase"].attrs["ome"]
    assert [a["name"] for a in meta["multiscales"][0]["axes"]] == ["z", "y", "x"]
    image_t = root.attrs["ome"]["multiscales"][0]["datasets"]
    for lab_level, img_level in zip(meta["multiscales"][0]["datasets"], image_t, strict=True):
        assert lab_level["coordinateTransformations"][0]["scale"] == img_level["coordinateTransformations"][0]["scale"][1:]
        assert lab_level["coordinateTransformations"][1]["translation"] == img_level["coordinateTransformations"][1]["translation"][1:]
    il = meta["image-label"]
    assert il["source"] == {"image": "../../"}
    assert {p["label-value"]: p["name"] for p in il["properties"]} == {0: "matrix", 1: "LLZTO", 2: "tungsten"}
    colours = {c["label-value"]: c["rgba"] for c in il["colors"]}
    assert colours == {0: [0, 0, 0, 0], 1: [0, 255, 0, 255], 2: [255, 128, 128, 255]}  # Zr green; W the first fallback
    back = pfs.open_dataset(path)
    _assert_exact(ds, back)
    assert list(back.data_vars) == list(ds.data_vars)


def test_ome_labels_read_by_ome_zarr_py_and_validated(tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    models = pytest.importorskip("ome_zarr_models.v05")
    import zarr

    path = pfs.save(_labelled(), tmp_path / "fused.ome.zarr", format="ome-zarr", levels=3)
    model = models.Image.from_zarr(zarr.open_group(str(path), mode="r"))
    assert model.labels is not None
    assert model.labels.label_paths == ["phase", "coverage"]
    nodes = list(Reader(parse_url(str(path)))())
    labels = {n.metadata["name"]: n for n in nodes if any(isinstance(s, Label) for s in n.specs)}
    assert sorted(labels) == ["coverage", "phase"]
    assert labels["phase"].metadata["properties"][1] == {"name": "LLZTO"}
    assert labels["phase"].metadata["color"][1] == [0.0, 1.0, 0.0, 1.0]
    assert [lv.shape for lv in labels["phase"].data] == [(3, 21, 34), (3, 10, 17), (3, 5, 8)]


def test_ome_channel_colours_windows_name_and_translation(tmp_path):
    import zarr

    ds = _labelled((1, 7, 11))
    path = pfs.save(ds, tmp_path / "fused.ome.zarr", format="ome-zarr", levels=2)
    ome = zarr.open_group(str(path), mode="r").attrs["ome"]
    ms = ome["multiscales"][0]
    assert ms["name"] == "fused"
    assert ms["datasets"][0]["coordinateTransformations"][1]["translation"] == [0.0, 120.0, 1000.0, 2000.0]
    channels = ome["omero"]["channels"]
    assert [c["label"] for c in channels] == ["Zr_La", "Li6", "W_Ma"]
    assert [c["color"] for c in channels] == ["00FF00", "FF0000", "FF8080"]
    coarse = np.asarray(zarr.open_group(str(path), mode="r")["1"], dtype=np.float64)  # the reduced view
    for i, c in enumerate(channels):
        lo, hi = np.percentile(coarse[i], [0.5, 99.5])
        assert c["window"]["start"] == pytest.approx(lo)
        assert c["window"]["end"] == pytest.approx(hi)
        assert c["window"]["min"] == coarse[i].min()
        assert c["window"]["max"] == coarse[i].max()
        assert c["window"]["min"] <= c["window"]["start"] < c["window"]["end"] <= c["window"]["max"]
    named = pfs.save(ds.assign_attrs(name="cathode 7"), tmp_path / "other.ome.zarr", format="ome-zarr")
    assert zarr.open_group(str(named), mode="r").attrs["ome"]["multiscales"][0]["name"] == "cathode 7"


def test_ome_windows_ignore_nan_and_survive_an_empty_channel(tmp_path):
    import zarr

    ds = _labelled()
    ds["Li6"] = ds.Li6.where(ds.coverage)  # NaN outside the SIMS field, as a normalised fused volume has
    ds["Zr_La"] = ds.Zr_La.astype(np.float32) * np.nan
    path = pfs.save(ds, tmp_path / "nan.ome.zarr", format="ome-zarr", levels=1)
    channels = zarr.open_group(str(path), mode="r").attrs["ome"]["omero"]["channels"]
    li = ds.Li6.values[np.isfinite(ds.Li6.values)]
    assert channels[1]["window"]["end"] == pytest.approx(np.percentile(li, 99.5))
    assert channels[0]["window"] == {"min": 0.0, "max": 1.0, "start": 0.0, "end": 1.0}


def test_ome_zarr_0_4_on_request_validates_and_round_trips(tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    models = pytest.importorskip("ome_zarr_models.v04")
    import zarr

    ds = _labelled((1, 7, 11))
    path = pfs.save(ds, tmp_path / "old.ome.zarr", format="ome-zarr", levels=2, ngff_version="0.4")
    attrs = json.loads((path / ".zattrs").read_text())
    assert attrs["multiscales"][0]["version"] == "0.4"
    assert not (path / "zarr.json").exists()
    assert json.loads((path / "0" / ".zarray").read_text())["dimension_separator"] == "/"
    models.Image.from_zarr(zarr.open_group(str(path), mode="r", zarr_format=2))
    nodes = list(Reader(parse_url(str(path)))())
    assert nodes[0].metadata["channel_names"] == ["Zr_La", "Li6", "W_Ma"]
    np.testing.assert_array_equal(np.asarray(nodes[0].data[0][1]), ds.Li6.values)
    _assert_exact(ds, pfs.open_dataset(path))


def test_ome_errors(tmp_path):
    ds = _labelled()
    with pytest.raises(FileFormatError, match=r"ngff_version: expected one of \('0.5', '0.4'\), got '0.3'"):
        pfs.save(ds, tmp_path / "a.ome.zarr", format="ome-zarr", ngff_version="0.3")
    with pytest.raises(DataModelError, match=r"expected at least one image channel .* found only labels \['phase', 'coverage'\]"):
        pfs.save(ds[["phase", "coverage"]], tmp_path / "b.ome.zarr", format="ome-zarr")
    assert not any(tmp_path.iterdir())
    path = pfs.save(ds, tmp_path / "c.ome.zarr", format="ome-zarr")
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"]["ome"]["multiscales"][0]["datasets"][0]["path"] = "../../etc"
    (path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(FileFormatError, match=r"expected dataset paths inside the group, found '\.\./\.\./etc'"):
        pfs.open_dataset(path)


def _in_micrometres(ds):
    """``ds`` with its z, y, x coordinates in um (the same positions)."""
    return ds.assign_coords({d: (d, ds[d].values / 1000.0, {**ds[d].attrs, "units": "um"}) for d in ("z", "y", "x")})


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_ome_coordinates_in_micrometres_are_written_in_nanometres_and_reopen_exactly(tmp_path, version):
    """A dataset in um: every axis's scale and translation in nm (z was written in um), and it reopens in um."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    nm = _labelled()
    ds = _in_micrometres(nm)
    path = pfs.save(ds, tmp_path / "um.ome.zarr", format="ome-zarr", levels=2, ngff_version=version)
    image = next(iter(Reader(parse_url(str(path)))()))
    for lv, (scale, trans) in zip(image.data, image.metadata["coordinateTransformations"], strict=True):
        centres = [trans["translation"][i] + scale["scale"][i] * np.arange(lv.shape[i]) for i in (1, 2, 3)]
        k = (lv.shape[-1] != nm.sizes["x"]) + 1
        for d, c in zip(("z", "y", "x"), centres, strict=True):
            ref = nm[d].values if d == "z" else nm[d].coarsen({d: k}, boundary="trim").mean().values
            np.testing.assert_allclose(c, ref, rtol=0, atol=1e-9, err_msg=d)  # in nm, as the axes' unit says
    _assert_exact(ds, pfs.open_dataset(path))


def test_ome_single_slice_keeps_its_thickness_as_the_z_scale(tmp_path):
    import zarr

    ds = pfs.stack({"Li6": np.ones((1, 4, 6))}, pixel_size="72 nm", slice_thickness="60 nm", origin=("30 nm", "0 nm", "0 nm"))
    path = pfs.save(ds, tmp_path / "one.ome.zarr", format="ome-zarr", levels=1)
    t = zarr.open_group(str(path), mode="r").attrs["ome"]["multiscales"][0]["datasets"][0]["coordinateTransformations"]
    assert t[0]["scale"] == [1.0, 60.0, 72.0, 72.0]
    assert t[1]["translation"] == [0.0, 30.0, 0.0, 0.0]


def test_ome_zarr_of_another_writer_in_micrometres_opens_in_nanometres(tmp_path):
    """open_dataset took an OME-Zarr's scale and translation as nm whatever its axes' unit (1000x off in um)."""
    ds = _labelled()[["Zr_La", "Li6"]]
    path = pfs.save(ds, tmp_path / "other.ome.zarr", format="ome-zarr", levels=2)
    meta = json.loads((path / "zarr.json").read_text())
    del meta["attributes"]["pfibsims"]  # as another writer leaves it: OME metadata only
    ms = meta["attributes"]["ome"]["multiscales"][0]
    for axis in ms["axes"][1:]:
        axis["unit"] = "micrometer"
    for level in ms["datasets"]:
        for t in level["coordinateTransformations"]:
            key = t["type"]
            t[key] = [t[key][0]] + [v / 1000.0 for v in t[key][1:]]
    (path / "zarr.json").write_text(json.dumps(meta))
    back = pfs.open_dataset(path)
    for d in ("z", "y", "x"):
        np.testing.assert_allclose(back[d].values, ds[d].values, rtol=1e-12, err_msg=d)
        assert back[d].attrs["units"] == "nm"
    np.testing.assert_array_equal(back.Li6.values, ds.Li6.values)
    ms["axes"][-1]["unit"] = "second"
    (path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(FileFormatError, match=r"axis 'x': expected a length unit such as 'nanometer', found 'second'"):
        pfs.open_dataset(path)


def test_ome_zarr_multiscale_level_transforms_apply_after_the_datasets(tmp_path):
    """NGFF: a multiscale's own coordinateTransformations apply after each dataset's; they were ignored."""
    ds = _labelled()[["Zr_La", "Li6"]]
    path = pfs.save(ds, tmp_path / "top.ome.zarr", format="ome-zarr", levels=2)
    meta = json.loads((path / "zarr.json").read_text())
    del meta["attributes"]["pfibsims"]
    ms = meta["attributes"]["ome"]["multiscales"][0]
    level0 = ms["datasets"][0]["coordinateTransformations"]
    scale, trans = level0[0]["scale"], level0[1]["translation"]
    for k, level in enumerate(ms["datasets"]):  # the same geometry, split: pixels at the dataset, nm at the multiscale
        f = 2**k
        level["coordinateTransformations"] = [{"type": "scale", "scale": [1.0, 1.0, f, f]},
                                              {"type": "translation", "translation": [0.0, 0.0, (f - 1) / 2, (f - 1) / 2]}]
    ms["coordinateTransformations"] = [{"type": "scale", "scale": scale}, {"type": "translation", "translation": trans}]
    (path / "zarr.json").write_text(json.dumps(meta))
    back = pfs.open_dataset(path)
    for d in ("z", "y", "x"):
        np.testing.assert_allclose(back[d].values, ds[d].values, rtol=1e-12, err_msg=d)
