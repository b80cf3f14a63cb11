"""The named API endpoints (for gradio_client; per-client state, like a browser tab):

  /upload(file, num_frames) -> info      /chat(question) -> streamed answer text
  /set_options(changes: dict) -> info    /compare(changes: dict) -> {"a", "b", "labels"}
  /regenerate() -> answer   /clear() -> info   /info() -> info   /stop() -> stops this client's answer
  /status() -> model state, live sessions, cache sizes

A thin door over the studio (studio/tab.py): each endpoint is one command of the client's tab. Two
/chat calls at once on one session are answered one after the other (tab.py's answer slot).
Errors are gr.Error with one readable line (messages.guard).
"""

from __future__ import annotations

import gradio as gr

from .. import api_types
from ..studio import tab as tabs
from ..studio.model_holder import server_status
from . import view
from .event_context import GPU, Ctx, PageProgress
from .messages import guard


def wire_api(ctx: Ctx) -> None:
    state = ctx.page.state  # the client's tab id, as on the page: the registry owns the tab
    with gr.Group(visible=False):  # the API-only endpoints' inputs and outputs
        api_file = gr.File()
        api_frames = gr.JSON(None)  # any JSON: api_types names the field when it is not a frame count
        api_question = gr.Textbox()
        api_changes = gr.JSON()
        api_answer = gr.Textbox()
        api_info = gr.JSON()

    def tab(key, request, upload=None) -> tabs.Tab:
        return ctx.registry.tab(key or getattr(request, "session_hash", None), upload)

    @guard
    def api_upload(file, num_frames, key, request: gr.Request = None, progress=gr.Progress()):
        studio = tab(key, request, upload=file)
        # num_frames is parsed at the door (api_types) after the file is held: a refused request deletes it
        tabs.load_video(studio, file, num_frames, PageProgress(progress))
        return view.video_info(studio), studio.id

    @guard
    def api_set_options(changes, key, request: gr.Request = None, progress=gr.Progress()):
        studio = tab(key, request)
        tabs.set_options(studio, PageProgress(progress), **api_types.changes_dict(changes))
        return view.video_info(studio), studio.id

    @guard
    def api_chat(question, key, request: gr.Request = None):
        studio = tab(key, request)
        for text in tabs.answer(studio, question):
            yield text, studio.id

    @guard
    def api_regenerate(key, request: gr.Request = None):
        studio = tab(key, request)
        for text in tabs.answer(studio, None, regenerate=True):
            yield text, studio.id

    @guard
    def api_compare(changes, key, request: gr.Request = None):
        studio = tab(key, request)
        for la, a, lb, b in tabs.compare(studio, **api_types.changes_dict(changes)):
            yield {"labels": [la, lb], "a": a, "b": b}, studio.id

    @guard
    def api_clear(key, request: gr.Request = None):
        studio = tab(key, request)
        tabs.clear(studio)
        return view.video_info(studio), studio.id

    @guard
    def api_info_fn(key, request: gr.Request = None):
        studio = tab(key, request)
        return {**view.video_info(studio), "turns": tabs.turns(studio)}, studio.id

    def api_status():
        return server_status(ctx.holder, ctx.registry, getattr(ctx.demo, "disk", None))

    def api_stop(request: gr.Request = None):
        return {"stopped": tabs.stop(ctx.registry.get(getattr(request, "session_hash", None)))}

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
