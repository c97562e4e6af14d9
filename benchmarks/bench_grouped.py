"""Per-group statistics (issue 11): numpy block functions (before) vs numba kernels (now).

Two tables, printed as Markdown:

1. per block (one 1024 x 1024 chunk of Li6 float32 and of uint8 labels, read
   once into memory): moments (pass 1) and per-group histograms (pass 2),
   before = the previous implementation (labels mapped to an int64 array by a
   lookup table, float64 copy, boolean compress, bincounts,
   ``ndimage.minimum/maximum``), now = the compiled kernels on the uint8 labels
   and float32 values with the table applied inside;
2. end to end from the Zarr stores, dask threads: reading both arrays once
   (a trivial per-chunk function in the same `map_blocks`
   graph: the floor of one pass), ``phase_statistics``
   now, and the same two passes with the numpy block functions and the int64
   group array (before).  Each end-to-end case runs in its own subprocess
   (``ru_maxrss`` is its own peak), repeats interleaved, medians reported.

The labels store is made once (``--make-labels``) from the fused store's EDS
channels: thresholds on Zr_La, Co_La, Al_Ka, C_Ka give five classes, written as
uint8 with CF flag attrs and the chunks of the fused store.

    .venv/bin/python benchmarks/bench_grouped.py --fused /tmp/h11/out700-10b/fused.zarr \\
        --labels /tmp/g11/labels.zarr --make-labels --slices 10 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _timing import median_seconds

CASES = ("read", "now", "before")
FLAGS = {"flag_values": [0, 1, 2, 3, 4], "flag_meanings": "matrix LLZTO LCO Al2O3 SP", "units": "1"}


def make_labels(fused: str, labels: str) -> None:
    import dask
    import xarray as xr

    import pfibsims as pfs

    f = pfs.open_dataset(fused)
    lab = xr.where(f.Zr_La > 20, 1, 0)
    for value, channel, threshold in ((2, "Co_La", 20), (3, "Al_Ka", 20), (4, "C_Ka", 30)):
        lab = xr.where((lab == 0) & (f[channel] > threshold), value, lab)
    lab = lab.astype(np.uint8).drop_vars([c for c in lab.coords if c not in ("z", "y", "x")])
    lab.attrs = dict(FLAGS)
    with dask.config.set(scheduler="threads", num_workers=2):
        lab.to_dataset(name="phase").to_zarr(labels, mode="w", zarr_format=3, consolidated=False)


def _open(args):
    import xarray as xr

    import pfibsims as pfs

    li = pfs.open_dataset(args.fused).Li6[: args.slices]
    lab = xr.open_zarr(args.labels, consolidated=False, zarr_format=3).phase[: args.slices]
    return li, lab


def _old_lookup(block: np.ndarray, *, lut: np.ndarray) -> np.ndarray:
    """The previous segment._lookup_block: labels -> int64 groups."""
    b = np.asarray(block).astype(np.int64)
    inside = (b >= 0) & (b < lut.size)
    return np.where(inside, lut[np.clip(b, 0, lut.size - 1)], -1)


def _touch(v: np.ndarray, g: np.ndarray) -> np.ndarray:
    """A trivial per-chunk reduction: the time of a pass is then the time of reading."""
    return np.full((1,) * v.ndim + (1, 1), v.size + g.size)


def run_case(args) -> dict:
    """One end-to-end case in this process: time (s), Mvoxel/s, peak RSS (MB)."""
    import dask
    import dask.array as darr

    import pfibsims as pfs
    from pfibsims._engine import grouped as G
    from pfibsims._engine.numba import use_compiled
    from pfibsims.segmentation.statistics import QUANTILES as _QUANTILES

    li, lab = _open(args)
    small = np.ones((4, 4), np.float32)
    G.grouped_statistics(small, np.zeros((4, 4), np.uint8), 5)  # load the compiled kernels (numba cache)
    lut = np.arange(5)
    with dask.config.set(scheduler="threads", num_workers=args.threads):
        t0 = time.perf_counter()
        if args.case == "read":
            G._per_block(_touch, li.data, lab.data, (1, 1), np.int64).sum().compute()
        elif args.case == "now":
            pfs.phase_statistics(li, lab, bins=args.bins)
        else:
            with use_compiled(False):  # the numpy block functions, and the int64 group array made by the old lookup
                groups = darr.map_blocks(_old_lookup, lab.data, dtype=np.int64, lut=lut)
                G.grouped_statistics(li.data, groups, 5, bins=args.bins, quantiles=_QUANTILES)
        seconds = time.perf_counter() - t0
    return {"case": args.case, "s": seconds, "mvox_s": li.size / seconds / 1e6,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def per_block(args) -> list[tuple]:
    from pfibsims._engine import grouped as G

    li, lab = _open(args)
    k, i = min(3, args.slices - 1), 2048
    t_read_v = median_seconds(lambda: li[k, i : i + 1024, i : i + 1024].values, args.block_repeats, warmup=True)
    t_read_g = median_seconds(lambda: lab[k, i : i + 1024, i : i + 1024].values, args.block_repeats, warmup=True)
    v = li[k, i : i + 1024, i : i + 1024].values
    g = lab[k, i : i + 1024, i : i + 1024].values
    lut = np.arange(5)
    mom = G.moments_block(v, g, 5)
    lo, hi = np.nan_to_num(mom[:, 3], posinf=0.0), np.nan_to_num(mom[:, 4], neginf=0.0)
    before_m = lambda: G.moments_block(v, _old_lookup(g, lut=lut), 5, compiled=False)  # noqa: E731
    now_m = lambda: G.moments_block(v, g, 5, lut=lut)  # noqa: E731
    before_h = lambda: G.histogram_block(v, _old_lookup(g, lut=lut), lo, hi, args.bins, compiled=False)  # noqa: E731
    now_h = lambda: G.histogram_block(v, g, lo, hi, args.bins, lut=lut)  # noqa: E731
    assert np.array_equal(before_h(), now_h()), "histograms differ"
    rows = []
    for name, before, now in (("pass 1: count, mean, m2, min, max", before_m, now_m),
                              (f"pass 2: per-group histogram ({args.bins} bins)", before_h, now_h)):
        tb, tn = median_seconds(before, args.block_repeats, warmup=True), median_seconds(now, args.block_repeats, warmup=True)
        rows.append((name, tb * 1e3, tn * 1e3, v.size / tb / 1e6, v.size / tn / 1e6, tb / tn))
    rows.append(("read the chunk pair from the stores (Li6 + labels)", None, (t_read_v + t_read_g) * 1e3, None,
                 v.size / (t_read_v + t_read_g) / 1e6, None))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fused", default="/tmp/h11/out700-10b/fused.zarr", help="fused store with Li6 (and EDS channels)")
    p.add_argument("--labels", default="/tmp/g11/labels.zarr", help="uint8 labels store (made by --make-labels)")
    p.add_argument("--make-labels", action="store_true", help="(re)write the labels store from the fused store first")
    p.add_argument("--slices", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bins", type=int, default=4096, help="histogram bins per group (phase_statistics' default)")
    p.add_argument("--repeats", type=int, default=3, help="end-to-end repeats per case (interleaved)")
    p.add_argument("--block-repeats", type=int, default=9)
    p.add_argument("--cases", default=",".join(CASES), help="end-to-end cases, from " + ",".join(CASES))
    p.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case in this process, print JSON
    args = p.parse_args()
    if args.case:
        print(json.dumps(run_case(args)))
        return
    if args.make_labels or not Path(args.labels).exists():
        t = time.perf_counter()
        make_labels(args.fused, args.labels)
        print(f"labels store written in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    load = [os.getloadavg()]
    blocks = per_block(args)
    cases = args.cases.split(",")
    runs: dict[str, list[dict]] = {c: [] for c in cases}
    argv = [sys.executable, __file__, "--fused", args.fused, "--labels", args.labels, "--slices", str(args.slices),
            "--threads", str(args.threads), "--bins", str(args.bins)]
    for _ in range(args.repeats):
        for c in cases:
            out = subprocess.run([*argv, "--case", c], check=True, capture_output=True, text=True).stdout
            runs[c].append(json.loads(out.strip().splitlines()[-1]))
            load.append(os.getloadavg())
    li, _ = _open(args)
    print(f"Li6 {tuple(li.shape)} float32 from `{args.fused}`, labels uint8 from `{args.labels}`, chunks "
          f"{li.data.chunksize}, {li.size / 1e6:.1f} M voxels; {args.threads} dask threads; {args.bins} bins.")
    print(f"`uptime` load averages (1 min) during the run: {min(x[0] for x in load):.2f}-{max(x[0] for x in load):.2f}\n")
    print("Per block (one 1024 x 1024 chunk in memory), medians of", args.block_repeats, "\n")
    print("| step | before (numpy) ms | now (numba) ms | before Mvoxel/s | now Mvoxel/s | speed-up |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    f = lambda x, d=1: "" if x is None else f"{x:.{d}f}"  # noqa: E731
    for name, tb, tn, vb, vn, r in blocks:
        print(f"| {name} | {f(tb, 2)} | {f(tn, 2)} | {f(vb, 0)} | {f(vn, 0)} | {f(r)} |")
    print(f"\nEnd to end from the stores, medians of {args.repeats} (each run its own subprocess)\n")
    print("| case | median s | Mvoxel/s | peak RSS MB | runs s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    names = {"read": "read Li6 + labels once (trivial per-chunk task)", "now": "`phase_statistics` now (numba kernels)",
             "before": "before: numpy block functions + int64 groups"}
    for c in cases:
        s = statistics.median(r["s"] for r in runs[c])
        rss = max(r["rss_mb"] for r in runs[c])
        all_s = ", ".join(f"{r['s']:.1f}" for r in runs[c])
        print(f"| {names[c]} | {s:.2f} | {li.size / s / 1e6:.0f} | {rss:.0f} | {all_s} |")


if __name__ == "__main__":
    main()
