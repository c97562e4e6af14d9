"""Benchmark: classify_phases on a wide field read from a Zarr store, labels written to a Zarr store.

Each case runs in its own subprocess (so each peak RSS, ``ru_maxrss``, is its
own): open the store with ``pfibsims.open_dataset``, take the first
``--slices`` slices and a ``--crop`` x ``--crop`` px corner (default: the whole
field), ``classify_phases`` the EDS channels (the threshold sample is read
there), then ``dask.array.store`` the lazy labels into a preallocated Zarr
array with the input's chunks (dask threads, ``--threads``).  Prints a
Markdown table: wall and CPU time (user + system, all threads) of the sample
and of the store, channel voxels per second (channels x voxels / total
time), the process's CPU time (imports included) and peak RSS, the 1-minute
load before and after each run, with the per-label voxel counts so that runs
can be compared.

``--pythonpath DIR`` runs a case with another pfibsims first on the path,
e.g. the code before a change: ``git archive <commit> pfibsims | tar -x -C
/tmp/old`` then ``--pythonpath /tmp/old``; cases ``new`` and ``old`` are then
interleaved ``--repeats`` times (after one untimed run of each on one slice,
``--warmup``, which compiles and caches the numba kernels), and the two label
stores of the last repeat are compared voxel by voxel.

``--make FIELD`` first writes the store from the phantom,
``cathode(seed=0, field=FIELD, chunks=(1, 1024, 1024))``: its EDS channels,
slices ``[0, --slices)``, rows ``--rows`` (default all), if the store does
not exist yet.

    .venv/bin/python benchmarks/bench_classify.py --store /tmp/h11/out700-10b/fused.zarr --slices 10 \
        --out /tmp/classify-bench --pythonpath /tmp/old --repeats 1
    .venv/bin/python benchmarks/bench_classify.py --make "700 um" --store /tmp/c700.zarr --slices 4 \
        --rows 1024:2048 --out /tmp/classify-bench --pythonpath /tmp/old --repeats 3 --warmup
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

CHANNELS = ["Zr_La", "Co_La", "Al_Ka", "C_Ka"]


def _rows(text: str | None) -> slice:
    """``"Y0:Y1"`` as a slice of rows (all rows without it)."""
    if not text:
        return slice(None)
    y0, y1 = (int(v) for v in text.split(":"))
    return slice(y0, y1)


def _make(store: str, field: str, slices: int, rows: str | None) -> None:
    """Write the phantom's EDS channels (slices ``[0, slices)``, ``rows``) to ``store``, chunks (1, 1024, 1024)."""
    import dask

    import pfibsims as pfs
    from pfibsims.synthetic import cathode

    eds, _, _ = cathode(seed=0, field=field, chunks=(1, 1024, 1024))
    eds = eds[CHANNELS].isel(z=slice(0, slices), y=_rows(rows))
    t = time.perf_counter()
    with dask.config.set(scheduler="threads"):
        pfs.save(eds, store)
    print(f"wrote {store}: {dict(eds.sizes)} in {time.perf_counter() - t:.1f} s", file=sys.stderr)


def _child(store: str, slices: int, crop: int | None, out: str, threads: int, stack: int = 1,
           rows: str | None = None) -> dict:
    import dask
    import dask.array as da
    import numpy as np
    import zarr

    import pfibsims as pfs
    from pfibsims.segmentation import classify_phases

    ds = pfs.open_dataset(store)[CHANNELS].isel(z=slice(0, slices))
    if stack > 1:  # a deeper field from a shallow store: the same slices again, on a regular z grid
        import xarray as xr

        dz = float(ds.z[1] - ds.z[0])
        ds = xr.concat([ds] * stack, dim="z").assign_coords(z=np.arange(slices * stack) * dz)
        ds.z.attrs.update(units="nm")
    if crop:
        ds = ds.isel(y=slice(0, crop), x=slice(0, crop))
    ds = ds.isel(y=_rows(rows))
    load = os.getloadavg()[0]
    chunks = tuple(c[0] for c in ds[CHANNELS[0]].data.chunks)
    cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])  # noqa: E731 - user + system, all threads
    t0, c0 = time.perf_counter(), cpu()
    with dask.config.set(scheduler="threads", num_workers=threads):
        labels = classify_phases(ds)
        t1, c1 = time.perf_counter(), cpu()
        target = zarr.create_array(out, shape=labels.shape, chunks=chunks, dtype="uint8", overwrite=True)
        data = labels.data
        if any(len(set(c[:-1])) > 1 or (c and c[0] % s) for c, s in zip(data.chunks, chunks, strict=True)):
            data = data.rechunk(chunks)  # only if not aligned with the store's chunks
        da.store(data, target, lock=False)
    t2, c2 = time.perf_counter(), cpu()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the check below
    counts = np.zeros(256, np.int64)
    for k in range(labels.shape[0]):  # a block of rows at a time: bincount makes int64 copies
        for y in range(0, labels.shape[1], chunks[1]):
            counts += np.bincount(target[k, y:y + chunks[1]].ravel(), minlength=256)
    return {
        "sample_s": t1 - t0,
        "store_s": t2 - t1,
        "total_s": t2 - t0,
        "peak_mb": peak_mb,
        "cpu_s": c2,
        "sample_cpu_s": c1 - c0,
        "store_cpu_s": c2 - c1,
        "shape": list(labels.shape),
        "label_chunks": [c[0] for c in labels.data.chunks],
        "counts": counts[:6].tolist(),
        "load": [load, os.getloadavg()[0]],
        "module": pfs.__file__,
    }


