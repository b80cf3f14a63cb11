"""The OpenAI-compatible API through the real `openai` client against a real `python app.py` (tiny model) on
127.0.0.1: whole and streamed answers equal the page's greedy answer; follow-ups prefill only their new
tokens (the engine's counters) and equal the page's follow-up; base64 video and image; the extra knobs
change what the engine does; every error class; eight clients at once equal their answers alone; the
README example; the API key."""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import json
import re
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from gradio_client import handle_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_api_fuzz import json_values
from test_openai_api_request import _Media, serve_media
from ui_server import ROOT, Client, app_process

from pllava_demo.openai_api.request import KNOBS, STANDARD
from videos import write_image, write_video

KEY = "sk-test-key"
SETTINGS = {"temperature": 0, "max_tokens": 24, "extra_body": {"num_frames": 8, "min_tokens": 8}}
MODEL = ["tiny"]
QUEUE = 4 + 4  # --concurrency 4 --max-queue 4: eight clients fit at once


def get(url: str, key: str | None = KEY) -> tuple[int, dict]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wait_for_model(url: str, timeout: float = 90.0) -> None:
    """Until /v1/models answers 200 (the model loaded; 503 meanwhile, 404 before the routes are added)."""
    deadline = time.monotonic() + timeout
    while (status := get(url + "/v1/models")[0]) != 200:
        assert status in (404, 503) and time.monotonic() < deadline, status
        time.sleep(0.2)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("openai_media")
    video = write_video(folder / "clip.mp4", n_frames=12, width=64, height=48)
    image = write_image(folder / "still.png", 64, 48)
    return folder, video, image


@pytest.fixture(scope="module")
def server(tiny_official, tmp_path_factory, media):
    log = tmp_path_factory.mktemp("openai_server") / "app.log"
    with app_process(tiny_official, log, "--debug-stats", "--api-key", KEY, "--allowed-media-dir", str(media[0]),
                     "--allow-media-urls", "--concurrency", "4", "--max-queue", "4", "--max-file-size", "1") as (url, _):
        wait_for_model(url)
        MODEL[0] = get(url + "/v1/models")[1]["data"][0]["id"]  # the folder's name
        yield url


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server + "/v1", api_key=KEY, max_retries=0, timeout=120)


def data_url(path, mime="video/mp4") -> str:
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()


def user(url: str, text: str, kind: str = "video_url") -> dict:
    return {"role": "user", "content": [{"type": kind, kind: {"url": url}}, {"type": "text", "text": text}]}


def stats(server) -> dict:
    c = Client(server, verbose=False)
    try:
        return c.predict(api_name="/status")["stats"]
    finally:
        c.close()


def ask(client, messages, **kw):
    kw = {**SETTINGS, **kw, "extra_body": {**SETTINGS["extra_body"], **kw.get("extra_body", {})}}
    return client.chat.completions.create(model=MODEL[0], messages=messages, **kw)


def streamed(client, messages, **kw) -> tuple[str, str, object]:
    text, finish, usage = "", None, None
    for chunk in ask(client, messages, stream=True, stream_options={"include_usage": True}, **kw):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        else:
            usage = chunk.usage
    return text, finish, usage


def test_whole_and_streamed_answers_and_follow_ups_equal_the_page(server, client, media):
    _, video, _ = media
    page = Client(server, verbose=False)
    try:  # the page: 8 frames, the same generation settings, greedy
        page.predict(handle_file(str(video)), 8, api_name="/upload")
        page.predict({"max_new_tokens": 24, "min_new_tokens": 8}, api_name="/set_options")
        page.predict("What happens?", api_name="/chat")
        before = stats(server)
        page.predict("And then?", api_name="/chat")
        page_follow = stats(server)["prefill_tokens"] - before["prefill_tokens"]
        page_turns = page.predict(api_name="/info")["turns"]
    finally:
        page.close()
    first = [user(data_url(video), "What happens?")]
    whole = ask(client, first)
    text, finish, usage = streamed(client, first)
    assert whole.choices[0].message.content == text == page_turns[0]["raw"].strip() != ""
    assert whole.choices[0].finish_reason == finish and whole.usage == usage
    assert usage.prompt_tokens_details.video_tokens == 8 * 12 * 12 and usage.prompt_tokens > 8 * 12 * 12

    before = stats(server)
    follow = ask(client, first + [{"role": "assistant", "content": text}, {"role": "user", "content": "And then?"}])
    after = stats(server)
    u = follow.usage
    assert follow.choices[0].message.content == page_turns[1]["raw"].strip()
    assert after["prefill_tokens"] - before["prefill_tokens"] == u.prompt_tokens - u.prompt_tokens_details.cached_tokens
    assert after["prefill_tokens"] - before["prefill_tokens"] == page_follow < 40  # only the new tokens
    assert after["videos_decoded"] == before["videos_decoded"] and after["vision_calls"] == before["vision_calls"]


