"""The paper's own size (issue 18): the 39-slice workflow stage by stage, with a reference beside each number.

    .venv/bin/python benchmarks/bench_paper.py --repeat 5 --json /tmp/paper.json

Three parts, each printed as a Markdown table (one run; medians of ``--repeat``; the load average of
the shared machine beside the numbers):

1. **One resampling of one in-memory image** (1.5 and 4 Mpixel, 72 -> 81.4 nm, Pillow's geometry):
   pfibsims' eager path (numpy in, numpy out, no dask) against Pillow ``LANCZOS`` (one thread) and
   OpenCV ``INTER_LANCZOS4`` (``cv2.setNumThreads(1)``), wall and process CPU time; and the Lanczos
   kernel alone (the two separable passes, one thread) per core against OpenCV's, at equal output size.
2. **First-call cost** of numba: a fresh process with an empty numba cache (``NUMBA_CACHE_DIR`` a new
   folder: everything compiles) and a second fresh process with that cache (everything loads): import
   time and the first and second call of a scale and a rotation resampling.
3. **The workflow at the paper's size** (the default phantom ``cathode(seed=0)``: EDS 4 x 39 x 216 x 352
   at 81.4 nm, SIMS 39 x 500 x 500 at 72 nm), in a subprocess of its own (its peak RSS is its own): per
   stage the wall time, the process CPU time and the peak RSS after it; the reference of ``fuse`` is
   scipy's order-3 ``affine_transform`` of the same 39 SIMS maps onto the EDS grid (through the same
   per-slice transforms), one thread, in the same process (``fuse``: its first call, then the median of
   ``--repeat`` more; the reference: the median of ``--repeat`` after one untimed); that of the statistics
   numpy on the in-memory arrays. Then ``pfibsims demo`` end to end in a subprocess (its own stage table and peak RSS).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _timing import median_wall_cpu

HERE = Path(__file__).resolve()


def _load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3]) if os.path.exists("/proc/loadavg") else "?"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# -- 1. one image -------------------------------------------------------------------
def one_image(shape: tuple[int, int], repeat: int) -> list[str]:
    import cv2
    import xarray as xr
    from PIL import Image

    from pfibsims.grid import Grid
    from pfibsims.resampling import geometry, kernels, resample
    from pfibsims.transform import Affine

    cv2.setNumThreads(1)
    ny, nx = shape
    img = np.random.default_rng(0).random(shape, dtype=np.float32)
    src = xr.DataArray(img, dims=("y", "x"), coords=Grid(shape, "72 nm").xr_coords(), name="Li6")
    oy, ox = round(ny * 72 / 81.4), round(nx * 72 / 81.4)
    onto = Grid.of(src).with_shape((oy, ox))
    specs, _ = geometry.axis_specs(src, onto, Affine.identity(("y", "x")), "lanczos", 3)
    f32 = np.dtype(np.float32)

    def kernel_only():
        return kernels.pass_axis(kernels.pass_axis(img, 1, specs[1], f32), 0, specs[0], f32)

    rows = {}
    rows["Pillow LANCZOS (1 thread)"] = median_wall_cpu(lambda: np.asarray(Image.fromarray(img).resize((ox, oy), Image.LANCZOS)),
                                               repeat)
    rows["OpenCV INTER_LANCZOS4 (1 thread, no antialias)"] = median_wall_cpu(
        lambda: cv2.resize(img, (ox, oy), interpolation=cv2.INTER_LANCZOS4), repeat)
    rows["**pfibsims resample** (eager: numpy in, numpy out)"] = median_wall_cpu(lambda: resample(src, onto).values, repeat)
    rows["pfibsims Lanczos kernel alone (2 passes, 1 thread)"] = median_wall_cpu(kernel_only, repeat)
    ref = rows["Pillow LANCZOS (1 thread)"][2]
    pil_w, pil_c = rows["Pillow LANCZOS (1 thread)"][:2]
    cv_c = rows["OpenCV INTER_LANCZOS4 (1 thread, no antialias)"][1]
    out = [f"### {ny} x {nx} -> {oy} x {ox} ({ny * nx / 1e6:.1f} Mpixel in), load {_load()}", "",
           "| case | wall ms | CPU ms | vs Pillow (wall) | per core vs OpenCV (CPU) | max diff to Pillow |",
           "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, (w, c, res) in rows.items():
        diff = float(np.abs(np.asarray(res, dtype=np.float64) - ref).max()) if np.shape(res) == ref.shape else float("nan")
        out.append(f"| {name} | {w * 1e3:.1f} | {c * 1e3:.1f} | {pil_w / w:.2f}x | {cv_c / c:.2f}x | {diff:.2g} |")
    out.append("")
    return out


# -- 2. first call ---------------------------------------------------------------------
_FIRST = """
import time
t0 = time.perf_counter()
import numpy as np, xarray as xr
from pfibsims.grid import Grid
from pfibsims.resampling import resample
from pfibsims.transform import Affine
t1 = time.perf_counter()
img = np.random.default_rng(0).random((1024, 1536), dtype=np.float32)
src = xr.DataArray(img, dims=("y", "x"), coords=Grid((1024, 1536), "72 nm").xr_coords(), name="Li6")
onto = Grid.of(src).with_shape((906, 1359))
T = Affine.from_parameters(rotation=7.0)
out = {"import": t1 - t0}
for name, fn in (("scale", lambda: resample(src, onto)), ("rotation", lambda: resample(src, Grid.of(src), transform=T))):
    for k in ("first", "second"):
        t = time.perf_counter(); fn(); out[name + " " + k] = time.perf_counter() - t
