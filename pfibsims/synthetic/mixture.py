"""The phantom's mixed matrix: the matrix between resolved particles as a fine mixture of every phase (issue 16)."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import PfibsimsError
from .particles import PHASES

__all__ = ["MIXED_MATRIX", "check_mixture", "mixed_counts"]

#: A matrix that is a fine mixture of every phase (see ``matrix_mixture`` of :func:`cathode`): by volume 40 %
#: unresolved Super P, 25 % LLZTO, 25 % LCO and 10 % Al2O3.
MIXED_MATRIX = {"LLZTO": 0.25, "LCO": 0.25, "Al2O3": 0.1, "SP": 0.4}


def check_mixture(value: Any) -> dict[str, float]:
    """``matrix_mixture`` of :func:`~pfibsims.synthetic.cathode` checked: ``{phase: volume fraction}`` ({} for None)."""
    if value is None:
        return {}
    phases = PHASES[1:]
    ok = isinstance(value, Mapping) and all(k in phases for k in value) and all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) and v >= 0 for v in value.values())
    if not ok or sum(value.values()) > 1:
        raise PfibsimsError(f"matrix_mixture: expected volume fractions of {list(phases)} (each >= 0, summing to at "
                            f"most 1), got {value!r}")
    return {k: float(v) for k, v in value.items()}


def mixed_counts(counts: Sequence[float], mixture: Mapping[str, float]) -> tuple[float, ...]:
    """Counts per phase with the matrix (index 0) replaced by the mixture of the phases' counts."""
    rest = 1.0 - sum(mixture.values())
    matrix = rest * counts[0] + sum(f * counts[PHASES.index(p)] for p, f in mixture.items())
    return (matrix, *counts[1:])
