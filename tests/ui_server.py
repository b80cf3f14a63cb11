"""Start the real app (`python app.py`) on a free loopback port for the server and browser tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import gradio_client

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def app_process(model: Path, log_path: Path, *extra: str, timeout: float = 90.0, env: dict | None = None):
    """Yields (url, process) once the server answers; `env` adds environment variables."""
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1", **(env or {}))
    cmd = [sys.executable, str(ROOT / "app.py"), "--model", str(model), "--device", "cpu",
           "--port", str(port), "--host", "127.0.0.1", *extra]
    with open(log_path, "wb") as log:
        # its own process group: stop_process ends the workers it forks too (ZeroGPU mode forks one per call)
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"app.py exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
                try:
                    urllib.request.urlopen(url + "/gradio_api/info", timeout=2)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"app.py did not start:\n{log_path.read_text()[-3000:]}") from None
                    time.sleep(0.3)
            yield url, proc
        finally:
            stop_process(proc)


def stop_process(proc: subprocess.Popen) -> None:
    """Ends a server and every process it started (its process group): politely first, then for sure."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass
    try:  # the server if it is still there, and any worker it left behind
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


@contextlib.contextmanager
def running_app(model: Path, log_path: Path, *extra: str, timeout: float = 90.0, env: dict | None = None):
    with app_process(model, log_path, *extra, timeout=timeout, env=env) as (url, _):
        yield url


class Client(gradio_client.Client):
    """gradio_client's Client for the server tests.
    - A call waits until the event stream of the one before it has closed. The server closes a
      session's stream once no event of it is left; a call sent in that moment is put on the closing
      stream and raises CancelledError, though the server runs it (gradio_client 2.7.2; seen in CI
      with 16 clients on 2 cores, the turn after a cancel).
    - `predict` gives up after CALL_TIMEOUT_S (TimeoutError naming the endpoint) instead of waiting
      forever for an answer that does not come (gradio_client's own has no limit)."""

    CALL_TIMEOUT_S = 120.0

    def predict(self, *args, api_name: str | None = None, **kwargs):
        job = self.submit(*args, api_name=api_name, **kwargs)
        try:
            return job.result(timeout=self.CALL_TIMEOUT_S)
        except TimeoutError:
            raise TimeoutError(f"{api_name} gave no result in {self.CALL_TIMEOUT_S:.0f} s: {job.status()}") from None

    def submit(self, *args, **kwargs):
        deadline = time.monotonic() + 5.0
        while self.stream_open and not self.pending_event_ids and time.monotonic() < deadline:
            time.sleep(0.005)
        return super().submit(*args, **kwargs)


def wait_until_ready(url, timeout=60.0):
    c, deadline = Client(url, verbose=False), time.monotonic() + timeout
    try:
        while not (status := c.predict(api_name="/status"))["ready"]:
            assert status["error"] is None and time.monotonic() < deadline, status
            time.sleep(0.2)
    finally:
        c.close()
    return status
