"""ORM models. Money columns are BigInteger VND; instants are UTC; Alembic owns the DDL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from gateway.storage.types import UTCDateTime


class Base(DeclarativeBase):
    pass


class PortalClient(Base):
    __tablename__ = "portal_clients"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # The key is shown once; we keep a lookup prefix and a SHA-256 of the whole key.
    api_key_prefix: Mapped[str] = mapped_column(String(16), unique=True)
    api_key_hash: Mapped[str] = mapped_column(String(64))
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    # Comma list, newest first, so a rotated secret keeps signing during its overlap (contract §7).
    webhook_secret: Mapped[str] = mapped_column(String(500))
    scopes: Mapped[str] = mapped_column(String(200), default="orders")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(s.strip() for s in self.scopes.split(",") if s.strip())


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        # One open order per client + dossier + item codes; enforced by the database so that two
        # concurrent creates cannot both win (contract §4).
        Index(
            "uq_orders_open_dossier",
            "client_id",
            "dossier_key",
            unique=True,
            postgresql_where=text("status IN ('pending', 'processing')"),
            sqlite_where=text("status IN ('pending', 'processing')"),
        ),
        Index("ix_orders_client_created", "client_id", "created_at", "id"),
        Index("ix_orders_client_dossier", "client_id", "dossier_code"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("portal_clients.id"))
    dossier_code: Mapped[str] = mapped_column(String(100))
    agency_code: Mapped[str] = mapped_column(String(100))
    dossier_key: Mapped[str] = mapped_column(String(64))
    payer_name: Mapped[str] = mapped_column(String(200))
    payer_id_number: Mapped[str | None] = mapped_column(String(50))
    payer_phone: Mapped[str | None] = mapped_column(String(50))
    payer_email: Mapped[str | None] = mapped_column(String(320))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    return_url: Mapped[str | None] = mapped_column(String(2000))
    metadata_json: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    status: Mapped[str] = mapped_column(String(32))
    paid_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", order_by="OrderItem.position", cascade="all, delete-orphan"
    )
    attempts: Mapped[list[PaymentAttempt]] = relationship(
        back_populates="order", order_by="PaymentAttempt.created_at", cascade="all, delete-orphan"
    )


class OrderItem(Base):
    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    code: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10))
    description: Mapped[str | None] = mapped_column(String(500))
    amount: Mapped[int] = mapped_column(BigInteger)
    revenue_code: Mapped[str | None] = mapped_column(String(20))
    chapter_code: Mapped[str | None] = mapped_column(String(20))

    order: Mapped[Order] = relationship(back_populates="items")


class PaymentAttempt(Base):
    __tablename__ = "payment_attempts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    provider: Mapped[str] = mapped_column(String(32))
    # Our reference at the provider (vnp_TxnRef, MoMo orderId, VietQR 62/08): unique per attempt.
    reference: Mapped[str] = mapped_column(String(40), unique=True)
    status: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(BigInteger)
    bank_code: Mapped[str | None] = mapped_column(String(20))
    locale: Mapped[str] = mapped_column(String(2), default="vi")
    client_ip: Mapped[str | None] = mapped_column(String(64))
    redirect_url: Mapped[str | None] = mapped_column(Text)
    qr_payload: Mapped[str | None] = mapped_column(Text)
    provider_txn_id: Mapped[str | None] = mapped_column(String(100))
    result_code: Mapped[str | None] = mapped_column(String(32))
    provider_data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The janitor's ladder (JANITOR_SCHEDULE): how many provider queries were made, when the next is due,
    # and whether the attempt is still unresolved after the last step (flagged for finance).
    check_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))

    order: Mapped[Order] = relationship(back_populates="attempts")


class Refund(Base):
    """A refund of (part of) a paid order. Σ non-failed refunds ≤ the paid amount, checked under the lock."""

    __tablename__ = "refunds"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    attempt_id: Mapped[str] = mapped_column(ForeignKey("payment_attempts.id"))
    provider: Mapped[str] = mapped_column(String(32))
    # Our new, unique reference for this refund at the provider (MoMo orderId, ZaloPay m_refund_id...).
    reference: Mapped[str] = mapped_column(String(64), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    provider_reference: Mapped[str | None] = mapped_column(String(100))
    result_code: Mapped[str | None] = mapped_column(String(32))
    requested_by: Mapped[str] = mapped_column(String(200))
    # A manual refund (bank transfer) is completed by staff recording the transfer reference.
    bank_transfer_ref: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class InboundNotification(Base):
    """Every provider message, valid or not, stored before anything acts on it (contract §6)."""

    __tablename__ = "inbound_notifications"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))  # ipn | return
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(500))
    query_string: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, str]] = mapped_column(JSON)
    source_ip: Mapped[str | None] = mapped_column(String(64))
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    # provider:transaction:kind, set on the one notification that was applied; unique so that a
    # duplicate can never be applied twice, whatever the races.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    reference: Mapped[str | None] = mapped_column(String(40), index=True)
    outcome: Mapped[str | None] = mapped_column(String(32))
    ack_code: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OutboxEvent(Base):
    """Events to the portal, written in the same transaction as the state change (contract §7)."""

    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_status_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("portal_clients.id"), index=True)
    order_id: Mapped[str | None] = mapped_column(String(40), index=True)
    type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookDelivery(Base):
    """One delivery attempt of an outbox event to a portal's webhook URL (issue 5.3: every attempt logged)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("outbox_events.id"), index=True)
    attempt_no: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(String(2000))
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))  # delivered | retry | dead
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditLog(Base):
    """Append-only trail of every status change and staff action."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_entity", "entity_type", "entity_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(40), default="transition")
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str | None] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IdempotencyRecord(Base):
    """A stored first response per (client, Idempotency-Key), kept at least 24 h (contract §4)."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("client_id", "key", name="uq_idempotency_client_key"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("portal_clients.id"))
    key: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(500))
    request_hash: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class StaffUser(Base):
    """A finance, auditor or admin account of the staff console (contract §11; issue 7.1)."""

    __tablename__ = "staff_users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # Lower-cased; also the actor recorded in the audit trail (whose column is 200 wide).
    email: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    # ``scrypt$1$<n>$<r>$<p>$<salt>$<hash>`` (gateway/services/staff.py): the parameters travel with the hash.
    password_hash: Mapped[str] = mapped_column(String(255))
    # RFC 6238 base32 secret once enrolled; the pending one is only shown during enrolment.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_pending_secret: Mapped[str | None] = mapped_column(String(64))
    # The last time step accepted: a code is never accepted twice (RFC 6238 §5.2).
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    locale: Mapped[str | None] = mapped_column(String(2))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Part of the login session's id: bumping it (disable, password change) ends every open session.
    session_version: Mapped[int] = mapped_column(Integer, default=0)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RefundApproval(Base):
    """A refund asked for in the console, before it becomes a :class:`Refund` (issue 7.4, four-eyes).

    ``pending`` (waiting for a second finance user) and ``executing`` (handed to the refund service, no
    refunds row linked yet) hold their amount against the order's refundable balance; ``done`` links the
    refund that was created; ``rejected`` and ``failed`` hold nothing.
    """

    __tablename__ = "refund_approvals"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    needs_approval: Mapped[bool] = mapped_column(Boolean)
    requested_by: Mapped[str] = mapped_column(String(200))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    refund_id: Mapped[str | None] = mapped_column(ForeignKey("refunds.id"))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ClientKeyRotation(Base):
    """A rotated portal credential and its overlap window (issue 7.7).

    ``api_key``: the previous key's prefix and hash stay valid until ``overlap_until``
    (gateway.services.clients.authenticate_with_overlap). ``webhook_secret``: the client's stored secret is
    ``new,old`` until the overlap ends, so deliveries carry a ``v1=`` for each.
    """

    __tablename__ = "client_key_rotations"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("portal_clients.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    old_key_prefix: Mapped[str | None] = mapped_column(String(16), index=True)
    old_key_hash: Mapped[str | None] = mapped_column(String(64))
    rotated_by: Mapped[str] = mapped_column(String(200))
    rotated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    overlap_until: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# --- Reconciliation (issue 6; migration 0005) -------------------------------------------------------
# Appended as one block: its imports sit here so that other sections of this file stay untouched.
from datetime import date  # noqa: E402

from sqlalchemy import Date  # noqa: E402

_BIGID = BigInteger().with_variant(Integer, "sqlite")

# Lookups reconciliation makes on the gateway's own tables: a provider line names the provider's
# transaction id, a run selects the attempts paid on a business date, a bank transfer names a dossier.
Index("ix_payment_attempts_provider_txn_id", PaymentAttempt.provider_txn_id)
Index("ix_payment_attempts_paid_at", PaymentAttempt.paid_at)
Index("ix_orders_dossier_code", Order.dossier_code)
# A run selects the refunds completed in its window (migration 0006).
Index("ix_refunds_completed_at", Refund.completed_at)


class ReconFile(Base):
    """An imported statement or settlement file, known by its SHA-256 (contract §9: imported once)."""

    __tablename__ = "statement_files"

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # statement | settlement
    source: Mapped[str] = mapped_column(String(48))  # camt053 | mt940 | csv | xlsx | settlement:<provider>
    provider: Mapped[str | None] = mapped_column(String(32))
    format: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str] = mapped_column(String(500))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime())
    imported_by: Mapped[str] = mapped_column(String(200))
    headers: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # checked balances, one per statement
    line_count: Mapped[int] = mapped_column(Integer)
    total_credit: Mapped[int] = mapped_column(BigInteger)
    total_debit: Mapped[int] = mapped_column(BigInteger)
    first_business_date: Mapped[date | None] = mapped_column(Date)
    last_business_date: Mapped[date | None] = mapped_column(Date)


