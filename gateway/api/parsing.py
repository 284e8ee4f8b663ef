"""Strict request parsing: JSON only, numbers kept exact, every error naming its field."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, NoReturn

import flask_smorest
from flask import Request
from marshmallow import Schema, ValidationError
from webargs.flaskparser import FlaskParser

from gateway.domain.errors import BadRequest, ValidationProblem


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


# Deeper JSON is refused up front: past ~1000 levels the decoder (or any later json.dumps of the
# body: idempotency hash, metadata size, the JSON column) raises RecursionError, which was a 500.
MAX_JSON_DEPTH = 64
# NUL cannot be stored in a PostgreSQL text column and a lone surrogate ("\ud800") cannot be
# encoded as UTF-8 at all (hash, database, response): both used to surface as a 500.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def _check_storable(document: Any) -> None:
    """Refuse JSON nested deeper than MAX_JSON_DEPTH or holding unstorable characters (iterative)."""
    stack: list[tuple[str, Any, int]] = [("", document, 1)]
    while stack:
        path, value, depth = stack.pop()
        name = path or "body"
        if isinstance(value, str):
            if _UNSTORABLE.search(value):
                raise BadRequest(
                    f"{name} holds a NUL or an unpaired surrogate character",
                    errors={name: ["must not contain NUL or unpaired surrogate characters"]},
                )
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise BadRequest(
                "the body is nested too deeply",
                errors={name: [f"must not be nested more than {MAX_JSON_DEPTH} levels deep"]},
            )
        children = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in children:
            child_path = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _UNSTORABLE.search(key):
                raise BadRequest(
                    "a member name holds a NUL or an unpaired surrogate character",
                    errors={name: ["member names must not contain NUL or unpaired surrogate characters"]},
                )
            stack.append((child_path, child, depth + 1))


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """``{"payer": {"name": ["..."]}}`` -> ``{"payer.name": ["..."]}`` (contract §12 ``errors``)."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            # A schema-level error belongs to the object it is about: the whole body at the top,
            # the nested field itself below it ("payer", not "payer.body", for `"payer": "x"`).
            path = (prefix or "body") if key == "_schema" else (f"{prefix}.{key}" if prefix else str(key))
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
        document = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("the body is not valid JSON", errors={"body": [str(exc)]}) from exc
    except RecursionError as exc:  # nesting deep enough to exhaust the decoder's stack
        raise BadRequest(
            "the body is nested too deeply",
            errors={"body": [f"must not be nested more than {MAX_JSON_DEPTH} levels deep"]},
        ) from exc
    _check_storable(document)
    return document


class StrictParser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 422
    # webargs ignores unknown query parameters by default, overriding the schemas' own
    # ``unknown = RAISE``; let the schema decide, so a misspelt filter (``?dosier_code=``) is a 422
    # naming it instead of silently listing every order.
    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": None,
        "querystring": None,
    }

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
