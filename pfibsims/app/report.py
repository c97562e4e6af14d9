"""Measure a fused volume and write its figures and a report (``pfibsims report``, the demo).

The numbers come from the public steps (:mod:`pfibsims.correlate`,
:mod:`pfibsims.segment`); this module only gathers them, compares them with a
phantom's truth when it is given, and writes ``report.json`` / ``report.txt``.
"""

from __future__ import annotations

import contextlib
import json
import math
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .._engine.moments import sum_blocks
from .._engine.reduce import Plan, Reduction, evaluate
from .._xr import as_array, coord_nm
from ..correlate import channel_pair
from ..correlate.moments import pearson_plan
from ..errors import EstimationWarning, PfibsimsError
from ..grid import Grid
from ..quantification import CALIBRATION, CATHODE_STANDARDS, quantify
from ..segmentation import classify_phases, depletion_depth
from ..segmentation.boundaries import boundary_distance, boundary_profile_plan
from ..segmentation.naming import element_of
from ..segmentation.statistics import phase_statistics_plan
from ..transform import Affine

__all__ = ["drift_error", "measure", "registration_error", "statistics", "write_report"]

#: The LLZTO boundary profiles' range: 1 um into the particles, so the bulk level is reached.
_PROFILE_RANGE = ("-1 um", "1 um")

#: The profiles' signed distance is held in memory between the two passes when it takes at most this
#: (the paper's size: 24 MB); larger (a 700 um field's: 23 GB), each pass computes it again.
_HOLD_BYTES = 512 * 2**20


def registration_error(T: Affine, true: Affine, grid: Grid) -> dict[str, float]:
    """How far an estimated transform is from the true one, over a target field.

    Parameters
    ----------
    T, true : Affine
        Estimated and true transforms (fixed -> moving, nm).
    grid : Grid
        The fixed (target) field over which the error is measured.

    Returns
    -------
    dict
        ``translation_nm`` (displacement error at the field centre),
        ``max_error_nm`` (the largest over the field's corners and centre),
        ``rotation_deg`` and ``scale_rel`` (largest relative scale error).

    Examples
    --------
    >>> g = Grid((100, 100), "80 nm")
    >>> e = registration_error(Affine.translation((0, 10)), Affine.identity(), g)
    >>> e["translation_nm"], e["max_error_nm"]
    (10.0, 10.0)
    """
    plane = grid.select(("y", "x"))
    (ylo, yhi), (xlo, xhi) = plane.extent
    centre = np.array([(ylo + yhi) / 2, (xlo + xhi) / 2])
    points = np.array([centre, [ylo, xlo], [ylo, xhi], [yhi, xlo], [yhi, xhi]])
    T2, R2 = T.restrict(("y", "x")), true.restrict(("y", "x"))
    err = np.linalg.norm(T2(points) - R2(points), axis=1)
    d, t = T2.decompose(), R2.decompose()
    return {
        "translation_nm": float(err[0]),
        "max_error_nm": float(err.max()),
        "rotation_deg": float(abs(d["rotation"] - t["rotation"])),
        "scale_rel": float(max(abs(a / b - 1) for a, b in zip(d["scale"], t["scale"], strict=True))),
    }


def drift_error(estimated: Any, true: xr.DataArray) -> dict[str, float]:
    """RMS and largest per-slice error (nm) of an estimated drift against the truth.

    Examples
    --------
    >>> t = xr.DataArray([[0.0, 0.0], [3.0, 4.0]], dims=("z", "component"), coords={"component": ["y", "x"]})
    >>> drift_error(np.zeros((2, 2)), t)
    {'rms_nm': 3.5355339059327378, 'max_nm': 5.0}
    """
    est = np.asarray(estimated.transpose("z", "component").values if isinstance(estimated, xr.DataArray) else estimated)
    tru = true.transpose("z", "component").values
    err = np.linalg.norm(est - tru, axis=-1)
    return {"rms_nm": float(np.sqrt(np.mean(err**2))), "max_nm": float(err.max())}


