"""Identifiers: opaque ids for the API and short references for providers and bank transfers."""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
# Crockford-style alphabet without I, L, O, U: a citizen copying a transfer reference by hand
# cannot confuse 0/O or 1/I/L.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def new_sortable_id(prefix: str) -> str:
    """An id that sorts by creation time (nanoseconds, then randomness): events made in the same
    instant of the business clock still list in the order they were written."""
    return f"{prefix}_{time.time_ns():016x}{secrets.token_hex(8)}"


def new_reference(now: datetime) -> str:
    """A 14-character attempt reference: ``GW`` + GMT+7 ``yymmdd`` + 6 random symbols.

    It is unique per attempt (checked by a unique index), fits VNPAY's vnp_TxnRef, MoMo's orderId
    regex, ZaloPay's ``yymmdd_`` convention and the 25-character VietQR purpose field (providers.md
    §1.2, §2.1, §3.2, §4.1), and is short enough to type into a banking app.
    """
    day = now.astimezone(VN_TZ).strftime("%y%m%d")
    tail = "".join(secrets.choice(_ALPHABET) for _ in range(6))
    return f"GW{day}{tail}"
