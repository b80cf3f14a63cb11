"""The one way the browser tests open the app: system Chromium, headless, through Playwright.

`chromium()` is a browser; `open_tab(browser, url, ...)` a tab on the app at a given size, returned
once the model is loaded (the model line says so); `app_tab(url, ...)` both in one;
`open_generation(tab)` the Generation settings, safely. `needs_chromium` marks a test module that
cannot run without /usr/bin/chromium (.ci/run installs it); `chromium_with_camera()` is a browser with a
fake webcam. `state(tab, ...)` waits for the page's
machine-readable state (answering, turns, event id); `held(gate)` holds answers mid-stream through the
test gate (studio/test_gate.py; the `gate` fixture is a server's folder for it); `load`, `ask`,
`answered` and `set_number` are what a person does most.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from gate import held, wait_held

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
def chromium_with_camera():
    """A second headless Chromium with Chromium's own fake camera (a moving test pattern) and no
    permission prompt: the page as a visitor with a webcam sees it (the test process's one Chromium has
    no camera). Started from the same Playwright, closed at the end of the block."""
    _browser()  # the one Playwright, started if need be
    b = _SESSION[0].chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS + [
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
    try:
        yield b
    finally:
        b.close()


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


def open_generation(tab) -> None:
    """Opens the page's Generation settings, before anything else a test does there. gradio mounts a
    closed accordion's sliders on its first opening and then, some frames later, gives them again the
    values it stored for them (gradio 6.31's `render_previously_invisible_children`): a value typed in
    between is put back (seen as "Max new tokens" back at 48 in 2 of 16 runs of a tab opened while the
    model loaded). Opened first, the sliders have long settled by the time the test types into them."""
    tab.locator("#generation").get_by_text("Generation", exact=True).first.click()
    tab.locator("#max-new input[type=number]").wait_for()


@contextlib.contextmanager
def tab_on(browser, url: str, width: int = 1440, height: int = 900, **kwargs):
    """open_tab's tab (a fresh context) on `browser`, closed at the end of the block."""
    tab = open_tab(browser, url, width, height, **kwargs)
    try:
        yield tab
    finally:
        tab.close()


@contextlib.contextmanager
def app_tab(url: str, width: int = 1400, height: int = 1250, **kwargs):
    """A browser with one tab on the app (open_tab's options); closed at the end of the block."""
    with chromium() as b:
        yield open_tab(b, url, width, height, **kwargs)


# -- what the page is doing: its state element and the test gate ---------------------------------------
@contextlib.contextmanager
def answer_held(tab, gate: Path, question: str):
    """Sends `question` (the first of the chat) and runs the block while its answer is held mid-stream."""
    tab.locator("#question textarea").fill(question)
    with held(gate):
        tab.locator("#send").click()
        wait_held(gate)
        state(tab, answering=True, turns=0)
        yield


def state(tab, *, answering: bool, turns: int, after: int = -1) -> None:
    """Waits until the page's state (ui/page_state.py) says so, written by an event later than the
    one numbered `after` (event_id)."""
    tab.wait_for_function(
        """([answering, turns, after]) => {
            const s = document.querySelector('#page-state [data-answering]');
            return !!s && s.dataset.answering === answering && s.dataset.turns === turns && +s.dataset.event > after;
        }""", arg=[str(int(answering)), str(turns), after], timeout=120_000)


def event_id(tab) -> int:
    """The id of the last event that wrote the page's state."""
    return int(tab.locator("#page-state [data-event]").get_attribute("data-event"))


def turns(tab) -> int:
    """How many turns the page's chat has (its state element)."""
    return int(tab.locator("#page-state [data-turns]").get_attribute("data-turns"))


def answered(tab, count: int) -> None:
    """Waits until answer number `count` has ended (the page's state), then checks what a person sees:
    that many answers, and Send back in place of Stop."""
    from playwright import sync_api

    state(tab, answering=False, turns=count)
    sync_api.expect(tab.locator("#chat [data-testid=bot]")).to_have_count(count)
    sync_api.expect(tab.locator("#send")).to_be_visible()
    sync_api.expect(tab.locator("#stop")).to_be_hidden()


def ask(tab, question: str) -> None:
    """Sends `question` with Send and returns once its answer has ended."""
    count = turns(tab)
    tab.locator("#question textarea").fill(question)
    tab.locator("#send").click()
    answered(tab, count + 1)


def set_number(tab, knob: str, value) -> None:
    """Types `value` into the number box of the slider `#knob` and presses Enter, then waits until
    the box shows it (Send reads the sliders themselves: their values are what counts)."""
    from playwright import sync_api

    box = tab.locator(f"#{knob} input[type=number]")
    box.fill(str(value))
    box.press("Enter")
    sync_api.expect(box).to_have_value(str(value))


def load(tab, video: Path, frames: int = 16) -> None:
    """Uploads `video` in the Video box and waits for its sampled frames in the gallery."""
    from playwright import sync_api

    tab.locator("#video-input input[type=file]").set_input_files(str(video))
    sync_api.expect(tab.locator("#frames img")).to_have_count(frames, timeout=60_000)
