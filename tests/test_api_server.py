"""The API door through a real server (python app.py + a tiny checkpoint): the queue cannot be
skipped, bad settings get one sentence naming the field (fuzzed with hypothesis through
gradio_client), every file a visitor makes the server write is deleted (unused uploads after the
grace period, a refused upload at once), the upload folder has a budget, and nothing about one
person's file or the server's paths reaches another."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from hypothesis import HealthCheck, assume, given, settings
from test_api_fuzz import payloads
from ui_server import ROOT, Client, app_process, wait_until_ready
from videos import write_video

GRACE_S = 2
BUDGET_MB = 3


@pytest.fixture(scope="module")
def uploads_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("api_uploads")


@pytest.fixture(scope="module")
def server(tiny_official, tmp_path_factory, uploads_dir):
    log = tmp_path_factory.mktemp("api_server") / "app.log"
    env = {"GRADIO_TEMP_DIR": str(uploads_dir), "GRADIO_HEARTBEAT_INTERVAL": "1"}
    with app_process(tiny_official, log, "--max-file-size", "1", "--upload-grace", str(GRACE_S),
                     "--upload-budget-mb", str(BUDGET_MB), "--concurrency", "1", "--max-queue", "1",
                     env=env) as (url, _):
        wait_until_ready(url)
        yield url


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("api_videos") / "mine.mp4", n_frames=12, width=64, height=48)


def post(url: str, path: str, body: bytes, headers: dict) -> tuple[int, bytes]:
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def raw_upload(url: str, files: list[tuple[str, bytes]]) -> tuple[int, bytes]:
    """POST /gradio_api/upload as a script would: multipart with many "files" fields."""
    boundary = uuid.uuid4().hex
    parts = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n" for name, data in files)
    body = parts + f"--{boundary}--\r\n".encode()
    return post(url, "/gradio_api/upload", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})


def visitor_files(d: Path) -> list[Path]:
    """Files in the upload folder other than gradio's cached copies of the example videos."""
    examples = {p.name for p in (ROOT / "assets").iterdir()}
    # os.walk, not rglob: the server deletes a session's folder while we look, and rglob's scandir of a
    # folder that vanished raises (CI's FileNotFoundError); os.walk skips it
    return sorted(Path(root) / name for root, _, names in os.walk(d) for name in names if name not in examples)


