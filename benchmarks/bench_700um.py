"""A 700 x 700 um field end to end (issue 11): phantom or store -> fused volume -> statistics, per stage.

One run (one field, one scheduler) prints a Markdown table: per stage the wall time, the voxels it
processed per second, the peak RSS of the process after the stage (``resource.getrusage``; with a
LocalCluster also the largest worker's peak) and dask's spill to disk, and writes a JSON of the
results (drift, transform, covariance, Pearson, joint histogram, per-phase statistics).

    # one field from the lazy phantom, threaded scheduler, 2 threads
    .venv/bin/python benchmarks/bench_700um.py --field "100 um" --slices 39 --write-store /tmp/out100
    # the phantom written once to a store (timed apart), then the pipeline from it
    .venv/bin/python benchmarks/bench_700um.py --field "700 um" --slices 2 --from-store /tmp/in700 \\
        --write-store /tmp/out700
    # the same on a distributed.LocalCluster (2 workers x 1 thread), and a check that both agree
    .venv/bin/python benchmarks/bench_700um.py --field "50 um" --check --from-store /tmp/in50 --write-store /tmp/out50
    # the cost curve: every field in its own subprocess (separate peaks)
    .venv/bin/python benchmarks/bench_700um.py --curve "25 um:39,50 um:39,100 um:39,200 um:8,700 um:2" \\
        --workdir /tmp/curve

The stages are the ones :func:`pfibsims.fuse` composes (the script calls them one by one to time
them): reduced views (:func:`pfibsims.pipeline.working_view`, persisted once) -> slice-to-slice
drift -> registration (rigid, MI) -> cross-modal drift against EDS -> ``fuse`` with those estimates
(one Lanczos interpolation per voxel) written to ``fused.zarr`` (what fuse computed: Li6 and the coverage;
the EDS channels, which fuse passes through unchanged, stay in the input store unless ``--copy-eds``) ->
phase classification written to ``phases.zarr`` -> covariance + Pearson + 256 x 256 joint histogram of
Li6 vs Zr_La (inside the SIMS coverage) + per-phase statistics of Li6, evaluated together by the one
statistics engine (two passes over the stores).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import xarray as xr

import pfibsims as pfs
from pfibsims._engine.reduce import evaluate
from pfibsims.correlate.histogram import joint_histogram_plan
from pfibsims.correlate.moments import pearson_plan
from pfibsims.io._chunks import compressor as _compressor
from pfibsims.pipeline import _estimation_views
from pfibsims.segmentation.statistics import phase_statistics_plan

HERE = Path(__file__).resolve()
EDS_CHANNELS = ["Zr_La", "Co_La", "Al_Ka", "C_Ka"]


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _worker_peak(dask_worker=None) -> float:  # run on each worker by client.run
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _worker_spill(dask_worker=None) -> float:
    data = getattr(dask_worker, "data", None)
    total = getattr(data, "spilled_total", None)
    disk = getattr(total, "disk", 0) if total is not None else 0
    return float(disk) / 2**30


class Stages:
    """Times stages and records RSS/spill after each."""

    def __init__(self, client=None) -> None:
        self.rows: list[dict] = []
        self.client = client

    def run(self, name: str, voxels: int, func, *args, **kwargs):
        t0, c0 = time.perf_counter(), time.process_time()
        out = func(*args, **kwargs)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        row = {"stage": name, "s": wall, "cpu_s": cpu, "voxels": int(voxels),
               "mvox_s": voxels / wall / 1e6 if wall > 0 else 0.0, "rss_gb": _rss_gb(), "load": os.getloadavg()[0]}
        if self.client is not None:
            row["worker_rss_gb"] = max(self.client.run(_worker_peak).values())
            row["spill_gb"] = sum(self.client.run(_worker_spill).values())
        self.rows.append(row)
        print(f"  {name}: {wall:.1f} s ({cpu:.1f} CPU s), peak RSS {row['rss_gb']:.2f} GB, load {row['load']:.1f}",
              file=sys.stderr, flush=True)
        return out


def _phantom(args):
    return pfs.synthetic.cathode(seed=args.seed, field=args.field, n_slices=args.slices,
                                 chunks=(1, args.chunks, args.chunks))


def _inputs(args, stages: Stages):
    """eds, sims: lazy phantom, or a store written once (the write is a stage of its own)."""
    if not args.from_store:
        eds, sims, _ = _phantom(args)
        return eds, sims
    root = Path(args.from_store)
    if not (root / "sims.zarr").exists():
        root.mkdir(parents=True, exist_ok=True)
        eds, sims, _ = _phantom(args)
        n = eds.Zr_La.size * len(eds.data_vars) + sims.Li6.size

        def write():
            pfs.save(eds, root / "eds.zarr", overwrite=True)
            pfs.save(sims, root / "sims.zarr", overwrite=True)

        stages.run("phantom -> input store (once, not pipeline)", n, write)
    return pfs.open_dataset(root / "eds.zarr"), pfs.open_dataset(root / "sims.zarr")


def _hist_digest(h: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(h, dtype=np.int64).tobytes()).hexdigest()[:16]


def run_one(args) -> dict:
    client = cluster = None
    if args.scheduler == "local-cluster":
        from distributed import Client, LocalCluster

        # distributed's sampling profiler reads other threads' frames (sys._current_frames), which can crash
        # CPython 3.11 (a worker segfaulted in PyFrame_GetLineNumber during a 39-slice run; see README)
        dask.config.set({"distributed.worker.profile.enabled": False})
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, memory_limit=args.memory_limit, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    else:
        dask.config.set(scheduler="threads", num_workers=args.workers)
    stages = Stages(client)
    out = Path(args.write_store)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    eds, sims = _inputs(args, stages)
    nz, ny, nx = (eds.sizes[d] for d in ("z", "y", "x"))
    sims_vox = sims.Li6.size
    eds_vox = eds.Zr_La.size * len(eds.data_vars)
    grid_vox = nz * ny * nx
    warnings.simplefilter("ignore", pfs.EstimationWarning)

    veds, vsims, _ = stages.run("reduced views (block means, persisted)", eds_vox + sims_vox,
                                _estimation_views, eds, sims, None, args.max_pixels)
    view_vox = vsims.Li6.size
    # as fuse does when it registers: the slice-to-slice drift keeps its trend (the cross-modal drift measures the rest)
    d1 = stages.run("drift, slice to slice (view)", view_vox, pfs.estimate_drift, vsims.Li6, trend="keep")
    T = stages.run("registration, rigid MI (view)", view_vox, pfs.register, vsims.Li6, veds, model="rigid",
                   metric="mi", drift=d1).transform
    d2 = stages.run("drift, cross-modal vs EDS (view)", view_vox, pfs.estimate_drift, vsims.Li6, reference=veds,
                    transform=T, initial=d1)
    del veds, vsims

    def fuse_and_write():
        vol = pfs.fuse(eds, sims, drift=d2, register=T, chunks={"z": 1, "y": args.chunks, "x": args.chunks})
        if not args.copy_eds:  # fuse passes the EDS channels through unchanged (the target is their grid)
            vol = vol.drop_vars(EDS_CHANNELS)
        pfs.save(vol, out / "fused.zarr", overwrite=True)

    stages.run("resampling: fuse -> fused.zarr", grid_vox, fuse_and_write)

    def resample_alone():  # the stage's kernel without the store: its standalone speed, same run and machine
        vol = pfs.fuse(eds, sims, drift=d2, register=T, chunks={"z": 1, "y": args.chunks, "x": args.chunks})
        return float(vol.Li6.isel(z=nz // 2).sum().compute())

    stages.run("(reference, not pipeline) Li6 resampling alone, one slice, no store", ny * nx, resample_alone)
    f = pfs.open_dataset(out / "fused.zarr")
    if not args.copy_eds:  # the EDS channels from the input store (the same arrays fuse passed through)
        f = f.assign({c: eds[c] for c in EDS_CHANNELS})

    def classify():
        labels = pfs.classify_phases(f[EDS_CHANNELS])  # streams slabs; chunks line up with the store's
        labels = labels.drop_vars([v for v in labels.coords if v not in labels.dims])
        c = min(args.chunks, ny, nx)
        enc = {"phase": {"chunks": (1, c, c), "compressors": (_compressor(),)}}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata")
            labels.to_dataset(name="phase").to_zarr(out / "phases.zarr", mode="w", zarr_format=3, consolidated=True,
                                                   encoding=enc, write_empty_chunks=True)

    labels = None
    if not args.skip_phases:
        stages.run("phase classification -> phases.zarr", grid_vox * len(EDS_CHANNELS), classify)
        labels = xr.open_zarr(out / "phases.zarr", consolidated=True, zarr_format=3).phase

    def statistics():  # every statistic a plan of the one engine: two passes over the stores in all
        plans = [pearson_plan(f.Li6, f.Zr_La, mask=f.coverage),
                 joint_histogram_plan(f.Li6, f.Zr_La, bins=256, mask=f.coverage)]
        if labels is not None:
            plans.append(phase_statistics_plan(f.Li6, labels))
        out_ = evaluate(*plans)
        return out_ + [None] * (3 - len(out_))

    what = "covariance + Pearson + joint histogram" + (" + per-phase statistics of Li6" if labels is not None else "")
    r, hist, ps = stages.run(f"{what} (2 passes)", grid_vox, statistics)
    cov, hist = float(r.covariance), np.asarray(hist.values)
    result = {
        "field": args.field, "slices": nz, "eds_shape": [ny, nx], "sims_shape": list(sims.Li6.shape[1:]),
        "scheduler": args.scheduler, "chunks": args.chunks, "max_pixels": args.max_pixels,
        "stages": stages.rows, "total_s": sum(r_["s"] for r_ in stages.rows if "not pipeline" not in r_["stage"]),
        "total_cpu_s": sum(r_["cpu_s"] for r_ in stages.rows if "not pipeline" not in r_["stage"]),
        "peak_rss_gb": _rss_gb(),
        "drift_slice_nm": d1.values.tolist(), "drift_cross_nm": d2.values.tolist(),
        "transform": T.matrix.tolist(), "covariance": cov, "pearson": float(r), "n": int(r.n),
        "hist_sum": int(hist.sum()), "hist_sha": _hist_digest(hist),
        "phase_stats": None if ps is None else {v: np.asarray(ps[v].values).tolist() for v in ps.data_vars},
        "load": os.getloadavg(),
    }
    if client is not None:
        result["worker_peak_rss_gb"] = max(client.run(_worker_peak).values())
        result["spill_gb"] = sum(client.run(_worker_spill).values())
        client.close()
        cluster.close()
    return result


def table(result: dict) -> str:
    cluster = "worker_rss_gb" in result["stages"][0]
    head = ("| stage | wall s | CPU s (client process) | Mvoxel/s | peak RSS GB (process) | load (1 min) |"
            + (" worker peak GB | spill GB |" if cluster else ""))
    lines = [head, "|" + " --- |" + " ---: |" * (head.count("|") - 2)]
    for r in result["stages"]:
        line = (f"| {r['stage']} | {r['s']:.1f} | {r['cpu_s']:.1f} | {r['mvox_s']:.1f} | {r['rss_gb']:.2f} |"
                f" {r['load']:.1f} |")
        if cluster:
            line += f" {r['worker_rss_gb']:.2f} | {r['spill_gb']:.2f} |"
        lines.append(line)
    lines.append(f"| **total (pipeline, without the phantom write)** | {result['total_s']:.1f} | "
                 f"{result['total_cpu_s']:.1f} | | {result['peak_rss_gb']:.2f} | |" + (" | |" if cluster else ""))
    return "\n".join(lines)


def _subprocess(argv: list[str], json_path: Path) -> dict:
    cmd = [sys.executable, str(HERE), *argv, "--json", str(json_path)]
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)
    return json.loads(json_path.read_text())


def _same(a: dict, b: dict) -> list[str]:
    keys = ["drift_slice_nm", "drift_cross_nm", "transform", "covariance", "pearson", "n", "hist_sha", "phase_stats"]
    return [k for k in keys if a[k] != b[k]]


def _stores_equal(p: Path, q: Path) -> list[str]:
    a, b = pfs.open_dataset(p), pfs.open_dataset(q)
    bad = []
    for v in a.data_vars:
        x, y = a[v].data, b[v].data
        eq = (x == y) | (da.isnan(x) & da.isnan(y)) if x.dtype.kind == "f" else x == y
        if not bool(eq.all().compute()):
            bad.append(v)
    return bad


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--field", default="700 um")
    p.add_argument("--slices", type=int, default=39)
    p.add_argument("--chunks", type=int, default=1024, help="in-plane chunk size (z chunk: 1 slice)")
    p.add_argument("--scheduler", choices=["threads", "local-cluster"], default="threads")
    p.add_argument("--workers", type=int, default=2, help="threads of the threaded scheduler")
    p.add_argument("--memory-limit", default="3GB", help="per LocalCluster worker")
    p.add_argument("--max-pixels", type=int, default=1024 * 1024, help="pixels a slice of the estimation views")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-phases", action="store_true", help="no classification (statistics without phases)")
    p.add_argument("--copy-eds", action="store_true",
                   help="also write the EDS channels (unchanged by fuse) into fused.zarr, as before issue 18")
    p.add_argument("--from-store", help="input store directory (written from the phantom once if missing)")
    p.add_argument("--write-store", default="/tmp/pfibsims-bench-700um-out", help="output directory")
    p.add_argument("--json", help="write the result here")
    p.add_argument("--check", action="store_true", help="run threads and local-cluster (subprocesses), compare")
    p.add_argument("--curve", help="'field:slices,...': one subprocess per field, e.g. '25 um:39,700 um:2'")
    p.add_argument("--workdir", default="/tmp/pfibsims-bench-700um")
    args = p.parse_args(argv)

    if args.curve:
        work = Path(args.workdir)
        work.mkdir(parents=True, exist_ok=True)
        rows = []
        for item in args.curve.split(","):
            field, slices = item.rsplit(":", 1)
            tag = field.replace(" ", "")
            res = _subprocess(["--field", field, "--slices", slices, "--chunks", str(args.chunks),
                               "--from-store", str(work / f"in-{tag}-{slices}"),
                               "--write-store", str(work / f"out-{tag}-{slices}")], work / f"{tag}.json")
            rows.append(res)
        print("| field | slices | EDS px | grid voxels | pipeline s (from store) | us / voxel | resampling s | "
              "peak RSS GB | phantom write s |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in rows:
            st = {s["stage"].split(":")[0].split(" (")[0]: s for s in r["stages"]}
            vox = r["slices"] * r["eds_shape"][0] * r["eds_shape"][1]
            write = next((s["s"] for s in r["stages"] if "once" in s["stage"]), float("nan"))
            print(f"| {r['field']} | {r['slices']} | {r['eds_shape'][0]}^2 | {vox:,} | {r['total_s']:.1f} | "
                  f"{1e6 * r['total_s'] / vox:.3f} | {st['resampling']['s']:.1f} | {r['peak_rss_gb']:.2f} | "
                  f"{write:.0f} |")
        print(f"\nload averages at the end: {os.getloadavg()}")
        return
    if args.check:
        work = Path(args.workdir)
        work.mkdir(parents=True, exist_ok=True)
        base = ["--field", args.field, "--slices", str(args.slices), "--chunks", str(args.chunks),
                "--memory-limit", args.memory_limit, "--max-pixels", str(args.max_pixels)]
        if args.from_store:
            base += ["--from-store", args.from_store]
        res = {}
        for sched in ("threads", "local-cluster"):
            res[sched] = _subprocess([*base, "--scheduler", sched, "--write-store", f"{args.write_store}-{sched}"],
                                     work / f"check-{sched}.json")
            print(f"\n### {sched}\n\n{table(res[sched])}\n")
        diff = _same(res["threads"], res["local-cluster"])
        bad = _stores_equal(Path(f"{args.write_store}-threads") / "fused.zarr",
                            Path(f"{args.write_store}-local-cluster") / "fused.zarr")
        print(f"identical results (drift, transform, covariance, Pearson, histogram, phase statistics): "
              f"{'yes' if not diff else 'NO, differ: ' + ', '.join(diff)}")
        print(f"identical fused stores, voxel by voxel: {'yes' if not bad else 'NO, differ: ' + ', '.join(bad)}")
        print(f"time threads {res['threads']['total_s']:.1f} s, local-cluster {res['local-cluster']['total_s']:.1f} s")
        if diff or bad:
            sys.exit(1)
        return
    result = run_one(args)
    print(f"\nfield {result['field']}, {result['slices']} slices, EDS {result['eds_shape']} px, SIMS "
          f"{result['sims_shape']} px, chunks 1 x {args.chunks} x {args.chunks}, scheduler {args.scheduler}\n")
    print(table(result))
    print(f"\nPearson r(Li6, Zr_La) = {result['pearson']:.4f} over {result['n']:,} voxels; load {result['load']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
