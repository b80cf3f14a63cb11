"""One current video, in real headless Chromium: a video from the "Image or GIF" tab is what the
player plays (and frame clicks seek), a video from the Video tab empties the other box; a refused
file is one sentence in the message line and leaves the box usable; a video cannot be dropped while
the model loads (the boxes take none, and the line says why), and the boxes open once it is ready.

Waits are on the page's state (#page-state, ui/page_state.py) or on what a person sees; a model
whose loading the test releases (its config.json is a pipe the test writes) stands for a 7B model
loading for minutes. No assertion follows a bare sleep.
"""

from __future__ import annotations

import os
import re
import shutil
import threading

import pytest
from browser import event_id, needs_chromium, open_tab, tab_on
from ui_server import app_process
from videos import write_video

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def upload_url(tiny_official, tmp_path_factory):
    log = tmp_path_factory.mktemp("upload") / "app.log"
    with app_process(tiny_official, log) as (url, _):
        yield url


@pytest.fixture()
def tab(shared_browser, upload_url):
    with tab_on(shared_browser, upload_url) as page:
        yield page


def wait_event_after(tab, seen: int) -> None:
    tab.wait_for_function(
        "(seen) => Number(document.querySelector('#page-state [data-event]')?.dataset.event) > seen", arg=seen,
        timeout=60_000)


def player_duration(tab) -> float:
    return tab.evaluate("() => document.querySelector('#video-input video')?.duration ?? null")


def test_a_video_from_the_image_or_gif_tab_is_the_one_the_player_plays(tab, tmp_path):
    from playwright import sync_api

    first = write_video(tmp_path / "first.mp4", n_frames=48, width=160, height=120)  # 2 s
    second = write_video(tmp_path / "second.mp4", n_frames=120, width=128, height=96, pattern="colour")  # 5 s
    tab.locator("#video-input input[type=file]").set_input_files(str(first))
    sync_api.expect(tab.locator("#frames img")).to_have_count(16, timeout=60_000)
    tab.wait_for_function("() => document.querySelector('#video-input video')?.duration > 1.9")

    seen = event_id(tab)
    tab.get_by_role("tab", name="Image or GIF").click()
    tab.locator("#file-input input[type=file]").set_input_files(str(second))
    wait_event_after(tab, seen)
    tab.get_by_role("tab", name="Video").click()
    # the player plays the 5 s video the model sees, not the 2 s one
    tab.wait_for_function("() => document.querySelector('#video-input video')?.duration > 4.9", timeout=60_000)

    seen = event_id(tab)
    tab.locator("#video-input button[aria-label='Clear'], #video-input button[title='Clear']").first.click()
    wait_event_after(tab, seen)  # the player emptied: the tab starts over, and the other box is empty too
    sync_api.expect(tab.locator("#frames img")).to_have_count(0)
    tab.get_by_role("tab", name="Image or GIF").click()
    sync_api.expect(tab.locator("#file-input input[type=file]")).to_have_count(1)  # empty, ready for a file


def test_a_refused_file_is_one_sentence_and_the_box_stays_usable(tab, tmp_path):
    from playwright import sync_api

    fake = tmp_path / "notes.mp4"
    fake.write_text("this is a text file, not a video\n" * 50)
    tab.locator("#video-input input[type=file]").set_input_files(str(fake))
    notice = tab.locator("#notice")
    sync_api.expect(notice).to_be_visible(timeout=60_000)
    text = notice.inner_text().strip()
    assert text.count(".") <= 2 and "\n" not in text, text  # one sentence
    sync_api.expect(tab.locator(".toast-body:visible")).to_have_count(0)  # no pop-up beside it
    sync_api.expect(tab.locator("#video-input input[type=file]")).to_have_count(1)  # the box takes a file again
    tab.locator("#video-input input[type=file]").set_input_files(
        str(write_video(tmp_path / "good.mp4", n_frames=24, width=160, height=120)))
    sync_api.expect(tab.locator("#frames img")).to_have_count(16, timeout=60_000)
    sync_api.expect(notice).to_be_hidden()
    assert "MB" in tab.locator("#video-input").inner_text()  # the limit is written beside the box


def test_no_video_is_taken_while_the_model_loads(tiny_official, shared_browser, tmp_path):
    """The checkpoint's config.json is a pipe: the model loads once the test writes it."""
    from playwright import sync_api

    model = tmp_path / "model"
    shutil.copytree(tiny_official, model)
    config = (model / "config.json").read_bytes()
    (model / "config.json").unlink()
    os.mkfifo(model / "config.json")
    released, done = threading.Event(), threading.Event()

    def reader_attached() -> bool:
        try:
            os.close(os.open(model / "config.json", os.O_WRONLY | os.O_NONBLOCK))
            return True
        except OSError:  # ENXIO: nobody has the pipe open for reading
            return False

    def release():  # each read of config.json opens the pipe anew: written once to each reader
        released.wait()
        while not done.is_set():
            with open(model / "config.json", "wb") as pipe:  # waits for a reader
                pipe.write(config)
            while reader_attached() and not done.is_set():  # that reader is done before the next is served
                done.wait(0.01)

    writer = threading.Thread(target=release, daemon=True)
    writer.start()
    try:
        with app_process(model, tmp_path / "app.log") as (url, _):
            tab = open_tab(shared_browser, url, 1440, 900, ready=False)
            try:
                sync_api.expect(tab.locator("#notice")).to_contain_text("loading", timeout=60_000)
                sync_api.expect(tab.locator("#video-input input[type=file]")).to_have_count(0)  # no drop target
                # nor a setting that the checkpoint's values would put back once they arrive
                checkpoint_set = [tab.locator(f"{s} input[type=number]") for s in
                                  ("#frames-slider", "#pool-t", "#pool-h", "#pool-w", "#alpha")]
                for box in checkpoint_set:
                    sync_api.expect(box).to_be_disabled()
                # the loading line's counter counts (it stayed at "(0 s)": the line was written once)
                sync_api.expect(tab.locator("#model-status [data-testid=markdown]")).to_contain_text(re.compile(r"\([1-9]\d* s\)"))
                released.set()
                sync_api.expect(tab.locator("#model-status")).to_contain_text("Model:", timeout=60_000)
                sync_api.expect(tab.locator("#notice")).to_be_hidden()  # "loading" is not said after it is ready
                for box in checkpoint_set:
                    sync_api.expect(box).to_be_enabled()
                tab.locator("#video-input input[type=file]").set_input_files(
                    str(write_video(tmp_path / "v.mp4", n_frames=24, width=160, height=120)))
                sync_api.expect(tab.locator("#frames img")).to_have_count(16, timeout=60_000)
            finally:
                tab.close()
    finally:
        done.set()
        released.set()
        reader = os.open(model / "config.json", os.O_RDONLY | os.O_NONBLOCK)  # lets a waiting writer go
        writer.join(10)
        os.close(reader)
