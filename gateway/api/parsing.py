"""Strict request parsing: JSON only, numbers kept exact, every error naming its field."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NoReturn

import flask_smorest
from flask import Request
from marshmallow import Schema, ValidationError
from webargs.flaskparser import FlaskParser

from gateway.domain.errors import BadRequest, ValidationProblem


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """``{"payer": {"name": ["..."]}}`` -> ``{"payer.name": ["..."]}`` (contract §12 ``errors``)."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            # A schema-level error belongs to the object it is about: the whole body at the top,
            # the nested field itself below it ("payer", not "payer.body", for `"payer": "x"`).
            if key == "_schema":
                path = prefix or "body"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, Mapping):
                out.update(flatten_errors(value, path))
            elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                out.setdefault(path, []).extend(value)
            elif isinstance(value, list):
                for item in value:
                    out.update(flatten_errors(item, path))
            else:
                out.setdefault(path, []).append(str(value))
    elif isinstance(messages, list):
        out.setdefault(prefix or "body", []).extend(str(m) for m in messages)
    else:
        out.setdefault(prefix or "body", []).append(str(messages))
    return out


def parse_json_body(req: Request) -> Any:
    """The request's JSON body, or a problem naming what is wrong with it."""
    if not req.is_json:
        raise BadRequest(
            "the body must be JSON",
            errors={"Content-Type": [f"must be application/json, got {req.mimetype or 'nothing'!r}"]},
        )
    raw = req.get_data(cache=True)
    try:
        # parse_constant refuses NaN/Infinity; ints stay Python ints (exact), floats stay floats
        # and are then refused by the integer fields.
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("the body is not valid JSON", errors={"body": [str(exc)]}) from exc


class StrictParser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 422

    def _raw_load_json(self, req: Request) -> Any:
        return parse_json_body(req)

    def handle_error(
        self,
        error: ValidationError,
        req: Request,
        schema: Schema,
        *,
        error_status_code: int | None,
        error_headers: Mapping[str, str] | None,
    ) -> NoReturn:
        messages = error.messages
        if isinstance(messages, Mapping) and len(messages) == 1:
            ((location, inner),) = messages.items()
            if location in {"json", "query", "form", "headers"}:
                messages = inner
        errors = flatten_errors(messages)
        fields = ", ".join(sorted(errors))
        raise ValidationProblem(f"invalid field(s): {fields}", errors=errors)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = StrictParser()
