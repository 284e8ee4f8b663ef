"""Benchmark reconciliation end to end on PostgreSQL: 1,000,000 paid attempts, a 1,000,000-line file.

    .venv/bin/python bench/reconcile.py [--attempts 1000000] [--pg postgresql://root@127.0.0.1:5432]
                                        [--database gateway_recon_bench] [--workdir DIR]

Setup (not timed): drop and recreate the database, migrate it, create the attempts with set-based SQL
(``INSERT … SELECT generate_series``), write the provider settlement CSV (one provider, four payout
batches) and a camt.053 statement holding the four payout credits. 1 % of the attempts of each kind
carry a planted discrepancy:

=========================  =======================================================================
category                   planted as
=========================  =======================================================================
missing_in_statement       attempt paid, no line in the file (and the settlement window is over)
amount_mismatch            the line's amount is 1,000 VND above the attempt's
duplicate                  the line appears twice (same provider transaction id)
fee_variance               the line's fee is 7 VND off the fee schedule
status_conflict            the gateway holds the attempt as ``redirected``; the line says success
                           (the provider is queried, a stub answers "pending", so it stays)
unexpected_in_statement    an extra line whose reference names no attempt
=========================  =======================================================================

Timed, in this process, through the same functions ``gateway import-settlement`` and
``gateway reconcile`` call (:func:`reconciliation.store.import_settlement` in one transaction, then
:func:`reconciliation.runs.reconcile`): wall time, rows/s and peak RSS (``ru_maxrss``). Then every
planted discrepancy is checked to be found with the right category (and nothing else flagged), and
DuckDB times the bare join of the same file with the same attempts (exported to CSV) as a reference,
in a child process so that its memory does not count in ours.

Exit 0 when every planted discrepancy was found; 1 otherwise. Targets (issue 6.8): ≤ 60 s end to end,
peak RSS ≤ 1 GB on the 2-core machine; printed, not enforced.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.services.clients import create_client  # noqa: E402
from gateway.storage.db import make_engine, make_session_factory, transaction  # noqa: E402
from gateway.storage.migrate import upgrade  # noqa: E402
from providers.base import Notification, Outcome, QueryRequest  # noqa: E402
from reconciliation.config import ReconConfig, parse_fee_schedule  # noqa: E402
from reconciliation.runs import CATEGORIES, reconcile  # noqa: E402
from reconciliation.store import import_settlement  # noqa: E402

PAID_ON = date(2025, 10, 14)  # a Tuesday
SETTLED_ON = date(2025, 10, 15)
RECONCILE = date(2025, 10, 17)  # Friday: 3 business days after the payments, past the 2-day window
BATCHES = 4
FEES = {"vnpay": {"percent_bps": 110, "min": 1100}}

# attempt number % 100 -> what is planted
PLANTS = {
    1: "missing_in_statement",
    2: "amount_mismatch",
    3: "duplicate",
    4: "fee_variance",
    5: "status_conflict",
    6: "unexpected_in_statement",
}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def recreate_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def amount_of(i: int) -> int:
    return 10_000 + (i % 500) * 1_000


def create_attempts(dsn: str, client_id: str, n: int) -> None:
    """Orders and attempts, set-based; attempt ``i`` is ``att_<i>`` with reference ``GB<i>``."""
    with psycopg.connect(dsn) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute(
            """
            INSERT INTO orders (id, client_id, dossier_code, agency_code, dossier_key, payer_name, amount,
              currency, status, paid_amount, refunded_amount, expires_at, paid_at, created_at, updated_at)
            SELECT 'ord_' || lpad(i::text, 12, '0'), %(client)s, 'H12.22-251014-' || lpad(i::text, 7, '0'),
              'SO-TU-PHAP', md5(i::text), 'Nguyen Van A', 10000 + (i %% 500) * 1000, 'VND',
              CASE WHEN i %% 100 = 5 THEN 'processing' ELSE 'paid' END,
              CASE WHEN i %% 100 = 5 THEN 0 ELSE 10000 + (i %% 500) * 1000 END, 0,
              ts + interval '3 days',
              CASE WHEN i %% 100 = 5 THEN NULL ELSE ts + interval '1 minute' END, ts, ts
            FROM generate_series(1, %(n)s) AS i,
              LATERAL (SELECT timestamptz '2025-10-14 00:00:00+07' + i * interval '80 milliseconds' AS ts) t
            """,
            {"client": client_id, "n": n},
        )
        conn.execute(
            """
            INSERT INTO payment_attempts (id, order_id, provider, reference, status, amount, locale,
              provider_txn_id, paid_at, expires_at, created_at, updated_at, check_count, needs_review)
            SELECT 'att_' || lpad(i::text, 12, '0'), 'ord_' || lpad(i::text, 12, '0'), 'vnpay',
              'GB' || lpad(i::text, 12, '0'),
              CASE WHEN i %% 100 = 5 THEN 'redirected' ELSE 'succeeded' END, 10000 + (i %% 500) * 1000, 'vi',
              CASE WHEN i %% 100 = 5 THEN NULL ELSE 'T' || i END,
              CASE WHEN i %% 100 = 5 THEN NULL ELSE ts + interval '1 minute' END,
              ts + interval '15 minutes', ts, ts + interval '1 minute', 0, false
            FROM generate_series(1, %(n)s) AS i,
              LATERAL (SELECT timestamptz '2025-10-14 00:00:00+07' + i * interval '80 milliseconds' AS ts) t
            """,
            {"n": n},
        )
        conn.commit()
        conn.execute("ANALYZE orders")
        conn.execute("ANALYZE payment_attempts")
        conn.commit()


def write_files(workdir: Path, n: int) -> tuple[Path, Path, int, dict[int, int]]:
    """The settlement CSV and the camt.053 statement; returns their paths, the line count, batch totals."""
    from reconciliation.config import parse_fee_schedule as _fees

    rule = _fees(FEES).rules["vnpay"]
    path = workdir / "vnpay-settlement-20251015.csv"
    totals = dict.fromkeys(range(BATCHES), 0)
    lines = 0
    local_midnight = datetime(2025, 10, 14, 0, 0)  # noqa: DTZ001 - written with an explicit +07:00 below
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(
            "provider,provider_txn_id,reference,amount,fee,net,status,transacted_at,settlement_date,batch_id\n"
        )
        for i in range(1, n + 1):
            kind = PLANTS.get(i % 100)
            amount = amount_of(i)
            batch = i % BATCHES
            # the attempt's paid_at: 00:00 +07:00 + i × 80 ms + 1 minute (see create_attempts)
            stamp = (local_midnight + timedelta(milliseconds=80 * i, minutes=1)).strftime(
                "%Y-%m-%dT%H:%M:%S.%f"
            )
            if kind == "missing_in_statement":
                continue
            gross = amount + 1_000 if kind == "amount_mismatch" else amount
            fee = rule.expected(gross) + (7 if kind == "fee_variance" else 0)
            row = (
                f"vnpay,T{i},GB{i:012d},{gross},{fee},{gross - fee},success,{stamp}+07:00,"
                f"{SETTLED_ON.isoformat()},VNP-20251015-{batch}\n"
            )
            copies = 2 if kind == "duplicate" else 1
            for _ in range(copies):
                fh.write(row)
                totals[batch] += gross - fee
                lines += 1
            if kind == "unexpected_in_statement":
                fee = rule.expected(amount)
                fh.write(
                    f"vnpay,U{i},GX{i:012d},{amount},{fee},{amount - fee},success,{stamp}+07:00,"
                    f"{SETTLED_ON.isoformat()},VNP-20251015-{batch}\n"
                )
                totals[batch] += amount - fee
                lines += 1
    statement = workdir / "statement-20251015.xml"
    statement.write_text(camt_statement(totals), encoding="utf-8")
    return path, statement, lines, totals


def camt_statement(totals: dict[int, int]) -> str:
    opening = 1_000_000_000
    closing = opening + sum(totals.values())
    entries = "".join(
        f'<Ntry><NtryRef>{b + 1}</NtryRef><Amt Ccy="VND">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
        "<Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2025-10-15</Dt></BookgDt><ValDt><Dt>2025-10-15</Dt></ValDt>"
        f"<AcctSvcrRef>FT-PAYOUT-{b}</AcctSvcrRef><NtryDtls><TxDtls><Refs><AcctSvcrRef>FT-PAYOUT-{b}"
        f"</AcctSvcrRef></Refs><RmtInf><Ustrd>VNPAY TT DOI SOAT VNP-20251015-{b}</Ustrd></RmtInf></TxDtls>"
        "</NtryDtls></Ntry>"
        for b, amount in sorted(totals.items())
    )

    def bal(code: str, amount: int, day: str) -> str:
        return (
            f'<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy="VND">{amount}</Amt>'
            f"<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>{day}</Dt></Dt></Bal>"
        )

    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>'
        "<GrpHdr><MsgId>BENCH-20251015</MsgId><CreDtTm>2025-10-16T01:00:00+07:00</CreDtTm></GrpHdr>"
        "<Stmt><Id>BENCH-20251015</Id><CreDtTm>2025-10-16T01:00:00+07:00</CreDtTm>"
        "<Acct><Id><Othr><Id>0071000123456</Id></Othr></Id><Ccy>VND</Ccy></Acct>"
        + bal("OPBD", opening, "2025-10-14")
        + bal("CLBD", closing, "2025-10-15")
        + entries
        + "</Stmt></BkToCstmrStmt></Document>\n"
    )


class PendingProvider:
    """Stands in for VNPAY's query API: every queried payment is still pending at the provider."""

    code = "vnpay"
    supports_query = True

    def query(self, request: QueryRequest) -> Notification:
        return Notification(
            reference=request.reference,
            outcome=Outcome.PENDING,
            amount=None,
            provider_txn_id=None,
            result_code="01",
        )


