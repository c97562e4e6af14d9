"""Chunk codecs for the pfibsims store: compression ratio and one-core encode/decode speed.

Why the store writes Blosc LZ4 with bit shuffling (``pfibsims.io._chunks.compressor``): the chunks
of a 700 um pipeline are written and read several times (input store, fused store, labels), and
zstd level 3 (the first choice) encoded at 50-130 Mvoxel/s a core, slower than the resampling.

    .venv/bin/python benchmarks/bench_codecs.py --repeats 7

Chunks: one 1024^2 tile of the 700 um phantom (``cathode(seed=0, field="700 um", n_slices=1)``):
EDS Zr_La counts (uint16), SIMS Li6 counts (uint16), and a float32 channel like the fused Li6
(the SIMS tile resampled, i.e. smooth counts). Median of ``--repeats``, one thread (Blosc's own
threads off), Mvoxel/s of the uncompressed chunk.
"""

from __future__ import annotations

import argparse
import os

import numcodecs
import numpy as np
from _timing import median_seconds
from numcodecs import LZ4, Blosc, Zstd

import pfibsims as pfs

CODECS = {
    "zstd level 3 (before)": Zstd(level=3),
    "zstd level 1": Zstd(level=1),
    "lz4": LZ4(),
    "blosc lz4 + shuffle": Blosc("lz4", 5, Blosc.SHUFFLE),
    "blosc zstd 1 + shuffle": Blosc("zstd", 1, Blosc.SHUFFLE),
    "blosc lz4 + bitshuffle (store)": Blosc("lz4", 5, Blosc.BITSHUFFLE),
}


def _chunks() -> dict[str, np.ndarray]:
    eds, sims, _ = pfs.synthetic.cathode(seed=0, field="700 um", n_slices=1, chunks=(1, 1024, 1024))
    s = (0, slice(4096, 5120), slice(4096, 5120))
    a = np.asarray(eds.Zr_La.data[s].compute())
    b = np.asarray(sims.Li6.data[s].compute())
    m = np.array([[1.1305, 0.0, 3.3], [0.0, 1.1305, 2.7]])
    from pfibsims.resampling.kernels import warp2d

    f = warp2d(b.astype(np.float32)[None], m, (900, 900), (0, 0), b.shape, (1.1305, 1.1305), "lanczos", 3,
               np.nan, np.float32)[0]
    return {"EDS counts uint16": a, "SIMS counts uint16": b, "fused Li6 float32": f}


def _zarr_chunk_times(arr: np.ndarray, repeats: int, write_empty_chunks: bool, codecs: tuple,
                      verified: bool = False) -> tuple[float, float]:
    """Median seconds to write and to read one chunk through zarr (or through open_dataset's checked reads)."""
    import shutil
    import tempfile
    from pathlib import Path

    import zarr

    from pfibsims.io._integrity import _Verified, read_manifest, write_manifest

    d = tempfile.mkdtemp()
    try:
        z = zarr.create_array(f"{d}/a.zarr", shape=(repeats, *arr.shape), chunks=(1, *arr.shape), dtype=arr.dtype,
                              compressors=codecs, config={"write_empty_chunks": write_empty_chunks})
        k = iter(range(repeats))
        tw = median_seconds(lambda: z.__setitem__(next(k), arr), repeats)
        if verified:  # the read path of open_dataset: tail checked against the manifest, then zarr
            write_manifest(Path(d))
            z = _Verified(Path(d), "a.zarr", read_manifest(Path(d))["arrays"]["a.zarr"]["tails"])
        k = iter(range(repeats))
        tr = median_seconds(lambda: z[next(k)], repeats)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return tw, tr


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    numcodecs.blosc.set_nthreads(1)
    chunks = _chunks()
    print(f"load averages {os.getloadavg()}")
    print("| codec | chunk | ratio | encode Mvoxel/s | decode Mvoxel/s |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, codec in CODECS.items():
        for label, arr in chunks.items():
            enc = codec.encode(arr)
            te = median_seconds(lambda c=codec, x=arr: c.encode(x), args.repeats)
            td = median_seconds(lambda c=codec, e=enc: c.decode(e), args.repeats)
            print(f"| {name} | {label} | {arr.nbytes / len(enc):.2f} | {arr.size / te / 1e6:.0f} | "
                  f"{arr.size / td / 1e6:.0f} |", flush=True)
    from pfibsims.io._chunks import codecs as _codecs
    from pfibsims.io._chunks import compressor as _compressor

    print("\n| zarr array | chunk | write ms | read ms |")
    print("| --- | --- | ---: | ---: |")
    rows = [("Blosc, write_empty_chunks=False (zarr's default)", False, (_compressor(),), False),
            ("Blosc, write_empty_chunks=True", True, (_compressor(),), False),
            ("Blosc + CRC-32C (the store's codecs)", True, _codecs(), False),
            ("Blosc + CRC-32C, read as open_dataset reads (manifest check)", True, _codecs(), True)]
    for label, wec, codecs, verified in rows:
        for name in ("EDS counts uint16", "fused Li6 float32"):
            tw, tr = _zarr_chunk_times(chunks[name], args.repeats, wec, codecs, verified)
            print(f"| {label} | {name} | {tw * 1e3:.2f} | {tr * 1e3:.2f} |", flush=True)


if __name__ == "__main__":
    main()
