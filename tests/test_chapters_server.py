"""Chapters through a real server (python app.py + the tiny checkpoint) and gradio_client: /chapters
makes them for this client's video, /set_scope chooses the whole video, and a /chat question that uses
a subtitle's words is answered from that scene, which /info and the downloaded chat's settings name."""

from __future__ import annotations

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from test_chapters import SCENES, SUBTITLES
from test_app_server import server  # noqa: F401  (python app.py with the tiny checkpoint)
from ui_server import Client
from videos import write_scene_video

SMALL = {"caption_frames": 4, "caption_tokens": 4, "caption_min_tokens": 2}


@pytest.fixture(scope="module")
def scene_video(tmp_path_factory):
    return write_scene_video(tmp_path_factory.mktemp("chapters_api") / "scenes.mkv", SCENES, subtitles=SUBTITLES)


def test_chapters_scope_and_info_through_the_named_api(server, scene_video):  # noqa: F811
    client = Client(server, verbose=False)
    client.predict(handle_file(str(scene_video)), 4, api_name="/upload")
    ch = client.predict(SMALL, api_name="/chapters")
    assert ch["complete"] and ch["method"] == "scenes" and len(ch["chapters"]) == 6
    assert ch["chapters"][2]["subtitles"][0][2] == "a zebra parade crosses the old bridge"
    with pytest.raises(AppError, match="set_scope takes scope, top_k"):
        client.predict({"scope": "whole", "k": 2}, api_name="/set_scope")
    info = client.predict({"scope": "whole", "top_k": 1}, api_name="/set_scope")
    assert info == {"scope": "whole", "top_k": 1, "chapters": 6}
    client.predict({"max_new_tokens": 3}, api_name="/set_options")
    client.predict("Where does the zebra parade cross?", api_name="/chat")
    info = client.predict(api_name="/info")
    assert [c["chapter"] for c in info["chapters_used"]] == [3] and info["scope"] == "whole"
    assert all(400 <= t <= 514 for t in info["timestamps"])  # the frames the answer saw are that scene's
    again = client.predict(SMALL, api_name="/chapters")  # a second visit: the same chapters, from the cache
    assert again == ch
    info = client.predict({"scope": "focus"}, api_name="/set_scope")
    client.predict("And now?", api_name="/chat")
    info = client.predict(api_name="/info")
    assert "chapters_used" not in info and info["scope"] == "focus" and max(info["timestamps"]) > 1000
