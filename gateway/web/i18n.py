"""Language selection and message catalogs for the server-rendered pages (contract §5).

Vietnamese is the default by contract, so the browser's ``Accept-Language`` is deliberately ignored: a
citizen on an English-language phone still gets the Vietnamese page unless they ask for English. The
choice is ``?lang=en|vi`` (or the ``lang`` field of a page's form), remembered in a ``lang`` cookie so that
it sticks on the next page.

Message ids are English; ``translations/vi`` holds the Vietnamese text and ``translations/en`` is the
(empty) source-language catalog. The ``.mo`` files are build output (ignored by git), compiled here at
start-up whenever one is missing or older than its ``.po``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Final

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, Response, g, has_request_context, request
from flask_babel import Babel, get_locale

log = logging.getLogger(__name__)

DEFAULT_LOCALE: Final = "vi"
SUPPORTED_LOCALES: Final = ("vi", "en")
LANG_PARAM: Final = "lang"
LANG_COOKIE: Final = "lang"
LANG_COOKIE_MAX_AGE: Final = 365 * 24 * 3600
DISPLAY_TIMEZONE: Final = "Asia/Ho_Chi_Minh"
TRANSLATIONS_DIR: Final = Path(__file__).resolve().parent.parent / "translations"

# Set by a page's POST handler from its hidden ``lang`` field. The selector does not read
# ``request.form`` itself: parsing a form body on a provider callback would consume the raw body that
# its signature is computed over.
_FORM_LANG: Final = "form_lang"
# Set by the staff console for a signed-in user who chose a language (contract §11: "or a user preference").
_USER_LANG: Final = "user_lang"


def _supported(value: str | None) -> str | None:
    value = (value or "").strip().lower()
    return value if value in SUPPORTED_LOCALES else None


def remember_form_locale(value: str | None) -> None:
    """Use the ``lang`` field of a submitted form for this request (when no ``?lang=`` is given)."""
    lang = _supported(value)
    if lang:
        g.setdefault(_FORM_LANG, lang)


def remember_user_locale(value: str | None) -> None:
    """A signed-in staff user's preferred language, used when the request names none."""
    lang = _supported(value)
    if lang:
        g.setdefault(_USER_LANG, lang)


def requested_locale() -> str | None:
    """The language asked for explicitly on this request, if any."""
    return _supported(request.args.get(LANG_PARAM)) or _supported(g.get(_FORM_LANG))


def select_locale() -> str:
    """Flask-Babel's locale selector: explicit request, a staff user's preference, the cookie, Vietnamese."""
    if not has_request_context():  # e.g. a template rendered by a CLI command or a job
        return DEFAULT_LOCALE
    return (
        requested_locale()
        or _supported(g.get(_USER_LANG))
        or _supported(request.cookies.get(LANG_COOKIE))
        or DEFAULT_LOCALE
    )


def current_locale() -> str:
    """The language of this response, ``"vi"`` or ``"en"`` (also what a provider is asked to show)."""
    locale = get_locale()
    if locale is None:  # outside a request
        return DEFAULT_LOCALE
    return _supported(str(locale)) or DEFAULT_LOCALE


def _remember_choice(response: Response) -> Response:
    """Make an explicit ``?lang=`` stick: later pages are read without the parameter."""
    lang = requested_locale()
    if lang and response.mimetype == "text/html" and request.cookies.get(LANG_COOKIE) != lang:
        response.set_cookie(
            LANG_COOKIE,
            lang,
            max_age=LANG_COOKIE_MAX_AGE,
            secure=request.is_secure,
            httponly=True,
            samesite="Lax",
        )
    return response


def _compile(po_path: Path, mo_path: Path) -> None:
    with po_path.open("rb") as fh:
        catalog = read_po(fh, locale=po_path.parent.parent.name)
    mo_path.parent.mkdir(parents=True, exist_ok=True)
    # Write a temporary file and rename it: several workers (gunicorn, xdist) may start at once, and a
    # reader must never see a half-written catalog.
    fd, tmp = tempfile.mkstemp(prefix=".messages-", suffix=".mo", dir=mo_path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            write_mo(out, catalog, use_fuzzy=False)
        os.replace(tmp, mo_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def compile_catalogs(source: Path, target: Path | None = None) -> list[Path]:
    """Compile every ``<lang>/LC_MESSAGES/*.po`` under ``source`` whose ``.mo`` is missing or stale.

    Args:
        source: the translations directory holding the ``.po`` files.
        target: where to write the ``.mo`` tree; next to the ``.po`` files when omitted.

    Returns:
        The ``.mo`` files written.
    """
    target = target or source
    written: list[Path] = []
    for po_path in sorted(source.glob("*/LC_MESSAGES/*.po")):
        mo_path = target / po_path.relative_to(source).with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        _compile(po_path, mo_path)
        written.append(mo_path)
    return written


def _ensure_catalogs(fallback: Path) -> Path:
    """The directory to load catalogs from: the source tree, or ``fallback`` if that is read-only."""
    try:
        compile_catalogs(TRANSLATIONS_DIR)
    except OSError as exc:
        # An installed, read-only package: compile into the instance folder instead of failing start-up.
        log.warning(
            "cannot write message catalogs next to %s (%s); using %s", TRANSLATIONS_DIR, exc, fallback
        )
        compile_catalogs(TRANSLATIONS_DIR, fallback)
        return fallback
    return TRANSLATIONS_DIR


def init_i18n(app: Flask, *, fallback_dir: Path) -> None:
    """Configure Flask-Babel on ``app``: Vietnamese default, ``?lang=`` then cookie, catalogs compiled."""
    directory = _ensure_catalogs(fallback_dir)
    app.config["BABEL_DEFAULT_LOCALE"] = DEFAULT_LOCALE
    app.config["BABEL_DEFAULT_TIMEZONE"] = DISPLAY_TIMEZONE
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(directory)
    Babel(app, locale_selector=select_locale)
    app.after_request(_remember_choice)
