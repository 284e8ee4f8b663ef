"""Jobs: the janitor's ladder on payment attempts, and a log of webhook delivery attempts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

Every migration must run against the code of the *previous* release too (expand, deploy, then
contract): add nullable columns or defaults first, drop only once nothing reads them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("attempt_no", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("response_excerpt", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["outbox_events.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_webhook_deliveries_event_id"), "webhook_deliveries", ["event_id"], unique=False)
    # Nullable or defaulted: the previous release's code keeps inserting attempts without them.
    with op.batch_alter_table("payment_attempts") as batch_op:
        batch_op.add_column(sa.Column("check_count", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_checked_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("needs_review", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )
    op.create_index(
        op.f("ix_payment_attempts_next_check_at"), "payment_attempts", ["next_check_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_payment_attempts_next_check_at"), table_name="payment_attempts")
    with op.batch_alter_table("payment_attempts") as batch_op:
        batch_op.drop_column("needs_review")
        batch_op.drop_column("last_checked_at")
        batch_op.drop_column("next_check_at")
        batch_op.drop_column("check_count")
    op.drop_index(op.f("ix_webhook_deliveries_event_id"), table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
