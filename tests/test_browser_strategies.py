"""A real browser picks a visual-token strategy beside the frames: its own knobs appear, the "what the
model sees" panel shows its token count and the grid image it builds, and Compare answers with another
strategy for B. The same through the named API (/set_options, /compare) of the same real server."""

import re

import pytest
from browser import app_tab, needs_chromium
from ui_server import running_app, wait_until_ready
from videos import write_video

pytestmark = needs_chromium


def choose(page, dropdown: str, option: str) -> None:
    page.locator(f"{dropdown} input").click()
    page.get_by_role("option", name=option).click()


@pytest.fixture(scope="module")
def server(tiny_official, tmp_path_factory):
    with running_app(tiny_official, tmp_path_factory.mktemp("app") / "app.log") as url:
        wait_until_ready(url)  # the model loads in the background: the API says "still loading" until then
        yield url


def test_strategy_through_the_named_api(server, tmp_path):
    from gradio_client import handle_file
    from ui_server import Client

    video = write_video(tmp_path / "clip.mp4", n_frames=24, width=160, height=120, pattern="colour")
    c = Client(server, verbose=False)
    c.predict(handle_file(str(video)), 8, api_name="/upload")
    info = c.predict({"strategy": {"name": "ts-llava", "thumb_frames": 4.0, "sampled_tokens": 100},
                      "lora_alpha": 0, "max_new_tokens": 4, "min_new_tokens": 4}, api_name="/set_options")
    assert info["strategy"] == {"name": "ts-llava", "thumb_frames": 4, "sampled_tokens": 100}
    assert info["visual_tokens"] == 100 + 576 and "pooling_shape" not in info
    assert list(c.submit("What moves?", api_name="/chat"))[-1]
    with pytest.raises(Exception, match=r"Unknown strategy 'grid'; the strategies are pllava, n-frame"):
        c.predict({"strategy": "grid"}, api_name="/set_options")
    out = list(c.submit({"strategy": "video-chatgpt"}, api_name="/compare"))[-1]
    assert out["labels"] == ["A: 8 frames, 100 sampled tokens + a 4-frame thumbnail (2×2), alpha 0",
                             "B: 8 frames, 8 frame means + 576 patch means, alpha 0"]
    assert out["a"] and out["b"]
    back = c.predict({"strategy": {"name": "pllava", "pooling": [4, 6, 6]}}, api_name="/set_options")
    assert back["pooling_shape"] == [4, 6, 6] and back["visual_tokens"] == 144


def test_strategy_selector_view_and_compare_across_strategies(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    video = write_video(tmp_path / "clip.mp4", n_frames=24, width=160, height=120, pattern="colour")
    url = server
    with app_tab(url) as page:
        page.locator("#video-input input[type=file]").set_input_files(str(video))
        expect(page.locator("#frames img")).to_have_count(16, timeout=60_000)
        view = page.locator("#view-info")
        expect(view).to_contain_text("pooling 16×12×12 = 2,304 visual tokens")
        expect(page.locator("#knob-grid-frames")).to_be_hidden()
        expect(page.locator("#strategy-image")).to_be_hidden()

        choose(page, "#strategy", "Image grid (IG-VLM)")
        expect(view).to_contain_text("image grid of 6 frames (3×2) = one image = 576 visual tokens", timeout=60_000)
        expect(view).to_contain_text("meant for the image model (LoRA alpha 0)")
        expect(page.locator("#knob-grid-frames")).to_be_visible()  # its own knob, PLLaVA's sliders gone
        expect(page.locator("#pool-t")).to_be_hidden()
        expect(page.locator("#strategy-image img")).to_be_visible()  # the grid it builds
        knob = page.locator("#knob-grid-frames input[type=number]")
        knob.fill("4")
        knob.press("Enter")
        expect(view).to_contain_text("image grid of 4 frames (2×2) = one image = 576 visual tokens", timeout=60_000)
        knob.fill("6")
        knob.press("Enter")
        expect(view).to_contain_text("image grid of 6 frames (3×2)", timeout=60_000)

        page.locator("#question textarea").fill("What moves?")
        page.locator("#send").click()
        bots = page.locator("#chat [data-testid=bot]")
        expect(bots).to_have_count(1, timeout=60_000)
        expect(bots.last).not_to_be_empty(timeout=60_000)

        page.get_by_text("Compare: re-ask the last question with other settings").click()
        choose(page, "#strategy-b", "Video-ChatGPT means")
        page.locator("#compare").click()
        expect(page.locator("#compare-a")).to_contain_text(
            "A: 16 frames, image grid of 6 frames (3×2) = one image, alpha 4", timeout=60_000)
        expect(page.locator("#compare-b")).to_contain_text(
            "B: 16 frames, 16 frame means + 576 patch means, alpha 20", timeout=60_000)
        expect(page.locator("#compare-b")).to_have_text(re.compile(r"alpha 20\s+\S"), timeout=60_000)  # B's answer
