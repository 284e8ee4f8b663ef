"""A reconciliation run: import the statement, query providers, match, store, report (issue 6.2–6.4).

:func:`reconcile` is what ``gateway reconcile``, the nightly job and the benchmark call. Steps:

1. **Provider queries, outside any transaction.** Settlement lines of the window that name an attempt
   the gateway does not hold as paid (``status_conflict``) are queried at the provider first (at most
   ``RECON_QUERY_LIMIT``); a "paid" answer is applied in step 2 and the item is reported ``matched``
   with reason "confirmed by query" (contract §9: a person only sees what the query could not settle).
2. **One transaction**: import the statement (if it is new), apply the query answers through
   :func:`gateway.services.payments.apply_notification` (source ``reconciliation``), build the
   candidate sets, match level (a) in SQL and the statement lines in :mod:`reconciliation.ladder`,
   link carried items to the previous run's, write the run and its items (``INSERT … SELECT``),
   compute totals and a digest, emit ``reconciliation.completed``.
3. **Commit** — or, with ``dry_run``, roll everything back (the statement import, the payments the
   run would confirm, the run itself): a dry run writes nothing, yet reports exactly what a real run
   would.

Determinism: every set is ordered by stable keys (business date, file, row, sub-row, ids); items get
their ``seq`` from one ``ROW_NUMBER() OVER (ORDER BY …)``; the run's ``digest`` is the SHA-256 of its
items in that order. Re-running a business date with the same inputs (same files, same gateway
state, same previous run) gives the same digest.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from gateway.domain.references import new_sortable_id
from gateway.services.clock import Clock, utc_now
from gateway.services.outbox import emit_client_event
from gateway.services.payments import apply_notification
from gateway.storage.db import transaction
from gateway.storage.models import Order, PaymentAttempt, PortalClient, ReconConfirmation, ReconItem
from providers.base import Notification, Outcome, QueryRequest
from reconciliation.config import ReconConfig
from reconciliation.ladder import Attempt, BankLadder, Item, Line
from reconciliation.matching import (
    LEVEL_RANK,
    Window,
    build_candidates,
    candidate_days,
    deadline_table,
    match_provider_level,
    open_window,
)
from reconciliation.sqlkit import Db, as_datetime
from reconciliation.store import ImportOutcome, import_statement
from reconciliation.timeutil import VN_TZ
from reconciliation.views import ITEM_SELECT, item_view

__all__ = [
    "CATEGORIES",
    "DISCREPANCY_CATEGORIES",
    "RULE_VERSION",
    "RunOutcome",
    "iter_items",
    "reconcile",
]

log = logging.getLogger(__name__)

#: Bump whenever a rule changes what a run produces: stored with every run.
RULE_VERSION = "recon-2026.11.2"

#: contract §9, fixed codes, in the order reports list them.
CATEGORIES: tuple[str, ...] = (
    "matched",
    "pending",
    "missing_in_statement",
    "unexpected_in_statement",
    "amount_mismatch",
    "duplicate",
    "status_conflict",
    "fee_variance",
)
DISCREPANCY_CATEGORIES = frozenset(CATEGORIES) - {"matched", "pending"}

#: What the digest covers, per item in ``seq`` order. Lines are named by their provenance (file SHA-256,
#: row, sub-row), not by their id: a rolled-back dry run consumes PostgreSQL sequence values, so a real
#: run on the same files stores the same lines under other ids.
_DIGEST_COLUMNS = (
    "i.seq",
    "i.level",
    "i.category",
    "i.reason",
    "i.rule",
    "i.amount",
    "i.expected_amount",
    "i.business_date",
    "i.order_id",
    "i.attempt_id",
    "i.refund_id",
    "f.sha256",
    "l.row",
    "l.sub_row",
    "i.batch_key",
    "i.provider",
    "i.status",
    "i.carried_from",
)
_DIGEST_FROM = (
    "FROM recon_items i LEFT JOIN statement_lines l ON l.id = i.line_id "
    "LEFT JOIN statement_files f ON f.id = l.file_id WHERE i.run_id = :run"
)


@dataclass
class RunOutcome:
    run_id: str | None  # None for a dry run (nothing was stored)
    business_date: date
    window_from: date
    totals: dict[str, dict[str, int]]
    item_count: int
    digest: str
    dry_run: bool
    previous_run_id: str | None = None
    statement: ImportOutcome | None = None
    queried: int = 0
    inputs: dict[str, Any] = field(default_factory=dict)

    @property
    def discrepancies(self) -> bool:
        """Anything other than matched and pending (CLI exit code 1)."""
        return any(self.totals[c]["count"] for c in DISCREPANCY_CATEGORIES)

    def header(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "business_date": self.business_date.isoformat(), "totals": self.totals}


#: Receives the outcome and the items (contract §9 item dicts, in ``seq`` order) inside the run's
#: transaction, before it commits (or rolls back, for a dry run).
ItemSink = Callable[[RunOutcome, Iterator[dict[str, Any]]], None]


# -- step 1: provider queries -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Query:
    attempt_id: str
    provider: str
    request: QueryRequest


def _to_query(sessions: sessionmaker[Session], business_date: date) -> list[_Query]:
    """Attempts not paid at the gateway that a settlement line of the run's window names."""
    with transaction(sessions) as session:
        db = Db(session.connection())
        win = open_window(db, business_date)
        window = (
            "((l.business_date > :lower AND l.business_date <= :d) "
            "OR (l.business_date <= :lower AND l.file_id > :wm) "
            "OR l.id IN (SELECT i.line_id FROM recon_items i WHERE i.run_id = :prev AND i.status = 'open'))"
        )
        rows = db.x(
            "SELECT a.id, a.provider, a.reference, a.amount, a.created_at, a.provider_txn_id, "  # noqa: S608
            "a.provider_data, "
            "o.dossier_code FROM payment_attempts a JOIN orders o ON o.id = a.order_id "
            "WHERE a.status IN ('created', 'redirected', 'unknown') "
            "AND EXISTS (SELECT 1 FROM statement_lines l "
            "WHERE l.provider = a.provider AND l.our_reference = a.reference AND l.kind = 'settlement' "
            f"AND l.status = 'success' AND {window}) ORDER BY a.id",
            d=business_date,
            lower=win.lower,
            wm=win.watermark,
            prev=win.prev_run_id or "",
        ).all()
    out = []
    for r in rows:
        data = r.provider_data
        if isinstance(data, str):
            data = json.loads(data)
        created = as_datetime(r.created_at)
        assert created is not None
        out.append(
            _Query(
                attempt_id=r.id,
                provider=r.provider,
                request=QueryRequest(
                    reference=r.reference,
                    amount=int(r.amount),
                    created_at=created,
                    order_info=f"Thanh toan ho so {r.dossier_code}",
                    provider_txn_id=r.provider_txn_id,
                    provider_data=dict(data or {}),
                ),
            )
        )
    return out


