"""The ``pfibsims`` command line.

``pfibsims demo OUTDIR``          the whole workflow on the synthetic cathode phantom;
``pfibsims fuse --eds ... --sims ... --out run.zarr``   the same on real files;
``pfibsims report run.zarr OUTDIR``   statistics and figures of a saved volume.

Long steps show dask's progress bar (threads and processes schedulers) or the
distributed dashboard's progress (with ``--scheduler ADDRESS``).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from .._version import __version__
from ..errors import CoverageWarning, PfibsimsError

#: The option each keyword argument of a library call is given by, by call: an error the library raises
#: names the argument (``min_coverage: expected ...``), the command reports the option the user typed
#: (``--min-coverage: expected ...``). Keyed by call because one argument comes from different options
#: (``pixel_size``: ``--pixel-size`` for read_eds and read_sem, ``--sims-pixel-size`` for read_sims).
_OPTIONS: dict[str, dict[str, str]] = {
    "read_eds": {"path_or_paths": "--eds", "path": "--eds", "lines": "--lines", "pixel_size": "--pixel-size",
                 "slice_thickness": "--slice-thickness"},
    "read_sims": {"path_or_paths": "--sims", "path": "--sims", "pixel_size": "--sims-pixel-size", "isotope": "--isotope",
                  "slice_thickness": "--slice-thickness"},
    "read_sem": {"path_or_paths": "--sem", "path": "--sem", "pixel_size": "--pixel-size", "slice_thickness": "--slice-thickness"},
    "fuse": {"min_coverage": "--min-coverage", "register": "--register", "initial": "--initial", "strict": "--strict"},
    "save": {"path": "--out"},
    "demo": {"n_slices": "--slices", "seed": "--seed", "channels": "--channels"},
    "report": {"channels": "--channels", "path": "store"},
}


@contextlib.contextmanager
def _options(call: str) -> Iterator[None]:
    """Re-raise a PfibsimsError of ``call`` with the arguments it names (``name:`` as a word, not inside a
    path or a quote) spelt as the command's options (:data:`_OPTIONS`), and so are its advice's keyword
    arguments (``give pixel_size='81.4 nm'`` -> ``give --pixel-size '81.4 nm'``)."""
    try:
        yield
    except PfibsimsError as exc:
        text = str(exc)
        for name, option in _OPTIONS[call].items():
            text = re.sub(rf"(?<![\w\-./\\'\"]){re.escape(name)}(?=:(?:\s|$))", option, text)
            text = re.sub(rf"(?<![\w\-./\\'\"]){re.escape(name)}=(\S?)", lambda m, o=option: o + (" " + m[1] if m[1] else ""), text)
        if text == str(exc):
            raise
        raise type(exc)(text) from exc


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings of a command go to stderr as one line, ``pfibsims: warning: ...``."""
    print(f"pfibsims: warning: {message}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pfibsims",
        description="Fuse plasma-FIB EDS and SIMS slice data into one measured 3D volume.",
    )
    p.add_argument("--version", action="version", version=f"pfibsims {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the whole workflow on the built-in synthetic cathode phantom")
    demo.add_argument("outdir", type=Path, help="folder for fused.zarr, figures/ and report.json")
    demo.add_argument("--seed", type=int, default=0, help="phantom seed (default 0)")
    demo.add_argument("--slices", type=int, default=39, help="phantom slices (default 39, as in the paper)")
    demo.add_argument("--overwrite", action="store_true", help="replace existing outputs in OUTDIR")
    demo.add_argument("--channels", nargs=2, metavar=("A", "B"), help="the channels to correlate (default Li6 Zr_La)")

    fuse = sub.add_parser("fuse", help="fuse EDS and SIMS files into one Zarr volume")
    fuse.add_argument("--eds", nargs="+", required=True, metavar="PATH", help="EDS file(s) or glob, one per slice")
    fuse.add_argument("--sims", nargs="+", required=True, metavar="PATH", help="SIMS file(s) or glob")
    fuse.add_argument("--sem", nargs="+", metavar="PATH", help="SEM image(s) on the EDS frame (for EDS drift)")
    fuse.add_argument("--out", type=Path, required=True, help="output Zarr store, e.g. run.zarr")
    fuse.add_argument("--lines", nargs="+", help="EDS lines to integrate from spectrum images, e.g. Zr_La Co_La")
    fuse.add_argument("--pixel-size", help="EDS pixel size when the files have none, e.g. '81.4 nm'")
    fuse.add_argument("--sims-pixel-size", help="SIMS pixel size when the files have none, e.g. '72 nm'")
    fuse.add_argument("--isotope", help="SIMS isotope of text/TIFF maps that do not say, e.g. 6Li")
    fuse.add_argument("--slice-thickness", help="distance between slices, e.g. '60 nm'")
    fuse.add_argument("--register", default="rigid", choices=["translation", "rigid", "similarity", "affine", "none"],
                      help="registration model (default rigid)")
    fuse.add_argument("--no-drift", action="store_true", help="do not estimate and remove SIMS drift (nor, with --sem, EDS drift)")
    fuse.add_argument("--initial", metavar="JSON",
                      help="first guess of the EDS -> SIMS transform: a JSON file or text, an Affine "
                           "({\"type\": \"Affine\", \"dims\": [\"y\", \"x\"], \"matrix\": ...}) or parameters "
                           "({\"shift\": [\"2 um\", \"-5 um\"], \"rotation\": 1.5}); with --register none, the "
                           "transform used")
    fuse.add_argument("--min-coverage", type=float, default=0.1,
                      help="warn when the SIMS field covers less than this fraction of the EDS grid (default 0.1)")
    fuse.add_argument("--strict", action="store_true", help="fail (instead of warning) below --min-coverage")
    fuse.add_argument("--scheduler", default="threads",
                      help="threads (default), processes, or the ADDRESS of a dask.distributed scheduler")
    fuse.add_argument("--overwrite", action="store_true", help="replace an existing --out store")

    report = sub.add_parser("report", help="statistics and figures of a saved fused volume")
    report.add_argument("store", type=Path, help="a store written by `pfibsims fuse` or `pfibsims demo`")
    report.add_argument("outdir", type=Path, help="folder for report.json, report.txt and figures/")
    report.add_argument("--scheduler", default="threads", help="threads, processes, or a scheduler ADDRESS")
    report.add_argument("--channels", nargs=2, metavar=("A", "B"),
                        help="the channels to correlate and draw (default Li6 Zr_La when present, else a SIMS "
                             "isotope and an EDS line)")
    return p


