"""The estimation steps of `fuse` alone at the paper's size (issue 18): process CPU time of each.

    .venv/bin/python benchmarks/bench_estimation.py

On the default phantom ``cathode(seed=0)`` (EDS 4 x 39 x 216 x 352 at 81.4 nm, SIMS 39 x 500 x 500 at 72 nm),
persisted: the slice-to-slice drift of the SIMS stack, one global rigid registration SIMS -> EDS through it, and
the cross-modal drift against the EDS slices. Prints a Markdown table (CPU and wall s, load average) and the
registration's error against the phantom's truth. Compare two versions of the code by running it with
``PYTHONPATH`` set to an unpacked copy (``git archive <rev> pfibsims | tar -x -C /tmp/old``).
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np


def _load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3]) if os.path.exists("/proc/loadavg") else "?"


def main() -> None:
    import pfibsims as pfs

    warnings.simplefilter("ignore")
    eds, sims, truth = pfs.synthetic.cathode(seed=0)
    eds, sims = eds.persist(), sims.persist()
    pfs.estimate_drift(sims.Li6.isel(z=slice(0, 3)))  # numba's cached kernels loaded, not timed
    rows = []

    def timed(name, fn):
        t, w = time.process_time(), time.perf_counter()
        out = fn()
        rows.append(f"| {name} | {time.process_time() - t:.2f} | {time.perf_counter() - w:.2f} | {_load()} |")
        return out

    d = timed("slice-to-slice drift, 39 SIMS slices", lambda: pfs.estimate_drift(sims.Li6))
    r = timed("one global rigid registration SIMS -> EDS (4 channels)", lambda: pfs.register(sims.Li6, eds, drift=d))
    timed("cross-modal drift, 39 slices", lambda: pfs.estimate_drift(sims.Li6, reference=eds, transform=r.transform,
                                                                    initial=d))
    true = pfs.Affine.from_attrs(truth.attrs)
    err = np.asarray(r.transform.offset) - np.asarray(true.offset)
    print(f"pfibsims from {pfs.__file__}\n")
    print("| step | CPU s | wall s | load |\n| --- | ---: | ---: | --- |")
    print("\n".join(rows))
    print(f"\nregistration offset error (nm): {np.round(err, 3).tolist()}, rotation "
          f"{r.transform.decompose()['rotation']:.4f} deg (truth {true.decompose()['rotation']:.4f})")


if __name__ == "__main__":
    main()