class ReconLine(Base):
    """One canonical line of an imported file (reconciliation.records.StatementLine), never changed."""

    __tablename__ = "statement_lines"
    __table_args__ = (
        UniqueConstraint("file_id", "row", "sub_row", name="uq_statement_lines_position"),
        Index("ix_statement_lines_kind_date", "kind", "business_date"),
        Index("ix_statement_lines_reference", "provider", "our_reference"),
    )

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True)
    # statement_files.id. No FOREIGN KEY on purpose: a per-row RI check costs ~40 % of a million-row COPY;
    # lines are only ever written by reconciliation.store together with their file row, in one transaction.
    file_id: Mapped[int] = mapped_column(_BIGID)
    row: Mapped[int] = mapped_column(Integer)
    sub_row: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # statement | settlement (copied from the file)
    provider: Mapped[str | None] = mapped_column(String(32))  # settlement lines only
    direction: Mapped[str] = mapped_column(String(6))  # credit | debit
    gross: Mapped[int] = mapped_column(BigInteger)
    fee: Mapped[int] = mapped_column(BigInteger)
    net: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    booked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    business_date: Mapped[date] = mapped_column(Date)
    value_date: Mapped[date | None] = mapped_column(Date)
    bank_reference: Mapped[str | None] = mapped_column(Text)
    end_to_end_id: Mapped[str | None] = mapped_column(Text)
    provider_txn_id: Mapped[str | None] = mapped_column(Text)
    our_reference: Mapped[str | None] = mapped_column(Text)
    batch_id: Mapped[str | None] = mapped_column(Text)
    # Settlement lines: batch_id, or "date:<settlement date>" when the file names no batch (the payout key).
    batch_key: Mapped[str | None] = mapped_column(Text)
    account: Mapped[str | None] = mapped_column(Text)
    statement_id: Mapped[str | None] = mapped_column(Text)
    counterparty: Mapped[str | None] = mapped_column(Text)
    remittance: Mapped[str | None] = mapped_column(Text)
    remittance_norm: Mapped[str | None] = mapped_column(Text)  # textnorm.fold(remittance)
    status: Mapped[str] = mapped_column(String(10))
    reversal: Mapped[bool] = mapped_column(Boolean)
    raw: Mapped[dict[str, Any]] = mapped_column(JSON)


