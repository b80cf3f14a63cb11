"""A real browser (system Chromium, headless, through Playwright) uses the real app: upload a video,
ask, watch the answer stream in, see the frame gallery, move the frames slider; Compare, Regenerate,
Clear and a bad file; nothing a person does loses their chat. PLLAVA_SCREENSHOTS=docs refreshes the
README's pictures."""

import os
from pathlib import Path

import pytest
from browser import answered, app_tab, event_id, load, needs_chromium, open_generation, set_number, state
from gate import held, wait_held
from ui_server import app_process, running_app
from videos import write_video

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def page_server(tiny_official, tmp_path_factory, gate):
    """(url, process) of the app the browser tests share; answers wait mid-stream while a test holds
    the gate (browser.held)."""
    log = tmp_path_factory.mktemp("browser") / "app.log"
    # answers up to 4,000 tokens, so the tests can act while one streams (the tiny model writes ~1,000 a second)
    with app_process(tiny_official, log, "--max-new-tokens", "4000", env={"PLLAVA_TEST_GATE": str(gate)}) as (url, proc):
        yield url, proc


@pytest.fixture(scope="module")
def page_url(page_server):
    return page_server[0]


def watch_last_answer(page) -> None:
    """Record in window.__seen every text the chat's last answer shows, to see it grow while it streams."""
    page.evaluate("""() => {
        window.__seen = new Set();
        const chat = document.querySelector('#chat');
        new MutationObserver(() => {
            const bots = chat.querySelectorAll('[data-testid=bot]');
            if (bots.length) window.__seen.add(bots[bots.length - 1].innerText.trim());
        }).observe(chat, {subtree: true, childList: true, characterData: true});
    }""")


@pytest.fixture()
def page(page_url):
    """A fresh headless Chromium tab on the app, once the model is loaded."""
    with app_tab(page_url) as tab:
        yield tab


def test_upload_ask_stream_gallery_and_frames_slider(page, tmp_path):
    from playwright import sync_api

    video = write_video(tmp_path / "ball.mp4", n_frames=48, width=192, height=144, pattern="colour")
    status = page.locator("#model-status")
    sync_api.expect(status).to_contain_text("Model:", timeout=60_000)
    sync_api.expect(status).to_contain_text("tiny random test model")

    page.locator("#video-input input[type=file]").set_input_files(str(video))
    gallery = page.locator("#frames img")
    sync_api.expect(gallery).to_have_count(16, timeout=60_000)  # the checkpoint's 16 frames
    sync_api.expect(page.locator("#view-info")).to_contain_text("visual tokens")

    watch_last_answer(page)
    page.locator("#question textarea").fill("What is the ball doing?")
    page.locator("#send").click()
    chat = page.locator("#chat")
    sync_api.expect(chat).to_contain_text("What is the ball doing?")
    bot = chat.locator(".bot, [data-testid=bot]").last
    sync_api.expect(bot).not_to_be_empty(timeout=60_000)
    sync_api.expect(page.locator('#page-state [data-answering="0"][data-turns="1"]')).to_have_count(1, timeout=60_000)
    final = bot.inner_text().strip()
    seen = [t for t in page.evaluate("() => [...window.__seen]") if t]
    assert final and final in seen
    assert len(seen) >= 2 and any(final.startswith(t) and t != final for t in seen), seen

    frames_box = page.locator("#frames-slider input[type=number]")
    frames_box.fill("6")
    frames_box.press("Enter")
    sync_api.expect(gallery).to_have_count(6, timeout=60_000)
    sync_api.expect(page.locator("#view-info")).to_contain_text("6 frames")
    # PLLAVA_SCREENSHOTS=docs refreshes the README's pictures (desktop and phone); by default they stay out of the tree.
    folder = Path(os.environ.get("PLLAVA_SCREENSHOTS", tmp_path))
    page.mouse.move(0, 0)  # the pointer left on Send made it look pale (hovered) in the pictures
    page.set_viewport_size({"width": 1440, "height": 900})
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(folder / "screenshot.png"))
    page.set_viewport_size({"width": 390, "height": 844})
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(folder / "screenshot-phone.png"))
    assert (folder / "screenshot.png").stat().st_size > 10_000 and (folder / "screenshot-phone.png").stat().st_size > 10_000