def _paired_truth(true: xr.DataArray, vol: xr.Dataset) -> xr.DataArray:
    """The true drift of the SIMS slices ``fuse`` paired (``pfibsims:slices``: their depths are the EDS depths
    plus the pairs' offsets), found by depth; ``true`` itself when the pairs are its slices in order."""
    pairs = json.loads(vol.attrs.get("pfibsims:slices", "null") or "null")
    if not pairs or "z" not in true.coords or "z" not in vol.coords:
        return true
    ez = coord_nm(vol.coords["z"], "z").reshape(-1)
    depths = np.array([ez[a] + off for (a, _), off in zip(pairs["pairs"], pairs["offsets_nm"], strict=True)])
    tz = coord_nm(true.coords["z"], "z").reshape(-1)
    rows = np.abs(tz[None, :] - depths[:, None]).argmin(axis=1)
    if np.array_equal(rows, np.arange(true.sizes["z"])):
        return true
    return true.isel(z=rows)


def _held(x: xr.DataArray) -> xr.DataArray:
    """``x`` computed and held in memory when it fits in ``_HOLD_BYTES``, else left lazy (computed where read)."""
    return x.persist() if x.nbytes <= _HOLD_BYTES else x


def _labels(vol: xr.Dataset) -> xr.DataArray | None:
    """The volume's ``phase``, else a classification of its EDS channels (any sample), else None."""
    if "phase" in vol.data_vars:
        return vol["phase"]
    if any("line" in v.attrs for v in vol.data_vars.values()):
        return classify_phases(vol)
    return None


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _fit_depletion(profile: xr.Dataset, caught: list[str]) -> xr.Dataset:
    """The LLZTO depletion fit of a profile (1 um either side of the surface); the first 100 nm are left
    out of the fit because the SIMS probe (~80 nm) and the voxel mix the neighbouring phase into them.
    A doubtful fit is reported (in ``caught``), not hidden."""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always", EstimationWarning)
        fit = depletion_depth(profile, exclude="100 nm")
    caught.extend(str(x.message) for x in w)
    return fit


def _quantified(li: xr.DataArray, labels: xr.DataArray | None, truth: xr.Dataset | None) -> tuple[xr.DataArray, dict] | None:
    """Li in atomic percent (:func:`pfibsims.quantify`) with the cathode's standards, and what was assumed.

    The SIMS background and probe size from the phantom's truth when given,
    otherwise no background and no mixing correction (stated in the second
    item). None when the labels lack a standard phase or ``li`` is not a Li
    isotope (``Li6``, ``Li7``) in counts. Computes the calibration (one
    distance transform, one pass) and, when it fits in memory, the map.
    """
    names = labels.attrs.get("flag_meanings", "").split() if labels is not None else []
    if not set(CATHODE_STANDARDS) <= set(names) or li.attrs.get("units") != "counts":
        return None
    if element_of(str(li.name), li.attrs) != "Li":  # channels=("Zr_La", "Li6"): Zr counts are no Li concentration
        return None
    bg, psf = 0.0, None
    if truth is not None:
        bg = float(json.loads(truth.attrs.get("sims_counts", "{}")).get(str(li.name), {}).get("background", 0.0))
        psf = truth.attrs.get("sims_blur")
    q = _held(quantify(li, labels, background=bg, psf=psf))  # both passes of the statistics read it
    return q, {"background_counts": bg, "psf": psf, "standards": dict(CATHODE_STANDARDS)}


def _concentration(q: xr.DataArray, assumed: dict, stats: dict, truth: xr.Dataset | None, caught: list[str]) -> dict:
    """The report's ``li_percent``: per-phase at. % and the LLZTO depletion in at. %."""
    phases, cal = stats["quantified_phases"], json.loads(q.attrs[CALIBRATION])["phases"]
    out: dict[str, Any] = {
        "assumed": assumed,
        "phases": {p: {"mean": _finite(float(phases["mean"].sel(phase=p))),
                       "median": _finite(float(phases["median"].sel(phase=p))),
                       "relative_sensitivity": cal[p]["relative_sensitivity"]} for p in CATHODE_STANDARDS},
    }
    if "quantified_profile" in stats:
        fit = _fit_depletion(stats["quantified_profile"], caught)
        out["llzto_depletion"] = {"surface": _finite(float(fit["surface"])), "bulk": _finite(float(fit["bulk"])),
                                  "depth_nm": _finite(float(fit["depth"]))}
    if truth is not None and "li_percent" in truth.attrs:
        nominal = json.loads(truth.attrs["li_percent"])
        out["truth"] = {k: nominal[k] for k in ("LLZTO_bulk", "LLZTO_surface", "LCO")}
    return out


