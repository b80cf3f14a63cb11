"""Safety of the real server (python app.py + a tiny checkpoint on a loopback port): it serves only
`assets/` and uploads, refuses oversize uploads before they reach the disk, deletes a session's
uploads when the session ends, answers hostile files and questions with one readable sentence, and
never shows a traceback. Share links stay off unless asked for."""

from __future__ import annotations

import http.client
import re
import shutil
import time
from pathlib import Path
from urllib.parse import quote, urlparse

import pytest
from gradio_client import handle_file
from ui_server import Client, ROOT, app_process, wait_until_ready
from videos import write_audio_only, write_video

MAX_FILE_MB = 1
SECRET = "pllava-secret-7d1e"  # in a file outside everything the server may serve


@pytest.fixture(scope="module")
def uploads_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("gradio_uploads")


@pytest.fixture(scope="module")
def server(tiny_official, tmp_path_factory, uploads_dir):
    log = tmp_path_factory.mktemp("safety_server") / "app.log"
    env = {"GRADIO_TEMP_DIR": str(uploads_dir), "GRADIO_HEARTBEAT_INTERVAL": "1"}
    with app_process(tiny_official, log, "--max-file-size", str(MAX_FILE_MB), env=env) as (url, _):
        wait_until_ready(url)
        yield url


@pytest.fixture(scope="module")
def good_video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("safety_videos") / "good.mp4", n_frames=24, width=96, height=64)


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("outside") / "secret.txt"
    p.write_text(SECRET)
    return p