def _spawn(args, impl: str, warm: bool = False) -> dict:
    env = dict(os.environ)
    if impl == "old":
        env["PYTHONPATH"] = args.pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, __file__, "--child", "--store", args.store, "--slices", "1" if warm else str(args.slices),
           "--out", os.path.join(args.out, f"labels-{impl}.zarr"), "--threads", str(args.threads),
           "--stack", str(args.stack)]
    if args.crop or warm:
        cmd += ["--crop", str(1100 if warm else args.crop)]
    if args.rows and not warm:
        cmd += ["--rows", args.rows]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode:
        raise RuntimeError(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="/tmp/h11/out700-10b/fused.zarr", help="Zarr store with the EDS channels")
    ap.add_argument("--slices", type=int, default=10)
    ap.add_argument("--crop", type=int, default=None, help="use only the first CROP x CROP px of each slice")
    ap.add_argument("--out", default="/tmp/classify-bench", help="directory for the label stores")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--stack", type=int, default=1, help="repeat the slices STACK times along z (a deeper field)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--pythonpath", default=None, help="a pfibsims checkout to run as 'old' beside the current one")
    ap.add_argument("--rows", default=None, help="use only rows Y0:Y1 of each slice (e.g. one block row, 1024:2048)")
    ap.add_argument("--make", default=None, help="write the store from the phantom of this field first (e.g. '700 um')")
    ap.add_argument("--warmup", action="store_true", help="one untimed run of each case on one slice first")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.store, args.slices, args.crop, args.out, args.threads, args.stack, args.rows)))
        return
    if args.make and not os.path.exists(args.store):
        _make(args.store, args.make, args.slices, args.rows)
        args.rows = None  # the store holds those rows only
    os.makedirs(args.out, exist_ok=True)
    impls = ["new"] + (["old"] if args.pythonpath else [])
    load = os.getloadavg()
    runs: dict[str, list[dict]] = {i: [] for i in impls}
    for impl in impls if args.warmup else ():
        _spawn(args, impl, warm=True)
    for _ in range(args.repeats):
        for impl in impls:
            runs[impl].append(_spawn(args, impl))
    shape = runs["new"][0]["shape"]
    vox = len(CHANNELS) * shape[0] * shape[1] * shape[2]
    print(f"field {shape} ({len(CHANNELS)} uint16 channels, {vox / 1e9:.2f} G channel voxels), {args.threads} threads, "
          f"load before {tuple(round(x, 2) for x in load)}, after {tuple(round(x, 2) for x in os.getloadavg())}")
    print()
    print("| code | sample (s) | labels to zarr (s) | total (s) | Mvoxel/s | sample CPU (s) | labels CPU (s) | process CPU (s) | "
          "peak RSS (MB) | load (1 min) | label chunks | voxels per label |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |")
    for impl in impls:
        rs = runs[impl]
        med = {k: statistics.median(r[k] for r in rs)
               for k in ("sample_s", "store_s", "total_s", "cpu_s", "sample_cpu_s", "store_cpu_s")}
        peak = max(r["peak_mb"] for r in rs)
        loads = ", ".join(f"{a:.1f}-{b:.1f}" for a, b in (r["load"] for r in rs))
        print(f"| {impl} | {med['sample_s']:.2f} | {med['store_s']:.2f} | {med['total_s']:.2f} | "
              f"{vox / med['total_s'] / 1e6:.1f} | {med['sample_cpu_s']:.2f} | {med['store_cpu_s']:.2f} | {med['cpu_s']:.1f} | "
              f"{peak:.0f} | {loads} | {tuple(rs[0]['label_chunks'])} | "
              f"{rs[0]['counts']} |")
    print(f"\n{args.repeats} run(s) a case, medians; code: " + ", ".join(f"{i} {runs[i][0]['module']}" for i in impls))
    if "old" in impls:
        import numpy as np
        import zarr

        new, old = (zarr.open_array(os.path.join(args.out, f"labels-{i}.zarr"), mode="r") for i in impls)
        differ = sum(int(np.count_nonzero(new[k] != old[k])) for k in range(new.shape[0]))
        print(f"labels new vs old: {differ} of {new.size} voxels differ")


if __name__ == "__main__":
    main()