def test_an_image_as_base64(client, media):
    r = ask(client, [user(data_url(media[2], "image/png"), "What is this?", "image_url")])
    assert r.choices[0].message.content and r.usage.prompt_tokens_details.video_tokens == 1 * 12 * 12


def test_local_path_and_url_media(server, client, media):
    folder, video, _ = media
    by_path = ask(client, [user(str(video), "What happens?")]).choices[0].message.content
    assert by_path == ask(client, [user(data_url(video), "What happens?")]).choices[0].message.content
    with serve_media(video.read_bytes(), hold=False) as base:
        assert ask(client, [user(base + "/clip.mp4", "What happens?")]).choices[0].message.content == by_path
    with pytest.raises(openai.BadRequestError, match="allowed media folder"):
        ask(client, [user(str(ROOT / "app.py"), "What happens?")])


def test_the_knobs_change_what_the_engine_does(server, client, media):
    url = data_url(media[1])
    msgs = [user(url, "Describe it.")]
    base = ask(client, msgs)
    assert ask(client, msgs, extra_body={"pooling": [2, 3, 3]}).usage.prompt_tokens_details.video_tokens == 18
    assert ask(client, msgs, extra_body={"strategy": "n-frame", "num_frames": 2}).usage.prompt_tokens_details.video_tokens == 2 * 576
    before = stats(server)
    assert ask(client, msgs, extra_body={"num_frames": 4}).usage.prompt_tokens_details.video_tokens == 4 * 12 * 12
    ask(client, msgs, extra_body={"start_s": 0.1, "end_s": 0.3})
    assert stats(server)["videos_decoded"] == before["videos_decoded"] + 2  # a new frame count, a new range
    short = ask(client, msgs, max_tokens=5, extra_body={"min_tokens": 5})
    assert short.usage.completion_tokens == 5 and short.choices[0].finish_reason == "length"
    assert ask(client, msgs, extra_body={"lora_alpha": 0}).choices[0].message.content != base.choices[0].message.content
    sampled = [ask(client, msgs, temperature=1.0, seed=s).choices[0].message.content for s in (1, 1, 2)]
    assert sampled[0] == sampled[1] != sampled[2]
    # a stop string cuts the answer where it begins, streamed or whole
    text = base.choices[0].message.content
    word = text.split()[len(text.split()) // 2]
    cut = ask(client, msgs, stop=[word])
    assert cut.choices[0].message.content == text[: text.index(word)] and cut.choices[0].finish_reason == "stop"
    assert streamed(client, msgs, stop=word)[:2] == (cut.choices[0].message.content, "stop")


def test_every_error_class(server, client, media, tiny_official):
    url = data_url(media[1])
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, [user(url, "Hi")], top_p=7)
    assert e.value.body["param"] == "top_p" and "top_p" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError, match="n must be 1"):
        ask(client, [user(url, "Hi")], n=2)
    with pytest.raises(openai.BadRequestError, match="presence_penalty"):
        ask(client, [user(url, "Hi")], presence_penalty=1)
    with pytest.raises(openai.BadRequestError, match="question"):
        ask(client, [user(url, "   ")])
    with pytest.raises(openai.BadRequestError, match="system prompt is 9,000 characters"):
        ask(client, [{"role": "system", "content": "s" * 9000}, user(url, "Hi")])
    bad_video = data_url(ROOT / "README.md")
    with pytest.raises(openai.BadRequestError):
        ask(client, [user(bad_video, "Hi")])
    with pytest.raises(openai.NotFoundError, match="serves '"):
        client.chat.completions.create(model="gpt-4o", messages=[user(url, "Hi")])
    other = openai.OpenAI(base_url=server + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="API key"):
        other.models.list()
    with pytest.raises(openai.AuthenticationError, match="API key"):
        other.chat.completions.create(model=MODEL[0], messages=[user(url, "Hi")])
    status, body = get(server + "/v1/models", key=None)
    assert status == 401 and body["error"]["type"] == "authentication_error"
    huge = "data:video/mp4;base64," + base64.b64encode(b"\0" * (3 * 2**20)).decode()
    with pytest.raises(openai.APIStatusError) as e:
        ask(client, [user(huge, "Hi")])
    assert e.value.status_code == 413
    mid = "data:video/mp4;base64," + base64.b64encode(b"\0" * (int(1.2 * 2**20))).decode()  # body fits, file not
    with pytest.raises(openai.APIStatusError) as e:
        ask(client, [user(mid, "Hi")])
    assert e.value.status_code == 413 and e.value.body["param"].startswith("messages[0]")
    # 429: the queue's places are all held by requests whose media is still downloading
    with serve_media(media[1].read_bytes()) as base:
        with ThreadPoolExecutor(QUEUE) as pool:
            held = [pool.submit(ask, client, [user(base + "/slow", "Hi")]) for _ in range(QUEUE)]
            assert _Media.arrived.wait_for(QUEUE, 60)
            with pytest.raises(openai.RateLimitError, match="Queue is full"):
                ask(client, [user(url, "Hi")])
            _Media.release.set()
            assert all(f.result().choices[0].message.content for f in held)
    assert ask(client, [user(url, "Hi")]).choices[0].message.content  # and the server goes on


