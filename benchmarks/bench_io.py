"""Benchmark pfibsims.save/open_dataset against plain xarray.to_zarr/open_zarr (the reference).

Usage: python benchmarks/bench_io.py --shape 20 1024 1024 --repeats 3
Prints a Markdown table: median seconds of several repeats, the reference beside ours, their ratio.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import dask.array as da
import xarray as xr
from _timing import median_seconds

import pfibsims as pfs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", type=int, nargs=3, default=[20, 512, 512])
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    arr = da.random.default_rng(0).poisson(5, a.shape, chunks=(1, *a.shape[1:])).astype("uint16")
    ds = pfs.stack({"Zr_La": arr, "Co_La": arr + 1}, pixel_size="81.4 nm", slice_thickness="60 nm")
    tmp = Path(tempfile.mkdtemp())
    n = [0]

    def ours():
        n[0] += 1
        pfs.save(ds, tmp / f"p{n[0]}.zarr")

    def ref():
        n[0] += 1
        ds.to_zarr(tmp / f"r{n[0]}.zarr", zarr_format=3, consolidated=False)

    rows = [("save", median_seconds(ours, a.repeats), median_seconds(ref, a.repeats))]
    rows.append(("open + load", median_seconds(lambda: pfs.open_dataset(tmp / "p1.zarr").load(), a.repeats),
                 median_seconds(lambda: xr.open_zarr(tmp / f"r{a.repeats + 1}.zarr", consolidated=False).load(), a.repeats)))
    # the same store (save's layout: Blosc + CRC-32C, manifest) through Zarr's own reads: what open_dataset's direct
    # chunk reads replace (pfibsims.io._integrity)
    rows.append(("open + load, same store: direct chunk reads vs Zarr's", median_seconds(
        lambda: pfs.open_dataset(tmp / "p1.zarr").load(), a.repeats), median_seconds(
        lambda: xr.open_zarr(tmp / "p1.zarr", consolidated=True, zarr_format=3).load(), a.repeats)))
    rows.append(("save ome-zarr (3 levels)", median_seconds(lambda: pfs.save(ds, tmp / f"o{time.time_ns()}.zarr", format="ome-zarr"), a.repeats), float("nan")))
    shutil.rmtree(tmp)
    mb = 2 * arr.nbytes / 2**20
    print(f"shape {tuple(a.shape)} x 2 channels uint16 ({mb:.0f} MiB), median of {a.repeats}\n")
    print("| operation | pfibsims (s) | xarray reference (s) | ratio |\n|---|---|---|---|")
    for name, o, r in rows:
        print(f"| {name} | {o:.3f} | {r:.3f} | {o / r:.2f} |")
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
