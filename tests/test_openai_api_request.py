"""The OpenAI API's door without a model: payloads parsed into typed requests (fuzzed with hypothesis:
whatever JSON arrives, the result is a ChatRequest or one 400 naming the field, never another
exception), and media resolved from data: URLs, an allowed folder and a loopback HTTP server (timeout,
size limit, redirects on the same host only)."""

from __future__ import annotations

import base64
import contextlib
import http.server
import threading

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_api_fuzz import json_values

from pllava_demo.api_types import Bounds
from pllava_demo.openai_api.errors import ApiError
from pllava_demo.openai_api.media import MediaFiles, MediaPolicy, resolve
from pllava_demo.openai_api.request import KNOBS, STANDARD, MediaRef, parse_request

BOUNDS = Bounds(max_frames=32, max_new_tokens=1024)
VIDEO = {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AAAA"}}


def ok(**fields) -> dict:
    body = {"model": "tiny", "messages": [{"role": "user", "content": [VIDEO, {"type": "text", "text": "Hi?"}]}]}
    body.update(fields)
    return body


def refused(payload) -> ApiError:
    with pytest.raises(ApiError) as e:
        parse_request(payload, BOUNDS)
    assert e.value.status == 400 and len(e.value.message) < 300 and "\n" not in e.value.message
    return e.value


def test_a_conversation_becomes_turns_a_question_and_its_video():
    r = parse_request({"model": "tiny", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [VIDEO, {"type": "text", "text": "What happens?"}]},
        {"role": "assistant", "content": "A cat jumps."},
        {"role": "user", "content": "And then?"}]}, BOUNDS)
    assert r.system == "Be brief." and r.turns == (("What happens?", "A cat jumps."),) and r.question == "And then?"
    assert r.media == MediaRef("video", "data:video/mp4;base64,AAAA", "messages[1].content[0].video_url.url")
    assert r.changes == {} and not r.stream and r.stop == ()


def test_standard_fields_map_to_the_page_settings_and_knobs_pass_through():
    r = parse_request(ok(temperature=0, max_completion_tokens=7, seed=3, stop="USER", num_frames=4,
                         pooling=[2, 3, 3], lora_alpha=20, start_s=0.5, end_s=None, min_tokens=2,
                         stream=True, stream_options={"include_usage": True}), BOUNDS)
    assert r.changes == {"do_sample": False, "max_new_tokens": 7, "seed": 3, "num_frames": 4, "pooling": [2, 3, 3],
                         "lora_alpha": 20, "start_s": 0.5, "end_s": None, "min_new_tokens": 2}
    assert r.stop == ("USER",) and r.stream and r.include_usage
    assert parse_request(ok(temperature=0.7, top_p=0.5), BOUNDS).changes == {"do_sample": True, "temperature": 0.7,
                                                                             "top_p": 0.5}


@pytest.mark.parametrize("fields, param", [
    ({"temperature": 3}, "temperature"), ({"top_p": 0}, "top_p"), ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 5000}, "max_tokens"), ({"max_tokens": 5, "max_completion_tokens": 6}, "max_completion_tokens"),
    ({"n": 2}, "n"), ({"presence_penalty": 0.5}, "presence_penalty"), ({"frequency_penalty": -1}, "frequency_penalty"),
    ({"seed": -1}, "seed"), ({"stop": ["a"] * 5}, "stop"), ({"stop": [""]}, "stop"), ({"num_frames": 99}, "num_frames"),
    ({"pooling": [1, 2]}, "pooling"), ({"strategy": "nope"}, "strategy"), ({"lora_alpha": "x"}, "lora_alpha"),
    ({"start_s": -1}, "start_s"), ({"stream": "yes"}, "stream"), ({"stream_options": {"include_usage": True}},
                                                                    "stream_options"),
    ({"logprobs": True}, "logprobs"), ({"tools": [{"type": "function"}]}, "tools"), ({"colour": 1}, "colour"),
    ({"response_format": {"type": "json_object"}}, "response_format"), ({"model": ""}, "model"),
    ({"messages": []}, "messages"), ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "assistant", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": [VIDEO, VIDEO]}]}, "messages[0].content[1].video_url"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]}, "messages[1].role"),
])
def test_a_bad_field_is_refused_by_name(fields, param):
    assert refused(ok(**fields)).param == param


def test_penalties_at_zero_and_n_one_are_accepted():
    assert parse_request(ok(n=1, presence_penalty=0, frequency_penalty=0.0, user="me", logprobs=False), BOUNDS)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(st.sampled_from(STANDARD + KNOBS + ("colour",)), json_values, max_size=4) | json_values,
       st.booleans())
@example({"messages": [{"role": "user", "content": [{"type": "video_url", "video_url": None}]}]}, True)
def test_any_payload_is_a_request_or_one_400(payload, merge):
    if merge and isinstance(payload, dict):
        payload = ok(**payload)
    try:
        r = parse_request(payload, BOUNDS)
    except ApiError as e:
        assert e.status == 400 and e.message and "\n" not in e.message and len(e.message) < 400
        return
    assert isinstance(r.question, str) and isinstance(r.stream, bool) and all(isinstance(s, str) for s in r.stop)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant", 7]),
                                       "content": json_values | st.lists(json_values, max_size=3)}), max_size=4))
def test_any_message_list_is_parsed_or_one_400(messages):
    try:
        r = parse_request({"model": "m", "messages": messages}, BOUNDS)
    except ApiError as e:
        assert e.status == 400 and e.param and e.param.startswith("messages")
        return
    assert all(isinstance(q, str) and isinstance(a, str) for q, a in r.turns)