print(out)
"""


def first_call() -> list[str]:
    cache = tempfile.mkdtemp(prefix="numba-cache-")
    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
    runs = {}
    for label in ("cold cache (compiles)", "warm cache (loads)"):
        res = subprocess.run([sys.executable, "-c", _FIRST], env=env, capture_output=True, text=True, check=True)
        runs[label] = eval(res.stdout.strip().splitlines()[-1], {})  # a dict of floats printed by the child
    keys = list(next(iter(runs.values())))
    out = [f"### numba first-call cost (fresh process, 1024 x 1536 float32), load {_load()}", "",
           "| | " + " | ".join(keys) + " |", "| --- |" + " ---: |" * len(keys)]
    for label, r in runs.items():
        out.append(f"| {label} | " + " | ".join(f"{r[k]:.2f} s" for k in keys) + " |")
    return [*out, ""]


# -- 3. the workflow ---------------------------------------------------------------------
def _scipy_maps(sims, eds, transforms) -> list[np.ndarray]:
    """scipy order-3 affine_transform of every SIMS slice onto the EDS grid (one thread), through ``transforms``."""
    from scipy import ndimage

    from pfibsims.grid import Grid

    ge, gs = Grid.of(eds, dims=("y", "x")), Grid.of(sims, dims=("y", "x"))
    li = np.asarray(sims.Li6.values, dtype=np.float64)
    out = []
    for k, T in enumerate(transforms):
        lin = T.linear * (np.array(ge.spacing)[None, :] / np.array(gs.spacing)[:, None])
        off = (T(np.array([ge.origin]))[0] - np.array(gs.origin)) / np.array(gs.spacing)
        out.append(ndimage.affine_transform(li[k], lin, off, output_shape=ge.shape, order=3, mode="constant",
                                            cval=np.nan))
    return out


def _numpy_statistics(vol) -> None:
    """The report's statistics in numpy on in-memory arrays (the reference of the statistics stage)."""
    ok = vol.coverage.values
    li, zr = vol.Li6.values[ok].astype(np.float64), vol.Zr_La.values[ok].astype(np.float64)
    np.corrcoef(li, zr)
    lab = vol.phase.values[ok]
    for v in np.unique(lab):
        sel = li[lab == v]
        sel.mean(), sel.std(), np.percentile(sel, [25, 50, 75])


def workflow(repeat: int) -> dict:
    """Run in a child process: every stage of the demo, timed, with the references."""
    import dask

    import pfibsims as pfs
    from pfibsims.app.report import statistics
    from pfibsims.io import open_dataset, save
    from pfibsims.plot import save_figures
    from pfibsims.resampling.drift import compose, drift_nm

    rows: dict[str, dict] = {}

    def stage(name, fn, ref=None, ref_name="", runs=1):
        """One run of ``fn`` (its result returned); with ``runs > 1`` that first run, then the medians of
        ``runs`` more, and of ``ref`` the medians of ``runs`` runs after one untimed (the ratio of medians:
        one run of each swung 12-19x at stop 35, the reference alone 0.31-0.46 s)."""
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        rows[name] = {"s": time.perf_counter() - t, "cpu": time.process_time() - c, "load": _load(), "runs": 1}
        if runs > 1:
            wall, cpu, out = median_wall_cpu(fn, runs, warmup=False)
            rows[name].update(first_s=rows[name]["s"], s=wall, cpu=cpu, runs=runs)
        rows[name]["rss_mb"] = _rss_mb()
        if ref is not None:
            wall, cpu, _ = median_wall_cpu(ref, max(runs, 1))
            rows[name].update(ref_s=wall, ref_cpu=cpu, ref=ref_name)
        return out

    eds, sims, truth = stage("phantom (default cathode, persisted)",
                             lambda: dask.persist(*pfs.synthetic.cathode(seed=0)))
    vol = stage("fuse (estimated: drift, registration, resampling; computed)", lambda: pfs.fuse(eds, sims).compute(),
                runs=repeat)
    T = pfs.Affine.from_attrs(truth.attrs)  # the resampling alone: the true transform and drift, given
    transforms = compose(T, drift_nm(truth.drift, truth.sizes["z"]))
    stage("fuse, resampling alone (true transform and drift given; computed)",
          lambda: pfs.fuse(eds, sims, register=T, drift=truth.drift).compute(),
          ref=lambda: _scipy_maps(sims, eds, transforms), ref_name="scipy affine_transform order 3, 39 maps, 1 thread",
          runs=repeat)
    alone = rows["fuse, resampling alone (true transform and drift given; computed)"]
    rows["fuse (estimated: drift, registration, resampling; computed)"].update(
        {k: alone[k] for k in ("ref_s", "ref_cpu", "ref")})
    vol["phase"] = stage("phases (classify_phases, computed)", lambda: pfs.classify_phases(vol).compute())
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "fused.zarr"
        stage("save (fused.zarr)", lambda: save(vol, store))
        lazy = open_dataset(store)
        stage("report statistics (2 passes, from the store)",
              lambda: statistics(lazy, "Li6", "Zr_La", labels=lazy.phase, truth=truth),
              ref=lambda: _numpy_statistics(vol), ref_name="numpy on in-memory arrays (r, per-phase mean/std/quartiles)")
        stage("figures (6 PNG)", lambda: save_figures(lazy, Path(tmp) / "figures", raw={"eds": eds, "sims": sims},
                                                     truth=truth, labels=lazy.phase))
    return rows


