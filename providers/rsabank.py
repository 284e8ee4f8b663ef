"""Signed bank notification connector: collecting banks and national platforms that sign with RSA
(issue 4.4; providers.md §5; the protocol we expose is docs/rsabank.md).

providers.md §5 finds no public specification for PayGov, the National Public Service Portal's payment
platform or the banks behind them, only the common shape (VinID, NAPAS): RSA-SHA256 signatures verified with
the platform's public key. So the gateway publishes its own small protocol (docs/rsabank.md) and a bank is
connected by configuration:

* every message in both directions is JSON whose **raw body bytes** are signed RSA-SHA256 (PKCS#1 v1.5 by
  default, PSS selectable), the base64 signature in one header (default ``X-Signature``);
* the bank's public keys (several during a rotation) verify what the bank sends — notifications and its
  answers to our API calls — and OUR private key signs our requests (create, query, refund);
* the bank's notification field names come from a per-bank mapping file (``providers.bank_notifications``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import requests
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.domain.errors import (
    GatewayError,
    MalformedNotification,
    ProviderUnavailable,
    SignatureVerificationError,
)
from gateway.settings import ProviderCredentials
from providers.bank_notifications import DEFAULT_MAPPING, FieldMapping, verify_and_parse
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
    RefundRequest,
    RefundResult,
)
from providers.rsa_signing import (
    Scheme,
    generate_private_key_pem,
    load_private_key,
    load_public_keys,
    read_pem_files,
    sign,
    verify,
)
from providers.vnpay import ascii_order_info

log = logging.getLogger(__name__)

# Emulated mode (all RSABANK_* unset, contract §2 / §10): the gateway's own emulator, with two demo key pairs
# generated once under <instance>/emulator/rsabank/ and reused, so several worker processes agree.
EMULATOR_PATH: Final = "/_emulator/rsabank"
EMULATOR_KEY_DIR: Final = ("emulator", "rsabank")
EMULATOR_BANK_KEY_FILE: Final = "bank_private.pem"
EMULATOR_GATEWAY_KEY_FILE: Final = "gateway_private.pem"

DISPLAY_NAME: Final = "Ngân hàng liên kết"
REQUEST_ID_HEADER: Final = "X-Request-Id"
VN_TZ: Final = ZoneInfo("Asia/Ho_Chi_Minh")  # docs/rsabank.md: expires_at is sent in GMT+7, with its offset
CURRENCY: Final = "VND"
DESCRIPTION_MAX: Final = 255

# docs/rsabank.md §6: not final yet. Success and failure words come from the bank's mapping.
PENDING_VALUES: Final = frozenset({"pending", "processing"})

# 4xx answers that are not a refusal of this request: try again later (the outcome is unknown).
_RETRYABLE_4XX: Final = frozenset({408, 425, 429})
# A refund that the bank says already exists (or is being processed) did not fail: ask again.
_CONFLICT: Final = 409

# docs/rsabank.md §5.1 (contract §6): HTTP status and compact JSON body per Ack.
ACK_ANSWERS: Final[Mapping[Ack, tuple[int, str, str]]] = {
    Ack.OK: (200, "00", "received"),
    Ack.NOT_FOUND: (200, "01", "unknown reference"),
    Ack.ALREADY: (200, "02", "already processed"),
    Ack.BAD_AMOUNT: (200, "04", "amount mismatch"),
    Ack.BAD_SIGNATURE: (401, "97", "invalid signature"),
    Ack.ERROR: (500, "99", "error, retry"),
}


# --------------------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------------------


def dumps(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes we sign and send: compact JSON, UTF-8 (docs/rsabank.md §2)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def return_message(reference: str, status: str) -> bytes:
    """What the bank signs for the browser redirect: the UTF-8 string ``"reference|status"``."""
    return f"{reference}|{status}".encode()


def to_bank_time(dt: datetime) -> str:
    """An aware instant as ISO-8601 in GMT+7 with its offset, e.g. ``2026-11-25T17:05:00+07:00``."""
    if dt.tzinfo is None:
        # The gateway only holds aware UTC instants; a naive one is a bug, not "local time".
        raise ValueError("naive datetime given to to_bank_time")
    return dt.astimezone(VN_TZ).isoformat(timespec="seconds")


def parse_bank_time(value: Any) -> datetime | None:
    """ISO-8601 with an offset as an aware UTC datetime; None when absent, naive or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else None


