"""How items are read back: the contract §9 item, plus the identifiers joined in from linked rows.

Items store the ids of what they are about (statement/settlement line, attempt, order, refund); the
human identifiers ("references": our attempt reference, the provider's transaction id, the bank's
reference, the dossier code, the batch id…) are joined in when an item is read, so a run of a
million matched items does not store a million copies of them.
"""

from __future__ import annotations

import json
from typing import Any

from reconciliation.sqlkit import as_date, as_datetime

__all__ = ["ITEM_SELECT", "item_detail", "item_page_sql", "item_view", "references_of"]

_ITEM_COLUMNS = """
SELECT i.id, i.run_id, i.seq, i.level, i.category, i.reason, i.detail, i.rule, i.amount, i.expected_amount,
  i.business_date, i.order_id, i.attempt_id, i.refund_id, i.line_id, i.batch_key, i.provider,
  i."references" AS refs, i.status, i.carried_from, i.resolved_at, i.resolved_by, i.resolution,
  l.our_reference AS l_reference, l.provider_txn_id AS l_txn, l.batch_id AS l_batch,
  l.bank_reference AS l_bank, l.end_to_end_id AS l_e2e,
  a.reference AS a_reference, a.provider_txn_id AS a_txn, o.dossier_code AS dossier_code,
  rf.reference AS rf_reference
"""
_ITEM_JOINS = """
LEFT JOIN statement_lines l ON l.id = i.line_id
LEFT JOIN payment_attempts a ON a.id = i.attempt_id
LEFT JOIN orders o ON o.id = i.order_id
LEFT JOIN refunds rf ON rf.id = i.refund_id
"""

#: Items with their linked identifiers; append ``WHERE …`` on ``i`` (for a whole run or one item).
ITEM_SELECT = _ITEM_COLUMNS + "FROM recon_items i" + _ITEM_JOINS


def item_page_sql(where: str, order: str) -> str:
    """One page of items: ``where`` and ``order`` (on alias ``i``) pick the page from ``recon_items``
    alone, with ``:limit`` and ``:offset``; only the page's rows are then joined. (Joining first makes
    PostgreSQL join every item of a category — 10,000 in a big run — before it sorts and cuts.)"""
    # Callers pass fixed SQL fragments of their own; every value is a bound parameter.
    page = f"(SELECT * FROM recon_items i WHERE {where} ORDER BY {order} LIMIT :limit OFFSET :offset) i"  # noqa: S608
    return f"{_ITEM_COLUMNS}FROM {page}{_ITEM_JOINS}ORDER BY {order}"


def references_of(row: Any) -> dict[str, Any]:
    """The identifiers seen on both sides: the line's and ours (contract §9 ``references``)."""
    stored = row.refs
    if isinstance(stored, str):
        stored = json.loads(stored)
    refs: dict[str, Any] = {
        "provider": row.provider,
        "reference": row.l_reference,
        "provider_txn_id": row.l_txn or row.a_txn,
        "batch_id": row.l_batch,
        "bank_reference": row.l_bank,
        "end_to_end_id": row.l_e2e,
        "attempt_reference": row.a_reference,
        "dossier_code": row.dossier_code,
        "refund_reference": row.rf_reference,
    }
    refs.update(stored or {})
    return {k: v for k, v in sorted(refs.items()) if v is not None}


def item_view(row: Any) -> dict[str, Any]:
    """contract §9: category, reason, rule, amount, expected_amount, business_date, order_id, references."""
    bd = as_date(row.business_date)
    return {
        "category": row.category,
        "reason": row.reason,
        "rule": row.rule,
        "amount": int(row.amount),
        "expected_amount": None if row.expected_amount is None else int(row.expected_amount),
        "business_date": bd.isoformat() if bd else None,
        "order_id": row.order_id,
        "references": references_of(row),
    }


def item_detail(row: Any) -> dict[str, Any]:
    """The contract item plus what the console and the API show (ids, level, status, history)."""
    out = item_view(row)
    resolved_at = as_datetime(row.resolved_at)
    out.update(
        {
            "id": int(row.id),
            "run_id": row.run_id,
            "seq": int(row.seq),
            "level": row.level,
            "detail": row.detail,
            "status": row.status,
            "attempt_id": row.attempt_id,
            "refund_id": row.refund_id,
            "line_id": None if row.line_id is None else int(row.line_id),
            "provider": row.provider,
            "carried_from": None if row.carried_from is None else int(row.carried_from),
            "resolved_at": resolved_at.isoformat().replace("+00:00", "Z") if resolved_at else None,
            "resolved_by": row.resolved_by,
            "resolution": row.resolution,
        }
    )
    return out
