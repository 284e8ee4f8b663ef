"""Exact VND amounts from the text that statements carry (reconciliation.md §5.1: never floats).

VND has no minor unit, so any non-zero fraction is an error, never rounded. Vietnamese exports
write ``1.234.567`` (dot as thousands separator), English-locale exports ``1,234,567``; both are
read exactly, and input where the two readings disagree (``1,234.5``) is refused rather than guessed.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

__all__ = [
    "AmountError",
    "decimal_to_vnd",
    "parse_decimal_vnd",
    "parse_integer_vnd",
    "parse_vnd",
    "vnd_from_cell",
]


class AmountError(ValueError):
    """The text is not an exact VND amount; the message says why (it becomes a RowError reason)."""


_CURRENCY = re.compile(r"(?i)^(?:vnd|vnđ|₫|đ)\s*|\s*(?:vnd|vnđ|₫|đ)$")
# Separators allowed between digit groups: '.', ',' and a (non-breaking) space.
_NUMBER = re.compile(r"[0-9]+(?:[., \u00a0\u202f][0-9]+)*")
_LIMIT = 10**15  # far above any payment (contract §4 caps one order at 10 billion VND)


def parse_vnd(text: str) -> int:
    """Parse an amount written by a person or a spreadsheet: ``"1.234.567"`` -> ``1234567``.

    Accepted: plain digits; groups of three separated by ``.``, ``,`` or a space (one kind per
    number); an optional zero fraction ``,00``/``.00`` (or one zero) after the other separator;
    a leading ``-``/``+`` or accounting parentheses ``(1.234.567)`` for a negative; a ``VND``,
    ``VNĐ``, ``đ`` or ``₫`` marker before or after. Everything else raises :class:`AmountError`.
    """
    s = text.strip()
    if not s:
        raise AmountError("empty amount")
    parenthesised = s.startswith("(") and s.endswith(")")
    if parenthesised:
        s = s[1:-1].strip()
    s = _CURRENCY.sub("", s).strip()
    negative = parenthesised
    if s and s[0] in "+-":
        if parenthesised:
            raise AmountError(f"sign inside parentheses: {text!r}")
        negative, s = s[0] == "-", s[1:].strip()
    if not _NUMBER.fullmatch(s):
        raise AmountError(f"not an amount: {text!r}")
    groups = re.split(r"([., \u00a0\u202f])", s)
    digits, seps = groups[0::2], groups[1::2]
    fraction = ""
    # A fraction is the last group after a separator that is 1-2 digits long: "1.234.567,00".
    if seps and len(digits[-1]) in (1, 2):
        fraction, frac_sep = digits.pop(), seps.pop()
        if frac_sep not in ".,":
            raise AmountError(f"not an amount: {text!r}")
        if seps and frac_sep in seps:
            raise AmountError(f"ambiguous separators in {text!r}")
        if fraction.strip("0"):
            raise AmountError(f"VND has no minor unit: {text!r}")
    if seps:
        if len(set(seps)) != 1 and not set(seps) <= {" ", "\u00a0", "\u202f"}:
            raise AmountError(f"ambiguous separators in {text!r}")
        if not 1 <= len(digits[0]) <= 3 or any(len(g) != 3 for g in digits[1:]):
            raise AmountError(f"digit groups must be of three in {text!r}")
        if digits[0].startswith("0"):  # "0.500": half a dong or five hundred? Refuse to guess.
            raise AmountError(f"ambiguous leading zero in {text!r}")
    value = int("".join(digits))
    if value >= _LIMIT:
        raise AmountError(f"amount out of range: {text!r}")
    return -value if negative else value


_INTEGER = re.compile(r"[-+]?[0-9]{1,15}")
_DECIMAL = re.compile(r"[0-9]{1,18}(?:\.[0-9]{0,5})?")


def parse_decimal_vnd(text: str) -> int:
    """An XML/ISO 20022 decimal (``"58000"``, ``"58000.00"``) as VND; ``"58000.50"`` is an error.

    camt.053 ``Amt`` is ``ActiveOrHistoricCurrencyAndAmount``: up to 18 digits, up to 5 fraction
    digits, ``.`` as the decimal mark and never a thousands separator (reconciliation.md §2.1).
    """
    s = text.strip()
    if not _DECIMAL.fullmatch(s):
        raise AmountError(f"not an ISO 20022 amount: {text!r}")
    return decimal_to_vnd(Decimal(s))


def decimal_to_vnd(value: Decimal) -> int:
    """An exact Decimal (MT940 and camt amounts) as integer VND; a non-zero fraction is an error."""
    try:
        integral = value.to_integral_value()
    except InvalidOperation as exc:  # NaN, Infinity
        raise AmountError(f"not an amount: {value}") from exc
    if integral != value:
        raise AmountError(f"VND has no minor unit: {value}")
    if abs(integral) >= _LIMIT:
        raise AmountError(f"amount out of range: {value}")
    return int(integral)


def vnd_from_cell(value: object) -> int:
    """A spreadsheet cell (str, int, float or Decimal) as VND.

    XLSX stores numbers as IEEE doubles; integers below 2**53 survive that exactly, and the shortest
    ``repr`` of a double gives back the digits Excel wrote, so going through ``Decimal(repr(x))``
    never introduces binary noise. A non-integral value is still an error (no minor unit).
    """
    if isinstance(value, bool):
        raise AmountError(f"not an amount: {value!r}")
    if isinstance(value, int):
        if abs(value) >= _LIMIT:
            raise AmountError(f"amount out of range: {value}")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AmountError(f"not an amount: {value!r}")
        return decimal_to_vnd(Decimal(repr(value)))
    if isinstance(value, Decimal):
        return decimal_to_vnd(value)
    if isinstance(value, str):
        return parse_vnd(value)
    raise AmountError(f"not an amount: {value!r}")


def parse_integer_vnd(text: str) -> int:
    """Plain integer VND as provider settlement files carry it (``"150000"``, ``"-3300"``)."""
    s = text.strip()
    if not _INTEGER.fullmatch(s):
        raise AmountError(f"not an integer VND amount: {text!r}")
    return int(s)