def test_eight_clients_at_once_equal_their_answers_alone(server, client, media):
    url = data_url(media[1])
    requests = [([user(url, f"Question number {k}?")], {"extra_body": {"num_frames": 4 + k % 2 * 4}}) for k in range(8)]
    alone = [ask(client, m, **kw).choices[0].message.content for m, kw in requests]
    start = threading.Barrier(8)

    def together(job):
        messages, kw = job
        start.wait()
        if len(messages[0]["content"][1]["text"]) % 2:
            return streamed(client, messages, **kw)[0]
        return ask(client, messages, **kw).choices[0].message.content

    before = stats(server)["batch_rows_max"]
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(together, requests)) == alone
    assert max(before, stats(server)["batch_rows_max"]) >= 2


def test_readme_openai_example_runs(server, media):
    text = (ROOT / "README.md").read_text().split("<!-- openai-example -->", 1)[1]
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) <= 18
    code = (code.replace("http://127.0.0.1:7860", server).replace('"my-key"', repr(KEY))
            .replace("my_video.mp4", str(media[1])).replace("ermu2001/pllava-7b", MODEL[0]))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README openai example", "exec"), {})
    lines = out.getvalue().splitlines()
    assert len(lines) >= 2 and lines[-1].startswith("usage:") and "video tokens" in lines[-1]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(st.sampled_from(STANDARD + KNOBS + ("colour",)), json_values, max_size=4) | json_values,
       st.booleans())
def test_any_payload_gets_an_answer_or_one_readable_error(server, media, payload, merge):
    if merge and isinstance(payload, dict):
        payload = {"model": MODEL[0], "max_tokens": 4, "messages": [user(data_url(media[1]), "Hi?")], **payload}
    body = json.dumps(payload).encode()
    conn = http.client.HTTPConnection("127.0.0.1", int(server.rsplit(":", 1)[1]), timeout=120)
    try:
        conn.request("POST", "/v1/chat/completions", body=body,
                     headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
        r = conn.getresponse()
        status, data = r.status, r.read()
    finally:
        conn.close()
    if status == 200:
        return
    error = json.loads(data)["error"]
    assert status in (400, 404) and error["type"] == "invalid_request_error"
    assert error["message"] and "\n" not in error["message"] and "Traceback" not in error["message"]
