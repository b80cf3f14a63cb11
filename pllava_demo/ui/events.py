"""What the page does, wired: one plain function per event (video_events.py, chat_events.py), taking
the values it reads as a dict keyed by component (gradio's set inputs) and returning the components it
changes, by name; gradio's plain chained events here, nothing else. A thin door over the
studio (studio/tab.py): the page's state holds only the tab's id; the registry owns the tab, and no
event writes a tab back (the id it writes keeps the state's idle timer running).

A failure is one line in the page's notice box (`Page.notice`) and nothing else: handlers here never
raise to gradio, so no toast and no red "Error" pill on the chat, the gallery or the heat map.
The chat's turns belong to the engine's session; the chat box only ever shows `history(tab)`.
"""

from __future__ import annotations

import functools
import inspect
import typing

import gradio as gr

from .chat_events import (on_chat, on_clear, on_compare, on_download, on_frame_select, on_idle, on_new_video,
                          on_regenerate, on_stop)
from .event_context import GPU, Ctx, noticed
from .video_events import (on_frame_range, on_frames, on_page_load, on_pooling, on_range, on_strategy, on_video,
                           on_viewport)

# -- wiring -----------------------------------------------------------------------------------------
def _bind(ctx: Ctx, fn, *bound):
    """fn with ctx (and `bound`) given, keeping its signature and its resolved type hints for gradio:
    a bare functools.partial has no hints, so gradio would pass no gr.Request (no session id: the
    registry would never know the page's studios) and no gr.SelectData."""
    part = functools.partial(noticed(fn), ctx, *bound)
    if inspect.isgeneratorfunction(fn):
        def call(*args, **kwargs):
            yield from part(*args, **kwargs)
    else:
        def call(*args, **kwargs):
            return part(*args, **kwargs)
    call.__name__ = call.__qualname__ = fn.__name__
    call.__signature__ = inspect.signature(part)
    call.__annotations__ = typing.get_type_hints(fn)
    return call


