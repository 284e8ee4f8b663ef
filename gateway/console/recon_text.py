"""The reconciliation engine's explanations, in the staff member's language.

The engine stores each item's ``reason`` and ``detail`` as short English phrases (they are part of the
contract §9 JSON, which machines read); the console shows them translated. A phrase this module does not
know — a newer engine's — is shown as stored rather than hidden.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from flask_babel import gettext, lazy_gettext

from gateway.console.base import money, status_label

REASONS: Final = {
    # level (a): payment ↔ provider line
    "exact match": lazy_gettext("exact match"),
    "confirmed by query": lazy_gettext("confirmed by a provider query"),
    "confirmed by bank statement": lazy_gettext("confirmed by the bank statement"),
    "same provider transaction as an earlier line": lazy_gettext(
        "same provider transaction as an earlier line"
    ),
    "same reference as an earlier line": lazy_gettext("same reference as an earlier line"),
    "attempt already matched by another line": lazy_gettext("payment already matched by another line"),
    "no payment attempt with this reference": lazy_gettext("no payment with this reference"),
    "provider amount above ours": lazy_gettext("the provider's amount is above ours"),
    "provider amount below ours": lazy_gettext("the provider's amount is below ours"),
    "fee above the schedule": lazy_gettext("fee above the fee schedule"),
    "fee below the schedule": lazy_gettext("fee below the fee schedule"),
    "no provider line within the settlement window": lazy_gettext(
        "no provider line within the settlement window"
    ),
    "awaiting the provider line": lazy_gettext("awaiting the provider's line"),
    # refunds
    "refund matched": lazy_gettext("refund matched"),
    "refund already matched by another line": lazy_gettext("refund already matched by another line"),
    "refund already matched by an earlier line": lazy_gettext("refund already matched by an earlier line"),
    "refund not recorded at the gateway": lazy_gettext("refund not recorded at the gateway"),
    "provider refund above ours": lazy_gettext("the provider's refund is above ours"),
    "provider refund below ours": lazy_gettext("the provider's refund is below ours"),
    "refund not reflected in the provider's settlement file": lazy_gettext(
        "refund not reflected in the provider's settlement file"
    ),
    "awaiting the provider refund line": lazy_gettext("awaiting the provider's refund line"),
    # level (b): payout ↔ statement credit
    "payout matches the settlement batch": lazy_gettext("payout matches the settlement batch"),
    "credit above the settlement batch": lazy_gettext("credit above the settlement batch"),
    "credit below the settlement batch": lazy_gettext("credit below the settlement batch"),
    "payout not credited within the settlement window": lazy_gettext(
        "payout not credited within the settlement window"
    ),
    # bank level: statement line ↔ single payment
    "bank transfer already matched": lazy_gettext("bank transfer already matched"),
    "transfer above the attempt": lazy_gettext("transfer above the payment's amount"),
    "transfer below the attempt": lazy_gettext("transfer below the payment's amount"),
    "amount differs from the open bank transfer": lazy_gettext("amount differs from the open bank transfer"),
    "order not paid at the gateway": lazy_gettext("order not paid at the gateway"),
    "order already paid": lazy_gettext("order already paid"),
    "refund already matched by another debit": lazy_gettext("refund already matched by another debit"),
    "debit above the refund": lazy_gettext("debit above the refund"),
    "debit below the refund": lazy_gettext("debit below the refund"),
    "refund paid by bank transfer": lazy_gettext("refund paid by bank transfer"),
    "reversal of an earlier booking": lazy_gettext("reversal of an earlier booking"),
    "money with no dossier": lazy_gettext("money with no dossier"),
    "debit not explained": lazy_gettext("debit not explained"),
    "no bank credit within the settlement window": lazy_gettext(
        "no bank credit within the settlement window"
    ),
    "refund not reflected in the bank statement": lazy_gettext("refund not reflected in the bank statement"),
    "awaiting the bank debit of the refund": lazy_gettext("awaiting the bank debit of the refund"),
    "awaiting the bank credit": lazy_gettext("awaiting the bank credit"),
    "awaiting the payout credit": lazy_gettext("awaiting the payout credit"),
}

_PATTERNS: Final[tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...]] = (
    (
        re.compile(r"attempt (\w+) at the gateway"),
        lambda m: gettext("payment %(status)s at the gateway", status=status_label(m[1]).lower()),
    ),
    (
        re.compile(r"refund (\w+) at the gateway"),
        lambda m: gettext("refund %(status)s at the gateway", status=status_label(m[1]).lower()),
    ),
    (
        re.compile(r"transfer received while the order is (\w+)"),
        lambda m: gettext(
            "transfer received while the order is %(status)s", status=status_label(m[1]).lower()
        ),
    ),
    (
        re.compile(r"order already paid through (\S+)"),
        lambda m: gettext("order already paid through %(provider)s", provider=m[1]),
    ),
    (
        re.compile(r"provider query: (\w+)"),
        lambda m: gettext("provider query: %(outcome)s", outcome=status_label(m[1]).lower()),
    ),
    (
        re.compile(r"fee (\d+) VND, schedule (\d+) VND"),
        lambda m: gettext(
            "fee %(fee)s, schedule %(schedule)s", fee=money(int(m[1])), schedule=money(int(m[2]))
        ),
    ),
    (
        re.compile(r"first seen as line (\d+)"),
        lambda m: gettext("first seen as line %(line)s", line=m[1]),
    ),
    (
        re.compile(r"(\d+) lines: gross (\d+) − fee (\d+) − refunds (\d+) = (\d+) VND"),
        lambda m: gettext(
            "%(count)s lines: gross %(gross)s − fees %(fees)s − refunds %(refunds)s = %(net)s",
            count=m[1],
            gross=money(int(m[2])),
            fees=money(int(m[3])),
            refunds=money(int(m[4])),
            net=money(int(m[5])),
        ),
    ),
)


def explain(text: str | None) -> str:
    """``text`` (an item's reason or detail) in the current language, or as stored if unknown."""
    if not text:
        return ""
    known = REASONS.get(text)
    if known is not None:
        return str(known)
    for pattern, render in _PATTERNS:
        match = pattern.fullmatch(text)
        if match:
            return render(match)
    return text
