"""What the served app adds around gradio's own routes: the upload folder's disk budget (checked on
gradio's upload route before a byte is written), the sweeper that deletes files nobody holds, and
the queue closed to direct calls.

Imports gradio only for facts about the running Blocks (its queue, its upload set); the file rules
themselves are in files.py. ui/page.py calls `attach` when it builds the page and ui/serving.py `start` when
it launches it.
"""

from __future__ import annotations

import json

from ..errors import ResourceError
from .files import DiskBudget, Sweeper


class UploadGuard:
    """ASGI middleware on POST .../gradio_api/upload: a request must say its size (Content-Length),
    and is refused with 503 and a sentence when the upload folder's budget cannot hold it. One
    request may carry 1,000 files at the size limit: the budget counts the whole request."""

    def __init__(self, app, disk: DiskBudget):
        self.app, self.disk = app, disk

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].rstrip("/").endswith("/gradio_api/upload"):
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is None or not length.isdigit():
            return await _refuse(send, 411, "Send the upload with a Content-Length header.")
        try:
            with self.disk.reserve(int(length)):
                return await self.app(scope, receive, send)
        except ResourceError as e:
            return await _refuse(send, 503, str(e))


async def _refuse(send, code: int, message: str) -> None:
    body = json.dumps({"error": message, "detail": message}).encode()
    await send({"type": "http.response.start", "status": code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


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


def attach(demo, uploads, examples: set[str], *, budget_mb: float, grace_s: float) -> None:
    """Give `demo` its DiskBudget (`demo.disk`) and Sweeper (`demo.sweeper`, started by `start`).
    Kept: files held by a session, the example videos' cached copies, files named by queued requests,
    and whatever gradio was told to keep (component defaults)."""
    def keep() -> set[str]:
        kept = {str(p) for p in uploads.held()} | set(examples) | pending_paths(demo)
        for block in list(demo.blocks.values()):
            kept |= set(getattr(block, "keep_in_cache", ()))
        return kept

    demo.disk = DiskBudget(uploads.root, int(budget_mb * 2**20))
    demo.sweeper = Sweeper(uploads.root, keep, grace_s, forget=demo.upload_file_set.discard)


def start(demo) -> dict:
    """Start sweeping and return what `launch` adds to gradio's FastAPI app (the middleware)."""
    from starlette.middleware import Middleware

    sweeper = getattr(demo, "sweeper", None)
    if sweeper is None:
        return {}
    sweeper.start(interval=max(0.5, min(30.0, sweeper.grace / 3)))
    return {"middleware": [Middleware(UploadGuard, disk=demo.disk)]}