def _agreement_block(t: np.ndarray, lab: np.ndarray, *, pairs: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Per ``(true value, label value)`` pair: true voxels, labelled voxels and both (one block)."""
    t, lab = np.asarray(t), np.asarray(lab)
    out = np.empty((len(pairs), 3), dtype=np.int64)
    for k, (tv, lv) in enumerate(pairs):
        is_t, is_l = t == tv, lab == lv
        out[k] = is_t.sum(), is_l.sum(), (is_t & is_l).sum()
    return out


def _accuracy_plan(true: xr.DataArray, labels: xr.DataArray) -> Plan:
    """Per true phase, matched BY NAME with the labels: recall (the fraction of its voxels labelled so) and
    precision (the fraction of the voxels labelled so that are it); one pass, as a plan."""
    have = dict(zip(str(labels.attrs["flag_meanings"]).split(), (int(v) for v in np.atleast_1d(labels.attrs["flag_values"])),
                    strict=True))
    names = str(true.attrs["flag_meanings"]).split()
    values = [int(v) for v in np.atleast_1d(true.attrs["flag_values"])]
    pairs = tuple((v, have.get(n, -1)) for n, v in zip(names, values, strict=True))  # -1: a phase not labelled
    red = Reduction(_agreement_block, (as_array(true.data), as_array(labels.transpose(*true.dims).data)),
                    (len(pairs), 3), sum_blocks, np.int64, {"pairs": pairs})
    (counts,) = yield [red]
    return {
        "recall": {n: _finite(float(hit) / float(nt)) if int(nt) else None for (nt, _, hit), n in zip(counts, names, strict=True)},
        "precision": {n: _finite(float(hit) / float(nl)) if int(nl) else None
                      for (_, nl, hit), n in zip(counts, names, strict=True)},
    }


def _llzto_distance(labels: xr.DataArray | None) -> xr.DataArray | None:
    """The LLZTO signed distance of the profiles, computed once and held when it fits in memory (None without LLZTO)."""
    if labels is None or "LLZTO" not in labels.attrs.get("flag_meanings", "").split():
        return None
    dist = boundary_distance(labels, "LLZTO", distances=_PROFILE_RANGE)
    return _held(dist)


def _or_reason(plan: Plan) -> Plan:
    """``plan``, whose result is the PfibsimsError it raises when the data do not define it (Pearson r of a
    constant channel): the other statistics evaluated with it still come out."""
    try:
        return (yield from plan)
    except PfibsimsError as exc:
        return exc


def statistics(vol: xr.Dataset, a: str, b: str, *, labels: xr.DataArray | None = None,
               truth: xr.Dataset | None = None, quantified: xr.DataArray | None = None,
               distance: xr.DataArray | None = None) -> dict[str, Any]:
    """The report's statistics of a fused volume, evaluated together: two passes over the volume.

    Pearson r and covariance of ``a`` and ``b`` inside the SIMS ``coverage``;
    with ``labels``, per-phase statistics of ``a`` (inside the coverage), its
    profile across LLZTO surfaces (when the labels name LLZTO), the same two
    of the ``quantified`` Li map when given (:func:`pfibsims.quantify`, on
    the grid of ``a``) and, with the phantom's ``truth``, the phase accuracy.
    The profiles measure from ``distance``
    when given (the LLZTO signed distance of
    :func:`~pfibsims.segmentation.boundaries.boundary_distance` over the
    profiles' range, computed once beforehand: :func:`measure` does), else
    each pass computes it again. Every one is a plan of the one
    statistics engine (:func:`pfibsims._engine.reduce.evaluate`), so the
    first pass reads each chunk once for all of them (moments, ranges,
    counts) and the second once for the per-phase and per-distance
    histograms.

    Returns
    -------
    dict
        ``pearson`` (a :class:`~pfibsims.correlate.Correlation`, or the
        :class:`~pfibsims.errors.PfibsimsError` saying why r is undefined,
        e.g. a channel constant over the coverage), and when
        computed ``phases`` (Dataset), ``profile`` (Dataset),
        ``quantified_phases`` and ``quantified_profile`` (Datasets) and
        ``phase_accuracy`` (dict of ``recall`` and ``precision`` per true phase,
        phases matched by name).
    """
    mask = vol["coverage"] if "coverage" in vol.data_vars else None
    plans = {"pearson": _or_reason(pearson_plan(vol[a], vol[b], mask=mask))}
    if labels is not None:
        for key, x in (("", vol[a]), ("quantified_", quantified)):
            if x is None:
                continue
            plans[key + "phases"] = phase_statistics_plan(x.where(mask) if mask is not None else x, labels)
            if "LLZTO" in labels.attrs.get("flag_meanings", "").split():
                plans[key + "profile"] = boundary_profile_plan(x, labels, "LLZTO", mask=mask, distances=_PROFILE_RANGE,
                                                               distance=distance)
        if truth is not None and "phase" in truth:
            plans["phase_accuracy"] = _accuracy_plan(truth["phase"], labels)
    return dict(zip(plans, evaluate(*plans.values(), step="report statistics"), strict=True))


def measure(vol: xr.Dataset, *, channels: Any = None, truth: xr.Dataset | None = None) -> dict[str, Any]:
    """The paper's numbers for a fused volume of any sample, as a JSON-ready dict.

    Pearson r of the two ``channels`` with its confidence interval and the
    covariance (eq. 3) inside the SIMS coverage; per-phase statistics of the
    first channel (the phases of ``vol["phase"]``, else
    :func:`~pfibsims.segmentation.classify_phases` of the EDS channels, named
    by the cathode's table only when Zr, Co, Al and C are measured); with an
    LLZTO phase, the depletion depth of the first channel at LLZTO surfaces
    (:func:`~pfibsims.segmentation.depletion_depth` of the profile 1 um
    either side of the surface, the first 100 nm left out); when the
    labels name the cathode's standards (LLZTO, LCO) and the first channel
    is a Li isotope (``Li6``, ``Li7``) in counts, Li in atomic percent per
    phase and the LLZTO depletion in at. % (``li_percent``, :func:`pfibsims.quantify`); and, with the
    phantom's ``truth``, the registration and drift errors and each phase's
    recall (``phase_accuracy``) and precision, phases matched by name.
    Computes: the Li calibration (one distance transform and one pass) and
    the Li map, the LLZTO signed distance once (each held when it fits in
    memory), then the
    statistics together in two passes over the volume (:func:`statistics`).

    Parameters
    ----------
    vol : xarray.Dataset
        A fused volume (:func:`pfibsims.fuse`), optionally holding ``phase``.
    channels : (str, str), optional
        The channels to correlate; default the paper's ``Li6`` and ``Zr_La``
        when present, else a SIMS isotope and an EDS line
        (:func:`~pfibsims.correlate.channel_pair`).
    truth : xarray.Dataset, optional
        The phantom's truth (:func:`pfibsims.synthetic.cathode`).
    """
    a, b = channel_pair(vol, channels)
    labels = _labels(vol)
    quantified = _quantified(vol[a], labels, truth)
    stats = statistics(vol, a, b, labels=labels, truth=truth, quantified=quantified and quantified[0],
                       distance=_llzto_distance(labels))
    r = stats["pearson"]
    units = [str(vol[a].attrs.get("units", "1")), str(vol[b].attrs.get("units", "1"))]
    if isinstance(r, PfibsimsError):  # e.g. an element absent from the sample: the rest of the report stands
        pearson = {"a": a, "b": b, "r": None, "ci": [None, None], "p_value": None, "n": None, "covariance": None,
                   "units": units, "undefined": str(r)}
    else:
        pearson = {"a": a, "b": b, "r": r.r, "ci": [r.ci_low, r.ci_high], "p_value": r.p_value, "n": r.n,
                   "covariance": r.covariance, "units": units}
    out: dict[str, Any] = {"pearson": pearson}
    if "phases" in stats:
        phases = stats["phases"]
        out["phases"] = {
            str(p): {k: _finite(float(phases[k].sel(phase=p))) for k in ("fraction", "mean", "std", "median")}
            for p in phases.phase.values.tolist()
        }
    caught: list[str] = []
    if "profile" in stats:
        out["llzto_depletion_depth_nm"] = _finite(float(_fit_depletion(stats["profile"], caught)["depth"]))
    if quantified is not None:
        out["li_percent"] = _concentration(*quantified, stats, truth, caught)
    if "profile" in stats or quantified is not None:
        out["warnings"] = caught
    if "phase_accuracy" in stats:
        scores = stats["phase_accuracy"]
        out["phase_accuracy"], out["phase_precision"] = scores["recall"], scores["precision"]
    if truth is not None:
        grid = Grid.of(vol, dims=("y", "x"))
        if "pfibsims:affine" in vol.attrs:
            out["registration_error"] = registration_error(Affine.from_attrs(vol.attrs), Affine.from_attrs(truth.attrs), grid)
            out["registration_error"]["eds_pixel_nm"] = float(grid.spacing[-1])
        drift = json.loads(vol.attrs.get("pfibsims:drift", "null") or "null")
        if drift and drift.get("sims") is not None and "drift" in truth:
            est, tru = np.asarray(drift["sims"]), _paired_truth(truth["drift"], vol)
            if tru is not truth["drift"]:  # a subset of the slices: both relative to its first (neither gauge holds)
                est, tru = est - est[:1], tru - tru.isel(z=0)
            out["drift_error"] = drift_error(est, tru)
        if "depletion_depth" in truth.attrs:
            out["true_depletion_depth"] = truth.attrs["depletion_depth"]
    report = json.loads(vol.attrs.get("pfibsims:registration", "null") or "null")
    if report:
        out["registration"] = report
    return out


def sig(value: Any, units: str = "", digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits, with its units: the text report's one number format.

    Examples
    --------
    >>> sig(0.10592958935741242), sig(2345.678, "nm"), sig(None, "nm")
    ('0.106', '2.35e+03 nm', 'n/a')
    """
    if value is None or not isinstance(value, (int, float)) or value != value:
        return "n/a"
    text = f"{float(value):.{digits}g}"
    return f"{text} {units}".strip() if units and units != "1" else text


def _concentration_text(q: dict[str, Any]) -> list[str]:
    """The text lines of the report's ``li_percent``."""
    truth = q.get("truth", {})
    lines = ["Li concentration (one sensitivity factor per standard phase, pfibsims.quantify):"]
    for name, st in q["phases"].items():
        nominal = f" (phantom truth {sig(truth['LCO' if name == 'LCO' else 'LLZTO_bulk'], 'at. %')} nominal)" if truth else ""
        lines.append(f"  {name:8s} mean {sig(st['mean'], 'at. %')}, median {sig(st['median'], 'at. %')}, "
                     f"relative sensitivity {sig(st['relative_sensitivity'])}{nominal}")
    if "llzto_depletion" in q:
        d = q["llzto_depletion"]
        lines.append(f"  LLZTO surfaces: Li {sig(d['surface'], 'at. %')} -> {sig(d['bulk'], 'at. %')} over "
                     f"{sig(d['depth_nm'], 'nm')}"
                     + (f" (phantom truth {sig(truth['LLZTO_surface'], 'at. %')} -> {sig(truth['LLZTO_bulk'], 'at. %')})"
                        if truth else ""))
    return lines


def _text(report: dict[str, Any]) -> str:
    """The report as text, every number to 3 significant digits with its units."""
    lines = ["pfibsims report", ""]
    p = report["pearson"]
    ua, ub = p.get("units", ["1", "1"])
    lines.append(f"Pearson r({p['a']}, {p['b']}) = {sig(p['r'])}  [{sig(p['ci'][0])}, {sig(p['ci'][1])}]  n = {p['n']}")
    cov_units = " ".join(u for u in (ua, ub) if u != "1") if ua != ub else f"{ua}^2" if ua != "1" else ""
    lines.append(f"covariance (eq. 3) = {sig(p['covariance'], cov_units)}")
    if p.get("undefined"):
        lines.append(f"  (undefined: {p['undefined']})")
    if "llzto_depletion_depth_nm" in report:
        lines.append(f"{p['a']} depletion depth at LLZTO surfaces: {sig(report['llzto_depletion_depth_nm'], 'nm')}"
                     + (f" (phantom truth {report['true_depletion_depth']})" if "true_depletion_depth" in report else ""))
    for name, st in report.get("phases", {}).items():
        lines.append(f"  phase {name:8s} fraction {sig(st['fraction'])}, mean {sig(st['mean'], ua)}, "
                     f"median {sig(st['median'], ua)}")
    if "li_percent" in report:
        lines.extend(_concentration_text(report["li_percent"]))
    if "registration_error" in report:
        e = report["registration_error"]
        lines.append(
            f"registration error vs truth: {sig(e['translation_nm'], 'nm')} at the centre, {sig(e['max_error_nm'], 'nm')} "
            f"max (EDS pixel {sig(e['eds_pixel_nm'], 'nm')}), rotation {sig(e['rotation_deg'], 'deg')}, "
            f"scale {sig(100 * e['scale_rel'], '%')}"
        )
    if "drift_error" in report:
        e = report["drift_error"]
        lines.append(f"drift error vs truth: RMS {sig(e['rms_nm'], 'nm')}, max {sig(e['max_nm'], 'nm')}")
    for w in report.get("warnings", []):
        lines.append(f"warning: {w}")
    if "phase_accuracy" in report:
        lines.append("phase recall vs truth: " + ", ".join(f"{k} {sig(v)}" for k, v in report["phase_accuracy"].items()
                                                            if v is not None))
        lines.append("phase precision vs truth: " + ", ".join(f"{k} {sig(v)}" for k, v in report["phase_precision"].items()
                                                               if v is not None))
    if isinstance(report.get("volume_3d"), str):
        lines.append(f"3-D figure {report['volume_3d']}")
    return "\n".join(lines) + "\n"


def write_report(
    vol: xr.Dataset, outdir: str | Path, *, channels: Any = None, raw: Any = None, truth: xr.Dataset | None = None,
    figures: bool = True, stage: Callable[[str], AbstractContextManager] | None = None,
) -> dict[str, Any]:
    """Write ``report.json``, ``report.txt`` and (with the ``plot`` extra) the figures into ``outdir``.

    ``channels`` is the pair correlated and drawn (see :func:`measure`).
    Returns the report dict (see :func:`measure`), with ``"figures"``: the
    PNG paths written.  ``stage(name)``, when given, is entered around the
    two steps ("statistics and report", "figures"), e.g. to time them.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    stage = stage or (lambda name: contextlib.nullcontext())
    a, b = channel_pair(vol, channels)
    try:
        from ..plot import save_figures
        from ..plot.gallery import drawn
        from ..plot.scene import have_renderer, start_volume_3d
    except ImportError as exc:  # the plot extra is optional
        save_figures, missing = None, exc
    labels = scene = None
    try:
        with stage("statistics and report"):
            if figures and save_figures is not None and have_renderer():
                # the 3-D figure's child render starts first and runs on the core the statistics leave idle
                labels = _labels(vol)  # the figures draw the phases; they classify nothing themselves
                scene = start_volume_3d(vol[drawn(vol, a, b)], channel=a, labels=labels)
            report = measure(vol, channels=(a, b), truth=truth)
        if figures and save_figures is None:
            report["figures"] = f"not drawn: {missing}"
        elif figures:
            with stage("figures"):
                labels = _labels(vol) if labels is None else labels
                paths = save_figures(vol, outdir / "figures", raw=raw, truth=truth, labels=labels, a=a, b=b,
                                     render=scene if scene is not None else False)
                scene = None  # save_figures closed it
            report["figures"] = {k: str(v) for k, v in paths.items()}
            if not have_renderer():
                report["volume_3d"] = "not drawn: it needs PyVista, pip install 'pfibsims[render]'"
                print(f"figures/volume_3d.png skipped: {report['volume_3d']}", flush=True)
    finally:
        if scene is not None:  # the statistics failed: the render is not waited for
            scene.close()
    (outdir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (outdir / "report.txt").write_text(_text(report))
    return report
