"""What a registration found and how: the :class:`Registration` value and its :class:`RegistrationReport`."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import PfibsimsError
from ..transform import Affine

__all__ = ["RegisteredAffine", "Registration", "RegistrationReport"]


@dataclass(frozen=True)
class RegistrationReport:
    """What :func:`~pfibsims.registration.register` did and how well it went.

    Attributes
    ----------
    model, metric : str
        As requested.
    search : str
        ``"global"`` (rotations and translations over the whole search range)
        or ``"local"`` (around ``initial`` only).
    success : bool
        True when the optimum passed the significance test (see
        ``agreement``); a failed registration raises
        :class:`~pfibsims.errors.RegistrationError` carrying this report.
    metric_before, metric_after : float
        The metric that found the answer at the initial transform and at the
        result, at the fixed pixel size (mutual information in nats, or a
        correlation in [0, 1]).
    overlap : float
        Fraction of the fixed field whose transformed points lie inside the
        moving field (masked and NaN pixels excluded).
    iterations : int
        Metric evaluations of the local refinement, over all levels.
    levels : tuple of float
        Spacings (nm) of the pyramid, coarse to fine.
    agreement : tuple of int
        The significance test, ``(agreeing, tested)``: the fixed field is
        cut into 2 x 2 tiles and each tile with structure is searched alone
        over the same translations as the whole; a tile *agrees* when its own
        best placement is within ``1.5`` coarse pixels of the whole field's
        (or, for a broad peak, when the whole field's optimum scores within
        10 % of the tile's own best).  Unrelated images and noise agree in at
        most one tile (their best placement is a coincidence of one region);
        an optimum is significant when at least two tiles agree (calibrated
        with ``benchmarks/bench_register.py --calibrate``: 17 unrelated real
        pairs and noise images agreed in at most 1 tile; 20 of 28 matching
        real pairs in 2-4: see :data:`pfibsims.registration.significance.MIN_AGREE`).
        ``(0, 0)`` when no test ran (``metric="phase"``).
    prominence : float
        ``(best - runner-up) / (best - median)`` of the search surface: the
        margin of the best placement over the best distinct other one (1: no
        rival; below 0.2 the result is flagged ``"ambiguous"``).
    candidates : tuple of dict
        The placements the global (or local) search kept, best first:
        ``{"shift_nm": [dy, dx], "centre_shift_nm": [dy, dx], "rotation_deg": a, "mi": score,
        "agreement": [k, n]}``: the shift about the frame's origin (the transform's offset) and the
        fixed field centre's displacement (nm; the one to read for a field far from the origin).
    parameters : dict
        Rotation (deg), scale, shear, shift (nm, about the origin) of the result.
    flags : tuple of str
        ``"at_bound"``, ``"flat"``, ``"ambiguous"``, ``"low_overlap"``, ``"scale"``, ``"failed"``
        (:mod:`pfibsims.registration.flags` says when each is set; all but
        ``"failed"`` come with an ``EstimationWarning``).
    reduced_view : str
        What was computed to estimate the transform.
    refinement : str
        The final sub-pixel stage: what it maximised and on what (``metric``
        itself at the fixed pixel size on jittered samples: no stage of
        another metric moves the answer).
    """

    model: str
    metric: str
    success: bool
    metric_before: float
    metric_after: float
    overlap: float
    iterations: int
    levels: tuple[float, ...]
    agreement: tuple[int, int] = (0, 0)
    prominence: float = float("nan")
    search: str = "global"
    candidates: tuple[dict, ...] = ()
    parameters: dict = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    reduced_view: str = ""
    refinement: str = ""

    def __bool__(self) -> bool:
        return self.success

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (for attrs and history records)."""
        return _plain(asdict(self))


def _plain(v: Any) -> Any:
    """``v`` with numpy scalars and arrays, tuples and nested dicts turned into JSON-ready Python values."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


@dataclass(frozen=True)
class Registration:
    """The result of :func:`~pfibsims.registration.register`: a transform and how it was found.

    Attributes
    ----------
    transform : Affine
        In-plane ``(y, x)``, fixed point -> moving point, nm:
        ``resample(moving, onto=fixed, transform=reg.transform)``.
    report : RegistrationReport
        What was computed, the significance test, the refinement.
    slices : tuple of Registration
        With ``per_slice=True``: one per slice, each transform including
        that slice's drift; empty otherwise.

    Examples
    --------
    >>> r = Registration(Affine.identity(), RegistrationReport("rigid", "mi", True, 0.0, 0.5, 1.0, 0, (80.0,)))
    >>> bool(r), r.transform.is_identity()
    (True, True)
    """

    transform: Affine
    report: RegistrationReport
    slices: tuple[Registration, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.transform, Affine) or self.transform.dims != ("y", "x"):
            raise PfibsimsError(f"transform: expected an in-plane pfibsims.Affine on ('y', 'x'), got "
                                f"{getattr(self.transform, 'dims', type(self.transform).__name__)}")
        if not isinstance(self.report, RegistrationReport):
            raise PfibsimsError(f"report: expected a RegistrationReport, got {type(self.report).__name__}")
        object.__setattr__(self, "transform", Affine(self.transform.matrix, self.transform.dims))
        object.__setattr__(self, "slices", tuple(self.slices))

    def __bool__(self) -> bool:
        return self.report.success


class RegisteredAffine(Affine):
    """Deprecated (0.2): :func:`register` returns a :class:`Registration`; use its ``.transform`` and ``.report``.

    An Affine that carries a ``.report``; kept one release for code that builds or checks it.
    """

    report: RegistrationReport

    def __init__(self, matrix: Any, dims: Any = None, report: RegistrationReport | None = None) -> None:
        warnings.warn("pfibsims.RegisteredAffine is deprecated and will be removed in 0.3: register() returns a "
                      "Registration; use its .transform (an Affine) and .report", DeprecationWarning, stacklevel=2)
        super().__init__(matrix, dims)
        object.__setattr__(self, "report", report)
