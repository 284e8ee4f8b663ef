"""Case- and diacritics-insensitive text, for headers and remittance (contract.md §9).

Vietnamese exports differ in accents, case and spacing ("Số tiền ghi có", "SO TIEN GHI CO",
"Số tiền  ghi có (VND)"), and SWIFT text has no diacritics at all (reconciliation.md §2.2), so
anything compared across sources is folded first.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = ["fold", "header_key"]

# đ/Đ are letters of their own, not d plus a combining mark, so NFD leaves them alone.
_DD = str.maketrans({"đ": "d", "Đ": "D"})
_WS = re.compile(r"\s+")
_PARENS = re.compile(r"\([^)]*\)")
_NON_WORD = re.compile(r"[^0-9a-z]+")


@lru_cache(maxsize=4096)  # statuses, providers and headers repeat on every row
def fold(text: str) -> str:
    """``"Nội dung  GIAO dịch"`` -> ``"noi dung giao dich"``: no accents, lower case, single spaces."""
    decomposed = unicodedata.normalize("NFD", text.translate(_DD))
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _WS.sub(" ", stripped.casefold()).strip()


def header_key(text: str) -> str:
    """A column header reduced for matching: folded, ``(VND)``-style notes and punctuation dropped."""
    return _NON_WORD.sub(" ", _PARENS.sub(" ", fold(text))).strip()
