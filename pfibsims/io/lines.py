"""X-ray line energies (from xraydb) and integration of spectrum images into line maps.

A line is named as in the data model, ``<Element>_<Line>``: ``"Zr_La"``,
``"Co_La"``, ``"Al_Ka"``, ``"C_Ka"``. Its energy comes from xraydb (Elam
et al. tables), never from a hand-typed table:

* a family name (``Ka``, ``Kb``, ``La``, ``Lb``, ``Ma`` ...) is the
  intensity-weighted mean energy of xraydb's lines of that family (``Ka`` =
  Ka1, Ka2, Ka3; ``La`` = La1, La2), because an EDS detector cannot resolve
  them;
* an exact xraydb name (``Ka1``, ``La1``, ``Lb3``) is that one line.

The integration window is centred on the line energy and, by default, is
``window=2`` detector FWHMs wide (+-1 FWHM, as HyperSpy's
``get_lines_intensity`` does), the FWHM at energy ``E`` from the usual
Fano/noise model scaled from Mn Ka (5898.7 eV)::

    FWHM(E) = sqrt(FWHM_MnKa**2 + 2.5 * (E - 5898.7 eV) * 1 eV)

with ``fwhm_mnka="130 eV"`` (a typical SDD). ``window`` may instead be an
energy (``"150 eV"``): a fixed width for every line.

One naming: a bare family letter is the alpha line of that family, so JEOL's
``"Fe K"`` map and a user's ``"Fe_K"`` are both ``Fe_Ka`` in the data model
(:func:`canonical_line`). Windows that overlap each other raise a
:class:`LineOverlapWarning` naming the lines (their maps mix counts): fit
instead (:mod:`pfibsims.io.fitting`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import dask.array as da
import numpy as np

from ..errors import DataModelError, UnitsError
from ..units import parse_quantity

__all__ = ["LineOverlapWarning", "canonical_line", "canonical_lines", "detector_fwhm", "integrate_lines", "line_energy", "line_window"]

_LINE = re.compile(r"^(?P<element>[A-Z][a-z]?)_(?P<line>[KLMN][a-z]*\d*)$")
_MNKA_EV = 5898.7


class LineOverlapWarning(UserWarning):
    """Integration windows of two requested lines overlap: their maps share counts."""


def _parse(name: str) -> tuple[str, str]:
    m = _LINE.match(name) if isinstance(name, str) else None
    if m is None:
        raise DataModelError(f"lines: expected names such as 'Zr_La' or 'Al_Ka' (element, '_', line), got {name!r}")
    return m["element"], m["line"]


def canonical_line(name: str) -> str:
    """The data model's name of a line: a bare family letter means its alpha line.

    Examples
    --------
    >>> canonical_line("Fe_K"), canonical_line("Fe_Ka"), canonical_line("Zr_La1")
    ('Fe_Ka', 'Fe_Ka', 'Zr_La1')
    """
    element, line = _parse(name)
    return f"{element}_{line}a" if len(line) == 1 else name


def canonical_lines(lines: Any) -> list[str] | None:
    """``lines=`` as a list of canonical names (None stays None); a repeated line is an error."""
    if lines is None:
        return None
    if not isinstance(lines, Iterable):  # a number, a bool: not a list of names
        raise DataModelError(f"lines: expected a list of line names such as ['Zr_La', 'Al_Ka'], got {lines!r:.60}")
    names = [canonical_line(n) for n in ([lines] if isinstance(lines, str) else list(lines))]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DataModelError(f"lines: expected each line once (Fe_K and Fe_Ka are one line), got {twice} twice")
    return names


def line_energy(name: str) -> float:
    """Energy of an X-ray line in eV, from xraydb.

    Parameters
    ----------
    name : str
        ``"<Element>_<Line>"``, e.g. ``"Zr_La"`` (La1/La2 intensity-weighted)
        or ``"Zr_La1"`` (one line).

    Raises
    ------
    DataModelError
        When the element or the line is unknown to xraydb.

    Examples
    --------
    >>> round(line_energy("Al_Ka"), 1)
    1486.4
    >>> line_energy("Zr_La1")
    2044.2
    """
    import xraydb

    element, line = _parse(name)
    try:
        table = xraydb.xray_lines(element)
    except Exception:
        raise DataModelError(f"lines: expected a chemical element in {name!r}, got {element!r}") from None
    if line in table:
        return float(table[line].energy)
    family = {k: v for k, v in table.items() if re.fullmatch(rf"{line}\d*", k)}
    if not family:
        raise DataModelError(
            f"lines: expected a line of {element} known to xraydb ({', '.join(sorted(table))}), got {line!r} in {name!r}"
        )
    weights = np.array([v.intensity for v in family.values()], dtype=float)
    energies = np.array([v.energy for v in family.values()], dtype=float)
    return float(np.sum(weights * energies) / np.sum(weights))


def detector_fwhm(energy_ev: Any, *, fwhm_mnka: Any = "130 eV") -> Any:
    """Detector FWHM in eV at ``energy_ev`` (Fano/noise model scaled from Mn Ka).

    ``energy_ev`` is a number (a float comes back) or an array of them (an
    array comes back; ``fwhm_mnka`` is parsed once).

    Examples
    --------
    >>> round(detector_fwhm(5898.7), 1)
    130.0
    >>> round(detector_fwhm(277.0), 1)
    53.3
    >>> detector_fwhm(np.array([277.0, 5898.7])).round(1)
    array([ 53.3, 130. ])
    """
    f0 = parse_quantity(fwhm_mnka, "eV", name="fwhm_mnka").magnitude
    if f0 <= 0:
        raise UnitsError(f"fwhm_mnka: expected a positive energy such as '130 eV', got {fwhm_mnka!r}")
    fw = np.sqrt(np.maximum(f0**2 + 2.5 * (np.asarray(energy_ev, dtype=float) - _MNKA_EV), 1.0))
    return float(fw) if fw.ndim == 0 else fw


def line_window(name: str, *, window: Any = 2.0, fwhm_mnka: Any = "130 eV") -> tuple[float, float]:
    """The integration window ``(low, high)`` in eV around a line.

    Parameters
    ----------
    name : str
        Line name, ``"Zr_La"``.
    window : float or energy
        A number: the width in detector FWHMs (default 2, i.e. +-1 FWHM);
        an energy (``"150 eV"``): a fixed width.
    fwhm_mnka : energy
        The detector's resolution at Mn Ka.

    Examples
    --------
    >>> lo, hi = line_window("Al_Ka", window="100 eV")
    >>> round(float(hi - lo), 6)
    100.0
    """
    e = line_energy(name)
    if isinstance(window, str) or hasattr(window, "units"):
        width = float(parse_quantity(window, "eV", name="window").magnitude)
    elif isinstance(window, (int, float)) and not isinstance(window, bool):
        width = float(window) * detector_fwhm(e, fwhm_mnka=fwhm_mnka)
    else:
        raise UnitsError(f"window: expected a number of FWHMs (e.g. 2) or an energy such as '150 eV', got {window!r}")
    if not width > 0:
        raise UnitsError(f"window: expected a positive width, got {window!r}")
    return e - width / 2, e + width / 2


def integrate_lines(
    spectra: Any,
    energy_ev: np.ndarray,
    lines: Sequence[str],
    *,
    window: Any = 2.0,
    fwhm_mnka: Any = "130 eV",
    where: str = "spectrum image",
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Sum the channels of a spectrum image inside each line's window.

    Parameters
    ----------
    spectra : array (..., channel)
        numpy or dask; the last axis is energy. Stays lazy when dask.
    energy_ev : 1-D array
        Energy of each channel's centre in eV.
    lines : list of str
        Line names (``"Zr_La"``).
    window, fwhm_mnka
        See :func:`line_window`.
    where : str
        Named in errors (the file path).

    Returns
    -------
    maps, attrs : dict, dict
        Line name to the summed counts (same lazyness as ``spectra``), and
        the attrs of each map: ``line_energy`` and the window, in eV, as
        strings.

    Raises
    ------
    DataModelError
        When a window lies outside the spectrum's energy range.

    Examples
    --------
    >>> e = np.arange(0, 4000, 10.0)
    >>> spec = np.ones((2, 3, e.size))
    >>> maps, attrs = integrate_lines(spec, e, ["Al_Ka"], window="100 eV")
    >>> float(maps["Al_Ka"][0, 0]), attrs["Al_Ka"]["line_energy"]
    (10.0, '1486.36 eV')
    """
    if isinstance(lines, str):
        lines = [lines]
    energy_ev = np.asarray(energy_ev, dtype=float)
    maps: dict[str, Any] = {}
    attrs: dict[str, dict[str, Any]] = {}
    lo_e, hi_e = energy_ev[0], energy_ev[-1]
    windows = {name: line_window(name, window=window, fwhm_mnka=fwhm_mnka) for name in lines}
    _warn_overlaps(windows, where)
    for name in lines:
        lo, hi = windows[name]
        sel = np.nonzero((energy_ev >= lo) & (energy_ev <= hi))[0]
        if sel.size == 0:
            raise DataModelError(
                f"lines: expected {name} ({lo:.0f}-{hi:.0f} eV) inside the energy range of {where} "
                f"({lo_e:.0f}-{hi_e:.0f} eV), found no channel in its window"
            )
        part = spectra[..., sel[0] : sel[-1] + 1]
        acc = np.int64 if np.dtype(spectra.dtype).kind in "biu" else np.float64
        maps[name] = part.sum(axis=-1, dtype=acc) if isinstance(part, da.Array) else np.sum(part, axis=-1, dtype=acc)
        attrs[name] = {
            "line_energy": f"{line_energy(name):.6g} eV",
            "window": [f"{energy_ev[sel[0]]:.6g} eV", f"{energy_ev[sel[-1]]:.6g} eV"],
            "integration": "sum of the channels whose centre lies in the window",
        }
    return maps, attrs


def _warn_overlaps(windows: dict[str, tuple[float, float]], where: str) -> None:
    """Warn (LineOverlapWarning) listing every pair of windows that share energies."""
    names = sorted(windows, key=lambda n: windows[n][0])
    pairs = [
        f"{a} ({windows[a][0]:.0f}-{windows[a][1]:.0f} eV) and {b} ({windows[b][0]:.0f}-{windows[b][1]:.0f} eV)"
        for i, a in enumerate(names) for b in names[i + 1:] if windows[b][0] < windows[a][1]
    ]
    if pairs:
        warnings.warn(
            f"{where}: the integration windows of {'; '.join(pairs)} overlap, so their maps share counts; "
            "use method='fit' to separate the lines",
            LineOverlapWarning, stacklevel=4,
        )
