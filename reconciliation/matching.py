"""Which records a run looks at, and level (a): paid attempts ↔ provider settlement lines, in SQL.

A run for business date ``D`` takes in (reconciliation.md §1.3 "flow" and "stock"):

* the **flow** of the days since the previous run (``window_from .. D``): attempts paid on those
  days (Asia/Ho_Chi_Minh), settlement and statement lines booked on them, plus *late* lines — lines
  of earlier days from files imported after the previous run started (its ``file_watermark``);
* the **stock**: the open items of the previous run (the latest run of an earlier business date),
  whose attempts, lines and payouts are evaluated again, so a late counterpart closes them
  (contract §9; reconciliation.md §5.7: no lookback limit, never auto-closed otherwise).

The first run ever starts its window at the earliest imported line (not at the gateway's first
payment). Everything here is set-based SQL on temporary tables (``rc_*``), joined on indexed
reference columns; nothing is loaded row by row into Python, so memory does not grow with volume.

Level (a) rules, per settlement line (``success``):

1. duplicate — an earlier stored line has the same provider transaction id (or the same reference);
2. attempt by reference (``exact_reference``), else by provider transaction id (``provider_txn_id``);
3. no attempt → ``unexpected_in_statement``; attempt not paid at the gateway → ``status_conflict``
   (the provider was queried first, see runs.py); amounts differ → ``amount_mismatch`` (exact, no
   tolerance); fee differs from the schedule → ``fee_variance``; else ``matched``.

Refund lines are matched to the gateway's refunds (provider reference, our refund reference, or the
payment's reference and the same amount, partial refunds of one payment paired one to one). A refund
line naming a refund another line of the run, or a line of an earlier run, already answered is a
``duplicate``. A paid attempt no line matched is ``pending`` inside the settlement window and
``missing_in_statement`` after it; so is a refund the gateway holds as succeeded (at a provider that
sends settlement files) that no refund line reflects (reconciliation.md §5.5 ``refund_unreflected``,
reported under the contract's codes). Both are carried forward until their line arrives.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from reconciliation.calendar import BusinessCalendar
from reconciliation.config import FeeSchedule
from reconciliation.sqlkit import Db, as_date
from reconciliation.timeutil import VN_TZ

__all__ = ["Window", "build_candidates", "candidate_days", "match_provider_level", "open_window"]

_CODE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


LEVEL_RANK = {"provider": 1, "payout": 2, "bank": 3}
#: How far (calendar days) around a run's lines duplicates and a payout's other lines are looked for.
LOOKBACK_DAYS = 45


@dataclass(frozen=True)
class Window:
    business_date: date
    lower: date  # exclusive: the previous run's business date (or the day before the first line)
    watermark: int  # statement_files.id the previous run had seen (0 for the first run)
    prev_run_id: str | None

    @property
    def window_from(self) -> date:
        return self.lower + timedelta(days=1)

    @property
    def lo_ts(self) -> datetime:
        return datetime.combine(self.window_from, time(0), VN_TZ).astimezone(UTC)

    @property
    def hi_ts(self) -> datetime:
        return datetime.combine(self.business_date + timedelta(days=1), time(0), VN_TZ).astimezone(UTC)


def open_window(db: Db, business_date: date) -> Window:
    """The run's window: after the latest completed run of an earlier business date, up to ``D``."""
    prev = db.x(
        "SELECT id, business_date, file_watermark FROM recon_runs "
        "WHERE business_date < :d AND status = 'completed' "
        "ORDER BY business_date DESC, started_at DESC, id DESC LIMIT 1",
        d=business_date,
    ).first()
    if prev is not None:
        lower = as_date(prev.business_date)
        assert lower is not None
        return Window(business_date, lower, int(prev.file_watermark), str(prev.id))
    first = db.x(
        "SELECT MIN(business_date) FROM statement_lines WHERE business_date <= :d", d=business_date
    ).scalar()
    start = as_date(first) or business_date
    return Window(business_date, start - timedelta(days=1), 0, None)


def _codes(codes: Iterable[str]) -> str:
    values = [c for c in codes if _CODE.fullmatch(c)]
    return ", ".join(f"'{c}'" for c in values) or "''"


