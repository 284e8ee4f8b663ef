"""Reconciliation: imported files and lines, runs, items, the item action trail (issue 6).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26

Adds tables only, plus three lookup indexes on existing tables (attempts by provider transaction id
and by payment time, orders by dossier code), so it runs against the previous release's code too.
Money columns are BigInteger VND. ``statement_lines.file_id`` and ``recon_items.run_id`` carry no
FOREIGN KEY on purpose: both tables take a million rows in one statement, where a per-row RI check
costs ~40 % of the time; the engine writes them only together with their parent row, in one transaction.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_index(
        "ix_payment_attempts_provider_txn_id", "payment_attempts", ["provider_txn_id"], unique=False
    )
    op.create_index("ix_payment_attempts_paid_at", "payment_attempts", ["paid_at"], unique=False)
    op.create_index("ix_orders_dossier_code", "orders", ["dossier_code"], unique=False)

    op.create_table(
        "statement_files",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=48), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=True),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("filename", sa.String(length=500), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("imported_by", sa.String(length=200), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("total_credit", sa.BigInteger(), nullable=False),
        sa.Column("total_debit", sa.BigInteger(), nullable=False),
        sa.Column("first_business_date", sa.Date(), nullable=True),
        sa.Column("last_business_date", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sha256"),
    )

    op.create_table(
        "statement_lines",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("file_id", BIGID, nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("sub_row", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=True),
        sa.Column("direction", sa.String(length=6), nullable=False),
        sa.Column("gross", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("net", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("value_date", sa.Date(), nullable=True),
        sa.Column("bank_reference", sa.Text(), nullable=True),
        sa.Column("end_to_end_id", sa.Text(), nullable=True),
        sa.Column("provider_txn_id", sa.Text(), nullable=True),
        sa.Column("our_reference", sa.Text(), nullable=True),
        sa.Column("batch_id", sa.Text(), nullable=True),
        sa.Column("batch_key", sa.Text(), nullable=True),
        sa.Column("account", sa.Text(), nullable=True),
        sa.Column("statement_id", sa.Text(), nullable=True),
        sa.Column("counterparty", sa.Text(), nullable=True),
        sa.Column("remittance", sa.Text(), nullable=True),
        sa.Column("remittance_norm", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("reversal", sa.Boolean(), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("file_id", "row", "sub_row", name="uq_statement_lines_position"),
    )
    op.create_index(
        "ix_statement_lines_kind_date", "statement_lines", ["kind", "business_date"], unique=False
    )
    op.create_index(
        "ix_statement_lines_reference", "statement_lines", ["provider", "our_reference"], unique=False
    )
    op.create_index(
        "ix_statement_lines_txn", "statement_lines", ["provider", "provider_txn_id"], unique=False
    )
    op.create_index("ix_statement_lines_batch", "statement_lines", ["provider", "batch_key"], unique=False)

    op.create_table(
        "recon_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("window_from", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rule_version", sa.String(length=32), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("totals", sa.JSON(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("previous_run_id", sa.String(length=40), nullable=True),
        sa.Column("file_watermark", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["previous_run_id"], ["recon_runs.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_recon_runs_business_date", "recon_runs", ["business_date", "started_at"], unique=False
    )

    op.create_table(
        "recon_items",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=120), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("rule", sa.String(length=32), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("expected_amount", sa.BigInteger(), nullable=True),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=True),
        sa.Column("attempt_id", sa.String(length=40), nullable=True),
        sa.Column("refund_id", sa.String(length=40), nullable=True),
        sa.Column("line_id", sa.BigInteger(), nullable=True),
        sa.Column("batch_key", sa.Text(), nullable=True),
        sa.Column("provider", sa.String(length=32), nullable=True),
        sa.Column("references", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("carried_from", sa.BigInteger(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "seq", name="uq_recon_items_run_seq"),
    )
    op.create_index("ix_recon_items_run_category", "recon_items", ["run_id", "category", "seq"], unique=False)
    op.create_index(
        "ix_recon_items_bank_attempt",
        "recon_items",
        ["attempt_id"],
        unique=False,
        postgresql_where=sa.text("level = 'bank'"),
        sqlite_where=sa.text("level = 'bank'"),
    )
    op.create_index(
        "ix_recon_items_batch",
        "recon_items",
        ["batch_key"],
        unique=False,
        postgresql_where=sa.text("batch_key IS NOT NULL"),
        sqlite_where=sa.text("batch_key IS NOT NULL"),
    )
    op.create_index(
        "ix_recon_items_resolved",
        "recon_items",
        ["status"],
        unique=False,
        postgresql_where=sa.text("status = 'resolved'"),
        sqlite_where=sa.text("status = 'resolved'"),
    )

    op.create_table(
        "recon_item_actions",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("item_id", BIGID, nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["recon_items.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_recon_item_actions_item_id", "recon_item_actions", ["item_id"], unique=False)

    op.create_table(
        "recon_confirmations",
        sa.Column("attempt_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=True),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("line_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("attempt_id"),
    )


def downgrade() -> None:
    op.drop_table("recon_confirmations")
    op.drop_index("ix_recon_item_actions_item_id", table_name="recon_item_actions")
    op.drop_table("recon_item_actions")
    op.drop_index("ix_recon_items_resolved", table_name="recon_items")
    op.drop_index("ix_recon_items_batch", table_name="recon_items")
    op.drop_index("ix_recon_items_bank_attempt", table_name="recon_items")
    op.drop_index("ix_recon_items_run_category", table_name="recon_items")
    op.drop_table("recon_items")
    op.drop_index("ix_recon_runs_business_date", table_name="recon_runs")
    op.drop_table("recon_runs")
    op.drop_index("ix_statement_lines_batch", table_name="statement_lines")
    op.drop_index("ix_statement_lines_txn", table_name="statement_lines")
    op.drop_index("ix_statement_lines_reference", table_name="statement_lines")
    op.drop_index("ix_statement_lines_kind_date", table_name="statement_lines")
    op.drop_table("statement_lines")
    op.drop_table("statement_files")
    op.drop_index("ix_orders_dossier_code", table_name="orders")
    op.drop_index("ix_payment_attempts_paid_at", table_name="payment_attempts")
    op.drop_index("ix_payment_attempts_provider_txn_id", table_name="payment_attempts")
