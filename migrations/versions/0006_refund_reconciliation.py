"""Reconciliation of refunds, and the indexes the million-line benchmark asked for.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26

Indexes only, no table or column change, so it runs against the previous release's code too:

* ``ix_refunds_completed_at``: a run selects the refunds completed in its window (as it selects the
  attempts paid in it through ``ix_payment_attempts_paid_at``);
* ``ix_recon_items_refund`` (partial, ``refund_id IS NOT NULL``): has an earlier run already dealt
  with this refund? Only refund items are indexed, not level (a)'s million payment items;
* ``ix_recon_items_run_category`` becomes partial (``category <> 'matched'``): the console and the API
  filter exceptions by category; the matched bulk of a run is listed through ``uq_recon_items_run_seq``;
* ``ix_statement_lines_txn`` and ``ix_statement_lines_batch`` go: duplicate and payout lookups now search
  a date range through ``ix_statement_lines_kind_date``, and maintaining two more indexes cost the
  import of a million-line file several seconds (bench/README.md).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_statement_lines_batch", table_name="statement_lines")
    op.drop_index("ix_statement_lines_txn", table_name="statement_lines")
    op.drop_index("ix_recon_items_run_category", table_name="recon_items")
    op.create_index(
        "ix_recon_items_run_category",
        "recon_items",
        ["run_id", "category", "seq"],
        unique=False,
        postgresql_where=sa.text("category <> 'matched'"),
        sqlite_where=sa.text("category <> 'matched'"),
    )
    op.create_index("ix_refunds_completed_at", "refunds", ["completed_at"], unique=False)
    op.create_index(
        "ix_recon_items_refund",
        "recon_items",
        ["refund_id"],
        unique=False,
        postgresql_where=sa.text("refund_id IS NOT NULL"),
        sqlite_where=sa.text("refund_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_recon_items_refund", table_name="recon_items")
    op.drop_index("ix_refunds_completed_at", table_name="refunds")
    op.drop_index("ix_recon_items_run_category", table_name="recon_items")
    op.create_index("ix_recon_items_run_category", "recon_items", ["run_id", "category", "seq"], unique=False)
    op.create_index(
        "ix_statement_lines_txn", "statement_lines", ["provider", "provider_txn_id"], unique=False
    )
    op.create_index("ix_statement_lines_batch", "statement_lines", ["provider", "batch_key"], unique=False)
