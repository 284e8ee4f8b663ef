"""EMVCo merchant-presented QR payloads, as VietQR / NAPAS 247 uses them (providers.md §4.1, §4.2).

Pure functions, no I/O. A payload is a run of TLV data objects — 2-digit tag, 2-digit decimal length, value —
ending with the CRC object ``63 04 XXXX``. The CRC is CRC-16/CCITT-FALSE over everything up to and
including the literal ``6304`` (§4.1). Templates (tags 26–51, merchant account information, and 62,
additional data) hold TLV objects of their own.

:func:`parse` / :func:`build` work on any EMVCo payload and round-trip exactly; :func:`build_vietqr` and
:func:`parse_vietqr` speak the NAPAS tag 38 layout.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

# §4.1 tag 38: NAPAS' GUID and the two service codes (to an account / to a card).
NAPAS_GUID: Final = "A000000727"
SERVICE_TO_ACCOUNT: Final = "QRIBFTTA"
SERVICE_TO_CARD: Final = "QRIBFTTC"
SERVICES: Final = frozenset({SERVICE_TO_ACCOUNT, SERVICE_TO_CARD})

TAG_FORMAT: Final = "00"  # payload format indicator, always "01"
TAG_INITIATION: Final = "01"  # 11 static (reusable) / 12 dynamic (one-off, carries the amount)
TAG_NAPAS: Final = "38"
TAG_MCC: Final = "52"
TAG_CURRENCY: Final = "53"
TAG_AMOUNT: Final = "54"
TAG_COUNTRY: Final = "58"
TAG_MERCHANT_NAME: Final = "59"
TAG_MERCHANT_CITY: Final = "60"
TAG_ADDITIONAL: Final = "62"
TAG_CRC: Final = "63"

STATIC: Final = "11"
DYNAMIC: Final = "12"
CURRENCY_VND: Final = "704"  # ISO 4217 numeric
COUNTRY_VN: Final = "VN"

# §4.1 tag 62 sub-tags.
SUB_BILL_NUMBER: Final = "01"
SUB_MOBILE: Final = "02"
SUB_STORE: Final = "03"
SUB_LOYALTY: Final = "04"
SUB_REFERENCE_LABEL: Final = "05"
SUB_CUSTOMER_LABEL: Final = "06"
SUB_TERMINAL: Final = "07"
SUB_PURPOSE: Final = "08"

ADDITIONAL_MAX: Final = 25  # §4.1: each tag 62 sub-field is at most 25 characters
ACCOUNT_MAX: Final = 19  # §4.1: account/card number ≤ 19
AMOUNT_MAX_DIGITS: Final = 13  # §4.1: tag 54 ≤ 13 characters
MAX_VALUE_LENGTH: Final = 99  # two decimal digits of length

_TAG_RE: Final = re.compile(r"[0-9]{2}")
_BIN_RE: Final = re.compile(r"[0-9]{6}")
_ACCOUNT_RE: Final = re.compile(r"[0-9A-Za-z]{1,19}")
_DIGITS_RE: Final = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() would accept "²"
_CRC_RE: Final = re.compile(r"[0-9A-Fa-f]{4}")
_SPACES_RE: Final = re.compile(r"\s+")
_NOT_PRINTABLE_ASCII_RE: Final = re.compile(r"[^\x20-\x7e]")


class InvalidPayload(ValueError):
    """Not a well-formed EMVCo payload: a bad CRC, a broken TLV run, or a required field missing."""


# --------------------------------------------------------------------------------------------------------
# CRC and raw TLV
# --------------------------------------------------------------------------------------------------------


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, xorout 0 (§4.1).

    The standard check value: ``crc16_ccitt_false(b"123456789") == 0x29B1``.
    """
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def crc_hex(text: str) -> str:
    """The 4 uppercase hex digits of ``text``'s CRC (``text`` must already end with ``6304``)."""
    return f"{crc16_ccitt_false(text.encode('utf-8')):04X}"


