"""The page's events about what the model looks at: the model's loading, the video boxes, the time
range and the sliders (frames re-encode; pooling, alpha and the generation settings only re-pool or
change settings; a strategy and its knobs). Each takes the values it reads as a dict keyed by component
and returns the components it changes, by name (wired in events.py).
"""

from __future__ import annotations

import dataclasses
import filecmp
import os
import typing
import weakref
from pathlib import Path

import gradio as gr

from ..errors import InputError
from ..frames import strategies
from ..studio import tab as tabs
from ..studio.options import default_options
from .chat_messages import history
from .chat_view import for_page
from .event_context import (Ctx, PageProgress, changes_from, chosen_strategy, panels, quiet, say, settings_only,
                            unchanged)
from .layout import NARROW_PX, Page
from .messages import message
from .page_state import state_html
from . import view

# -- model status ----------------------------------------------------------------------------------
NEXT_STEPS = ("To go on: make sure this machine can reach the Hugging Face Hub (or download the model "
              "first), or try the app with a tiny random model: `python -m pllava_demo make-tiny ./tiny && "
              "python app.py --model ./tiny`.")


def on_page_load(ctx: Ctx, progress=gr.Progress()):
    """Wait for the model; then set the sliders from the checkpoint, or say what to do next and grey
    out what cannot work without a model."""
    page, holder = ctx.page, ctx.holder
    # the sliders whose values come from the checkpoint: one moved before they arrive would be put back
    from_checkpoint = (page.frames, page.pool_t, page.pool_h, page.pool_w, page.alpha, page.max_new)
    if not holder.wait(0):  # a video dropped now would be lost: the boxes take none until the model is ready
        off = gr.update(interactive=False)
        yield {page.video: off, page.upload: off, **dict.fromkeys(from_checkpoint, off),
               **say(page, "The model is loading: you can add a video as soon as it is ready.")}
    while not holder.wait(0.5):
        progress(None, desc=f"Loading the model: {holder.stage} ({holder.elapsed:.0f} s)")
        yield {page.status: holder.status_markdown()}  # its counter counts (built once, it said "(0 s)")
    if holder.engine is None:
        off = gr.update(interactive=False)
        out = {page.status: f"{holder.status_markdown()}  \n{NEXT_STEPS}",
               page.msg: gr.update(interactive=False, placeholder="The model is not loaded: see the message above."),
               page.send: off, page.regen: off, page.compare_btn: off, page.video: off, page.upload: off}
        if page.examples is not None:
            out[page.examples.dataset] = gr.update(visible=False)
        yield {**out, **say(page, None)}
        return
    eng, opts = holder.engine, default_options(holder.engine)
    has_lora = eng.spec.has_lora
    on = gr.update(interactive=True)
    yield {page.status: holder.status_markdown(), page.video: on, page.upload: on, **say(page, None),
            page.frames: gr.update(value=opts.num_frames, interactive=True),
            page.pool_t: gr.update(value=opts.pooling[0], maximum=opts.num_frames, interactive=True),
            page.pool_h: gr.update(value=opts.pooling[1], maximum=eng.spec.frame_grid[0], interactive=True),
            page.pool_w: gr.update(value=opts.pooling[2], maximum=eng.spec.frame_grid[1], interactive=True),
            page.alpha: gr.update(value=opts.lora_alpha if has_lora else 0, interactive=has_lora,
                                  info=None if has_lora else "This checkpoint has no LoRA weights: alpha does nothing."),
            page.max_new: gr.update(value=opts.max_new_tokens, interactive=True),
            # no knob offers more tokens than the context holds (TS-LLaVA's went to 16,384)
            **{k: gr.update(maximum=min(k.maximum, eng.loaded.context_length)) for k in page.knobs.values()}}


def on_viewport(ctx: Ctx, data: dict):
    """The settings start folded on a narrow window (a phone), so the chat is the first screen."""
    width = data.get(ctx.page.viewport)
    narrow = isinstance(width, (int, float)) and 0 < width < NARROW_PX
    return {ctx.page.settings: gr.update(open=not narrow)}