class StubRegistry:
    def __init__(self) -> None:
        self._p = PendingProvider()

    def __contains__(self, code: object) -> bool:
        return code == "vnpay"

    def get(self, code: str) -> PendingProvider:
        return self._p


def verify(dsn: str, run_id: str, n: int) -> list[str]:
    """Every planted discrepancy found with its category, and nothing else flagged."""
    problems: list[str] = []
    planted = dict.fromkeys(CATEGORIES, 0)
    for k, category in PLANTS.items():
        planted[category] = sum(1 for i in range(1, n + 1) if i % 100 == k)
    with psycopg.connect(dsn) as conn:
        totals = dict(
            conn.execute(
                "SELECT category, count(*) FROM recon_items "
                "WHERE run_id = %s AND level = 'provider' GROUP BY 1",
                (run_id,),
            ).fetchall()
        )
        found = {}
        for k, category in PLANTS.items():
            if category in ("duplicate", "unexpected_in_statement"):
                prefix = "GX" if category == "unexpected_in_statement" else "GB"
                count = conn.execute(
                    "SELECT count(*) FROM recon_items i JOIN statement_lines l ON l.id = i.line_id "
                    "WHERE i.run_id = %s AND i.category = %s AND l.our_reference LIKE %s "
                    "AND substr(l.our_reference, 3)::bigint %% 100 = %s",
                    (run_id, category, prefix + "%", k),
                ).fetchone()
            else:
                count = conn.execute(
                    "SELECT count(*) FROM recon_items WHERE run_id = %s AND category = %s "
                    "AND substr(attempt_id, 5)::bigint %% 100 = %s",
                    (run_id, category, k),
                ).fetchone()
            found[category] = int(count[0]) if count else 0
        payouts = dict(
            conn.execute(
                "SELECT category, count(*) FROM recon_items "
                "WHERE run_id = %s AND level = 'payout' GROUP BY 1",
                (run_id,),
            ).fetchall()
        )
    for category in PLANTS.values():
        if found[category] != planted[category]:
            problems.append(f"{category}: planted {planted[category]}, found {found[category]}")
        if totals.get(category, 0) != planted[category]:
            problems.append(
                f"{category}: {totals.get(category, 0)} items in all, {planted[category]} planted"
            )
    expected_matched = n - sum(
        planted[c] for c in PLANTS.values() if c not in ("duplicate", "unexpected_in_statement")
    )
    if totals.get("matched", 0) != expected_matched:
        problems.append(f"matched: expected {expected_matched}, got {totals.get('matched', 0)}")
    if totals.get("pending", 0):
        problems.append(f"pending: {totals['pending']} (none expected: the window is over)")
    if payouts != {"matched": BATCHES}:
        problems.append(f"payouts: expected {BATCHES} matched, got {payouts}")
    return problems


