"""A real browser (system Chromium, headless, through Playwright) uses the real app: upload a video,
ask, watch the answer stream in, see the frame gallery, move the frames slider. Saves
docs/screenshot.png for the README."""

import os
from pathlib import Path

import pytest
from ui_server import ROOT, running_app
from videos import write_video

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="system chromium (/usr/bin/chromium) is not installed")]


@pytest.fixture(scope="module")
def page_url(tiny_official, tmp_path_factory):
    log = tmp_path_factory.mktemp("browser") / "app.log"
    with running_app(tiny_official, log) as url:
        yield url


def test_upload_ask_stream_gallery_and_frames_slider(page_url, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    video = write_video(tmp_path / "ball.mp4", n_frames=48, width=192, height=144, pattern="colour")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1250})
            page.set_default_timeout(30_000)
            page.goto(page_url)
            status = page.locator("#model-status")
            sync_api.expect(status).to_contain_text("Model:", timeout=60_000)
            sync_api.expect(status).to_contain_text("tiny random test model")

            page.locator("#video-input input[type=file]").set_input_files(str(video))
            gallery = page.locator("#frames img")
            sync_api.expect(gallery).to_have_count(16, timeout=60_000)  # the checkpoint's 16 frames
            sync_api.expect(page.locator("#view-info")).to_contain_text("visual tokens")

            # record every text the answer shows, to see it grow while it streams
            page.evaluate("""() => {
                window.__seen = new Set();
                const chat = document.querySelector('#chat');
                new MutationObserver(() => {
                    const bots = chat.querySelectorAll('.bot, [data-testid=bot]');
                    if (bots.length) window.__seen.add(bots[bots.length - 1].innerText.trim());
                }).observe(chat, {subtree: true, childList: true, characterData: true});
            }""")
            page.locator("#question textarea").fill("What is the ball doing?")
            page.locator("#send").click()
            chat = page.locator("#chat")
            sync_api.expect(chat).to_contain_text("What is the ball doing?")
            bot = chat.locator(".bot, [data-testid=bot]").last
            sync_api.expect(bot).not_to_be_empty(timeout=60_000)
            page.wait_for_timeout(1500)  # let it finish
            final = bot.inner_text().strip()
            seen = [t for t in page.evaluate("() => [...window.__seen]") if t]
            assert final and final in seen
            assert len(seen) >= 2 and any(final.startswith(t) and t != final for t in seen), seen

            frames_box = page.locator("#frames-slider input[type=number]")
            frames_box.fill("6")
            frames_box.press("Enter")
            sync_api.expect(gallery).to_have_count(6, timeout=60_000)
            sync_api.expect(page.locator("#view-info")).to_contain_text("6 frames")
            # PLLAVA_SCREENSHOT=docs/screenshot.png refreshes the README's picture; by default it stays out of the tree.
            shot = Path(os.environ.get("PLLAVA_SCREENSHOT", tmp_path / "screenshot.png"))
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()
