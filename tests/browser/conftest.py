"""Browser tests of the staff console (issue 7, acceptance point 9).

Playwright for Python drives Debian's ``chromium`` package (``.ci/run`` installs it; Playwright's own
browser download is never used) against the app served by the ``live_server`` fixture on a loopback
port, on whatever database the suite runs on (SQLite, or PostgreSQL with ``DATABASE_URL``).

* One headless browser per module (per xdist worker); each test opens fresh contexts (cookie jars) so
  that two staff users can act side by side, as four-eyes approval needs.
* The browser reaches nothing but 127.0.0.1: host names other than the loopback address do not resolve
  (``--host-resolver-rules``) and every request of a context leaving 127.0.0.1 is aborted and recorded;
  a test whose pages tried fails.
* Chromium missing: the tests skip, unless ``REQUIRE_BROWSER=1`` (CI) where they fail.
* A failed test leaves a screenshot of each page it opened in ``test-artifacts/browser/<test>.png``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import FakeClock, LiveServer
from tests.console.conftest import PASSWORD, Staff, make_staff

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Route

DEFAULT_CHROMIUM = "/usr/bin/chromium"
LOOPBACK = "127.0.0.1"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Belt and braces with the request router below: no name but the loopback address resolves.
    f"--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE {LOOPBACK}",
]
# Generous enough for a loaded CI machine, short enough that a broken page fails fast.
TIMEOUT_MS = 15_000

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


# ---- which browser -------------------------------------------------------------------------------------


def chromium_path() -> str | None:
    """``CHROMIUM_PATH`` if set, else Debian's ``/usr/bin/chromium``; ``None`` when it is not there."""
    path = os.environ.get("CHROMIUM_PATH") or DEFAULT_CHROMIUM
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def _unavailable(reason: str) -> None:
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


# ---- browser -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    path = chromium_path()
    if path is None:
        _unavailable(
            f"no Chromium at {os.environ.get('CHROMIUM_PATH') or DEFAULT_CHROMIUM} "
            "(apt-get install chromium, or set CHROMIUM_PATH)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - a dev dependency
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
        raise
    pw = sync_playwright().start()
    try:
        yield pw
    finally:
        pw.stop()


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    path = chromium_path()
    assert path is not None
    launched = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
    try:
        yield launched
    finally:
        launched.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, for the screenshot-on-failure teardown below."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def _failed(node: pytest.Item) -> bool:
    reports = node.stash.get(_REPORTS, {})
    return any(r.failed for r in reports.values())


def _artifact_name(node_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", node_name).strip("_")


@dataclass
class Console:
    """The console in the browser: new signed-out browser contexts on the live server, and sign-in."""

    server: LiveServer
    browser: Browser
    clock: FakeClock
    contexts: list[BrowserContext] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)
    escaped: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def _guard(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname == LOOPBACK:
            route.continue_()
        else:
            self.escaped.append(route.request.url)
            route.abort("blockedbyclient")

    def new_page(self, *, width: int = 1280, height: int = 900, **options: Any) -> Page:
        """A page in a fresh context (its own cookies): another person at another computer."""
        context = self.browser.new_context(
            base_url=self.url,
            viewport={"width": width, "height": height},
            accept_downloads=True,
            service_workers="block",
            **options,
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.route("**/*", self._guard)
        self.contexts.append(context)
        page = context.new_page()
        self.pages.append(page)
        return page

    def sign_in(
        self, page: Page, staff: Staff, *, totp: str | None = None, expect: str = "/console/"
    ) -> Page:
        """Fill the login form like a person (email, password, then the one-time code if asked)."""
        page.goto("/console/login")
        page.locator("#email").fill(staff.email)
        page.locator("#password").fill(staff.password)
        page.locator("form[action='/console/login'] button[type=submit]").click()
        if totp is not None:
            page.locator("#totp").wait_for()
            page.locator("#totp").fill(totp)
            page.locator("form[action='/console/login'] button[type=submit]").click()
        page.wait_for_url(f"{self.url}{expect}")
        return page

    def signed_in(self, staff: Staff, **options: Any) -> Page:
        return self.sign_in(self.new_page(**options), staff)

    def screenshot_all(self, directory: Path, stem: str) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        saved = []
        for n, page in enumerate(p for p in self.pages if not p.is_closed()):
            target = directory / (f"{stem}.png" if n == 0 else f"{stem}-{n + 1}.png")
            try:
                page.screenshot(path=str(target), full_page=True, timeout=5_000)
            except Exception as exc:  # a failed screenshot must not hide the test's own failure
                target.with_suffix(".txt").write_text(f"screenshot failed: {exc}\n", encoding="utf-8")
                continue
            saved.append(target)
        return saved

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def console(
    request: pytest.FixtureRequest, browser: Browser, live_server: LiveServer, clock: FakeClock
) -> Iterator[Console]:
    console = Console(live_server, browser, clock)
    try:
        yield console
        if _failed(request.node):
            directory = request.config.rootpath / "test-artifacts" / "browser"
            for path in console.screenshot_all(directory, _artifact_name(request.node.name)):
                request.node.add_report_section("teardown", "screenshot", str(path))
    finally:
        console.close()
    assert not console.escaped, f"the browser tried to leave {LOOPBACK}: {console.escaped}"


# ---- staff ---------------------------------------------------------------------------------------------


StaffMaker = Callable[..., Staff]


@pytest.fixture
def staff(sessions: sessionmaker[Session], clock: FakeClock) -> StaffMaker:
    """``staff(email, role, with_totp=False)``: a console user made through the service layer."""

    def make(email: str, role: str, *, with_totp: bool = False) -> Staff:
        return make_staff(sessions, clock, email, role, with_totp=with_totp)

    return make


__all__ = ["PASSWORD", "Console", "StaffMaker", "chromium_path"]
