"""A stand-in for ZeroGPU's device scheduler: the small HTTP API that `spaces/zero/client.py` calls
(`POST /startup-report`, `/schedule`, `/allow`, `/release`), served for real on 127.0.0.1 so that the
real `spaces` client, fork and queue code run against it. Only that HTTP boundary is replaced.

What it answers, read from spaces 0.51.3 (`zero/api.py`, `zero/client.py`, `zero/wrappers.py`):
- /schedule?cgroupPath&taskId&enableQueue&tokenVersion&durationSeconds -> 200 JSON
  {idle, nvidiaIndex, nvidiaUUID, allowToken}. `idle: false` makes spaces fork a fresh worker
  from the main process instead of reusing the last one (it reuses only an idle, live worker);
  `reuse` switches between the two. A duration above `max_duration_s` gets 429 with a negative
  `wait`, which spaces reports as "The requested GPU duration (...) is larger than the maximum allowed".
- /allow?allowToken&pid: the worker announces its pid (one pid per forked worker) -> 200.
- /release?allowToken&fail -> 200.
Every call is recorded in `calls`, with the time, for the tests to read.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class Scheduler:
    def __init__(self, max_duration_s: int = 120):
        self.reuse = True
        self.max_duration_s = max_duration_s
        self.calls: list[dict] = []
        self._tokens = itertools.count()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "Scheduler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def of(self, path: str) -> list[dict]:
        with self._lock:
            return [c for c in self.calls if c["path"] == path]

    def worker_pids(self) -> list[int]:
        """The pid of each worker process spaces forked, in order (each announces itself once)."""
        pids = []
        for c in self.of("/allow"):
            if int(c["pid"]) not in pids:
                pids.append(int(c["pid"]))
        return pids

    def gpu_calls(self) -> list[dict]:
        """One record per scheduled call: requested seconds and measured seconds until its release."""
        released = {c["allowToken"]: c for c in self.of("/release")}
        out = []
        for s in self.of("/schedule"):
            r = released.get(s.get("token_given"))
            out.append({"task": s["taskId"], "requested_s": int(s["durationSeconds"]),
                        "measured_s": (r["t"] - s["t"]) if r else None, "failed": r and r["fail"] == "True"})
        return out

    def _handler(self):
        sched = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                url = urlparse(self.path)
                call = {k: v[0] for k, v in parse_qs(url.query).items()}
                call.update(path=url.path, t=time.monotonic())
                status, body = 200, None
                if url.path == "/schedule":
                    if int(call.get("durationSeconds", 60)) > sched.max_duration_s:
                        status, body = 429, {"left": 0, "wait": -1}
                    else:
                        token = f"token-{next(sched._tokens)}"
                        call["token_given"] = token
                        body = {"idle": sched.reuse, "nvidiaIndex": 0, "nvidiaUUID": "GPU-standin", "allowToken": token}
                elif url.path not in ("/startup-report", "/allow", "/release"):
                    status = 404
                with sched._lock:
                    sched.calls.append(call)
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def app_tracebacks(log: str) -> list[str]:
    """Tracebacks in the app's log, less the asyncio noise of a forked worker: spaces closes the
    server's sockets in each worker, and the event loop the fork copied then fails to close them
    at exit ("Exception ignored in: <function BaseEventLoop.__del__")."""
    blocks = log.split("Traceback (most recent call last):")
    return [b for prev, b in zip(blocks, blocks[1:]) if "BaseEventLoop.__del__" not in prev.splitlines()[-1]]
