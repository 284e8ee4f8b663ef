"""Load benchmark of VNPAY IPNs (``GET /callbacks/vnpay``) under gunicorn on PostgreSQL (issue 5.9).

    .venv/bin/python bench/ipn_load.py [--orders 10000] [--duplicates 1000] [--connections 8]

Steps: (re)create a dedicated database, migrate it, create a portal client, and write ``--orders``
orders, each with one ``redirected`` VNPAY attempt, straight into PostgreSQL with COPY (plus
``--warmup`` more for the warm-up). Precompute one signed IPN per attempt (the emulated VNPAY
terminal's key, the parameter set of providers.md §1.5) plus an identical second copy for
``--duplicates`` of them, shuffled. Start the gateway (``GATEWAY_ENV=test``: emulated VNPAY) under
gunicorn, then drive it with wrk (bench/wrk_ipn.lua: every request sent exactly once, every answer
recorded): the baseline ``GET /healthz`` with as many requests, the IPNs, the baseline again.
Print IPNs/s, p50/p99 latency, the answers (00 / 02 / other), gunicorn-worker and PostgreSQL CPU
per request and the same figures of the baseline; then check in PostgreSQL that every order was
paid exactly once (one audit row to ``paid``, one ``order.paid`` event), that every notification
was stored, and that each reference got exactly one ``00`` and its duplicate ``02``.

Exit 0 when the run completed and every check passed, whatever the throughput; 1 on any mismatch,
lost or unexpected answer, socket error, or a server that did not start; 2 if wrk is missing.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Json
from sqlalchemy.exc import SQLAlchemyError

# The repository's packages, also without an editable install (as when run as bench/ipn_load.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.create_order import (
    ROOT,
    SERVER_THREADS,
    WORKERS,
    BenchError,
    Server,
    cpu_seconds,
    gunicorn,
    load_average,
    postgres_version,
    recreate_database,
    run_cli,
    socket_errors,
)
from gateway.services.orders import dossier_key
from providers.emulators.vnpay import build_ipn_query
from providers.vnpay import EMULATOR_HASH_SECRET, EMULATOR_TMN_CODE, to_vnp_date

LUA = ROOT / "bench" / "wrk_ipn.lua"
CALLBACK_PATH = "/callbacks/vnpay"
OK, ALREADY = "200:00", "200:02"  # "<HTTP status>:<RspCode>" as recorded by wrk_ipn.lua
HEALTHY = "200:-"
MEASURED, WARMUP = "IPNB", "IPNW"  # dossier-code and reference prefixes of the two sets of orders
WARMUP_HEALTHZ = 1000
WRK_CAP_SECONDS = 3600  # wrk's -d: only a cap, the run ends when every target was answered
# Variables that would point the gateway at real providers or a broker: never inherited.
FOREIGN_ENV = ("GATEWAY_", "DATABASE_", "BROKER_", "VNPAY_", "MOMO_", "ZALOPAY_", "VIETQR_", "RSABANK_")


# --- the data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Payment:
    """One order with one redirected VNPAY attempt, and the IPN VNPAY sends when it is paid."""

    kind: str  # MEASURED or WARMUP
    number: int
    order_id: str
    attempt_id: str
    reference: str
    dossier_code: str
    amount: int
    query: str = ""


def make_payments(kind: str, count: int, rng: random.Random) -> list[Payment]:
    payments = []
    for n in range(1, count + 1):
        payments.append(
            Payment(
                kind=kind,
                number=n,
                order_id=f"ord_{uuid.UUID(int=rng.getrandbits(128)).hex}",
                attempt_id=f"att_{uuid.UUID(int=rng.getrandbits(128)).hex}",
                # 14 characters like gateway.domain.references.new_reference; unique per attempt.
                reference=f"GW{kind[-1]}{n:011d}",
                dossier_code=f"{kind}-{n:06d}",
                amount=10_000 + 1_000 * rng.randrange(500),  # 10,000 .. 509,000 VND
            )
        )
    return payments


def ipn_params(payment: Payment, pay_date: str) -> dict[str, str]:
    """What VNPAY sends to the IPN URL for a successful payment (providers.md §1.5; tests/helpers.py)."""
    txn_no = str(14_000_000 + (0 if payment.kind == MEASURED else 5_000_000) + payment.number)
    return {
        "vnp_TmnCode": EMULATOR_TMN_CODE,
        "vnp_Amount": str(payment.amount * 100),
        "vnp_BankCode": "NCB",
        "vnp_BankTranNo": f"VNP{txn_no}",
        "vnp_CardType": "ATM",
        "vnp_OrderInfo": f"Thanh toan ho so {payment.dossier_code}",
        "vnp_PayDate": pay_date,
        "vnp_ResponseCode": "00",
        "vnp_TransactionNo": txn_no,
        "vnp_TransactionStatus": "00",
        "vnp_TxnRef": payment.reference,
    }


def sign_all(payments: Iterable[Payment], pay_date: str) -> list[Payment]:
    return [
        replace(p, query=build_ipn_query(EMULATOR_HASH_SECRET, ipn_params(p, pay_date))) for p in payments
    ]


def seed_database(
    dsn: str, client_id: str, payments: Sequence[Payment], now: datetime, base_url: str
) -> None:
    """The orders, items, attempts and their audit rows as the gateway leaves them after a redirect."""
    expires = now + timedelta(days=1)
    created = now - timedelta(minutes=5)
    create_date = to_vnp_date(now)
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY orders (id, client_id, dossier_code, agency_code, dossier_key, payer_name, amount, "
            "currency, metadata, status, paid_amount, refunded_amount, expires_at, created_at, updated_at) "
            "FROM STDIN"
        ) as copy:
            for p in payments:
                copy.write_row(
                    (
                        p.order_id,
                        client_id,
                        p.dossier_code,
                        "BENCH-AGENCY",
                        dossier_key(p.dossier_code, ["LPTB"]),
                        "Nguyen Van Bench",
                        p.amount,
                        "VND",
                        Json({"bench": "ipn_load"}),
                        "processing",
                        0,
                        0,
                        expires,
                        created,
                        now,
                    )
                )
        with cur.copy(
            "COPY order_items (order_id, position, code, kind, description, amount) FROM STDIN"
        ) as copy:
            for p in payments:
                copy.write_row((p.order_id, 0, "LPTB", "fee", "Le phi truoc ba", p.amount))
        with cur.copy(
            "COPY payment_attempts (id, order_id, provider, reference, status, amount, locale, client_ip, "
            "redirect_url, provider_data, expires_at, created_at, updated_at, check_count, needs_review) "
            "FROM STDIN"
        ) as copy:
            for p in payments:
                copy.write_row(
                    (
                        p.attempt_id,
                        p.order_id,
                        "vnpay",
                        p.reference,
                        "redirected",
                        p.amount,
                        "vi",
                        "127.0.0.1",
                        f"{base_url}/_emulator/vnpay/paymentv2/vpcpay.html?vnp_TxnRef={p.reference}",
                        Json({"vnp_CreateDate": create_date, "vnp_TxnRef": p.reference}),
                        expires,
                        now,
                        now,
                        0,
                        False,
                    )
                )
        with cur.copy(
            "COPY audit_log (entity_type, entity_id, action, from_status, to_status, actor, source, reason, "
            "created_at) FROM STDIN"
        ) as copy:
            for p in payments:
                for entity, entity_id, before, after, reason in (
                    ("order", p.order_id, "pending", "processing", "payment started with vnpay"),
                    ("attempt", p.attempt_id, "created", "redirected", "redirect handed out"),
                ):
                    row = (entity, entity_id, "transition", before, after, client_id, "attempt", reason, now)
                    copy.write_row(row)
        cur.execute("ANALYZE")


def write_targets(path: Path, targets: Iterable[str]) -> int:
    lines = list(targets)
    path.write_text("".join(f"{t}\n" for t in lines), encoding="ascii")
    return len(lines)


# --- load ---------------------------------------------------------------------------------------


def machine_cpu() -> tuple[float, float] | None:
    """(busy, total) jiffies of the whole machine from /proc/stat (None where there is none)."""
    try:
        fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


def backend_cpu(database: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving ``database`` on this machine, from /proc.

    Backends show their database in their title ("postgres: root <database> 127.0.0.1(port) idle").
    """
    found: dict[int, float] = {}
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        return found
    needle = f" {database} ".encode()
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"postgres: ") and needle in title:
            cpu = cpu_seconds(int(entry.name))
            if cpu is not None:
                found[int(entry.name)] = cpu
    return found


