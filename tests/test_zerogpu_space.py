"""`python app.py` started the way a ZeroGPU Space starts it: no flags, the Space's environment
variables (SPACE_ID, SYSTEM=spaces, GRADIO_SERVER_NAME=0.0.0.0, GRADIO_SERVER_PORT, SPACES_ZERO_GPU),
the settings as Space variables (PLLAVA_MODEL), the real `spaces` package against the stand-in
scheduler. It must import spaces before torch, start without asking for a GPU (no example is
cached), listen on 0.0.0.0, and then answer through GPU calls. spaces_config/ must describe it.
"""

import os
import re
import subprocess
import sys
import time
import urllib.request

import gradio
import psutil
from gradio_client import handle_file
from ui_server import Client, ROOT, free_port, stop_process, wait_until_ready
from videos import write_video
from zerogpu_scheduler import Scheduler, app_tracebacks

SITE = ROOT / "tests" / "zerogpu_site"


def space_env(scheduler: Scheduler, model, port: int, tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLLAVA_", "GRADIO_", "SPACE"))}
    env.update(SPACE_ID="someone/pllava-studio", SPACE_AUTHOR_NAME="someone", SPACE_REPO_NAME="pllava-studio",
               SPACE_HOST="someone-pllava-studio.hf.space", SYSTEM="spaces", GRADIO_SERVER_NAME="0.0.0.0",
               GRADIO_SERVER_PORT=str(port), SPACES_ZERO_GPU="true", SPACES_ZERO_DEVICE_API_URL=scheduler.url,
               PLLAVA_MODEL=str(model), HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False",
               GRADIO_TEMP_DIR=str(tmp_path / "uploads"), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(SITE), str(ROOT)]))
    return env


def listening_on(pid: int, port: int) -> set[str]:
    return {c.laddr.ip for c in psutil.Process(pid).net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def test_app_starts_like_a_zerogpu_space(tiny_official, tmp_path):
    port = free_port()
    video = write_video(tmp_path / "clip.mp4", n_frames=24, width=128, height=96)
    with Scheduler() as scheduler:
        env = space_env(scheduler, tiny_official, port, tmp_path)
        log_path = tmp_path / "app.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, start_new_session=True,
                                    stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90
            while True:
                assert proc.poll() is None, log_path.read_text()[-3000:]
                try:
                    urllib.request.urlopen(url + "/", timeout=2)
                    break
                except OSError:
                    assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                    time.sleep(0.3)
            wait_until_ready(url)
            assert listening_on(proc.pid, port) == {"0.0.0.0"}
            text = log_path.read_text()
            assert "ZeroGPU: spaces imported before torch (ZeroGPU mode: true)" in text
            assert "torch was imported before spaces" not in text
            # started, page served, model loaded: spaces reported in, and no GPU was asked for
            assert len(scheduler.of("/startup-report")) == 1 and scheduler.of("/schedule") == []
            assert not (ROOT / ".gradio" / "cached_examples").exists()

            c = Client(url, verbose=False)
            info = c.predict(handle_file(str(video)), 4, api_name="/upload")
            c.predict({"pooling": [2, 3, 3], "max_new_tokens": 8, "min_new_tokens": 8}, api_name="/set_options")
            answer = c.predict("What happens?", api_name="/chat")
            assert info["frames"] == 4 and answer
            assert c.predict(api_name="/info")["turns"][-1]["answer"] == answer
            c.close()
            assert len(scheduler.of("/schedule")) == 2 and len(scheduler.worker_pids()) == 2  # encode, answer
            assert app_tracebacks(log_path.read_text()) == []
        finally:
            stop_process(proc)


def front_matter(path) -> dict:
    head = path.read_text().split("---")[1]
    return dict(re.findall(r"^(\w+): *(.+)$", head, re.M))


def test_spaces_config_describes_this_app():
    meta = front_matter(ROOT / "spaces_config" / "README.md")
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert meta["sdk_version"] == gradio.__version__  # the gradio the tests ran
    pins = dict(re.findall(r"^([\w\-\[\]]+)==(\S+)", (ROOT / "requirements.txt").read_text(), re.M))
    space = dict(re.findall(r"^([\w\-\[\]]+)==(\S+)", (ROOT / "spaces_config" / "requirements.txt").read_text(), re.M))
    assert space and all(pins[name] == version for name, version in space.items())
    assert "gradio" not in space  # it comes from sdk_version; a second pin would fight it
    assert "spaces" not in space  # ZeroGPU installs its own, matched to its scheduler
