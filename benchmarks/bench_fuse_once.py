"""fuse on the 6-slice phantom: wall and CPU seconds, and the accuracy of its transform and drift.

Run it once with this checkout and once with another on the path to compare
(issue 22: the global search ran twice, register - cross-modal drift -
register from scratch; now once, then a local refinement):

    .venv/bin/python benchmarks/bench_fuse_once.py
    PYTHONPATH=/path/to/other/checkout .venv/bin/python benchmarks/bench_fuse_once.py
"""

from __future__ import annotations

import json
import os
import time
import warnings

import numpy as np

import pfibsims as pfs
from pfibsims.transform import Affine


def main() -> None:
    eds, sims, truth = pfs.synthetic.cathode(seed=1, n_slices=6)
    eds, sims = eds.persist(), sims.persist()
    T = Affine.from_attrs(truth.attrs)
    rows = []
    for _ in range(2):
        t, c = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vol = pfs.fuse(eds, sims)
        rows.append((time.perf_counter() - t, time.process_time() - c))
    Te = Affine.from_attrs(vol.attrs)
    ys, xs = eds.y.values, eds.x.values
    pts = np.array([[ys.mean(), xs.mean()], [ys[0], xs[0]], [ys[0], xs[-1]], [ys[-1], xs[0]], [ys[-1], xs[-1]]])
    err = np.linalg.norm(Te(pts) - T(pts), axis=1)
    drift = np.asarray(json.loads(vol.attrs["pfibsims:drift"])["sims"])
    rms = float(np.sqrt(((drift - truth.drift.values) ** 2).sum(1).mean()))
    print(f"pfibsims from {os.path.dirname(pfs.__file__)}; load {os.getloadavg()[0]:.1f}")
    print(f"fuse, 6-slice phantom: wall {min(r[0] for r in rows):.1f} s, CPU {min(r[1] for r in rows):.1f} s "
          f"(best of {len(rows)}); transform error centre {err[0]:.1f} nm, worst corner {err[1:].max():.1f} nm; "
          f"SIMS drift RMS {rms:.1f} nm")


if __name__ == "__main__":
    main()
