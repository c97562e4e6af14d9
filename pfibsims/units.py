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

import functools
import math
import numbers
import re
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
    "parse_unit",
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
        "[mass] * [length] ** 2 / [time] ** 2": "an energy",
    }
    dim = str(q.dimensionality)
    dim = "" if dim == "dimensionless" else dim
    return names.get(dim, f"a quantity of dimension {dim}")


#: Longest text the parser reads: a quantity is a number and a few unit names.
MAX_TEXT = 200
#: Largest power a unit may carry ("nm^3" is fine; "nm^99" is not a unit of this library).
MAX_POWER = 9
_NUMBER = re.compile(r"\s*([+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,4})?|inf(?:inity)?|nan))", re.IGNORECASE)
_TOKEN = re.compile(
    r"\s*(?:(?P<name>(?:(?![\d¹²³⁴⁵⁶⁷⁸⁹⁻])\w)(?:(?![¹²³⁴⁵⁶⁷⁸⁹⁻])\w)*|%|°)|(?P<one>1)(?![\d.])|(?P<op>\*\*|\^|[*/·⋅])|(?P<sup>[⁻]?[¹²³⁴⁵⁶⁷⁸⁹])"
    r"|(?P<int>[+-]?\d+))"
)
_SUPERSCRIPT = str.maketrans("⁻¹²³⁴⁵⁶⁷⁸⁹", "-123456789")
_ALIASES = {"%": "percent", "°": "degree"}


def _unit_name(word: str) -> pint.Unit:
    """One unit name (with prefix and plural) as a pint unit: a table look-up, never an evaluation."""
    word = _ALIASES.get(word, word)
    if word == "dimensionless":
        return ureg.dimensionless
    try:
        return ureg.Unit(ureg.get_name(word))
    except pint.UndefinedUnitError:
        raise ValueError(f"unknown unit {word!r}") from None


def _power(tokens: list[tuple[str, str]], i: int) -> tuple[int, int]:
    """The integer power after ``**``/``^`` (or a superscript) at ``tokens[i]``, and the next index."""
    kind, text = tokens[i]
    if kind == "sup":
        return int(text.translate(_SUPERSCRIPT)), i + 1
    if i + 1 >= len(tokens) or tokens[i + 1][0] != "int":
        raise ValueError(f"expected an integer power after {text!r}")
    return int(tokens[i + 1][1]), i + 2


@functools.lru_cache(maxsize=512)
def _unit_expression(text: str) -> pint.Unit:
    """``"nm"``, ``"counts/s"``, ``"nm ** 2"``, ``"kg m / s^2"``, ``"1"``, ``""``: names joined by * / and powers."""
    tokens, pos = [], 0
    while pos < len(text) and text[pos:].strip():
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"unexpected {text[pos:].strip()[:20]!r}")
        tokens.append(next((k, v) for k, v in m.groupdict().items() if v is not None))
        pos = m.end()
    unit, sign, i, expect_term = ureg.dimensionless, 1, 0, True
    while i < len(tokens):
        kind, word = tokens[i]
        if kind == "op" and word in "*/·⋅" and not expect_term:
            sign, expect_term, i = (-1 if word == "/" else 1), True, i + 1
            continue
        if kind not in ("name", "one"):
            raise ValueError(f"unexpected {word!r}")
        term, power = (_unit_name(word) if kind == "name" else ureg.dimensionless), 1
        i += 1
        if i < len(tokens) and (tokens[i][0] == "sup" or tokens[i][1] in ("**", "^")):
            power, i = _power(tokens, i)
        if abs(power) > MAX_POWER:
            raise ValueError(f"power {power} of {word!r} is outside -{MAX_POWER}..{MAX_POWER}")
        unit, sign, expect_term = unit * term ** (sign * power), 1, False
    if expect_term and tokens:
        raise ValueError("expected a unit name at the end")
    return unit


def parse_unit(text: Any, *, name: str = "units") -> pint.Unit:
    """Parse a unit by the strict grammar of pfibsims (never evaluated as an expression).

    A unit is unit names known to :data:`ureg` (with SI prefixes and
    plurals: ``"nm"``, ``"µm"``, ``"counts"``, ``"percent"``), joined by
    ``*``, ``/`` or a space, each with an optional integer power
    (``"nm ** 2"``, ``"nm^2"``, ``"nm²"``) of at most 9; ``"1"`` or ``""``
    is dimensionless. Nothing else is accepted: no numbers as factors, no
    nested powers, no parentheses, at most 200 characters. Files are
    untrusted, and pint's own parser evaluates arithmetic (``10**10**10``).

    Raises
    ------
    UnitsError
        Naming ``name``, what was found and why it does not parse.

    Examples
    --------
    >>> parse_unit("counts/s")
    <Unit('count / second')>
    >>> parse_unit("10**10**10 nm")
    Traceback (most recent call last):
    ...
    pfibsims.errors.UnitsError: units: expected a unit such as 'nm' or 'counts/s', got '10**10**10 nm', which does not parse (unexpected '10')
    """
    if isinstance(text, pint.Unit) and text._REGISTRY is ureg:
        return text
    if not isinstance(text, str):
        raise UnitsError(f"{name}: expected a unit such as 'nm' or 'counts/s', got {text!r} of type {type(text).__name__}")
    if len(text) > MAX_TEXT:
        raise UnitsError(f"{name}: expected a unit such as 'nm' or 'counts/s', got a text of {len(text)} characters")
    try:
        return _unit_expression(text.strip())
    except ValueError as exc:
        raise UnitsError(
            f"{name}: expected a unit such as 'nm' or 'counts/s', got {text!r}, which does not parse ({exc})"
        ) from None


