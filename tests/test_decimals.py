"""Decimal text <-> integer units: exact, never through floats."""

from decimal import Decimal

import pytest

from marketnode.node.core.decimals import Unit, as_decimal_text, format_scaled, parse_decimal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", (12, 0)),
        ("12.50", (125, 1)),
        ("0.01", (1, 2)),
        (".5", (5, 1)),
        ("7.", (7, 0)),
        ("-3", (-3, 0)),
        ("0", (0, 0)),
        ("0.000", (0, 0)),
    ],
)
def test_parse_decimal_accepts_plain_decimals(text, expected):
    assert parse_decimal(text) == expected


@pytest.mark.parametrize(
    "text", ["", ".", "-", "1e3", "1.2.3", " 1", "1 ", "+1", "١٢", "nan", "inf", "0x10", "1_000"]
)
def test_parse_decimal_refuses_anything_else(text):
    assert parse_decimal(text) is None


def test_units_are_exact_multiples():
    tick = Unit("0.01")
    assert tick.units("12.34") == 1234
    assert tick.units("12.340000") == 1234
    assert tick.units("12.345") == Unit.OFF_STEP
    assert tick.units("0") == Unit.NOT_A_NUMBER
    assert tick.units("-1") == Unit.NOT_A_NUMBER
    assert tick.units("abc") == Unit.NOT_A_NUMBER
    assert Unit("0.05").units("0.15") == 3
    assert Unit("0.05").units("0.12") == Unit.OFF_STEP
    assert Unit("5").units("15") == 3
    assert Unit("5").units("12") == Unit.OFF_STEP


def test_unit_text_round_trips_canonically():
    tick = Unit("0.05")
    assert tick.text_of(3) == "0.15"
    assert tick.text_of(20) == "1"
    assert tick.text_of(201) == "10.05"
    assert Unit("10").text_of(3) == "30"
    assert Unit("0.001").text_of(1) == "0.001"


def test_bounds_round_toward_the_inside():
    lot = Unit("0.1")
    assert lot.ceil_units("0.25") == 3
    assert lot.floor_units("0.25") == 2
    assert lot.ceil_units("0.3") == lot.floor_units("0.3") == 3


def test_wire_numbers_become_decimal_text():
    assert as_decimal_text("1.5") == "1.5"
    assert as_decimal_text(7) == "7"
    assert as_decimal_text(Decimal("1.50")) == "1.50"
    assert as_decimal_text(1.5) is None
    assert as_decimal_text(True) is None
    assert as_decimal_text(None) is None


def test_format_scaled():
    assert format_scaled(12345, 2) == "123.45"
    assert format_scaled(5, 3) == "0.005"
    assert format_scaled(-150, 2) == "-1.5"
    assert format_scaled(7, 0) == "7"
    assert format_scaled(7, -2) == "700"