def test_compare_regenerate_clear_and_a_readable_error(page, tmp_path):
    """The other chat controls in the page: Compare shows A and B side by side, Regenerate replaces the
    last answer (not adds one), Clear empties the chat, and a bad file shows one sentence (no traceback)."""
    from playwright import sync_api

    video = write_video(tmp_path / "clip.mp4", n_frames=24, width=160, height=120)
    bad = tmp_path / "notes.mp4"
    bad.write_text("<html>not a video</html>")
    page.get_by_role("tab", name="Image or GIF").click()
    page.locator("#file-input input[type=file]").set_input_files(str(bad))
    notice = page.locator("#notice")  # the one place for messages: no toast, no red "Error" pills
    sync_api.expect(notice).to_contain_text("not a video or an image", timeout=30_000)
    assert "Traceback" not in page.content()
    assert page.locator(".toast-body, [data-testid=toast-body]").count() == 0
    assert page.get_by_text("Error", exact=True).count() == 0

    page.get_by_role("tab", name="Video").click()
    page.locator("#video-input input[type=file]").set_input_files(str(video))
    sync_api.expect(page.locator("#frames img")).to_have_count(16, timeout=60_000)
    page.locator("#question textarea").fill("What moves?")
    page.locator("#send").click()
    chat = page.locator("#chat")
    bots = chat.locator("[data-testid=bot]")  # one per answer
    sync_api.expect(bots).to_have_count(1, timeout=60_000)
    sync_api.expect(bots.last).not_to_be_empty(timeout=60_000)

    page.get_by_text("Compare: re-ask the last question with other settings").click()
    page.locator("#compare").click()
    sync_api.expect(page.locator("#compare-a")).to_contain_text("A: 16 frames, pooling 16x12x12, alpha 4",
                                                              timeout=60_000)
    sync_api.expect(page.locator("#compare-b")).to_contain_text("B: 16 frames, pooling 16x6x6, alpha 20",
                                                              timeout=60_000)

    watch_last_answer(page)
    before = event_id(page)
    page.locator("#regenerate").click()
    state(page, answering=False, turns=1, after=before)  # the answer was generated again, and has ended
    # it streamed: the last message showed more than one text on the way
    assert page.evaluate("() => window.__seen.size") >= 2
    sync_api.expect(chat).to_contain_text("What moves?")
    assert bots.count() == 1 and chat.get_by_text("What moves?").count() == 1

    page.locator("#clear").click()
    sync_api.expect(bots).to_have_count(0, timeout=30_000)


# -- nothing a person does loses their chat ------------------------------------------------------
def long_answers(page, video: Path, tokens: int = 4000) -> None:
    """Loads `video` for long answers, so the test can act while one streams: as many tokens as the
    context leaves (about 1,700 after the video's 2,304), where the page's default is 512. Generation is
    opened first and its box filled after the upload (see browser.open_generation: typed right after the
    opening, gradio's replay of the stored values put 48 back in one clean-clone run). Send reads the
    sliders themselves: the box's value is what counts."""
    open_generation(page)
    load(page, video)
    set_number(page, "max-new", tokens)


def streaming(page) -> None:
    """Returns once the last answer has shown two different texts (watch_last_answer was called
    before the question was sent): it is streaming now, answers being long."""
    page.wait_for_function("() => window.__seen.size >= 2", timeout=60_000)




def questions(page) -> list[str]:
    return [t.strip() for t in page.locator("#chat [data-testid=user]").all_inner_texts()]


def answers(page) -> list[str]:
    return [t.strip() for t in page.locator("#chat [data-testid=bot]").all_inner_texts()]




