"""End-to-end fixtures: the real site in a subprocess, Debian Chromium driven by Playwright, offline.

The server starts the way the README does it (`nic serve`, or `python -m nic_site` where the console
script is not installed) on a free 127.0.0.1 port. It encodes the Kodak samples on first start into
build/e2e-cache/ with effort "none" (seconds per image instead of a minute; set NIC_ENCODE_EFFORT to
override); later runs reuse the cache. Every browser context aborts, and records, any request whose host
is not 127.0.0.1; a test fails if one happened or if a page had an uncaught error or unhandled rejection.
"""

from __future__ import annotations

from collections.abc import Iterator
import hashlib
import os
from pathlib import Path
import time
from typing import Any
from urllib.parse import urlparse

from nic_e2e import ROOT, fetch_bytes, fetch_json
import pytest

from bench.site_server import running_site

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
               "--no-first-run", "--disable-sync", "--disable-quic"]
# First start encodes 18 images; on 2 busy cores that takes minutes, and more with effort "fast".
STARTUP_TIMEOUT_S = float(os.environ.get("NIC_E2E_STARTUP_TIMEOUT", 1800))
PAGE_TIMEOUT_MS = 300_000


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The first e2e test also waits for the server's first start (it encodes every sample), which can
    # exceed the suite-wide 600 s timeout on a busy 2-core machine.
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.timeout(STARTUP_TIMEOUT_S + 900))


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    """Base URL of a running `nic serve` (default Kodak samples)."""
    if not (ROOT / "build" / "web" / "manifest.json").is_file():
        pytest.fail("browser runtime missing: run scripts/setup_web.sh (./dev test does)")
    try:
        with running_site(ROOT / "build" / "e2e-cache", STARTUP_TIMEOUT_S) as url:
            yield url
    except RuntimeError as e:
        pytest.fail(str(e))


@pytest.fixture(scope="session")
def catalog(server: str) -> list[dict]:
    entries = fetch_json(server + "/catalog.json")["entries"]
    assert entries, "the site shows no images"
    return entries


@pytest.fixture(scope="session")
def cpython_hashes(server: str, catalog: list[dict]) -> dict[str, str]:
    """sha256 of CPython's webdecoder.decode RGB bytes for every gallery .nic, by entry key."""
    import webdecoder

    out = {}
    for e in catalog:
        rgb = webdecoder.decode(fetch_bytes(server + e["nic"]["url"]))
        assert rgb.dtype.name == "uint8" and rgb.shape == (e["height"], e["width"], 3)
        out[e["key"]] = hashlib.sha256(rgb.tobytes()).hexdigest()
    return out


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} missing: apt-get install -y chromium (./dev test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield b
        b.close()


class Guard:
    """Offline proof and error collection for one browser context."""

    def __init__(self) -> None:
        self.foreign: list[str] = []
        self.local = 0
        self.page_errors: list[str] = []
        self.console_errors: list[str] = []

    def route(self, route: Any) -> None:
        if urlparse(route.request.url).hostname == "127.0.0.1" or route.request.url.startswith(("blob:", "data:")):
            self.local += 1
            route.continue_()
        else:
            self.foreign.append(route.request.url)
            route.abort()

    def watch(self, page: Any) -> Any:
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        page.wait_for_function = lambda expression, arg=None, timeout=None, polling=None: _wait_for_function(
            page, expression, arg, timeout)
        return page


def _wait_for_function(page: Any, expression: str, arg: Any = None, timeout: float | None = None) -> None:
    """CSP-safe `page.wait_for_function`: Playwright's runs its predicate through eval() inside the page,
    which the site's Content-Security-Policy (no 'unsafe-eval', on purpose) refuses; `page.evaluate` goes
    through the DevTools protocol, which CSP does not govern. Polls every 100 ms."""
    deadline = time.monotonic() + (PAGE_TIMEOUT_MS if timeout is None else timeout) / 1000
    while not page.evaluate(expression, arg):
        if time.monotonic() > deadline:
            raise TimeoutError(f"wait_for_function timed out: {expression[:120]}")
        page.wait_for_timeout(100)


@pytest.fixture
def ctx(browser: Any) -> Iterator[tuple[Any, Guard]]:
    """A fresh browser context (empty cache, like a first-time visitor) with the offline guard."""
    guard = Guard()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route("**/*", guard.route)
    yield context, guard
    context.close()
    assert not guard.foreign, f"requests left 127.0.0.1: {guard.foreign}"
    assert not guard.page_errors, f"uncaught page errors / unhandled rejections: {guard.page_errors}"
    # The site sends a Content-Security-Policy: anything it blocks is a bug (in the policy or the page).
    blocked = [m for m in guard.console_errors if "Content Security Policy" in m]
    assert not blocked, f"CSP violations: {blocked}"


@pytest.fixture
def page(ctx: tuple[Any, Guard]) -> Any:
    context, guard = ctx
    return guard.watch(context.new_page())