def _ask_providers(
    queries: list[_Query], registry: Any, limit: int
) -> dict[str, tuple[str, Notification | None]]:
    """``attempt_id -> (note for the item, the provider's answer)``; never inside a transaction."""
    answers: dict[str, tuple[str, Notification | None]] = {}
    asked = 0
    for q in queries:
        if registry is None:
            answers[q.attempt_id] = ("provider not queried (no provider registry)", None)
            continue
        if q.provider not in registry or not registry.get(q.provider).supports_query:
            answers[q.attempt_id] = ("provider cannot be queried", None)
            continue
        if asked >= limit:
            answers[q.attempt_id] = ("provider not queried (query limit reached)", None)
            continue
        asked += 1
        try:
            note = registry.get(q.provider).query(q.request)
        except Exception as exc:  # a provider's trouble must not stop the run
            log.warning("reconciliation: query of %s attempt %s failed: %s", q.provider, q.attempt_id, exc)
            answers[q.attempt_id] = ("provider query failed", None)
            continue
        answers[q.attempt_id] = (f"provider query: {note.outcome.value}", note)
    return answers


# -- step 2: the run ---------------------------------------------------------------------------------


def _refs(refs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sorted(refs.items()) if v is not None}


def _sort_key(it: Item) -> tuple[Any, ...]:
    return (
        LEVEL_RANK[it.level],
        it.bd,
        it.line_id or 0,
        it.attempt_id or "",
        it.refund_id or "",
        it.provider or "",
        it.batch_key or "",
    )


