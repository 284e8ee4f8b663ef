"""Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP), the staff console's second factor.

Pure functions with no framework: the secret is base32 (what authenticator apps read from the
``otpauth://`` QR code), codes are 6 digits with a 30 s step and HMAC-SHA1, as every app defaults to.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import struct
from typing import Final
from urllib.parse import quote, urlencode

STEP: Final = 30
DIGITS: Final = 6
# One step either side absorbs a phone clock that is a little off (RFC 6238 §5.2 recommends at most one).
WINDOW: Final = 1


def new_secret() -> str:
    """A 160-bit secret (RFC 4226 §4 recommends 160), base32 without padding."""
    return base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")


def decode_secret(secret: str) -> bytes:
    cleaned = secret.replace(" ", "").upper()
    try:
        return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not a base32 TOTP secret") from exc


def hotp(key: bytes, counter: int, *, digits: int = DIGITS, digest: str = "sha1") -> str:
    """RFC 4226 §5.3: HMAC the 8-byte counter, dynamic truncation, the low ``digits`` decimal digits."""
    mac = hmac.new(key, struct.pack(">Q", counter), digest).digest()
    offset = mac[-1] & 0x0F
    value = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def time_step(unix: float, *, step: int = STEP) -> int:
    """RFC 6238 §4.2: T = floor((unix time - T0) / X) with T0 = 0."""
    return int(unix // step)


def totp(key: bytes, unix: float, *, step: int = STEP, digits: int = DIGITS, digest: str = "sha1") -> str:
    return hotp(key, time_step(unix, step=step), digits=digits, digest=digest)


def match(secret: str, code: str, unix: float, *, after_step: int | None = None) -> int | None:
    """The time step ``code`` is valid for around ``unix``, or ``None``.

    Args:
        secret: the base32 secret.
        code: what the user typed (spaces ignored).
        unix: the current instant.
        after_step: the last step already accepted; it and earlier steps are refused, so an observed
            code cannot be replayed (RFC 6238 §5.2).
    """
    typed = code.replace(" ", "").strip()
    if len(typed) != DIGITS or not typed.isdigit():
        return None
    key = decode_secret(secret)
    now = time_step(unix)
    found: int | None = None
    for candidate in range(now - WINDOW, now + WINDOW + 1):
        if after_step is not None and candidate <= after_step:
            continue
        # Compare every candidate (no early exit) so the timing does not say which step matched.
        if hmac.compare_digest(hotp(key, candidate), typed) and found is None:
            found = candidate
    return found


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` URI that authenticator apps scan (Google Authenticator key-uri format)."""
    label = quote(f"{issuer}:{account}", safe="@:")
    query = urlencode(
        {"secret": secret, "issuer": issuer, "algorithm": "SHA1", "digits": DIGITS, "period": STEP}
    )
    return f"otpauth://totp/{label}?{query}"


__all__ = ["decode_secret", "hotp", "match", "new_secret", "provisioning_uri", "totp"]