#: SQL: the items of runs of earlier business dates (``:d``) that answered a refund with a line this run
#: does not evaluate again (a carried line is decided afresh). Such a refund is dealt with: it is not
#: taken again, and another line naming it is a duplicate. Uses the partial index ix_recon_items_refund.
_ANSWERED = (
    "recon_items i JOIN recon_runs rr ON rr.id = i.run_id AND rr.business_date < :d "
    "WHERE i.refund_id IS NOT NULL AND i.line_id IS NOT NULL "
    "AND NOT EXISTS (SELECT 1 FROM rc_sl s WHERE s.line_id = i.line_id) "
    "AND NOT EXISTS (SELECT 1 FROM rc_bl s WHERE s.line_id = i.line_id)"
)


def refund_answered_before(refund: str) -> str:
    """SQL condition: refund ``refund`` (an SQL expression) was dealt with by an earlier run's line."""
    return f"EXISTS (SELECT 1 FROM {_ANSWERED} AND i.refund_id = {refund})"  # noqa: S608


def build_candidates(db: Db, win: Window, *, direct_providers: Iterable[str]) -> None:
    """Create and fill ``rc_prev``, ``rc_resolved``, ``rc_att``, ``rc_rf``, ``rc_sl`` and ``rc_bl``."""
    p = {"d": win.business_date, "lower": win.lower, "wm": win.watermark, "prev": win.prev_run_id or ""}

    db.temp(
        "rc_prev",
        "item_id BIGINT PRIMARY KEY, level VARCHAR(16), category VARCHAR(32), attempt_id VARCHAR(40), "
        "refund_id VARCHAR(40), line_id BIGINT, batch_key TEXT, provider VARCHAR(32)",
    )
    db.x(
        "INSERT INTO rc_prev SELECT id, level, category, attempt_id, refund_id, line_id, batch_key, provider "
        "FROM recon_items WHERE run_id = :prev AND status = 'open'",
        p,
    )
    db.temp(
        "rc_resolved",
        "item_id BIGINT PRIMARY KEY, attempt_id VARCHAR(40), refund_id VARCHAR(40), line_id BIGINT, "
        "batch_key TEXT, provider VARCHAR(32)",
    )
    db.x(
        "INSERT INTO rc_resolved SELECT id, attempt_id, refund_id, line_id, batch_key, provider "
        "FROM recon_items WHERE status = 'resolved'"
    )

    # Attempts: paid in the window and not already taken by the previous run, plus carried ones.
    ts_type = "TIMESTAMP WITH TIME ZONE" if db.pg else "TIMESTAMP"
    db.temp(
        "rc_att",
        "attempt_id VARCHAR(40) PRIMARY KEY, order_id VARCHAR(40), reference VARCHAR(40), "
        f"provider VARCHAR(32), provider_txn_id TEXT, amount BIGINT, paid_at {ts_type}, bd DATE, "
        "direct INTEGER",
    )
    direct = _codes(direct_providers)
    cols = (
        "a.id, a.order_id, a.reference, a.provider, a.provider_txn_id, a.amount, a.paid_at, "
        f"{db.local_date('a.paid_at')}, CASE WHEN a.provider IN ({direct}) THEN 1 ELSE 0 END"
    )
    # Attempts the previous run already dealt with (e.g. paid just after midnight by our clock but
    # matched with the provider's line of the day before) are not taken again.
    db.temp("rc_taken", "attempt_id VARCHAR(40) PRIMARY KEY")
    db.x(
        "INSERT INTO rc_taken SELECT DISTINCT attempt_id FROM recon_items "
        "WHERE run_id = :prev AND attempt_id IS NOT NULL",
        p,
    )
    db.x(
        f"INSERT INTO rc_att SELECT {cols} FROM payment_attempts a "  # noqa: S608
        "WHERE a.status = 'succeeded' AND a.paid_at >= :lo AND a.paid_at < :hi "
        "AND NOT EXISTS (SELECT 1 FROM rc_taken p WHERE p.attempt_id = a.id)",
        p,
        lo=win.lo_ts,
        hi=win.hi_ts,
    )
    db.x(
        f"INSERT INTO rc_att SELECT {cols} FROM payment_attempts a "  # noqa: S608
        "WHERE a.status = 'succeeded' AND a.id IN (SELECT attempt_id FROM rc_prev) "
        "AND NOT EXISTS (SELECT 1 FROM rc_att t WHERE t.attempt_id = a.id)"
    )

    # Lines: booked in the window, late lines of earlier days, carried lines. A settlement payment line
    # gets its attempt by our reference on the way in (level a, rung 1), in the same join.
    for table, kind, statuses in (
        ("rc_sl", "settlement", "('success', 'refund')"),
        ("rc_bl", "statement", "('booked')"),
    ):
        db.temp(
            table,
            "line_id BIGINT PRIMARY KEY, file_id BIGINT, provider VARCHAR(32), our_reference TEXT, "
            "provider_txn_id TEXT, gross BIGINT, fee BIGINT, status VARCHAR(10), direction VARCHAR(6), "
            "bd DATE, batch_key TEXT, batch_id TEXT, attempt_id VARCHAR(40), rule VARCHAR(32)",
        )
        if kind == "settlement":
            cols = (
                "l.id, l.file_id, l.provider, l.our_reference, l.provider_txn_id, l.gross, l.fee, l.status, "
                "l.direction, l.business_date, l.batch_key, l.batch_id, a.id, "
                "CASE WHEN a.id IS NULL THEN NULL ELSE 'exact_reference' END"
            )
            source = (
                "statement_lines l LEFT JOIN payment_attempts a ON l.status = 'success' "
                "AND a.reference = l.our_reference AND a.provider = l.provider"
            )
        else:
            cols = (
                "l.id, l.file_id, l.provider, l.our_reference, l.provider_txn_id, l.gross, l.fee, l.status, "
                "l.direction, l.business_date, l.batch_key, l.batch_id, NULL, NULL"
            )
            source = "statement_lines l"
        # Every fragment is a constant of this module: no input reaches the SQL text (S608).
        base = f"SELECT {cols} FROM {source} WHERE l.kind = '{kind}' "  # noqa: S608
        base += f"AND l.status IN {statuses} "
        db.x(f"INSERT INTO {table} {base} AND l.business_date > :lower AND l.business_date <= :d", p)
        db.x(f"INSERT INTO {table} {base} AND l.file_id > :wm AND l.business_date <= :lower", p)
        db.x(
            f"INSERT INTO {table} {base} AND l.id IN (SELECT line_id FROM rc_prev) "  # noqa: S608
            f"AND NOT EXISTS (SELECT 1 FROM {table} c WHERE c.line_id = l.id)",
            p,
        )

    # Refunds: succeeded (money has left) in the window, unless a line of an earlier run already
    # answered them (the provider's line came before our completion), plus those carried as not
    # reflected. Their business date is the Vietnam day of ``completed_at``, as ``paid_at`` for attempts.
    db.temp(
        "rc_rf",
        "refund_id VARCHAR(40) PRIMARY KEY, order_id VARCHAR(40), attempt_id VARCHAR(40), "
        "attempt_reference VARCHAR(40), reference VARCHAR(64), provider_reference TEXT, "
        f"provider VARCHAR(32), amount BIGINT, completed_at {ts_type}, bd DATE, direct INTEGER",
    )
    refund_cols = (
        "r.id, r.order_id, r.attempt_id, a.reference, r.reference, r.provider_reference, r.provider, "
        f"r.amount, r.completed_at, {db.local_date('r.completed_at')}, "
        f"CASE WHEN r.provider IN ({direct}) THEN 1 ELSE 0 END"
    )
    refund_from = "refunds r LEFT JOIN payment_attempts a ON a.id = r.attempt_id"
    db.x(
        f"INSERT INTO rc_rf SELECT {refund_cols} FROM {refund_from} "  # noqa: S608
        "WHERE r.status = 'succeeded' AND r.completed_at >= :lo AND r.completed_at < :hi "
        f"AND NOT {refund_answered_before('r.id')}",
        p,
        lo=win.lo_ts,
        hi=win.hi_ts,
    )
    db.x(
        f"INSERT INTO rc_rf SELECT {refund_cols} FROM {refund_from} "  # noqa: S608
        "WHERE r.status = 'succeeded' AND r.completed_at IS NOT NULL "
        "AND r.id IN (SELECT refund_id FROM rc_prev WHERE refund_id IS NOT NULL AND line_id IS NULL) "
        "AND NOT EXISTS (SELECT 1 FROM rc_rf t WHERE t.refund_id = r.id)"
    )
    db.analyze("rc_att", "rc_rf", "rc_sl", "rc_bl", "rc_prev")


