"""Benchmark: one-pass covariance + Pearson and a 256 x 256 joint histogram over big volumes.

Two lazy float32 volumes of ``--gb`` GB each are built chunk by chunk.  Each
chunk is one of ``--distinct`` cached random blocks (chosen by chunk index),
so building a chunk costs nothing and the pass measures reading and
arithmetic, not random-number generation; the truth is exact: the moments of
k copies of known blocks, computed with float64 numpy on the blocks.

Prints a Markdown table: our GB/s (two input volumes counted) and Mvoxel/s,
beside this machine's memory-read bandwidth (the better of a numpy float32 sum
and a compiled streaming read of a 1 GB buffer, threads = ``--workers``) and
numpy on an in-memory slice (np.cov/np.corrcoef, np.histogram2d), measured in
the same run; the relative error against float64 numpy; peak RSS of the passes
(taken before the float64 truth is built).  ``--baseline`` also times the
numpy block kernels (the code path without numba, round 1 of issue 8) in the
same run, for a before/after.

    .venv/bin/python benchmarks/bench_stats.py --gb 2 --workers 2 --baseline
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import dask
import dask.array as da
import numpy as np
import xarray as xr

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from pfibsims._engine.numba import (
    njit,  # noqa: E402
    use_compiled,  # noqa: E402
)
from pfibsims.correlate import covariance, joint_histogram, pearson  # noqa: E402

_BLOCKS: dict = {}


def _blocks(shape, distinct):
    key = (shape, distinct)
    if key not in _BLOCKS:
        rng = np.random.default_rng(0)
        a = [rng.gamma(3.0, 10.0, size=shape).astype(np.float32) for _ in range(distinct)]
        b = [(0.4 * x + rng.normal(0, 5, size=shape)).astype(np.float32) for x in a]
        _BLOCKS[key] = (a, b)
    return _BLOCKS[key]


def _chunk(which, shape, distinct, block_info=None):
    loc = block_info[None]["chunk-location"]
    nchunks = block_info[None]["num-chunks"]
    idx = int(np.ravel_multi_index(loc, nchunks)) % distinct
    return _blocks(shape, distinct)[which][idx]


def volume(which, nz, shape, distinct):
    chunks = ((shape[0],) * nz, (shape[1],), (shape[2],))
    arr = da.map_blocks(partial(_chunk, which, shape, distinct), chunks=chunks, dtype=np.float32,
                        meta=np.empty((0, 0, 0), np.float32), name=f"bench-volume-{which}-{nz}-{shape}")
    return xr.DataArray(arr, dims=("z", "y", "x"), name=["Li6", "Zr_La"][which], attrs={"units": "counts"})


def timed(func, repeats):
    times = []
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = func()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


@njit(nogil=True, fastmath=True)
def _stream_sum(x):  # a pure streaming read: vectorised float32 sum
    s = np.float32(0.0)
    for i in range(x.size):
        s += x[i]
    return s


def read_bandwidth(nbytes, workers, repeats):
    """GB/s of (numpy float32 sum, compiled streaming read) over ``nbytes``, ``workers`` threads."""
    x = np.random.default_rng(1).random(nbytes // 4, dtype=np.float32)
    parts = np.array_split(x, workers)
    _stream_sum(parts[0][:16])
    out = []
    with ThreadPoolExecutor(workers) as pool:
        for func in (np.sum, _stream_sum):
            t, _ = timed(lambda func=func: list(pool.map(func, parts)), repeats)
            out.append(x.nbytes / t / 1e9)
    return out


def truth_moments(ablocks, bblocks, counts):
    """float64 numpy moments [n, mean_a, mean_b, M2_a, M2_b, C_ab] of k_i copies of block pair i."""
    parts = []
    for x, y in zip(ablocks, bblocks, strict=False):
        x, y = x.astype(np.float64).ravel(), y.astype(np.float64).ravel()
        dx, dy = x - x.mean(), y - y.mean()
        parts.append((x.size, x.mean(), y.mean(), dx @ dx, dy @ dy, dx @ dy))
    p, k = np.array(parts), np.asarray(counts, np.float64)
    n = (k * p[:, 0]).sum()
    ma, mb = (k * p[:, 0] * p[:, 1]).sum() / n, (k * p[:, 0] * p[:, 2]).sum() / n
    da_, db_ = p[:, 1] - ma, p[:, 2] - mb
    return (n, ma, mb, (k * (p[:, 3] + p[:, 0] * da_ * da_)).sum(), (k * (p[:, 4] + p[:, 0] * db_ * db_)).sum(),
            (k * (p[:, 5] + p[:, 0] * da_ * db_)).sum())


def passes(a, b, args, rng_, label=""):
    """Time covariance + pearson, covariance alone, the joint histogram (after one warm-up call each)."""
    out = {}
    pearson(a, b), float(covariance(a, b))
    out["pearson"] = timed(lambda: pearson(a, b), args.repeats)
    out["covariance"] = timed(lambda: float(covariance(a, b)), args.repeats)
    _ = joint_histogram(a, b, bins=args.bins, range=rng_).values
    out["joint"] = timed(lambda: joint_histogram(a, b, bins=args.bins, range=rng_).values, args.repeats)
    out["joint_default"] = timed(lambda: joint_histogram(a, b, bins=args.bins).values, args.repeats)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gb", type=float, default=2.0, help="size of each float32 volume, GB")
    p.add_argument("--chunk", type=int, nargs=3, default=(16, 1024, 1024), help="chunk shape z y x (67 MB float32)")
    p.add_argument("--distinct", type=int, default=4, help="distinct cached blocks per volume")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--bins", type=int, default=256)
    p.add_argument("--baseline", action="store_true", help="also time the numpy block kernels (no numba)")
    args = p.parse_args()
    shape = tuple(args.chunk)
    block_bytes = 4 * int(np.prod(shape))
    nz = max(1, round(args.gb * 1e9 / block_bytes))
    a, b = volume(0, nz, shape, args.distinct), volume(1, nz, shape, args.distinct)
    nvox = a.size
    gb_in = 2 * a.nbytes / 1e9
    ablocks, bblocks = _blocks(shape, args.distinct)  # built before any timing
    dask.config.set(scheduler="threads", num_workers=args.workers)
    load_before = os.getloadavg()

    # generation alone (chunk lookup + a trivial per-chunk reduction)
    t_gen, _ = timed(lambda: da.map_blocks(lambda x: x[:1, :1, :1], a.data, chunks=(1, 1, 1)).sum().compute(),
                     args.repeats)

    rng_ = ((0.0, 150.0), (-30.0, 80.0))
    ours = passes(a, b, args, rng_)
    rss_passes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    bw_np, bw_stream = read_bandwidth(1 << 30, args.workers, args.repeats)  # after, not in the passes' peak RSS
    bw = max(bw_np, bw_stream)
    base = None
    if args.baseline:
        with use_compiled(False):
            base = passes(a, b, argparse.Namespace(**{**vars(args), "repeats": 1}), rng_)

    # numpy on an in-memory slice (one block pair), float64 as numpy does it
    sa, sb = ablocks[0].ravel(), bblocks[0].ravel()
    t_np, _ = timed(lambda: (np.cov(sa, sb), np.corrcoef(sa, sb)), args.repeats)
    m = min(sa.size, 1 << 22)
    t_h2, _ = timed(lambda: np.histogram2d(sa[:m], sb[:m], bins=args.bins, range=rng_), 1)

    # truth: float64 numpy on the distinct blocks, k copies each
    counts = np.bincount(np.arange(nz) % args.distinct, minlength=args.distinct)
    n, ma, mb, m2a, m2b, cab = truth_moments(ablocks, bblocks, counts)
    assert n == nvox
    true_cov, true_r = cab / (n - 1), cab / np.sqrt(m2a * m2b)
    want = sum(k * np.histogram2d(x.ravel(), y.ravel(), bins=args.bins, range=rng_)[0]
               for k, x, y in zip(counts, ablocks, bblocks, strict=False))

    full = tuple((float(min(x.min() for x in xs)), float(max(x.max() for x in xs))) for xs in (ablocks, bblocks))
    rows = []
    for label, res in (("", ours), (" [numpy kernels, as round 1]", base)):
        if res is None:
            continue
        (t_p, r), (t_c, c), (t_h, jh) = res["pearson"], res["covariance"], res["joint"]
        rows.append((f"covariance + pearson (one pass){label}", t_p, f"{gb_in / t_p:.2f} GB/s",
                     f"{gb_in / t_p / bw:.0%} of read bw", f"{max(abs(r.covariance / true_cov - 1), abs(r.r / true_r - 1)):.1e}"))
        rows.append((f"covariance alone (lazy 0-d, float()){label}", t_c, f"{gb_in / t_c:.2f} GB/s",
                     f"{gb_in / t_c / bw:.0%} of read bw", f"{abs(c / true_cov - 1):.1e}"))
        rows.append((f"joint histogram {args.bins}x{args.bins}{label}", t_h, f"{nvox / t_h / 1e6:.0f} Mvoxel/s",
                     f"{gb_in / t_h:.2f} GB/s", "exact" if np.array_equal(jh, want) else "MISMATCH"))
        t_d, jd = res["joint_default"]
        want_d = sum(k * np.histogram2d(x.ravel(), y.ravel(), bins=args.bins, range=full)[0]
                     for k, x, y in zip(counts, ablocks, bblocks, strict=False))
        rows.append((f"joint histogram {args.bins}x{args.bins}, default range (+ a min/max pass){label}", t_d,
                     f"{nvox / t_d / 1e6:.0f} Mvoxel/s", f"{gb_in / t_d:.2f} GB/s",
                     "exact" if np.array_equal(jd, want_d) else "MISMATCH"))
    rows.append(("numpy np.cov + np.corrcoef, in-memory slice", t_np, f"{2 * sa.nbytes / t_np / 1e9:.2f} GB/s", "1 thread",
                 "reference"))
    rows.append(("numpy np.histogram2d, in-memory slice", t_h2, f"{m / t_h2 / 1e6:.0f} Mvoxel/s", "1 thread", "reference"))

    print(f"volumes: 2 x {a.nbytes / 1e9:.2f} GB float32, shape {a.shape}, chunks {shape} "
          f"({block_bytes / 1e6:.0f} MB), {args.workers} threads, {args.repeats} repeats (median); "
          f"load average before {tuple(round(v, 2) for v in load_before)}, after {tuple(round(v, 2) for v in os.getloadavg())}")
    print(f"memory read bandwidth ({args.workers} threads, 1 GB): numpy float32 sum {bw_np:.1f} GB/s, compiled "
          f"streaming read {bw_stream:.1f} GB/s; reference = {bw:.1f} GB/s; chunk generation alone: {t_gen:.3f} s "
          f"(not subtracted)\n")
    print("| case | median s | throughput | vs reference | rel. error vs float64 numpy |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, t, thr, ref, err in rows:
        print(f"| {name} | {t:.3f} | {thr} | {ref} | {err} |")
    print(f"\npeak RSS after our passes: {rss_passes:.0f} MB (includes the {2 * args.distinct * block_bytes / 1e6:.0f} MB "
          f"of cached blocks); "
          f"at the end (with the 1 GB read-bandwidth buffer, the numpy references and truth): "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
