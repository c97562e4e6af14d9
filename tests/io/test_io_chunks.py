"""pfibsims.io._chunks: save's chunk files written and read without Zarr's machinery, checked against Zarr."""

from __future__ import annotations

import shutil

import dask.array as da
import numpy as np
import pytest
import zarr

import pfibsims as pfs
from pfibsims.io import _chunks, store


def _lazy_dataset():
    # shapes that the chunks do not divide (short chunks at the far edges), NaN in a float channel, four dtypes
    rng = np.random.default_rng(0)
    shape, chunks = (5, 23, 37), (2, 10, 16)
    li = rng.random(shape).astype(np.float32)
    li[1, 3:9, 30:] = np.nan
    data = {"Li6": li, "Zr_La": rng.poisson(7.0, shape).astype(np.uint16),
            "mask": rng.random(shape) > 0.5, "label": rng.integers(-5, 2**40, shape)}
    ds = pfs.stack({k: da.from_array(v, chunks=chunks) for k, v in data.items()}, pixel_size="72 nm",
                   slice_thickness="60 nm", modality="SIMS")
    return ds, data


def test_lazy_channels_are_written_chunk_by_chunk_and_read_back_by_zarr(tmp_path, monkeypatch):
    ds, data = _lazy_dataset()
    blocks = []
    setitem = _chunks.ChunkWriter.__setitem__

    def counted(self, key, value):
        blocks.append(self.dir.name)
        setitem(self, key, value)

    monkeypatch.setattr(_chunks.ChunkWriter, "__setitem__", counted)
    path = pfs.save(ds, tmp_path / "run.zarr")
    assert sorted(set(blocks)) == sorted(data)
    assert len(blocks) == 4 * 3 * 3 * 3
    for name, want in data.items():  # Zarr's own decoder reads what the writer wrote, edges and fill values included
        np.testing.assert_array_equal(zarr.open_array(str(path / name), mode="r")[...], want)
        np.testing.assert_array_equal(pfs.open_dataset(path)[name].values, want)
    # a short chunk at the far edge is stored whole, padded with the array's fill value (as Zarr pads it)
    edge = _chunks.decode((path / "Li6" / "c/2/2/2").read_bytes(), (2, 10, 16), np.dtype(np.float32))
    np.testing.assert_array_equal(edge[:1, :3, :5], data["Li6"][4:, 20:, 32:])
    assert np.isnan(edge[1:]).all()
    assert np.isnan(edge[:, 3:]).all()


def test_the_slabs_of_a_long_lazy_stack_write_the_same_store(tmp_path, monkeypatch):
    ds, data = _lazy_dataset()
    monkeypatch.setattr(store, "_SLAB_TASKS", 1)  # one z chunk a slab: three slabs
    path = pfs.save(ds, tmp_path / "run.zarr")
    for name, want in data.items():
        np.testing.assert_array_equal(zarr.open_array(str(path / name), mode="r")[...], want)


def test_a_lazy_channel_the_writer_cannot_take_is_written_by_xarray(tmp_path, monkeypatch):
    # (an array xarray stored in another dtype or layout than save's): its slabs go through xarray's region writes
    ds, data = _lazy_dataset()
    direct = store._writer
    monkeypatch.setattr(store, "_writer", lambda tmp, name, var: None if name == "mask" else direct(tmp, name, var))
    monkeypatch.setattr(store, "_SLAB_TASKS", 1)
    path = pfs.save(ds, tmp_path / "run.zarr")
    for name, want in data.items():
        np.testing.assert_array_equal(pfs.open_dataset(path)[name].values, want)


def test_arrays_in_another_layout_are_left_to_zarr(tmp_path):
    arr = zarr.create_array(str(tmp_path / "other"), shape=(4, 4), chunks=(2, 2), dtype="uint16",
                            compressors=zarr.codecs.ZstdCodec())
    assert not _chunks.in_saved_layout(arr)
    arr = zarr.create_array(str(tmp_path / "ours"), shape=(4, 4), chunks=(2, 2), dtype="uint16",
                            compressors=_chunks.codecs())
    assert _chunks.in_saved_layout(arr)


def test_a_block_that_is_not_one_chunk_is_refused(tmp_path):
    (tmp_path / "a").mkdir()  # the array's folder, as Zarr creates it with its zarr.json
    writer = _chunks.ChunkWriter(tmp_path / "a", (5, 23, 37), (2, 10, 16), np.dtype(np.float32), np.nan)
    with pytest.raises(ValueError, match="is not one chunk of"):
        writer[(slice(0, 2), slice(5, 15), slice(0, 16))] = np.zeros((2, 10, 16), np.float32)
    writer[(slice(4, 5), slice(20, 23), slice(32, 37))] = np.ones((1, 3, 5), np.float32)  # the far corner: fine
    assert (tmp_path / "a" / "c/2/2/2").is_file()


def test_a_chunk_written_after_its_array_was_removed_fails_and_does_not_recreate_it(tmp_path):
    # a failed save removes its temporary store while dask may still be writing other chunks into it
    (tmp_path / "a").mkdir()
    writer = _chunks.ChunkWriter(tmp_path / "a", (4, 4), (2, 2), np.dtype(np.uint16), 0)
    writer[(slice(0, 2), slice(0, 2))] = np.ones((2, 2), np.uint16)
    shutil.rmtree(tmp_path / "a")
    with pytest.raises(FileNotFoundError):
        writer[(slice(2, 4), slice(2, 4))] = np.ones((2, 2), np.uint16)
    assert not (tmp_path / "a").exists()


def test_encode_and_decode_round_trip_and_refuse_a_wrong_size():
    block = np.arange(2 * 10 * 16, dtype=np.uint16).reshape(2, 10, 16)
    data = _chunks.encode(block)
    np.testing.assert_array_equal(_chunks.decode(data, block.shape, block.dtype), block)
    with pytest.raises(ValueError, match=r"its Blosc header declares 640 bytes in \d+, expected 1280 in"):
        _chunks.decode(data, (4, 10, 16), block.dtype)