def _fee_table(db: Db, fees: FeeSchedule | None) -> None:
    db.temp(
        "rc_fee",
        "provider VARCHAR(32) PRIMARY KEY, bps BIGINT, fixed BIGINT, min_fee BIGINT, max_fee BIGINT",
    )
    if fees is None:
        return
    db.many(
        "INSERT INTO rc_fee VALUES (:provider, :bps, :fixed, :min_fee, :max_fee)",
        [
            {"provider": code, "bps": r.percent_bps, "fixed": r.fixed, "min_fee": r.min, "max_fee": r.max}
            for code, r in sorted(fees.rules.items())
        ],
    )


def deadline_table(
    db: Db, win: Window, calendar: BusinessCalendar, window_days: int, days: Iterable[date]
) -> None:
    """``rc_deadline(bd, missing)``: 1 when business date ``bd`` is past the settlement window at ``D``."""
    db.temp("rc_deadline", "bd DATE PRIMARY KEY, missing INTEGER")
    db.many(
        "INSERT INTO rc_deadline VALUES (:bd, :missing)",
        [
            {"bd": d, "missing": int(calendar.business_days_between(d, win.business_date) > window_days)}
            for d in sorted(set(days))
        ],
    )


def candidate_days(db: Db) -> list[date]:
    """The business dates of the window's paid attempts and succeeded refunds (for ``rc_deadline``)."""
    rows = db.x("SELECT bd FROM rc_att UNION SELECT bd FROM rc_rf")
    return [d for d in (as_date(r[0]) for r in rows) if d is not None]


