"""Benchmark: classify_phases + phase_statistics on a thin, wide EDS volume.

The phantom (pfibsims.synthetic.cathode with ``field=``) is written once to a
Zarr store; then, each in its own subprocess (so each peak RSS is its own):

* ``pfibsims``: ``classify_phases(eds).persist()`` (the uint8 labels, 1 byte
  a voxel, kept for the two statistics passes) then
  ``phase_statistics(eds.Co_La, labels)``, chunk by chunk from the store (dask
  threaded scheduler);
* ``numpy/scipy``: the same kind of steps eagerly on arrays loaded whole:
  ``scipy.ndimage.gaussian_filter``, ``scipy.cluster.vq.kmeans2`` (8 classes)
  on 100 000 of the smoothed voxels, the nearest centroid of every voxel, and
  per-class count, mean, std and exact ``numpy.percentile``.

Prints a Markdown table of medians over ``--repeats`` runs.

    .venv/bin/python benchmarks/bench_segment.py --field "100 um" --thickness "1 um" --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time


def _make(path: str, field: str, thickness: str, chunk: int) -> dict:
    import dask

    from pfibsims.synthetic import cathode
    from pfibsims.units import length_nm

    n_slices = max(1, round(length_nm(thickness) / 60.0))
    eds, _, _ = cathode(seed=0, field=field, n_slices=n_slices, chunks=(n_slices, chunk, chunk))
    eds = eds.drop_vars("slice", errors="ignore")
    eds.attrs = {k: v for k, v in eds.attrs.items() if k in ("modality",)}
    eds.attrs["history"] = []
    t = time.perf_counter()
    with dask.config.set(scheduler="threads"):
        eds.to_zarr(path, mode="w", consolidated=False)
    return {"shape": [int(s) for s in eds.Zr_La.shape], "chunks": [n_slices, chunk, chunk], "seconds": time.perf_counter() - t}


def _open(path: str):
    import xarray as xr

    ds = xr.open_zarr(path, consolidated=False)
    ds.attrs["history"] = []
    return ds


def _run_pfibsims(path: str) -> float:
    import dask

    from pfibsims.segmentation import classify_phases, phase_statistics

    t = time.perf_counter()
    with dask.config.set(scheduler="threads"):
        eds = _open(path)
        labels = classify_phases(eds).persist()  # 1 byte a voxel; both statistics passes reuse it
        stats = phase_statistics(eds.Co_La, labels)
    assert stats["count"].sum() > 0
    return time.perf_counter() - t


def _run_reference(path: str) -> float:
    import numpy as np
    from scipy import ndimage as ndi
    from scipy.cluster.vq import kmeans2

    t = time.perf_counter()
    eds = _open(path)
    names = ["Zr_La", "Co_La", "Al_Ka", "C_Ka"]
    spacing = np.array([60.0, 81.4, 81.4])
    x = np.stack([ndi.gaussian_filter(eds[c].values.astype(np.float32), 50.0 / spacing, mode="nearest").ravel()
                  for c in names], axis=1)
    rng = np.random.default_rng(0)
    fit = x[rng.choice(x.shape[0], size=min(x.shape[0], 100_000), replace=False)].astype(np.float64)
    centres, _ = kmeans2(fit, 8, iter=50, minit="++", seed=rng)  # classes as pfibsims fits them (one restart)
    labels = np.empty(x.shape[0], np.intp)
    for i in range(0, x.shape[0], 1 << 20):  # nearest centroid, in blocks (a (n, k) table of the whole would not fit)
        d2 = ((x[i:i + (1 << 20), None, :] - centres[None].astype(np.float32)) ** 2).sum(axis=2)
        labels[i:i + (1 << 20)] = d2.argmin(axis=1)
    values = eds["Co_La"].values.astype(np.float64).ravel()
    out = []
    for k in range(8):
        v = values[labels == k]
        if v.size:
            out.append((v.size, v.mean(), v.std(), *np.percentile(v, [25, 50, 75])))
    assert out
    return time.perf_counter() - t


def _child(which: str, path: str) -> None:
    seconds = {"pfibsims": _run_pfibsims, "reference": _run_reference}[which](path)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "peak_mb": peak_kb / 1024}))


def _spawn(which: str, path: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", which, "--store", path], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--field", default="100 um", help="square field of view (default 100 um)")
    ap.add_argument("--thickness", default="1 um", help="milled depth (default 1 um: 17 slices of 60 nm)")
    ap.add_argument("--chunk", type=int, default=256, help="in-plane chunk side, px")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.store)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "eds.zarr")
        info = _make(path, args.field, args.thickness, args.chunk)
        runs = {w: [_spawn(w, path) for _ in range(args.repeats)] for w in ("pfibsims", "reference")}
    nz, ny, nx = info["shape"]
    print(f"EDS volume {nz} x {ny} x {nx} voxels (4 channels, uint16), field {args.field}, thickness {args.thickness}, "
          f"chunks {tuple(info['chunks'])}; phantom written in {info['seconds']:.1f} s; load {os.getloadavg()}")
    print()
    print("| case | median time (s) | peak RSS (MB) | time ratio pfibsims / reference |")
    print("| --- | --- | --- | --- |")
    med = {w: statistics.median(r["seconds"] for r in rs) for w, rs in runs.items()}
    for w, label in (("pfibsims", "pfibsims classify_phases + phase_statistics (lazy, dask threads)"),
                     ("reference", "numpy/scipy eager (gaussian_filter, kmeans2, nearest centroid, exact percentiles)")):
        peak = max(r["peak_mb"] for r in runs[w])
        ratio = f"{med['pfibsims'] / med['reference']:.2f}" if w == "pfibsims" else "1"
        print(f"| {label} | {med[w]:.1f} | {peak:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