@contextlib.contextmanager
def _scheduler(name: str) -> Iterator[None]:
    """Run the block on the named dask scheduler, with the library's progress bars (:mod:`pfibsims.progress`)."""
    import dask

    from ..progress import config

    if name in ("threads", "processes", "synchronous"):
        with dask.config.set(scheduler=name), config(progress=True):
            yield
        return
    if ":" not in name:
        raise PfibsimsError(f"--scheduler: expected threads, processes or a scheduler address like tcp://host:8786, got {name!r}")
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - distributed is a dependency
        raise PfibsimsError(f"--scheduler: dask.distributed is needed for {name!r}: {exc}") from None
    try:
        client = Client(name, timeout="10s")
    except OSError as exc:
        raise PfibsimsError(f"--scheduler: could not reach a dask scheduler at {name!r} ({exc})") from None
    with client, config(progress=True):  # pfibsims' own steps; dask's task callbacks do not fire on a client
        print(f"dask.distributed: {client.dashboard_link}", flush=True)
        yield


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(args.outdir, seed=args.seed, overwrite=args.overwrite, n_slices=args.slices, channels=args.channels)
    return 0


def _initial(text: str | None):
    """``--initial`` (a JSON file or JSON text) as an Affine, or None."""
    if text is None:
        return None
    from ..transform import Affine

    path = Path(text)
    if len(text) < 4096 and path.is_file():
        text = path.read_text()
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PfibsimsError(f"--initial: expected a JSON file or JSON text, got {text!r:.80} ({exc})") from None
    keys = {"shift", "rotation", "scale", "center"}
    if not isinstance(spec, dict) or not spec or not ("matrix" in spec or set(spec) <= keys):
        raise PfibsimsError(f"--initial: expected an Affine (with 'matrix') or parameters among {sorted(keys)}, "
                            f"got {spec!r:.80}")
    try:
        if "matrix" in spec:
            return Affine.from_dict(spec)
        return Affine.from_parameters(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})
    except PfibsimsError as exc:  # the library names its own argument ('d: ...', 'rotation: ...'): say which option
        raise type(exc)(f"--initial: {re.sub(r'^d: ', '', str(exc))}") from None