def demo() -> dict:
    """``pfibsims demo`` in a subprocess: its wall time, its stage table and its peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(sys.executable).with_name("pfibsims")
        t = time.perf_counter()
        res = subprocess.run([str(exe), "demo", tmp, "--overwrite"], capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t
        rep = json.loads((Path(tmp) / "report.json").read_text())
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the demo is this process's only child here
    peak = usage.ru_maxrss / 1024
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "user_s": usage.ru_utime,
            "sys_s": usage.ru_stime, "peak_rss_mb": peak, "timings_s": rep["timings_s"], "load": _load(),
            "report": {k: v for k, v in rep.items() if k != "timings_s"},  # its numbers, to compare runs
            "stdout_tail": res.stdout.strip().splitlines()[-12:]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5, help="repeats of the one-image cases and of fuse and its "
                   "reference (medians)")
    p.add_argument("--json", type=Path, help="write every number here")
    p.add_argument("--parts", default="image,first,workflow,demo", help="which parts to run")
    p.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._child:
        print(json.dumps(workflow(args.repeat)))
        return
    parts = set(args.parts.split(","))
    results: dict = {"load_start": _load()}
    lines = []
    if "image" in parts:
        lines += ["## One resampling of one in-memory image", ""]
        for shape in ((1024, 1536), (2048, 2048)):
            lines += one_image(shape, args.repeat)
    if "first" in parts:
        lines += first_call()
    if "workflow" in parts:
        res = subprocess.run([sys.executable, str(HERE), "--_child", "--repeat", str(args.repeat)], capture_output=True,
                             text=True, check=True)
        rows = json.loads(res.stdout.strip().splitlines()[-1])
        results["workflow"] = rows
        lines += ["## The paper's size: 39 slices, EDS 216 x 352 (4 channels), SIMS 500 x 500", "",
                  "| stage | wall s | CPU s | peak RSS MB (process) | reference | reference wall s / CPU s | "
                  "ratio wall / CPU | load |",
                  "| --- | ---: | ---: | ---: | --- | ---: | ---: | --- |"]
        for name, r in rows.items():
            if r.get("runs", 1) > 1:
                name = f"{name}; median of {r['runs']} after a first of {r['first_s']:.2f} s"
            ref = (f"{r['ref']} | {r['ref_s']:.2f} / {r['ref_cpu']:.2f} | {r['s'] / r['ref_s']:.1f}x / "
                   f"{r['cpu'] / r['ref_cpu']:.1f}x" if "ref" in r else " | | ")
            lines.append(f"| {name} | {r['s']:.2f} | {r['cpu']:.2f} | {r['rss_mb']:.0f} | {ref} | {r['load']} |")
        lines.append("")
    if "demo" in parts:
        d = demo()
        results["demo"] = d
        lines += [f"## `pfibsims demo` end to end: {d['wall_s']:.1f} s wall, {d['cpu_s']:.1f} CPU s ({d['user_s']:.1f} "
                  f"user + {d['sys_s']:.1f} sys), peak RSS {d['peak_rss_mb']:.0f} MB (load at the end {d['load']})", "",
                  "| demo stage | s |", "| --- | ---: |"]
        lines += [f"| {k} | {v:.1f} |" for k, v in d["timings_s"].items()]
        lines.append("")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
