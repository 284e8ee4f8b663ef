"""Console error pages: the same look as the console, a translated explanation chosen by status."""

from __future__ import annotations

import logging

from flask import request
from flask_babel import gettext
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from gateway.console.base import bp, render
from gateway.domain.errors import GatewayError

log = logging.getLogger(__name__)


def _text(status: int) -> tuple[str, str]:
    if status == 403:
        return gettext("Access denied"), gettext("Your role does not allow this action.")
    if status == 404:
        return gettext("Not found"), gettext("The page or record you are looking for does not exist.")
    if status == 409:
        return (
            gettext("This action is not possible now"),
            gettext("The record has changed in the meantime. Please reload the page."),
        )
    if status in {400, 405, 413, 415, 422}:
        return gettext("Invalid request"), gettext("The request could not be understood. Please try again.")
    return gettext("Something went wrong"), gettext("Please try again in a few minutes.")


def error_page(status: int) -> Response:
    heading, message = _text(status)
    return render("console_error.html", status=status, heading=heading, message=message)


@bp.errorhandler(CSRFError)
def _csrf(exc: CSRFError) -> Response:
    log.info("console CSRF refusal on %s: %s", request.path, exc.description)
    return render(
        "console_error.html",
        status=400,
        heading=gettext("The form has expired"),
        message=gettext(
            "The form was not sent from this page or has expired. Go back, reload the page and try again."
        ),
    )


@bp.errorhandler(GatewayError)
def _gateway_error(exc: GatewayError) -> Response:
    log.info("console %s on %s: %s", exc.status, request.path, exc.detail)
    return error_page(exc.status)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return error_page(exc.code or 500)