def lookback(db: Db, win: Window) -> tuple[date, date]:
    """Business dates where the lines related to the window's can be: duplicates, a payout's lines."""
    oldest = as_date(db.x("SELECT MIN(bd) FROM rc_sl").scalar()) or win.window_from
    return oldest - timedelta(days=LOOKBACK_DAYS), win.business_date + timedelta(days=LOOKBACK_DAYS)


def match_provider_level(db: Db, win: Window, *, fees: FeeSchedule | None, run_id: str) -> int:
    """Level (a), written straight into ``recon_items`` (seq 1..n); returns n.

    Needs ``rc_q`` (query notes) and ``rc_deadline``. Each item is linked to the previous run's open
    item about the same line, attempt or unreflected refund (``carried_from``) and inherits a finance
    resolution of the same subject (a rerun does not reopen what a person closed).
    """
    _fee_table(db, fees)

    # 1. Duplicates: an earlier stored line with the same provider transaction id (or reference).
    db.temp("rc_dup", "line_id BIGINT PRIMARY KEY, first_id BIGINT, why VARCHAR(16)")
    # An earlier line with the same provider transaction id is looked for among the lines booked from
    # LOOKBACK_DAYS before the oldest candidate to LOOKBACK_DAYS after D (a provider re-sends a day,
    # not a season; ids reused years apart are not duplicates). The range uses the date index.
    lo, hi = lookback(db, win)
    db.x(
        "INSERT INTO rc_dup SELECT c.line_id, MIN(s.id), 'txn' FROM rc_sl c JOIN statement_lines s "
        "ON s.provider = c.provider AND s.provider_txn_id = c.provider_txn_id AND s.status = c.status "
        "AND s.kind = 'settlement' AND s.id < c.line_id "
        "AND s.business_date >= :lo AND s.business_date <= :hi GROUP BY c.line_id",
        lo=lo,
        hi=hi,
    )
    db.x(
        "INSERT INTO rc_dup SELECT c.line_id, MIN(s.id), 'reference' FROM rc_sl c JOIN statement_lines s "
        "ON s.provider = c.provider AND s.our_reference = c.our_reference AND s.status = 'success' "
        "AND s.kind = 'settlement' AND s.id < c.line_id WHERE c.status = 'success' "
        "AND NOT EXISTS (SELECT 1 FROM rc_dup d WHERE d.line_id = c.line_id) GROUP BY c.line_id"
    )

    # 2. Payment lines without an attempt by reference: by the provider's transaction id (rung 2).
    db.x(
        "UPDATE rc_sl SET rule = 'provider_txn_id', attempt_id = (SELECT MIN(a.id) FROM payment_attempts a "
        "WHERE a.provider_txn_id = rc_sl.provider_txn_id AND a.provider = rc_sl.provider) "
        "WHERE status = 'success' AND attempt_id IS NULL AND EXISTS (SELECT 1 FROM payment_attempts a "
        "WHERE a.provider_txn_id = rc_sl.provider_txn_id AND a.provider = rc_sl.provider)"
    )
    # A line found by transaction id for an attempt another line names by reference: a duplicate.
    db.x(
        "INSERT INTO rc_dup SELECT m.line_id, MIN(r.line_id), 'attempt' FROM rc_sl m JOIN rc_sl r "
        "ON r.attempt_id = m.attempt_id AND r.rule = 'exact_reference' AND r.line_id <> m.line_id "
        "WHERE m.rule = 'provider_txn_id' "
        "AND NOT EXISTS (SELECT 1 FROM rc_dup d WHERE d.line_id = m.line_id) "
        "AND NOT EXISTS (SELECT 1 FROM rc_dup d WHERE d.line_id = r.line_id) GROUP BY m.line_id"
    )

    # 3. Refund lines ↔ the gateway's refunds: by the provider's refund id, by our refund reference,
    # else by the payment's reference and the amount.
    db.temp("rc_rm", "line_id BIGINT PRIMARY KEY, refund_id VARCHAR(40), rule VARCHAR(32)")
    db.x(
        "INSERT INTO rc_rm SELECT c.line_id, MIN(r.id), 'provider_txn_id' FROM rc_sl c JOIN refunds r "
        "ON r.provider = c.provider AND r.provider_reference = c.provider_txn_id "
        "WHERE c.status = 'refund' GROUP BY c.line_id"
    )
    db.x(
        "INSERT INTO rc_rm SELECT c.line_id, MIN(r.id), 'exact_reference' FROM rc_sl c JOIN refunds r "
        "ON r.provider = c.provider AND r.reference = c.our_reference WHERE c.status = 'refund' "
        "AND NOT EXISTS (SELECT 1 FROM rc_rm m WHERE m.line_id = c.line_id) GROUP BY c.line_id"
    )
    # By the payment's reference: the k-th line of a payment and amount pairs with the k-th refund of
    # that payment and amount not matched otherwise (succeeded first, then by id), so two partial refunds
    # of 50 000 take one line each. A line left over names a refund already taken: a duplicate below.
    db.temp(
        "rc_rl",
        "line_id BIGINT PRIMARY KEY, attempt_id VARCHAR(40), order_id VARCHAR(40), gross BIGINT, n BIGINT",
    )
    # (A line already known as a duplicate takes no turn: n is NULL, it only gets the order below.)
    dup = "CASE WHEN d.line_id IS NULL THEN 0 ELSE 1 END"
    db.x(
        "INSERT INTO rc_rl SELECT c.line_id, a.id, a.order_id, c.gross, "  # noqa: S608
        f"CASE WHEN d.line_id IS NULL THEN ROW_NUMBER() OVER (PARTITION BY a.id, c.gross, {dup} "
        "ORDER BY c.line_id) END FROM rc_sl c "
        "JOIN payment_attempts a ON a.provider = c.provider AND a.reference = c.our_reference "
        "LEFT JOIN rc_dup d ON d.line_id = c.line_id "
        "WHERE c.status = 'refund' AND NOT EXISTS (SELECT 1 FROM rc_rm m WHERE m.line_id = c.line_id)"
    )
    db.x(
        "INSERT INTO rc_rm SELECT l.line_id, f.refund_id, 'exact_reference' FROM rc_rl l JOIN ("  # noqa: S608
        "SELECT r.id AS refund_id, r.attempt_id, r.amount, ROW_NUMBER() OVER (PARTITION BY r.attempt_id, "
        "r.amount ORDER BY CASE WHEN r.status = 'succeeded' THEN 0 ELSE 1 END, r.id) AS n FROM refunds r "
        "WHERE r.order_id IN (SELECT order_id FROM rc_rl) "
        "AND NOT EXISTS (SELECT 1 FROM rc_rm m WHERE m.refund_id = r.id) "
        f"AND NOT {refund_answered_before('r.id')}"
        ") f ON f.attempt_id = l.attempt_id AND f.amount = l.gross AND f.n = l.n",
        d=win.business_date,
    )
    db.x(
        "INSERT INTO rc_rm SELECT l.line_id, MIN(r.id), 'exact_reference' FROM rc_rl l "
        "JOIN refunds r ON r.order_id = l.order_id AND r.attempt_id = l.attempt_id AND r.amount = l.gross "
        "WHERE NOT EXISTS (SELECT 1 FROM rc_rm m WHERE m.line_id = l.line_id) GROUP BY l.line_id"
    )
    # A refund already answered by a line of an earlier run, or by an earlier line of this run: the
    # later line is a duplicate (the refund's money is counted once).
    db.x(
        "INSERT INTO rc_dup SELECT m.line_id, (SELECT MIN(i.line_id) FROM "  # noqa: S608
        f"{_ANSWERED} AND i.refund_id = m.refund_id), 'refund_earlier' FROM rc_rm m "
        f"WHERE {refund_answered_before('m.refund_id')} "
        "AND NOT EXISTS (SELECT 1 FROM rc_dup d WHERE d.line_id = m.line_id)",
        d=win.business_date,
    )
    db.x(
        "INSERT INTO rc_dup SELECT m.line_id, MIN(o.line_id), 'refund' FROM rc_rm m "
        "JOIN rc_rm o ON o.refund_id = m.refund_id AND o.line_id < m.line_id "
        "WHERE NOT EXISTS (SELECT 1 FROM rc_dup d WHERE d.line_id = m.line_id) "
        "AND NOT EXISTS (SELECT 1 FROM rc_dup d WHERE d.line_id = o.line_id) GROUP BY m.line_id"
    )
    db.analyze("rc_dup", "rc_rm")

    t = db.text_of
    fee_raw = "(f.fixed + (c.gross * f.bps + 5000) / 10000)"
    fee_min = f"(CASE WHEN f.min_fee IS NOT NULL AND {fee_raw} < f.min_fee THEN f.min_fee ELSE {fee_raw} END)"
    fee_expr = (
        f"CASE WHEN f.provider IS NULL THEN NULL WHEN f.max_fee IS NOT NULL AND {fee_min} > f.max_fee "
        f"THEN f.max_fee ELSE {fee_min} END"
    )
    no_refs = "CAST(NULL AS JSON)" if db.pg else "NULL"  # a typed NULL: the union's last branch has JSON
    payments = f"""
        SELECT 'provider' AS level, y.category,
          CASE y.category
            WHEN 'duplicate' THEN CASE y.dup_why
                WHEN 'txn' THEN 'same provider transaction as an earlier line'
                WHEN 'reference' THEN 'same reference as an earlier line'
                ELSE 'attempt already matched by another line' END
            WHEN 'unexpected_in_statement' THEN 'no payment attempt with this reference'
            WHEN 'status_conflict' THEN COALESCE(y.q_note, 'attempt ' || y.a_status || ' at the gateway')
            WHEN 'amount_mismatch' THEN CASE WHEN y.gross > y.a_amount
                THEN 'provider amount above ours' ELSE 'provider amount below ours' END
            WHEN 'fee_variance' THEN CASE WHEN y.fee > y.exp_fee
                THEN 'fee above the schedule' ELSE 'fee below the schedule' END
            ELSE CASE y.via WHEN 'query' THEN 'confirmed by query'
                WHEN 'statement' THEN 'confirmed by bank statement' ELSE 'exact match' END
          END AS reason,
          CASE y.category
            WHEN 'fee_variance' THEN 'fee ' || {t("y.fee")} || ' VND, schedule ' || {t("y.exp_fee")} || ' VND'
            WHEN 'duplicate' THEN 'first seen as line ' || {t("y.dup_first")}
            ELSE NULL END AS detail,
          CASE WHEN y.category = 'duplicate' THEN NULL ELSE y.rule END AS rule,
          y.gross AS amount,
          CASE WHEN y.category IN ('amount_mismatch', 'status_conflict') AND y.a_amount <> y.gross
            THEN y.a_amount ELSE NULL END AS expected_amount,
          y.bd, y.order_id,
          CASE WHEN y.category = 'duplicate' THEN NULL ELSE y.attempt_id END AS attempt_id,
          NULL AS refund_id, y.line_id, y.batch_key, y.provider, {no_refs} AS refs,
          CASE WHEN y.category = 'matched' THEN 'closed' ELSE 'open' END AS status
        FROM (
          SELECT x.*,
            CASE WHEN x.dup_why IS NOT NULL THEN 'duplicate'
                 WHEN x.attempt_id IS NULL THEN 'unexpected_in_statement'
                 WHEN x.a_status <> 'succeeded' THEN 'status_conflict'
                 WHEN x.gross <> x.a_amount THEN 'amount_mismatch'
                 WHEN x.exp_fee IS NOT NULL AND x.fee <> x.exp_fee THEN 'fee_variance'
                 ELSE 'matched' END AS category
          FROM (
            SELECT c.line_id, c.provider, c.gross, c.fee, c.bd, c.batch_key, d.why AS dup_why,
              d.first_id AS dup_first, c.rule, a.id AS attempt_id, a.order_id, a.amount AS a_amount,
              a.status AS a_status, q.note AS q_note, cf.via, {fee_expr} AS exp_fee
            FROM rc_sl c
            LEFT JOIN rc_dup d ON d.line_id = c.line_id
            LEFT JOIN payment_attempts a ON a.id = c.attempt_id
            LEFT JOIN rc_fee f ON f.provider = c.provider
            LEFT JOIN rc_q q ON q.attempt_id = a.id
            LEFT JOIN recon_confirmations cf ON cf.attempt_id = a.id
            WHERE c.status = 'success'{db.fence}
          ) x{db.fence}
        ) y"""  # noqa: S608
    refunds = f"""
        SELECT 'provider' AS level, y.category,
          CASE y.category
            WHEN 'duplicate' THEN CASE y.dup_why
                WHEN 'refund' THEN 'refund already matched by another line'
                WHEN 'refund_earlier' THEN 'refund already matched by an earlier line'
                ELSE 'same provider transaction as an earlier line' END
            WHEN 'unexpected_in_statement' THEN 'refund not recorded at the gateway'
            WHEN 'status_conflict' THEN 'refund ' || y.r_status || ' at the gateway'
            WHEN 'amount_mismatch' THEN CASE WHEN y.gross > y.r_amount
                THEN 'provider refund above ours' ELSE 'provider refund below ours' END
            ELSE 'refund matched' END AS reason,
          CASE WHEN y.category = 'duplicate' THEN 'first seen as line ' || {t("y.dup_first")}
            ELSE NULL END AS detail,
          CASE WHEN y.category = 'duplicate' THEN NULL ELSE y.rule END AS rule,
          y.gross AS amount,
          CASE WHEN y.category IN ('amount_mismatch', 'status_conflict') AND y.r_amount <> y.gross
            THEN y.r_amount ELSE NULL END AS expected_amount,
          y.bd, y.order_id, NULL AS attempt_id,
          CASE WHEN y.category = 'duplicate' THEN NULL ELSE y.refund_id END AS refund_id,
          y.line_id, y.batch_key, y.provider, {no_refs} AS refs,
          CASE WHEN y.category = 'matched' THEN 'closed' ELSE 'open' END AS status
        FROM (
          SELECT x.*,
            CASE WHEN x.dup_why IS NOT NULL THEN 'duplicate'
                 WHEN x.refund_id IS NULL THEN 'unexpected_in_statement'
                 WHEN x.r_status <> 'succeeded' THEN 'status_conflict'
                 WHEN x.gross <> x.r_amount THEN 'amount_mismatch'
                 ELSE 'matched' END AS category
          FROM (
            SELECT c.line_id, c.provider, c.gross, c.bd, c.batch_key, d.why AS dup_why,
              d.first_id AS dup_first, m.rule,
              r.id AS refund_id, r.order_id, r.amount AS r_amount, r.status AS r_status
            FROM rc_sl c
            LEFT JOIN rc_dup d ON d.line_id = c.line_id
            LEFT JOIN rc_rm m ON m.line_id = c.line_id
            LEFT JOIN refunds r ON r.id = m.refund_id
            WHERE c.status = 'refund'
          ) x
        ) y"""  # noqa: S608
    # Paid attempts no (non-duplicate) provider line matched: pending, then missing.
    unmatched = f"""
        SELECT 'provider' AS level,
          CASE WHEN dl.missing = 1 THEN 'missing_in_statement' ELSE 'pending' END AS category,
          CASE WHEN dl.missing = 1 THEN 'no provider line within the settlement window'
               ELSE 'awaiting the provider line' END AS reason,
          NULL AS detail, NULL AS rule, t.amount, NULL AS expected_amount, t.bd, t.order_id, t.attempt_id,
          NULL AS refund_id, NULL AS line_id, NULL AS batch_key, t.provider, {no_refs} AS refs,
          'open' AS status
        FROM rc_att t JOIN rc_deadline dl ON dl.bd = t.bd
        WHERE t.direct = 0 AND NOT EXISTS (
          SELECT 1 FROM rc_sl m WHERE m.attempt_id = t.attempt_id
          AND NOT EXISTS (SELECT 1 FROM rc_dup d WHERE d.line_id = m.line_id))"""  # noqa: S608
    # Succeeded refunds no (non-duplicate) refund line reflects: pending, then missing (the refund's
    # reference is joined in when the item is read; the payment's is kept, as provider files name it).
    refund_refs = db.json_object(
        {"attempt_reference": "f.attempt_reference", "provider_txn_id": "f.provider_reference"}
    )
    unreflected = f"""
        SELECT 'provider' AS level,
          CASE WHEN dl.missing = 1 THEN 'missing_in_statement' ELSE 'pending' END AS category,
          CASE WHEN dl.missing = 1 THEN 'refund not reflected in the provider''s settlement file'
               ELSE 'awaiting the provider refund line' END AS reason,
          NULL AS detail, NULL AS rule, f.amount, NULL AS expected_amount, f.bd, f.order_id,
          NULL AS attempt_id, f.refund_id, NULL AS line_id, NULL AS batch_key, f.provider,
          {refund_refs} AS refs, 'open' AS status
        FROM rc_rf f JOIN rc_deadline dl ON dl.bd = f.bd
        WHERE f.direct = 0 AND NOT EXISTS (
          SELECT 1 FROM rc_rm m WHERE m.refund_id = f.refund_id
          AND NOT EXISTS (SELECT 1 FROM rc_dup d WHERE d.line_id = m.line_id))"""  # noqa: S608
    order = "u.bd, COALESCE(u.line_id, 0), COALESCE(u.attempt_id, ''), COALESCE(u.refund_id, '')"
    result = db.x(
        f"""
        INSERT INTO recon_items (run_id, seq, level, category, reason, detail, rule, amount, expected_amount,
          business_date, order_id, attempt_id, refund_id, line_id, batch_key, provider, "references", status,
          carried_from, resolved_at, resolved_by, resolution)
        SELECT :run, ROW_NUMBER() OVER (ORDER BY {order}), u.level, u.category, u.reason, u.detail, u.rule,
          u.amount, u.expected_amount, u.bd, u.order_id, u.attempt_id, u.refund_id, u.line_id, u.batch_key,
          u.provider, u.refs, CASE WHEN r.id IS NULL THEN u.status ELSE 'resolved' END,
          COALESCE(pl.item_id, pa.item_id, pr.item_id), r.resolved_at, r.resolved_by,
          CASE WHEN r.id IS NULL THEN NULL
               ELSE 'resolved earlier (item ' || {t("r.id")} || '): ' || COALESCE(r.resolution, '') END
        FROM ({payments} UNION ALL {refunds} UNION ALL {unmatched} UNION ALL {unreflected}) u
        LEFT JOIN (SELECT line_id, MIN(item_id) AS item_id FROM rc_prev WHERE line_id IS NOT NULL
                   GROUP BY line_id) pl ON pl.line_id = u.line_id
        LEFT JOIN (SELECT attempt_id, MIN(item_id) AS item_id FROM rc_prev WHERE attempt_id IS NOT NULL
                   GROUP BY attempt_id) pa ON pa.attempt_id = u.attempt_id
        LEFT JOIN (SELECT refund_id, MIN(item_id) AS item_id FROM rc_prev
                   WHERE refund_id IS NOT NULL AND line_id IS NULL GROUP BY refund_id) pr
          ON pr.refund_id = u.refund_id
        LEFT JOIN (SELECT line_id, MAX(item_id) AS item_id FROM rc_resolved WHERE line_id IS NOT NULL
                   GROUP BY line_id) rl ON rl.line_id = u.line_id AND u.category <> 'matched'
        LEFT JOIN (SELECT attempt_id, MAX(item_id) AS item_id FROM rc_resolved WHERE attempt_id IS NOT NULL
                   GROUP BY attempt_id) ra ON ra.attempt_id = u.attempt_id AND u.category <> 'matched'
        LEFT JOIN (SELECT refund_id, MAX(item_id) AS item_id FROM rc_resolved
                   WHERE refund_id IS NOT NULL AND line_id IS NULL GROUP BY refund_id) rr
          ON rr.refund_id = u.refund_id AND u.line_id IS NULL AND u.category <> 'matched'
        LEFT JOIN recon_items r ON r.id = COALESCE(rl.item_id, ra.item_id, rr.item_id)
        """,  # noqa: S608
        run=run_id,
    )
    return int(result.rowcount or 0)