def _store_ladder_items(db: Db, run_id: str, items: list[Item], *, offset: int) -> None:
    """The statement-level items, after level (a)'s: ``seq`` continues at ``offset + 1``.

    Linked like level (a)'s (matching.match_provider_level): ``carried_from`` the previous run's open
    item about the same line, attempt, payout or unreflected refund; a finance resolution of the same
    subject is inherited.
    """
    carried: dict[tuple[str, Any], int] = {}
    for r in db.x(
        "SELECT item_id, level, attempt_id, refund_id, line_id, provider, batch_key FROM rc_prev "
        "ORDER BY item_id"
    ):
        if r.line_id is not None:
            carried.setdefault(("line", int(r.line_id)), int(r.item_id))
        if r.attempt_id is not None:
            carried.setdefault(("attempt", r.attempt_id), int(r.item_id))
        if r.refund_id is not None and r.line_id is None:
            carried.setdefault(("refund", r.refund_id), int(r.item_id))
        if r.level == "payout" and r.batch_key is not None:
            carried.setdefault(("batch", (r.provider, r.batch_key)), int(r.item_id))
    resolved: dict[tuple[str, Any], Any] = {}
    for r in db.x(
        "SELECT i.id, i.attempt_id, i.refund_id, i.line_id, i.provider, i.batch_key, i.level, "
        "i.resolved_at, i.resolved_by, "
        "i.resolution FROM recon_items i JOIN rc_resolved r ON r.item_id = i.id ORDER BY i.id"
    ):
        if r.line_id is not None:
            resolved[("line", int(r.line_id))] = r
        if r.attempt_id is not None:
            resolved[("attempt", r.attempt_id)] = r
        if r.refund_id is not None and r.line_id is None:
            resolved[("refund", r.refund_id)] = r
        if r.level == "payout" and r.batch_key is not None and r.line_id is None:
            resolved[("batch", (r.provider, r.batch_key))] = r
    rows = []
    for seq, it in enumerate(sorted(items, key=_sort_key), start=offset + 1):
        keys: list[tuple[str, Any]] = [("line", it.line_id), ("attempt", it.attempt_id)]
        if it.level == "payout":
            keys.append(("batch", (it.provider, it.batch_key)))
        # An unreflected refund is carried by its refund; so is the debit that finally answers it.
        carried_from = next((carried[k] for k in [*keys, ("refund", it.refund_id)] if k in carried), None)
        if it.line_id is None:
            keys.append(("refund", it.refund_id))
        earlier = None
        if it.category != "matched":
            earlier = next((resolved[k] for k in keys if k in resolved), None)
        rows.append(
            {
                "run_id": run_id,
                "seq": seq,
                "level": it.level,
                "category": it.category,
                "reason": it.reason,
                "detail": it.detail,
                "rule": it.rule,
                "amount": it.amount,
                "expected_amount": it.expected_amount,
                "business_date": it.bd,
                "order_id": it.order_id,
                "attempt_id": it.attempt_id,
                "refund_id": it.refund_id,
                "line_id": it.line_id,
                "batch_key": it.batch_key,
                "provider": it.provider,
                "references": _refs(it.refs),
                "status": "resolved"
                if earlier is not None
                else ("closed" if it.category == "matched" else "open"),
                "carried_from": carried_from,
                "resolved_at": as_datetime(earlier.resolved_at) if earlier is not None else None,
                "resolved_by": earlier.resolved_by if earlier is not None else None,
                "resolution": f"resolved earlier (item {earlier.id}): {earlier.resolution or ''}"
                if earlier is not None
                else None,
            }
        )
    for i in range(0, len(rows), 1000):
        db.conn.execute(insert(ReconItem), rows[i : i + 1000])


