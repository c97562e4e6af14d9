"""Public names that moved or were merged in 0.2; each warns once per call and calls its new home.

They stay for one release (see CHANGELOG.md) and are reached through
``pfibsims.__getattr__``, so importing pfibsims does not import them.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ._xr import check_dims, plane_grid
from .dataset import history, history_attrs
from .dataset import record as _record
from .dataset import validate as _validate
from .resampling import resample
from .transform import Affine
from .units import parse_length as _parse_length
from .units import parse_quantity as _parse_quantity
from .units import ureg as _ureg

#: old name -> (where it lives now, what to call instead)
MOVED = {
    "record": ("pfibsims.dataset.record", "pfibsims.dataset.record"),
    "validate": ("pfibsims.dataset.validate", "pfibsims.dataset.validate"),
    "parse_length": ("pfibsims.units.parse_length", "pfibsims.units.parse_length"),
    "parse_quantity": ("pfibsims.units.parse_quantity", "pfibsims.units.parse_quantity"),
    "ureg": ("pfibsims.units.ureg", "pfibsims.units.ureg"),
    "correct_drift": ("removed", "pfibsims.resample(ds, onto=ds, drift=drift)"),
    "warp": ("removed", "pfibsims.resample(ds, onto, transform=T, drift=drift)"),
}


def _warn(name: str) -> None:
    where, instead = MOVED[name]
    warnings.warn(f"pfibsims.{name} is deprecated and will be removed in 0.3; use {instead}",
                  DeprecationWarning, stacklevel=3)


def correct_drift(ds: Any, drift: Any) -> Any:
    """Deprecated: ``resample(ds, onto=ds, drift=drift)``."""
    _warn("correct_drift")
    check_dims(ds, "ds", ("z", "y", "x"))
    out = resample(ds, plane_grid(ds, "ds"), drift=drift)
    out.attrs = {**ds.attrs, **history_attrs(history(out))}
    return out


def warp(ds: Any, transform: Any, onto: Any, *, drift: Any = None, kernel: str = "lanczos", a: int = 3,
         fill: Any = np.nan, chunks: Any = None) -> Any:
    """Deprecated: ``resample(ds, onto, transform=transform, drift=drift, ...)``."""
    _warn("warp")
    if not isinstance(transform, Affine):
        from .errors import PfibsimsError

        raise PfibsimsError(f"transform: expected a pfibsims.Affine, got {type(transform).__name__}")
    return resample(ds, onto, transform=Affine(transform.matrix, transform.dims), drift=drift, kernel=kernel, a=a,
                    fill=fill, chunks=chunks)


_PLAIN = {"record": _record, "validate": _validate, "parse_length": _parse_length,
          "parse_quantity": _parse_quantity, "ureg": _ureg}


def lookup(name: str) -> Any:
    """The deprecated object ``name`` (with a DeprecationWarning), or AttributeError."""
    if name in _PLAIN:
        _warn(name)
        return _PLAIN[name]
    if name in ("correct_drift", "warp"):
        return globals()[name]
    raise AttributeError(f"module 'pfibsims' has no attribute {name!r}")
