"""The HTTP door: `GET /v1/models`, `POST /v1/chat/completions` (JSON, or server-sent events with
`stream: true`), Bearer key check, request size cap, and errors in OpenAI's shape.

A streamed answer is read in a thread of its own (the engine's stream blocks) and handed to the event
loop piece by piece; a client that goes away stops the answer after its next token.

Knows FastAPI/Starlette and the protocol's response shapes; the work is service.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import threading
import time
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..api_types import Bounds
from ..errors import PllavaError
from .errors import ApiError, bad
from .request import parse_request
from .service import ChatService, api_error

log = logging.getLogger(__name__)
ZEROGPU = ("The OpenAI-compatible API does not run on ZeroGPU, where each answer runs in its own GPU worker "
           "process; use the page or gradio_client's /chat there.")
UNEXPECTED = "Something went wrong on the server; please try again."
_DONE = object()


def error_response(e: ApiError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status)


def make_router(service: ChatService, *, refuse: str | None = None) -> APIRouter:
    """The /v1 routes; with `refuse`, each answers 503 with that sentence."""
    router = APIRouter(prefix="/v1")
    key = service.settings.api_key

    def check(request: Request) -> None:
        if refuse:
            raise ApiError(503, refuse, code="unavailable")
        if key is not None:
            given = request.headers.get("authorization", "")
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), key.encode()):
                raise ApiError(401, "Incorrect or missing API key: send it as 'Authorization: Bearer KEY'.",
                               code="invalid_api_key")

    @router.get("/models")
    async def models(request: Request):
        try:
            check(request)
            service.engine()  # 503 while the model loads
        except ApiError as e:
            return error_response(e)
        return {"object": "list", "data": [{"id": service.model_name, "object": "model", "created": STARTED,
                                             "owned_by": "pllava-studio"}]}

    @router.post("/chat/completions")
    async def chat_completions(request: Request):
        try:
            check(request)
            payload = await _read_json(request, service)
            req = parse_request(payload, Bounds.of(service.engine()))
            if req.model != service.model_name:
                raise ApiError(404, f"The model {req.model!r} does not exist; this server serves "
                                    f"{service.model_name!r}.", "model", "model_not_found")
            service.enter()
        except ApiError as e:
            return error_response(e)
        streaming = False
        try:
            answer = await run_in_threadpool(service.start, req)
            ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
            if not req.stream:
                text = await run_in_threadpool(answer.text)
                return {"id": ident, "object": "chat.completion", "created": created, "model": req.model,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                     "finish_reason": answer.finish_reason, "logprobs": None}],
                        "usage": answer.usage}
            streaming = True  # the stream holds the place in the queue until it ends
            pieces = _produce(answer, service.leave)
            return StreamingResponse(_events(answer, pieces, ident, created, req),
                                     media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        except ApiError as e:
            return error_response(e)
        except PllavaError as e:  # a check of the page's own (a system prompt's length, ...)
            return error_response(api_error(e))
        except Exception:  # noqa: BLE001 - the client gets one line, the log the traceback
            log.exception("chat completion failed")
            return error_response(ApiError(500, UNEXPECTED))
        finally:
            if not streaming:
                service.leave()

    return router


STARTED = int(time.time())


async def _read_json(request: Request, service: ChatService):
    """The body, at most one media file's size (base64) plus 1 MiB of text, as JSON."""
    limit = service.settings.media.max_bytes * 4 // 3 + 2**20
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise ApiError(413, f"The request is over the server's limit of {limit / 2**20:.0f} MB.",
                       code="request_too_large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"The request is over the server's limit of {limit / 2**20:.0f} MB.",
                           code="request_too_large")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise bad("The request body is not valid JSON.") from None


def _sse(obj) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"


def _produce(answer, leave) -> asyncio.Queue:
    """Start reading the answer in a thread of its own, into a queue the event loop reads: pieces of text,
    then an ApiError or nothing, then _DONE. The place in the queue is left when the thread ends, whether or
    not anyone reads the stream."""
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue = asyncio.Queue()

    def put(item) -> None:
        with contextlib.suppress(RuntimeError):  # the server has stopped: nobody to tell
            loop.call_soon_threadsafe(pieces.put_nowait, item)

    def produce():
        try:
            for delta in answer.deltas():
                put(delta)
        except ApiError as e:
            put(e)
        except Exception:  # noqa: BLE001 - the client gets one line, the log the traceback
            log.exception("streamed answer failed")
            put(ApiError(500, UNEXPECTED))
        finally:
            leave()
            put(_DONE)

    threading.Thread(target=produce, name="openai-stream", daemon=True).start()
    return pieces


async def _events(answer, pieces: asyncio.Queue, ident: str, created: int, req):
    """The answer as chat.completion.chunk events, then [DONE]."""
    def chunk(delta: dict, finish=None, **extra) -> bytes:
        return _sse({"id": ident, "object": "chat.completion.chunk", "created": created, "model": req.model,
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra})

    try:
        yield chunk({"role": "assistant", "content": ""})
        while True:
            items = [await pieces.get()]
            while not pieces.empty():  # pieces that came while the last event was sent go out as one event
                items.append(pieces.get_nowait())
            text = "".join(i for i in items if isinstance(i, str))
            if text:
                yield chunk({"content": text})
            failed = next((i for i in items if isinstance(i, ApiError)), None)
            if failed is not None:
                yield _sse(failed.body())
                return
            if any(i is _DONE for i in items):
                break
        yield chunk({}, answer.finish_reason)
        if req.include_usage:
            yield _sse({"id": ident, "object": "chat.completion.chunk", "created": created, "model": req.model,
                        "choices": [], "usage": answer.usage})
        yield b"data: [DONE]\n\n"
    finally:
        answer.cancel()  # a client gone mid-answer: the row leaves the batch after its next token
