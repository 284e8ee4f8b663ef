"""Reconciliation of refunds: the lookups that find a refund not reflected in a settlement file.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26

Two indexes, no table or column change, so it runs against the previous release's code too:

* ``ix_refunds_completed_at``: a run selects the refunds completed in its window (as it selects the
  attempts paid in it through ``ix_payment_attempts_paid_at``);
* ``ix_recon_items_refund`` (partial, ``refund_id IS NOT NULL``): has an earlier run already dealt
  with this refund? Only refund items are indexed, not level (a)'s million payment items.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
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