def status_outcome(status: str, mapping: FieldMapping = DEFAULT_MAPPING) -> Outcome:
    """The bank's status word (lower-cased) as an Outcome: its success / failure words come from the
    mapping, ``pending``/``processing`` are not final, anything else needs a human (UNKNOWN)."""
    if status in mapping.success_values:
        return Outcome.SUCCEEDED
    if status in mapping.failure_values:
        return Outcome.FAILED
    if status in PENDING_VALUES:
        return Outcome.PENDING
    return Outcome.UNKNOWN


def bank_public_key_pem(pem: bytes) -> bytes:
    """A bank's key as SubjectPublicKeyInfo PEM. Banks often hand out an X.509 certificate (.cer/.crt)
    rather than a bare public key: its key is taken (the certificate's validity is the bank's business)."""
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        return pem
    cert = x509.load_pem_x509_certificate(pem)
    return cert.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@functools.lru_cache(maxsize=16)
def cached_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    """:func:`load_private_key` once per PEM: loading checks the key (~50 ms), and every app built in a test
    run (and the emulator beside it) would otherwise pay it again for the same emulator keys."""
    return load_private_key(pem)


def _spki(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def emulator_key_paths(instance_path: str) -> tuple[Path, Path]:
    """``(bank_private.pem, gateway_private.pem)`` of the emulated bank under ``instance_path``."""
    folder = Path(instance_path).joinpath(*EMULATOR_KEY_DIR)
    return folder / EMULATOR_BANK_KEY_FILE, folder / EMULATOR_GATEWAY_KEY_FILE


def ensure_private_key_file(path: Path) -> bytes:
    """Read the PEM at ``path``, generating it (0600) first when absent.

    Several worker processes may start at once: the key is written to a private temporary file and
    hard-linked into place, which fails if another process won the race; then everyone reads the winner's.
    """
    if path.is_file():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".key-")  # created 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(generate_private_key_pem())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created it first: use theirs
        except OSError:
            # A filesystem without hard links: exclusive create (a concurrent reader may then see a partial
            # file once; it fails loudly at start-up rather than signing with a wrong key).
            with contextlib.suppress(FileExistsError):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(Path(tmp).read_bytes())
    finally:
        os.unlink(tmp)
    return path.read_bytes()


@dataclass(frozen=True)
class BankAnswer:
    """The outcome of one signed API call: ``data`` is the verified JSON object, else ``problem`` says why
    not ("unreachable", "http_503", "garbage", "bad_signature", "http_404" for an unsigned 4xx…)."""

    status: int
    data: Mapping[str, Any] | None
    problem: str | None = None

    @property
    def code(self) -> str:
        """The bank's error code of a signed 4xx answer (docs/rsabank.md §3)."""
        value = (self.data or {}).get("code")
        return str(value) if value not in (None, "") else f"http_{self.status}"

    @property
    def message(self) -> str:
        return str((self.data or {}).get("message") or "")


