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


@contextlib.contextmanager
def chromium():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


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
