"""Chunk integrity of stores (pfibsims.io._integrity): damaged, missing, swapped or rewritten chunks are errors."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import zarr

import pfibsims as pfs
from pfibsims.errors import FileFormatError
from pfibsims.io._integrity import MANIFEST


def _ds():
    data = np.arange(2 * 20 * 30, dtype=np.float32).reshape(2, 20, 30)
    return pfs.stack({"Li6": data}, pixel_size="72 nm", slice_thickness="60 nm", chunks=(1, 7, 11))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return pfs.save(_ds(), tmp_path_factory.mktemp("store") / "run.zarr")


@pytest.fixture
def store(pristine, tmp_path):
    return shutil.copytree(pristine, tmp_path / "run.zarr")


def _edit(path, fn):
    path.write_bytes(fn(bytearray(path.read_bytes())))


def _flip(b):
    b[len(b) // 2] ^= 0x10
    return bytes(b)


DAMAGE = {
    "flipped": (_flip, r"chunk 'Li6/c/1/1/1' is corrupt and does not decode \(its CRC-32C does not match its bytes\)"),
    "zeroed": (lambda b: bytes(len(b)), "chunk 'Li6/c/1/1/1' is not the chunk the store was written with"),
    "truncated": (lambda b: bytes(b[:10]), "chunk 'Li6/c/1/1/1' is not the chunk the store was written with"),
    "emptied": (lambda b: b"", "chunk 'Li6/c/1/1/1' is not the chunk the store was written with"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_chunk_is_an_error_naming_store_and_chunk(store, damage):
    fn, message = DAMAGE[damage]
    ds = pfs.open_dataset(store)
    _edit(store / "Li6/c/1/1/1", fn)
    assert float(ds.Li6[0].sum()) == float(_ds().Li6[0].sum())  # other chunks still read
    with pytest.raises(FileFormatError, match=f"run.zarr: {message}"):
        ds.Li6.load()


def test_chunks_read_directly_equal_zarrs_reads_whole_edge_and_part(pristine, monkeypatch):
    # a chunk in the layout save writes is read from its file (one read, the checksum, Blosc); the values are
    # Zarr's own, for whole chunks, the short chunks at the edges (20 = 7 + 7 + 6, 30 = 11 + 11 + 8) and parts
    want = zarr.open_array(str(pristine / "Li6"), mode="r")[...]
    ds = pfs.open_dataset(pristine)
    np.testing.assert_array_equal(ds.Li6.values, want)
    np.testing.assert_array_equal(ds.Li6[1, 14:, 22:].values, want[1, 14:, 22:])
    np.testing.assert_array_equal(ds.Li6[1, 15, 23:27].values, want[1, 15, 23:27])
    np.testing.assert_array_equal(ds.Li6[:, 3:12, 5:25].values, want[:, 3:12, 5:25])  # spans chunks: Zarr reads
    # the direct path is the one taken for whole chunks: with Zarr's reads broken, they still read
    import pfibsims.io._integrity as integrity

    def broken(self, key):
        raise AssertionError("read through Zarr")

    monkeypatch.setattr(integrity._Verified, "_read_zarr", broken)
    reader = integrity._Verified(pristine, "Li6", json.loads((pristine / MANIFEST).read_text())["arrays"]["Li6"]["tails"])
    assert reader._direct
    np.testing.assert_array_equal(reader[(1, slice(14, 20), slice(22, 30))], want[1, 14:, 22:])
    monkeypatch.setattr(integrity, "in_saved_layout", lambda arr: False)  # another layout: Zarr reads it
    assert not integrity._Verified(pristine, "Li6", None)._direct


def test_a_chunk_whose_blosc_header_lies_is_refused_before_decoding(store):
    # a chunk whose header declares more bytes than the chunk holds, with a valid checksum and manifest (as a
    # hostile store would have): refused from the sizes, no buffer of the declared size is made
    import google_crc32c

    from pfibsims.io._integrity import write_manifest

    path = store / "Li6/c/0/1/1"
    body = bytearray(path.read_bytes()[:-4])
    body[4:8] = (2**31 - 1).to_bytes(4, "little")
    path.write_bytes(bytes(body) + google_crc32c.value(bytes(body)).to_bytes(4, "little"))
    write_manifest(store)
    with pytest.raises(FileFormatError, match=r"chunk 'Li6/c/0/1/1' is corrupt and does not decode \(its Blosc "
                                              r"header declares 2147483647 bytes in \d+, expected 308 in \d+\)"):
        pfs.open_dataset(store).Li6.load()
    path.write_bytes(path.read_bytes() + bytes(400))  # longer than any Blosc chunk of 7 x 11 float32
    write_manifest(store)
    with pytest.raises(FileFormatError, match=r"chunk 'Li6/c/0/1/1' is corrupt and does not decode \(\d+ bytes, "
                                              r"expected 20 to 328\)"):
        pfs.open_dataset(store).Li6.load()


def test_every_chunk_is_written_and_recorded(pristine):
    manifest = json.loads((pristine / MANIFEST).read_text())
    assert manifest["arrays"]["Li6"]["shape"] == [2, 20, 30]
    assert len(manifest["arrays"]["Li6"]["tails"]) == 2 * 3 * 3
    assert None not in manifest["arrays"]["Li6"]["tails"]
    assert sum(1 for p in (pristine / "Li6" / "c").rglob("*") if p.is_file()) == 18


def test_a_deleted_chunk_is_an_error_at_open_and_at_compute(store):
    ds = pfs.open_dataset(store)
    (store / "Li6/c/0/2/1").unlink()
    with pytest.raises(FileFormatError, match=r"run.zarr: chunk 'Li6/c/0/2/1' is missing; every chunk was written"):
        ds.Li6.load()
    with pytest.raises(FileFormatError, match=r"run.zarr: chunk 'Li6/c/0/2/1' is missing"):
        pfs.open_dataset(store)


def test_a_chunk_that_cannot_be_read_is_said_so_at_open_and_at_compute(store):
    # a chunk file replaced by a folder (as one this user may not read): not "overwritten by another save"
    ds = pfs.open_dataset(store)
    (store / "Li6/c/0/2/1").unlink()
    (store / "Li6/c/0/2/1").mkdir()
    with pytest.raises(FileFormatError, match=r"run.zarr/Li6/c/0/2/1: expected a readable chunk file, but reading it failed \(Is a directory\)"):
        ds.Li6.load()
    with pytest.raises(FileFormatError, match=r"run.zarr: chunk 'Li6/c/0/2/1' is missing"):  # not a file
        pfs.open_dataset(store)


def test_a_deleted_variable_is_an_error(store):
    shutil.rmtree(store / "Li6")
    with pytest.raises(FileFormatError, match="expected the array 'Li6' the manifest lists, found none"):
        pfs.open_dataset(store)


def test_swapped_chunks_are_an_error(store):
    a, b = store / "Li6/c/0/0/0", store / "Li6/c/1/2/2"
    x = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(x)
    with pytest.raises(FileFormatError, match=r"chunk 'Li6/c/(0/0/0|1/2/2)' is not the chunk the store was written with"):
        pfs.open_dataset(store).Li6.load()


def test_a_store_overwritten_under_a_lazy_reader_is_an_error(store):
    ds = pfs.open_dataset(store)
    pfs.save(_ds() * 2, store, overwrite=True)
    with pytest.raises(FileFormatError, match="overwritten by another save since it was opened"):
        ds.Li6.load()
    assert float(pfs.open_dataset(store).Li6.max()) == 2 * float(_ds().Li6.max())  # reopening reads the new one


def test_a_rewritten_coordinate_is_an_error(store):
    zarr.open_array(str(store / "x"), mode="r+")[3] = np.nan
    with pytest.raises(FileFormatError, match=r"chunk 'x/c/0' is not the chunk the store was written with"):
        pfs.open_dataset(store)


def _legacy(store):
    """A store as pfibsims wrote it before the manifest (same layout, no checksums recorded)."""
    (store / MANIFEST).unlink()
    return store


def test_stores_without_a_manifest_still_open_and_still_check_what_they_can(store):
    ds = pfs.open_dataset(_legacy(store))
    np.testing.assert_array_equal(ds.Li6.values, _ds().Li6.values)
    zarr.open_array(str(store / "y"), mode="r+")[0] = np.nan
    with pytest.raises(FileFormatError, match="expected finite 'y' coordinates, found NaN or inf"):
        pfs.open_dataset(store)


def _set_attr(store, var, key, value):
    group = zarr.open_group(str(store), mode="r+")
    group[var].attrs[key] = value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(store))


def test_hostile_units_in_a_store_are_refused_not_evaluated(store):
    _set_attr(store, "Li6", "units", "10**10**10")
    with pytest.raises(FileFormatError, match=r"run.zarr: Li6.attrs\['units'\]: expected a unit .*does not parse"):
        pfs.open_dataset(store)


def test_a_hostile_chunk_grid_is_refused_before_any_graph_is_built(store):
    doc = json.loads((store / "Li6/zarr.json").read_text())
    doc["shape"], doc["chunk_grid"]["configuration"]["chunk_shape"] = [10**6, 10**6, 10**6], [1, 1, 1]
    (store / "Li6/zarr.json").write_text(json.dumps(doc))
    with pytest.raises(FileFormatError, match=r"expected at most 4194304 chunks, found a grid of 10{18}"):
        pfs.open_dataset(store)


def test_a_huge_metadata_document_is_refused(store):
    with open(store / "zarr.json", "r+b") as fh:
        fh.truncate(65 * 2**20)  # sparse: no disk used
    with pytest.raises(FileFormatError, match=r"zarr.json: expected Zarr metadata of at most 67108864 bytes"):
        pfs.open_dataset(store)


def test_ome_zarr_with_a_shortened_channel_list_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    ds = pfs.stack({"Zr_La": rng.random((1, 8, 8)), "Co_La": rng.random((1, 8, 8))}, pixel_size="80 nm")
    path = pfs.save(ds, tmp_path / "run.ome.zarr", format="ome-zarr", levels=1)
    doc = json.loads((path / "zarr.json").read_text())
    doc["attributes"]["ome"]["omero"]["channels"] = doc["attributes"]["ome"]["omero"]["channels"][:1]
    (path / "zarr.json").write_text(json.dumps(doc))
    with pytest.raises(FileFormatError, match=r"run.ome.zarr: expected 2 omero channel labels, found 1"):
        pfs.open_dataset(path)


def test_ome_zarr_chunks_are_checked(tmp_path):
    ds = pfs.stack({"Zr_La": np.ones((1, 8, 8))}, pixel_size="80 nm")
    path = pfs.save(ds, tmp_path / "run.ome.zarr", format="ome-zarr", levels=2)
    opened = pfs.open_dataset(path)
    (path / "0/c/0/0/0/0").unlink()
    with pytest.raises(FileFormatError, match=r"chunk '0/c/0/0/0/0' is missing"):
        opened.Zr_La.load()