class ReconRun(Base):
    """One reconciliation of a business date: its inputs, rules, totals and a digest of its items."""

    __tablename__ = "recon_runs"
    __table_args__ = (Index("ix_recon_runs_business_date", "business_date", "started_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    business_date: Mapped[date] = mapped_column(Date)
    window_from: Mapped[date] = mapped_column(Date)  # first business date whose flow this run took in
    status: Mapped[str] = mapped_column(String(16))  # completed
    trigger: Mapped[str] = mapped_column(String(16))  # cli | nightly | console | api
    actor: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rule_version: Mapped[str] = mapped_column(String(32))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)  # file hashes, attempt counts
    totals: Mapped[dict[str, Any]] = mapped_column(JSON)  # {category: {count, amount}}
    item_count: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))
    previous_run_id: Mapped[str | None] = mapped_column(ForeignKey("recon_runs.id"))
    file_watermark: Mapped[int] = mapped_column(BigInteger)  # highest statement_files.id this run saw


class ReconItem(Base):
    """One reconciliation result: exactly one category, the reason, and the rule that matched (if any)."""

    __tablename__ = "recon_items"
    __table_args__ = (
        UniqueConstraint("run_id", "seq", name="uq_recon_items_run_seq"),
        # Exceptions of a run by category (the console's and the API's filter). Matched items, the
        # bulk of a run, are left out: listing them walks uq_recon_items_run_seq instead.
        Index(
            "ix_recon_items_run_category",
            "run_id",
            "category",
            "seq",
            postgresql_where=text("category <> 'matched'"),
            sqlite_where=text("category <> 'matched'"),
        ),
        # Statement-level items only (a bank transfer already matched?): small, unlike level (a)'s million.
        Index(
            "ix_recon_items_bank_attempt",
            "attempt_id",
            postgresql_where=text("level = 'bank'"),
            sqlite_where=text("level = 'bank'"),
        ),
        Index(
            "ix_recon_items_batch",
            "batch_key",
            postgresql_where=text("batch_key IS NOT NULL"),
            sqlite_where=text("batch_key IS NOT NULL"),
        ),
        Index(
            "ix_recon_items_resolved",
            "status",
            postgresql_where=text("status = 'resolved'"),
            sqlite_where=text("status = 'resolved'"),
        ),
        # Refund items only (has an earlier run dealt with this refund?), migration 0006.
        Index(
            "ix_recon_items_refund",
            "refund_id",
            postgresql_where=text("refund_id IS NOT NULL"),
            sqlite_where=text("refund_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True)
    # recon_runs.id. No FOREIGN KEY for the same reason as statement_lines.file_id: a run writes up to
    # millions of items with INSERT … SELECT, always in the transaction that writes the run.
    run_id: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(16))  # provider | payout | bank
    category: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(120))
    detail: Mapped[str | None] = mapped_column(Text)
    rule: Mapped[str | None] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(BigInteger)
    expected_amount: Mapped[int | None] = mapped_column(BigInteger)
    business_date: Mapped[date] = mapped_column(Date)
    order_id: Mapped[str | None] = mapped_column(String(40))
    attempt_id: Mapped[str | None] = mapped_column(String(40))
    refund_id: Mapped[str | None] = mapped_column(String(40))
    line_id: Mapped[int | None] = mapped_column(BigInteger)
    batch_key: Mapped[str | None] = mapped_column(Text)
    provider: Mapped[str | None] = mapped_column(String(32))
    # Identifiers not derivable from the linked line/attempt/order/refund (a payout's batch id...).
    # Reports join the rest in (reconciliation.views): a million matched items carry no copies.
    references: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))  # closed (matched) | open | resolved
    carried_from: Mapped[int | None] = mapped_column(BigInteger)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolution: Mapped[str | None] = mapped_column(Text)


class ReconItemAction(Base):
    """Append-only trail of what finance did with an item (who, when, why, state before and after)."""

    __tablename__ = "recon_item_actions"

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("recon_items.id"), index=True)
    run_id: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(32))  # resolve | manual_match | request_query | reopen
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    before: Mapped[dict[str, Any]] = mapped_column(JSON)
    after: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReconConfirmation(Base):
    """An attempt that reconciliation itself marked paid (provider query or bank statement)."""

    __tablename__ = "recon_confirmations"

    attempt_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    run_id: Mapped[str | None] = mapped_column(String(40))
    via: Mapped[str] = mapped_column(String(16))  # query | statement
    line_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
