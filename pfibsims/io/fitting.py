"""EDS element maps by fitting: net counts per X-ray line family, every pixel, lazily.

Each requested line (``"Co_La"``) is a *family* of Gaussian lines whose
energies and relative weights come from xraydb, on a local smooth
background; the counts of every family are found by linear least squares in
every pixel. Lines one detector resolution apart (Co L-alpha 776 eV and La
M-alpha 833 eV; Zr L-alpha 2042 eV and Pt M-alpha 2048 eV) are separated,
which a window integral (``method="window"``, :mod:`pfibsims.io.lines`)
cannot do.

The model, once per spectrum image:

* **Families.** ``X_Ka``, ``X_La``, ``X_Ma`` (an alpha line) stand for all
  xraydb lines of that shell of X (K; L1-L3; M1-M5) that the beam can excite
  (initial level's edge below the beam energy), except lines another
  requested name of X claims (``Zr_Lb`` takes the Lb lines from ``Zr_La``).
  Any other name (``Zr_Lb``, ``Fe_Ka1``) is the lines it names. A line's
  weight is its xraydb intensity (relative within its initial level) times
  the level's occupancy (2j + 1) times its fluorescence yield
  (``xraydb.fluor_yield``; a yield the tables give as 0 takes the family's
  largest); lines under 1 % of the strongest are dropped. This puts Co
  L-beta at about 0.3 of L-alpha and Zr L-beta at about 0.5, as measured
  spectra show. The map is the family's total net counts.
* **Shape.** A Gaussian integrated over each channel, FWHM from the
  Fano/noise model :func:`~pfibsims.io.lines.detector_fwhm` (Mn Ka
  resolution from the file when it records one, else ``fwhm_mnka``).
* **Fit channels and background.** Channels within 3 FWHM of a modelled
  line (above the noise peak, ~120 eV); overlapping ranges form a cluster,
  and each cluster has its own piecewise-linear background (hat functions
  with knots about 3 FWHM apart: smooth on the scale of a line).
  Unmodelled lines far from the requested ones thus do not bias the fit;
  elements with lines *inside* a cluster must be requested too.
* **Solve.** With ``A`` the (channels x unknowns) design matrix,
  ``P = (A^T A)^-1 A^T`` is computed once; each chunk of spectra is one
  product ``Y P^T``, compiled, reading the counts in place, each line only
  over the fit channels of its own cluster (its row of ``P`` is zero
  elsewhere to far below rounding). Pixels where a line comes out negative
  are solved again with the lines constrained non-negative (on the lines'
  normal equations with the background eliminated, the background stays
  free), exactly: per independent block of lines, the few active sets the
  map's phases share are remembered with their inverses and checked by the
  optimality (KKT) conditions; a pixel none of them solves runs
  Lawson-Hanson (:mod:`pfibsims.io._fitkernels`). Only those pixels pay for
  it. A pixel with a NaN or infinite count in its fit channels is NaN.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
from scipy.special import ndtr

from .._engine.numba import compiled
from ..errors import DataModelError, PfibsimsError
from ._fitkernels import nnls_rows, nonneg_rows, project_rows
from .lines import _parse, canonical_lines, detector_fwhm, integrate_lines, line_energy

__all__ = ["LineFamily", "fit_lines", "line_family", "spectrum_maps"]

_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))  # FWHM -> sigma
_OCCUPANCY = {"K": 2, "L1": 2, "L2": 2, "L3": 4, "M1": 2, "M2": 2, "M3": 4, "M4": 4, "M5": 6, "M4,5": 10}
_METHODS = ("fit", "window")
_NEGLIGIBLE = 1e-30  # P weights below this fraction of a line's largest are zero to float64 rounding


@dataclass(frozen=True)
class LineFamily:
    """The xraydb lines one requested name stands for: energies (eV) and weights (sum 1)."""

    name: str
    labels: tuple[str, ...]
    energies: tuple[float, ...]
    weights: tuple[float, ...]


def _yield(element: str, level: str) -> float:
    import xraydb

    try:
        return float(xraydb.fluor_yield(element, level.split(",")[0] if level != "M4,5" else "M5", level[0], 1e6)[0])
    except Exception:
        return 0.0


def line_family(name: str, *, beam_energy_ev: float | None = None, claimed: Sequence[str] = ()) -> LineFamily:
    """The lines and weights one requested name stands for (see the module docstring).

    Parameters
    ----------
    name : str
        Canonical line name, ``"Co_La"``.
    beam_energy_ev : float, optional
        Beam energy in eV: lines whose initial level cannot be ionised are left out.
    claimed : list of str
        Other requested names of the same element (their lines are theirs).

    Raises
    ------
    DataModelError
        When no line of the family can be excited at the beam energy.

    Examples
    --------
    >>> fam = line_family("Co_La", beam_energy_ev=5000)
    >>> fam.labels[:2], round(sum(fam.weights), 6)
    (('La1', 'Lb1'), 1.0)
    """
    return _family(name, None if beam_energy_ev is None else float(beam_energy_ev), tuple(claimed))


@functools.lru_cache(maxsize=256)
def _family(name: str, beam_energy_ev: float | None, claimed: tuple[str, ...]) -> LineFamily:
    """:func:`line_family`, remembered (xraydb's tables are constant; a slice series asks for the same lines)."""
    import xraydb

    line_energy(name)  # validates element and line
    element, line = _parse(name)
    table = xraydb.xray_lines(element)
    edges = xraydb.xray_edges(element)
    if len(line) == 2 and line[1] == "a":
        others = [_parse(c)[1] for c in claimed if c != name]
        chosen = {k: v for k, v in table.items() if k[0] == line[0] and not any(re.fullmatch(rf"{o}[\d,]*", k) for o in others)}
    elif line in table:
        chosen = {line: table[line]}
    else:
        chosen = {k: v for k, v in table.items() if re.fullmatch(rf"{line}[\d,]*", k)}
    if beam_energy_ev is not None:
        chosen = {k: v for k, v in chosen.items() if edges.get(v.initial_level.split(",")[0], edges.get("M5")).energy < beam_energy_ev}
        if not chosen:
            raise DataModelError(
                f"lines: expected lines the beam can excite, got {name} whose levels lie above the beam energy "
                f"({beam_energy_ev / 1000:.4g} kV); pick another line (e.g. an L or M line)"
            )
    levels = {v.initial_level for v in chosen.values()}
    omega = {lev: _yield(element, lev) for lev in levels}
    best = max(omega.values()) if omega else 0.0
    omega = {lev: (w if w > 0 else (best if best > 0 else 1.0)) for lev, w in omega.items()}
    w = {k: v.intensity * _OCCUPANCY.get(v.initial_level, 2) * omega[v.initial_level] for k, v in chosen.items()}
    top = max(w.values())
    keep = sorted((k for k in w if w[k] >= 0.01 * top), key=lambda k: -w[k])
    total = sum(w[k] for k in keep)
    return LineFamily(name, tuple(keep), tuple(float(chosen[k].energy) for k in keep), tuple(w[k] / total for k in keep))


def _design(energy: np.ndarray, families: list[LineFamily], fwhm_mnka: Any, where: str) -> tuple[np.ndarray, np.ndarray, list[tuple[float, float]]]:
    """Fit channel indices, design matrix (channels x (lines + background hats)) and the clusters' ranges."""
    step = float(np.median(np.diff(energy))) if energy.size > 1 else 1.0
    at = [0.0, *(e for fam in families for e in fam.energies)]
    fw = dict(zip(at, detector_fwhm(np.array(at), fwhm_mnka=fwhm_mnka).tolist(), strict=True))  # one parse
    low = max(float(energy[0]) - step / 2, 2.5 * fw[0.0])
    high = float(energy[-1]) + step / 2
    spans = []
    for fam in families:
        for e, wt in zip(fam.energies, fam.weights, strict=True):
            if wt >= 0.05 * max(fam.weights):
                _check_width(fw[e], e, fam.name, step, fwhm_mnka, where)
                spans.append((e - 3 * fw[e], e + 3 * fw[e]))
        e0 = fam.energies[0]
        if not low <= e0 <= high:
            raise DataModelError(
                f"lines: expected {fam.name} ({e0:.0f} eV) inside the energy range of {where} "
                f"({low:.0f}-{high:.0f} eV, above the noise peak: 2.5 FWHM at 0 eV with fwhm_mnka={fwhm_mnka!r})"
            )
    spans.sort()
    clusters: list[list[float]] = []
    for lo, hi in spans:
        if clusters and lo <= clusters[-1][1]:
            clusters[-1][1] = max(clusters[-1][1], hi)
        else:
            clusters.append([lo, hi])
    clusters = [[max(lo, low), min(hi, high)] for lo, hi in clusters]
    member = [(energy >= lo) & (energy <= hi) for lo, hi in clusters]
    idx = np.nonzero(np.any(member, axis=0))[0]
    e = energy[idx]
    cols = []
    for fam in families:
        col = np.zeros(e.size)
        for el, wt in zip(fam.energies, fam.weights, strict=True):
            s = fw[el] * _SIGMA
            col += wt * (ndtr((e + step / 2 - el) / s) - ndtr((e - step / 2 - el) / s))
        cols.append(col)
    mid = detector_fwhm(np.array([(lo + hi) / 2 for lo, hi in clusters]), fwhm_mnka=fwhm_mnka).tolist()
    for (lo, hi), m, f in zip(clusters, member, mid, strict=True):
        # piecewise-linear background: hat functions, knots about 3 FWHM apart
        inside = m[idx].astype(float)
        n = max(1, int(round((hi - lo) / (3.0 * f))))
        d = (hi - lo) / n
        for kn in np.linspace(lo, hi, n + 1):
            cols.append(inside * np.clip(1.0 - np.abs(e - kn) / d, 0.0, None))
    return idx, np.stack(cols, axis=1), [(lo, hi) for lo, hi in clusters]


def _check_width(fwhm: float, energy: float, line: str, step: float, fwhm_mnka: Any, where: str) -> None:
    """A peak must span a channel: narrower, the background's knots (3 FWHM apart) fall between channels
    and the normal equations are singular."""
    if not fwhm >= step:
        raise PfibsimsError(
            f"fwhm_mnka: expected the detector resolution at Mn Ka (typically 120-140 eV for an SDD), got {fwhm_mnka!r}, "
            f"which makes {line} at {energy:.0f} eV {fwhm:.3g} eV wide, narrower than one channel ({step:.3g} eV) of {where}"
        )


def _solve(G: np.ndarray, B: np.ndarray, names: list[str], fwhm_mnka: Any, where: str) -> np.ndarray:
    """``G^-1 B``; a singular ``G`` (lines no channel tells apart) is an error naming the lines and ``fwhm_mnka``."""
    try:
        return np.linalg.solve(G, B)
    except np.linalg.LinAlgError:
        raise PfibsimsError(
            f"lines: expected lines the channels of {where} can tell apart, got {names} with fwhm_mnka={fwhm_mnka!r}: "
            "their peaks and the background are not independent (lines in one channel, or peaks too narrow)"
        ) from None


def _segments(Pk: np.ndarray, idx: np.ndarray, channels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P on the spectrum's channels, and the ranges of fit channels each line reads (lines, ranges; empty: lo == hi).

    A line's row is zero outside its own cluster up to Gaussian tails of
    ~1e-60 (relative), whose products with counts lie far below float64
    rounding: each line reads the fit channels from its first to its last
    weight above ``_NEGLIGIBLE`` of its largest.
    """
    Pc = np.zeros((Pk.shape[0], channels))
    Pc[:, idx] = Pk
    big = np.abs(Pc) > _NEGLIGIBLE * np.abs(Pc).max(axis=1, keepdims=True)
    first = np.argmax(big, axis=1)[:, None]
    last = channels - np.argmax(big[:, ::-1], axis=1)[:, None]
    brk = np.nonzero(np.diff(idx) != 1)[0]
    lo = np.r_[idx[0], idx[brk + 1]][None, :]
    hi = np.r_[idx[brk] + 1, idx[-1] + 1][None, :]
    return Pc, np.clip(lo, first, last).astype(np.int64), np.clip(hi, first, last).astype(np.int64)


def _blocks(Gr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The independent blocks of the lines' normal matrix: lines (blocks, m; -1 pads) and matrices (identity pads).

    Lines in different clusters couple only through Gaussian tails far below
    rounding (``_NEGLIGIBLE`` of the diagonal), so their NNLS are independent.
    """
    from scipy.sparse.csgraph import connected_components

    d = np.sqrt(np.diag(Gr))
    _, label = connected_components(np.abs(Gr) > _NEGLIGIBLE * np.outer(d, d), directed=False)
    members = [np.nonzero(label == g)[0] for g in range(label.max() + 1)]
    m = max(len(g) for g in members)
    groups = np.full((len(members), m), -1, dtype=np.int64)
    Grb = np.tile(np.eye(m), (len(members), 1, 1))
    for g, lines in enumerate(members):
        groups[g, : lines.size] = lines
        Grb[g, : lines.size, : lines.size] = Gr[np.ix_(lines, lines)]
    return groups, Grb


def _fit_block(block: np.ndarray, idx: np.ndarray, Pk: np.ndarray, Gr: np.ndarray, nonneg: bool) -> np.ndarray:
    """(..., channels) counts -> (..., lines) net counts: one projection, NNLS on the pixels that need it.

    Compiled (:mod:`pfibsims.io._fitkernels`): one pass over the pixels
    reading the counts in place, each line over its own channels, then one
    over the pixels with a negative line (cached active sets). Its twin
    (numba switch off): the dense product ``Y[:, idx] @ Pk^T`` and
    Lawson-Hanson on the whole problem of every pixel with a negative line.
    """
    lead = block.shape[:-1]
    flat = np.ascontiguousarray(block.reshape(-1, block.shape[-1]))
    if compiled():  # the numba switch (pfibsims._engine.numba)
        X = project_rows(flat, *_segments(Pk, idx, flat.shape[1]))
        if nonneg:
            nonneg_rows(X, *_blocks(Gr))
    else:
        X = np.take(flat, idx, axis=1).astype(np.float64) @ Pk.T
        X[~np.isfinite(X).all(axis=1)] = np.nan
        rows = np.nonzero((X < 0).any(axis=1))[0]
        if nonneg and rows.size:
            getattr(nnls_rows, "py_func", nnls_rows)(Gr, X, rows.astype(np.int64))
    return X.reshape(*lead, Pk.shape[0])


def fit_lines(
    spectra: Any,
    energy_ev: np.ndarray,
    lines: Sequence[str],
    *,
    fwhm_mnka: Any = "130 eV",
    beam_energy_ev: float | None = None,
    nonneg: bool = True,
    where: str = "spectrum image",
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Net counts per line family in every pixel, by linear least squares (see the module docstring).

    Parameters
    ----------
    spectra : array (..., channel)
        Counts, numpy or dask (stays lazy: one task per chunk).
    energy_ev : 1-D array
        Channel centres in eV (evenly spaced).
    lines : list of str
        Line names (``"Co_La"``); every element with lines near them must be listed.
    fwhm_mnka : energy
        Detector FWHM at Mn Ka.
    beam_energy_ev : float, optional
        Lines the beam cannot excite are left out of each family.
    nonneg : bool
        Constrain the line counts to be non-negative (on the pixels where
        the unconstrained solution is negative).
    where : str
        Named in errors.

    Returns
    -------
    maps, attrs : dict, dict
        Line name to its float64 map of net counts, and each map's attrs
        (family lines and weights, fit range, resolution).

    Examples
    --------
    1000 counts of Al K (its xraydb lines, 10 eV channels) on 5 counts a channel:

    >>> e = np.arange(0.0, 4000.0, 10.0)
    >>> edges = np.r_[e - 5.0, e[-1] + 5.0]
    >>> fam = line_family("Al_Ka")
    >>> spec = 5.0 + sum(1000 * w * np.diff(ndtr((edges - c) / (detector_fwhm(c) / 2.3548)))
    ...                  for c, w in zip(fam.energies, fam.weights))
    >>> maps, _ = fit_lines(spec[None, None, :], e, ["Al_Ka"])
    >>> round(float(maps["Al_Ka"][0, 0]))
    1000
    """
    names = canonical_lines(lines) or []
    if not names:
        raise DataModelError(f"lines: expected at least one line to fit from {where}, got {lines!r}")
    energy = np.asarray(energy_ev, dtype=float)
    by_el: dict[str, list[str]] = {}
    for n in names:
        by_el.setdefault(_parse(n)[0], []).append(n)
    families = [line_family(n, beam_energy_ev=beam_energy_ev, claimed=by_el[_parse(n)[0]]) for n in names]
    idx, A, clusters = _design(energy, families, fwhm_mnka, where)
    G = A.T @ A
    P = _solve(G, A.T, names, fwhm_mnka, where)
    k = len(names)
    # background eliminated: the lines' normal equations are the Schur complement of the background block
    Gr = G[:k, :k] - G[:k, k:] @ _solve(G[k:, k:], G[k:, :k], names, fwhm_mnka, where)
    Pk = np.ascontiguousarray(P[:k])
    if isinstance(spectra, da.Array):
        cube = spectra[..., int(idx[0]) : int(idx[-1]) + 1].rechunk({spectra.ndim - 1: -1})
        out = cube.map_blocks(
            _fit_block, idx - idx[0], Pk, Gr, nonneg, dtype=np.float64,
            chunks=(*cube.chunks[:-1], (k,)), name="fit-lines-" + da.core.tokenize(cube.name, P, nonneg),
        )
    else:
        out = _fit_block(np.asarray(spectra), idx, Pk, Gr, nonneg)
    fwhm0 = detector_fwhm(5898.7, fwhm_mnka=fwhm_mnka)
    maps = {n: out[..., i] for i, n in enumerate(names)}
    attrs = {
        fam.name: {
            "line_energy": f"{line_energy(fam.name):.6g} eV",
            "method": "fit",
            "family_lines": list(fam.labels),
            "family_weights": [round(w, 6) for w in fam.weights],
            "fit_range": next([f"{lo:.6g} eV", f"{hi:.6g} eV"] for lo, hi in clusters if lo <= fam.energies[0] <= hi),
            "fwhm_mnka": f"{fwhm0:.6g} eV",
            "integration": "net counts of the line family (Gaussian least squares, local piecewise-linear background)",
        }
        for fam in families
    }
    return maps, attrs


def spectrum_maps(
    spectra: Any,
    energy_ev: np.ndarray,
    lines: Sequence[str],
    *,
    method: str = "fit",
    window: Any = 2.0,
    fwhm_mnka: Any = "130 eV",
    beam_energy_ev: float | None = None,
    where: str = "spectrum image",
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Line maps from a spectrum image: ``method="fit"`` (default) or ``"window"`` integration.

    Raises
    ------
    DataModelError
        On an unknown method, unknown lines, or lines outside the spectrum.
    """
    if method not in _METHODS:
        raise DataModelError(f"method: expected one of {list(_METHODS)}, got {method!r}")
    names = canonical_lines(lines) or []
    if method == "window":
        maps, attrs = integrate_lines(spectra, energy_ev, names, window=window, fwhm_mnka=fwhm_mnka, where=where)
        for a in attrs.values():
            a["method"] = "window"
        return maps, attrs
    return fit_lines(spectra, energy_ev, names, fwhm_mnka=fwhm_mnka, beam_energy_ev=beam_energy_ev, where=where)