# -- video ------------------------------------------------------------------------------------------
# The box this page is emptying itself (the other one, when a video arrives in one): its change event
# is not a person removing the video. Weak keys: a studio gone with its tab takes its entry along.
_EMPTYING: "weakref.WeakKeyDictionary[tabs.Tab, str]" = weakref.WeakKeyDictionary()
PLAYABLE = (".mp4", ".webm", ".mov", ".mkv")  # what the page's player shows (a GIF or a still is not a video there)


def _same_file(a: str | None, b: str | None) -> bool:
    """The same bytes (gradio may hand the player's copy of an uploaded file back under a new path)."""
    if not a or not b:
        return False
    if a == b:
        return True
    try:
        return os.path.getsize(a) == os.path.getsize(b) and filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def on_video(ctx: Ctx, component, data: dict, request: gr.Request = None, progress=gr.Progress()):
    """A video (or image) in either box becomes the tab's one current video: the player shows it (a
    file from "Image or GIF" too, when the player can play it), the other box is emptied, and a file
    that is refused puts the boxes back to what the model sees, the reason in the message line."""
    page = ctx.page
    path = data[component]
    other = page.upload if component is page.video else page.video
    if ctx.holder.engine is None:  # loading: nothing is kept that the model will not see, not even on disk
        if path and ctx.registry.uploads is not None:
            ctx.registry.uploads.drop(path)
        return {component: None, **say(page, "The model is still loading: add your video once the line above "
                                             "says it is ready.")}
    studio = ctx.tab(data, request, upload=path)
    name = "video" if component is page.video else "upload"
    if not path:
        if _EMPTYING.get(studio) == name:
            del _EMPTYING[studio]
            return unchanged(page)  # emptied because the other box took over: the video stays
        if studio.video is None:
            return unchanged(page)  # nothing to start over from (a refused file was taken out of the box)
        studio.close()  # the video was removed: start over, in both boxes
        out = {other: None} if data.get(other) else {}
        if out:
            _EMPTYING[studio] = "upload" if other is page.upload else "video"
        return {**out, page.state: studio.id, page.chatbot: [], **panels(page, studio), **say(page, None),
                page.page_state: state_html(False, 0)}
    if studio.video is not None and _same_file(path, studio.video_path):
        return unchanged(page)  # the player showing the file the other box took: nothing new
    out = {}
    if path != studio.video_path:
        studio.stop.set()  # an answer about the old video ends now; it will not join the new chat
        if studio.options.time_range != (None, None):  # a new video is seen whole
            studio.options = dataclasses.replace(studio.options, start_s=None, end_s=None)
            out = {page.start: "", page.end: ""}
    changes = changes_from(page, data)
    num_frames = changes.pop("num_frames")
    tabs.set_options(studio, **changes)
    try:
        tabs.load_video(studio, path, num_frames, PageProgress(progress))
    except Exception as e:  # refused: the box is usable again, the rest shows what the model sees
        return {component: None, **say(page, message(e, "on_video"))}
    # the other box follows: the player plays a file from "Image or GIF" too (not a still or a GIF), and a
    # video in the player empties "Image or GIF". Only a real change is sent: gradio fires a box's change
    # event for any value written to it, even the one it has.
    follow = path if component is page.upload and Path(path).suffix.lower() in PLAYABLE else None
    if not (follow is None and not data.get(other)) and not _same_file(follow, data.get(other)):
        out[other] = follow
        if follow is None:
            _EMPTYING[studio] = "upload" if other is page.upload else "video"
    out[page.pool_t] = studio.options.pooling[0]  # a still image has one time step (and a video after it its own)
    return {**out, page.state: studio.id, page.chatbot: for_page(history(studio)), **panels(page, studio),
            **say(page, None), page.page_state: state_html(False, len(studio.session.turns))}


BOX_NAMES = {"start_s": "Only from (s)", "end_s": "to (s)"}


def _seconds(text, box: str) -> float | None:
    """A range box's text as seconds: blank is None (the video's own start or end); anything that is
    not a time in the video is refused in the page's own words, naming the box as the page does."""
    text = str(text or "").strip().rstrip("s").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0 <= value < float("inf")):
        raise InputError(f"“{BOX_NAMES[box]}” takes seconds from the start of the video, like 12 or 12.5 "
                         f"(blank: the video's own {'start' if box == 'start_s' else 'end'}).")
    return value