def _totals(db: Db, run_id: str) -> dict[str, dict[str, int]]:
    totals = {c: {"count": 0, "amount": 0} for c in CATEGORIES}
    for r in db.x(
        "SELECT category, COUNT(*) AS n, COALESCE(SUM(amount), 0) AS total FROM recon_items "
        "WHERE run_id = :run GROUP BY category",
        run=run_id,
    ):
        totals[r.category] = {"count": int(r.n), "amount": int(r.total)}
    return totals


def _stream(db: Db, sql: str, **params: Any) -> Iterator[Any]:
    """Rows in batches through a server-side cursor (PostgreSQL): memory stays flat for a million items."""
    stmt = text(sql).execution_options(yield_per=5000)
    yield from db.conn.execute(stmt, {k: db.bind(v) for k, v in params.items()})


def _digest(db: Db, run_id: str) -> str:
    """SHA-256 of the run's items in ``seq`` order, one ``|``-joined line per item (NULL as empty).

    PostgreSQL computes it in the database (one pass, no rows shipped); elsewhere Python streams them.
    Both spell the values the same way, so the digest does not depend on who computed it.
    """
    cols = list(_DIGEST_COLUMNS)
    if db.pg:
        parts = ", ".join(f"COALESCE(CAST({c} AS TEXT), '')" for c in cols)
        value = db.x(
            "SELECT encode(sha256(convert_to(COALESCE(string_agg(concat_ws('|', "
            f"{parts}) || chr(10), '' ORDER BY i.seq), ''), 'UTF8')), 'hex') {_DIGEST_FROM}",
            run=run_id,
        ).scalar_one()
        return str(value)
    digest = hashlib.sha256()
    for row in _stream(db, f"SELECT {', '.join(cols)} {_DIGEST_FROM} ORDER BY i.seq", run=run_id):
        values = []
        for value in row:
            if value is None:
                values.append("")
            elif isinstance(value, date):
                values.append(value.isoformat())
            else:
                values.append(str(value))
        digest.update(("|".join(values) + "\n").encode())
    return digest.hexdigest()


def iter_items(db: Db, run_id: str, category: str | None = None) -> Iterator[dict[str, Any]]:
    """contract §9 items of a run in ``seq`` order, streamed (flat memory for a million)."""
    sql = ITEM_SELECT + "WHERE i.run_id = :run" + (" AND i.category = :category" if category else "")
    params: dict[str, Any] = {"run": run_id}
    if category:
        params["category"] = category
    for row in _stream(db, sql + " ORDER BY i.seq", **params):
        yield item_view(row)


def _inputs(db: Db, statement: ImportOutcome | None) -> dict[str, Any]:
    files = [
        {"sha256": r.sha256, "kind": r.kind, "source": r.source, "filename": r.filename}
        for r in db.x(
            "SELECT sha256, kind, source, filename FROM statement_files WHERE id IN "  # noqa: S608
            "(SELECT file_id FROM rc_sl UNION SELECT file_id FROM rc_bl"
            + (" UNION SELECT :sid" if statement else "")
            + ") ORDER BY sha256",
            **({"sid": statement.file_id} if statement else {}),
        )
    ]
    att = db.x("SELECT COUNT(*) AS n, COALESCE(SUM(amount), 0) AS total FROM rc_att").one()
    ref = db.x("SELECT COUNT(*) AS n, COALESCE(SUM(amount), 0) AS total FROM rc_rf").one()
    return {
        "files": files,
        "attempts": {"count": int(att.n), "amount": int(att.total)},
        "refunds": {"count": int(ref.n), "amount": int(ref.total)},
    }


