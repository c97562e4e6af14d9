"""Names for classes of element channels: phase tables, relative levels, dominant channels.

A class (a k-means centroid of smoothed counts, see :func:`~pfibsims.segmentation.classify_phases`)
is described by its *level* in each element: where its mean counts lie between
the poorest and the richest class of that element, 0 to 1. A phase table says
which levels make a phase::

    {"LLZTO": {"Zr": "high"}, "SP": {"C": "high", "Zr": "absent"}, ...}

with ``"high"`` = level 0.5 to 1, ``"low"`` = 0 to 0.5, ``"absent"`` = 0 to
0.2, or an explicit ``(low, high)`` range. A class takes the phase whose
ranges it satisfies with the largest margin (the smallest distance from its
levels to the edges of the ranges, over the elements the phase names);
a class that satisfies no phase is ``"unassigned"``, never forced into one.
Without a table, a class is named by its dominant elements: those at level
0.5 or more, in channel order (``"Fe+S"``); a class rich in none is unassigned.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import PfibsimsError

__all__ = ["CATHODE_PHASES", "LEVELS", "NOISE_SPAN", "UNASSIGNED", "check_table", "class_levels", "dominant_names",
           "element_of", "name_classes"]

#: The label of voxels whose class matches no phase (and of non-finite voxels).
UNASSIGNED = "unassigned"

#: Named ranges of a class's level in an element (0: the poorest class, 1: the richest).
LEVELS = {"high": (0.5, 1.0), "low": (0.0, 0.5), "absent": (0.0, 0.2)}

#: The paper's cathode (Sun et al., Micron 2024): LLZTO (Zr), LCO (Co), Al2O3 (Al), Super P
#: carbon resolved as agglomerates (C with no Zr or Co), and the matrix between resolved
#: particles, a fine mixture poor in every element.
CATHODE_PHASES: dict[str, dict[str, Any]] = {
    "LLZTO": {"Zr": "high"},
    "LCO": {"Co": "high"},
    "Al2O3": {"Al": "high", "Co": "low"},
    "SP": {"C": "high", "Zr": "absent", "Co": "absent"},
    "matrix": {"Zr": "low", "Co": "low", "Al": "low", "C": "low"},
}

_ELEMENT = re.compile(r"^([A-Z][a-z]?)(?:_|$|\d)")


def element_of(name: str, attrs: Mapping[str, Any] | None = None) -> str:
    """The element a channel measures: its ``element`` attr, else the name's leading symbol (``Zr_La`` -> ``Zr``).

    Examples
    --------
    >>> element_of("Fe_Ka"), element_of("C_K"), element_of("Li6"), element_of("BSE")
    ('Fe', 'C', 'Li', 'BSE')
    """
    if attrs and isinstance(attrs.get("element"), str) and attrs["element"]:
        return attrs["element"]
    m = _ELEMENT.match(name)
    return m.group(1) if m else name


def _range(value: Any, where: str) -> tuple[float, float]:
    if isinstance(value, str):
        if value not in LEVELS:
            raise PfibsimsError(f"phases{where}: expected one of {sorted(LEVELS)} or a (low, high) range, got {value!r}")
        return LEVELS[value]
    ok = (isinstance(value, Sequence) and len(value) == 2
          and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value))
    if not ok or not 0 <= value[0] < value[1] <= 1:
        raise PfibsimsError(f"phases{where}: expected one of {sorted(LEVELS)} or a (low, high) range within [0, 1], "
                            f"got {value!r}")
    return float(value[0]), float(value[1])


def check_table(table: Any) -> dict[str, dict[str, tuple[float, float]]]:
    """A phase table ``{phase: {element: level}}`` with every level as a ``(low, high)`` range.

    Raises
    ------
    PfibsimsError
        On a table that is not such a mapping, a phase name that is empty, has a
        space or is ``"unassigned"``, or a level that is not a name of
        :data:`LEVELS` nor a range within [0, 1].

    Examples
    --------
    >>> check_table({"pyrite": {"Fe": "high", "S": (0.4, 1.0)}})
    {'pyrite': {'Fe': (0.5, 1.0), 'S': (0.4, 1.0)}}
    """
    if not isinstance(table, Mapping) or not table:
        raise PfibsimsError(f"phases: expected a table {{phase: {{element: 'high' | 'low' | 'absent' | (low, high)}}}} "
                            f"such as {{'LLZTO': {{'Zr': 'high'}}}}, got {table!r:.80}")
    out = {}
    for phase, sig in table.items():
        if not isinstance(phase, str) or not phase or " " in phase or phase == UNASSIGNED:
            raise PfibsimsError(f"phases: expected phase names without spaces, other than '{UNASSIGNED}', got {phase!r}")
        if not isinstance(sig, Mapping) or not sig:
            raise PfibsimsError(f"phases['{phase}']: expected {{element: level}} such as {{'Zr': 'high'}}, got {sig!r}")
        out[phase] = {str(el): _range(v, f"['{phase}']['{el}']") for el, v in sig.items()}
    return out


#: A channel whose class means span at most this many within-class standard deviations separates no
#: classes: its levels are 0 (an element absent from the sample, its channel noise about one mean).
#: Measured: an absent element's channel spans 0.3 of it; real elements 5.6 (the phantom's thin Al2O3)
#: to 57, and an element at twice the background in one phase, unsmoothed, 1.9.
NOISE_SPAN = 1.0


def class_levels(centroids: np.ndarray, noise: Any = None) -> np.ndarray:
    """Per class and channel, the level 0..1 between the poorest (0) and the richest (1) class; 0 on a flat channel.

    A channel is flat when its class means are equal, or, given ``noise`` (per
    channel, the within-class standard deviation of the values the classes were
    fitted on, in the same units), when they span at most :data:`NOISE_SPAN`
    times it: no class stands out from the noise in that channel (an absent
    element), so none is called rich in it.

    Examples
    --------
    >>> class_levels(np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])).tolist()
    [[0.0, 0.0], [0.5, 0.0], [1.0, 0.0]]
    >>> class_levels(np.array([[1.0, 4.02], [3.0, 3.97], [5.0, 4.0]]), noise=[0.5, 0.5]).tolist()
    [[0.0, 0.0], [0.5, 0.0], [1.0, 0.0]]
    """
    c = np.asarray(centroids, dtype=np.float64)
    lo, hi = c.min(axis=0), c.max(axis=0)
    floor = 0.0 if noise is None else NOISE_SPAN * np.asarray(noise, dtype=np.float64)
    span = np.where((hi > lo) & (hi - lo > floor), hi - lo, np.inf)
    return (c - lo) / span


def _element_levels(levels: np.ndarray, elements: Sequence[str]) -> dict[str, np.ndarray]:
    """Level of each element per class: the highest of its channels (an element mapped by two lines)."""
    out: dict[str, np.ndarray] = {}
    for j, el in enumerate(elements):
        out[el] = levels[:, j] if el not in out else np.maximum(out[el], levels[:, j])
    return out


def _margin(q: float, lo: float, hi: float) -> float:
    below = q - lo if lo > 0 else np.inf  # an open end at 0 or 1 sets no margin
    above = hi - q if hi < 1 else np.inf
    return float(min(below, above))


def name_classes(levels: np.ndarray, elements: Sequence[str], table: Mapping[str, Mapping[str, tuple[float, float]]]) -> list[str]:
    """The phase of each class: the table's phase it matches with the largest margin, else ``"unassigned"``.

    Examples
    --------
    >>> lv = np.array([[1.0, 0.0], [0.0, 1.0], [0.3, 0.2], [0.6, 0.55]])
    >>> name_classes(lv, ["Zr", "Co"], check_table({"LLZTO": {"Zr": "high"}, "LCO": {"Co": "high"},
    ...                                             "matrix": {"Zr": "low", "Co": "low"}}))
    ['LLZTO', 'LCO', 'matrix', 'LLZTO']
    """
    by_el = _element_levels(levels, elements)
    missing = sorted({el for sig in table.values() for el in sig} - set(by_el))
    if missing:
        raise PfibsimsError(f"phases: the table names elements {missing} that no channel measures; the channels "
                            f"measure {sorted(by_el)}")
    names = []
    for k in range(levels.shape[0]):
        best, best_margin = UNASSIGNED, -np.inf
        for phase, sig in table.items():
            margin = min(_margin(float(by_el[el][k]), lo, hi) for el, (lo, hi) in sig.items())
            if margin >= 0 and margin > best_margin:
                best, best_margin = phase, margin
        names.append(best)
    return names


def dominant_names(levels: np.ndarray, elements: Sequence[str]) -> list[str]:
    """Each class named by its elements at level 0.5 or more, in channel order, joined by ``+``; else unassigned.

    Classes rich in the same elements get the same name (and so make one phase).

    Examples
    --------
    >>> dominant_names(np.array([[0.6, 0.9, 0.1], [0.1, 0.2, 1.0], [0.2, 0.1, 0.3]]), ["Fe", "S", "Cu"])
    ['Fe+S', 'Cu', 'unassigned']
    """
    by_el = _element_levels(levels, elements)
    return ["+".join(el for el, q in by_el.items() if q[k] >= 0.5) or UNASSIGNED for k in range(levels.shape[0])]
