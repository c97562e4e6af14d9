"""Benchmark of pfibsims.register: real pairs against scikit-image and SimpleITK, and the phantom.

Real and semi-real pairs (default; ``benchmarks/_register_real.py``): the
pairs of tests/registration/test_registration_real.py and a masked one, each
registered once by pfibsims, scikit-image's phase correlation and (when
installed) SimpleITK's Mattes MI; error at the fixed field's centre and worst
corner in fixed pixels, and the time:

    .venv/bin/python benchmarks/bench_register.py --real [path/to/shared/data]

Significance calibration (``--calibrate``; ``benchmarks/_register_calibrate.py``): the tile
agreement that register's significance rule reads, for matching real pairs, unrelated real pairs
and noise, with the verdict and the error against the truth:

    .venv/bin/python benchmarks/bench_register.py --calibrate [path/to/shared/data]

Precision on noisy count maps against the Cramér-Rao bound (``--precision``;
``benchmarks/_register_precision.py``): Poisson maps of a real HAADF image at 1-30
counts a pixel, many draws, beside the bound and a maximum-likelihood oracle:

    .venv/bin/python benchmarks/bench_register.py --precision [path/to/shared/data]

The phantom (``--phantom``): time per model, accuracy vs dose, against a baseline.

For each dose (a multiple of the phantom's default counts, EDS and SIMS alike)
and seed, on the default field (216 x 352 EDS px, 500 x 500 SIMS px):

- the registration alone, its drift source removed: ``register(sims.Li6,
  eds, model="rigid", drift=truth.drift)``; error = displacement of the
  estimated against the true transform at the EDS field centre and the
  largest at its four corners, and the rotation error;
- the baseline in the same run: scikit-image's ``phase_cross_correlation``
  alone (``metric="phase"``: translation of gradient magnitudes of the
  drift-corrected z-mean pulled onto the EDS grid);
- the fusion chain without truth: ``estimate_drift`` (slice to slice) ->
  ``register(drift=rough)`` -> ``estimate_drift(reference=eds,
  transform=T0)`` (cross-modal) -> ``register(drift=cross, initial=T0)`` (local, as fuse); drift RMS error
  relative to slice 0 (the truth's convention) for the slice-to-slice and the
  cross-modal estimates, and the largest error of the per-slice composite
  transforms ``translation(drift[k]) @ T`` over all slices, centre and corners,
  with the first registration ``T0`` and with the re-registered one.

The time per model is for a 39-slice phantom at dose 1 with the true drift given.

    .venv/bin/python benchmarks/bench_register.py --phantom --slices 39 --seeds 0 1 2 --doses 0.25 1 4
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

import pfibsims.registration as reg
from pfibsims.errors import RegistrationError
from pfibsims.resampling import slice_transforms
from pfibsims.synthetic import cathode
from pfibsims.transform import Affine


def errors(Te, T, eds):
    """(centre nm, worst corner nm, |rotation error| deg, |scale error|)."""
    ys, xs = eds.y.values, eds.x.values
    pts = np.array([[ys.mean(), xs.mean()], [ys[0], xs[0]], [ys[0], xs[-1]], [ys[-1], xs[0]], [ys[-1], xs[-1]]])
    e = np.linalg.norm(Te(pts) - T(pts), axis=1)
    de, dt = Te.decompose(), T.decompose()
    return e[0], e[1:].max(), abs(de["rotation"] - dt["rotation"]), abs(de["scale"][0] / dt["scale"][0] - 1)


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = fn(*args, **kw)
            out = getattr(out, "transform", out)  # register's Registration: its transform
        except RegistrationError:
            out = None
    return out, time.perf_counter() - t0


def drift_rms(d, truth):
    rel = d.values - d.values[0]
    return float(np.sqrt(((rel - truth.drift.values) ** 2).sum(1).mean()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", nargs="?", const="", default=None, metavar="DATA",
                    help="the real pairs (from DATA, default ../shared/data)")
    ap.add_argument("--phantom", action="store_true", help="the phantom benchmark")
    ap.add_argument("--calibrate", nargs="?", const="", default=None, metavar="DATA",
                    help="the significance statistics of matching, unrelated and noise pairs (from DATA)")
    ap.add_argument("--precision", nargs="?", const="", default=None, metavar="DATA",
                    help="the precision on noisy count maps against the Cramér-Rao bound (from DATA)")
    ap.add_argument("--slices", type=int, default=39)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--doses", type=float, nargs="+", default=[0.25, 1.0, 4.0])
    ap.add_argument("--models", nargs="+", default=["translation", "rigid", "similarity", "affine"])
    args = ap.parse_args()
    if args.calibrate is not None:
        import _register_calibrate as rc

        data = Path(args.calibrate) if args.calibrate else Path(__file__).resolve().parents[2] / "shared" / "data"
        rows = rc.run(data)
        load = os.getloadavg()
        print(f"\nuptime load averages {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}\n")
        print(rc.table(rows))
    if args.precision is not None:
        import _register_precision as rpr

        data = Path(args.precision) if args.precision else Path(__file__).resolve().parents[2] / "shared" / "data"
        rows = rpr.run(data)
        print(rpr.table(rows))
    if args.real is not None or not (args.phantom or args.calibrate is not None or args.precision is not None):
        import _register_real as rr

        data = Path(args.real) if args.real else Path(__file__).resolve().parents[2] / "shared" / "data"
        rows = rr.run(data)
        load = os.getloadavg()
        print(f"\nuptime load averages {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}\n")
        print(rr.table(rows))
    if args.phantom:
        phantom(args)


def phantom(args) -> None:
    times = {m: [] for m in args.models}
    rows = []
    for seed in args.seeds:
        for dose in args.doses:
            eds, sims, truth = cathode(seed=seed, n_slices=args.slices, sims_dose=dose, eds_dose=dose)
            eds, sims = eds.persist(), sims.persist()
            T = Affine.from_attrs(truth.attrs)
            models = args.models if dose == 1.0 else ["rigid"]
            found = {}
            for model in models:
                found[model], dt = timed(reg.register, sims.Li6, eds, model=model, drift=truth.drift)
                if dose == 1.0:
                    times[model].append(dt)
            Te = found["rigid"]
            Tb, dtb = timed(reg.register, sims.Li6, eds, model="translation", metric="phase", drift=truth.drift)
            t0 = time.perf_counter()
            rough, _ = timed(reg.estimate_drift, sims.Li6)
            T0, _ = timed(reg.register, sims.Li6, eds, model="rigid", drift=rough)
            cross = T1 = None
            if T0 is not None:
                cross, _ = timed(reg.estimate_drift, sims.Li6, reference=eds, transform=T0, initial=rough)
                T1, _ = timed(reg.register, sims.Li6, eds, model="rigid", drift=cross, initial=T0)
            t_chain = time.perf_counter() - t0
            Tt = slice_transforms(T, truth.drift)

            def worst_of(Tx, d, Tt=Tt, eds=eds):
                if Tx is None or d is None:
                    return float("nan")
                return max(max(errors(a, b, eds)[:2]) for a, b in zip(slice_transforms(Tx, d), Tt, strict=True))

            worst, worst0 = worst_of(T1, cross), worst_of(T0, cross)
            rows.append(dict(seed=seed, dose=dose, rigid=None if Te is None else errors(Te, T, eds),
                             phase=None if Tb is None else errors(Tb, T, eds), t_phase=dtb,
                             rough=drift_rms(rough, truth), cross=None if cross is None else drift_rms(cross, truth),
                             worst=worst, worst0=worst0, t_chain=t_chain))
            print(rows[-1], flush=True)
    load = os.getloadavg()
    print(f"\nuptime load averages {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB\n")
    print(f"Time to register a {args.slices}-slice phantom (true drift given), dose 1, median over seeds "
          f"{args.seeds}\n")
    print("| model | median s | runs |\n| --- | ---: | ---: |")
    for m, ts in times.items():
        if ts:
            print(f"| {m} | {statistics.median(ts):.1f} | {len(ts)} |")
    print("\nRegistration alone (true drift given), model='rigid' vs phase_cross_correlation; errors in nm "
          "(EDS pixel 81.4 nm)\n")
    print("| seed | dose | rigid: centre | rigid: worst corner | rigid: rotation, deg | phase: centre | "
          "phase: worst corner | phase s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        a = ("failed",) * 3 if r["rigid"] is None else (f"{r['rigid'][0]:.1f}", f"{r['rigid'][1]:.1f}",
                                                         f"{r['rigid'][2]:.4f}")
        b = ("failed",) * 2 if r["phase"] is None else (f"{r['phase'][0]:.0f}", f"{r['phase'][1]:.0f}")
        print(f"| {r['seed']} | {r['dose']:g} | {' | '.join(a)} | {' | '.join(b)} | {r['t_phase']:.1f} |")
    print("\nFusion chain without truth (rough drift -> register -> cross-modal drift -> register); drift RMS "
          "error over the slices relative to slice 0, nm\n")
    print("| seed | dose | slice-to-slice drift RMS | cross-modal drift RMS | worst composite error (T0, cross) "
          "| worst composite error (re-registered T, cross) | chain s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        c = "failed" if r["cross"] is None else f"{r['cross']:.1f}"
        print(f"| {r['seed']} | {r['dose']:g} | {r['rough']:.1f} | {c} | {r['worst0']:.1f} | {r['worst']:.1f} "
              f"| {r['t_chain']:.0f} |")


if __name__ == "__main__":
    main()
