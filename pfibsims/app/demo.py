"""The demo job: the whole workflow on the synthetic cathode phantom.

phantom -> :func:`pfibsims.fuse` (drift, registration, Lanczos resampling) ->
phase labels -> ``fused.zarr`` -> statistics, figures and a report that
compares every estimate with the phantom's truth.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._memory import frozen_heap, release_memory
from ..errors import PfibsimsError

__all__ = ["peak_rss_mb", "run_demo", "stage"]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB (``ru_maxrss``; NaN where it is not available)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return math.nan
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, kB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


@contextmanager
def stage(name: str, timings: dict[str, float], *, progress: bool = True) -> Iterator[None]:
    """Print a stage header, show the library's progress inside it (:mod:`pfibsims.progress`), and time it
    (wall s, and the process's peak RSS)."""
    from ..progress import config

    print(f"-- {name}", flush=True)
    t0 = time.perf_counter()
    with config(progress=progress):
        yield
    release_memory()
    timings[name] = round(time.perf_counter() - t0, 3)
    print(f"   {name}: {timings[name]:.1f} s (peak RSS {peak_rss_mb():.0f} MB)", flush=True)


def _summary(timings: dict[str, float], total: float) -> str:
    """The stage times as a table (the demo's last lines)."""
    width = max(len(k) for k in timings)
    rows = [f"  {k:<{width}}  {v:7.1f} s" for k, v in timings.items()]
    return "\n".join(["stage times:", *rows, f"  {'total':<{width}}  {total:7.1f} s, peak RSS {peak_rss_mb():.0f} MB"])


def run_demo(
    outdir: str | Path,
    *,
    seed: int = 0,
    overwrite: bool = False,
    n_slices: int = 39,
    phantom: Callable[..., Any] | None = None,
    channels: Any = None,
) -> dict[str, Any]:
    """Build the phantom, fuse it, write the volume, figures and a report into ``outdir``.

    Writes ``outdir/fused.zarr`` (every channel on the EDS grid, ``coverage``
    and ``phase``), ``outdir/figures/*.png``, ``outdir/report.json`` and
    ``outdir/report.txt``.

    Parameters
    ----------
    outdir : path
        Output folder (created).
    seed : int
        Phantom seed.
    overwrite : bool
        Replace an existing ``fused.zarr`` and report; otherwise refuse.
    n_slices : int
        Slices of the phantom (39, as in the paper).
    channels : (str, str), optional
        The channels to correlate (default ``Li6`` and ``Zr_La``).

    Returns
    -------
    dict
        The report (see :func:`pfibsims.app.report.measure`) with ``timings_s`` (wall seconds per
        stage and in total, also printed at the end) and ``peak_rss_mb``.
    """
    from .. import synthetic
    from ..io import open_dataset, save
    from ..pipeline import fuse
    from ..segmentation import classify_phases
    from .report import write_report

    outdir = Path(outdir)
    store = outdir / "fused.zarr"
    for path in (store, outdir / "report.json"):
        if path.exists() and not overwrite:
            raise PfibsimsError(f"outdir: expected no previous output, found {path}; pass --overwrite to replace it")
    outdir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with frozen_heap():  # the collection after each stage skips the imported modules (0.2 -> 0.05 s each)
        with stage("phantom (synthetic cathode)", timings):
            eds, sims, truth = (phantom or synthetic.cathode)(seed=seed, n_slices=n_slices)
            eds, sims, truth = eds.persist(), sims.persist(), truth.persist()
        with stage("fuse: drift, registration, Lanczos resampling", timings):
            vol = fuse(eds, sims)
        with stage("phases", timings):
            vol["phase"] = classify_phases(vol)
        with stage(f"save {store}", timings):
            save(vol, store, overwrite=overwrite)
        vol = open_dataset(store)
        report = write_report(vol, outdir, channels=channels, raw={"eds": eds, "sims": sims}, truth=truth,
                              stage=lambda name: stage(name, timings))
    total = time.perf_counter() - t0
    report["timings_s"] = {**timings, "total": round(total, 3)}
    report["peak_rss_mb"] = round(peak_rss_mb(), 1)
    import json

    (outdir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    print((outdir / "report.txt").read_text())
    print(f"wrote {store}, {outdir / 'figures'}, {outdir / 'report.json'}")
    print(_summary(timings, total))
    return report
