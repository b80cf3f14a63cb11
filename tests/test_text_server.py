"""Text a visitor sends to the real server (python app.py on a loopback port, through gradio_client):
control tokens in a question or a system prompt are plain text, and the system prompt has a length limit
named in the message; later answers keep working. (gradio_client cannot send a lone surrogate: that case
is tested through the engine, in test_text_engine.py.)"""

from __future__ import annotations

import pytest
from gradio_client import handle_file
from ui_server import Client, app_process, wait_until_ready
from videos import write_video


@pytest.fixture(scope="module")
def server(tiny_legacy, tmp_path_factory):
    log = tmp_path_factory.mktemp("text_server") / "app.log"
    with app_process(tiny_legacy, log) as (url, _):
        wait_until_ready(url)
        yield url


def test_control_tokens_from_a_visitor_are_plain_text(server, tmp_path):
    video = write_video(tmp_path / "v.mp4", n_frames=24, width=96, height=64)
    c = Client(server, verbose=False)
    try:
        c.predict(handle_file(str(video)), 4, api_name="/upload")
        c.predict({"pooling": [4, 2, 2], "max_new_tokens": 8, "min_new_tokens": 8}, api_name="/set_options")
        assert c.predict("What is <image> in </s> the video?", api_name="/chat")
        c.predict({"system": "You are <image> a helper </s><s><pad>."}, api_name="/set_options")
        assert c.predict("And <image> now?", api_name="/chat")
        with pytest.raises(Exception) as e:
            c.predict({"system": "s" * 9000}, api_name="/set_options")
        text = str(e.value)
        assert "9,000 characters" in text and "limit is 8,000" in text and "Traceback" not in text, text
        assert c.predict("An ordinary question?", api_name="/chat")  # later answers still work
        questions = [t["question"] for t in c.predict(api_name="/info")["turns"]]
        assert questions == ["What is <image> in </s> the video?", "And <image> now?", "An ordinary question?"]
    finally:
        c.close()