def encode(tag: str, value: str) -> str:
    """One data object: ``tag`` + 2-digit length + ``value``."""
    if not _TAG_RE.fullmatch(tag):
        raise ValueError(f"an EMVCo tag is two digits, got {tag!r}")
    if len(value) > MAX_VALUE_LENGTH:
        raise ValueError(f"tag {tag}: a value is at most {MAX_VALUE_LENGTH} characters, got {len(value)}")
    return f"{tag}{len(value):02d}{value}"


def encode_all(fields: Iterable[tuple[str, str]]) -> str:
    """Data objects concatenated in the given order (a template's value, or a payload without its CRC)."""
    return "".join(encode(tag, value) for tag, value in fields)


def parse_tlv(text: str) -> list[tuple[str, str]]:
    """Split a run of data objects into ``(tag, value)`` pairs, in order.

    Raises:
        InvalidPayload: a non-numeric tag or length, a value running past the end, or a tag seen twice
            (EMVCo: each data object appears once; a second amount must never be smuggled in).
    """
    fields: list[tuple[str, str]] = []
    seen: set[str] = set()
    pos = 0
    while pos < len(text):
        head = text[pos : pos + 4]
        if len(head) < 4 or not _TAG_RE.fullmatch(head[:2]) or not _TAG_RE.fullmatch(head[2:]):
            raise InvalidPayload(f"malformed data object at position {pos}: {text[pos : pos + 8]!r}")
        tag, length = head[:2], int(head[2:])
        value = text[pos + 4 : pos + 4 + length]
        if len(value) != length:
            raise InvalidPayload(
                f"tag {tag} at position {pos} declares {length} characters, {len(value)} left"
            )
        if tag in seen:
            raise InvalidPayload(f"tag {tag} appears twice")
        seen.add(tag)
        fields.append((tag, value))
        pos += 4 + length
    return fields


def is_template(tag: str) -> bool:
    """Tags whose value is itself TLV: 26–51 (merchant account information) and 62 (additional data)."""
    return tag == TAG_ADDITIONAL or 26 <= int(tag) <= 51


# --------------------------------------------------------------------------------------------------------
# Whole payloads
# --------------------------------------------------------------------------------------------------------


def parse(payload: str) -> list[tuple[str, str]]:
    """Verify and split a payload into its top-level ``(tag, value)`` pairs, without the CRC object.

    The CRC is checked over everything up to and including ``6304`` (§4.1); the templates (26–51, 62) are
    checked to be well-formed TLV but returned as raw strings (read them with :func:`parse_tlv`), so that
    ``build(parse(p)) == p`` for every valid payload ``p``.

    Raises:
        InvalidPayload: a wrong CRC, malformed TLV, no payload format indicator first, or no CRC last.
    """
    if not isinstance(payload, str) or not payload:
        raise InvalidPayload("empty payload")
    fields = parse_tlv(payload)
    last_tag, last_value = fields[-1]
    if last_tag != TAG_CRC or len(last_value) != 4:
        raise InvalidPayload("the payload does not end with the CRC object 6304XXXX")
    if not _CRC_RE.fullmatch(last_value):
        raise InvalidPayload(f"the CRC {last_value!r} is not 4 hex digits")
    expected = crc_hex(payload[:-4])
    # Generators differ in hex case; the value is what matters.
    if last_value.upper() != expected:
        raise InvalidPayload(f"CRC mismatch: the payload says {last_value}, its content gives {expected}")
    fields = fields[:-1]
    if not fields or fields[0][0] != TAG_FORMAT:
        raise InvalidPayload("the payload does not start with the payload format indicator (tag 00)")
    for tag, value in fields:
        if is_template(tag):
            try:
                parse_tlv(value)
            except InvalidPayload as exc:
                raise InvalidPayload(f"template {tag}: {exc}") from exc
    return fields