def test_follow_ups_sent_mid_stream_lose_nothing(page, gate, tmp_path):
    """Enter while an answer streams: Send has become Stop, the follow-up stays in the box marked as
    queued and is asked when the answer ends; every question and answer is still there at the end."""
    from playwright import sync_api

    long_answers(page, write_video(tmp_path / "a.mp4", n_frames=24, width=160, height=120))
    box = page.locator("#question textarea")
    box.fill("First question?")
    watch_last_answer(page)
    with held(gate):  # the answer cannot end while the test acts on it
        page.locator("#send").click()
        sync_api.expect(box).to_have_value("")  # cleared once, when accepted
        wait_held(gate)
        state(page, answering=True, turns=0)
        sync_api.expect(page.locator("#send")).to_be_hidden()  # Send became Stop
        sync_api.expect(page.locator("#stop")).to_be_visible()
        sync_api.expect(page.locator("#regenerate")).to_be_disabled()
        box.fill("Second question?")
        box.press("Enter")  # mid-stream: queued, shown as queued, asked once this answer ends
        sync_api.expect(page.locator("#queued-note")).to_contain_text("Queued")
        sync_api.expect(box).to_have_value("Second question?")  # never cleared while it waits
    answered(page, 2)  # the first answer ended, and the queued question was asked by itself
    assert questions(page) == ["First question?", "Second question?"] and answers(page)[0]
    box.fill("Third question?")
    page.locator("#send").click()
    answered(page, 3)
    assert questions(page) == ["First question?", "Second question?", "Third question?"]
    assert all(answers(page)), answers(page)


def test_new_video_mid_stream_starts_a_new_chat(page, tmp_path):
    """A new video uploaded while an answer about the old one streams: the old turns are gone for the
    model too (the next question is the only turn), and the old answer does not come back."""
    from playwright import sync_api

    long_answers(page, write_video(tmp_path / "old.mp4", n_frames=24, width=160, height=120))
    box = page.locator("#question textarea")
    box.fill("About the old video?")
    page.locator("#send").click()
    answered(page, 1)
    box.fill("More about the old video?")
    watch_last_answer(page)
    page.locator("#send").click()
    streaming(page)
    page.get_by_role("tab", name="Image or GIF").click()
    page.locator("#file-input input[type=file]").set_input_files(
        str(write_video(tmp_path / "new.mp4", n_frames=30, width=128, height=96, pattern="colour")))
    sync_api.expect(page.locator("#chat [data-testid=bot]")).to_have_count(0, timeout=60_000)  # a new chat
    sync_api.expect(page.locator("#send")).to_be_visible(timeout=60_000)
    box.fill("About the new video?")
    page.locator("#send").click()
    answered(page, 1)
    assert questions(page) == ["About the new video?"]


def test_the_chat_trash_icon_clears_it_for_the_model_too(page, tmp_path):
    from playwright import sync_api

    load(page, write_video(tmp_path / "c.mp4", n_frames=24, width=160, height=120))
    box = page.locator("#question textarea")
    box.fill("Before the trash?")
    page.locator("#send").click()
    answered(page, 1)
    page.locator("#chat").get_by_role("button", name="Clear").click()
    sync_api.expect(page.locator("#chat [data-testid=bot]")).to_have_count(0)
    box.fill("After the trash?")
    page.locator("#send").click()
    answered(page, 1)
    assert questions(page) == ["After the trash?"]


def test_a_model_that_cannot_load_says_what_to_do_next(tmp_path):
    """The model's failure is one readable line that names a way forward, and the chat and the examples
    are greyed out (nothing to click that cannot work)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with running_app(tmp_path / "no-such-model", tmp_path / "app.log") as url, app_tab(url, 1440, 900, ready=False) as tab:
        status = tab.locator("#model-status")
        sync_api.expect(status).to_contain_text("failed to load", timeout=60_000)
        sync_api.expect(status).to_contain_text("python -m pllava_demo make-tiny ./tiny")
        sync_api.expect(tab.locator("#question textarea")).to_be_disabled()
        sync_api.expect(tab.locator("#send")).to_be_disabled()
        assert tab.get_by_role("button", name="Bouncing ball").count() == 0
        assert status.is_visible() and tab.locator(".toast-body, [data-testid=toast-body]").count() == 0
