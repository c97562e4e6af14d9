"""EDS line maps by fitting against window integration and against exSpy's per-pixel model fitting.

Usage: python benchmarks/bench_fitting.py [--size 512] [--repeats 3] [--exspy-pixels 100]

Three measurements, each in seconds per million pixels (median of repeats; the synthetic cases also give
the ratio of process CPU times, all threads, which the machine's load moves less):

1. A synthetic cathode spectrum image (LLZTO / LCO / Pt pixels at 5 kV, 600
   channels of 10 eV, Poisson counts), in memory: ``fit_lines`` (5 line
   families, non-negative) against ``integrate_lines`` (the same 5 windows).
2. The same cube read from a Ripple file through ``pfs.read_eds`` (lazy,
   dask threads): fit against window, reading included.
3. A real Bruker file (``30x30_instructively_packed_16bit_compressed.bcf``,
   16 lines, 20 kV): pfibsims' fit and window against exSpy
   (``create_model()`` + ``multifit()``, its default Levenberg-Marquardt per
   pixel, and its linear ``optimizer="lstsq"``) on the first
   ``--exspy-pixels`` pixels; the agreement of the fitted maps (Pearson r
   over pixels, ratio of totals) is printed beside.

exSpy is an optional benchmark dependency (``pip install exspy``), never a
runtime one; without it part 3 prints only pfibsims' numbers.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from _timing import median_seconds, median_wall_cpu

import pfibsims as pfs
from pfibsims.io.fitting import fit_lines
from pfibsims.io.lines import LineOverlapWarning, integrate_lines

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "io"))
DATA = HERE.parents[1] / "shared" / "data"


def _cathode(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    import test_io_fitting as t  # the test's spectra with known line counts

    rng = np.random.default_rng(seed)
    spectra = np.stack([sum(t._family_counts(n, c) for n, c in v.items()) + t._continuum(2.0) for v in t.PHASES.values()])
    phase = rng.integers(0, 3, (size, size))
    return rng.poisson(spectra[phase] * 0.05).astype(np.uint16), t.ENERGY


def _per_mpix(seconds: float, pixels: int) -> float:
    return seconds * 1e6 / pixels


def _pair(name: str, fit, window, repeats: int, pixels: int) -> tuple:
    """(name, fit and window wall s per Mpixel, their CPU-time ratio): medians, the two timed back to back."""
    fw, fc, _ = median_wall_cpu(fit, repeats)
    ww, wc, _ = median_wall_cpu(window, repeats)
    return name, _per_mpix(fw, pixels), _per_mpix(ww, pixels), fc / wc


def _memory(size: int, repeats: int) -> list[tuple]:
    cube, energy = _cathode(size)
    lines = ["Co_La", "La_Ma", "Zr_La", "O_Ka", "Pt_Ma"]

    def window() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LineOverlapWarning)
            integrate_lines(cube, energy, lines)

    return [_pair("cathode in memory", lambda: fit_lines(cube, energy, lines, beam_energy_ev=5000.0), window, repeats,
                  cube.shape[0] * cube.shape[1])]


def _from_file(size: int, repeats: int) -> list[tuple]:
    import dask
    import test_io_fitting as t

    cube, _ = _cathode(size)
    path = t._write(Path(tempfile.mkdtemp()), cube)
    lines = ["Co_La", "La_Ma", "Zr_La", "O_Ka", "Pt_Ma"]

    def run(method: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LineOverlapWarning)
            ds = pfs.read_eds(path, lines=lines, method=method)
        dask.compute(*[ds[v].data for v in ds.data_vars])

    return [_pair("cathode from a Ripple file (read included)", lambda: run("fit"), lambda: run("window"), repeats,
                  cube.shape[0] * cube.shape[1])]


def _bcf(repeats: int, n_exspy: int) -> None:
    import dask

    path = DATA / "eds" / "30x30_instructively_packed_16bit_compressed.bcf"
    if not path.exists():
        print(f"\n(real BCF not found at {path}: part 3 skipped)")
        return

    def run(method: str) -> dict:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LineOverlapWarning)
            ds = pfs.read_eds(path, method=method)
        return dict(zip(ds.data_vars, dask.compute(*[ds[v].data[0] for v in ds.data_vars]), strict=True))

    fit_s = median_seconds(lambda: run("fit"), repeats, warmup=True)
    win_s = median_seconds(lambda: run("window"), repeats, warmup=True)
    ours = run("fit")
    n = 30 * 30
    print(f"\n### Real BCF: {path.name} (30 x 30 px, 2048 channels, {len(ours)} lines, 20 kV)\n")
    print("| method | s per Mpixel | pixels timed | notes |\n|---|---|---|---|")
    print(f"| pfibsims fit (read + fit) | {_per_mpix(fit_s, n):.1f} | {n} | median of {repeats} |")
    print(f"| pfibsims window (read + sum) | {_per_mpix(win_s, n):.1f} | {n} | median of {repeats} |")
    try:
        import exspy  # noqa: F401
        import hyperspy.api as hs
    except ImportError:
        print("| exSpy | not installed | | `pip install exspy` to compare |")
        return
    import logging

    logging.getLogger("hyperspy").setLevel(logging.ERROR)
    logging.getLogger("exspy").setLevel(logging.ERROR)
    s = hs.load(str(path), select_type="spectrum_image")
    ny = max(1, n_exspy // 30)
    sub = s.inav[:, :ny]
    sub.set_lines(list(ours))
    for optimizer in ("lm", "lstsq"):
        m = sub.create_model()
        import time

        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.multifit(optimizer=optimizer, show_progressbar=False)
        dt = time.perf_counter() - t0
        inten = {im.metadata.Sample.xray_lines[0]: np.asarray(im.data) for im in m.get_lines_intensity()}
        inten = {k: v for k, v in inten.items() if k in ours}
        rs, ratios = [], []
        for k, v in inten.items():
            mine = ours[k][:ny].ravel()
            if np.std(mine) > 0 and np.std(v) > 0:
                rs.append(np.corrcoef(mine, v.ravel())[0, 1])
            if v.sum() > 0:
                ratios.append(mine.sum() / v.sum())
        print(f"| exSpy `multifit(optimizer='{optimizer}')` | {_per_mpix(dt, 30 * ny):.1f} | {30 * ny} | "
              f"agreement with pfibsims fit: median Pearson r {np.median(rs):.3f}, median total ratio {np.median(ratios):.3f} "
              f"over {len(inten)} lines |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--exspy-pixels", type=int, default=120)
    a = ap.parse_args()
    load = os.getloadavg()[0]
    rows = _memory(a.size, a.repeats) + _from_file(a.size, a.repeats)
    print(f"load average (1 min) {load:.1f} at the start, {os.getloadavg()[0]:.1f} after the synthetic cases, {os.cpu_count()} CPUs\n")
    print(f"### Synthetic cathode, {a.size} x {a.size} px, 600 channels, 5 lines (median of {a.repeats})\n")
    print("| case | fit (s per Mpixel) | window (s per Mpixel) | fit / window | fit / window (CPU time) |")
    print("|---|---|---|---|---|")
    for name, f, w, cpu in rows:
        print(f"| {name} | {f:.2f} | {w:.2f} | {f / w:.2f} | {cpu:.2f} |")
    _bcf(a.repeats, a.exspy_pixels)
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB")


if __name__ == "__main__":
    main()
