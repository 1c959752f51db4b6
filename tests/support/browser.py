"""Headless Chromium for the dashboard tests: Debian's /usr/bin/chromium driven by
playwright (never `playwright install`), and a watch on everything a page does
that a user would not see: console errors, uncaught exceptions, CSP violations
and requests to other origins."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from playwright.sync_api import Browser, ConsoleMessage, Page, Request, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]

DESKTOP = {"width": 1280, "height": 900}
LAPTOP = {"width": 1024, "height": 768}
PHONE = {"width": 375, "height": 812}

# Chromium itself logs every failed fetch as a console error. The tests provoke three
# kinds on purpose (an invalid cap is a 400, a wrong key a 401, an inference key
# signing in or a limit looser than the operator's a 403); those exact lines are not
# page errors. Anything the page itself logs, and any other status, still fails.
BROWSER_HTTP_ERROR = re.compile(
    r"^Failed to load resource: the server responded with a status of 40[013] \([^)]*\)$")

# Recorded before any page script runs, and not subject to the page's CSP.
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


@contextmanager
def chromium() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(
            f"{CHROMIUM} is missing: the dashboard tests need Debian's chromium package "
            "(`apt-get install -y chromium`; .ci/run installs it). Do not use "
            "`playwright install`.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             headless=True)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageWatch:
    """What a page did behind the user's back, collected from its first request."""

    origin: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.add_init_script(RECORD_CSP_VIOLATIONS)
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("request", self._on_request)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not BROWSER_HTTP_ERROR.match(message.text):
            self.console_errors.append(message.text)

    def _on_request(self, request: Request) -> None:
        self.requests.append(request.url)
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob"):
            return
        if f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.foreign_requests.append(request.url)

    def problems(self, page: Page) -> dict[str, list[str]]:
        csp = page.evaluate("window.__cspViolations || []") if not page.is_closed() else []
        found = {"console errors": self.console_errors, "uncaught exceptions": self.page_errors,
                 "CSP violations": csp, "requests to other origins": self.foreign_requests}
        return {kind: items for kind, items in found.items() if items}
