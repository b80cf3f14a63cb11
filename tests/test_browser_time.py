"""A real browser on the real app: Download chat gives the chat as files, a sampled frame clicked in
the gallery seeks the video player to its time, and times in an answer are links that seek it."""

import json

import pytest
from test_browser import page, page_url, pytestmark, load  # noqa: F401  (fixtures and marks shared)
from videos import write_video


def ask(page, question: str) -> None:
    from playwright import sync_api

    page.locator("#question textarea").fill(question)
    page.locator("#send").click()
    sync_api.expect(page.locator("#send")).to_be_visible(timeout=60_000)  # Stop is Send again: answered
    sync_api.expect(page.locator("#chat [data-testid=bot]").last).not_to_be_empty()


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
