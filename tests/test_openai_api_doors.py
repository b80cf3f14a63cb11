"""The API's doors besides `python app.py`: `python -m pllava_demo serve` (API only) answers as the engine does
directly; 503 while the model loads, then answers; ZeroGPU refuses with one sentence; the start-up warning
for an API reachable beyond this machine without a key; the app's flags. Servers are real (uvicorn on
127.0.0.1), clients the real `openai` package."""

from __future__ import annotations

import base64
import importlib.util
import logging
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import openai
import pytest
import uvicorn
from fastapi import FastAPI
from ui_server import ROOT, free_port, stop_process
from videos import write_video

from pllava_demo.config import GenerationSettings
from pllava_demo.openai_api import mount
from pllava_demo.openai_api.routes import ZEROGPU
from pllava_demo.openai_api.service import ApiSettings
from pllava_demo.studio.model_holder import ModelHolder


class _Server(uvicorn.Server):
    def __init__(self, config):
        super().__init__(config)
        self.up = threading.Event()

    async def startup(self, sockets=None):
        await super().startup(sockets)
        self.up.set()


@pytest.fixture
def serving():
    """serving(app) -> the /v1 base URL of `app` run by uvicorn on 127.0.0.1 (stopped after the test)."""
    servers = []

    def start(app) -> str:
        port = free_port()
        server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        assert server.up.wait(30)
        servers.append(server)
        return f"http://127.0.0.1:{port}/v1"

    yield start
    for server in servers:
        server.should_exit = True


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("doors") / "clip.mp4", n_frames=12, width=64, height=48)


def request(clip, question="What happens?") -> list[dict]:
    url = "data:video/mp4;base64," + base64.b64encode(clip.read_bytes()).decode()
    return [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": url}},
                                         {"type": "text", "text": question}]}]


def test_503_while_the_model_loads_then_answers(tiny_official, serving, clip):
    holder = ModelHolder(str(tiny_official), device="cpu", quantization="none")  # not started yet: "loading"
    client = openai.OpenAI(base_url=serving(_app(holder, ApiSettings())), api_key="-", max_retries=0)
    for call in (client.models.list,
                 lambda: client.chat.completions.create(model="m", messages=request(clip))):
        with pytest.raises(openai.InternalServerError) as e:
            call()
        assert e.value.status_code == 503 and "still loading" in e.value.body["message"]
    assert holder.start().wait(120) and holder.error is None
    model = client.models.list().data[0].id
    assert client.chat.completions.create(model=model, messages=request(clip), max_tokens=4).choices[0].message.content


def test_zerogpu_refuses_with_one_sentence(monkeypatch, serving, clip, caplog):
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.delenv("PLLAVA_NO_ZEROGPU", raising=False)
    with caplog.at_level(logging.WARNING):
        client = openai.OpenAI(base_url=serving(_app(ModelHolder("x"), ApiSettings())), api_key="-", max_retries=0)
    assert ZEROGPU in caplog.text and ZEROGPU.count(". ") == 0 and ZEROGPU.endswith(".")
    for call in (client.models.list, lambda: client.chat.completions.create(model="x", messages=request(clip))):
        with pytest.raises(openai.InternalServerError) as e:
            call()
        assert e.value.status_code == 503 and e.value.body["message"] == ZEROGPU


@pytest.mark.parametrize("settings, warned", [(ApiSettings(exposed=True), True),
                                              (ApiSettings(exposed=True, api_key="k"), False),
                                              (ApiSettings(exposed=False), False)])
def test_a_reachable_api_without_a_key_is_warned_about(settings, warned, caplog):
    with caplog.at_level(logging.WARNING):
        mount(FastAPI(), ModelHolder("x"), settings)
    assert ("without a key" in caplog.text) == warned