def wire(demo: gr.Blocks, ctx: Ctx) -> None:
    p = ctx.page
    settings = {p.state, *p.options.values()}
    private = dict(api_visibility="private")
    view_out = [p.state, p.chatbot, p.gallery, p.view_md, p.heatmap, p.notice, p.start, p.end, p.pool_t,
                p.strategy_image, p.page_state, p.video, p.upload]

    demo.load(functools.partial(on_page_load, ctx), None,
              [p.status, p.frames, p.pool_t, p.pool_h, p.pool_w, p.alpha, p.max_new, p.msg, p.send, p.regen,
               p.compare_btn, p.video, p.upload, p.notice, *p.knobs.values()]
              + ([p.examples.dataset] if p.examples is not None else []),
              concurrency_limit=None, **private)

    # the window's width comes from the browser (the js), then the server folds the settings on a phone
    demo.load(_bind(ctx, on_viewport), {p.viewport}, [p.settings], js="() => window.innerWidth", queue=False,
              **private)

    for component in (p.video, p.upload):
        # one progress bar, on the frames being decoded (not on every panel the event writes)
        component.change(_bind(ctx, on_video, component), {p.video, p.upload, *settings}, view_out,
                         concurrency_id=GPU, trigger_mode="always_last", show_progress_on=[p.gallery], **private)
    # the sliders' own events take their values raw and clamp them (changes_from): no red "Error" for 99 frames
    p.frames.change(_bind(ctx, on_frames), settings, [p.frames, p.state, p.pool_t, p.gallery, p.view_md, p.heatmap,
                                                      p.notice, p.strategy_image],
                    concurrency_id=GPU, trigger_mode="always_last", preprocess=False, show_progress_on=[p.gallery],
                    **private)
    range_out = [p.state, p.gallery, p.view_md, p.heatmap, p.notice, p.strategy_image, p.start, p.end]
    gr.on([p.start.submit, p.start.blur, p.end.submit, p.end.blur], _bind(ctx, on_range), {p.start, p.end, p.state},
          range_out, concurrency_id=GPU, trigger_mode="always_last", show_progress_on=[p.gallery], **private)
    for button, which in ((p.from_frame, "start"), (p.to_frame, "end"), (p.whole, "whole")):
        button.click(_bind(ctx, on_frame_range, which), {p.start, p.end, p.seek, p.state},
                     [p.seek, *range_out], concurrency_id=GPU, trigger_mode="always_last", **private)
    view_kw = dict(concurrency_limit=4, concurrency_id="view", trigger_mode="always_last", show_progress="hidden",
                   preprocess=False, **private)
    # One listener for all of them: with one per slider, two quick moves ran at once, each with the values
    # it was sent, and the older could finish last (the panel and the settings then said an older pooling).
    # One listener's "always_last" runs its events one after another, the newest values last.
    gr.on([c.change for c in (p.pool_t, p.pool_h, p.pool_w, p.alpha, p.do_sample, p.temperature, p.top_p,
                              p.max_new, p.rep, p.system)],
          _bind(ctx, on_pooling), settings, [p.state, p.view_md, p.heatmap, p.notice, p.strategy_image], **view_kw)
    # a strategy that builds an image runs CLIP once for it: on the GPU queue, like a new frame count. The
    # knobs listen to the person only (.input): a value the page writes into a hidden knob is nobody's choice.
    # (Their .change events once put back a tab older than the chat's; the state now holds only the tab's id.)
    strategy_kw = {**{k: v for k, v in view_kw.items() if k != "concurrency_limit"}, "concurrency_id": GPU}
    strategy_out = [p.state, p.view_md, p.heatmap, p.notice, p.pool_row, *p.knobs.values(), p.strategy_image]
    p.strategy.change(_bind(ctx, on_strategy), settings, strategy_out, **strategy_kw)
    for component in p.knobs.values():
        component.input(_bind(ctx, on_strategy), settings, strategy_out, **strategy_kw)

    # Enter and Send are one event ("once": ignored while it runs), so a follow-up cannot race the answer
    controls = [p.send, p.stop, p.regen, p.compare_btn]
    chat_out = [p.msg, p.chatbot, p.state, p.notice, p.page_state, *controls]
    chat_kw = dict(concurrency_id=GPU, trigger_mode="once", **private)
    idle_kw = dict(inputs={p.state}, outputs=[*controls, p.page_state], queue=False, **private)
    gr.on([p.msg.submit, p.send.click], _bind(ctx, on_chat), {p.msg, *settings}, chat_out,
          **chat_kw).then(_bind(ctx, on_idle), **idle_kw)
    p.regen.click(_bind(ctx, on_regenerate), settings, chat_out, **chat_kw).then(_bind(ctx, on_idle), **idle_kw)
    # not queued: Stop must reach a stream while the queue is busy
    p.stop.click(_bind(ctx, on_stop), {p.state}, None, concurrency_limit=None, queue=False, **private)
    clear_out = [p.chatbot, p.answer_a, p.answer_b, p.notice, p.page_state]
    p.clear.click(_bind(ctx, on_clear), {p.state}, clear_out, concurrency_limit=None, **private)
    # the chat's own trash icon: the model forgets too, not only the screen
    p.chatbot.clear(_bind(ctx, on_clear), {p.state}, clear_out, concurrency_limit=None, **private)
    p.new_video.click(_bind(ctx, on_new_video), {p.state},
                      [p.video, p.upload, p.chatbot, p.gallery, p.view_md, p.heatmap, p.answer_a, p.answer_b, p.notice,
                       p.strategy_image, p.page_state],
                      concurrency_limit=None, **private)
    p.gallery.select(_bind(ctx, on_frame_select), {p.state}, [p.seek], queue=False,
                     **private).then(None, [p.seek], None, js="(t) => { if (t !== null) window.pllavaSeek(t); }")
    p.download.click(_bind(ctx, on_download), {p.state}, [p.chat_files, p.notice], concurrency_limit=None, **private)
    p.compare_btn.click(_bind(ctx, on_compare), {p.alpha_b, p.pool_h_b, p.pool_w_b, p.strategy_b, *settings},
                        [p.answer_a, p.answer_b, p.notice], concurrency_id=GPU, **private)
    if p.chapters is not None:  # the chapter list, scope and their endpoints (ui/chapters_view.py)
        from .chapters_view import wire as wire_chapters
        wire_chapters(ctx, p.chapters)
