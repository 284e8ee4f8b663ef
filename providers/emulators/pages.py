"""What the provider emulators share: the page chrome, the fault switches of the API endpoints, helpers.

Every emulator page is one body template rendered inside the same base (HTML head, viewport meta, one
stylesheet tinted by the emulator's :class:`Accent`, the ``<main>`` wrapper). Both are rendered with
``flask.render_template_string``, which autoescapes: values from requests are never markup.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

import flask
import requests
from flask.typing import ResponseReturnValue


class Accent(NamedTuple):
    """An emulator's colours: headings, page background, the main ("ok") button."""

    colour: str
    background: str = "#eef2f7"
    button: str = "#0a8f3c"


# The stylesheet is a template too: ``accent`` tints it (colours are plain hex, nothing to escape).
_BASE: Final = """<!doctype html>
<html lang="vi">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{% if noindex %}<meta name="robots" content="noindex, nofollow">
{% endif %}<title>{{ title }}</title>
<style>
body{font-family:system-ui,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2939;
background:{{ accent.background }}}
main{max-width:28rem;margin:0 auto;padding:1rem}
.card{background:#fff;border-radius:12px;padding:1.25rem;box-shadow:0 1px 3px rgba(0,0,0,.15)}
h1{font-size:1.2rem;margin:0 0 .25rem;color:{{ accent.colour }}}
.note{font-size:.8rem;color:#667085;margin:0 0 1rem}
.amount{font-size:2rem;font-weight:700;margin:.25rem 0 1rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.4rem .75rem;margin:0 0 1.25rem}
dt{color:#667085}dd{margin:0;word-break:break-all}
label{display:block;margin:.75rem 0 .25rem}
textarea,input{box-sizing:border-box;width:100%;padding:.6rem;font-size:1rem;border:1px solid #98a2b3;
border-radius:8px;font-family:ui-monospace,monospace}
button,.button{display:block;box-sizing:border-box;width:100%;padding:.9rem;margin:.5rem 0;border:0;
border-radius:8px;font-size:1rem;text-align:center;text-decoration:none}
.ok{background:{{ accent.button }};color:#fff}.fail{background:#c4320a;color:#fff}
.other{background:#b54708;color:#fff}.cancel{background:#e4e7ec;color:#1d2939}
.error h1{color:#b42318}
</style>
</head>
<body>
<main>
{{ body|safe }}
</main>
</body>
</html>
"""

# The "note" every checkout page shows under its heading.
EMULATOR_NOTE: Final = '<p class="note">Môi trường giả lập / Emulator - không có tiền thật được chuyển.</p>'

# The heading of the invalid-request page of the emulators that speak of a "transaction".
INVALID_TRANSACTION: Final = "Giao dịch không hợp lệ / Invalid transaction"

_INVALID_BODY: Final = """<div class="card error">
<h1>{{ heading }}</h1>
<p>{{ message }}</p>
{% if link_url %}<a class="button cancel" href="{{ link_url }}">{{ link_text }}</a>
{% endif %}</div>
"""


def page(title: str, body_template: str, *, accent: Accent, noindex: bool = False, **context: Any) -> str:
    """``body_template`` rendered with ``context`` (autoescaped) inside the shared page chrome."""
    # ``body`` is the autoescaped rendering of body_template: markup already, inserted as it is.
    body = flask.render_template_string(body_template, **context)
    return flask.render_template_string(_BASE, title=title, accent=accent, body=body, noindex=noindex)


def invalid_page(
    title: str,
    heading: str,
    message: str,
    *,
    accent: Accent,
    status: int = 400,
    noindex: bool = False,
    link_url: str | None = None,
    link_text: str = "",
) -> ResponseReturnValue:
    """The "this request cannot be served" page: an error card with ``heading``, ``message`` and an optional
    link, with its HTTP status."""
    html = page(
        title,
        _INVALID_BODY,
        accent=accent,
        noindex=noindex,
        heading=heading,
        message=message,
        link_url=link_url,
        link_text=link_text,
    )
    return html, status


def apply_faults(faults: Mapping[str, Any]) -> flask.Response | None:
    """The API fault switches: ``"slow"`` seconds to sleep first, then ``"status"`` an HTTP status to answer
    instead, or ``"garbage"`` (truthy) to answer ``<html>oops`` with 200. None: answer normally."""
    slow_down(faults)
    status = faults.get("status")
    if status:
        return flask.Response(b"emulated failure", status=int(status), content_type="text/plain")
    if faults.get("garbage"):
        return flask.Response(b"<html>oops", status=200, content_type="text/html")
    return None


def slow_down(faults: Mapping[str, Any]) -> None:
    """Sleep ``faults["slow"]`` seconds, if set."""
    slow = faults.get("slow")
    if slow:
        time.sleep(float(slow))


def random_digits(n: int, *, leading_zero: bool = False) -> str:
    """``n`` random digits (secrets, not random: ruff S311); by default no leading zero, so that the number
    never reads as "no transaction" and keeps its length as an integer."""
    if leading_zero:
        return "".join(secrets.choice("0123456789") for _ in range(n))
    return str(10 ** (n - 1) + secrets.randbelow(9 * 10 ** (n - 1)))


def with_query(url: str, query: str) -> str:
    """``url`` with ``query`` appended (after ``&`` when it already has a query string)."""
    return url + ("&" if "?" in url else "?") + query


class EmulatorBlueprint(flask.Blueprint):
    """What every emulator's blueprint holds besides its routes: where its notifications go (``ipn_url``),
    the session that sends them (``http``, injected by tests), the fault switches (``faults``) and the lock
    over its in-memory ledger (threaded dev servers and e2e tests hit it concurrently)."""

    def __init__(self, name: str, import_name: str, *, ipn_url: str, http: requests.Session | None) -> None:
        super().__init__(name, import_name)
        self.ipn_url = ipn_url
        self.http = http or requests.Session()
        self.faults: dict[str, Any] = {}
        self.lock = threading.Lock()


JSON_HEADERS: Final[Mapping[str, str]] = {"Content-Type": "application/json"}


def post_notification(
    http: requests.Session,
    url: str,
    body: bytes,
    *,
    headers: Mapping[str, str],
    timeout: float,
    log: logging.Logger,
    what: str,
) -> requests.Response | None:
    """POST a notification; a failure is logged only (``"<what> to <url> failed"``), as the provider retries
    on its own schedule. The answer, or None when there was none."""
    try:
        return http.post(url, data=body, headers=dict(headers), timeout=timeout)
    except requests.RequestException as exc:
        log.warning("%s to %s failed: %s", what, url, exc)
        return None
