"""Staff console: staff users, four-eyes refund approvals, portal credential rotations (issue 7).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

Every migration must run against the code of the *previous* release too (expand, deploy, then
contract): add nullable columns or defaults first, drop only once nothing reads them. This one only
adds tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff_users",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("totp_secret", sa.String(length=64), nullable=True),
        sa.Column("totp_pending_secret", sa.String(length=64), nullable=True),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column("totp_enabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("locale", sa.String(length=2), nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("session_version", sa.Integer(), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    op.create_table(
        "refund_approvals",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("needs_approval", sa.Boolean(), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refund_id", sa.String(length=40), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.ForeignKeyConstraint(["refund_id"], ["refunds.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_refund_approvals_order_id"), "refund_approvals", ["order_id"], unique=False)
    op.create_index(op.f("ix_refund_approvals_status"), "refund_approvals", ["status"], unique=False)
    op.create_table(
        "client_key_rotations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("old_key_prefix", sa.String(length=16), nullable=True),
        sa.Column("old_key_hash", sa.String(length=64), nullable=True),
        sa.Column("rotated_by", sa.String(length=200), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("overlap_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["portal_clients.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_client_key_rotations_client_id"), "client_key_rotations", ["client_id"], unique=False
    )
    op.create_index(
        op.f("ix_client_key_rotations_old_key_prefix"),
        "client_key_rotations",
        ["old_key_prefix"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_client_key_rotations_old_key_prefix"), table_name="client_key_rotations")
    op.drop_index(op.f("ix_client_key_rotations_client_id"), table_name="client_key_rotations")
    op.drop_table("client_key_rotations")
    op.drop_index(op.f("ix_refund_approvals_status"), table_name="refund_approvals")
    op.drop_index(op.f("ix_refund_approvals_order_id"), table_name="refund_approvals")
    op.drop_table("refund_approvals")
    op.drop_table("staff_users")