@dataclass
class Run:
    name: str
    lines: int  # targets in the file, each sent once
    answers: dict[int, str] = field(default_factory=dict)  # line -> "<status>:<code>"
    window_s: float = 0.0  # first request sent .. last answer received
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    sockerr: int = 0
    repeats: int = 0
    unmatched: int = 0
    fillers: int = 0
    stalled: bool = False
    first_bad: str = ""
    cpu_ms: float | None = None  # gunicorn workers' CPU per answered request
    split: str = "n/a"
    pg_ms: float | None = None  # the database's backends' CPU per answered request
    busy_pct: float | None = None

    @property
    def rps(self) -> float:
        return len(self.answers) / self.window_s if self.window_s else 0.0

    def count(self, *answers: str) -> int:
        return sum(1 for a in self.answers.values() if a in answers)

    @property
    def missing(self) -> int:
        return self.lines - len(self.answers)

    @property
    def transport_problems(self) -> list[str]:
        problems = []
        if self.stalled:
            problems.append("wrk stalled (no answer for too long) and was stopped")
        if self.missing:
            problems.append(f"{self.missing} request(s) got no answer")
        if self.sockerr:
            problems.append(f"{self.sockerr} socket error(s)/timeout(s)")
        if self.repeats or self.unmatched:
            problems.append(f"{self.repeats} repeated and {self.unmatched} unattributable answer(s)")
        if self.fillers:
            problems.append(f"{self.fillers} filler request(s) after a connection error")
        return problems


