"""``gateway import-settlement`` and ``gateway reconcile`` (contract §3, §9): output and exit codes."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from gateway.cli import main
from gateway.storage.models import ReconFile, ReconLine, ReconRun
from tests.conftest import count_rows
from tests.reconciliation.builders import SETTLEMENT_HEADER, settlement_row
from tests.reconciliation_engine.world import Entry, Tx, World

ITEM_KEYS = {
    "category",
    "reason",
    "rule",
    "amount",
    "expected_amount",
    "business_date",
    "order_id",
    "references",
}


@pytest.fixture
def env(tmp_path: Path, database_url: str, engine: Engine) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "GATEWAY_INSTANCE_PATH": str(tmp_path / "instance"),
        "SECRET_KEY": "cli-test",
        "GATEWAY_ENV": "test",
    }


def gateway(env: dict[str, str], *args: str) -> object:
    return CliRunner().invoke(main, list(args), env=env)


def test_import_settlement_then_again_then_a_bad_file(
    world: World, env: dict[str, str], engine: Engine
) -> None:
    a = world.attempt()
    path = world.settlement(
        [settlement_row("T1", a.reference, 150_000, 1650), settlement_row("T2", "GW-2", 5_000)]
    )
    result = gateway(env, "import-settlement", "--provider", "vnpay", str(path))
    assert result.exit_code == 0, result.output
    assert "imported 2 line(s) for vnpay" in result.stdout
    again = gateway(env, "import-settlement", "--provider", "VNPAY", str(path))
    assert again.exit_code == 0, again.output
    assert "already imported" in again.stdout
    assert world.count(ReconFile) == 1
    assert world.count(ReconLine) == 2

    before = count_rows(engine)
    bad = world.write(
        "bad.csv",
        "\n".join(
            [
                SETTLEMENT_HEADER,
                settlement_row("T3", "GW-3", 1_000),
                settlement_row("T4", "GW-4", 1_000).replace(",1000,", ",1.000,5,", 1),
                "vnpay,T5,GW-5,abc,0,0,success,2025-10-14T10:00:00+07:00,2025-10-15,B1",
            ]
        )
        + "\n",
    )
    rejected = gateway(env, "import-settlement", "--provider", "vnpay", str(bad))
    assert rejected.exit_code == 2
    assert "nothing was written" in rejected.stderr
    assert "row 4: amount" in rejected.stderr
    assert count_rows(engine) == before
    assert gateway(env, "import-settlement", "--provider", "nopay", str(path)).exit_code == 2
    assert gateway(env, "import-settlement", "--provider", "vnpay", "/nonexistent.csv").exit_code == 2


def test_reconcile_json_and_exit_codes(world: World, env: dict[str, str], engine: Engine) -> None:
    a = world.attempt(provider="vietqr", amount=50_000)
    good = world.statement([Entry("50000", ref="FT1", txs=[Tx(ustrd=f"NOP PHI {a.reference}")])])
    result = gateway(env, "reconcile", "--date", "2025-10-14", "--statement", str(good), "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert set(body) == {"run_id", "business_date", "totals", "items"}
    assert body["business_date"] == "2025-10-14"
    assert body["totals"]["matched"] == {"count": 1, "amount": 50_000}
    assert set(body["totals"]) == {
        "matched",
        "pending",
        "missing_in_statement",
        "unexpected_in_statement",
        "amount_mismatch",
        "duplicate",
        "status_conflict",
        "fee_variance",
    }
    (item,) = body["items"]
    assert set(item) == ITEM_KEYS
    assert item["references"]["attempt_reference"] == a.reference
    assert item["rule"] == "remittance_reference"

    odd = world.statement([Entry("12345", ref="FT9", txs=[Tx(ustrd="?")])], name="odd.xml")
    human = gateway(env, "reconcile", "--date", "2025-10-15", "--statement", str(odd))
    assert human.exit_code == 1, human.output  # money with no dossier: a discrepancy
    assert "unexpected_in_statement" in human.stdout
    assert "money with no dossier" in human.stdout

    before = count_rows(engine)
    dry = gateway(env, "reconcile", "--date", "2025-10-16", "--statement", str(good), "--dry-run", "--json")
    assert dry.exit_code == 1, dry.output  # the open item of the 15th is carried forward
    dry_body = json.loads(dry.stdout)
    assert dry_body["run_id"] is None
    assert [i["category"] for i in dry_body["items"]] == ["unexpected_in_statement"]
    assert count_rows(engine) == before
    assert world.count(ReconRun) == 2


def test_reconcile_bad_input_exits_2_and_writes_nothing(
    world: World, env: dict[str, str], engine: Engine
) -> None:
    world.attempt()
    before = count_rows(engine)
    broken = world.write(
        "broken.sta",
        ":20:S1\n:25:001\n:28C:1/1\n:60F:C251013VND1000,\n:61:2510141014C500,NTRFX//FT1\n:86:X\n:62F:C251014VND1400,\n",
    )
    result = gateway(env, "reconcile", "--date", "2025-10-14", "--statement", str(broken))
    assert result.exit_code == 2
    assert ":62F:" in result.stderr
    assert gateway(env, "reconcile", "--date", "14/10/2025", "--statement", str(broken)).exit_code == 2
    assert gateway(env, "reconcile", "--date", "2025-10-14", "--statement", "/nope.xml").exit_code == 2
    assert count_rows(engine) == before
    assert date(2025, 10, 14)  # keep the import used


def test_reconcile_json_reports_a_refund_missing_from_the_provider_file(
    world: World, env: dict[str, str]
) -> None:
    paid = world.attempt(provider="momo", amount=200_000)
    world.settle(
        [settlement_row("M1", paid.reference, 200_000, 2000, batch="MOMO-1", provider="momo")], "momo"
    )
    world.refund(paid, 80_000, provider_reference="MR-1")  # succeeded at MoMo, absent from its file
    credit = world.statement([Entry("198000", ref="FT-M1", txs=[Tx(ustrd="MOMO MOMO-1")])])

    result = gateway(env, "reconcile", "--date", "2025-10-14", "--statement", str(credit), "--json")
    assert result.exit_code == 0, result.output  # pending is not a discrepancy yet
    body = json.loads(result.stdout)
    assert body["totals"]["pending"] == {"count": 1, "amount": 80_000}
    (item,) = [i for i in body["items"] if i["category"] == "pending"]
    assert set(item) == ITEM_KEYS
    assert (item["reason"], item["rule"], item["amount"], item["expected_amount"], item["order_id"]) == (
        "awaiting the provider refund line",
        None,
        80_000,
        None,
        paid.order_id,
    )
    assert item["business_date"] == "2025-10-14"
    assert item["references"] == {
        "attempt_reference": paid.reference,
        "dossier_code": paid.dossier,
        "provider": "momo",
        "provider_txn_id": "MR-1",
        "refund_reference": paid.reference.replace("GW", "RF", 1),
    }

    later = gateway(env, "reconcile", "--date", "2025-10-17", "--statement", str(credit), "--json")
    assert later.exit_code == 1, later.output  # now a discrepancy
    body = json.loads(later.stdout)
    assert body["totals"]["missing_in_statement"] == {"count": 1, "amount": 80_000}
    (item,) = body["items"]
    assert (item["category"], item["reason"], item["amount"], item["order_id"]) == (
        "missing_in_statement",
        "refund not reflected in the provider's settlement file",
        80_000,
        paid.order_id,
    )
    assert item["references"]["refund_reference"] == paid.reference.replace("GW", "RF", 1)
