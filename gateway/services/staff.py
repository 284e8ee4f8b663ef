"""Staff accounts of the console (issue 7.1) and four-eyes refunds (issue 7.4).

Passwords are hashed with scrypt (memory-hard) in a versioned, self-describing format; logins count
failures and lock the account for a while; the second factor is RFC 6238 TOTP. A refund asked for in the
console becomes a :class:`RefundApproval` first: at or above the threshold it waits for a second finance
user, and only then goes through :func:`gateway.services.refunds.request_refund`, the API's refund path.
Every action is written to the audit trail with the staff e-mail as actor and ``console`` as source.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.console import totp
from gateway.domain.errors import Conflict, Forbidden, GatewayError, NotFound, ValidationProblem
from gateway.domain.references import new_id
from gateway.services.audit import record_action
from gateway.services.refunds import REFUNDABLE, committed_amount, complete_manual_refund, request_refund
from gateway.services.registry import ProviderRegistry
from gateway.storage.db import get_for_update, transaction
from gateway.storage.models import Order, Refund, RefundApproval, StaffUser

log = logging.getLogger(__name__)

SOURCE: Final = "console"

# ---- roles ---------------------------------------------------------------------------------------------


class Role(StrEnum):
    """contract §11. Each role can do everything the one before it can."""

    AUDITOR = "auditor"
    FINANCE = "finance"
    ADMIN = "admin"


ROLES: Final = tuple(r.value for r in Role)
_RANK: Final = {Role.AUDITOR.value: 0, Role.FINANCE.value: 1, Role.ADMIN.value: 2}


def role_allows(role: str, needed: str) -> bool:
    return _RANK.get(role, -1) >= _RANK[needed]


# ---- passwords -----------------------------------------------------------------------------------------

# scrypt with n=2**14, r=8, p=1 (16 MiB, the interactive-login parameters of the scrypt paper) and a
# 16-byte salt. The parameters are stored with each hash, so they can be raised later and old hashes still
# verify (and are re-hashed at the next login).
SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
_SALT_BYTES: Final = 16
_KEY_BYTES: Final = 32
_SCHEME: Final = "scrypt"
_VERSION: Final = "1"
MIN_PASSWORD: Final = 12
MAX_PASSWORD: Final = 1024


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=_KEY_BYTES, maxmem=256 * r * n + 1024 * 1024
    )


def hash_password(password: str) -> str:
    """``scrypt$1$<n>$<r>$<p>$<salt b64>$<key b64>``."""
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join([_SCHEME, _VERSION, str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(key)])


def verify_password(password: str, encoded: str) -> bool:
    """Constant-time check of ``password`` against a stored hash; an unreadable hash never matches."""
    try:
        scheme, version, n, r, p, salt, key = encoded.split("$")
        if scheme != _SCHEME or version != _VERSION:
            return False
        expected = _unb64(key)
        actual = _scrypt(password, _unb64(salt), int(n), int(r), int(p))
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(actual, expected)


def needs_rehash(encoded: str) -> bool:
    parts = encoded.split("$")
    return len(parts) != 7 or parts[:5] != [_SCHEME, _VERSION, str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P)]


# An unknown e-mail costs the same scrypt work as a wrong password, so timing does not reveal accounts.
_DUMMY_HASH: Final = "scrypt$1$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def password_problems(password: str) -> list[str]:
    if len(password) < MIN_PASSWORD:
        return [f"must be at least {MIN_PASSWORD} characters"]
    if len(password) > MAX_PASSWORD:
        return [f"must be at most {MAX_PASSWORD} characters"]
    return []


# ---- users ---------------------------------------------------------------------------------------------

_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class StaffPrincipal:
    """What a request knows about the signed-in staff member (no ORM object outlives its session)."""

    id: str
    email: str
    role: str
    has_totp: bool
    locale: str | None
    session_version: int

    def can(self, needed: str) -> bool:
        return role_allows(self.role, needed)


def principal(user: StaffUser) -> StaffPrincipal:
    return StaffPrincipal(
        id=user.id,
        email=user.email,
        role=user.role,
        has_totp=user.totp_secret is not None,
        locale=user.locale,
        session_version=user.session_version,
    )


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _audit(  # noqa: PLR0917 - one audit row per call; positional keeps the call sites on one line
    session: Session, entity_type: str, entity_id: str, action: str, actor: str, reason: str, at: datetime
) -> None:
    record_action(
        session,
        entity_type=entity_type,
        entity_id=entity_id,
        action=action,
        actor=actor[:200],
        source=SOURCE,
        reason=reason,
        at=at,
    )


def find_user(session: Session, email: str) -> StaffUser | None:
    return session.scalars(select(StaffUser).where(StaffUser.email == normalise_email(email))).first()


def create_user(
    session: Session, email: str, *, role: str, password: str, actor: str, now: datetime
) -> StaffUser:
    """Create a staff account. Raises ValidationProblem (bad input) or Conflict (the e-mail exists)."""
    address = normalise_email(email)
    errors: dict[str, list[str]] = {}
    if not _EMAIL.match(address) or len(address) > 200:
        errors["email"] = ["must be an e-mail address of at most 200 characters"]
    if role not in ROLES:
        errors["role"] = [f"must be one of: {', '.join(ROLES)}"]
    if problems := password_problems(password):
        errors["password"] = problems
    if errors:
        raise ValidationProblem("invalid staff user", errors=errors)
    if find_user(session, address) is not None:
        raise Conflict(f"a staff user {address} already exists", errors={"email": ["already exists"]})
    user = StaffUser(
        id=new_id("stf"),
        email=address,
        role=role,
        password_hash=hash_password(password),
        failed_logins=0,
        session_version=0,
        created_by=actor[:200],
        created_at=now,
    )
    session.add(user)
    session.flush()
    _audit(session, "staff_user", user.id, "user_created", actor, f"{address} created with role {role}", now)
    return user


def load_principal(session: Session, user_id: str, version: int) -> StaffPrincipal | None:
    """The signed-in user for a session id, or None once disabled or after a session reset."""
    user = session.get(StaffUser, user_id)
    if user is None or user.disabled_at is not None or user.session_version != version:
        return None
    return principal(user)


def _get_user(session: Session, user_id: str, *, lock: bool = True) -> StaffUser:
    user = get_for_update(session, StaffUser, user_id) if lock else session.get(StaffUser, user_id)
    if user is None:
        raise NotFound(f"staff user {user_id} not found")
    return user


def set_disabled(
    session: Session, user_id: str, *, disabled: bool, actor: StaffPrincipal, now: datetime
) -> None:
    user = _get_user(session, user_id)
    if user.id == actor.id:
        raise Conflict("you cannot disable your own account")
    if disabled and user.disabled_at is None:
        user.disabled_at = now
        user.session_version += 1  # ends the user's open sessions at their next request
        _audit(session, "staff_user", user.id, "user_disabled", actor.email, f"{user.email} disabled", now)
    elif not disabled and user.disabled_at is not None:
        user.disabled_at = None
        user.failed_logins = 0
        user.locked_until = None
        _audit(session, "staff_user", user.id, "user_enabled", actor.email, f"{user.email} enabled", now)


def reset_totp(session: Session, user_id: str, *, actor: StaffPrincipal, now: datetime) -> None:
    """Remove a user's second factor (a lost phone); the user enrols again (admins must, at once)."""
    user = _get_user(session, user_id)
    user.totp_secret = None
    user.totp_pending_secret = None
    user.totp_last_step = None
    user.totp_enabled_at = None
    _audit(
        session,
        "staff_user",
        user.id,
        "totp_reset",
        actor.email,
        f"second factor of {user.email} removed",
        now,
    )


