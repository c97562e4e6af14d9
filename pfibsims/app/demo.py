"""The demo job: the whole workflow on the synthetic cathode phantom.

phantom -> :func:`pfibsims.fuse` (drift, registration, Lanczos resampling) ->
phase labels -> ``fused.zarr`` -> statistics, figures and a report that
compares every estimate with the phantom's truth.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import PfibsimsError

__all__ = ["run_demo", "stage"]


@contextmanager
def stage(name: str, timings: dict[str, float], *, progress: bool = True) -> Iterator[None]:
    """Print a stage header, show the library's progress inside it (:mod:`pfibsims.progress`), and time it."""
    from ..progress import config

    print(f"-- {name}", flush=True)
    t0 = time.perf_counter()
    with config(progress=progress):
        yield
    timings[name] = round(time.perf_counter() - t0, 3)
    print(f"   {name}: {timings[name]:.1f} s", flush=True)


def run_demo(
    outdir: str | Path,
    *,
    seed: int = 0,
    overwrite: bool = False,
    n_slices: int = 39,
    phantom: Callable[..., Any] | None = None,
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

    Returns
    -------
    dict
        The report (see :func:`pfibsims.report.measure`) with ``timings_s``.
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
    with stage("statistics, figures and report", timings):
        report = write_report(vol, outdir, raw={"eds": eds, "sims": sims}, truth=truth)
    report["timings_s"] = timings
    import json

    (outdir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    print((outdir / "report.txt").read_text())
    print(f"wrote {store}, {outdir / 'figures'}, {outdir / 'report.json'}")
    return report
