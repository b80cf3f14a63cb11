"""The named API endpoints (for gradio_client; per-client state, like a browser tab):

  /upload(file, num_frames) -> info      /chat(question) -> streamed answer text
  /set_options(changes: dict) -> info    /compare(changes: dict) -> {"a", "b", "labels"}
  /regenerate() -> answer   /clear() -> info   /info() -> info   /stop() -> stops this client's answer
  /status() -> model state, live sessions, cache sizes

Two /chat calls at once on one session are answered one after the other (handlers.answer).
Errors are gr.Error with one readable line (messages.guard).
"""

from __future__ import annotations

import dataclasses

import gradio as gr

from . import handlers as H
from . import view as V
from .. import api_types as A
from . import gpu_calls as gpu
from .events import GPU, Ctx
from .messages import guard


def _studio(ctx: Ctx, studio, request, upload=None) -> H.Studio:
    return H.ensure_studio(studio, ctx.holder, ctx.registry, getattr(request, "session_hash", None), upload)


def wire_api(ctx: Ctx) -> None:
    state = ctx.page.state
    with gr.Group(visible=False):  # the API-only endpoints' inputs and outputs
        api_file = gr.File()
        api_frames = gr.JSON(None)  # any JSON: api_types names the field when it is not a frame count
        api_question = gr.Textbox()
        api_changes = gr.JSON()
        api_answer = gr.Textbox()
        api_info = gr.JSON()

    @guard
    def api_upload(file, num_frames, studio, request: gr.Request = None, progress=gr.Progress()):
        studio = _studio(ctx, studio, request, upload=file)
        # num_frames is parsed at the door (api_types) after the file is held: a refused request deletes it
        gpu.load_video(studio, file, num_frames, progress)
        return V.video_info(studio), studio

    @guard
    def api_set_options(changes, studio, request: gr.Request = None, progress=gr.Progress()):
        studio = _studio(ctx, studio, request)
        gpu.set_options(studio, progress, **A.changes_dict(changes))
        return V.video_info(studio), studio

    @guard
    def api_chat(question, studio, request: gr.Request = None):
        studio = _studio(ctx, studio, request)
        for text in H.answer(studio, question, stream=gpu.stream_answer):
            yield text, studio

    @guard
    def api_regenerate(studio, request: gr.Request = None):
        studio = _studio(ctx, studio, request)
        for text in H.answer(studio, None, regenerate=True, stream=gpu.stream_answer):
            yield text, studio

    @guard
    def api_compare(changes, studio, request: gr.Request = None):
        studio = _studio(ctx, studio, request)
        for la, a, lb, b in gpu.compare(studio, **A.changes_dict(changes)):
            yield {"labels": [la, lb], "a": a, "b": b}, studio

    @guard
    def api_clear(studio, request: gr.Request = None):
        studio = _studio(ctx, studio, request)
        studio.stop.set()
        studio.session.clear()
        return V.video_info(studio), studio

    @guard
    def api_info_fn(studio, request: gr.Request = None):
        studio = _studio(ctx, studio, request)
        return {**V.video_info(studio), "turns": [dataclasses.asdict(t) for t in studio.session.turns]}, studio

    def api_status():
        return H.server_status(ctx.holder, ctx.registry, getattr(ctx.demo, "disk", None))

    def api_stop(request: gr.Request = None):
        studio = ctx.registry.get(getattr(request, "session_hash", None))
        if studio is not None:
            studio.stop.set()
        return {"stopped": studio is not None}

    hidden = gr.Button(visible=False)
    hidden.click(api_status, None, [api_info], api_name="status", concurrency_limit=None)
    hidden.click(api_upload, [api_file, api_frames, state], [api_info, state], api_name="upload", concurrency_id=GPU)
    hidden.click(api_set_options, [api_changes, state], [api_info, state], api_name="set_options", concurrency_id=GPU)
    hidden.click(api_chat, [api_question, state], [api_answer, state], api_name="chat", concurrency_id=GPU)
    hidden.click(api_regenerate, [state], [api_answer, state], api_name="regenerate", concurrency_id=GPU)
    hidden.click(api_compare, [api_changes, state], [api_info, state], api_name="compare", concurrency_id=GPU)
    hidden.click(api_clear, [state], [api_info, state], api_name="clear", concurrency_limit=None)
    hidden.click(api_info_fn, [state], [api_info, state], api_name="info", concurrency_limit=None)
    # not queued: it must reach a stream that is running while the queue is full
    hidden.click(api_stop, None, [api_info], api_name="stop", queue=False)