def duckdb_reference(settlement: Path, attempts_csv: Path) -> dict[str, Any]:
    """The bare join (file ⋈ attempts on reference, exact amount) in DuckDB, in a child process."""
    code = f"""
import duckdb, json, resource, time
con = duckdb.connect()
con.execute("SET threads TO 2")
t = time.perf_counter()
rows = con.execute('''
  SELECT CASE WHEN a.reference IS NULL THEN 'unexpected' WHEN s.reference IS NULL THEN 'missing'
              WHEN s.amount <> a.amount THEN 'amount_mismatch' ELSE 'matched' END AS c, count(*)
  FROM read_csv('{settlement}', header=true) s
  FULL OUTER JOIN read_csv('{attempts_csv}', header=true) a ON s.reference = a.reference
  GROUP BY 1 ORDER BY 1''').fetchall()
print(json.dumps({{"seconds": time.perf_counter() - t, "rows": rows,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    import json

    result: dict[str, Any] = json.loads(out.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--attempts", type=int, default=1_000_000)
    parser.add_argument("--pg", default="postgresql://root@127.0.0.1:5432", help="server DSN (no database)")
    parser.add_argument("--database", default="gateway_recon_bench")
    parser.add_argument("--workdir", default=None, help="where to write the files (default: a temp dir)")
    args = parser.parse_args()

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="recon-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        return _bench(args, workdir)
    finally:
        if args.workdir is None:  # ~200 MB of generated files
            shutil.rmtree(workdir, ignore_errors=True)


def _bench(args: argparse.Namespace, workdir: Path) -> int:
    n = args.attempts
    admin = f"{args.pg}/postgres"
    dsn = f"{args.pg}/{args.database}"
    url = "postgresql+psycopg://" + dsn.split("://", 1)[1]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with psycopg.connect(admin) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    print(f"PostgreSQL {row[0] if row else '?'}; database {args.database}; files in {workdir}")

    t0 = time.perf_counter()
    recreate_database(admin, args.database)
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    with transaction(sessions) as session:
        client = create_client(
            session, "Bench finance", webhook_url=None, scopes=("orders", "finance"), now=datetime.now(UTC)
        )
    create_attempts(dsn, client.client_id, n)
    t1 = time.perf_counter()
    settlement, statement, lines, _totals = write_files(workdir, n)
    attempts_csv = workdir / "attempts.csv"
    with (
        psycopg.connect(dsn) as conn,
        conn.cursor() as cur,
        attempts_csv.open("wb") as fh,
        cur.copy(
            "COPY (SELECT reference, amount FROM payment_attempts) TO STDOUT WITH (FORMAT csv, HEADER)"
        ) as cp,
    ):
        for chunk in cp:
            fh.write(chunk)
    t2 = time.perf_counter()
    print(
        f"setup: {n:,} attempts in {t1 - t0:.1f} s (SQL); "
        f"files ({lines:,} settlement lines) in {t2 - t1:.1f} s"
    )
    rss_before = rss_mb()

    config = ReconConfig(fee_schedule=parse_fee_schedule(FEES))
    start = time.perf_counter()
    with engine.begin() as conn:
        imported = import_settlement(conn, settlement, "vnpay", actor="bench", now=datetime.now(UTC))
    t_import = time.perf_counter() - start
    outcome = reconcile(
        sessions,
        business_date=RECONCILE,
        config=config,
        statement=statement,
        registry=StubRegistry(),
        actor="bench",
        trigger="cli",
    )
    total = time.perf_counter() - start
    t_run = total - t_import
    peak = rss_mb()
    assert outcome.run_id is not None
    print(
        f"import-settlement: {imported.line_count:,} lines in {t_import:.1f} s "
        f"({imported.line_count / t_import:,.0f} rows/s)"
    )
    print(
        f"reconcile:         {outcome.item_count:,} items in {t_run:.1f} s "
        f"({(n + lines) / t_run:,.0f} input rows/s: {n:,} attempts + {lines:,} lines)"
    )
    print(f"end to end:        {total:.1f} s ({(n + lines) / total:,.0f} rows/s)  target ≤ 60 s")
    print(
        f"peak RSS:          {peak:,.0f} MB (before the timed part: {rss_before:,.0f} MB)  target ≤ 1024 MB"
    )
    for category in CATEGORIES:
        t = outcome.totals[category]
        print(f"  {category:<24} {t['count']:>9,}  {t['amount']:>18,} VND")

    problems = verify(dsn, outcome.run_id, n)
    if problems:
        print("FAILED: " + "; ".join(problems))
    else:
        print("every planted discrepancy found with the right category, nothing else flagged")

    ref = duckdb_reference(settlement, attempts_csv)
    print(
        f"reference: DuckDB bare join of the same file and attempts: {ref['seconds']:.1f} s "
        f"(peak RSS {ref['rss_mb']:,.0f} MB) -> {ref['rows']}"
    )
    print(f"ratio gateway end to end / DuckDB bare join = {total / ref['seconds']:.1f}")
    engine.dispose()
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