def gone_within(d: Path, paths, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while any(Path(p).exists() for p in paths):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def status(url):
    c = Client(url, verbose=False)
    try:
        return c.predict(api_name="/status")
    finally:
        c.close()


# -- the queue -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["upload", "chat", "compare", "set_options", "regenerate", "info", "status"])
def test_direct_calls_cannot_skip_the_queue(server, name):
    code, body = post(server, f"/gradio_api/run/{name}", json.dumps({"data": [None, None]}).encode(),
                      {"Content-Type": "application/json"})
    assert code == 404 and (b"join the queue" in body or b"Not found" in body), (code, body[:200])
    code, _ = post(server, f"/gradio_api/api/{name}", b'{"data": []}', {"Content-Type": "application/json"})
    assert code == 404


def test_stop_stays_direct(server):
    code, body = post(server, "/gradio_api/run/stop", b'{"data": [], "session_hash": "nobody"}',
                      {"Content-Type": "application/json"})
    assert code == 200 and json.loads(body)["data"] == [{"stopped": False}]


# -- privacy -------------------------------------------------------------------------------------
def test_same_bytes_other_name_shows_own_name(server, video, tmp_path):
    other = tmp_path / "someone-elses-name.mp4"
    shutil.copy(video, other)
    a, b = Client(server, verbose=False), Client(server, verbose=False)
    try:
        assert a.predict(handle_file(str(other)), 4, api_name="/upload")["name"] == "someone-elses-name.mp4"
        info = b.predict(handle_file(str(video)), 4, api_name="/upload")
        assert info["name"] == "mine.mp4" and b.predict(api_name="/info")["name"] == "mine.mp4"
        assert a.predict(api_name="/info")["name"] == "someone-elses-name.mp4"
    finally:
        a.close()
        b.close()


def test_status_shows_names_and_totals_only(server, tiny_official):
    s = status(server)
    text = json.dumps(s)
    assert str(Path(tiny_official).resolve()) not in text and str(tiny_official) not in text
    assert s["model"] == Path(tiny_official).name and s["model"] in s["status"]
    assert "stats" not in s and "feature_cache_entries" not in s
    assert s["uploads_full"] is False  # whether it is full, not the room left to aim at
    assert "upload_budget_bytes" not in s and "upload_bytes" not in s


# -- files on disk -------------------------------------------------------------------------------
def test_unused_uploads_are_deleted_after_the_grace_period(server, uploads_dir):
    code, body = raw_upload(server, [(f"never-used-{k}.mp4", bytes([k]) * 1000) for k in range(16)])
    assert code == 200, body[:200]
    paths = json.loads(body)
    assert len(paths) == 16 and all(Path(p).exists() for p in paths)
    assert gone_within(uploads_dir, paths, GRACE_S + 15)


def test_a_refused_upload_is_deleted_at_once(server, video, uploads_dir):
    c = Client(server, verbose=False)
    try:
        for bad in ("abc", [4], {"n": 4}, 0, 7.9):
            with pytest.raises(AppError, match=r"num_frames must be a whole number 1-32"):
                c.predict(handle_file(str(video)), bad, api_name="/upload")
            assert not [p for p in visitor_files(uploads_dir) if p.name == "mine.mp4"]
    finally:
        c.close()


def test_the_upload_folder_has_a_budget(server):
    code, body = raw_upload(server, [("big.mp4", b"x" * (BUDGET_MB * 2**20))])
    assert code == 503 and b"The server is busy" in body
    assert status(server)["ready"]


def test_a_session_leaves_nothing_on_disk(server, video, uploads_dir):
    c = Client(server, verbose=False)
    c.predict(handle_file(str(video)), 4, api_name="/upload")
    assert visitor_files(uploads_dir)
    c.close()
    assert gone_within(uploads_dir, visitor_files(uploads_dir), GRACE_S + 15), visitor_files(uploads_dir)


def test_uploads_while_the_model_failed_to_load_are_deleted(tmp_path):
    uploads = tmp_path / "uploads"
    with app_process(tmp_path / "no-such-model", tmp_path / "app.log", "--upload-grace", str(GRACE_S),
                     env={"GRADIO_TEMP_DIR": str(uploads)}) as (url, _):
        code, body = raw_upload(url, [("early.mp4", b"x" * 5000)])
        assert code == 200
        paths = json.loads(body)
        c = Client(url, verbose=False)
        with pytest.raises(AppError, match="still loading|failed to load"):
            c.predict(handle_file(paths[0]), None, api_name="/upload")
        c.close()
        assert gone_within(uploads, paths, GRACE_S + 15)
        deadline = time.monotonic() + 30
        while (s := status(url))["state"] != "failed":
            assert time.monotonic() < deadline, s
            time.sleep(0.3)
        assert "no-such-model" in s["error"] and str(tmp_path) not in json.dumps(s), s


# -- fuzz through the server ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(server, video):
    c = Client(server, verbose=False)
    c.predict(handle_file(str(video)), 4, api_name="/upload")
    c.predict({"pooling": [2, 3, 3], "max_new_tokens": 4, "min_new_tokens": 4}, api_name="/set_options")
    yield c
    c.close()


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(payload=payloads)
def test_set_options_fuzz_through_the_server(client, payload):
    try:  # what gradio_client can send (it refuses NaN and Infinity itself; the handler fuzz has those)
        json.dumps(payload, allow_nan=False)
    except ValueError:
        assume(False)
    try:
        info = client.predict(payload, api_name="/set_options")
        assert info["loaded"] and info["frames"] == info["options"]["num_frames"]
    except AppError as e:
        assert "\n" not in str(e) and "Something went wrong" not in str(e), str(e)
    client.predict({"max_new_tokens": 4, "min_new_tokens": 4, "num_frames": 4}, api_name="/set_options")
    assert client.predict("What is it?", api_name="/chat")
