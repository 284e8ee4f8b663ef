"""Signing helpers shared by every provider. Constant-time comparison, fail closed."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from gateway.domain.errors import SignatureVerificationError

_ALGORITHMS = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}


def split_secrets(raw: str) -> tuple[str, ...]:
    """``new,old`` -> ``("new", "old")``: sign with the first, verify against each (contract §2)."""
    values = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not values:
        raise ValueError("a signing secret is empty")
    return values


def hmac_hex(key: str, message: str, algorithm: str) -> str:
    """Lowercase hex HMAC of ``message`` (UTF-8) under ``key`` (UTF-8)."""
    return hmac.new(key.encode(), message.encode(), _ALGORITHMS[algorithm]).hexdigest()


def verify_hmac(keys: Iterable[str], message: str, given: str | None, algorithm: str) -> None:
    """Raise unless ``given`` is the HMAC of ``message`` under one of ``keys``.

    Every key is tried (no early exit on the first) so that timing does not reveal which one
    matched; a missing or empty signature fails.
    """
    if not given:
        raise SignatureVerificationError("signature missing")
    candidate = given.strip().lower().encode()
    ok = False
    for key in keys:
        expected = hmac_hex(key, message, algorithm).encode()
        ok |= hmac.compare_digest(expected, candidate)
    if not ok:
        raise SignatureVerificationError("signature mismatch")