def change_password(
    session: Session, user_id: str, *, current: str, new: str, now: datetime
) -> StaffPrincipal:
    """Change one's own password; every other session of the account ends."""
    user = _get_user(session, user_id)
    if not verify_password(current, user.password_hash):
        raise ValidationProblem("the current password is wrong", errors={"current_password": ["is wrong"]})
    if problems := password_problems(new):
        raise ValidationProblem("the new password is too weak", errors={"new_password": problems})
    user.password_hash = hash_password(new)
    user.session_version += 1
    _audit(
        session, "staff_user", user.id, "password_changed", user.email, "password changed by the user", now
    )
    return principal(user)


def set_locale(session: Session, user_id: str, locale: str) -> None:
    user = _get_user(session, user_id)
    user.locale = locale


# ---- login, lockout, second factor ---------------------------------------------------------------------


@dataclass(frozen=True)
class LoginPolicy:
    max_failures: int = 5
    lock_for: timedelta = timedelta(minutes=15)


class LoginOutcome(StrEnum):
    OK = "ok"
    INVALID = "invalid"
    LOCKED = "locked"
    NEED_TOTP = "need_totp"


@dataclass(frozen=True)
class LoginResult:
    outcome: LoginOutcome
    user: StaffPrincipal | None = None
    locked_until: datetime | None = None


def _locked(user: StaffUser, now: datetime) -> bool:
    return user.locked_until is not None and now < user.locked_until