def get(url: str, raw_path: str) -> tuple[int, bytes]:
    """GET with the path sent exactly as written (no client-side normalisation of ../ or %xx)."""
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request("GET", raw_path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def files_under(d: Path) -> list[Path]:
    """The uploads in gradio's folder (it also caches the example videos there, and makes empty temp files)."""
    examples = {p.name for p in (ROOT / "assets").iterdir()}
    found = []
    for sub in list(d.iterdir()):
        if not re.fullmatch("[0-9a-f]{64}", sub.name):
            continue
        try:
            entries = list(sub.iterdir())
        except FileNotFoundError:  # the server deleted this folder while we looked: that is the point
            continue
        found += [p for p in entries if p.name not in examples and p.is_file()]
    return sorted(found)


def status(url: str) -> dict:
    c = Client(url, verbose=False)
    try:
        return c.predict(api_name="/status")
    finally:
        c.close()


def wait_for(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


def assert_readable(exc: BaseException, *needles: str) -> str:
    """The message a user gets: one sentence, no traceback, no source paths, naming what went wrong."""
    text = str(exc)
    assert "Traceback" not in text and 'File "' not in text and not re.search(r"line \d+, in ", text), text
    assert len(text.strip().splitlines()) == 1 and len(text) < 400, text
    for n in needles:
        assert re.search(n, text, re.I), (n, text)
    return text


# -- launch settings ---------------------------------------------------------------------------
def test_share_off_and_served_folders_limited(monkeypatch, tiny_official):
    import app
    from pllava_demo import ui

    for var in ("PLLAVA_SHARE", "SPACE_ID", "PLLAVA_HOST"):
        monkeypatch.delenv(var, raising=False)
    args = app.parse_args([])
    assert args.share is False and args.host == "127.0.0.1"
    assert app.parse_args(["--share"]).share is True

    kw = ui.launch_kwargs(model_dir=str(tiny_official))
    assert kw["share"] is False and kw["show_error"] is False
    assert kw["allowed_paths"] == [str(ui.ASSETS)] and ui.ASSETS == ROOT / "assets"
    for p in kw["allowed_paths"]:  # never the repo root, the model folder, or anything above them
        assert not ROOT.is_relative_to(p) and not Path(tiny_official).resolve().is_relative_to(p)
    assert kw["blocked_paths"] == [str(Path(tiny_official).resolve())]
    assert kw["max_file_size"] == 200 * 2**20

    seen = {}

    class FakeDemo:
        def launch(self, **kwargs):
            seen.update(kwargs)

    ui.launch(FakeDemo())  # the defaults the app launches with
    assert seen["share"] is False and seen["allowed_paths"] == [str(ui.ASSETS)] and seen["show_error"] is False
    assert seen["max_file_size"] == 200 * 2**20 and seen["server_name"] == "127.0.0.1"


def test_unexpected_errors_become_one_generic_line(caplog):
    import gradio as gr

    from pllava_demo import ui
    from pllava_demo.errors import InputError, PllavaError, ResourceError

    @ui.guard
    def boom(kind):
        raise kind("secret /path/inside.py line 3\nmore")

    @ui.guard
    def stream(kind):
        yield "partial"
        raise kind("The GPU ran out of memory while writing the answer; try fewer frames.")

    for kind in (KeyError, RuntimeError, ValueError, OSError):
        with pytest.raises(gr.Error) as e:
            boom(kind)
        assert e.value.message == ui.UNEXPECTED
    assert "unexpected error in boom" in caplog.text and "Traceback" in caplog.text  # kept in the log
    for kind in (PllavaError, InputError, ResourceError):
        with pytest.raises(gr.Error) as e:
            list(stream(kind))
        assert e.value.message.startswith("The GPU ran out of memory")
        with pytest.raises(gr.Error) as e:
            boom(kind)
        assert e.value.message == "secret /path/inside.py line 3"  # one line of a project error


# -- file routes -------------------------------------------------------------------------------
def test_only_assets_and_uploads_are_served(server, uploads_dir, good_video, secret_file, tiny_official):
    asset = sorted((ROOT / "assets").glob("*.mp4"))[0]
    assert get(server, f"/gradio_api/file={asset}")[0] == 200

    c = Client(server, verbose=False)
    c.predict(handle_file(str(good_video)), 4, api_name="/upload")
    [uploaded] = files_under(uploads_dir)
    code, body = get(server, f"/gradio_api/file={uploaded}")
    assert code == 200 and body == good_video.read_bytes()

    config = Path(tiny_official) / "config.json"
    up, rel_secret = str(uploads_dir), Path("..") / ".." / secret_file.relative_to(secret_file.parents[1])
    targets = [
        "/etc/passwd", str(secret_file), str(config), str(ROOT / "app.py"), str(ROOT / "README.md"),
        f"{ROOT}/assets/../app.py", f"{up}/../{secret_file.parent.name}/secret.txt",
        f"{uploaded.parent}/{rel_secret}", f"{asset.parent}/../../../../../../etc/passwd",
        "../../../../../../etc/passwd", "assets/../app.py", "app.py", str(uploads_dir), str(config.parent),
    ]
    attempts = []
    for t in targets:
        attempts += [quote(t, safe="/"), t.replace("../", "%2e%2e%2f"), t.replace("../", "..%2f"),
                     t.replace("../", "%252e%252e%252f"), t.replace("/", "%2f"), t.replace("/", "%252f")]
    secrets = [SECRET.encode(), b"root:", b"image_token_index", b"def parse_args", b"# PLLaVA Studio"]
    for prefix in ("/gradio_api/file=", "/file=", "/gradio_api/file=/", "/gradio_api/file/"):
        for a in attempts:
            code, body = get(server, prefix + a)
            assert 400 <= code < 500, (prefix + a, code)
            assert not any(s in body for s in secrets), (prefix + a, body[:200])
    c.close()


@pytest.fixture(autouse=True)
def settled(request):
    """Sessions of the previous test close asynchronously (heartbeat, then clean-up): start each test that
    uses the server once they are gone, so one test's uploads never appear in another's checks."""
    if "server" in request.fixturenames:
        server, uploads_dir = request.getfixturevalue("server"), request.getfixturevalue("uploads_dir")
        wait_for(lambda: status(server)["sessions"] == 0 and not files_under(uploads_dir), timeout=30,
                 what="the previous test's sessions to end")
    yield


# -- uploads -----------------------------------------------------------------------------------
def test_oversize_upload_refused_before_the_disk(server, uploads_dir, tmp_path):
    import httpx

    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * int(1.5 * MAX_FILE_MB * 2**20))
    before = files_under(uploads_dir)
    with open(big, "rb") as f:
        r = httpx.post(server + "/gradio_api/upload", files={"files": ("big.mp4", f, "video/mp4")}, timeout=30)
    assert r.status_code == 413
    assert f"maximum allowed size of {MAX_FILE_MB * 2**20} bytes" in r.text  # the message names the limit
    c = Client(server, verbose=False)
    with pytest.raises(Exception, match=f"maximum (allowed |file )?size of {MAX_FILE_MB * 2**20} bytes"):
        c.predict(handle_file(str(big)), 4, api_name="/upload")
    c.close()
    assert not [p for p in files_under(uploads_dir) if p.name == "big.mp4"] and files_under(uploads_dir) == before


def test_uploads_deleted_when_the_session_ends(server, uploads_dir, good_video, tmp_path):
    other = write_video(tmp_path / "other.webm", codec="vp9", n_frames=12, width=80, height=48)
    wait_for(lambda: not files_under(uploads_dir), what="earlier sessions' uploads to go")
    keep = Client(server, verbose=False)  # a second session holding the same bytes keeps its file
    keep.predict(handle_file(str(good_video)), 4, api_name="/upload")
    [shared] = files_under(uploads_dir)

    c = Client(server, verbose=False)
    c.predict(handle_file(str(good_video)), 4, api_name="/upload")
    assert files_under(uploads_dir) == [shared]  # the same content: gradio gives the same path
    c.predict(handle_file(str(other)), 4, api_name="/upload")  # a new video lets go of the old one
    names = [p.name for p in files_under(uploads_dir)]
    assert sorted(names) == ["good.mp4", "other.webm"]
    assert c.predict(api_name="/info")["name"] == "other.webm"
    assert c.predict({"num_frames": 6}, api_name="/set_options")["frames"] == 6  # re-reads its own file
    c.close()
    wait_for(lambda: [p.name for p in files_under(uploads_dir)] == ["good.mp4"], what="other.webm to be deleted")
    assert shared.exists() and keep.predict("What is it?", api_name="/chat")
    keep.close()
    wait_for(lambda: not files_under(uploads_dir), what="good.mp4 to be deleted")
    assert 400 <= get(server, f"/gradio_api/file={shared}")[0] < 500  # another session's upload, once it ended
    assert not shared.parent.exists() and uploads_dir.exists()  # its folder went too

    # an example's bytes uploaded by someone: gradio gives the example's own cached copy, which stays
    asset = sorted((ROOT / "assets").glob("*.mp4"))[0]
    copy = shutil.copy(asset, tmp_path / asset.name)
    cached = [p for p in uploads_dir.glob(f"*/{asset.name}")]
    c = Client(server, verbose=False)
    assert c.predict(handle_file(str(copy)), 4, api_name="/upload")["name"] == asset.name
    c.close()
    wait_for(lambda: status(server)["sessions"] == 0, what="the session to close")
    assert cached and all(p.exists() for p in cached) and get(server, f"/gradio_api/file={cached[0]}")[0] == 200
    wait_for(lambda: status(server)["uploads"] == 0 and status(server)["sessions"] == 0, what="sessions to close")


# -- hostile input through the server -----------------------------------------------------------
def test_hostile_files_and_questions_get_one_readable_sentence(server, uploads_dir, good_video, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    html = tmp_path / "page.mp4"
    html.write_text("<html><body><script>alert(1)</script>not a video</body></html>")
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(good_video.read_bytes()[: good_video.stat().st_size // 3])
    audio = write_audio_only(tmp_path / "tone.m4a")
    audio_mp4 = tmp_path / "tone.mp4"
    shutil.copy(audio, audio_mp4)
    script = tmp_path / "evil.py"
    script.write_text("import os")

    c = Client(server, verbose=False)
    for bad in (empty, html, truncated, audio_mp4, audio, script):
        with pytest.raises(Exception) as e:
            c.predict(handle_file(str(bad)), 4, api_name="/upload")
        assert_readable(e.value)
        assert status(server)["ready"]  # the server still serves
    info = c.predict(handle_file(str(good_video)), 4, api_name="/upload")
    assert (info["name"], info["width"], info["height"], info["frames"]) == ("good.mp4", 96, 64, 4)
    c.predict({"max_new_tokens": 8, "min_new_tokens": 8}, api_name="/set_options")
    assert c.predict("What is in the video?", api_name="/chat")

    with pytest.raises(Exception) as e:
        c.predict("   ", api_name="/chat")
    assert_readable(e.value, "type a question")
    with pytest.raises(Exception) as e:
        c.predict("why" + "?" * 99_997, api_name="/chat")
    assert_readable(e.value, "100,000 characters", "limit is 4,000")
    with pytest.raises(Exception) as e:
        c.predict({"max_new_tokens": 100_000}, api_name="/set_options")
    assert_readable(e.value, r"max_new_tokens must be a whole number 1-1024")
    assert c.predict("And now?", api_name="/chat")  # the session is still usable
    assert [t["question"] for t in c.predict(api_name="/info")["turns"]] == ["What is in the video?", "And now?"]
    c.close()
    # the refused files went at once; the good one goes with the session
    wait_for(lambda: not files_under(uploads_dir), what="the hostile uploads to be deleted")
