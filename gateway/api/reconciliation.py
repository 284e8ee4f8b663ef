"""``/api/v1/reconciliation``: reconciliation runs and their items, for finance (contract §3, ``finance``).

Read-only, behind an API key holding the ``finance`` scope (403 without it) or, without an
``Authorization`` header, a live staff console session (every staff role reads reconciliation; issue
6.4). The console's own pages call :mod:`reconciliation.service` directly. Lists have the contract's
``{items, next_cursor}`` shape.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from marshmallow import RAISE, Schema, fields, validate

from gateway.api.auth import bearer_token, require_client
from gateway.api.parsing import Blueprint
from gateway.container import services
from gateway.storage.db import transaction
from reconciliation import service
from reconciliation.runs import CATEGORIES

F = TypeVar("F", bound=Callable[..., Any])

blp = Blueprint(
    "reconciliation",
    __name__,
    url_prefix="/api/v1/reconciliation",
    description="Reconciliation runs and their items (finance scope)",
)


class ReconRunListArgs(Schema):
    class Meta:
        unknown = RAISE

    business_date = fields.Date()
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))
    cursor = fields.String()


class ReconRunItemArgs(Schema):
    class Meta:
        unknown = RAISE

    category = fields.String(validate=validate.OneOf(CATEGORIES))
    status = fields.String(validate=validate.OneOf(["open", "closed", "resolved"]))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
    cursor = fields.String()


class ReconTotal(Schema):
    count = fields.Integer()
    amount = fields.Integer(metadata={"description": "integer VND"})


class ReconRunOut(Schema):
    id = fields.String()
    business_date = fields.String(metadata={"description": "YYYY-MM-DD, Asia/Ho_Chi_Minh"})
    window_from = fields.String()
    status = fields.String()
    trigger = fields.String()
    actor = fields.String()
    started_at = fields.String()
    finished_at = fields.String(allow_none=True)
    rule_version = fields.String()
    settings = fields.Dict()
    inputs = fields.Dict(metadata={"description": "SHA-256 of every input file; attempts counted"})
    totals = fields.Dict(keys=fields.String(), values=fields.Nested(ReconTotal))
    item_count = fields.Integer()
    digest = fields.String(metadata={"description": "SHA-256 of the items: equal for equal inputs"})
    previous_run_id = fields.String(allow_none=True)


class ReconRunPage(Schema):
    items = fields.List(fields.Nested(ReconRunOut))
    next_cursor = fields.String(allow_none=True)


class ReconItemOut(Schema):
    id = fields.Integer()
    seq = fields.Integer()
    level = fields.String(metadata={"description": "provider | payout | bank"})
    category = fields.String()
    reason = fields.String()
    detail = fields.String(allow_none=True)
    rule = fields.String(allow_none=True)
    amount = fields.Integer()
    expected_amount = fields.Integer(allow_none=True)
    business_date = fields.String()
    order_id = fields.String(allow_none=True)
    attempt_id = fields.String(allow_none=True)
    refund_id = fields.String(allow_none=True)
    line_id = fields.Integer(allow_none=True)
    provider = fields.String(allow_none=True)
    references = fields.Dict()
    status = fields.String(metadata={"description": "closed (matched) | open | resolved"})
    carried_from = fields.Integer(allow_none=True)
    resolved_at = fields.String(allow_none=True)
    resolved_by = fields.String(allow_none=True)
    resolution = fields.String(allow_none=True)


class ReconRunDetailOut(ReconRunOut):
    items = fields.List(fields.Nested(ReconItemOut))
    next_cursor = fields.String(allow_none=True)


def require_finance_reader(view: F) -> F:
    """A ``finance``-scoped API key, or a signed-in staff member when no key is presented."""
    with_key = require_client(scope="finance")(view)

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if bearer_token() is None:
            from gateway.console.auth import active_staff

            if active_staff() is not None:
                return view(*args, **kwargs)
        return with_key(*args, **kwargs)

    return cast(F, wrapper)


@blp.route("/runs", methods=["GET"])
@require_finance_reader
@blp.arguments(ReconRunListArgs, location="query")
@blp.response(200, ReconRunPage)
def list_runs(args: dict[str, Any]) -> dict[str, Any]:
    """Reconciliation runs, newest first."""
    with transaction(services().sessions) as session:
        page = service.list_runs(
            session, limit=args["limit"], cursor=args.get("cursor"), business_date=args.get("business_date")
        )
    return page.as_dict()


@blp.route("/runs/<run_id>", methods=["GET"])
@require_finance_reader
@blp.arguments(ReconRunItemArgs, location="query")
@blp.response(200, ReconRunDetailOut)
def get_run(args: dict[str, Any], run_id: str) -> dict[str, Any]:
    """One run (inputs, totals) and a page of its items, optionally of one category."""
    with transaction(services().sessions) as session:
        run = service.get_run(session, run_id)
        page = service.list_items(
            session,
            run_id,
            category=args.get("category"),
            status=args.get("status"),
            limit=args["limit"],
            cursor=args.get("cursor"),
        )
    return {**run, **page.as_dict()}