def _boxes(page: Page, time_range) -> dict:
    """The range boxes showing the range in effect (blank: the video's own start or end)."""
    start, end = time_range
    return {page.start: "" if start is None else f"{start:g}", page.end: "" if end is None else f"{end:g}"}


def on_range(ctx: Ctx, data: dict, request: gr.Request = None, progress=gr.Progress()):
    """Focus on a part: the frames are sampled from [start, end] (blank: the video's own start or end);
    a range that cannot be used is one line in the message line, and the boxes go back to the range in
    effect (the frames stay as they were)."""
    page = ctx.page
    if ctx.idle(data):
        return unchanged(page)
    studio = ctx.tab(data, request)
    try:
        span = {box: _seconds(data[c], box) for box, c in (("start_s", page.start), ("end_s", page.end))}
        if (span["start_s"], span["end_s"]) == studio.options.time_range:
            return unchanged(page)
        tabs.set_options(studio, PageProgress(progress), **span)
    except Exception as e:
        return {**_boxes(page, studio.options.time_range), **say(page, message(e, "on_range"))}
    return {page.state: studio.id, **panels(page, studio), **say(page, None)}


def on_frame_range(ctx: Ctx, which: typing.Literal["start", "end", "whole"], data: dict, request: gr.Request = None, progress=gr.Progress()):
    """Focus on a part chosen by two frames: the last frame clicked in the gallery becomes the range's
    start (`which` "start") or end ("end"); "whole" empties both boxes (the whole video again)."""
    page = ctx.page
    boxes = {page.start: data[page.start], page.end: data[page.end]}
    if which == "whole":
        boxes = {page.start: "", page.end: ""}
    else:
        t = data.get(page.seek)
        if not isinstance(t, (int, float)):
            return say(page, "Click a frame in the gallery first, then make it the start or the end.")
        boxes[page.start if which == "start" else page.end] = f"{t:.2f}".rstrip("0").rstrip(".")
    out = on_range(ctx, {**data, **boxes}, request, progress)
    # the boxes show the range asked for, and the clicked frame is used up (the gallery is sampled anew)
    return {**boxes, page.seek: None, **out}


# -- sliders: the frames slider re-encodes, the others only re-pool or change settings --------------
def on_frames(ctx: Ctx, data: dict, request: gr.Request = None, progress=gr.Progress()):
    page = ctx.page
    frames = int(quiet(page.frames, data[page.frames]))
    out = {page.pool_t: gr.update(maximum=frames, value=min(int(quiet(page.pool_t, data[page.pool_t])), frames))}
    if frames != data[page.frames]:  # typed out of range: the box shows the count used
        out[page.frames] = frames
    if ctx.idle(data):
        return out
    studio = ctx.tab(data, request)
    tabs.set_options(studio, PageProgress(progress), **changes_from(page, data))
    return {**out, page.state: studio.id, **panels(page, studio), **say(page, None)}


def on_pooling(ctx: Ctx, data: dict, request: gr.Request = None):
    """Pooling, alpha or a generation setting: every value on the page is set at once (the event carries
    them all), so the panel shows what is in effect; the heat map is redrawn only for a new token grid."""
    page = ctx.page
    if ctx.idle(data):
        return unchanged(page)
    studio = ctx.tab(data, request)
    grid = studio.options.visual
    tabs.set_options(studio, **settings_only(studio, changes_from(page, data)))
    if studio.options.visual == grid:
        return {page.state: studio.id, page.view_md: view.view_markdown(studio)}  # the token grid stays as it is
    return {page.state: studio.id, **panels(page, studio, gallery=False)}  # new token grid: a new heat map


def on_strategy(ctx: Ctx, data: dict, request: gr.Request = None):
    """A new strategy or one of its knobs: its own knobs are shown, the view and heat map redrawn."""
    page = ctx.page
    name = chosen_strategy(page, data)["name"]
    out = {page.pool_row: gr.update(visible=name == "pllava")}
    for knob, slider in page.knobs.items():
        out[slider] = gr.update(visible=knob in strategies.STRATEGIES[name].KNOBS)
    if ctx.idle(data):
        return out
    studio = ctx.tab(data, request)
    tabs.set_options(studio, **settings_only(studio, changes_from(page, data)))
    return {**out, page.state: studio.id, **panels(page, studio, gallery=False)}