def _parse_text(text: str) -> tuple[float, pint.Unit | None]:
    """A number and the unit after it (None when there is none) by the grammar of :func:`parse_unit`."""
    if len(text) > MAX_TEXT:
        raise ValueError(f"a text of {len(text)} characters is not a quantity")
    m = _NUMBER.match(text)
    if m is None:
        raise ValueError("expected a number first")
    rest = text[m.end():].strip()
    return float(m[1]), (_unit_expression(rest) if rest else None)


def parse_quantity(
    value: Any,
    unit: str,
    *,
    default_unit: str | None = None,
    name: str = "value",
) -> pint.Quantity:
    """Parse ``value`` as a quantity compatible with ``unit``.

    Strings follow one strict grammar, for users and for every file
    header alike: a number (with an optional exponent, ``"8.14e1"``), then
    a unit by :func:`parse_unit`. Nothing is evaluated, so a hostile header
    (``"10**10**10 nm"``) is an error at once rather than a hang.

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
        A finite scalar quantity in ``unit`` of :data:`ureg`.

    Raises
    ------
    UnitsError
        When the value does not parse, has no unit and no ``default_unit`` was
        given, is of another kind than ``unit``, or is not finite in ``unit``.

    Examples
    --------
    >>> parse_quantity("1.6 nA", "A")
    <Quantity(1.6e-09, 'ampere')>
    >>> parse_quantity(30, "V", default_unit="kV").to("kV")
    <Quantity(30.0, 'kilovolt')>
    """
    target = parse_unit(unit, name="unit")
    default = None if default_unit is None else parse_unit(default_unit, name="default_unit")
    expected = f"{_kind(ureg.Quantity(1, target))} such as '{_example(unit)}'"
    if isinstance(value, pint.Quantity):
        if np.ndim(value.magnitude) != 0 or np.asarray(value.magnitude).dtype.kind not in "iuf":
            raise UnitsError(f"{name}: expected {expected}, got a quantity of magnitude {value.magnitude!r}")
        units = value.units if value._REGISTRY is ureg else parse_unit(str(value.units), name=name)
        q = ureg.Quantity(float(value.magnitude), units)
    elif isinstance(value, str):
        try:
            number, units = _parse_text(value.strip())
        except ValueError as exc:
            raise UnitsError(f"{name}: expected {expected}, got {_clip(value)}, which does not parse ({exc})") from None
        q = ureg.Quantity(number, units if units is not None else default or ureg.dimensionless)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        if default is None:
            raise UnitsError(
                f"{name}: expected {expected}, got the plain number {value!r}; "
                f"give the unit, e.g. '{value} {unit}'"
            )
        q = ureg.Quantity(float(value), default)
    else:
        raise UnitsError(f"{name}: expected {expected}, got {value!r:.60} of type {type(value).__name__}")
    if not q.is_compatible_with(target):
        raise UnitsError(f"{name}: expected {expected}, got {_show(value)} ({_kind(q)})")
    if not np.isfinite(q.magnitude):
        raise UnitsError(f"{name}: expected a finite value, got {_show(value)}")
    with np.errstate(over="ignore"):
        q = q.to(target)
    if not np.isfinite(q.magnitude):
        raise UnitsError(f"{name}: expected a finite value in {unit}, got {_show(value)}, which overflows")
    # Unit prefixes are exact decimal factors: drop the binary rounding noise
    # of the conversion ('2 um' -> 1999.9999999999998 nm) so equal inputs are equal.
    return ureg.Quantity(float(f"{float(q.magnitude):.12g}"), q.units)


def _example(unit: str) -> str:
    examples = {"nm": "81.4 nm", "A": "1.6 nA", "V": "5 kV", "s": "5 min", "deg": "1.5 deg"}
    return examples.get(unit, f"1 {unit}")


def _show(value: Any) -> str:
    return _clip(value) if isinstance(value, str) else f"'{value}'"


def _clip(text: str, n: int = 60) -> str:
    """``repr`` of a text, cut to ``n`` characters (a hostile header can be megabytes)."""
    return repr(text) if len(text) <= n else f"{text[:n]!r}... ({len(text)} characters)"


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
    try:
        items = list(value)
    except TypeError:
        raise UnitsError(f"{name}: expected one length such as '81.4 nm' or {n} of them, got {value!r:.60}") from None
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
