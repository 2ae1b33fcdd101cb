"""Debian's chromium driven by Playwright, and a real `rag serve` for it to open.

Playwright's own browser download cannot work offline: the tests launch /usr/bin/chromium (`make
install` puts it there). Every page records the requests it makes to any other host than the
service, so a test can fail on one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, sync_playwright

from support.serve import ServeProcess  # noqa: F401  (re-exported for the browser tests)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless chromium, closed on exit."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def watch_foreign_requests(context: BrowserContext, origin: str) -> list[str]:
    """The URLs of requests the context's pages make to anything but `origin` (filled as they happen)."""
    foreign: list[str] = []
    expected = urlsplit(origin).netloc

    def check(request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in {"http", "https", "ws", "wss"} and parts.netloc != expected:
            foreign.append(request.url)

    context.on("request", check)
    return foreign


