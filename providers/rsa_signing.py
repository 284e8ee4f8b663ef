"""RSA-SHA256 signatures over raw bytes, for banks and national platforms that sign with RSA
(providers.md §5: NAPAS, VinID-style callbacks). Built on ``cryptography``; fails closed.

The signature travels base64 (standard or URL-safe alphabet, padding optional: both are seen in §5's
platforms). PKCS#1 v1.5 is the default; PSS (MGF1-SHA256, maximum salt length on signing, automatic on
verification) is selectable per bank.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.domain.errors import SignatureVerificationError

MIN_KEY_BITS = 2048


class Scheme(StrEnum):
    PKCS1V15 = "pkcs1v15"
    PSS = "pss"


def _padding(scheme: Scheme, *, signing: bool) -> padding.AsymmetricPadding:
    if scheme is Scheme.PSS:
        salt = padding.PSS.MAX_LENGTH if signing else padding.PSS.AUTO
        return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt)
    return padding.PKCS1v15()


def load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (TypeError, UnsupportedAlgorithm) as exc:
        # cryptography raises TypeError for a passphrase-protected key and UnsupportedAlgorithm for an
        # exotic one; both are configuration errors, which callers (the registry) expect as ValueError.
        raise ValueError(f"cannot load the private key: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the private key is not an RSA key")
    if key.key_size < MIN_KEY_BITS:
        raise ValueError(f"the private key has {key.key_size} bits; at least {MIN_KEY_BITS} are required")
    return key


def load_public_keys(pems: Sequence[bytes]) -> tuple[rsa.RSAPublicKey, ...]:
    """Load one or more PEM public keys (several are accepted during a rotation)."""
    keys = []
    for pem in pems:
        try:
            key = serialization.load_pem_public_key(pem)
        except UnsupportedAlgorithm as exc:
            raise ValueError(f"cannot load a public key: {exc}") from exc
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError("a public key is not an RSA key")
        if key.key_size < MIN_KEY_BITS:
            raise ValueError(f"a public key has {key.key_size} bits; at least {MIN_KEY_BITS} are required")
        keys.append(key)
    if not keys:
        raise ValueError("no public key given")
    return tuple(keys)


def read_pem_files(paths: str) -> list[bytes]:
    """``"a.pem,b.pem"`` -> their contents; a missing file is a configuration error."""
    out = []
    for raw in paths.split(","):
        path = Path(raw.strip())
        if not raw.strip():
            continue
        if not path.is_file():
            raise ValueError(f"key file not found: {path}")
        try:
            out.append(path.read_bytes())
        except OSError as exc:  # e.g. not readable by the service user: a configuration error too
            raise ValueError(f"cannot read key file {path}: {exc}") from exc
    return out


def sign(key: rsa.RSAPrivateKey, data: bytes, scheme: Scheme = Scheme.PKCS1V15) -> str:
    """Standard base64 of the RSA-SHA256 signature of ``data``."""
    signature = key.sign(data, _padding(scheme, signing=True), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def _decode(signature: str) -> bytes:
    text = signature.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureVerificationError("signature is not base64") from exc


def verify(
    keys: Sequence[rsa.RSAPublicKey], data: bytes, signature: str | None, scheme: Scheme = Scheme.PKCS1V15
) -> None:
    """Raise unless ``signature`` is a valid RSA-SHA256 signature of ``data`` under one of ``keys``."""
    if not signature:
        raise SignatureVerificationError("signature missing")
    raw = _decode(signature)
    for key in keys:
        try:
            key.verify(raw, data, _padding(scheme, signing=False), hashes.SHA256())
        except InvalidSignature:
            continue
        return
    raise SignatureVerificationError("signature does not verify with any configured key")


def generate_private_key_pem(bits: int = MIN_KEY_BITS) -> bytes:
    """A new RSA key in PKCS#8 PEM (tests and the emulator's demo keys)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_pem(private_pem: bytes) -> bytes:
    key = load_private_key(private_pem)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
