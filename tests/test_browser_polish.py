"""The page's last rough edges, in real headless Chromium at 1440x900: an over-size file is one
sentence in the message line and the box stays usable; a keyboard upload leaves the focus in the
question box; quick pooling moves leave the panel showing the pooling in effect; the strategy
selector, the alpha slider and TS-LLaVA's knobs show whole, its token knob stops at the context;
progress shown on the gallery alone while frames are decoded; no camera source without a camera, and with one the source buttons inside the video box in every state;
the "Chat" label covers no message; a Hebrew question reads
right to left.

Waits are on the page's state (#page-state, ui/page_state.py) or on what a person sees; no
assertion follows a bare sleep.
"""

from __future__ import annotations

import pytest
from browser import answered, chromium_with_camera, load, needs_chromium, open_tab, tab_on
from ui_server import app_process
from videos import write_video

pytestmark = needs_chromium

MAX_FILE_MB = 1  # the server's limit here: the test videos are far smaller, the over-size file larger


@pytest.fixture(scope="module")
def polish_url(tiny_official, tmp_path_factory):
    log = tmp_path_factory.mktemp("polish") / "app.log"
    with app_process(tiny_official, log, "--max-file-size", str(MAX_FILE_MB)) as (url, _):
        yield url


@pytest.fixture()
def tab(shared_browser, polish_url):
    with tab_on(shared_browser, polish_url) as page:
        yield page


def test_an_oversize_file_is_one_sentence_and_the_box_stays_usable(tab, tmp_path):
    from playwright import sync_api

    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (MAX_FILE_MB * 2**20 + 300_000))
    tab.locator("#video-input input[type=file]").set_input_files(str(big))
    line = tab.locator("#notice-row")
    sync_api.expect(line).to_contain_text(f"The file is 1.3 MB; the limit is {MAX_FILE_MB} MB.")
    sync_api.expect(tab.locator("#notice-live")).to_contain_text("the limit is")  # announced too
    assert tab.locator(".toast-body:visible").count() == 0  # no pop-up
    assert "Error" not in tab.locator("#video-input").inner_text()  # no red "Error" on the box
    load(tab, write_video(tmp_path / "good.mp4", n_frames=24, width=160, height=120))  # the box takes a file
    sync_api.expect(line).not_to_contain_text("the limit is")  # the refusal is gone with the next file


def test_a_keyboard_upload_gives_the_focus_to_the_question_box(tab, tmp_path):
    from playwright import sync_api

    video = write_video(tmp_path / "k.mp4", n_frames=24, width=160, height=120)
    button = tab.locator("#video-input button.upload-container, #video-input button[aria-label*='upload']").first
    sync_api.expect(button).to_be_enabled()  # the box takes files (the model is ready)
    # focus and Enter in one locator action: a box re-drawn in between (it turns interactive when the model
    # is ready) would otherwise leave the focus on the page's body and Enter would open nothing
    with tab.expect_file_chooser(timeout=60_000) as chooser:
        button.press("Enter")
    chooser.value.set_files(str(video))
    sync_api.expect(tab.locator("#frames img")).to_have_count(16, timeout=60_000)
    sync_api.expect(tab.locator("#question textarea")).to_be_focused()  # not the page's body


# h' then, a moment later (its event sent, with the old w'), w'
SET_BOTH_JS = """async ([h, w]) => {
    for (const [knob, value] of [['#pool-h', h], ['#pool-w', w]]) {
        const box = document.querySelector(`${knob} input[type=number]`);
        box.value = String(value);
        box.dispatchEvent(new Event('input', {bubbles: true}));
        await new Promise((done) => setTimeout(done, 15));
    }
}"""


def test_quick_pooling_moves_leave_the_panel_showing_what_is_in_effect(tab, tmp_path):
    """h' and w' moved in the same instant (a person dragging one, then the other, on a busy server):
    two events at once, each with the values it was sent. With a listener per slider they ran side by
    side and the older could finish last, leaving the panel (and the settings) at an older pooling."""
    from playwright import sync_api

    load(tab, write_video(tmp_path / "p.mp4", n_frames=24, width=160, height=120))
    view = tab.locator("#view-info")
    for h, w in ((1, 2), (3, 1), (2, 5), (6, 3), (4, 4), (5, 2)):
        tab.evaluate(SET_BOTH_JS, [h, w])
        sync_api.expect(tab.locator("#pool-w input[type=number]")).to_have_value(str(w))
        sync_api.expect(view).to_contain_text(f"pooling 16×{h}×{w} = {16 * h * w} visual tokens", timeout=30_000)
    # the last word: a question is answered after every pooling event, and the panel still says 16x5x2
    tab.locator("#question textarea").fill("What is in effect?")
    tab.locator("#send").click()
    answered(tab, 1)
    sync_api.expect(view).to_contain_text("pooling 16×5×2 = 160 visual tokens")


def test_the_settings_show_whole_at_1440_and_the_token_knob_stops_at_the_context(tab):
    from playwright import sync_api

    def overflows(selector: str) -> bool:
        return tab.evaluate(f"() => {{ const e = document.querySelector('{selector}'); "
                            "return e.scrollWidth > e.clientWidth + 1; }")

    assert not overflows("#alpha")  # the slider's end ("32") is in its box
    tab.locator("#strategy input").click()
    tab.get_by_role("option", name="Thumbnail + sampling (TS-LLaVA)").click()
    sync_api.expect(tab.locator("#knob-sampled-tokens")).to_be_visible()
    assert not overflows("#strategy input")  # "Thumbnail + sampling (TS-LLaVA)" whole
    for knob in ("#knob-thumb-frames", "#knob-sampled-tokens"):
        label = tab.locator(f"{knob} [data-testid=block-info]").first
        lines = label.evaluate("(e) => Math.round(e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight))")
        assert lines <= 3, (knob, lines)  # five before
    assert tab.locator("#knob-sampled-tokens input[type=range]").get_attribute("max") == "4096"  # the context


