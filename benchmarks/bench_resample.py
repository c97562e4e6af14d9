"""Benchmark pfibsims.resample against Pillow, OpenCV and scipy on the same images (issue 6).

    .venv/bin/python benchmarks/bench_resample.py --size 4000 --repeat 3 --full

Prints Markdown tables: wall time and process CPU time (all threads; medians of
``--repeat``), output megapixels per second,
the speed-up over each reference measured in the same run, the fraction of
this machine's memory-copy bandwidth (input read once + output written once,
over the time taken), agreement with Pillow, and for one full 700 um slice
(9700^2 SIMS at 72 nm onto 8600^2 EDS at 81.4 nm) the wall time and peak RSS
of a fresh subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import xarray as xr
from _timing import median_wall_cpu

_CPU = {}  # id(result) -> median process CPU seconds (all threads) of the last _timeit


def _timeit(fn, repeat):
    """Median wall seconds after a warm-up (numba compile, caches) and the result; the CPU median goes to _CPU."""
    t, cpu, out = median_wall_cpu(fn, repeat)
    _CPU[t] = cpu
    return t, out


def _image(n, pixel):
    from pfibsims.grid import Grid

    rng = np.random.default_rng(0)
    img = rng.random((n, n), dtype=np.float32)
    return xr.DataArray(img, dims=("y", "x"), coords=Grid((n, n), pixel).xr_coords(), name="Li6")


def _memcpy_gbs(nbytes=256 * 2**20):
    a = np.ones(nbytes // 4, np.float32)
    b = np.empty_like(a)
    t, _ = _timeit(lambda: np.copyto(b, a), 5)
    return 2 * nbytes / t / 1e9  # read + write


def _row(name, t, npx, refs, gbs, in_bytes, out_bytes, note=""):
    mpx = npx / t / 1e6
    frac = (in_bytes + out_bytes) / t / 1e9 / gbs
    ratios = " | ".join(f"{refs[k] / t:.2f}x" if k in refs else "" for k in ("Pillow", "OpenCV", "scipy"))
    return f"| {name} | {t * 1e3:.0f} | {_CPU.get(t, float('nan')) * 1e3:.0f} | {mpx:.1f} | {ratios} | {frac:.3f} | {note} |"


def bench(size, repeat):
    import cv2
    from PIL import Image
    from scipy import ndimage

    from pfibsims.grid import Grid
    from pfibsims.resampling import resample
    from pfibsims.transform import Affine

    gbs = _memcpy_gbs()
    src = _image(size, "72 nm")
    img = src.values
    grid = Grid.of(src)
    n_out = round(size * 72 / 81.4)
    onto = grid.with_shape((n_out, n_out))  # Pillow's geometry: same extent
    load = " ".join(open("/proc/loadavg").read().split()[:3]) if os.path.exists("/proc/loadavg") else "?"
    lines = [f"memory copy: {gbs:.1f} GB/s (read + write); cv2 threads: {cv2.getNumThreads()}; "
             f"image {size}x{size} float32; load average at start {load} on {os.cpu_count()} cores", ""]
    head = ("| case | wall ms | CPU ms | MPix/s | vs Pillow | vs OpenCV | vs scipy | of memcpy | note |\n"
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")

    # -- scale 72 -> 81.4 nm --------------------------------------------------
    refs, rows = {}, []
    t, ref = _timeit(lambda: np.asarray(Image.fromarray(img).resize((n_out, n_out), Image.LANCZOS)), repeat)
    refs["Pillow"] = t
    rows.append(("Pillow LANCZOS (1 thread)", t, ""))
    t, cvo = _timeit(lambda: cv2.resize(img, (n_out, n_out), interpolation=cv2.INTER_LANCZOS4), repeat)
    refs["OpenCV"] = t
    rows.append(("OpenCV INTER_LANCZOS4 (no antialias)", t, f"max diff to Pillow {np.abs(cvo - ref).max():.2g}"))
    t, sz = _timeit(lambda: ndimage.zoom(img, n_out / size, order=3, grid_mode=True, mode="grid-constant"), repeat)
    refs["scipy"] = t
    rows.append(("scipy.ndimage.zoom order 3 (1 thread)", t, ""))
    t, ours = _timeit(lambda: resample(src, onto).values, repeat)
    rows.append(("**pfibsims lanczos a=3** (2 threads)", t, f"max diff to Pillow {np.abs(ours - ref).max():.2g}"))
    lines += [f"### scale 72 -> 81.4 nm: {size}^2 -> {n_out}^2", "", head]
    lines += [_row(n, t, n_out**2, refs, gbs, img.nbytes, n_out**2 * 4, note) for n, t, note in rows]

    # -- rotated + shifted affine, same pixels; the 700 um fuse's map: 72 -> 81.4 nm, a small rotation ---------
    centre = tuple((lo + hi) / 2 for lo, hi in grid.extent)
    cases = [(f"rotation 7 deg + shift, {size}^2 -> {size}^2", grid,
              Affine.from_parameters(rotation=7.0, shift=("1.234 um", "-0.567 um"), center=centre)),
             (f"72 -> 81.4 nm and rotation 0.01 deg (the 700 um fuse's map), {size}^2 -> {n_out}^2", onto,
              Affine.from_parameters(rotation=0.01, shift=("0.1 um", "-0.2 um"), center=centre))]
    for title, target, T in cases:
        lines += ["", f"### {title}", "", head]
        lines += _affine_rows(img, src, target, T, repeat, gbs)
    return "\n".join(lines)


def _affine_rows(img, src, target, T, repeat, gbs):
    """scipy (order 3), OpenCV (Lanczos-4) and pfibsims (Lanczos-3) through the affine ``T`` onto ``target``;
    onto larger pixels, ours is antialiased (widened as Pillow's), the references are not."""
    import cv2
    from scipy import ndimage

    from pfibsims.grid import Grid
    from pfibsims.resampling import resample

    s, t_px = Grid.of(src).spacing[0], target.spacing[0]
    n = target.shape[0]
    lin = T.linear * (t_px / s)  # index-space map: u = lin @ i + off
    off = (T(np.array([t_px / 2, t_px / 2])) - s / 2) / s
    refs, rows = {}, []
    t, sc = _timeit(lambda: ndimage.affine_transform(img, lin, off, output_shape=(n, n), order=3, mode="constant",
                                                     cval=np.nan), repeat)
    refs["scipy"] = t
    scaled = ", no antialias" if t_px > s * (1 + 1e-9) else ""
    rows.append((f"scipy affine_transform order 3 (1 thread{scaled})", t, ""))
    m_cv = np.array([[lin[1, 1], lin[1, 0], off[1]], [lin[0, 1], lin[0, 0], off[0]]])
    t, cvw = _timeit(lambda: cv2.warpAffine(img, m_cv, (n, n), flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP,
                                            borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan), repeat)
    refs["OpenCV"] = t
    rows.append((f"OpenCV warpAffine LANCZOS4{f' ({scaled[2:]})' if scaled else ''}", t, ""))
    t, ours = _timeit(lambda: resample(src, target, transform=T).values, repeat)
    inner = (slice(200, -200),) * 2
    rows.append((f"**pfibsims lanczos a=3{', antialiased' if scaled else ''}** (2 threads)", t,
                 f"median diff to OpenCV {np.nanmedian(np.abs(ours - cvw)[inner]):.2g}, "
                 f"to scipy {np.nanmedian(np.abs(ours - sc)[inner]):.2g}"))
    return [_row(name, t, n**2, refs, gbs, img.nbytes, n**2 * 4, note) for name, t, note in rows]


def full_slice(lazy):
    """One 700 um slice; run in a child process so its peak RSS is its own."""
    import dask.array as da

    from pfibsims.grid import Grid
    from pfibsims.resampling import resample

    n_src, n_out = 9700, 8600
    coords = Grid((n_src, n_src), "72 nm").xr_coords()
    if lazy:
        data = da.random.default_rng(0).random((n_src, n_src), chunks=1024, dtype=np.float32)
    else:
        data = np.random.default_rng(0).random((n_src, n_src), dtype=np.float32)
    src = xr.DataArray(data, dims=("y", "x"), coords=coords, name="Li6")
    onto = Grid((n_out, n_out), "81.4 nm")
    t0 = time.perf_counter()
    out = resample(src, onto, chunks=1024 if lazy else None)
    value = float(out.sum().compute()) if lazy else float(out.values.sum())
    t = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"lazy": lazy, "seconds": t, "peak_rss_gb": rss, "checksum": value}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=4000, help="square image side (pixels)")
    p.add_argument("--repeat", type=int, default=3, help="repeats; the median is reported")
    p.add_argument("--full", action="store_true", help="also the 9700^2 -> 8600^2 slice in subprocesses")
    p.add_argument("--_child", choices=["eager", "lazy"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._child:
        print(json.dumps(full_slice(args._child == "lazy")))
        return
    print(bench(args.size, args.repeat))
    if args.full:
        print("\n### one 700 um slice: 9700^2 (72 nm) onto 8600^2 (81.4 nm), fresh process each\n")
        print("| input | s | MPix/s | peak RSS GB |\n| --- | ---: | ---: | ---: |")
        for mode in ("eager", "lazy"):
            res = subprocess.run([sys.executable, __file__, "--_child", mode], capture_output=True, text=True,
                                 check=True, env=os.environ)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            what = ("numpy in memory -> numpy out" if mode == "eager"
                    else "dask random source (1024 chunks) -> streamed sum")
            print(f"| {what} | {r['seconds']:.2f} | {8600**2 / r['seconds'] / 1e6:.0f} | {r['peak_rss_gb']:.2f} |")


if __name__ == "__main__":
    main()
