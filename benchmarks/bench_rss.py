"""RSS over many calls of a statistics function: does it grow without bound (issue 21)?

    .venv/bin/python benchmarks/bench_rss.py --calls 12000 --every 1000

``phase_statistics`` of a small lazy 2 x 64 x 64 channel (chunks 1 x 32 x 32) against its labels, called
again and again; the RSS (``/proc/self/status`` VmRSS) is printed every ``--every`` calls after a 50-call
warm-up, with the growth per call over the last block. At the end, ``malloc_trim(0)`` asks glibc to return
freed memory to the system: RSS that comes back is memory Python freed but the allocator kept (fragmentation),
not a leak. The Python objects alive are counted too (``gc.get_objects``), and the entries of dask's
``dask.utils.key_split`` cache (an ``lru_cache`` of 100000 task-key names: each call adds the names of its
new graph keys). ``--clear-key-cache`` empties that cache every block: what growth is left is not it.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import time

import numpy as np
from dask.utils import key_split

import pfibsims as pfs


def _rss_kb() -> int:
    with open(f"/proc/{os.getpid()}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=12000)
    p.add_argument("--every", type=int, default=1000)
    p.add_argument("--clear-key-cache", action="store_true", help="empty dask.utils.key_split's cache every block")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    ds = pfs.stack({"Li6": rng.random((2, 64, 64)), "Zr_La": rng.random((2, 64, 64))}, pixel_size="80 nm",
                   slice_thickness="60 nm", modality="EDS", chunks=(1, 32, 32))
    labels = pfs.classify_phases(ds, phases={"Zr_La": "LLZTO"})
    for _ in range(50):
        pfs.phase_statistics(ds.Li6, labels)
    gc.collect()
    base, objects0, prev, t0 = _rss_kb(), len(gc.get_objects()), _rss_kb(), time.perf_counter()
    print(f"load averages {os.getloadavg()}")
    print("| calls | RSS growth since call 50 (MB) | KB per call over the last block | Python objects added | key_split cache entries |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for i in range(1, args.calls + 1):
        pfs.phase_statistics(ds.Li6, labels)
        if i % args.every == 0:
            entries = key_split.cache_info().currsize
            if args.clear_key_cache:
                key_split.cache_clear()
            gc.collect()
            now = _rss_kb()
            print(f"| {i} | {(now - base) / 1024:.2f} | {(now - prev) / args.every:.3f} | "
                  f"{len(gc.get_objects()) - objects0} | {entries} |", flush=True)
            prev = now
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    print(f"\nafter malloc_trim(0): RSS growth {(_rss_kb() - base) / 1024:.2f} MB; "
          f"{(time.perf_counter() - t0) / args.calls * 1e3:.1f} ms a call")


if __name__ == "__main__":
    main()
