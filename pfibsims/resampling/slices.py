"""Slices of two stacks paired by depth: :func:`match_slices`.

Real runs do not always record both modalities on every milled slice: a SIMS
map is skipped, SIMS is recorded every other slice, or the slices are uneven
and their depths measured.  Two stacks are then paired by their ``z``
coordinate, not by index: each slice of one takes the slice of the other
nearest in depth, within a tolerance, and only mutual nearest neighbours are
paired (so a slice is never used twice).  Slices left without a partner are
reported, never silently shifted onto a neighbour.
"""

from __future__ import annotations

import json
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DataModelError, PfibsimsError
from ..units import LENGTH_UNIT, length_nm

__all__ = ["SliceMatch", "match_slices"]


@dataclass(frozen=True)
class SliceMatch:
    """How the slices of two stacks pair up (indices into each stack's ``z``).

    ``reference[i]`` and ``other[i]`` are the ``i``-th pair, in the order of the
    reference stack; ``unmatched_reference`` and ``unmatched_other`` are the
    slices without a partner; ``offsets_nm`` the depth differences of the pairs
    (other minus reference) and ``tolerance_nm`` the largest one allowed.
    """

    reference: tuple[int, ...]
    other: tuple[int, ...]
    unmatched_reference: tuple[int, ...]
    unmatched_other: tuple[int, ...]
    offsets_nm: tuple[float, ...]
    tolerance_nm: float

    @property
    def one_to_one(self) -> bool:
        """Every slice of both stacks is paired, in order (slice ``k`` with slice ``k``)."""
        n = len(self.reference)
        return (not self.unmatched_reference and not self.unmatched_other
                and self.reference == tuple(range(n)) and self.other == tuple(range(n)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for dataset attrs and the history)."""
        return {
            "pairs": [[int(a), int(b)] for a, b in zip(self.reference, self.other, strict=True)],
            "unmatched_reference": list(self.unmatched_reference),
            "unmatched_other": list(self.unmatched_other),
            "offsets_nm": [float(v) for v in self.offsets_nm],
            "tolerance_nm": float(self.tolerance_nm),
        }

    def __str__(self) -> str:
        return json.dumps(self.to_dict())


def _depths(ds: Any, name: str) -> np.ndarray:
    if not hasattr(ds, "dims") or "z" not in ds.dims:
        return np.zeros(1)
    if "z" not in ds.coords:
        raise DataModelError(f"{name}: expected a z coordinate of slice depths to pair slices by, found none")
    units = ds.z.attrs.get("units")
    if units is None:
        raise DataModelError(f"{name}: expected a length 'units' attribute on z (e.g. 'nm'), found none")
    z = np.asarray(ds.z.values, dtype=np.float64).reshape(-1) * length_nm(f"1 {units}", name=f"{name}.z.attrs['units']")
    bad = np.flatnonzero(~np.isfinite(z))
    if bad.size:  # NaN compares false: it would pass the order check and pair nothing, or the wrong slices
        raise DataModelError(f"{name}: expected finite slice depths, found {z[bad[0]]} nm at index {int(bad[0])}")
    if z.size > 1 and np.any(np.diff(z) <= 0):
        raise DataModelError(f"{name}: expected increasing slice depths, got {z.tolist()} nm")
    return z


def _tolerance(tolerance: Any, za: np.ndarray, zb: np.ndarray) -> float:
    if tolerance is not None:
        if isinstance(tolerance, bool) or (isinstance(tolerance, numbers.Real) and not isinstance(tolerance, str)):
            raise PfibsimsError(f"tolerance: expected a length such as '30 nm', got {tolerance!r}")
        t = length_nm(tolerance, name="tolerance")
        if not t >= 0:
            raise PfibsimsError(f"tolerance: expected a non-negative length, got {tolerance!r}")
        return t
    steps = [np.median(np.diff(z)) for z in (za, zb) if z.size > 1]
    return 0.5 * float(min(steps)) if steps else np.inf


def match_slices(reference: Any, other: Any, *, tolerance: Any = None) -> SliceMatch:
    """Pair the slices of two stacks by depth (``z``), nearest within a tolerance.

    Parameters
    ----------
    reference, other : xarray.Dataset or DataArray
        Stacks with a ``z`` coordinate in a length unit (a map with no ``z``
        dim is one slice).
    tolerance : length, optional
        Largest depth difference of a pair, e.g. ``"30 nm"``. Default: half
        the smaller median slice spacing of the two stacks (any difference
        when both are single maps).

    Returns
    -------
    SliceMatch
        The pairs (mutual nearest slices within the tolerance, in the order
        of ``reference``) and the slices of each stack left without a
        partner.

    Raises
    ------
    DataModelError
        When a stack has no usable ``z`` (no coordinate, no units,
        NaN or infinite or decreasing depths).
    PfibsimsError
        On a tolerance that is not a non-negative length.

    Examples
    --------
    >>> import numpy as np
    >>> from pfibsims.dataset import stack
    >>> eds = stack({"Zr_La": np.zeros((4, 2, 2))}, pixel_size="81.4 nm", slice_thickness="60 nm")
    >>> sims = stack({"Li6": np.zeros((2, 2, 2))}, pixel_size="72 nm", slice_thickness="120 nm")
    >>> m = match_slices(eds, sims)
    >>> m.reference, m.other, m.unmatched_reference
    ((0, 2), (0, 1), (1, 3))
    """
    za, zb = _depths(reference, "reference"), _depths(other, "other")
    tol = _tolerance(tolerance, za, zb)
    if za.size == 1 and zb.size == 1 and tolerance is None:  # two single maps: nothing to choose between
        return SliceMatch((0,), (0,), (), (), (float(zb[0] - za[0]),), tol)
    near_b = np.abs(za[:, None] - zb[None, :]).argmin(axis=1)  # for each reference slice, the nearest other
    near_a = np.abs(zb[:, None] - za[None, :]).argmin(axis=1)
    pairs = [(i, int(j)) for i, j in enumerate(near_b) if near_a[j] == i and abs(zb[j] - za[i]) <= tol]
    ref = tuple(i for i, _ in pairs)
    oth = tuple(j for _, j in pairs)
    return SliceMatch(
        reference=ref,
        other=oth,
        unmatched_reference=tuple(i for i in range(za.size) if i not in set(ref)),
        unmatched_other=tuple(j for j in range(zb.size) if j not in set(oth)),
        offsets_nm=tuple(float(zb[j] - za[i]) for i, j in pairs),
        tolerance_nm=tol,
    )


def describe(match: SliceMatch, reference: str = "eds", other: str = "sims") -> str:
    """One sentence on the slices left without a partner (empty when every slice is paired)."""
    parts = []
    if match.unmatched_other:
        parts.append(f"{other} slices {list(match.unmatched_other)} have no {reference} slice within "
                     f"{match.tolerance_nm:.6g} {LENGTH_UNIT} and are left out")
    if match.unmatched_reference:
        parts.append(f"{reference} slices {list(match.unmatched_reference)} have no {other} slice within "
                     f"{match.tolerance_nm:.6g} {LENGTH_UNIT}")
    return "; ".join(parts)