# every panel that showed a progress tracker (gradio's status tracker without its `hide` class), by id
PROGRESS_SPY_JS = """() => {
    window.__progress = new Set();
    const note = () => document.querySelectorAll('[data-testid=status-tracker]:not(.hide)').forEach((t) => {
        const block = t.closest('[id]');
        if (block && t.checkVisibility()) window.__progress.add(block.id);
    });
    new MutationObserver(note).observe(document.body,
        {subtree: true, childList: true, attributes: true, attributeFilter: ['class']});
}"""


def test_decoding_shows_one_progress_on_the_gallery(tab, tmp_path):
    """An upload and a new frame count decode the video again and write six panels (the gallery, the
    settings, the panel's text, the heat map, the message line, the strategy's picture): the progress
    was drawn on all six at once. It is drawn on the frames being decoded alone."""
    from playwright import sync_api

    tab.evaluate(PROGRESS_SPY_JS)
    load(tab, write_video(tmp_path / "p.mp4", n_frames=48, width=640, height=360))
    assert tab.evaluate("() => [...window.__progress]") == ["frames"]
    tab.evaluate("() => window.__progress.clear()")
    frames = tab.locator("#frames-slider input[type=number]")
    frames.fill("8")
    frames.press("Enter")
    sync_api.expect(tab.locator("#frames img")).to_have_count(8, timeout=60_000)
    assert tab.evaluate("() => [...window.__progress]") == ["frames"]


def test_no_camera_source_without_a_camera(tab):
    from playwright import sync_api

    assert tab.evaluate("async () => (await navigator.mediaDevices.enumerateDevices()).filter("
                        "(d) => d.kind === 'videoinput').length") == 0  # headless Chromium has none
    sync_api.expect(tab.get_by_role("button", name="Capture from camera")).to_be_hidden()


def test_with_a_camera_the_source_buttons_lie_inside_the_video_box(polish_url, tmp_path):
    """With a webcam the box has two sources, Upload file and Capture from camera, in a row under it.
    gradio (6.31) gives the drop area, the camera view and the player the whole box's height and puts
    the row under them: the row was cut in half below the box (the box clips), the box scrolled inside
    itself when it took the focus, and after choosing the camera its "Click to Access Webcam" overlay
    covered the row, so "Upload file" could not be clicked back (style.css: #video-input)."""
    from playwright import sync_api

    def row_inside(tab, state: str) -> None:
        box = tab.locator("#video-input").bounding_box()
        for name in ("Upload file", "Capture from camera"):
            button = tab.locator("#video-input").get_by_role("button", name=name)
            b = button.bounding_box()
            assert box["y"] <= b["y"] and b["y"] + b["height"] <= box["y"] + box["height"], (state, name, b, box)
            button.click(trial=True, timeout=3_000)  # only the checks: visible, stable and nothing over it
        assert tab.locator("#video-input").evaluate("(e) => e.scrollTop") == 0, state  # not scrolled inside

    video = write_video(tmp_path / "c.mp4", n_frames=24, width=320, height=240)
    with chromium_with_camera() as b:
        for width, height, scheme in ((1440, 900, "light"), (390, 844, "dark")):
            tab = open_tab(b, polish_url, width, height, color_scheme=scheme, permissions=["camera"])
            row_inside(tab, "empty")
            tab.locator("#video-input").get_by_role("button", name="Capture from camera").click()
            access = tab.locator("#video-input").get_by_text("Click to Access Webcam")
            row_inside(tab, "camera chosen")
            access.click()
            record = tab.locator("#video-input").get_by_role("button", name="Record")
            sync_api.expect(record).to_be_visible()  # the camera's picture, with its Record button
            r, box = record.bounding_box(), tab.locator("#video-input").bounding_box()
            assert r["y"] + r["height"] <= box["y"] + box["height"], (r, box)
            row_inside(tab, "camera on")
            tab.locator("#video-input").get_by_role("button", name="Upload file").click()  # back to a file
            load(tab, video)
            row_inside(tab, "video loaded")
            player = tab.locator("#video-input video").bounding_box()
            assert box["y"] <= player["y"], (player, box)  # the player starts in the box, not above it
            tab.close()


def test_the_chat_label_covers_no_message_and_a_hebrew_question_reads_right_to_left(tab, tmp_path):
    load(tab, write_video(tmp_path / "h.mp4", n_frames=24, width=160, height=120))
    question = "מה קורה בסרטון?"
    tab.locator("#question textarea").fill(question)
    tab.locator("#send").click()
    answered(tab, 1)
    # the messages scroll in a box that starts under the label: none passes behind it, the first included
    label = tab.locator("#chat [data-testid=block-label]").bounding_box()
    scrolled = tab.locator("#chat .bubble-wrap").bounding_box()
    assert label["y"] + label["height"] <= scrolled["y"], (label, scrolled)
    # right to left: the text ends at the bubble's right edge and its "?" is the leftmost character
    direction = tab.locator("#chat [data-testid=user] .message-content").first.evaluate(
        "(e) => getComputedStyle(e).direction")
    assert direction == "rtl"
    assert tab.locator("#chat [data-testid=user]").first.inner_text().strip() == question