def _str(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in {"http", "https"} and bool(parts.netloc)


def _int_amount(value: Any) -> int | None:
    # Money is an integer number of VND (contract): a float, a string or a bool is not an amount.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


# --------------------------------------------------------------------------------------------------------
# Adapter
# --------------------------------------------------------------------------------------------------------


class RsabankProvider(PaymentProvider):
    """A bank or national platform speaking docs/rsabank.md: signed JSON both ways, RSA-SHA256."""

    code: ClassVar[str] = "rsabank"
    display_name: ClassVar[str] = DISPLAY_NAME
    methods: ClassVar[tuple[str, ...]] = ("bank_account", "card")
    callback_methods: ClassVar[tuple[str, ...]] = ("POST",)

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
        name = credentials.get("RSABANK_NAME").strip()
        if name:
            # The bank's own name on the citizen page; the class value stays the generic label.
            setattr(self, "display_name", name)  # noqa: B010 - ClassVar in the base class, per instance here
        raw_scheme = credentials.get("RSABANK_SIGNATURE_SCHEME").strip().lower() or Scheme.PKCS1V15.value
        try:
            self.scheme = Scheme(raw_scheme)
        except ValueError:
            raise ValueError(
                f"rsabank: RSABANK_SIGNATURE_SCHEME must be pkcs1v15 or pss, got {raw_scheme!r}"
            ) from None
        map_path = credentials.get("RSABANK_FIELD_MAP").strip()
        try:
            self.mapping = FieldMapping.from_file(map_path) if map_path else DEFAULT_MAPPING
        except ValueError as exc:
            raise ValueError(f"rsabank: RSABANK_FIELD_MAP: {exc}") from exc
        # Only in emulated mode: the emulated bank's private key, for the emulator and NotificationForge.
        self.emulator_bank_private_pem: bytes | None = None

        if credentials.emulated:
            bank_path, gateway_path = emulator_key_paths(credentials.instance_path)
            try:
                self.emulator_bank_private_pem = ensure_private_key_file(bank_path)
                bank_key = cached_private_key(self.emulator_bank_private_pem)
                self.private_key = cached_private_key(ensure_private_key_file(gateway_path))
            except (OSError, ValueError) as exc:
                raise ValueError(f"rsabank: emulator keys under {bank_path.parent}: {exc}") from exc
            self.bank_keys: tuple[rsa.RSAPublicKey, ...] = (bank_key.public_key(),)
            self.endpoint = base_url.rstrip("/") + EMULATOR_PATH
            return

        self.endpoint = credentials.get("RSABANK_ENDPOINT").strip().rstrip("/")
        if not _is_http_url(self.endpoint):
            raise ValueError(
                f"rsabank: RSABANK_ENDPOINT must be an absolute http(s) URL, got {self.endpoint!r}"
            )
        try:
            pems = read_pem_files(credentials.get("RSABANK_PUBLIC_KEYS"))
            self.bank_keys = load_public_keys([bank_public_key_pem(pem) for pem in pems])
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise ValueError(f"rsabank: RSABANK_PUBLIC_KEYS: {exc}") from exc
        try:
            private_pems = read_pem_files(credentials.get("RSABANK_PRIVATE_KEY"))
            if len(private_pems) != 1:
                raise ValueError("exactly one key file is expected (we sign with one key)")
            self.private_key = cached_private_key(private_pems[0])
        except ValueError as exc:
            raise ValueError(f"rsabank: RSABANK_PRIVATE_KEY: {exc}") from exc
        ours = _spki(self.private_key.public_key())
        if any(_spki(key) == ours for key in self.bank_keys):
            # Swapped files: we would then accept as "the bank's" anything signed with our own key.
            raise ValueError("rsabank: RSABANK_PUBLIC_KEYS holds the public half of RSABANK_PRIVATE_KEY")

    # ---- outbound calls (docs/rsabank.md §3) ----------------------------------------------------------

    def signed_request(self, payload: Mapping[str, Any]) -> tuple[bytes, dict[str, str]]:
        """The body bytes and headers of one request to the bank: the raw body signed with OUR key."""
        body = dumps(payload)
        headers = {
            "Content-Type": "application/json",
            REQUEST_ID_HEADER: uuid.uuid4().hex,
            self.mapping.signature_header: sign(self.private_key, body, self.scheme),
        }
        return body, headers

    def call(self, path: str, payload: Mapping[str, Any]) -> BankAnswer:
        """POST ``payload`` to ``{endpoint}{path}`` and verify the answer's signature. Never raises."""
        body, headers = self.signed_request(payload)
        try:
            resp = self.session.post(
                self.endpoint + path,
                data=body,
                headers=headers,
                timeout=self.timeout,
                # A redirect is not an answer; following it would also resend a POST as a GET.
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            log.warning("rsabank %s unreachable: %s", path, exc)
            return BankAnswer(0, None, "unreachable")
        status = resp.status_code
        if not (200 <= status < 300 or 400 <= status < 500):
            log.warning("rsabank %s answered HTTP %s", path, status)
            return BankAnswer(status, None, f"http_{status}")
        raw = resp.content
        try:
            # Signature first, on the raw bytes: nothing of an unverified answer is trusted.
            verify(self.bank_keys, raw, resp.headers.get(self.mapping.signature_header), self.scheme)
        except SignatureVerificationError as exc:
            log.warning("rsabank %s: HTTP %s answer not signed by the bank: %s", path, status, exc)
            if status >= 400:
                return BankAnswer(status, None, f"http_{status}")
            return BankAnswer(status, None, "bad_signature" if json_object(raw) is not None else "garbage")
        data = json_object(raw)
        if data is None:
            return BankAnswer(status, None, "garbage")
        return BankAnswer(status, data)

    # ---- pay (docs/rsabank.md §3.1) ----------------------------------------------------------------

    def build_payment_request(self, request: PaymentRequest) -> PaymentRedirect:
        if isinstance(request.amount, bool) or not isinstance(request.amount, int) or request.amount <= 0:
            raise ValueError(f"amount must be a positive integer number of VND, got {request.amount!r}")
        payload = {
            "merchant_reference": request.reference,
            "amount": request.amount,
            "currency": CURRENCY,
            "description": _description(request.order_info, request.reference),
            "return_url": request.return_url,
            "notify_url": request.notify_url,
            "expires_at": to_bank_time(request.expires_at),
            # null lets the customer choose on the bank's page; a free-form value never reaches the bank.
            "method": request.method if request.method in self.methods else None,
        }
        answer = self.call("/payments", payload)
        if answer.problem:
            raise ProviderUnavailable(f"rsabank: {answer.problem}")
        data = answer.data or {}
        if answer.status >= 400:
            if answer.status in _RETRYABLE_4XX:
                raise ProviderUnavailable(f"rsabank: {answer.code} (HTTP {answer.status})")
            # A signed refusal is definite: this attempt failed (contract §8), nothing was created.
            raise GatewayError(f"rsabank refused the payment: {answer.code} {answer.message}".strip())
        payment_url = data.get("payment_url")
        bank_reference = _str(data.get("bank_reference"))
        echoed = data.get("merchant_reference")
        if not _is_http_url(payment_url) or not bank_reference or echoed not in (None, request.reference):
            log.warning("rsabank create %s: unusable answer %r", request.reference, data)
            raise ProviderUnavailable("rsabank: garbage")
        return PaymentRedirect(
            redirect_url=str(payment_url),
            provider_txn_id=None,  # the transaction id only exists once the customer has paid
            provider_data={"bank_reference": bank_reference},
        )

    # ---- notification and return (docs/rsabank.md §5, §4) -----------------------------------------

    def verify_callback(self, request: CallbackRequest) -> Notification:
        # Signature on the raw body first, then the fields through the bank's mapping.
        note = verify_and_parse(
            request.body, request.headers, self.bank_keys, mapping=self.mapping, scheme=self.scheme
        )
        if not note.reference:
            # A payment notification must name our reference; a bare credit (remittance text only) is
            # the VietQR / reconciliation path, not this connector's.
            raise MalformedNotification("rsabank notification without a reference")
        if _str(note.raw.get(self.mapping.fields["status"])) == "":
            # bank_notifications defaults an absent status to success (a plain credit); a payment
            # notification must say what happened.
            raise MalformedNotification("rsabank notification without a status")
        outcome = status_outcome(note.status, self.mapping)
        result_code = note.status
        if note.direction != "credit":
            # A debit naming our reference (a reversal, a refund leaving the account) is not a payment:
            # a human / the query decides.
            outcome, result_code = Outcome.UNKNOWN, f"{note.direction}:{note.status}"
        return Notification(
            reference=note.reference,
            outcome=outcome,
            amount=note.amount,
            provider_txn_id=note.transaction_id,
            result_code=result_code,
            paid_at=note.transacted_at.astimezone(UTC) if note.transacted_at else None,
            raw=dict(note.raw),
        )

    def verify_return(self, request: CallbackRequest) -> Notification:
        reference = request.args.get("reference", "")
        status = request.args.get("status", "")
        verify(self.bank_keys, return_message(reference, status), request.args.get("signature"), self.scheme)
        if not reference or not status or "|" in reference or "|" in status:
            # "|" would make "reference|status" ambiguous: never read a split the bank did not mean.
            raise MalformedNotification("rsabank return without a usable reference and status")
        status = status.strip().lower()
        return Notification(
            reference=reference,
            outcome=status_outcome(status, self.mapping),
            amount=None,
            provider_txn_id=None,
            result_code=status,
            raw={"reference": reference, "status": status},
        )

    def acknowledge(self, ack: Ack) -> AckResponse:
        status, code, message = ACK_ANSWERS[ack]
        body = json.dumps({"code": code, "message": message}, separators=(",", ":"))
        return AckResponse(status=status, body=body.encode(), content_type="application/json")

    # ---- query (docs/rsabank.md §3.2) -------------------------------------------------------------

    def query(self, request: QueryRequest) -> Notification:
        reference = request.reference
        answer = self.call("/payments/query", {"merchant_reference": reference})
        if answer.problem:
            return _unknown(reference, answer.problem)
        data = answer.data or {}
        if answer.status >= 400:
            # The query failed, not the payment ("not_found" included: it may still arrive).
            return _unknown(reference, answer.code, data)
        if data.get("merchant_reference") not in (None, reference):
            return _unknown(reference, "garbage", data)  # a signed answer about another payment
        status = _str(data.get("status")).lower()
        outcome = status_outcome(status, self.mapping)
        raw_amount = data.get("amount")
        amount = _int_amount(raw_amount)
        txn = _str(data.get("transaction_id")) or None
        if not status or (raw_amount is not None and amount is None):
            return _unknown(reference, "garbage", data)
        if outcome is Outcome.SUCCEEDED and (amount is None or txn is None):
            return _unknown(reference, "garbage", data)
        return Notification(
            reference=reference,
            outcome=outcome,
            amount=amount,
            provider_txn_id=txn,
            result_code=status,
            paid_at=parse_bank_time(data.get("transacted_at")),
            raw=dict(data),
        )

    # ---- refunds (docs/rsabank.md §3.3; contract §4) -----------------------------------------------------

    def refund(self, request: RefundRequest) -> RefundResult:
        if isinstance(request.amount, bool) or not isinstance(request.amount, int) or request.amount <= 0:
            raise ValueError(
                f"refund amount must be a positive integer number of VND, got {request.amount!r}"
            )
        payload = {
            "refund_reference": request.reference,
            "merchant_reference": request.payment_reference,
            "transaction_id": request.payment_txn_id,
            "amount": request.amount,
            "reason": request.reason,
        }
        return self._refund_result(request.reference, self.call("/refunds", payload), final_4xx=True)

    def query_refund(self, request: RefundRequest) -> RefundResult:
        answer = self.call("/refunds/query", {"refund_reference": request.reference})
        # A 4xx here ("not_found") is not proof that the refund never happens: it may be in flight.
        return self._refund_result(request.reference, answer, final_4xx=False)

    def _refund_result(self, reference: str, answer: BankAnswer, *, final_4xx: bool) -> RefundResult:
        if answer.problem:
            return RefundResult(Outcome.UNKNOWN, answer.problem)
        data = dict(answer.data or {})
        if answer.status >= 400:
            refused = final_4xx and answer.status not in _RETRYABLE_4XX and answer.status != _CONFLICT
            # A signed refusal of a new refund is definite (nothing left the account): FAILED.
            return RefundResult(
                Outcome.FAILED if refused else Outcome.UNKNOWN, answer.code, message=answer.message, raw=data
            )
        if data.get("refund_reference") not in (None, reference):
            return RefundResult(Outcome.UNKNOWN, "garbage", raw=data)
        status = _str(data.get("status")).lower()
        if not status:
            return RefundResult(Outcome.UNKNOWN, "garbage", raw=data)
        return RefundResult(
            outcome=status_outcome(status, self.mapping),
            result_code=status,
            provider_reference=_str(data.get("bank_refund_id")) or None,
            message=_str(data.get("message")),
            raw=data,
        )


def _description(order_info: str, reference: str) -> str:
    # ASCII only (reusing VNPAY's sanitiser, providers.md §1.2): bank statements and SMS drop diacritics.
    text = ascii_order_info(order_info) or ascii_order_info(f"Thanh toan {reference}")
    return text[:DESCRIPTION_MAX]


def json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _unknown(reference: str, result_code: str, raw: Mapping[str, Any] | None = None) -> Notification:
    # Base contract: an unreachable or unreadable bank is UNKNOWN (re-queried later), never FAILED.
    return Notification(
        reference=reference,
        outcome=Outcome.UNKNOWN,
        amount=None,
        provider_txn_id=None,
        result_code=result_code,
        raw=dict(raw or {}),
    )