def _pump(stream: Any, sink: queue.Queue[str | None]) -> None:
    for line in stream:
        sink.put(line.rstrip("\n"))
    sink.put(None)


def _drain(source: queue.Queue[str | None]) -> list[str]:
    lines = []
    while not source.empty():
        line = source.get_nowait()
        if line is not None:
            lines.append(line)
    return lines


def drive(
    wrk: str, server: Server, targets: Path, lines: int, name: str, tag: str, args: argparse.Namespace
) -> Run:
    """Send every line of ``targets`` once with wrk; stop wrk once every thread has all its answers."""
    cmd = [
        wrk,
        *(f"-t{args.threads}", f"-c{args.connections}", f"-d{WRK_CAP_SECONDS}s", "--timeout", "10s"),
        *("-s", str(LUA), server.base, "--", str(targets), tag, str(args.threads), str(args.recycle)),
    ]
    run = Run(name=name, lines=lines)
    workers = server.workers()
    cpu_before = [cpu_seconds(pid) for pid in workers]
    machine_before = machine_cpu()
    pg_before = backend_cpu(args.database)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out: queue.Queue[str | None] = queue.Queue()
    err: queue.Queue[str | None] = queue.Queue()
    readers = [
        threading.Thread(target=_pump, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, err), daemon=True),
    ]
    for reader in readers:
        reader.start()
    done: set[str] = set()
    collected: list[str] = []
    last_news = time.monotonic()
    while len(done) < args.threads:
        try:
            line = out.get(timeout=1.0)
        except queue.Empty:
            if proc.poll() is not None:
                break
            if time.monotonic() - last_news > args.stall_timeout:
                run.stalled = True
                break
            continue
        if line is None:
            break
        last_news = time.monotonic()
        if line.startswith("WRK_THREAD_DONE "):
            done.add(line.split()[1])
        elif not line.startswith("WRK_PROGRESS "):
            collected.append(line)
    cpu_after = [cpu_seconds(pid) for pid in workers]
    machine_after = machine_cpu()
    pg_after = backend_cpu(args.database)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # wrk then reports (done()) and exits
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    for reader in readers:
        reader.join(timeout=10)
    collected += _drain(out)
    errors = _drain(err)

    result: dict[str, Any] | None = None
    for line in collected:
        if line.startswith("WRK_RESULT "):
            result = json.loads(line.removeprefix("WRK_RESULT "))
        elif line.startswith("WRK_ANSWERS "):
            for item in filter(None, line.removeprefix("WRK_ANSWERS ").split(",")):
                number, _, answer = item.partition("=")
                run.answers[int(number)] = answer
    if result is None:
        raise BenchError(
            f"wrk gave no result for {name} (exit {proc.returncode}):\n"
            + "\n".join(collected[-20:] + errors[-20:])
        )
    run.window_s = result["window_us"] / 1e6
    run.p50_ms = result["latency_us"]["p50"] / 1000
    run.p99_ms = result["latency_us"]["p99"] / 1000
    run.sockerr = socket_errors(result)
    run.repeats, run.unmatched, run.fillers = result["repeats"], result["unmatched"], result["fillers"]
    run.first_bad = result["first_bad"]

    used = [b - a for a, b in zip(cpu_before, cpu_after, strict=True) if a is not None and b is not None]
    # Only when the same workers served the whole run (none restarted, /proc readable).
    if workers and len(used) == len(workers) and server.workers() == workers and sum(used) > 0:
        run.cpu_ms = 1000 * sum(used) / max(len(run.answers), 1)
        run.split = "/".join(f"{100 * u / sum(used):.0f}" for u in used)
    if pg_after:  # a backend that started during the run spent all its CPU in it
        pg_used = sum(cpu - pg_before.get(pid, 0.0) for pid, cpu in pg_after.items())
        run.pg_ms = 1000 * pg_used / max(len(run.answers), 1)
    if machine_before and machine_after and machine_after[1] > machine_before[1]:
        busy = machine_after[0] - machine_before[0]
        run.busy_pct = 100 * busy / (machine_after[1] - machine_before[1])
    return run