def build(fields: Sequence[tuple[str, str]]) -> str:
    """Encode ``fields`` in the given order and append ``6304`` + CRC (§4.1).

    Raises:
        ValueError: a malformed tag, a value over 99 characters, or a CRC object among ``fields``.
    """
    if any(tag == TAG_CRC for tag, _ in fields):
        raise ValueError("the CRC object is appended by build(); do not pass tag 63")
    body = encode_all(fields) + TAG_CRC + "04"
    return body + crc_hex(body)


# --------------------------------------------------------------------------------------------------------
# VietQR (NAPAS tag 38)
# --------------------------------------------------------------------------------------------------------


def ascii_text(text: str) -> str:
    """Vietnamese without diacritics, printable ASCII only, whitespace collapsed (§4.1: ASCII only).

    ``đ``/``Đ`` have no Unicode decomposition and are mapped by hand, as subiz/vietqr does.
    """
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    # Whitespace becomes a space first (a tab is not printable), then what is left outside ASCII goes.
    printable = _NOT_PRINTABLE_ASCII_RE.sub("", _SPACES_RE.sub(" ", stripped))
    return _SPACES_RE.sub(" ", printable).strip()


def build_vietqr(
    bin: str,  # shadows the builtin on purpose: "BIN" is what NAPAS and every bank call it
    account: str,
    amount: int | None,
    purpose: str | None,
    *,
    service: str = SERVICE_TO_ACCOUNT,
    bill_number: str | None = None,
) -> str:
    """A VietQR payload (§4.1): dynamic (``01=12``) with tag 54 when ``amount`` is given, else static.

    Args:
        bin: the beneficiary bank's 6-digit acquirer BIN (e.g. ``970436`` Vietcombank).
        account: account number (``QRIBFTTA``) or card number (``QRIBFTTC``), at most 19 characters.
        amount: integer VND, 1 to 13 digits; ``None`` for a static QR where the payer types the amount.
        purpose: the transfer content (tag 62/08) — what reaches the bank statement (§4.3). Diacritics are
            stripped; at most 25 ASCII characters. It is never cut short: the purpose carries the order
            reference, and a silently truncated reference would lose the payment.
        service: ``QRIBFTTA`` (to an account) or ``QRIBFTTC`` (to a card).
        bill_number: optional tag 62/01 (the NAPAS worked example §4.2 carries one).

    Raises:
        ValueError: any argument out of the ranges above.
    """
    if not isinstance(bin, str) or not _BIN_RE.fullmatch(bin):
        raise ValueError(f"the bank BIN is 6 digits, got {bin!r}")
    if not isinstance(account, str) or not _ACCOUNT_RE.fullmatch(account):
        raise ValueError(f"the account number is 1..{ACCOUNT_MAX} letters or digits, got {account!r}")
    if service not in SERVICES:
        raise ValueError(f"the service code is one of {sorted(SERVICES)}, got {service!r}")
    if amount is not None:
        # Money is an integer number of VND: never a float, never a bool.
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ValueError(f"the amount is a positive integer number of VND, got {amount!r}")
        if len(str(amount)) > AMOUNT_MAX_DIGITS:
            raise ValueError(f"the amount has more than {AMOUNT_MAX_DIGITS} digits: {amount}")

    additional: list[tuple[str, str]] = []
    for sub, raw in ((SUB_BILL_NUMBER, bill_number), (SUB_PURPOSE, purpose)):
        if raw is None:
            continue
        text = ascii_text(raw)
        if len(text) > ADDITIONAL_MAX:
            raise ValueError(f"tag 62/{sub} is at most {ADDITIONAL_MAX} characters, got {text!r}")
        if text:
            additional.append((sub, text))

    beneficiary = encode_all([("00", bin), ("01", account)])
    merchant = encode_all([("00", NAPAS_GUID), ("01", beneficiary), ("02", service)])
    fields: list[tuple[str, str]] = [
        (TAG_FORMAT, "01"),
        (TAG_INITIATION, STATIC if amount is None else DYNAMIC),
        (TAG_NAPAS, merchant),
        (TAG_CURRENCY, CURRENCY_VND),
    ]
    if amount is not None:
        fields.append((TAG_AMOUNT, str(amount)))
    fields.append((TAG_COUNTRY, COUNTRY_VN))
    if additional:
        fields.append((TAG_ADDITIONAL, encode_all(additional)))
    return build(fields)


