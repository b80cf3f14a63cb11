"""A real browser (system Chromium through Playwright) on the real app with the legacy LLaMA tokenizer:
an answer made of byte-fallback pieces (CJK, emoji, Korean, an accent) arrives in the chat whole, and
no U+FFFD is ever on the page while it streams. The checkpoint's weights are scripted to write it."""


import pytest
from legacy_tokenizer import make_legacy_tiny, script_answer
from browser import app_tab, needs_chromium, state
from transformers import AutoTokenizer
from ui_server import running_app
from videos import write_video

ANSWER = "猫🐶한 café ok"  # 12 pieces, all different (script_answer needs that), 10 of them bytes

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    ckpt = make_legacy_tiny(tmp_path_factory.mktemp("scripted"))
    tok = AutoTokenizer.from_pretrained(str(ckpt))
    anchor = tok("USER: ASSISTANT:", add_special_tokens=False).input_ids[-1]
    script_answer(ckpt, anchor, tok(ANSWER, add_special_tokens=False).input_ids)
    with running_app(ckpt, tmp_path_factory.mktemp("browser_text") / "app.log") as url:
        yield url


def test_a_cjk_and_emoji_answer_arrives_whole(page_url, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    video = write_video(tmp_path / "v.mp4", n_frames=24, width=96, height=64)
    with app_tab(page_url, timeout_ms=60_000) as page:
        page.locator("#video-input input[type=file]").set_input_files(str(video))
        sync_api.expect(page.locator("#frames img").first).to_be_visible(timeout=60_000)
        page.evaluate("""() => {  // every text the chat shows while the answer streams
            window.__seen = [];
            const chat = document.querySelector('#chat');
            new MutationObserver(() => window.__seen.push(chat.innerText))
                .observe(chat, {subtree: true, childList: true, characterData: true});
        }""")
        page.locator("#question textarea").fill("What is in the video?")
        page.locator("#send").click()
        chat = page.locator("#chat")
        sync_api.expect(chat).to_contain_text(ANSWER, timeout=60_000)
        state(page, answering=False, turns=1)  # the stream has ended: anything added after the answer is in
        seen = page.evaluate("() => window.__seen")
        assert not any("\ufffd" in s for s in seen)
        assert ANSWER in chat.inner_text() and "ok ok" not in chat.inner_text()
