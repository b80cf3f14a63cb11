"""What the served app adds around gradio's own routes: the upload folder's disk budget (checked on
gradio's upload route before a byte is written), the sweeper that deletes files nobody holds, and
the queue closed to direct calls.

Imports gradio only for facts about the running Blocks (its queue, its upload set); the file rules
themselves are in files.py. ui/page.py calls `attach` when it builds the page and ui/serving.py `start` when
it launches it.
"""

from __future__ import annotations

import contextlib
import json
import logging

from ..config import DEFAULT_LIMITS, Limits
from ..errors import ResourceError
from .files import DiskBudget, Sweeper
from .gradio_records import bound_gradio_records
from .request_guard import Refused, RouteGuard, guarded_body, header, refuse

log = logging.getLogger(__name__)


class UploadGuard:
    """ASGI middleware on POST .../gradio_api/upload: a request must say its size (Content-Length),
    its bytes are claimed from the upload folder's budget as they arrive (a request that claims a
    size and sends nothing holds nothing), a body that stalls for `timeout_s` is ended, a request
    carries `max_files` files at most, and the files it wrote are counted once it is done. Refused:
    503 and a sentence when the folder is full, 413 for too many files, 408 for a stall."""

    def __init__(self, app, disk: DiskBudget, *, timeout_s: float = 30.0, max_files: int = 16):
        self.app, self.disk, self.timeout_s, self.max_files = app, disk, float(timeout_s), int(max_files)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].rstrip("/").endswith("/gradio_api/upload"):
            return await self.app(scope, receive, send)
        length = header(scope, b"content-length")
        if length is None or not length.isdigit():
            return await refuse(send, 411, "Send the upload with a Content-Length header.")
        try:
            self.disk.room_for_files(1)
            with self.disk.reserve(int(length)):  # a size that cannot fit is refused before a byte
                pass
        except ResourceError as e:
            return await refuse(send, 503, str(e))
        counted = {"bytes": 0, "files": 0, "tail": b""}
        answer = bytearray()

        def on_chunk(chunk: bytes) -> None:
            seen = counted["tail"] + chunk
            counted["files"] += seen.count(b"filename=")  # one per file part; the tail cannot hold a whole one
            counted["tail"] = seen[-8:]
            if counted["files"] > self.max_files:
                raise Refused(413, f"Send at most {self.max_files} files in one upload.")
            try:
                self.disk.claim(len(chunk))
                self.disk.room_for_files(counted["files"])
            except ResourceError as e:
                raise Refused(503, str(e)) from None
            counted["bytes"] += len(chunk)

        async def send_kept(message):  # the answer names the files written: counted when done
            if message["type"] == "http.response.body" and len(answer) < 2**20:
                answer.extend(message.get("body", b""))
            await send(message)

        def done() -> None:
            self.disk.unclaim(counted["bytes"])
            with contextlib.suppress(ValueError, TypeError):
                paths = json.loads(bytes(answer))
                if isinstance(paths, list):
                    self.disk.add(p for p in paths if isinstance(p, str))

        await guarded_body(self.app, scope, receive, send_kept, timeout_s=self.timeout_s, on_chunk=on_chunk, after=done)


def pending_paths(demo) -> set[str]:
    """Files named by requests still waiting in the queue: an upload whose event is queued behind
    others is claimed, however long the wait."""
    queue = getattr(demo, "_queue", None)
    found: set[str] = set()

    def walk(x):
        if isinstance(x, dict):
            if isinstance(x.get("path"), str):
                found.add(x["path"])
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)

    for event in list(getattr(queue, "event_ids_to_events", {}).values()):
        walk(getattr(event.data, "data", None))
    return found


def attach(demo, uploads, examples: set[str], *, budget_mb: float, grace_s: float, limits: Limits = DEFAULT_LIMITS) -> None:
    """Give `demo` its DiskBudget (`demo.disk`) and Sweeper (`demo.sweeper`, started by `start`).
    Kept: files held by a session, the example videos' cached copies, files named by queued requests,
    and whatever gradio was told to keep (component defaults)."""
    def keep() -> set[str]:
        kept = {str(p) for p in uploads.held()} | set(examples) | pending_paths(demo)
        for block in list(demo.blocks.values()):
            kept |= set(getattr(block, "keep_in_cache", ()))
        return kept

    demo.disk = DiskBudget(uploads.root, int(budget_mb * 2**20), limits.max_upload_files)
    demo.sweeper = Sweeper(uploads.root, keep, grace_s, forget=demo.upload_file_set.discard, disk=demo.disk)
    demo.guard_limits = limits


def start(demo) -> dict:
    """Delete what a previous run left in the upload folder (a crash, a kill: nothing there is anyone's
    now), start sweeping, and return what `launch` adds to gradio's FastAPI app (the middleware)."""
    from starlette.middleware import Middleware

    sweeper = getattr(demo, "sweeper", None)
    if sweeper is None:
        return {}
    left = sweeper.sweep(now=float("inf"))
    if left:
        log.info("deleted %d file(s) a previous run left in %s", len(left), sweeper.root)
    sweeper.start(interval=max(0.5, min(30.0, sweeper.grace / 3)))
    limits = demo.guard_limits
    bound_gradio_records(demo, limits)
    return {"middleware": [
        Middleware(RouteGuard, max_body_bytes=int(limits.max_request_kb * 1024), timeout_s=limits.body_timeout_s),
        Middleware(UploadGuard, disk=demo.disk, timeout_s=limits.body_timeout_s, max_files=limits.max_files_per_upload),
    ]}
