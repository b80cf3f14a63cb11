"""A real browser on the real app: Download chat gives the chat as files, a sampled frame clicked in
the gallery seeks the video player to its time, and times in an answer are links that seek it."""

import json

import pytest
from browser import answered, app_tab, ask, load
from test_browser import page, page_server, page_url, pytestmark  # noqa: F401  (fixtures and marks shared)
from videos import write_video




def test_download_chat_gives_markdown_and_json_with_the_settings(page, tmp_path):
    from playwright import sync_api

    load(page, write_video(tmp_path / "walk.mp4", n_frames=48, width=192, height=144, pattern="colour"))
    ask(page, "What is the ball doing?")
    page.locator("#download-chat").click()
    links = page.locator("#chat-files a")
    sync_api.expect(links).to_have_count(2, timeout=30_000)
    got = {}
    for k in range(2):
        with page.expect_download() as info:
            links.nth(k).click()
        name = info.value.suggested_filename
        got[name.rsplit(".", 1)[-1]] = open(info.value.path(), encoding="utf-8").read()
    record = json.loads(got["json"])
    (turn,) = record["turns"]
    assert turn["question"] == "What is the ball doing?"
    # the session holds a turn once its answer ended: the page shows that very answer
    sync_api.expect(page.locator("#chat [data-testid=bot]").last).to_have_text(turn["answer"].strip())
    assert turn["settings"]["frames"] == 16 and len(turn["settings"]["timestamps_s"]) == 16
    assert turn["settings"]["video"] == "walk.mp4" and turn["settings"]["range_s"] is None
    assert "> What is the ball doing?" in got["md"] and "16 frames of walk.mp4 (whole video)" in got["md"]


@pytest.fixture()
def tab(live):
    with app_tab(live[1]) as t:
        yield t


def player_time(tab) -> float:
    return tab.evaluate("() => document.querySelector('#video-input video').currentTime")


def test_clicking_a_frame_seeks_the_player_to_its_time(live, tab, tmp_path):
    load(tab, write_video(tmp_path / "frames.mp4", n_frames=60, width=192, height=144, pattern="colour"))
    (studio,) = live[0].registry.open_tabs()
    times = studio.video.clip.timestamps
    tab.wait_for_function("() => document.querySelector('#video-input video')?.readyState >= 1")
    for k in (11, 3):
        tab.locator("#frames img").nth(k).click()
        tab.wait_for_function(f"() => Math.abs(document.querySelector('#video-input video').currentTime - {times[k]}) < 0.1")
        assert player_time(tab) == pytest.approx(times[k], abs=0.1)


def test_a_time_in_an_answer_is_a_link_that_seeks_and_nothing_else_is(live, tab, tmp_path):
    from playwright import sync_api

    from pllava_demo.chat.prompt import Turn

    load(tab, write_video(tmp_path / "said.mp4", n_frames=60, width=192, height=144, pattern="colour"))
    (studio,) = live[0].registry.open_tabs()
    # an answer as a model could write it: a time, and markup that must stay text
    studio.session.turns.append(Turn("When does it turn?", "It turns at 0:01, see <b>here</b> [x](http://example.com), www.example.org, me@example.com."))
    tab.locator("#question textarea").fill("And then?")
    tab.locator("#send").click()
    answered(tab, 2)  # the chat is shown again from the session, with the turn above in it
    first = tab.locator("#chat [data-testid=bot]").first
    sync_api.expect(first).to_contain_text("It turns at 0:01, see <b>here</b> [x](http://example.com), www.example.org, me@example.com.")
    links = first.locator("a")
    sync_api.expect(links).to_have_count(1)
    assert links.inner_text() == "0:01"
    tab.wait_for_function("() => document.querySelector('#video-input video')?.readyState >= 1")
    links.click()
    tab.wait_for_function("() => Math.abs(document.querySelector('#video-input video').currentTime - 1) < 0.1")
    assert player_time(tab) == pytest.approx(1.0, abs=0.1)
    assert tab.url.rstrip("/").endswith(live[1].split("//")[1]) or "#t=" not in tab.url  # the page did not navigate


def test_the_range_boxes_focus_on_a_part(live, tab, tmp_path):
    from playwright import sync_api

    load(tab, write_video(tmp_path / "part.mp4", n_frames=72, width=192, height=144, pattern="colour"))
    start = tab.locator("#range-start :is(input, textarea)")
    assert start.input_value() == "" and start.get_attribute("placeholder") == "start"  # blank, never "0"
    start.focus()
    tab.evaluate("""() => {  // every text the notice box shows from now on
        window.__notices = [];
        new MutationObserver(() => {
            const text = document.querySelector('#notice')?.innerText.trim();
            if (text) window.__notices.push(text);
        }).observe(document.querySelector('#notice-row'), {subtree: true, childList: true, characterData: true,
                                                           attributes: true});
    }""")
    start.press("Tab")  # passing through the blank boxes is no range, and no message
    start.fill("1")
    end = tab.locator("#range-end :is(input, textarea)")
    end.fill("2")
    end.press("Enter")
    sync_api.expect(tab.locator("#view-info")).to_contain_text("sampled from 1 s to 2 s of 3.0 s", timeout=60_000)
    # the blank boxes' event ran before this one (one listener runs its events in order): it said nothing
    assert tab.evaluate("() => window.__notices") == []
    (studio,) = live[0].registry.open_tabs()
    assert studio.video.clip.time_range == (1.0, 2.0)
    captions = tab.locator("#frames .caption-label, #frames [class*=caption]").all_inner_texts()
    assert captions and all(1.0 <= float(c.split()[0]) <= 2.0 for c in captions), captions


def test_number_boxes_beside_sliders_clamp_quietly(tab, tmp_path):
    from playwright import sync_api

    load(tab, write_video(tmp_path / "clamp.mp4", n_frames=48, width=96, height=64))
    for box_id, typed, shown in (("frames-slider", "99", "32"), ("pool-h", "-5", "1"), ("frames-slider", "2", "4")):
        box = tab.locator(f"#{box_id} input[type=number]")
        box.fill(typed)
        box.press("Enter")
        sync_api.expect(box).to_have_value(shown)
        sync_api.expect(tab.locator("#frames img")).to_have_count(int(shown) if box_id == "frames-slider" else 32,
                                                                 timeout=60_000)
    sync_api.expect(tab.locator("#view-info")).to_contain_text("4 frames → pooling 4×1×")
    assert tab.get_by_text("Error", exact=True).count() == 0 and not tab.locator("#notice").is_visible()