class _Confirmer:
    """Pays an open bank-transfer attempt that a statement credit confirms (the normal transition)."""

    def __init__(self, session: Session, run_id: str, now: datetime, base_url: str) -> None:
        self.session = session
        self.run_id = run_id
        self.now = now
        self.base_url = base_url

    def __call__(self, attempt: Attempt, line: Line) -> tuple[str, str]:
        paid_at = line.booked_at or datetime.combine(line.bd, time(0), VN_TZ).astimezone(UTC)
        note = Notification(
            reference=attempt.reference,
            outcome=Outcome.SUCCEEDED,
            amount=line.gross,
            provider_txn_id=line.bank_reference or f"statement-line-{line.id}",
            result_code="statement",
            paid_at=paid_at,
            raw={"statement_line_id": line.id},
        )
        apply_notification(
            self.session,
            attempt.provider,
            note,
            source="reconciliation",
            now=self.now,
            base_url=self.base_url,
        )
        self.session.flush()
        row = self.session.get(PaymentAttempt, attempt.id, populate_existing=True)
        order = self.session.get(Order, attempt.order_id, populate_existing=True)
        assert row is not None
        assert order is not None
        if row.status == "succeeded" and self.session.get(ReconConfirmation, attempt.id) is None:
            self.session.add(
                ReconConfirmation(
                    attempt_id=attempt.id,
                    run_id=self.run_id,
                    via="statement",
                    line_id=line.id,
                    created_at=self.now,
                )
            )
            self.session.flush()
        return row.status, order.status


def _apply_answers(
    session: Session,
    db: Db,
    answers: dict[str, tuple[str, Notification | None]],
    *,
    run_id: str,
    now: datetime,
    base_url: str,
) -> None:
    db.temp("rc_q", "attempt_id VARCHAR(40) PRIMARY KEY, note VARCHAR(120)")
    rows = []
    for attempt_id, (said, note) in sorted(answers.items()):
        note_text = said
        attempt = session.get(PaymentAttempt, attempt_id)
        if note is not None and note.outcome is Outcome.SUCCEEDED and attempt is not None:
            apply_notification(
                session, attempt.provider, note, source="reconciliation", now=now, base_url=base_url
            )
            session.flush()
            attempt = session.get(PaymentAttempt, attempt_id, populate_existing=True)
            if attempt is not None and attempt.status == "succeeded":
                if session.get(ReconConfirmation, attempt_id) is None:
                    session.add(
                        ReconConfirmation(
                            attempt_id=attempt_id, run_id=run_id, via="query", line_id=None, created_at=now
                        )
                    )
                    session.flush()
                continue
            note_text = "provider query: succeeded, but it could not be applied"
        rows.append({"attempt_id": attempt_id, "note": note_text[:120]})
    db.many("INSERT INTO rc_q VALUES (:attempt_id, :note)", rows)


def _emit_completed(session: Session, outcome: RunOutcome, now: datetime) -> None:
    """``reconciliation.completed`` for every enabled portal client holding the finance scope."""
    data = {
        "run": {
            "run_id": outcome.run_id,
            "business_date": outcome.business_date.isoformat(),
            "totals": outcome.totals,
            "item_count": outcome.item_count,
            "digest": outcome.digest,
            "previous_run_id": outcome.previous_run_id,
        }
    }
    clients = session.scalars(
        select(PortalClient).where(PortalClient.disabled_at.is_(None)).order_by(PortalClient.id)
    ).all()
    for client in clients:
        if "finance" in client.scope_set:
            emit_client_event(session, client.id, "reconciliation.completed", data, at=now)