def _fuse(args: argparse.Namespace) -> int:
    from ..io import read_eds, read_sem, read_sims, save
    from ..pipeline import fuse

    if args.out.exists() and not args.overwrite:
        raise PfibsimsError(f"--out: expected a new path, found an existing {args.out}; pass --overwrite to replace it")
    common = {"slice_thickness": args.slice_thickness} if args.slice_thickness else {}
    paths = lambda v: v if len(v) > 1 else v[0]  # noqa: E731 - one path or a list/glob
    with _options("read_eds"):
        eds = read_eds(paths(args.eds), lines=args.lines, pixel_size=args.pixel_size, **common)
    with _options("read_sims"):
        sims = read_sims(paths(args.sims), pixel_size=args.sims_pixel_size, isotope=args.isotope, **common)
    with _options("read_sem"):
        sem = read_sem(paths(args.sem), pixel_size=args.pixel_size, **common) if args.sem else None
    initial = _initial(args.initial)
    with _scheduler(args.scheduler), warnings.catch_warnings():
        warnings.simplefilter("always", CoverageWarning)
        warnings.showwarning = _print_warning
        print("-- fuse: drift, registration, Lanczos resampling", flush=True)
        with _options("fuse"):
            vol = fuse(eds, sims, sem, drift=not args.no_drift, register=None if args.register == "none" else args.register,
                       initial=initial, min_coverage=args.min_coverage, strict=args.strict)
        print(f"-- save {args.out}", flush=True)
        with _options("save"):
            save(vol, args.out, overwrite=args.overwrite)
    print(f"wrote {args.out}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from ..io import open_dataset
    from .report import write_report

    vol = open_dataset(args.store)
    with _scheduler(args.scheduler):
        report = write_report(vol, args.outdir, channels=args.channels)
    print((args.outdir / "report.txt").read_text())
    print(f"wrote {args.outdir / 'report.json'} and {len(report.get('figures', {}) or {})} figures")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pfibsims`` console script; returns the exit code."""
    from .._engine.threads import cores
    from .._memory import limit_arenas

    limit_arenas(max(2, cores()))  # before the command's threads start: see limit_arenas
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        with _options(args.command):
            return {"demo": _demo, "fuse": _fuse, "report": _report}[args.command](args)
    except PfibsimsError as exc:
        print(f"pfibsims {args.command}: error: {exc}", file=sys.stderr)
        return 2


def run() -> None:
    """The ``pfibsims`` console script and ``python -m pfibsims``: :func:`main`, then the process ends.

    The exit handlers run (:mod:`atexit`) and the standard streams are flushed,
    then the process exits without the interpreter's teardown: the freeing,
    module by module, of the objects dask, xarray, numba and pint hold, which
    took ~1 s after the demo and which the OS reclaims at once. An exception
    other than :class:`~pfibsims.errors.PfibsimsError` (reported by :func:`main`)
    ends the process the usual way, with its traceback.
    """
    code = main()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
