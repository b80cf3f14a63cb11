"""The one way the browser tests open the app: system Chromium, headless, through Playwright.

`chromium()` is a browser; `open_tab(browser, url, ...)` a tab on the app at a given size, returned
once the model is loaded (the model line says so); `app_tab(url, ...)` both in one. `needs_chromium`
marks a test module that cannot run without /usr/bin/chromium (.ci/run installs it).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
needs_chromium = [pytest.mark.browser,
                  pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                     reason="system chromium (/usr/bin/chromium) is not installed")]


_SESSION: list = []  # [playwright, browser]: the test process's one Chromium, started on first use


def _browser():
    if not _SESSION:
        sync_api = pytest.importorskip("playwright.sync_api")
        p = sync_api.sync_playwright().start()
        _SESSION.extend([p, p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)])
    return _SESSION[1]


def close_chromium() -> None:
    """Close the one browser (conftest calls it when the session ends)."""
    if _SESSION:
        p, b = _SESSION
        _SESSION.clear()
        b.close()
        p.stop()


@contextlib.contextmanager
def chromium():
    """The test process's one headless Chromium: Playwright's sync API cannot run twice at once in a
    thread (a module's browser beside the session's failed every later module's), and one start serves
    every test. Each test's tabs are new pages, each a context of its own; those opened inside this
    block are closed at its end."""
    b = _browser()
    before = set(b.contexts)
    try:
        yield b
    finally:
        for context in [c for c in b.contexts if c not in before]:
            context.close()


def open_tab(browser, url: str, width: int = 1400, height: int = 1250, *, timeout_ms: int = 30_000,
             ready: bool = True, **context):
    """A new tab on `url`; with `ready`, returned once the model line says the model is loaded.
    `context`: Playwright page options (color_scheme="dark", ...)."""
    from playwright import sync_api

    tab = browser.new_page(viewport={"width": width, "height": height}, **context)
    tab.set_default_timeout(timeout_ms)
    tab.goto(url)
    if ready:
        sync_api.expect(tab.locator("#model-status")).to_contain_text("Model:", timeout=60_000)
    return tab


@contextlib.contextmanager
def app_tab(url: str, width: int = 1400, height: int = 1250, **kwargs):
    """A browser with one tab on the app (open_tab's options); closed at the end of the block."""
    with chromium() as b:
        yield open_tab(b, url, width, height, **kwargs)
