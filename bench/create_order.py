"""Benchmark ``POST /api/v1/orders`` against a floor app, both under gunicorn on PostgreSQL.

    .venv/bin/python bench/create_order.py [--duration 15] [--connections 8] [--threads 2]

Steps: (re)create a dedicated database, migrate it and create a portal client; start the floor
app (bench/floor_app.py: bare Flask + SQLAlchemy, parse JSON, one INSERT) and the gateway under
gunicorn with the same worker/thread settings; then, per round, warm each up for 2 s and drive it
with wrk for ``--duration`` seconds (every request a distinct dossier_code), one app at a time;
print req/s, latency, server CPU per request and the ratio gateway/floor.

Exit 0 on a completed measurement whatever the ratio; 1 if any request was not answered 201 (or
wrk saw socket errors) or a server did not start; 2 if wrk is missing.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.exc import SQLAlchemyError

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
VENV_BIN = Path(sys.executable).parent
LUA = BENCH / "wrk_orders.lua"
EXAMPLE = ROOT / "examples" / "order.json"
PLACEHOLDER = "@@DOSSIER@@"
TARGET_RATIO = 0.5
WARMUP_SECONDS = 2
WORKERS = 2
SERVER_THREADS = 4


class BenchError(Exception):
    """The run cannot produce a valid measurement."""


# --- database -----------------------------------------------------------------------------------


def recreate_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> "
            "pg_backend_pid()",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def postgres_version(admin_dsn: str) -> str:
    with psycopg.connect(admin_dsn) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def run_cli(args: list[str], env: Mapping[str, str]) -> str:
    proc = subprocess.run(
        [str(VENV_BIN / "gateway"), *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"gateway {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr.strip()}")
    return proc.stdout


def create_floor_table(url: str) -> None:
    sys.path.insert(0, str(ROOT))
    from bench.floor_app import create_schema

    create_schema(url)


# --- servers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"server exited with {proc.returncode} before {url} answered:\n{tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
                last = f"HTTP {answer.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise BenchError(f"{url} not ready after {timeout:.0f} s ({last}):\n{tail(log)}")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (gunicorn's workers), from /proc; empty where there is none."""
    found: list[int] = []
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        return found
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of one process, from /proc (None if it is gone or not Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    name: str
    base: str
    proc: subprocess.Popen[bytes]

    def workers(self) -> list[int]:
        return children(self.proc.pid)


@contextmanager
def gunicorn(app_spec: str, env: Mapping[str, str], workdir: Path, name: str) -> Iterator[Server]:
    """Serve ``app_spec`` under gunicorn; yields once /healthz answers 200; always stops it."""
    port = free_port()
    log = workdir / f"{name}.log"
    cmd = [
        str(VENV_BIN / "gunicorn"),
        *("-w", str(WORKERS), "-k", "gthread", "--threads", str(SERVER_THREADS)),
        *("-b", f"127.0.0.1:{port}", "--log-level", "warning", "--graceful-timeout", "10"),
        app_spec,
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT)
    server = Server(name, f"http://127.0.0.1:{port}", proc)
    try:
        try:
            wait_ready(proc, f"{server.base}/healthz", log)
        except BenchError as exc:
            raise BenchError(f"{name} did not start: {exc}") from None
        yield server
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if proc.poll() is not None:
        return
    workers = children(proc.pid)
    proc.send_signal(signal.SIGTERM)  # gunicorn: graceful shutdown of the arbiter and its workers
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        for pid in workers:  # the workers we started, by id, before their arbiter
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait(timeout=5)


# --- load ---------------------------------------------------------------------------------------


def run_wrk(
    wrk: str,
    base: str,
    body_file: Path,
    tag: str,
    api_key: str,
    *,
    seconds: int,
    threads: int,
    conns: int,
    recycle: int,
) -> dict[str, Any]:
    cmd = [
        wrk,
        *(f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", "10s"),
        *("-s", str(LUA), base, "--", str(body_file), tag, api_key, str(recycle)),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("WRK_RESULT "):
            data: dict[str, Any] = json.loads(line.removeprefix("WRK_RESULT "))
            return data
    raise BenchError(f"wrk gave no result (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def socket_errors(data: Mapping[str, Any]) -> int:
    return sum(int(data["errors"][k]) for k in ("connect", "read", "write", "timeout"))


@dataclass(frozen=True)
class Result:
    app: str
    round: int
    requests: int
    duration_s: float
    non201: int
    socket_errors: int
    first_bad: str
    p50_ms: float
    p99_ms: float
    cpu_ms: float | None  # server workers' CPU per measured request
    split: str  # share of that CPU per worker, e.g. "52/48"

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def failed(self) -> bool:
        return bool(self.non201 or self.socket_errors)


def measure(
    server: Server, wrk: str, body_file: Path, api_key: str, args: argparse.Namespace, tag: str, rnd: int
) -> Result:
    opts = {"threads": args.threads, "conns": args.connections, "recycle": args.recycle}
    warm = run_wrk(wrk, server.base, body_file, f"W{tag}", api_key, seconds=WARMUP_SECONDS, **opts)
    workers = server.workers()
    before = [cpu_seconds(pid) for pid in workers]
    data = run_wrk(wrk, server.base, body_file, f"M{tag}", api_key, seconds=args.duration, **opts)
    after = [cpu_seconds(pid) for pid in workers]
    cpu_ms: float | None = None
    split = "n/a"
    used = [b - a for a, b in zip(before, after, strict=True) if a is not None and b is not None]
    # Only when the same workers served the whole window (none restarted, /proc readable).
    if workers and len(used) == len(workers) and server.workers() == workers and sum(used) > 0:
        cpu_ms = 1000 * sum(used) / max(data["requests"], 1)
        split = "/".join(f"{100 * u / sum(used):.0f}" for u in used)
    return Result(
        app=server.name,
        round=rnd,
        requests=data["requests"],
        duration_s=data["duration_us"] / 1e6,
        non201=data["non201"] + warm["non201"],
        socket_errors=socket_errors(data) + socket_errors(warm),
        first_bad=data["first_bad"] or warm["first_bad"],
        p50_ms=data["latency_us"]["p50"] / 1000,
        p99_ms=data["latency_us"]["p99"] / 1000,
        cpu_ms=cpu_ms,
        split=split,
    )


# --- report -------------------------------------------------------------------------------------


def print_table(results: list[Result]) -> None:
    head = (
        f"{'round':>5} {'app':<8} {'requests':>9} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'non-201':>7} {'sockerr':>7} {'cpu ms/req':>10} {'workers %':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        cpu = f"{r.cpu_ms:.2f}" if r.cpu_ms is not None else "n/a"
        print(
            f"{r.round:>5} {r.app:<8} {r.requests:>9} {r.rps:>8.1f} {r.p50_ms:>7.2f} {r.p99_ms:>7.2f} "
            f"{r.non201:>7} {r.socket_errors:>7} {cpu:>10} {r.split:>9}"
        )


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def body_template() -> str:
    order = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    order["dossier_code"] = PLACEHOLDER
    return json.dumps(order, ensure_ascii=False)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=15, help="measured seconds per app and round (>= 10)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default: %(default)s)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="alternate floor and gateway this many times; the ratio is the median (default: %(default)s)",
    )
    parser.add_argument(
        "--recycle",
        type=int,
        default=50,
        help="every N-th request of a wrk thread closes its connection, so that connections spread "
        "over both gunicorn workers; 0: keep-alive for the whole run (default: %(default)s)",
    )
    parser.add_argument(
        "--pg",
        default=os.environ.get("BENCH_PG", "postgresql://root@127.0.0.1:5432"),
        help="PostgreSQL server, libpq URL without a database (default: %(default)s)",
    )
    parser.add_argument(
        "--database", default="gateway_bench", help="dropped and recreated (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if args.duration < 10:
        parser.error("--duration must be at least 10 seconds")
    if args.threads < 1 or args.connections < args.threads:
        parser.error("--connections must be at least --threads (>= 1)")
    if args.recycle < 0:
        parser.error("--recycle must be 0 or more")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
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

    admin_dsn = f"{args.pg.rstrip('/')}/postgres"
    sa_url = f"{args.pg.rstrip('/').replace('postgresql://', 'postgresql+psycopg://', 1)}/{args.database}"
    run_id = datetime.now(UTC).strftime("%H%M%S")
    results: list[Result] = []
    try:
        pg_version = postgres_version(admin_dsn)
        recycling = (
            f"a connection closed every {args.recycle} requests per wrk thread"
            if args.recycle
            else "keep-alive throughout"
        )
        print(
            f"create-order benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, PostgreSQL {pg_version}\n"
            f"  servers: gunicorn -w {WORKERS} -k gthread --threads {SERVER_THREADS} (both apps)\n"
            f"  load:    wrk -t{args.threads} -c{args.connections} -d{args.duration}s "
            f"after a {WARMUP_SECONDS} s warm-up, {args.rounds} round(s), {recycling}\n"
            f"  load average before: {load_average()}"
        )
        recreate_database(admin_dsn, args.database)
        with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp, ExitStack() as stack:
            workdir = Path(tmp)
            base_env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "DATABASE_"))}
            gateway_env = {
                **base_env,
                "DATABASE_URL": sa_url,
                "GATEWAY_ENV": "production",
                "GATEWAY_BASE_URL": "http://127.0.0.1:8000",
                "GATEWAY_INSTANCE_PATH": str(workdir / "instance"),
                "SECRET_KEY": "bench-" + "0" * 58,
                "API_RATE_LIMIT": "100000000 per minute",
            }
            run_cli(["db", "upgrade"], gateway_env)
            api_key = json.loads(run_cli(["clients", "create", "Benchmark portal"], gateway_env))["api_key"]
            create_floor_table(sa_url)
            floor_env = {**base_env, "FLOOR_DATABASE_URL": sa_url}
            body_file = workdir / "order.json"
            body_file.write_text(body_template(), encoding="utf-8")

            floor = stack.enter_context(gunicorn("bench.floor_app:app", floor_env, workdir, "floor"))
            gateway = stack.enter_context(gunicorn("wsgi:app", gateway_env, workdir, "gateway"))
            keys = {"floor": "", "gateway": api_key}
            for rnd in range(1, args.rounds + 1):
                order = (floor, gateway) if rnd % 2 else (gateway, floor)  # ABBA against drift
                for server in order:
                    tag = f"{run_id}-{rnd}-{server.name}"
                    results.append(measure(server, wrk, body_file, keys[server.name], args, tag, rnd))
    except (BenchError, psycopg.Error, SQLAlchemyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    print()
    results.sort(key=lambda r: (r.round, r.app))
    print_table(results)
    print()
    print(f"load average after: {load_average()}")
    by_round: dict[int, dict[str, Result]] = {r.round: {} for r in results}
    for r in results:
        by_round[r.round][r.app] = r
    ratios = [pair["gateway"].rps / pair["floor"].rps for pair in by_round.values() if pair["floor"].rps]
    cpu_ratios = [
        pair["gateway"].cpu_ms / pair["floor"].cpu_ms
        for pair in by_round.values()
        if pair["gateway"].cpu_ms and pair["floor"].cpu_ms
    ]
    floor_rps = statistics.median(r.rps for r in results if r.app == "floor")
    gateway_rps = statistics.median(r.rps for r in results if r.app == "gateway")
    ratio = statistics.median(ratios) if ratios else 0.0
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(f"floor   {floor_rps:8.1f} req/s")
    print(f"gateway {gateway_rps:8.1f} req/s")
    if cpu_ratios:
        print(f"server CPU per request gateway/floor = {statistics.median(cpu_ratios):.1f}x")
    if len(ratios) > 1:
        print(f"per-round ratios: {', '.join(f'{x:.2f}' for x in ratios)}")
    print(f"ratio gateway/floor = {ratio:.2f} (target >= {TARGET_RATIO:.2f}: {verdict})")

    failed = [r for r in results if r.failed]
    for r in failed:
        print(
            f"FAILED: {r.app} round {r.round}: {r.non201} answer(s) other than 201, "
            f"{r.socket_errors} socket error(s); first: {r.first_bad or '(socket error)'}",
            file=sys.stderr,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
