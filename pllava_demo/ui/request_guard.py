"""What any HTTP request may reach and cost before a handler sees it: the routes the app uses (an
allow-list declared once; every other framework route answers 404), the size of a request body that
is not an upload (refused by Content-Length, and counted as it arrives, before anything parses it),
and how long a body may stall (a read timeout ends a request that stops sending).

Plain ASGI: knows no gradio and no files (upload_guard.py does the upload route, which has its own
budget). Another door on the same app (an HTTP API under its own prefix) is allowed with `allow_routes`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

# (methods, path pattern, body limit or None for --max-request-kb) of every route the page and
# gradio_client use; nothing else is served.
ROUTES: list[tuple[frozenset[str], re.Pattern, int | None]] = []


def allow_routes(pattern: str, methods: tuple[str, ...] = ("GET", "HEAD", "POST"), *,
                 max_body_bytes: int | None = None) -> None:
    """Serve paths matching `pattern` (a regular expression matched against the whole path; a plain
    prefix like "/v1/" also serves everything under it) for these methods, with bodies up to
    `max_body_bytes` (None: the server's --max-request-kb). Call before the first request."""
    if not pattern.startswith("^"):
        pattern = "^" + re.escape(pattern) + (".*" if pattern.endswith("/") else "/?") + "$"
    ROUTES.append((frozenset(m.upper() for m in methods), re.compile(pattern), max_body_bytes))


_GET = ("GET", "HEAD")
for _pattern, _methods in [
    (r"^/(config/?|theme\.css|favicon\.ico|robots\.txt|manifest\.json)?$", _GET),  # the page and its config
    (r"^/(assets|static|svelte)/.+$", _GET),  # the page's scripts, styles and fonts
    (r"^/gradio_api/(info/?|theme\.css|startup-events|upload_progress|app_id/?|login_check/?)$", _GET),
    (r"^/gradio_api/(file=|file/).+$", _GET),  # assets/ and uploads (serving.py limits which)
    (r"^/gradio_api/heartbeat/[^/]+$", _GET),
    (r"^/gradio_api/queue/data$", _GET),  # the event stream
    (r"^/gradio_api/queue/join$", ("POST",)),  # every event goes through the queue
    (r"^/gradio_api/(cancel|reset/?)$", ("POST",)),
    (r"^/gradio_api/upload$", ("POST",)),  # upload_guard.py budgets it
    (r"^/gradio_api/run/(predict|stop)/?$", ("POST",)),  # unqueued events (gradio refuses queued ones there)
]:
    allow_routes(_pattern, _methods)


def route_for(method: str, path: str) -> tuple | None:
    """The ROUTES entry serving this request, or None: not a route of this app."""
    return next((r for r in ROUTES if method in r[0] and r[1].match(path)), None)


class Refused(Exception):
    """A request ended by a guard: `code` and a one-sentence `message` are what the client gets."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


REFUSED_HEADER = b"x-pllava-refused"  # says which guard answered (a HEAD answer has no body to say it)


async def refuse(send, code: int, message: str, why: bytes = b"limit") -> None:
    body = json.dumps({"error": message, "detail": message}).encode()
    await send({"type": "http.response.start", "status": code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (REFUSED_HEADER, why)]})
    await send({"type": "http.response.body", "body": body})


def header(scope, name: bytes) -> bytes | None:
    return dict(scope.get("headers") or ()).get(name)


async def guarded_body(app, scope, receive, send, *, timeout_s: float,
                       on_chunk: Callable[[bytes], None], after: Callable[[], Awaitable[None] | None] | None = None):
    """Run `app` with a `receive` that waits `timeout_s` at most for each piece of the body and hands
    each piece to `on_chunk` (which raises Refused to end the request). A refused or stalled request
    looks disconnected to the app, and the client gets the refusal (408 for a stall) unless the app
    had already answered. `after` runs once the app is done, whatever happened."""
    state = {"refused": None, "started": False, "body_done": False}

    async def receive_guarded():
        if state["refused"] is not None:
            return {"type": "http.disconnect"}
        if state["body_done"]:  # after the body, receive only waits for a disconnect (an event stream)
            return await receive()
        try:
            message = await asyncio.wait_for(receive(), timeout_s)
        except asyncio.TimeoutError:
            state["refused"] = Refused(408, f"The request body stopped arriving for {timeout_s:g} s.")
            return {"type": "http.disconnect"}
        if message["type"] == "http.request":
            state["body_done"] = not message.get("more_body", False)
            try:
                on_chunk(message.get("body", b""))
            except Refused as e:
                state["refused"] = e
                return {"type": "http.disconnect"}
        return message

    async def send_watched(message):
        if state["refused"] is not None:  # the app's answer to a body it did not get: ours instead
            if message["type"] == "http.response.start" and not state["started"]:
                state["started"] = True
                await refuse(send, state["refused"].code, state["refused"].message)
            return
        if message["type"] == "http.response.start":
            state["started"] = True
        await send(message)

    try:
        await app(scope, receive_guarded, send_watched)
    except Exception:
        if state["refused"] is None:
            raise
    finally:
        if after is not None:
            result = after()
            if asyncio.iscoroutine(result):
                await result
    refused = state["refused"]
    if refused is not None:
        log.info("refused %s %s: %s", scope.get("method"), scope.get("path"), refused.message)
        if not state["started"]:
            await refuse(send, refused.code, refused.message)


class RouteGuard:
    """ASGI middleware: a route not in ROUTES answers 404; a request body that is not an upload is
    limited to `max_body_bytes` (by Content-Length first, then counted as it arrives) and to
    `timeout_s` between its pieces."""

    def __init__(self, app, *, max_body_bytes: int, timeout_s: float, upload_path: str = "/gradio_api/upload"):
        self.app, self.max_body, self.timeout_s, self.upload_path = app, int(max_body_bytes), float(timeout_s), upload_path

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        method, path = scope["method"], scope["path"]
        route = route_for(method, path)
        if route is None:
            log.info("refused %s %s: not a route of this app", method, path)
            return await refuse(send, 404, "Not found.", b"route")
        if path.rstrip("/") == self.upload_path:  # its own budget: upload_guard.py
            return await self.app(scope, receive, send)
        most = route[2] if route[2] is not None else self.max_body
        limit = f"Requests other than uploads are limited to {most // 1024:,} KB."
        length = header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > most):
            return await refuse(send, 413, limit)
        received = 0

        def count(chunk: bytes) -> None:
            nonlocal received
            received += len(chunk)
            if received > most:
                raise Refused(413, limit)

        await guarded_body(self.app, scope, receive, send, timeout_s=self.timeout_s, on_chunk=count)
