"""/docs in a real browser with no network beyond loopback (issue 19): a field office or an
offline deployment sees every operation of each service's API.

Debian's Chromium (`make test` installs it) is driven headless by Playwright. Every request
the page makes to anything but the service itself is refused and recorded: the page must
need none of them. A screenshot of each page is kept in the test's temporary directory.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Route, sync_playwright

from .conftest import SERVICES, Platform

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
#: As root in a sandbox with a closed network: no sandbox, no GPU, and none of Chromium's
#: own calls home (they would be refused, many at a time, at every start).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Names other than loopback do not resolve, so nothing can leave the machine.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert shutil.which(CHROMIUM), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_the_docs_page_lists_every_operation_with_no_network(
    platform: Platform, browser: Browser, service: str, tmp_path: Path
) -> None:
    base = platform.url(service)
    operations = [
        f"{method.upper()} {path}"
        for path, methods in httpx.get(f"{base}/openapi.json").json()["paths"].items()
        for method in methods
    ]
    outside: list[str] = []

    def loopback_only(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page = browser.new_page(viewport={"width": 1280, "height": 2000})
    try:
        page.route("**/*", loopback_only)
        page.goto(f"{base}/docs", wait_until="networkidle")
        page.wait_for_selector(".opblock", timeout=15_000)
        shown = [
            " ".join(page_text.split())
            for page_text in page.locator(".opblock-summary").all_inner_texts()
        ]
        page.screenshot(path=tmp_path / f"{service}-docs.png", full_page=True)
    finally:
        page.close()

    assert outside == [], "the page asked for something beyond loopback"
    assert len(shown) == len(operations)
    for operation in operations:
        method, path = operation.split(" ", 1)
        assert any(text.startswith(f"{method} {path}") for text in shown), operation
