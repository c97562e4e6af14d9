import pint
import pytest

from pfibsims.errors import PfibsimsError, UnitsError
from pfibsims.units import format_quantity, length_nm, lengths_nm, parse_length, parse_quantity, ureg


def test_registry_is_pint_xarray_application_registry():
    import pint_xarray

    assert ureg is pint_xarray.unit_registry
    q = pint.get_application_registry().Quantity(2, "um")
    assert parse_length(q).magnitude == pytest.approx(2000.0)


@pytest.mark.parametrize(
    ("value", "nm"),
    [("81.4 nm", 81.4), ("0.0814 um", 81.4), ("0.0814 µm", 81.4), ("2.3 um", 2300.0), ("1 mm", 1e6)],
)
def test_parse_length_strings(value, nm):
    assert length_nm(value) == nm  # exact: prefixes are decimal factors


def test_parse_length_quantity_and_plain_number():
    assert length_nm(ureg.Quantity(3, "um")) == 3000.0
    assert length_nm(72, default_unit="nm") == 72.0
    assert length_nm(0.5, default_unit="um") == 500.0
    assert length_nm("7", default_unit="nm") == 7.0


def test_parse_quantity_current():
    q = parse_quantity("1.6 nA", "A")
    assert q.units == ureg.ampere
    assert q.magnitude == pytest.approx(1.6e-9, rel=1e-12)


def test_current_where_a_length_is_expected_is_rejected():
    with pytest.raises(UnitsError, match=r"pixel_size: expected a length such as '81.4 nm', got '1.6 nA' \(a current\)"):
        parse_length("1.6 nA", name="pixel_size")


def test_plain_number_without_default_unit_is_rejected():
    with pytest.raises(UnitsError, match=r"slice_thickness: .*plain number 60.*'60 nm'"):
        parse_length(60, name="slice_thickness")


def test_unknown_unit_is_rejected():
    with pytest.raises(UnitsError, match=r"pixel_size: .*'3 furlongz'.*does not parse"):
        parse_length("3 furlongz", name="pixel_size")


def test_wrong_type_and_nonfinite():
    with pytest.raises(UnitsError, match="pixel_size: .*type list"):
        parse_length([1, 2], name="pixel_size")
    with pytest.raises(UnitsError, match="pixel_size: expected a finite value"):
        parse_length("nan nm", name="pixel_size")


def test_units_error_is_a_value_error():
    assert issubclass(UnitsError, PfibsimsError)
    assert issubclass(PfibsimsError, ValueError)


def test_lengths_nm_broadcast_and_count():
    assert lengths_nm("81.4 nm", 3) == (81.4, 81.4, 81.4)
    assert lengths_nm(("60 nm", "0.0814 um"), 2) == (60.0, 81.4)
    with pytest.raises(UnitsError, match="origin: expected one length or 2 lengths, got 3"):
        lengths_nm((1, 2, 3), 2, default_unit="nm", name="origin")


def test_format_quantity_round_trips():
    for text, unit in [("30 kV", "kV"), ("1.6 nA", "nA"), ("5 min", "min")]:
        q = parse_quantity(text, unit)
        s = format_quantity(q, unit)
        assert s == text
        assert ureg.Quantity(s) == q


# --- the strict grammar (issue 21): nothing is evaluated, hostile text fails at once -------------


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("10**10**10 nm", "unexpected '\\*\\*'"),  # pint evaluated this for ever
        ("2**1000 nm", "unexpected '\\*\\*'"),  # pint: TypeError
        ("2**2**2**2**2 nm", "unexpected '\\*\\*'"),  # pint: OverflowError
        ("1 nm**99", "power 99 of 'nm' is outside -9..9"),
        ("3 furlongz", "unknown unit 'furlongz'"),
        ("__import__('os') nm", "expected a number first"),
        ("1 (nm)", "unexpected '\\(nm\\)'"),
        ("1 nm/", "expected a unit name at the end"),
        ("1 10 nm", "unexpected '10'"),
    ],
)
def test_hostile_quantity_text_is_a_units_error(text, why):
    with pytest.raises(UnitsError, match=f"pixel_size: expected a length such as '81.4 nm', got .*does not parse \\({why}\\)"):
        parse_length(text, name="pixel_size")


def test_overflowing_and_infinite_values_are_refused():
    with pytest.raises(UnitsError, match="value: expected a finite value in nm, got '1e308 km', which overflows"):
        length_nm("1e308 km")
    with pytest.raises(UnitsError, match="expected a finite value, got '1e999 nm'"):
        length_nm("1e999 nm")


def test_long_text_is_cut_in_the_message():
    with pytest.raises(UnitsError, match=r"\.\.\. \(5000 characters\), which does not parse \(a text of 5000 characters"):
        length_nm("1" * 5000)


def test_unknown_target_unit_is_a_units_error():
    with pytest.raises(UnitsError, match="unit: expected a unit such as 'nm' or 'counts/s', got 'bananas'.*unknown unit 'bananas'"):
        parse_quantity("1 nm", "bananas")
    with pytest.raises(UnitsError, match="default_unit: .*'parsec5'"):
        parse_quantity(1, "nm", default_unit="parsec5")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("81.4nm", "81.4 nm"),
        ("8.14e1 nm", "81.4 nm"),
        (".5 um", "500 nm"),
        ("2 Å", "0.2 nm"),
        ("3 counts/s", "3 count / second"),
        ("3 count / s", "3 count / second"),
        ("2 nm ** 2", "2 nm**2"),
        ("2 nm^2", "2 nm**2"),
        ("2 nm²", "2 nm**2"),
        ("1 kg m / s^2", "1 N"),
        ("10 %", "0.1"),
    ],
)
def test_grammar_accepts_what_instruments_and_format_quantity_write(text, expected):
    # the reference is pint's own parser on trusted text
    want = ureg.Quantity(expected)
    got = parse_quantity(text, str(want.units) or "1")
    assert got.to(want.units).magnitude == pytest.approx(want.magnitude, rel=1e-12)


def test_parse_unit_strict():
    from pfibsims.units import parse_unit

    assert parse_unit("counts/s") == ureg.count / ureg.second
    assert parse_unit("1") == ureg.dimensionless == parse_unit("")
    with pytest.raises(UnitsError, match="units: .*'count\\*\\*10\\*\\*10'.*power 10"):
        parse_unit("count**10**10")
    with pytest.raises(UnitsError, match="channel: expected a unit .*got 3 of type int"):
        parse_unit(3, name="channel")


def test_quantity_of_array_magnitude_is_refused():
    import numpy as np

    with pytest.raises(UnitsError, match="value: expected a length .*magnitude array"):
        length_nm(ureg.Quantity(np.ones(2), "nm"))


def test_lengths_nm_refuses_what_is_not_lengths():
    with pytest.raises(UnitsError, match="pixel_size: expected one length such as '81.4 nm' or 2 of them, got None"):
        lengths_nm(None, 2, name="pixel_size")
    with pytest.raises(UnitsError, match="pixel_size: expected one length .* got <object object"):
        lengths_nm(object(), 2, name="pixel_size")