def _fail(session: Session, user: StaffUser, *, why: str, policy: LoginPolicy, now: datetime) -> LoginResult:
    user.failed_logins += 1
    if user.failed_logins >= policy.max_failures:
        user.failed_logins = 0
        user.locked_until = now + policy.lock_for
        _audit(
            session,
            "staff_user",
            user.id,
            "account_locked",
            user.email,
            f"{policy.max_failures} failed sign-ins ({why}); locked until {user.locked_until.isoformat()}",
            now,
        )
        return LoginResult(LoginOutcome.LOCKED, locked_until=user.locked_until)
    _audit(
        session,
        "staff_user",
        user.id,
        "login_failed",
        user.email,
        f"{why} (failure {user.failed_logins} of {policy.max_failures})",
        now,
    )
    return LoginResult(LoginOutcome.INVALID)


def _succeed(session: Session, user: StaffUser, password: str | None, now: datetime) -> LoginResult:
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    if password is not None and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    _audit(session, "staff_user", user.id, "login", user.email, "signed in", now)
    return LoginResult(LoginOutcome.OK, user=principal(user))


def _check_totp(user: StaffUser, code: str, now: datetime) -> bool:
    assert user.totp_secret is not None
    step = totp.match(user.totp_secret, code, now.timestamp(), after_step=user.totp_last_step)
    if step is None:
        return False
    user.totp_last_step = step
    return True


def login(
    session: Session,
    email: str,
    password: str,
    *,
    totp_code: str | None,
    now: datetime,
    policy: LoginPolicy,
) -> LoginResult:
    """Check a sign-in. The caller commits (failures and locks must be kept, hence no exception).

    A locked account is refused without looking at the password. A user with a second factor who sent
    no code gets ``NEED_TOTP`` (the password was right; nothing is counted); a wrong code counts as a
    failed sign-in like a wrong password.
    """
    user = find_user(session, email)
    if user is not None:
        user = get_for_update(session, StaffUser, user.id)
    if user is None:
        verify_password(password, _DUMMY_HASH)
        _audit(
            session,
            "staff_user",
            "unknown",
            "login_failed",
            normalise_email(email)[:200] or "-",
            "no such staff user",
            now,
        )
        return LoginResult(LoginOutcome.INVALID)
    if user.disabled_at is not None:
        verify_password(password, _DUMMY_HASH)
        _audit(session, "staff_user", user.id, "login_failed", user.email, "account disabled", now)
        return LoginResult(LoginOutcome.INVALID)
    if _locked(user, now):
        _audit(
            session, "staff_user", user.id, "login_refused_locked", user.email, "sign-in while locked", now
        )
        return LoginResult(LoginOutcome.LOCKED, locked_until=user.locked_until)
    if not verify_password(password, user.password_hash):
        return _fail(session, user, why="wrong password", policy=policy, now=now)
    if user.totp_secret is not None:
        if not totp_code:
            return LoginResult(LoginOutcome.NEED_TOTP, user=principal(user))
        if not _check_totp(user, totp_code, now):
            return _fail(session, user, why="wrong one-time code", policy=policy, now=now)
    return _succeed(session, user, password, now)


def second_factor(
    session: Session, user_id: str, code: str, *, now: datetime, policy: LoginPolicy
) -> LoginResult:
    """The TOTP step after a correct password (the login form's second page)."""
    user = get_for_update(session, StaffUser, user_id)
    if user is None or user.disabled_at is not None or user.totp_secret is None:
        return LoginResult(LoginOutcome.INVALID)
    if _locked(user, now):
        _audit(
            session,
            "staff_user",
            user.id,
            "login_refused_locked",
            user.email,
            "one-time code while locked",
            now,
        )
        return LoginResult(LoginOutcome.LOCKED, locked_until=user.locked_until)
    if not _check_totp(user, code, now):
        return _fail(session, user, why="wrong one-time code", policy=policy, now=now)
    return _succeed(session, user, None, now)


def begin_totp_enrolment(session: Session, user_id: str) -> tuple[str, str]:
    """A new pending secret for the enrolment page (kept until confirmed). Returns (email, secret)."""
    user = _get_user(session, user_id)
    if user.totp_pending_secret is None:
        user.totp_pending_secret = totp.new_secret()
    return user.email, user.totp_pending_secret