def test_the_app_flags():
    spec = importlib.util.spec_from_file_location("pllava_app", ROOT / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    from pllava_demo.openai_api.flags import settings_from_args

    def settings(*argv):
        args = app.parse_args(list(argv))
        return settings_from_args(args, max_file_mb=args.max_file_size, host=args.host, share=args.share)

    assert settings("--no-openai-api") is None
    default = settings()
    assert default.api_key is None and not default.exposed and not default.media.allow_urls
    assert default.media.allowed_dir is None
    opened = settings("--host", "0.0.0.0", "--api-key", "k", "--allow-media-urls", "--allowed-media-dir", str(ROOT))
    assert opened.exposed and opened.api_key == "k" and opened.media.allow_urls and opened.media.allowed_dir == ROOT
    assert settings("--share").exposed


def test_serve_answers_as_the_engine_does(tiny_official, engine, clip, tmp_path):
    port = free_port()
    log = tmp_path / "serve.log"
    cmd = [sys.executable, "-m", "pllava_demo", "serve", "--model", str(tiny_official), "--device", "cpu",
           "--quantization", "none", "--port", str(port), "--api-key", "k"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0, timeout=120)
        model = _wait_for_model(client, proc, log)
        r = client.chat.completions.create(model=model, messages=request(clip), temperature=0, max_tokens=24,
                                           extra_body={"num_frames": 8, "min_tokens": 8})
        with pytest.raises(urllib.error.HTTPError) as e:  # no page here
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10)
        assert e.value.code == 404
    finally:
        stop_process(proc)
    session = engine.new_session()
    session.set_video(clip, 8)
    direct = "".join(session.ask("What happens?", pooling_shape=(8, 12, 12),
                                 settings=GenerationSettings(max_new_tokens=24, min_new_tokens=8)))
    assert r.choices[0].message.content == direct != ""
    assert r.usage.prompt_tokens_details.video_tokens == 8 * 12 * 12


def _app(holder, settings) -> FastAPI:
    app = FastAPI()
    mount(app, holder, settings)
    return app


def _wait_for_model(client, proc, log, timeout: float = 120.0) -> str:
    """The model's name once `serve` answers /v1/models (connection refused, then 503 while it loads)."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            return client.models.list().data[0].id
        except (openai.APIConnectionError, openai.InternalServerError):
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)


def test_a_client_gone_mid_stream_stops_its_answer_and_frees_its_place(engine, serving, clip):
    app = FastAPI()
    service = mount(app, ModelHolder.ready(engine), ApiSettings(concurrency=1, max_queue=0))
    client = openai.OpenAI(base_url=serving(app), api_key="-", max_retries=0, timeout=120)
    model = client.models.list().data[0].id
    before = engine.stats["decode_steps"]
    stream = client.chat.completions.create(model=model, messages=request(clip), stream=True, max_tokens=1000,
                                            extra_body={"min_tokens": 1000, "num_frames": 4})
    assert any(chunk.choices and chunk.choices[0].delta.content for chunk in stream)  # it is answering
    stream.close()
    deadline = time.monotonic() + 60
    while service._active:  # the answer's thread ends once its row has left the batch
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert engine.stats["decode_steps"] - before < 1000  # stopped early
    # its place is free again (one answer at a time, nobody waiting: it would be 429 otherwise)
    assert client.chat.completions.create(model=model, messages=request(clip), max_tokens=4,
                                          extra_body={"num_frames": 4}).choices[0].message.content


def test_kept_conversations_hold_no_video_the_feature_cache_let_go(engine, clip, tmp_path):
    from pllava_demo.openai_api.conversations import Conversations
    from pllava_demo.studio import tab as tabs
    from pllava_demo.studio.options import default_options

    other = write_video(tmp_path / "other.mp4", n_frames=10, width=64, height=48)
    pool, studios = Conversations(), []
    for path in (clip, other):
        studio = pool.take(engine, "key", default_options(engine).system, ())
        tabs.load_video(studio, path, 2)
        studios.append(studio)
    pool.give_back(studios[0])
    assert len(pool) == 1
    engine.feature_cache.pop(studios[0].video.key)  # the cache's budget let the first video go
    pool.give_back(studios[1])
    assert len(pool) == 1 and studios[0].video is None and studios[1].video is not None
    assert pool.take(engine, studios[1].video.clip.content_key, studios[1].session.system, ()) is studios[1]


def test_a_model_that_failed_to_load_is_a_500_that_says_why(tmp_path, serving, clip):
    holder = ModelHolder(str(tmp_path / "no-such-checkpoint"), device="cpu").start()
    assert holder.wait(60) and holder.error
    client = openai.OpenAI(base_url=serving(_app(holder, ApiSettings())), api_key="-", max_retries=0)
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="m", messages=request(clip))
    assert e.value.status_code == 500 and "failed to load" in e.value.body["message"]
    assert str(tmp_path) not in e.value.body["message"]  # the server's paths are nobody's business