# --- checks -------------------------------------------------------------------------------------


@dataclass
class Check:
    label: str
    detail: str
    ok: bool


def check_answers(run: Run, lines: Sequence[Payment], sends: Mapping[str, int]) -> list[Check]:
    """Per reference: exactly one 00; every other copy 02; nothing else, nothing missing."""
    per_ref: dict[str, Counter[str]] = defaultdict(Counter)
    later_won = 0
    first_line: dict[str, int] = {}
    for number, payment in enumerate(lines, start=1):
        first_line.setdefault(payment.reference, number)
        answer = run.answers.get(number)
        if answer is None:
            continue
        per_ref[payment.reference][answer] += 1
        if answer == OK and number != first_line[payment.reference]:
            later_won += 1
    one_ok = sum(1 for ref in sends if per_ref[ref][OK] == 1)
    dup_ok = sum(1 for ref, n in sends.items() if per_ref[ref][ALREADY] == n - 1)
    duplicates = sum(n - 1 for n in sends.values())
    other = len(run.answers) - run.count(OK, ALREADY)
    return [
        Check(
            f"{run.name}: every request answered once",
            f"{len(run.answers)} / {run.lines}" + "".join(f"; {p}" for p in run.transport_problems),
            not run.transport_problems,
        ),
        Check(
            f"{run.name}: RspCode 00 / 02 / other",
            f"{run.count(OK)} / {run.count(ALREADY)} / {other}"
            f" (expected {len(sends)} / {duplicates} / 0)"
            + (f"; first non-200: {run.first_bad}" if run.first_bad else ""),
            run.count(OK) == len(sends) and run.count(ALREADY) == duplicates and other == 0,
        ),
        Check(
            f"{run.name}: exactly one 00 per reference",
            f"{one_ok} / {len(sends)} references; 02 for every other copy: {dup_ok} / {len(sends)}"
            f" (the copy later in the file got the 00: {later_won} time(s), a race it may win)",
            one_ok == len(sends) and dup_ok == len(sends),
        ),
    ]


def check_baseline(run: Run) -> Check:
    bad = len(run.answers) - run.count(HEALTHY)
    problems = run.transport_problems + ([f"{bad} answer(s) other than 200"] if bad else [])
    return Check(
        f"{run.name}: every request answered 200",
        f"{run.count(HEALTHY)} / {run.lines}"
        + (f"; {'; '.join(problems)}" if problems else "")
        + (f"; first: {run.first_bad}" if run.first_bad else ""),
        not problems,
    )


ORDER_FACTS = """
SELECT o.dossier_code, o.status, o.paid_amount = o.amount AND o.paid_at IS NOT NULL,
       (SELECT a.status FROM payment_attempts a WHERE a.order_id = o.id),
       (SELECT count(*) FROM audit_log l
         WHERE l.entity_type = 'order' AND l.entity_id = o.id AND l.to_status = 'paid'),
       (SELECT count(*) FROM audit_log l JOIN payment_attempts a ON l.entity_id = a.id
         WHERE a.order_id = o.id AND l.entity_type = 'attempt' AND l.to_status = 'succeeded'),
       (SELECT count(*) FROM outbox_events e WHERE e.order_id = o.id AND e.type = 'order.paid'),
       (SELECT count(*) FROM outbox_events e WHERE e.order_id = o.id AND e.type <> 'order.paid')
  FROM orders o
"""
NOTIFICATION_FACTS = """
SELECT reference, ack_code, verified, dedupe_key IS NOT NULL, channel, method FROM inbound_notifications
"""


