"""Money is an integer number of VND, end to end (no floats, no rounding)."""

from __future__ import annotations

MAX_AMOUNT = 10_000_000_000  # contract §4 / issue 3.6: one order above 10 billion VND is refused
MAX_ITEMS = 50


def format_vnd(amount: int) -> str:
    """``1234567`` -> ``"1.234.567"`` (Vietnamese thousands separator), for people only."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TypeError("VND amounts are integers")
    sign = "-" if amount < 0 else ""
    return sign + f"{abs(amount):,}".replace(",", ".")
