"""Signing events for the portal (contract §7) and the verification helper portal developers copy.

``X-Gateway-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`` with one ``v1=`` per active
secret while a secret is being rotated (newest first), the same shape as Stripe's (orchestrators.md §2).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

SIGNATURE_HEADER = "X-Gateway-Signature"


def sign(secrets: Sequence[str], body: bytes, timestamp: int) -> str:
    """The header value for ``body`` sent at ``timestamp`` (one ``v1`` per secret)."""
    if not secrets:
        raise ValueError("no webhook secret to sign with")
    signed = f"{timestamp}.".encode() + body
    parts = [f"t={timestamp}"]
    parts += [f"v1={hmac.new(s.encode(), signed, hashlib.sha256).hexdigest()}" for s in secrets]
    return ",".join(parts)


def split_secrets(stored: str) -> list[str]:
    return [s.strip() for s in stored.split(",") if s.strip()]


# --- the helper published in the README, kept here so that it is tested ------------------------------


def verify_signature(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """True if ``header`` (X-Gateway-Signature) signs ``body`` with ``secret`` within ``tolerance`` s."""
    try:
        items = [part.split("=", 1) for part in header.split(",")]
        timestamp = int(next(v for k, v in items if k.strip() == "t"))
        candidates = [v.strip() for k, v in items if k.strip() == "v1"]
    except (StopIteration, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, c) for c in candidates)
