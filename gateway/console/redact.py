"""Stored provider notifications as staff may see them: signatures, keys and tokens replaced (issue 7.3)."""

from __future__ import annotations

import json
import re
from typing import Any, Final
from urllib.parse import parse_qsl

MASK: Final = "[redacted]"
# vnp_SecureHash, signature, mac, accessKey, secretKey, checksum, token, password...
_SECRET_NAME: Final = re.compile(
    r"hash|sign|(?:^|[_-])mac(?:$|[_-])|secret|key|token|passw|checksum|authorization|cookie", re.I
)
_XML_SECRET: Final = re.compile(
    r"<(?P<tag>[\w:.-]*(?:Signature|Hash|Mac|Secret|Key|Token)[\w:.-]*)(?P<attrs>[^>]*)>(?P<body>.*?)</(?P=tag)>",
    re.I | re.S,
)
MAX_BODY: Final = 8000


def is_secret(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def _redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (MASK if is_secret(str(k)) else _redact_json(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_json(v) for v in value]
    return value


def redact_pairs(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, MASK if is_secret(k) else v) for k, v in pairs]


def redact_query(query: str) -> list[tuple[str, str]]:
    return redact_pairs(parse_qsl(query, keep_blank_values=True))


def redact_headers(headers: dict[str, str] | None) -> list[tuple[str, str]]:
    return redact_pairs(sorted((headers or {}).items()))


def redact_body(body: bytes | None) -> str:
    """The body as text with secret fields masked: JSON, form-encoded, XML, else shown truncated."""
    if not body:
        return ""
    text = body.decode("utf-8", errors="replace")
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        try:
            parsed = json.loads(stripped)
        except ValueError:
            pass
        else:
            return json.dumps(_redact_json(parsed), ensure_ascii=False, indent=2)[:MAX_BODY]
    if stripped.startswith("<"):
        return _XML_SECRET.sub(lambda m: f"<{m['tag']}{m['attrs']}>{MASK}</{m['tag']}>", stripped)[:MAX_BODY]
    if "=" in stripped and "\n" not in stripped:
        pairs = parse_qsl(stripped, keep_blank_values=True)
        if pairs:
            return "\n".join(f"{k}={v}" for k, v in redact_pairs(pairs))[:MAX_BODY]
    # Unknown shape: mask anything that looks like name=value or "name": value with a secret name.
    return re.sub(
        r"(?P<name>[\w-]*(?:hash|sign|mac|secret|key|token)[\w-]*)(?P<sep>\"?\s*[:=]\s*\"?)(?P<value>[^\s\",&]+)",
        lambda m: f"{m['name']}{m['sep']}{MASK}",
        stripped,
        flags=re.I,
    )[:MAX_BODY]
