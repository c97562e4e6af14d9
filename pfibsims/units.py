"""Units: the one pint registry of pfibsims and the parsing of physical values.

pfibsims shares pint's *application registry* with pint-xarray, so quantities
made here, by ``ds.pint.quantify()`` and by the user's own ``pint`` code all
belong to one registry and combine without "cannot operate between quantities
of different registries" errors.

Inside the library every length is a plain ``float`` in nanometres
(:data:`LENGTH_UNIT`); values are converted once, at the edge, by
:func:`length_nm`.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import pint
import pint_xarray

from .errors import UnitsError

__all__ = [
    "LENGTH_UNIT",
    "format_quantity",
    "length_nm",
    "lengths_nm",
    "parse_length",
    "parse_quantity",
    "ureg",
]

#: The unit registry shared with pint-xarray (pint's application registry).
ureg: pint.UnitRegistry = pint_xarray.unit_registry

#: The length unit of every coordinate pfibsims writes.
LENGTH_UNIT = "nm"


def _kind(q: pint.Quantity) -> str:
    """Human name of a quantity's dimensionality, for error messages."""
    names = {
        "[length]": "a length",
        "[current]": "a current",
        "[time]": "a time",
        "[mass] * [length] ** 2 / [current] / [time] ** 3": "a voltage",
        "": "a plain number",
        "[length] ** 2": "an area",
    }
    dim = str(q.dimensionality)
    dim = "" if dim == "dimensionless" else dim
    return names.get(dim, f"a quantity of dimension {dim}")


def parse_quantity(
    value: Any,
    unit: str,
    *,
    default_unit: str | None = None,
    name: str = "value",
) -> pint.Quantity:
    """Parse ``value`` as a quantity compatible with ``unit``.

    Parameters
    ----------
    value : str, pint.Quantity or number
        ``"1.6 nA"``, ``ureg.Quantity(1.6, "nA")``, or a plain number, which
        is taken to be in ``default_unit``.
    unit : str
        A unit of the expected kind, e.g. ``"A"`` for a current. The result is
        converted to it.
    default_unit : str, optional
        Unit of a plain number. Without it a plain number is an error, because
        guessing units is how a 1000x mistake happens.
    name : str
        The argument's name, used in error messages.

    Returns
    -------
    pint.Quantity
        A scalar quantity in ``unit`` of :data:`ureg`.

    Raises
    ------
    UnitsError
        When the value does not parse, has no unit and no ``default_unit`` was
        given, or is of another kind than ``unit``.

    Examples
    --------
    >>> parse_quantity("1.6 nA", "A")
    <Quantity(1.6e-09, 'ampere')>
    >>> parse_quantity(30, "V", default_unit="kV").to("kV")
    <Quantity(30.0, 'kilovolt')>
    """
    target = ureg.Unit(unit)
    expected = f"{_kind(ureg.Quantity(1, target))} such as '{_example(unit)}'"
    if isinstance(value, pint.Quantity):
        q = ureg.Quantity(value.magnitude, str(value.units))
    elif isinstance(value, str):
        try:
            q = ureg.Quantity(value.strip())
        except Exception as exc:  # pint raises several unrelated types
            raise UnitsError(
                f"{name}: expected {expected}, got {value!r}, which does not parse ({exc})"
            ) from None
        if not isinstance(q, pint.Quantity):  # "3" parses to a plain number
            q = ureg.Quantity(q)
        if q.dimensionless and str(q.units) == "dimensionless" and default_unit:
            q = ureg.Quantity(q.magnitude, default_unit)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        if default_unit is None:
            raise UnitsError(
                f"{name}: expected {expected}, got the plain number {value!r}; "
                f"give the unit, e.g. '{value} {unit}'"
            )
        q = ureg.Quantity(float(value), default_unit)
    else:
        raise UnitsError(f"{name}: expected {expected}, got {value!r} of type {type(value).__name__}")
    if not q.is_compatible_with(target):
        raise UnitsError(f"{name}: expected {expected}, got {_show(value)} ({_kind(q)})")
    if not np.isfinite(q.magnitude):
        raise UnitsError(f"{name}: expected a finite value, got {_show(value)}")
    q = q.to(target)
    # Unit prefixes are exact decimal factors: drop the binary rounding noise
    # of the conversion ('2 um' -> 1999.9999999999998 nm) so equal inputs are equal.
    return ureg.Quantity(float(f"{float(q.magnitude):.12g}"), q.units)


def _example(unit: str) -> str:
    examples = {"nm": "81.4 nm", "A": "1.6 nA", "V": "5 kV", "s": "5 min", "deg": "1.5 deg"}
    return examples.get(unit, f"1 {unit}")


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else f"'{value}'"


def parse_length(value: Any, *, default_unit: str | None = None, name: str = "value") -> pint.Quantity:
    """Parse a length (``"81.4 nm"``, ``"0.0814 um"``, a pint quantity).

    Parameters
    ----------
    value : str, pint.Quantity or number
        The length; a plain number needs ``default_unit``.
    default_unit : str, optional
        Unit of a plain number, e.g. ``"nm"``.
    name : str
        The argument's name, for error messages.

    Returns
    -------
    pint.Quantity
        The length in nanometres.

    Examples
    --------
    >>> parse_length("81.4 nm")
    <Quantity(81.4, 'nanometer')>
    >>> float(parse_length("2.3 um").magnitude)
    2300.0
    """
    return parse_quantity(value, LENGTH_UNIT, default_unit=default_unit, name=name)


def length_nm(value: Any, *, default_unit: str | None = None, name: str = "value") -> float:
    """A length as a plain float in nanometres (see :func:`parse_length`).

    Examples
    --------
    >>> length_nm("2 um")
    2000.0
    >>> length_nm(60, default_unit="nm")
    60.0
    """
    if default_unit == LENGTH_UNIT and isinstance(value, numbers.Real) and not isinstance(value, bool):
        v = float(value)
        if math.isfinite(v):  # what parse_length gives, without the parser (drift tables have thousands)
            return float(f"{v:.12g}")
    return float(parse_length(value, default_unit=default_unit, name=name).magnitude)


def lengths_nm(
    value: Any, n: int, *, default_unit: str | None = None, name: str = "value"
) -> tuple[float, ...]:
    """``n`` lengths in nm from one length (broadcast) or a sequence of ``n``.

    Examples
    --------
    >>> lengths_nm("81.4 nm", 2)
    (81.4, 81.4)
    >>> lengths_nm(("60 nm", "0.0814 um"), 2)
    (60.0, 81.4)
    """
    if isinstance(value, (str, numbers.Real, pint.Quantity)) and np.ndim(getattr(value, "magnitude", value)) == 0:
        return (length_nm(value, default_unit=default_unit, name=name),) * n
    items = list(value)
    if len(items) != n:
        raise UnitsError(f"{name}: expected one length or {n} lengths, got {len(items)}: {value!r}")
    return tuple(length_nm(v, default_unit=default_unit, name=name) for v in items)


def format_quantity(q: pint.Quantity | float, unit: str | None = None) -> str:
    """A pint-parsable string for a quantity, e.g. ``'30 kV'``.

    Examples
    --------
    >>> format_quantity(parse_quantity("1.6 nA", "A"), "nA")
    '1.6 nA'
    """
    if not isinstance(q, pint.Quantity):
        q = ureg.Quantity(q, unit or "")
    if unit is not None:
        q = q.to(unit)
    mag = float(q.magnitude)
    return f"{mag:.10g} {q.units:~}".strip()
