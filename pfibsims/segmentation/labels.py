"""Label volumes under the CF conventions for flags: ``flag_values`` name the phases in ``flag_meanings``."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import xarray as xr

from .._xr import spatial_dims
from ..errors import DataModelError

#: The name of label 0: every voxel no channel claims.
MATRIX = "matrix"


#: Widest range of flag values: lookup tables indexed by label value hold one entry per value.
MAX_LABEL_SPAN = 1 << 24

#: Attribute recording which channel defined which phase (JSON ``{phase: channel}``).
PHASE_CHANNELS = "pfibsims:phase_channels"


def flags(labels: Any, name: str = "labels") -> tuple[list[int], list[str]]:
    """The (values, names) of a label volume's CF flags (``name``: the argument's, in errors)."""
    spatial_dims(labels, name)
    if not isinstance(labels, xr.DataArray) or labels.dtype.kind not in "iu":
        raise DataModelError(f"{name}: expected an integer label DataArray (from classify_phases), got {getattr(labels, 'dtype', type(labels).__name__)}")
    values, meanings = labels.attrs.get("flag_values"), labels.attrs.get("flag_meanings")
    if values is None or meanings is None:
        raise DataModelError(
            f"{name}: expected CF attrs 'flag_values' and 'flag_meanings' naming the phases, found "
            f"{sorted(labels.attrs)}; set e.g. {name}.attrs.update(flag_values=[0, 1], flag_meanings='matrix LLZTO')"
        )
    values = _flag_values(values, name)
    names = str(meanings).split()
    if len(values) != len(names):
        raise DataModelError(f"{name}: expected as many flag_meanings as flag_values, got {names} for {values}")
    for what, seq in (("flag_values", values), ("flag_meanings", names)):
        if len(set(seq)) != len(seq):  # a repeated value or name: two phases read as one
            raise DataModelError(f"{name}: expected distinct {what}, got {seq}")
    if values and max(values) - min(values) >= MAX_LABEL_SPAN:  # per-label lookup tables span the values
        raise DataModelError(f"{name}: expected flag_values within a range of 2**24, got {min(values)} to {max(values)}")
    return values, names


def _flag_values(values: Any, name: str = "labels") -> list[int]:
    """The CF ``flag_values`` attr as a list of ints; a :class:`DataModelError` unless whole numbers, at least one."""
    arr = np.atleast_1d(np.asarray(values, dtype=object if isinstance(values, str) else None))
    ok = arr.ndim == 1 and arr.size > 0 and arr.dtype.kind in "iuf"
    if ok and arr.dtype.kind == "f":
        ok = bool(np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))
    if not ok:
        raise DataModelError(f"{name}: expected integer flag_values (one per phase, e.g. [0, 1, 2]), got {values!r:.80}")
    return [int(v) for v in arr]


def nonnegative(lab: Any, values: list[int]) -> tuple[Any, list[int]]:
    """Labels (numpy or dask) and their flag values shifted to start at 0 when a flag value is negative.

    Lookup tables are indexed by the label value, so a negative one (CF allows
    them, e.g. int8 ``-1`` "void") must be shifted first; labels and values are
    returned as they are when no flag value is negative.
    """
    lo = min(values)
    if lo >= 0:
        return lab, values
    return lab.astype(np.int64) - lo, [v - lo for v in values]


def phase_value(labels: Any, phase: Any) -> tuple[int, str]:
    values, names = flags(labels)
    if isinstance(phase, str) and phase in names:
        return values[names.index(phase)], phase
    if isinstance(phase, numbers.Integral) and not isinstance(phase, bool) and int(phase) in values:
        return int(phase), names[values.index(int(phase))]
    raise DataModelError(f"phase: expected one of {names} or its label {values}, got {phase!r}")