def confirm_totp_enrolment(session: Session, user_id: str, code: str, *, now: datetime) -> bool:
    """Activate the pending secret if ``code`` is valid for it."""
    user = _get_user(session, user_id)
    secret = user.totp_pending_secret
    if secret is None:
        return False
    step = totp.match(secret, code, now.timestamp())
    if step is None:
        return False
    user.totp_secret = secret
    user.totp_pending_secret = None
    user.totp_last_step = step
    user.totp_enabled_at = now
    _audit(session, "staff_user", user.id, "totp_enrolled", user.email, "second factor enrolled", now)
    return True


# ---- four-eyes refunds ---------------------------------------------------------------------------------


class ApprovalStatus(StrEnum):
    PENDING = "pending"  # waits for a second finance user
    EXECUTING = "executing"  # handed to the refund service
    DONE = "done"  # a refunds row exists (refund_id)
    REJECTED = "rejected"
    FAILED = "failed"  # the refund service refused (e.g. the balance went to an API refund meanwhile)


# Requests whose amount is not yet in the refunds table but may still become a refund. ``pending`` ones
# are already counted by refunds.committed_amount (so the API's refund path sees them too); an
# ``executing`` one is being turned into a refund by that very path, which must not count it twice.
_IN_FLIGHT: Final = (ApprovalStatus.EXECUTING.value,)


def in_flight_amount(session: Session, order_id: str) -> int:
    total = session.scalar(
        select(func.coalesce(func.sum(RefundApproval.amount), 0)).where(
            RefundApproval.order_id == order_id, RefundApproval.status.in_(_IN_FLIGHT)
        )
    )
    return int(total or 0)


def refundable_balance(session: Session, order: Order) -> int:
    """Paid − refunds that may take money out − console requests still waiting or running."""
    return order.paid_amount - committed_amount(session, order.id) - in_flight_amount(session, order.id)


@dataclass(frozen=True)
class ConsoleRefund:
    approval_id: str
    status: str
    refund_id: str | None
    refund_status: str | None
    error: str | None


def _outcome(approval: RefundApproval, refund: Refund | None) -> ConsoleRefund:
    return ConsoleRefund(
        approval_id=approval.id,
        status=approval.status,
        refund_id=approval.refund_id,
        refund_status=refund.status if refund is not None else None,
        error=approval.error,
    )


def request_console_refund(
    factory: sessionmaker[Session],
    registry: ProviderRegistry,
    *,
    order_id: str,
    amount: int,
    reason: str,
    actor: StaffPrincipal,
    threshold: int,
    now: datetime,
    base_url: str,
) -> ConsoleRefund:
    """Ask for a refund from the console.

    The amount is checked against the refundable balance *including* console requests that wait for
    approval, under the order's row lock, so two requests can never together exceed the paid amount.
    Below ``threshold`` the refund is sent at once; at or above it, it waits for :func:`approve_refund`.
    """
    reason = reason.strip()
    if not reason:
        raise ValidationProblem("a reason is required", errors={"reason": ["must not be empty"]})
    if amount <= 0:
        raise ValidationProblem("amount must be positive", errors={"amount": ["must be a positive integer"]})
    with transaction(factory) as session:
        order = get_for_update(session, Order, order_id)
        if order is None:
            raise NotFound(f"order {order_id} not found")
        if order.status not in REFUNDABLE:
            raise Conflict(f"order {order.id} is {order.status}; only a paid order can be refunded")
        available = refundable_balance(session, order)
        if amount > available:
            raise Conflict(
                f"refund of {amount} VND exceeds the refundable balance of {available} VND",
                errors={"amount": [f"must be at most {available} VND"]},
            )
        needs_approval = amount >= threshold
        approval = RefundApproval(
            id=new_id("rfa"),
            order_id=order.id,
            amount=amount,
            reason=reason,
            status=(ApprovalStatus.PENDING if needs_approval else ApprovalStatus.EXECUTING).value,
            needs_approval=needs_approval,
            requested_by=actor.email,
            created_at=now,
            updated_at=now,
        )
        session.add(approval)
        session.flush()
        note = "waits for a second finance user" if needs_approval else "sent to the provider"
        _audit(
            session,
            "order",
            order.id,
            "refund_requested",
            actor.email,
            f"{amount} VND: {reason} ({note}; request {approval.id})",
            now,
        )
        if needs_approval:
            return _outcome(approval, None)
        approval_id = approval.id
    return _execute(factory, registry, approval_id, now=now, base_url=base_url)


