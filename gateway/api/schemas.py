"""Marshmallow schemas: the single description of the portal API's bodies (and its OpenAPI)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates, validates_schema

from gateway.domain.money import MAX_AMOUNT, MAX_ITEMS
from gateway.services.outbox import EVENT_TYPES

MIN_EXPIRES_IN = 300
MAX_EXPIRES_IN = 604_800
MAX_METADATA_BYTES = 4096


class Text(fields.String):
    """A string that is stripped; a blank value counts as missing when the field is required."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not text and self.required:
            raise ValidationError("Must not be empty.")
        return text


class Vnd(fields.Integer):
    """A whole number of VND: a JSON integer, never a float, a string or a boolean."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("validate", validate.Range(min=1, max=MAX_AMOUNT))
        super().__init__(strict=True, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return super()._validated(value)


def _http_url(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValidationError("Must be an absolute http:// or https:// URL.")


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class PayerSchema(StrictSchema):
    name = Text(required=True, validate=validate.Length(min=1, max=200))
    id_number = fields.String(allow_none=True, validate=validate.Length(max=50))
    phone = fields.String(allow_none=True, validate=validate.Length(max=50))
    email = fields.String(allow_none=True, validate=validate.Length(max=320))


class ItemSchema(StrictSchema):
    code = fields.String(allow_none=True, validate=validate.Length(max=100))
    kind = fields.String(required=True, validate=validate.OneOf(["fee", "charge"]))
    description = fields.String(allow_none=True, validate=validate.Length(max=500))
    amount = Vnd(required=True, metadata={"description": "integer VND, 1..10,000,000,000"})
    revenue_code = fields.String(allow_none=True, validate=validate.Length(max=20))
    chapter_code = fields.String(allow_none=True, validate=validate.Length(max=20))


class OrderCreateSchema(StrictSchema):
    dossier_code = Text(required=True, validate=validate.Length(min=1, max=100))
    agency_code = Text(required=True, validate=validate.Length(min=1, max=100))
    payer = fields.Nested(PayerSchema, required=True)
    items = fields.List(
        fields.Nested(ItemSchema), required=True, validate=validate.Length(min=1, max=MAX_ITEMS)
    )
    currency = fields.String(
        load_default="VND", validate=validate.Equal("VND", error="Only VND is accepted.")
    )
    return_url = fields.String(allow_none=True, validate=[validate.Length(max=2000), _http_url])
    expires_in = fields.Integer(
        strict=True,
        validate=validate.Range(min=MIN_EXPIRES_IN, max=MAX_EXPIRES_IN),
        metadata={"description": "seconds, 300..604800, default 86400"},
    )
    expires_at = fields.AwareDateTime(metadata={"description": "alternative to expires_in (UTC ISO-8601)"})
    metadata = fields.Dict(keys=fields.String(), allow_none=True, metadata={"description": "≤ 4 KB of JSON"})

    @validates("metadata")
    def _metadata_size(self, value: Any, **_: Any) -> None:
        if value is not None and len(json.dumps(value, ensure_ascii=False).encode()) > MAX_METADATA_BYTES:
            raise ValidationError(f"Must be at most {MAX_METADATA_BYTES} bytes of JSON.")

    @validates_schema
    def _totals(self, data: dict[str, Any], **_: Any) -> None:
        items = data.get("items") or []
        total = sum(item.get("amount", 0) for item in items)
        if total > MAX_AMOUNT:
            raise ValidationError(f"The total must not exceed {MAX_AMOUNT} VND.", field_name="items")
        if "expires_in" in data and "expires_at" in data:
            raise ValidationError("Give expires_in or expires_at, not both.", field_name="expires_at")


class AttemptCreateSchema(StrictSchema):
    provider = fields.String(required=True, validate=validate.Length(min=1, max=32))
    bank_code = fields.String(allow_none=True, validate=validate.Length(max=20))
    method = fields.String(allow_none=True, validate=validate.Length(max=32))
    locale = fields.String(load_default="vi", validate=validate.OneOf(["vi", "en"]))
    client_ip = fields.String(allow_none=True, validate=validate.Length(max=64))


class OrderListArgs(Schema):
    class Meta:
        unknown = RAISE

    dossier_code = fields.String()
    status = fields.String(
        validate=validate.OneOf(
            ["pending", "processing", "paid", "expired", "cancelled", "partially_refunded", "refunded"]
        )
    )
    created_from = fields.AwareDateTime()
    created_to = fields.AwareDateTime()
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))
    cursor = fields.String()


# ---- responses (documentation and serialisation) ----


class PayerOut(Schema):
    name = fields.String()
    id_number = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)


class ItemOut(Schema):
    code = fields.String(allow_none=True)
    kind = fields.String()
    description = fields.String(allow_none=True)
    amount = fields.Integer()
    revenue_code = fields.String(allow_none=True)
    chapter_code = fields.String(allow_none=True)


class AttemptOut(Schema):
    id = fields.String()
    provider = fields.String()
    reference = fields.String()
    status = fields.String()
    amount = fields.Integer()
    redirect_url = fields.String(allow_none=True)
    qr_payload = fields.String(allow_none=True)
    provider_txn_id = fields.String(allow_none=True)
    result_code = fields.String(allow_none=True)
    expires_at = fields.String()
    created_at = fields.String()
    paid_at = fields.String(allow_none=True)


class OrderOut(Schema):
    id = fields.String()
    status = fields.String()
    amount = fields.Integer()
    currency = fields.String()
    dossier_code = fields.String()
    agency_code = fields.String()
    payer = fields.Nested(PayerOut)
    items = fields.List(fields.Nested(ItemOut))
    paid_amount = fields.Integer()
    refunded_amount = fields.Integer()
    checkout_url = fields.String()
    return_url = fields.String(allow_none=True)
    metadata = fields.Dict()
    expires_at = fields.String()
    created_at = fields.String()
    updated_at = fields.String()
    paid_at = fields.String(allow_none=True)
    attempts = fields.List(fields.Nested(AttemptOut))


class OrderPage(Schema):
    items = fields.List(fields.Nested(OrderOut))
    next_cursor = fields.String(allow_none=True)


class ProviderOut(Schema):
    code = fields.String()
    name = fields.String()
    methods = fields.List(fields.String())
    emulated = fields.Boolean()


class ProviderList(Schema):
    items = fields.List(fields.Nested(ProviderOut))
    next_cursor = fields.String(allow_none=True)


class Health(Schema):
    status = fields.String()
    database = fields.String()


class RefundCreateSchema(StrictSchema):
    amount = Vnd(required=True, metadata={"description": "integer VND; Σ refunds ≤ the paid amount"})
    reason = Text(required=True, validate=validate.Length(min=1, max=500))


class RefundOut(Schema):
    id = fields.String()
    order_id = fields.String()
    amount = fields.Integer()
    reason = fields.String()
    status = fields.String(metadata={"description": "pending | succeeded | failed"})
    provider = fields.String()
    provider_reference = fields.String(allow_none=True)
    created_at = fields.String()
    completed_at = fields.String(allow_none=True)


class EventListArgs(Schema):
    class Meta:
        unknown = RAISE

    type = fields.String(validate=validate.OneOf(sorted(EVENT_TYPES)))
    status = fields.String(validate=validate.OneOf(["pending", "delivered", "dead"]))
    order_id = fields.String()
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))
    cursor = fields.String()


class EventOut(Schema):
    id = fields.String()
    type = fields.String()
    created_at = fields.String()
    status = fields.String(metadata={"description": "pending | delivered | dead"})
    attempts = fields.Integer()
    next_attempt_at = fields.String(allow_none=True)
    delivered_at = fields.String(allow_none=True)
    last_error = fields.String(allow_none=True)
    data = fields.Dict()


class EventPage(Schema):
    items = fields.List(fields.Nested(EventOut))
    next_cursor = fields.String(allow_none=True)