def check_database(dsn: str, payments: Sequence[Payment], sends: Mapping[str, int]) -> list[Check]:
    by_dossier = {p.dossier_code: p for p in payments}
    by_ref = {p.reference: p for p in payments}
    with psycopg.connect(dsn) as conn:
        orders = conn.execute(ORDER_FACTS).fetchall()
        notes = conn.execute(NOTIFICATION_FACTS).fetchall()

    checks = []
    for kind, label in ((MEASURED, "measured"), (WARMUP, "warm-up")):
        rows = [r for r in orders if r[0] in by_dossier and by_dossier[r[0]].kind == kind]
        want = sum(1 for p in payments if p.kind == kind)
        if not want:
            continue
        paid = sum(1 for r in rows if r[1] == "paid" and r[2] and r[3] == "succeeded")
        audit = sum(1 for r in rows if r[4] == 1 and r[5] == 1)
        events = sum(1 for r in rows if r[6] == 1 and r[7] == 0)
        checks += [
            Check(f"{label} orders paid (attempt succeeded, amount)", f"{paid} / {want}", paid == want),
            Check(
                f"{label} orders with exactly one audit row to paid (and one to succeeded)",
                f"{audit} / {want}",
                audit == want,
            ),
            Check(
                f"{label} orders with exactly one order.paid event (no other event)",
                f"{events} / {want}",
                events == want,
            ),
        ]
    strangers = len(orders) - sum(1 for r in orders if r[0] in by_dossier)
    checks.append(Check("orders not made by this run", str(strangers), strangers == 0))

    acks: dict[str, Counter[str]] = defaultdict(Counter)
    applied: Counter[str] = Counter()
    unverified = foreign = 0
    for reference, ack, verified, deduped, channel, method in notes:
        if reference not in by_ref or channel != "ipn" or method != "GET":
            foreign += 1
            continue
        acks[reference][ack] += 1
        applied[reference] += bool(deduped)
        unverified += not verified
    total = sum(sends.values())
    stored_ok = sum(1 for ref, n in sends.items() if acks[ref]["ok"] == 1 and acks[ref]["already"] == n - 1)
    once = sum(1 for ref in sends if applied[ref] == 1)
    checks += [
        Check(
            "inbound_notifications stored (all verified, ipn GET)",
            f"{len(notes)} / {total}; unverified {unverified}; other {foreign}",
            len(notes) == total and unverified == 0 and foreign == 0,
        ),
        Check(
            "references stored with one 'ok' and 'already' for each other copy",
            f"{stored_ok} / {len(sends)}",
            stored_ok == len(sends),
        ),
        Check(
            "references with exactly one applied notification (dedupe key)",
            f"{once} / {len(sends)}",
            once == len(sends),
        ),
    ]
    return checks


# --- report -------------------------------------------------------------------------------------