# -- media ------------------------------------------------------------------------------------------------
def ref(url: str, kind: str = "video") -> MediaRef:
    return MediaRef(kind, url, "messages[0].content[0].video_url.url")


def refused_media(url: str, policy: MediaPolicy, files: MediaFiles, status: int = 400) -> str:
    with pytest.raises(ApiError) as e:
        with resolve(ref(url), policy, files):
            pass
    assert e.value.status == status and e.value.param == "messages[0].content[0].video_url.url"
    return e.value.message


def test_a_data_url_is_a_file_for_the_request_only(tmp_path):
    files, data = MediaFiles(tmp_path / "media"), b"\x00video bytes"
    url = "data:video/webm;base64," + base64.b64encode(data).decode()
    with resolve(ref(url), MediaPolicy(), files) as a, resolve(ref(url), MediaPolicy(), files) as b:
        assert a == b and a.read_bytes() == data and a.suffix == ".webm" and len(files) == 1
    assert not a.exists() and len(files) == 0 and list(files.root.iterdir()) == []
    assert "base64" in refused_media("data:video/mp4,abc", MediaPolicy(), files)
    assert "not valid base64" in refused_media("data:video/mp4;base64,@@@", MediaPolicy(), files)
    assert "video/mp4" in refused_media("data:text/html;base64,AAAA", MediaPolicy(), files)
    big = "data:video/mp4;base64," + base64.b64encode(b"x" * 2048).decode()
    assert "limit" in refused_media(big, MediaPolicy(max_mb=1 / 1024), files, status=413)


def test_local_paths_only_inside_the_allowed_folder(tmp_path):
    allowed, outside = tmp_path / "media", tmp_path / "secret.mp4"
    allowed.mkdir()
    (allowed / "clip.mp4").write_bytes(b"v")
    outside.write_bytes(b"s")
    (allowed / "link.mp4").symlink_to(outside)
    files, policy = MediaFiles(tmp_path / "tmp"), MediaPolicy(allowed_dir=allowed)
    for url in (str(allowed / "clip.mp4"), "file://" + str(allowed / "clip.mp4"), "clip.mp4"):
        with resolve(ref(url), policy, files) as p:
            assert p == (allowed / "clip.mp4").resolve()
    for url in (str(outside), str(allowed / ".." / "secret.mp4"), "../secret.mp4", str(allowed / "link.mp4"),
                "file://" + str(outside), "/etc/passwd", str(allowed / "missing.mp4")):
        assert "allowed media folder" in refused_media(url, policy, files)
    assert "--allowed-media-dir" in refused_media(str(allowed / "clip.mp4"), MediaPolicy(), files)


class _Media(http.server.BaseHTTPRequestHandler):
    """/clip.mp4 the bytes; /same redirects to it; /away redirects to another host; /slow answers after
    the test lets it; /big says it is huge."""

    data = b"\x00mp4 bytes"
    release = threading.Event()
    arrived: "Arrivals | None" = None

    def do_GET(self):  # noqa: N802
        if self.arrived is not None:
            self.arrived.add()
        host, port = self.server.server_address
        if self.path == "/same":
            return self._redirect(f"http://{host}:{port}/clip.mp4")
        if self.path == "/away":
            return self._redirect(f"http://localhost:{port}/clip.mp4")
        if self.path == "/slow":
            self.release.wait(30)
        if self.path == "/big":
            self.send_response(200)
            self.send_header("Content-Length", str(10 * 2**20))
            self.end_headers()
            return
        if self.path not in ("/clip.mp4", "/slow", "/noext"):
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "video/webm" if self.path == "/noext" else "application/octet-stream")
        self.send_header("Content-Length", str(len(self.data)))
        self.end_headers()
        self.wfile.write(self.data)

    def _redirect(self, to: str):
        self.send_response(302)
        self.send_header("Location", to)
        self.end_headers()

    def log_message(self, *args):
        pass


class Arrivals:
    """Requests that reached the media server; a test waits until n have."""

    def __init__(self):
        self.n, self.cond = 0, threading.Condition()

    def add(self):
        with self.cond:
            self.n += 1
            self.cond.notify_all()

    def wait_for(self, n: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.n >= n, timeout)


@contextlib.contextmanager
def serve_media(data: bytes = _Media.data, hold: bool = True):
    """A loopback media server serving `data`; /slow waits until `_Media.release` is set (at once unless hold)."""
    _Media.data, _Media.release, _Media.arrived = data, threading.Event(), Arrivals()
    if not hold:
        _Media.release.set()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Media)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        _Media.release.set()
        server.shutdown()


@pytest.fixture(scope="module")
def media_server():
    with serve_media() as url:
        yield url


def test_media_urls_with_limits_timeout_and_same_host_redirects(tmp_path, media_server):
    files, policy = MediaFiles(tmp_path / "tmp"), MediaPolicy(allow_urls=True, timeout_s=1.0, max_mb=1)
    for path, suffix in (("/clip.mp4", ".mp4"), ("/same", ".mp4"), ("/noext", ".webm")):
        with resolve(ref(media_server + path), policy, files) as p:
            assert p.read_bytes() == _Media.data and p.suffix == suffix
    assert "another host" in refused_media(media_server + "/away", policy, files)
    assert "HTTP 404" in refused_media(media_server + "/nothing", policy, files)
    assert "limit" in refused_media(media_server + "/big", policy, files, status=413)
    assert "within 1 s" in refused_media(media_server + "/slow", policy, files)
    assert "--allow-media-urls" in refused_media(media_server + "/clip.mp4", MediaPolicy(), files)
    assert "scheme" in refused_media("ftp://127.0.0.1/x.mp4", policy, files)
    assert list(files.root.iterdir()) == []
