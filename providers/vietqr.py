"""VietQR / NAPAS 247 bank transfer (providers.md §4).

The gateway shows a dynamic VietQR (§4.1) for the collection account whose transfer content (tag 62/08) is
the attempt's reference; the citizen pays it from any banking app. The QR itself has no callback (§4.3):
the payment is confirmed by the collecting bank's signed credit notification (RSA-SHA256 over the raw
body, :mod:`providers.bank_notifications`) whose remittance text carries the reference. There is no
browser redirect, no status API and no refund API (refunds are bank transfers recorded by staff).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, Final

import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.domain.errors import MalformedNotification, SignatureVerificationError
from gateway.settings import ProviderCredentials
from providers.bank_notifications import DEFAULT_MAPPING, BankNotification, verify_and_parse
from providers.base import (
    Ack,
    AckResponse,
    CallbackRequest,
    Notification,
    Outcome,
    PaymentProvider,
    PaymentRedirect,
    PaymentRequest,
    QueryRequest,
)
from providers.emqr import build_vietqr
from providers.rsa_signing import (
    generate_private_key_pem,
    load_private_key,
    load_public_keys,
    read_pem_files,
)

log = logging.getLogger(__name__)

# Defaults used when no VIETQR_* variable is set: a demo collection account at the emulator bank
# (contract §2, §10). 970436 is Vietcombank's acquirer BIN; the account is not real.
EMULATOR_BANK_BIN: Final = "970436"
EMULATOR_ACCOUNT_NO: Final = "0011001234567"
EMULATOR_ACCOUNT_NAME: Final = "KHO BAC NHA NUOC DEMO"
EMULATOR_BANK_NAME: Final = "Vietcombank (giả lập)"
# The emulator bank's RSA key pair, generated once under the instance folder (never in production: only
# an emulated provider uses it).
EMULATOR_KEY_PATH: Final = Path("emulator") / "vietqr" / "bank_private.pem"

# Optional: the collecting bank's public key(s), PEM file paths, comma separated during a rotation.
PUBLIC_KEYS_VARIABLE: Final = "VIETQR_BANK_PUBLIC_KEYS"

QR_PAGE_PATH: Final = "/pay/qr/"

# Our attempt reference (gateway/domain/references.py new_reference): GW + yymmdd + 6 symbols of the
# Crockford-style alphabet (no I, L, O, U). Banking apps may change its case in the remittance text.
REFERENCE_RE: Final = re.compile(r"GW[0-9]{6}[0-9A-HJKMNP-TV-Z]{6}", re.IGNORECASE)
_BIN_RE: Final = re.compile(r"[0-9]{6}")
_ACCOUNT_RE: Final = re.compile(r"[0-9A-Za-z]{1,19}")

# Answers to the bank's notification POST (contract §6). Everything the gateway recorded — paid, a
# duplicate, an unknown reference, a different amount (kept as a discrepancy) — is "00" so that the bank
# stops resending; a bad signature is refused; our own failure asks the bank to retry.
_RECORDED: Final = (200, {"code": "00", "message": "ok"})
ACK_ANSWERS: Final[Mapping[Ack, tuple[int, Mapping[str, str]]]] = {
    Ack.OK: _RECORDED,
    Ack.ALREADY: _RECORDED,
    Ack.NOT_FOUND: _RECORDED,
    Ack.BAD_AMOUNT: _RECORDED,
    Ack.BAD_SIGNATURE: (401, {"code": "97", "message": "invalid signature"}),
    Ack.ERROR: (500, {"code": "99", "message": "error, retry"}),
}


def find_reference(*texts: str | None) -> str | None:
    """The first of our references found in ``texts`` (upper-cased), or None.

    Raises:
        MalformedNotification: one text names two different references — which order was paid is a
            decision for reconciliation, not a guess.
    """
    for text in texts:
        if not text:
            continue
        found = {match.upper() for match in REFERENCE_RE.findall(text)}
        if len(found) > 1:
            raise MalformedNotification(
                f"several order references in one transfer: {', '.join(sorted(found))}"
            )
        if found:
            return found.pop()
    return None


def ensure_emulator_key(instance_path: str) -> bytes:
    """The emulator bank's private key PEM, generated on first use into ``<instance>/emulator/vietqr/``.

    Created 0600 and published with an atomic ``link`` so that concurrent workers never read half a key
    and never overwrite one another's: the first writer wins, the others read its key.
    """
    path = Path(instance_path) / EMULATOR_KEY_PATH
    if path.is_file():
        return path.read_bytes()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".bank_private-", suffix=".pem", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(generate_private_key_pem())
        with contextlib.suppress(FileExistsError):  # another worker was first: use its key
            os.link(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path.read_bytes()


class VietqrProvider(PaymentProvider):
    """VietQR bank transfer confirmed by the collecting bank's signed credit notification (§4.3)."""

    code: ClassVar[str] = "vietqr"
    display_name: ClassVar[str] = "Chuyển khoản VietQR"
    methods: ClassVar[tuple[str, ...]] = ("bank_transfer",)
    # bank_notifications: the bank POSTs its signed JSON.
    callback_methods: ClassVar[tuple[str, ...]] = ("POST",)
    # §4.3: a plain transfer has no refund API; staff refund by bank transfer and record it.
    manual_refunds: ClassVar[bool] = True

    def __init__(
        self,
        credentials: ProviderCredentials,
        *,
        base_url: str,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(credentials, base_url=base_url, session=session, timeout=timeout, clock=clock)
        self._key_lock = threading.Lock()
        self._public_keys: tuple[rsa.RSAPublicKey, ...] | None = None
        key_files = credentials.get(PUBLIC_KEYS_VARIABLE).strip()
        if key_files:
            # A missing or unreadable key file is a start-up error (ValueError), never a silent pass.
            self._public_keys = load_public_keys(read_pem_files(key_files))

        if credentials.emulated:
            self.bank_bin = EMULATOR_BANK_BIN
            self.account_no = EMULATOR_ACCOUNT_NO
            self.account_name = EMULATOR_ACCOUNT_NAME
            self.bank_name = credentials.get("VIETQR_BANK_NAME").strip() or EMULATOR_BANK_NAME
            return
        self.bank_bin = credentials.get("VIETQR_BANK_BIN").strip()
        self.account_no = credentials.get("VIETQR_ACCOUNT_NO").strip()
        self.account_name = credentials.get("VIETQR_ACCOUNT_NAME").strip()
        self.bank_name = credentials.get("VIETQR_BANK_NAME").strip() or self.bank_bin
        if not _BIN_RE.fullmatch(self.bank_bin):
            raise ValueError(f"vietqr: VIETQR_BANK_BIN must be the bank's 6-digit BIN, got {self.bank_bin!r}")
        # §4.1 tag 38/01/01: an account number of at most 19 characters.
        if not _ACCOUNT_RE.fullmatch(self.account_no):
            raise ValueError("vietqr: VIETQR_ACCOUNT_NO must be 1..19 letters or digits")
        if not self.account_name:
            raise ValueError("vietqr: missing VIETQR_ACCOUNT_NAME")

    # ---- keys -----------------------------------------------------------------------------------------

    def emulator_private_key_pem(self) -> bytes:
        """The emulator bank's signing key (emulated provider only; generated on first use)."""
        if not self.emulated:
            raise RuntimeError("vietqr: the emulator bank key exists only for an emulated provider")
        return ensure_emulator_key(self.credentials.instance_path)

    def bank_public_keys(self) -> tuple[rsa.RSAPublicKey, ...]:
        """The keys a notification must verify against.

        Raises:
            SignatureVerificationError: none configured and not emulated — fail closed.
        """
        with self._key_lock:
            if self._public_keys is None:
                if not self.emulated:
                    raise SignatureVerificationError("no bank key configured")
                # Lazily, so that building the app does not generate an RSA key nobody uses.
                private = load_private_key(self.emulator_private_key_pem())
                self._public_keys = (private.public_key(),)
            return self._public_keys

    # ---- pay (§4.1) -------------------------------------------------------------------------------------

    def build_payment_request(self, request: PaymentRequest) -> PaymentRedirect:
        if isinstance(request.amount, bool) or not isinstance(request.amount, int) or request.amount <= 0:
            raise ValueError(f"amount must be a positive integer number of VND, got {request.amount!r}")
        # §4.3: the transfer content (62/08) reaches the bank statement; it is the reference alone, so that
        # the bank's notification and reconciliation find the order from it.
        payload = build_vietqr(self.bank_bin, self.account_no, request.amount, request.reference)
        return PaymentRedirect(
            redirect_url=f"{self.base_url.rstrip('/')}{QR_PAGE_PATH}{request.reference}",
            qr_payload=payload,
            provider_data={
                "bank_bin": self.bank_bin,
                "account_no": self.account_no,
                "account_name": self.account_name,
                "bank_name": self.bank_name,
                "transfer_reference": request.reference,
            },
        )

    # ---- the bank's credit notification (§4.3) ------------------------------------------------------------

    def verify_callback(self, request: CallbackRequest) -> Notification:
        # Signature first, on the raw body, before a single field is read (bank_notifications).
        credit = verify_and_parse(request.body, request.headers, self.bank_public_keys())
        return self._notification(credit)

    def _notification(self, credit: BankNotification) -> Notification:
        # Money that names no order of ours, a debit, or a credit to another account is not an error the
        # bank can fix by sending it again: it is answered as recorded (no attempt matches an empty
        # reference) and stays in inbound_notifications for reconciliation (contract §9).
        if credit.direction != "credit":
            return _unmatched(credit, "not_a_credit")
        if credit.account_no is not None and credit.account_no.strip() != self.account_no:
            return _unmatched(credit, "other_account")
        # The bank's own reference field first (when it carries ours), then the remittance text.
        reference = find_reference(credit.reference, credit.remittance)
        if reference is None:
            return _unmatched(credit, "no_reference")
        succeeded = credit.status in DEFAULT_MAPPING.success_values
        return Notification(
            reference=reference,
            # A credit that did not complete moved no money: nothing final, the QR stays payable.
            outcome=Outcome.SUCCEEDED if succeeded else Outcome.PENDING,
            # The credited amount: the pipeline compares it with the attempt and records a difference as a
            # discrepancy (BAD_AMOUNT), never as paid.
            amount=credit.amount if succeeded else None,
            provider_txn_id=credit.transaction_id,
            result_code=credit.status,
            paid_at=credit.transacted_at.astimezone(UTC) if credit.transacted_at else None,
            raw=dict(credit.raw),
        )

    # VietQR has no status API for a plain transfer: the janitor leaves its attempts alone.
    supports_query = False

    def verify_return(self, request: CallbackRequest) -> Notification:
        # A QR is scanned in a banking app: no browser ever comes back to the gateway.
        raise MalformedNotification("VietQR has no return redirect")

    def acknowledge(self, ack: Ack) -> AckResponse:
        status, body = ACK_ANSWERS[ack]
        return AckResponse(
            status=status,
            body=json.dumps(body, separators=(",", ":")).encode(),
            content_type="application/json",
        )

    # ---- query -------------------------------------------------------------------------------------------

    def query(self, request: QueryRequest) -> Notification:
        # §4.3: a plain transfer has no status API; only the bank's notification or a statement confirms it.
        return Notification(
            reference=request.reference,
            outcome=Outcome.UNKNOWN,
            amount=None,
            provider_txn_id=None,
            result_code="no_query_api",
        )


def _unmatched(credit: BankNotification, why: str) -> Notification:
    return Notification(
        reference="",
        outcome=Outcome.UNKNOWN,
        amount=credit.amount,
        provider_txn_id=credit.transaction_id,
        result_code=why,
        paid_at=credit.transacted_at.astimezone(UTC) if credit.transacted_at else None,
        raw=dict(credit.raw),
    )