def approve_refund(
    factory: sessionmaker[Session],
    registry: ProviderRegistry,
    approval_id: str,
    *,
    actor: StaffPrincipal,
    now: datetime,
    base_url: str,
) -> ConsoleRefund:
    """A second finance user approves: the refund goes through the API's refund service."""
    with transaction(factory) as session:
        approval = get_for_update(session, RefundApproval, approval_id)
        if approval is None:
            raise NotFound(f"refund request {approval_id} not found")
        if approval.status != ApprovalStatus.PENDING:
            raise Conflict(f"refund request {approval_id} is already {approval.status}")
        if normalise_email(approval.requested_by) == normalise_email(actor.email):
            raise Forbidden("four-eyes rule: the requester cannot approve their own refund")
        approval.status = ApprovalStatus.EXECUTING.value
        approval.decided_by = actor.email
        approval.decided_at = now
        approval.updated_at = now
        _audit(
            session,
            "order",
            approval.order_id,
            "refund_approved",
            actor.email,
            f"request {approval.id} of {approval.amount} VND by {approval.requested_by} approved",
            now,
        )
    return _execute(factory, registry, approval_id, now=now, base_url=base_url)


def reject_refund(
    factory: sessionmaker[Session], approval_id: str, *, actor: StaffPrincipal, note: str, now: datetime
) -> ConsoleRefund:
    """Decline a waiting request (a second user), or withdraw it (the requester)."""
    with transaction(factory) as session:
        approval = get_for_update(session, RefundApproval, approval_id)
        if approval is None:
            raise NotFound(f"refund request {approval_id} not found")
        if approval.status != ApprovalStatus.PENDING:
            raise Conflict(f"refund request {approval_id} is already {approval.status}")
        approval.status = ApprovalStatus.REJECTED.value
        approval.decided_by = actor.email
        approval.decided_at = now
        approval.updated_at = now
        approval.error = note.strip() or None
        withdrawn = normalise_email(approval.requested_by) == normalise_email(actor.email)
        _audit(
            session,
            "order",
            approval.order_id,
            "refund_withdrawn" if withdrawn else "refund_rejected",
            actor.email,
            f"request {approval.id} of {approval.amount} VND: {note.strip() or '-'}",
            now,
        )
        return _outcome(approval, None)


def _execute(
    factory: sessionmaker[Session],
    registry: ProviderRegistry,
    approval_id: str,
    *,
    now: datetime,
    base_url: str,
) -> ConsoleRefund:
    """Hand an ``executing`` request to the refund service and link the result.

    The request keeps holding its amount until the refunds row exists; if the process dies in between,
    the request stays ``executing`` and keeps holding it (over-reserving, never over-refunding).
    """
    with transaction(factory) as session:
        approval = session.get(RefundApproval, approval_id)
        assert approval is not None
        order_id, amount, reason, requester = (
            approval.order_id,
            approval.amount,
            approval.reason,
            approval.requested_by,
        )
    refund: Refund | None = None
    error: str | None = None
    try:
        refund = request_refund(
            factory,
            registry,
            client_id=None,
            order_id=order_id,
            amount=amount,
            reason=reason,
            actor=requester,
            now=now,
            base_url=base_url,
        )
    except GatewayError as exc:
        error = exc.detail
        log.warning("console refund request %s refused: %s", approval_id, exc.detail)
    with transaction(factory) as session:
        approval = get_for_update(session, RefundApproval, approval_id)
        assert approval is not None
        approval.updated_at = now
        if refund is not None:
            approval.status = ApprovalStatus.DONE.value
            approval.refund_id = refund.id
        else:
            approval.status = ApprovalStatus.FAILED.value
            approval.error = error
            _audit(
                session,
                "order",
                order_id,
                "refund_request_failed",
                requester,
                f"request {approval_id}: {error}",
                now,
            )
        return _outcome(approval, refund)


def complete_bank_refund(
    factory: sessionmaker[Session],
    registry: ProviderRegistry,
    refund_id: str,
    *,
    bank_transfer_ref: str,
    actor: StaffPrincipal,
    now: datetime,
    base_url: str,
) -> Refund:
    """Record the bank transfer that paid a manual (VietQR) refund back (issue 7.4)."""
    with transaction(factory) as session:
        refund = session.get(Refund, refund_id)
        if refund is None:
            raise NotFound(f"refund {refund_id} not found")
        provider = refund.provider
    if provider not in registry or not registry.get(provider).manual_refunds:
        raise Conflict(f"refund {refund_id} is paid back by {provider} itself, not by a bank transfer")
    return complete_manual_refund(
        factory, refund_id, bank_transfer_ref=bank_transfer_ref, actor=actor.email, now=now, base_url=base_url
    )


def record_logout(session: Session, staff: StaffPrincipal, *, now: datetime) -> None:
    _audit(session, "staff_user", staff.id, "logout", staff.email, "signed out", now)
