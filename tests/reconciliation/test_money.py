"""Exact VND parsing: both thousands styles, zero fractions only, ambiguity refused, never floats."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciliation.money import (
    AmountError,
    decimal_to_vnd,
    parse_decimal_vnd,
    parse_integer_vnd,
    parse_vnd,
    vnd_from_cell,
)

AMOUNTS = st.integers(min_value=-(10**14), max_value=10**14)


def _grouped(n: int, sep: str) -> str:
    return ("-" if n < 0 else "") + f"{abs(n):,}".replace(",", sep)


@given(AMOUNTS)
def test_dot_thousands_round_trip(n: int) -> None:
    assert parse_vnd(_grouped(n, ".")) == n


@given(AMOUNTS)
def test_comma_thousands_round_trip(n: int) -> None:
    assert parse_vnd(_grouped(n, ",")) == n


@given(AMOUNTS, st.sampled_from([" ", "\u00a0"]))
def test_space_thousands_round_trip(n: int, sep: str) -> None:
    assert parse_vnd(_grouped(n, sep)) == n


@given(AMOUNTS)
def test_zero_fraction_and_currency_marks_round_trip(n: int) -> None:
    assert parse_vnd(_grouped(n, ".") + ",00") == n
    assert parse_vnd(_grouped(n, ",") + ".00") == n
    assert parse_vnd(str(n)) == n
    assert parse_vnd(f"{_grouped(n, '.')} VND") == n
    assert parse_decimal_vnd(f"{abs(n)}.00") == abs(n)


@given(st.integers(min_value=1, max_value=10**12), st.integers(min_value=1, max_value=99))
def test_a_non_zero_fraction_is_always_refused(n: int, cents: int) -> None:
    with pytest.raises(AmountError):
        parse_vnd(f"{_grouped(n, '.')},{cents:02d}")
    with pytest.raises(AmountError):
        parse_decimal_vnd(f"{n}.{cents:02d}")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1.234.567", 1_234_567),
        ("1,234,567", 1_234_567),
        ("1234567", 1_234_567),
        ("1 234 567", 1_234_567),
        ("-1.234.567", -1_234_567),
        ("1.234.567 VND", 1_234_567),
        ("1.234.567đ", 1_234_567),
        ("(1.234.567)", -1_234_567),
        ("1.234.567,00", 1_234_567),
        ("1,234,567.00", 1_234_567),
        ("58000.00", 58_000),
        ("  150.000  ", 150_000),
    ],
)
def test_accepted(text: str, value: int) -> None:
    assert parse_vnd(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "1,234.5",
        "1.234,567",
        "1.234.56",
        "1234.567",
        "1.50",
        "58000.50",
        "0.500",
        "(-5)",
        "--5",
        "1.2.3",
        "1e6",
    ],
)
def test_refused(text: str) -> None:
    with pytest.raises(AmountError):
        parse_vnd(text)


def test_decimal_and_cells() -> None:
    assert decimal_to_vnd(Decimal("150000.000")) == 150_000
    with pytest.raises(AmountError):
        decimal_to_vnd(Decimal("NaN"))
    with pytest.raises(AmountError):
        parse_decimal_vnd("1,000")  # ISO 20022 decimals have no grouping
    assert vnd_from_cell(1_234_567) == 1_234_567
    assert vnd_from_cell(1_234_567.0) == 1_234_567
    assert vnd_from_cell("1.234.567") == 1_234_567
    for bad in (1234.5, True, float("inf"), None):
        with pytest.raises(AmountError):
            vnd_from_cell(bad)
    assert parse_integer_vnd(" -3300 ") == -3_300
    with pytest.raises(AmountError):
        parse_integer_vnd("150.000")
