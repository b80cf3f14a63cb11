"""The real app on a loopback port (python app.py + a tiny official-layout checkpoint), driven by
gradio_client exactly as a script would drive it."""

import contextlib
import io
import re
import threading
from pathlib import Path

import pytest
from gradio_client import handle_file
from ui_server import Client, ROOT, running_app, wait_until_ready
from videos import write_video


@pytest.fixture(scope="module")
def server(tiny_official, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "app.log"
    with running_app(tiny_official, log) as url:
        wait_until_ready(url)
        yield url


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("server_videos")
    return (write_video(d / "first.mp4", n_frames=36, width=160, height=120, pattern="colour"),
            write_video(d / "second.webm", codec="vp9", n_frames=20, width=128, height=96))


def client_example() -> str:
    for doc in (ROOT / "README.md",):
        if doc.exists() and "<!-- client-example -->" in doc.read_text():
            text = doc.read_text().split("<!-- client-example -->", 1)[1]
            return re.search(r"```python\n(.*?)```", text, re.S).group(1)
    raise AssertionError("the README's client example is missing")


def test_readme_client_example_runs(server, videos):
    code = client_example()
    assert len(code.strip().splitlines()) <= 10
    code = code.replace("http://127.0.0.1:7860", server).replace("my_video.mp4", str(videos[0]))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README example", "exec"), {})
    lines = [s for s in out.getvalue().splitlines() if not s.startswith("Loaded as API")]
    assert lines[0].startswith("8 frames at [") and "size 160 x 120" in lines[0]
    partials = lines[1:-2]
    assert len(partials) >= 2 and all(b.startswith(a) for a, b in zip(partials, partials[1:]))
    assert "'labels'" in lines[-1] and "alpha 20" in lines[-1]


def test_upload_stream_follow_up_and_every_slider(server, videos):
    c = Client(server, verbose=False)
    info = c.predict(handle_file(str(videos[0])), 8, api_name="/upload")
    assert (info["frames"], info["width"], info["height"], info["name"]) == (8, 160, 120, "first.mp4")
    c.predict({"pooling": [4, 6, 6], "max_new_tokens": 16, "min_new_tokens": 16}, api_name="/set_options")
    partials = list(c.submit("What happens?", api_name="/chat"))
    assert len(partials) > 2 and partials[-1]
    follow = c.predict("And then?", api_name="/chat")
    turns = c.predict(api_name="/info")["turns"]
    assert [t["question"] for t in turns] == ["What happens?", "And then?"]
    assert turns[-1]["answer"] == follow

    # frames: new sample times, re-encoded once; T' follows the frame count down
    four = c.predict({"num_frames": 4}, api_name="/set_options")
    assert four["frames"] == 4 and len(four["timestamps"]) == 4 and four["timestamps"] != info["timestamps"]
    assert four["pooling_shape"] == [4, 6, 6]
    c.predict({"num_frames": 8}, api_name="/set_options")
    def fresh_answer():  # the same question on an empty chat: only the settings differ
        c.predict(api_name="/clear")
        return c.predict("What happens?", api_name="/chat")

    base = fresh_answer()
    # pooling: the token count and the answer change
    small = c.predict({"pooling": [4, 2, 2]}, api_name="/set_options")
    assert small["visual_tokens"] == 16 and small["frames"] == 8
    assert fresh_answer() != base
    # LoRA alpha: the answer changes, and comes back with the alpha
    c.predict({"pooling": [4, 6, 6], "lora_alpha": 20}, api_name="/set_options")
    assert fresh_answer() != base
    c.predict({"lora_alpha": 4}, api_name="/set_options")
    assert fresh_answer() == base
    # regenerate and compare keep the chat as it was
    n = len(c.predict(api_name="/info")["turns"])
    assert c.predict(api_name="/regenerate") == base
    cmp = c.predict({"lora_alpha": 20}, api_name="/compare")
    assert cmp["a"] == base and cmp["a"] != cmp["b"]
    assert len(c.predict(api_name="/info")["turns"]) == n
    assert c.predict(api_name="/clear")["loaded"] and c.predict(api_name="/info")["turns"] == []


def test_readable_errors(server, tmp_path):
    c = Client(server, verbose=False)
    with pytest.raises(Exception, match="Upload a video"):
        c.predict("hello?", api_name="/chat")
    bad = tmp_path / "notes.txt"
    bad.write_text("not a video")
    with pytest.raises(Exception, match="Unsupported file type"):
        c.predict(handle_file(str(bad)), 8, api_name="/upload")


def test_two_clients_at_once_get_their_own_video(server, videos):
    results = {}

    def run(path):
        c = Client(server, verbose=False)
        info = c.predict(handle_file(str(path)), 4, api_name="/upload")
        c.predict({"pooling": [4, 6, 6], "max_new_tokens": 12, "min_new_tokens": 12}, api_name="/set_options")
        answer = c.predict(f"What is in {Path(path).name}?", api_name="/chat")
        results[Path(path).name] = (info, answer, c.predict(api_name="/info"))

    threads = [threading.Thread(target=run, args=(p,)) for p in videos]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert set(results) == {"first.mp4", "second.webm"}
    for name, (info, answer, later) in results.items():
        assert info["name"] == later["name"] == name
        (turn,) = later["turns"]
        assert turn == {"question": f"What is in {name}?", "answer": answer, "stopped": False, "raw": turn["raw"]}
        assert turn["raw"].strip() == answer  # as the model wrote it: what the next prompt gets
    assert results["first.mp4"][0]["width"] == 160 and results["second.webm"][0]["width"] == 128


def test_two_chats_at_once_on_one_session_are_answered_in_turn(server, videos):
    """Two /chat calls at once from one client (one session): answered one after the other, and both
    turns, each with its own answer, are in the history afterwards."""
    c = Client(server, verbose=False)
    c.predict(handle_file(str(videos[0])), 4, api_name="/upload")
    c.predict({"pooling": [4, 6, 6], "max_new_tokens": 300, "min_new_tokens": 300}, api_name="/set_options")
    jobs = [c.submit("First at once?", api_name="/chat"), c.submit("Second at once?", api_name="/chat")]
    got = {job.result(timeout=120) for job in jobs}
    turns = c.predict(api_name="/info")["turns"]
    assert sorted(t["question"] for t in turns) == ["First at once?", "Second at once?"]
    assert {t["answer"] for t in turns} == got and all(got) and not any(t["stopped"] for t in turns)