def print_table(runs: Sequence[Run]) -> None:
    head = (
        f"{'run':<17} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'00':>6} {'02':>6} "
        f"{'other':>5} {'sockerr':>7} {'cpu ms/req':>10} {'workers %':>9} {'pg ms/req':>9} {'machine %':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in runs:
        cpu = f"{r.cpu_ms:.2f}" if r.cpu_ms is not None else "n/a"
        busy = f"{r.busy_pct:.0f}" if r.busy_pct is not None else "n/a"
        pg = f"{r.pg_ms:.2f}" if r.pg_ms is not None else "n/a"
        if r.name.startswith("ipn"):
            ok, already = str(r.count(OK)), str(r.count(ALREADY))
            other = len(r.answers) - r.count(OK, ALREADY) + r.missing
        else:
            ok = already = "-"
            other = len(r.answers) - r.count(HEALTHY) + r.missing
        print(
            f"{r.name:<17} {len(r.answers):>8} {r.rps:>7.1f} {r.p50_ms:>7.2f} {r.p99_ms:>7.2f} "
            f"{ok:>6} {already:>6} {other:>5} {r.sockerr:>7} {cpu:>10} {r.split:>9} {pg:>9} {busy:>9}"
        )


def pg_setting(admin_dsn: str, name: str) -> str:
    with psycopg.connect(admin_dsn) as conn:
        row = conn.execute(f"SHOW {name}").fetchone()
    return str(row[0]) if row else "?"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=10_000, help="paid attempts, one IPN each")
    parser.add_argument(
        "--duplicates", type=int, default=1_000, help="of those, IPNs sent twice (default: %(default)s)"
    )
    parser.add_argument(
        "--warmup", type=int, default=200, help="extra orders paid before the measurement (default: 200)"
    )
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default: %(default)s)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="wrk threads; each sends its own share of the lines (default: %(default)s)",
    )
    parser.add_argument(
        "--recycle",
        type=int,
        default=50,
        help="every N-th request of a wrk thread closes its connection, so that connections spread "
        "over both gunicorn workers; 0: keep-alive throughout (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=59, help="shuffle and data seed (default: %(default)s)")
    parser.add_argument(
        "--stall-timeout",
        type=float,
        default=60.0,
        help="give up when wrk reports no progress for this many seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--pg",
        default=os.environ.get("BENCH_PG", "postgresql://root@127.0.0.1:5432"),
        help="PostgreSQL server, libpq URL without a database (default: %(default)s)",
    )
    parser.add_argument(
        "--database", default="gateway_bench_ipn", help="dropped and recreated (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if args.orders < 1 or not 0 <= args.duplicates <= args.orders or args.warmup < 0:
        parser.error("need --orders >= 1, 0 <= --duplicates <= --orders and --warmup >= 0")
    if args.threads < 1 or args.connections < args.threads:
        parser.error("--connections must be at least --threads (>= 1)")
    if args.recycle < 0:
        parser.error("--recycle must be 0 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = shutil.which("wrk")
    if wrk is None:
        print(
            "error: wrk is not installed. Install it (Debian/Ubuntu: sudo apt-get install -y wrk; "
            "macOS: brew install wrk) and run again. See bench/README.md.",
            file=sys.stderr,
        )
        return 2

    server_url = args.pg.rstrip("/")
    admin_dsn = f"{server_url}/postgres"
    dsn = f"{server_url}/{args.database}"
    sa_url = f"{server_url.replace('postgresql://', 'postgresql+psycopg://', 1)}/{args.database}"
    rng = random.Random(args.seed)
    run_id = datetime.now(UTC).strftime("%H%M%S")
    runs: list[Run] = []
    checks: list[Check] = []
    try:
        recycling = (
            f"a connection closed every {args.recycle} requests per wrk thread"
            if args.recycle
            else "keep-alive throughout"
        )
        print(
            f"IPN load benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, PostgreSQL {postgres_version(admin_dsn)} "
            f"(synchronous_commit={pg_setting(admin_dsn, 'synchronous_commit')})\n"
            f"  server:  gunicorn -w {WORKERS} -k gthread --threads {SERVER_THREADS} wsgi:app, "
            f"GATEWAY_ENV=test (emulated VNPAY)\n"
            f"  load:    {args.orders} paid attempts + {args.duplicates} duplicate IPNs, shuffled, each "
            f"sent once by wrk -t{args.threads} -c{args.connections}; {recycling}\n"
            f"  warm-up: {WARMUP_HEALTHZ} GET /healthz + {args.warmup} IPNs of other orders; baseline: "
            f"GET /healthz, as many requests, driven the same way, before and after\n"
            f"  load average before: {load_average()}"
        )
        recreate_database(admin_dsn, args.database)
        with tempfile.TemporaryDirectory(prefix="gateway-ipn-bench-") as tmp, ExitStack() as stack:
            workdir = Path(tmp)
            base_env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)}
            env = {
                **base_env,
                "DATABASE_URL": sa_url,
                "GATEWAY_ENV": "test",  # not production: the emulated VNPAY terminal is enabled
                "GATEWAY_BASE_URL": "http://127.0.0.1:8000",
                "GATEWAY_INSTANCE_PATH": str(workdir / "instance"),
                "SECRET_KEY": "bench-" + "0" * 58,
                "API_RATE_LIMIT": "100000000 per minute",
            }
            run_cli(["db", "upgrade"], env)
            client = json.loads(run_cli(["clients", "create", "IPN benchmark portal"], env))

            started = time.monotonic()
            now = datetime.now(UTC)
            pay_date = to_vnp_date(now)
            measured = sign_all(make_payments(MEASURED, args.orders, rng), pay_date)
            warm = sign_all(make_payments(WARMUP, args.warmup, rng), pay_date)
            seed_database(dsn, client["client_id"], measured + warm, now, env["GATEWAY_BASE_URL"])
            lines = measured + rng.sample(measured, args.duplicates)
            rng.shuffle(lines)
            sends = Counter(p.reference for p in lines)
            warm_sends = Counter(p.reference for p in warm)
            ipn_file, warm_file, health_file, health_warm = (
                workdir / name for name in ("ipn.txt", "ipn-warmup.txt", "healthz.txt", "healthz-warmup.txt")
            )
            write_targets(ipn_file, (f"{CALLBACK_PATH}?{p.query}" for p in lines))
            write_targets(warm_file, (f"{CALLBACK_PATH}?{p.query}" for p in warm))
            write_targets(health_file, ["/healthz"] * len(lines))
            write_targets(health_warm, ["/healthz"] * WARMUP_HEALTHZ)
            print(
                f"  setup:   {len(measured) + len(warm)} orders and attempts written, {len(lines)} IPNs "
                f"signed in {time.monotonic() - started:.1f} s"
            )

            gateway = stack.enter_context(gunicorn("wsgi:app", env, workdir, "gateway"))
            tag = f"b{run_id}"
            warm_health = drive(wrk, gateway, health_warm, WARMUP_HEALTHZ, "healthz warm-up", f"{tag}w", args)
            checks.append(check_baseline(warm_health))
            if warm:
                warm_run = drive(wrk, gateway, warm_file, len(warm), "ipn warm-up", f"{tag}i", args)
                checks += check_answers(warm_run, warm, warm_sends)
            runs.append(drive(wrk, gateway, health_file, len(lines), "healthz (before)", f"{tag}h", args))
            ipn = drive(wrk, gateway, ipn_file, len(lines), "ipn", f"{tag}m", args)
            runs.append(ipn)
            runs.append(drive(wrk, gateway, health_file, len(lines), "healthz (after)", f"{tag}a", args))
        # The server is stopped: every transaction it started has ended.
        checks += [check_baseline(r) for r in runs if not r.name.startswith("ipn")]
        checks += check_answers(ipn, lines, sends)
        checks += check_database(dsn, measured + warm, sends | warm_sends)
    except (BenchError, psycopg.Error, SQLAlchemyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    print()
    print_table(runs)
    print()
    print(f"load average after: {load_average()}")
    print()
    print("checks:")
    for c in checks:
        print(f"  [{'ok' if c.ok else 'FAIL'}] {c.label}: {c.detail}")
    print()
    baselines = [r for r in runs if not r.name.startswith("ipn")]
    baseline_rps = sum(r.rps for r in baselines) / len(baselines)
    print(
        f"ipn      {ipn.rps:8.1f} IPNs/s   p50 {ipn.p50_ms:.1f} ms  p99 {ipn.p99_ms:.1f} ms  "
        f"({ipn.count(OK)} x 00, {ipn.count(ALREADY)} x 02, "
        f"{len(ipn.answers) - ipn.count(OK, ALREADY) + ipn.missing} other)"
    )
    print(
        f"healthz  {baseline_rps:8.1f} req/s    (mean of before {baselines[0].rps:.1f} "
        f"and after {baselines[-1].rps:.1f})"
    )
    cpu = [r.cpu_ms for r in baselines if r.cpu_ms]
    if ipn.cpu_ms and cpu:
        print(
            f"server CPU per request ipn/healthz = {ipn.cpu_ms / (sum(cpu) / len(cpu)):.1f}x "
            f"({ipn.cpu_ms:.2f} ms against {sum(cpu) / len(cpu):.2f} ms)"
        )
    pg = [r.pg_ms for r in baselines if r.pg_ms]
    if ipn.pg_ms and pg:
        print(
            f"PostgreSQL CPU per request ipn/healthz = {ipn.pg_ms / (sum(pg) / len(pg)):.1f}x "
            f"({ipn.pg_ms:.2f} ms against {sum(pg) / len(pg):.2f} ms)"
        )
    ratio = ipn.rps / baseline_rps if baseline_rps else 0.0
    failed = [c for c in checks if not c.ok]
    if failed:
        print(
            f"verdict: FAILED, {len(failed)} check(s) did not pass (see above); "
            f"ratio ipn/healthz = {ratio:.2f}"
        )
        return 1
    print(
        f"verdict: correct - every order paid exactly once, every duplicate answered 02; "
        f"IPN throughput = {ratio:.2f} x the healthz baseline"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
