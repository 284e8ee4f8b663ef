"""Signed bank notifications: the JSON that collecting banks and national platforms POST to us, signed
with RSA-SHA256 over the raw body (issue 4.4; providers.md §5).

No two banks name their fields alike, so each bank gets a small field mapping; :data:`DEFAULT_MAPPING`
is the documented default (README, "Signed bank notifications"). The signature is verified on the raw
bytes *before* the JSON is parsed.

Default body::

    {"transaction_id": "FT2433100001", "account_no": "0011001234567", "amount": 58000, "currency": "VND",
     "direction": "credit", "status": "success", "reference": "GW261125ABC123",
     "remittance": "GW261125ABC123 nop le phi ho so", "transacted_at": "2026-11-25T10:05:00+07:00"}

with the header ``X-Signature: <base64 RSA-SHA256(raw body)>``. ``reference`` is optional (a plain
account credit, e.g. a VietQR transfer, only has the remittance text).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.domain.errors import MalformedNotification
from providers.rsa_signing import Scheme, verify

CANONICAL_FIELDS = (
    "transaction_id",
    "account_no",
    "amount",
    "currency",
    "direction",
    "status",
    "reference",
    "remittance",
    "transacted_at",
)


@dataclass(frozen=True)
class FieldMapping:
    """Canonical field name -> the bank's field name, plus where the signature travels."""

    fields: Mapping[str, str] = field(default_factory=lambda: {name: name for name in CANONICAL_FIELDS})
    signature_header: str = "X-Signature"
    # The bank's words for a successful / failed transaction, lower-cased.
    success_values: frozenset[str] = frozenset({"success", "succeeded", "paid", "00"})
    failure_values: frozenset[str] = frozenset({"failed", "failure", "cancelled", "canceled"})

    @classmethod
    def from_file(cls, path: str) -> FieldMapping:
        """Load ``{"fields": {...}, "signature_header": ..., "success_values": [...], ...}`` from JSON."""
        try:
            data = json.loads(Path(path).read_bytes())  # UTF-8 (RFC 8259), whatever the locale
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the bank field mapping {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"the bank field mapping {path} must be a JSON object")
        # A misspelt key ("succes_values") would otherwise be ignored silently and the defaults used.
        extra = set(data) - _MAPPING_KEYS
        if extra:
            raise ValueError(f"unknown key(s) in the bank field mapping {path}: {', '.join(sorted(extra))}")
        default = cls()
        given = data.get("fields", {})
        if not isinstance(given, dict) or not all(isinstance(v, str) and v.strip() for v in given.values()):
            raise ValueError(f"'fields' in {path} must map canonical names to the bank's field names")
        fields = {**default.fields, **given}
        unknown = set(fields) - set(CANONICAL_FIELDS)
        if unknown:
            raise ValueError(f"unknown canonical field(s) in {path}: {', '.join(sorted(unknown))}")
        header = data.get("signature_header", default.signature_header)
        if not isinstance(header, str) or not header.strip():
            raise ValueError(f"'signature_header' in {path} must be a non-empty string")
        success = _values(data, "success_values", default.success_values, path)
        failure = _values(data, "failure_values", default.failure_values, path)
        if success & failure:
            raise ValueError(
                f"{path}: value(s) both success and failure: {', '.join(sorted(success & failure))}"
            )
        return cls(
            fields=fields,
            signature_header=header.strip(),
            success_values=success,
            failure_values=failure,
        )


_MAPPING_KEYS = frozenset({"fields", "signature_header", "success_values", "failure_values"})


def _values(data: Mapping[str, Any], key: str, default: frozenset[str], path: str) -> frozenset[str]:
    # A bare string would otherwise become a set of its characters ("paid" -> {"p", "a", "i", "d"}).
    raw = data.get(key, default)
    if not isinstance(raw, list | frozenset) or not all(isinstance(v, str) and v.strip() for v in raw):
        raise ValueError(f"{key!r} in {path} must be a list of non-empty strings")
    return frozenset(v.strip().lower() for v in raw)


DEFAULT_MAPPING = FieldMapping()


@dataclass(frozen=True)
class BankNotification:
    """A verified bank message in canonical terms. ``amount`` is integer VND."""

    transaction_id: str
    amount: int
    currency: str
    direction: str
    status: str
    account_no: str | None
    reference: str | None
    remittance: str
    transacted_at: datetime | None
    raw: Mapping[str, Any]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def verify_and_parse(
    body: bytes,
    headers: Mapping[str, str],
    keys: Sequence[rsa.RSAPublicKey],
    *,
    mapping: FieldMapping = DEFAULT_MAPPING,
    scheme: Scheme = Scheme.PKCS1V15,
) -> BankNotification:
    """Verify the signature on the raw body, then read the fields through ``mapping``.

    Raises:
        SignatureVerificationError: missing or invalid signature.
        MalformedNotification: signed, but not a well-formed notification.
    """
    verify(keys, body, _header(headers, mapping.signature_header), scheme)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedNotification("the body is not JSON") from exc
    if not isinstance(data, dict):
        raise MalformedNotification("the body is not a JSON object")

    def get(name: str) -> Any:
        return data.get(mapping.fields[name])

    amount = get("amount")
    # Money is an integer number of VND: a float or a string with separators is refused, not rounded.
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise MalformedNotification("amount must be a non-negative integer number of VND")
    txn = get("transaction_id")
    if isinstance(txn, bool) or not isinstance(txn, str | int) or not str(txn).strip():
        raise MalformedNotification("transaction_id is missing")
    currency = str(get("currency") or "VND").upper()
    if currency != "VND":
        raise MalformedNotification(f"currency {currency} is not VND")
    transacted_at = None
    raw_time = get("transacted_at")
    if raw_time:
        try:
            transacted_at = datetime.fromisoformat(str(raw_time))
        except ValueError as exc:
            raise MalformedNotification("transacted_at is not ISO-8601") from exc
        if transacted_at.tzinfo is None:
            raise MalformedNotification("transacted_at has no UTC offset")
    reference = get("reference")
    account = get("account_no")
    # The documented defaults apply only to an ABSENT field: a signed but empty status ("", 0, false)
    # must not read as "success".
    direction, status = get("direction"), get("status")
    return BankNotification(
        transaction_id=str(txn).strip(),
        amount=amount,
        currency=currency,
        direction="credit" if direction is None else str(direction).strip().lower(),
        status="success" if status is None else str(status).strip().lower(),
        account_no=str(account) if account else None,
        reference=str(reference).strip() if reference else None,
        remittance=str(get("remittance") or ""),
        transacted_at=transacted_at,
        raw=data,
    )