@dataclass(frozen=True)
class VietQrData:
    """What a banking app reads from a VietQR (§4.1)."""

    bin: str
    account: str
    service: str
    amount: int | None
    purpose: str | None
    bill_number: str | None
    dynamic: bool
    currency: str
    country: str | None
    merchant_name: str | None
    crc: str
    additional: tuple[tuple[str, str], ...] = ()
    fields: tuple[tuple[str, str], ...] = field(default=(), repr=False)


def parse_vietqr(payload: str) -> VietQrData:
    """Verify ``payload`` and read its VietQR fields.

    Raises:
        InvalidPayload: anything :func:`parse` refuses, no NAPAS tag 38 (e.g. a VNPAY-QR merchant code on
            tag 26), a malformed beneficiary template, a currency other than VND or an amount that is not a
            positive whole number of VND.
    """
    fields = parse(payload)
    top = dict(fields)
    raw_napas = top.get(TAG_NAPAS)
    if raw_napas is None:
        raise InvalidPayload("not a VietQR: no NAPAS merchant account information (tag 38)")
    napas = dict(parse_tlv(raw_napas))
    if napas.get("00") != NAPAS_GUID:
        raise InvalidPayload(f"not a VietQR: tag 38 GUID is {napas.get('00')!r}, not {NAPAS_GUID}")
    try:
        beneficiary = dict(parse_tlv(napas.get("01", "")))
    except InvalidPayload as exc:
        raise InvalidPayload(f"tag 38/01 (beneficiary): {exc}") from exc
    bank_bin = beneficiary.get("00", "")
    account = beneficiary.get("01", "")
    if not _BIN_RE.fullmatch(bank_bin):
        raise InvalidPayload(f"tag 38/01/00: the bank BIN is 6 digits, got {bank_bin!r}")
    if not _ACCOUNT_RE.fullmatch(account):
        raise InvalidPayload(
            f"tag 38/01/01: the account is 1..{ACCOUNT_MAX} letters or digits, got {account!r}"
        )

    currency = top.get(TAG_CURRENCY, "")
    if currency != CURRENCY_VND:
        raise InvalidPayload(f"tag 53: VietQR is in VND (704), got {currency!r}")
    amount: int | None = None
    raw_amount = top.get(TAG_AMOUNT)
    if raw_amount is not None:
        # §4.1: digits only for VND; "1000.5" or "0" is not an amount anyone can pay.
        if not _DIGITS_RE.fullmatch(raw_amount) or int(raw_amount) <= 0:
            raise InvalidPayload(f"tag 54: not a positive whole number of VND: {raw_amount!r}")
        amount = int(raw_amount)

    additional = tuple(parse_tlv(top[TAG_ADDITIONAL])) if TAG_ADDITIONAL in top else ()
    extra = dict(additional)
    return VietQrData(
        bin=bank_bin,
        account=account,
        service=napas.get("02", ""),
        amount=amount,
        purpose=extra.get(SUB_PURPOSE),
        bill_number=extra.get(SUB_BILL_NUMBER),
        dynamic=top.get(TAG_INITIATION) == DYNAMIC,
        currency=currency,
        country=top.get(TAG_COUNTRY),
        merchant_name=top.get(TAG_MERCHANT_NAME),
        crc=payload[-4:].upper(),
        additional=additional,
        fields=tuple(fields),
    )
