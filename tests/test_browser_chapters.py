"""The chapter list in a real browser (system Chromium) on the real page served in this process: Make
chapters fills the list (with a sidecar .vtt's line under its chapter), choosing a chapter seeks the player and makes it the focus range, the player
gets a WebVTT chapters track, the .vtt/.srt/.json downloads are offered, and on a phone the list fits
the screen's width; a video of 3 minutes or more gets its chapters without a click."""

import os
import re
from pathlib import Path

import pytest
from browser import chromium, load, needs_chromium, open_tab
from videos import write_scene_video

from pllava_demo.studio import chapters_scope

pytestmark = needs_chromium
SCENES = [40, 60, 50]  # seconds: boundaries at 40 and 100


@pytest.fixture()
def browser():
    with chromium() as b:
        yield b


def test_chapter_list_seeks_sets_the_range_and_gives_a_track_and_downloads(live, browser, tmp_path):  # noqa: F811
    from playwright import sync_api

    demo, url = live
    tab = open_tab(browser, url)
    load(tab, write_scene_video(tmp_path / "scenes.webm", SCENES, fps=2, gop_s=4, webm=True))
    (studio,) = demo.registry.open_tabs()
    # 2:30 is short: no chapters unasked (the check that decides it may still show its timer: wait for it to end)
    sync_api.expect(tab.locator("#chapters-progress")).to_have_text("")
    side = tmp_path / "side.vtt"
    side.write_text("WEBVTT\n\n00:00:50.000 --> 00:00:52.000\na heron lands by the pond\n", encoding="utf-8")
    tab.locator("#chapters-subtitles input[type=file]").set_input_files(str(side))
    # uploaded: the file's row (gradio writes its name as "side" and ".vtt" in two cells' spans, a space
    # between them in the text: the uploaded box never holds "side.vtt" whole, so the old check passed only
    # on a state of the box before that, and failed once when the upload was done first)
    sync_api.expect(tab.locator("#chapters-subtitles .file-preview td.filename")).to_have_text(re.compile(r"side\s*\.vtt"))
    tab.locator("#chapters-make").click()
    sync_api.expect(tab.locator("#chapters-progress")).to_contain_text("3 of 3 captioned: done", timeout=120_000)
    options = tab.locator("#chapter-list label")
    sync_api.expect(options).to_have_count(3)
    second = options.nth(1).inner_text()
    assert second.startswith("0:4")  # the second scene starts at 0:40 (one step: 0:44)
    assert "a heron lands by the pond" in second  # the sidecar's line, under its chapter
    links = tab.locator("#chapter-files a")
    sync_api.expect(links).to_have_count(3)
    got = {}
    for k in range(3):
        with tab.expect_download() as info:
            links.nth(k).click()
        got[info.value.suggested_filename.rsplit(".", 1)[-1]] = open(info.value.path(), encoding="utf-8").read()
    assert sorted(got) == ["json", "srt", "vtt"]
    assert got["vtt"].startswith("WEBVTT") and got["srt"].startswith("1\n00:00:00,000 --> ")
    assert len(__import__("json").loads(got["json"])["chapters"]) == 3

    # the player's chapters track holds the three chapters
    tab.wait_for_function("""() => {
        const t = document.querySelector('#video-input video track[kind=chapters]');
        if (!t) return false;
        t.track.mode = 'hidden';
        return t.track.cues && t.track.cues.length === 3;
    }""")

    chapter = chapters_scope.tab(studio).chapters.chapters[1]
    tab.wait_for_function("() => document.querySelector('#video-input video')?.readyState >= 1")
    options.nth(1).click()
    tab.wait_for_function(
        f"() => Math.abs(document.querySelector('#video-input video').currentTime - {chapter.start}) < 0.1")
    sync_api.expect(tab.locator("#range-start :is(input, textarea)")).to_have_value(f"{chapter.start:g}", timeout=60_000)
    sync_api.expect(tab.locator("#range-end :is(input, textarea)")).to_have_value(f"{chapter.end:g}")
    sync_api.expect(tab.locator("#view-info")).to_contain_text(f"sampled from {chapter.start:g} s", timeout=60_000)
    assert studio.video.clip.time_range == (chapter.start, chapter.end)
    # PLLAVA_SCREENSHOTS=docs refreshes the README's picture of the chapter list
    folder = Path(os.environ.get("PLLAVA_SCREENSHOTS", tmp_path))
    tab.locator("#chapters").scroll_into_view_if_needed()
    tab.screenshot(path=str(folder / "screenshot-chapters.png"))
    assert (folder / "screenshot-chapters.png").stat().st_size > 10_000

    tab.set_viewport_size({"width": 390, "height": 844})  # a phone: the list fits the width
    box = tab.locator("#chapter-list").evaluate("e => e.getBoundingClientRect().toJSON()")
    assert box["left"] >= 0 and box["right"] <= 390
    assert tab.evaluate("() => document.documentElement.scrollWidth") <= 390


def test_a_long_video_gets_its_chapters_without_a_click(live, browser, tmp_path):  # noqa: F811
    from playwright import sync_api

    demo, url = live
    tab = open_tab(browser, url, 390, 844)  # on a phone
    load(tab, write_scene_video(tmp_path / "long.webm", [60, 70, 60], fps=1, gop_s=4, webm=True))  # 3:10
    sync_api.expect(tab.locator("#chapters-progress")).to_contain_text("3 of 3 captioned: done", timeout=120_000)
    sync_api.expect(tab.locator("#chapter-list label")).to_have_count(3)
    sync_api.expect(tab.locator("#chapters-make")).to_be_visible()  # back for a rerun (it hits the cache)
    assert tab.evaluate("() => document.documentElement.scrollWidth") <= 390