def reconcile(
    sessions: sessionmaker[Session],
    *,
    business_date: date,
    config: ReconConfig,
    statement: str | Path | None = None,
    statement_format: str = "auto",
    dry_run: bool = False,
    registry: Any = None,
    clock: Clock = utc_now,
    base_url: str = "",
    actor: str = "cli",
    trigger: str = "cli",
    sink: ItemSink | None = None,
) -> RunOutcome:
    """Reconcile ``business_date``; see the module docstring.

    Raises:
        reconciliation.records.FileRejected: the statement is malformed; nothing was written.
    """
    started = clock()
    queries = _to_query(sessions, business_date)
    answers = _ask_providers(queries, registry, config.query_limit)
    now = clock()

    session = sessions()
    try:
        conn = session.connection()
        db = Db(conn)
        if db.pg:
            # One run at a time (two would each take the other's previous run as their own).
            db.x("SELECT pg_advisory_xact_lock(hashtext('gateway:reconciliation-run'))")
            db.x("SET LOCAL work_mem = '128MB'")
        imported = None
        if statement is not None:
            imported = import_statement(
                conn,
                statement,
                format=statement_format,
                mapping=config.statement_mapping(),
                actor=actor,
                now=now,
            )
        run_id = new_sortable_id("rcn")
        win: Window = open_window(db, business_date)
        _apply_answers(session, db, answers, run_id=run_id, now=now, base_url=base_url)
        watermark = int(db.x("SELECT COALESCE(MAX(id), 0) FROM statement_files").scalar_one())
        build_candidates(db, win, direct_providers=config.direct_providers)
        deadline_table(db, win, config.calendar, config.settlement_window_days, candidate_days(db))
        level_a = match_provider_level(db, win, fees=config.fee_schedule, run_id=run_id)
        ladder = BankLadder(
            db,
            window=win,
            business_date=business_date,
            calendar=config.calendar,
            date_window=config.date_window_days,
            settlement_window=config.settlement_window_days,
            direct_providers=config.direct_providers,
            confirm=_Confirmer(session, run_id, now, base_url),
        )
        _store_ladder_items(db, run_id, ladder.run(), offset=level_a)
        inputs = _inputs(db, imported)
        db.x(
            'INSERT INTO recon_runs (id, business_date, window_from, status, "trigger", '  # noqa: S608
            "actor, started_at, "
            "finished_at, rule_version, settings, inputs, totals, item_count, digest, previous_run_id, "
            f"file_watermark) VALUES (:id, :d, :wf, 'completed', :trigger, :actor, :started, NULL, :rv, "
            f"{db.json_param(':settings')}, {db.json_param(':inputs')}, {db.json_param(':totals')}, 0, '', "
            ":prev, :wm)",
            id=run_id,
            d=business_date,
            wf=win.window_from,
            trigger=trigger[:16],
            actor=actor[:200],
            started=started,
            rv=RULE_VERSION,
            settings=json.dumps({"rule_version": RULE_VERSION, **config.fingerprint()}),
            inputs=json.dumps(inputs),
            totals="{}",
            prev=win.prev_run_id,
            wm=watermark,
        )
        db.drop_temps()
        totals = _totals(db, run_id)
        count = sum(t["count"] for t in totals.values())
        digest = _digest(db, run_id)
        finished = clock()
        db.x(
            f"UPDATE recon_runs SET totals = {db.json_param(':totals')}, "  # noqa: S608
            "item_count = :n, digest = :digest, "
            "finished_at = :finished WHERE id = :id",
            totals=json.dumps(totals),
            n=count,
            digest=digest,
            finished=finished,
            id=run_id,
        )
        outcome = RunOutcome(
            run_id=None if dry_run else run_id,
            business_date=business_date,
            window_from=win.window_from,
            totals=totals,
            item_count=count,
            digest=digest,
            dry_run=dry_run,
            previous_run_id=win.prev_run_id,
            statement=imported,
            queried=sum(1 for _, note in answers.values() if note is not None),
            inputs=inputs,
        )
        if not dry_run:
            _emit_completed(session, outcome, finished)
            session.flush()
        if sink is not None:
            sink(outcome, iter_items(db, run_id))
        if dry_run:
            session.rollback()
        else:
            session.commit()
        return outcome
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
