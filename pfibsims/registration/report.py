"""What a registration did and how well it went: the report value types."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..transform import Affine


@dataclass(frozen=True)
class RegistrationReport:
    """What :func:`register` did and how well it went.

    Attributes
    ----------
    model, metric : str
        As requested.
    success : bool
        False only for the per-slice reports of slices that failed (a failed
        global registration raises :class:`~pfibsims.errors.RegistrationError`).
    metric_before, metric_after : float
        The metric at the initial transform and at the result, on the finest
        level (mutual information in nats, or a correlation).
    overlap : float
        Fraction of the fixed field whose transformed points lie inside the
        moving field.
    iterations : int
        Metric evaluations of the local refinement, over all levels.
    levels : tuple of float
        Spacings (nm) of the pyramid, coarse to fine.
    zscore, prominence : float
        Significance of the global optimum: robust z-score against the whole
        search surface, and ``(best - runner-up) / (best - median)``.
    parameters : dict
        Rotation (deg), scale, shear, shift (nm, about the origin) of the result.
    flags : tuple of str
        ``"at_bound"``, ``"flat"``, ``"ambiguous"``, ``"low_overlap"``, ``"failed"``.
    reduced_view : str
        What was computed to estimate the transform.
    refinement : str
        The final sub-pixel stage: what it maximised, on what, and the change.
    """

    model: str
    metric: str
    success: bool
    metric_before: float
    metric_after: float
    overlap: float
    iterations: int
    levels: tuple[float, ...]
    zscore: float
    prominence: float
    parameters: dict = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    reduced_view: str = ""
    refinement: str = ""

    def __bool__(self) -> bool:
        return self.success

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (for attrs and history records)."""
        d = asdict(self)
        d["levels"] = list(self.levels)
        d["flags"] = list(self.flags)
        return {k: (float(v) if isinstance(v, np.floating) else v) for k, v in d.items()}


class RegisteredAffine(Affine):
    """An :class:`~pfibsims.transform.Affine` that carries its :class:`RegistrationReport`.

    It is an Affine in every way (equality, composition, ``resample``,
    serialisation of the matrix); ``.report`` holds how it was found.
    Composing it gives a plain Affine.
    """

    report: RegistrationReport

    def __init__(self, matrix: Any, dims: Any = None, report: RegistrationReport | None = None) -> None:
        super().__init__(matrix, dims)
        object.__setattr__(self, "report", report)
