"""What the page does: one plain function per event, taking the values it reads as a dict keyed by
component (gradio's set inputs) and returning the components it changes, by name. A thin door over the
studio (studio/tab.py): the page's state holds only the tab's id; the registry owns the tab, and no
event writes a tab back (the id it writes keeps the state's idle timer running).

A failure is one line in the page's notice box (`Page.notice`) and nothing else: handlers here never
raise to gradio, so no toast and no red "Error" pill on the chat, the gallery or the heat map.
The chat's turns belong to the engine's session; the chat box only ever shows `history(tab)`.
"""

from __future__ import annotations

import dataclasses
import filecmp
import functools
import inspect
import os
import re
import typing
import weakref
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from . import export
from ..frames import strategies
from .. import refusals
from ..studio import tab as tabs
from ..studio.model_holder import ModelHolder
from ..studio.options import default_options
from ..studio.registry import Registry
from . import view
from . import test_gate
from .chat_messages import chat_stream, history
from .chat_view import for_page
from .layout import NARROW_PX, Page
from ..errors import InputError
from .messages import guard, message
from .page_state import state_html
from .streaming import coalesce

GPU = "gpu"  # one concurrency group for everything that runs the model or CLIP


@dataclass
class Ctx:
    holder: ModelHolder
    registry: Registry
    page: Page
    demo: gr.Blocks | None = None

    def idle(self, data: dict) -> bool:
        """No tab state yet and no model: a slider or box moved before there is anything to change."""
        return data.get(self.page.state) is None and self.holder.engine is None

    def key(self, data: dict, request=None) -> str | None:
        """The tab's id: the page's state once written, else the browser session's (the same id)."""
        return data.get(self.page.state) or getattr(request, "session_hash", None)

    def tab(self, data: dict, request=None, upload=None) -> tabs.Tab:
        """The tab, made on first use (the registry's atomic get-or-create)."""
        return self.registry.tab(self.key(data, request), upload)

    def existing(self, data: dict, request=None) -> tabs.Tab | None:
        """The tab if there is one; nothing is made."""
        return self.registry.get(self.key(data, request))


class PageProgress:
    """gr.Progress as the studio's `(fraction, text)` callable, and picklable (a ZeroGPU call takes it)."""

    def __init__(self, progress):
        self.progress = progress

    def __call__(self, frac: float, text: str) -> None:
        self.progress(frac, desc=text)


def say(page: Page, text: str | None) -> dict:
    """The notice box showing `text`, or hidden when there is nothing to say."""
    return {page.notice: gr.update(value=text or "", visible=bool(text))}


def unchanged(page: Page) -> dict:
    """Nothing to change: a no-op update of the notice box (in every event's outputs). Not `{}`:
    gradio takes an empty dict as one output value and fails an event with several outputs."""
    return {page.notice: gr.update()}


def noticed(fn):
    """messages.guard with the line in the notice box (an event's first argument is its Ctx)."""
    return guard(fn, shown=lambda args, line: say(args[0].page, line))


def quiet(c, value):
    """A slider's value clamped to its range: a number typed out of range in its box is taken as the
    nearest end, quietly (the slider events skip gradio's check, which would refuse it with an error)."""
    if isinstance(c, gr.Slider) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return min(max(value, c.minimum), c.maximum)
    return value


def chosen_strategy(page: Page, data: dict, name: str | None = None) -> dict:
    """The strategy selector and its strategy's own knobs as api_types' {"name": ..., knob: value}."""
    name = name or data.get(page.strategy) or "pllava"
    cls = strategies.STRATEGIES.get(name, strategies.PllavaPooling)
    return {"name": cls.name, **{k: int(quiet(page.knobs[k], data[page.knobs[k]])) for k in cls.KNOBS
                                 if page.knobs[k] in data}}


def changes_from(page: Page, data: dict) -> dict:
    """The sliders' values as Options changes (T' <= frames is kept by Options.consistent)."""
    v = {name: quiet(c, data[c]) for name, c in page.options.items() if c in data}
    return dict(num_frames=int(v["num_frames"]), pooling=(int(v["pool_t"]), int(v["pool_h"]), int(v["pool_w"])),
                strategy=chosen_strategy(page, data),
                lora_alpha=v["lora_alpha"], do_sample=bool(v["do_sample"]), temperature=v["temperature"],
                top_p=v["top_p"], max_new_tokens=int(v["max_new_tokens"]), repetition_penalty=v["repetition_penalty"],
                system=v["system"])


def _settings_only(studio: tabs.Tab, changes: dict) -> dict:
    """The frames slider's own event re-encodes; every other event leaves the frame count alone."""
    if studio.video is not None and changes["num_frames"] != studio.video.num_frames:
        changes.pop("num_frames")
    return changes


def panels(page: Page, studio: tabs.Tab, gallery: bool = True) -> dict:
    """What the model sees: the panel text, the heat map, the strategy's picture (and the gallery)."""
    picture = view.strategy_picture(studio)
    out = {page.view_md: view.view_markdown(studio), page.heatmap: view.token_heatmap(studio),
           page.strategy_image: gr.update(value=picture, visible=picture is not None)}
    if gallery:
        out[page.gallery] = view.gallery_items(studio)
    return out


# -- model status ----------------------------------------------------------------------------------
NEXT_STEPS = ("To go on: make sure this machine can reach the Hugging Face Hub (or download the model "
              "first), or try the app with a tiny random model: `python -m pllava_demo make-tiny ./tiny && "
              "python app.py --model ./tiny`.")


def on_page_load(ctx: Ctx, progress=gr.Progress()):
    """Wait for the model; then set the sliders from the checkpoint, or say what to do next and grey
    out what cannot work without a model."""
    page, holder = ctx.page, ctx.holder
    if not holder.wait(0):  # a video dropped now would be lost: the boxes take none until the model is ready
        off = gr.update(interactive=False)
        yield {page.video: off, page.upload: off,
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
            page.frames: gr.update(value=opts.num_frames),
            page.pool_t: gr.update(value=opts.pooling[0], maximum=opts.num_frames),
            page.pool_h: gr.update(value=opts.pooling[1], maximum=eng.spec.frame_grid[0]),
            page.pool_w: gr.update(value=opts.pooling[2], maximum=eng.spec.frame_grid[1]),
            page.alpha: gr.update(value=opts.lora_alpha if has_lora else 0, interactive=has_lora,
                                  info=None if has_lora else "This checkpoint has no LoRA weights: alpha does nothing."),
            page.max_new: gr.update(value=opts.max_new_tokens),
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
    tabs.set_options(studio, **_settings_only(studio, changes_from(page, data)))
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
    tabs.set_options(studio, **_settings_only(studio, changes_from(page, data)))
    return {**out, page.state: studio.id, **panels(page, studio, gallery=False)}


# -- chat -------------------------------------------------------------------------------------------
def busy(page: Page, answering: bool) -> dict:
    """While an answer streams Send is replaced by Stop, and Regenerate and Compare are off."""
    return {page.send: gr.update(visible=not answering), page.stop: gr.update(visible=answering),
            page.regen: gr.update(interactive=not answering), page.compare_btn: gr.update(interactive=not answering)}


def paced(studio: tabs.Tab):
    """The GPU stream of the answer so far, a few pieces a second (streaming.py: the page stays
    responsive whatever the token rate); a test may hold it between pieces (test_gate.py)."""
    def stream(*args) -> typing.Iterator[str]:
        pieces = coalesce(tabs.stream_answer(*args))
        try:
            for shown, text in enumerate(pieces, 1):
                yield text
                test_gate.hold_if_asked(shown, studio.stop)
        finally:
            pieces.close()
    return stream


def on_chat(ctx: Ctx, data: dict, request: gr.Request = None, regenerate: bool = False):
    """Stream the answer into the chat. The question box is cleared once, when the question is
    accepted, and never written again (the next question may be typed meanwhile)."""
    page = ctx.page
    studio = ctx.tab(data, request)
    tabs.set_options(studio, **_settings_only(studio, changes_from(page, data)))
    question = None if regenerate else data[page.msg]
    problem = view.too_many_tokens(studio)
    if problem:  # known before any answer starts: said, and no empty answer bubble
        yield say(page, problem)
        return
    first = True
    for messages in chat_stream(studio, question, regenerate, stream=paced(studio)):
        out = {page.chatbot: for_page(messages), page.state: studio.id}
        if first:
            out.update({**busy(page, True), **say(page, None),
                        page.page_state: state_html(True, len(studio.session.turns))})
            if not regenerate:
                out[page.msg] = ""
            first = False
        yield out
    if studio.session.notice:
        yield say(page, studio.session.notice)


def on_regenerate(ctx: Ctx, data: dict, request: gr.Request = None):
    yield from on_chat(ctx, data, request, regenerate=True)


def on_idle(ctx: Ctx, data: dict):
    """The answer is over (ended, stopped or refused): Send is back and the page's state says idle."""
    studio = ctx.existing(data)
    return {**busy(ctx.page, False),
            ctx.page.page_state: state_html(False, len(studio.session.turns) if studio is not None else 0)}


def on_stop(ctx: Ctx, data: dict):
    tabs.stop(ctx.existing(data))


def on_clear(ctx: Ctx, data: dict):
    page = ctx.page
    tabs.clear(ctx.existing(data))  # an answer still streaming ends and joins no chat
    return {page.chatbot: [], page.answer_a: "", page.answer_b: "", **say(page, None),
            page.page_state: state_html(False, 0)}


def on_new_video(ctx: Ctx, data: dict):
    page, studio = ctx.page, ctx.existing(data)
    if studio is not None:
        studio.close()
    return {page.video: None, page.upload: None, page.chatbot: [], page.gallery: [],
            page.view_md: view.view_markdown(studio) if studio else "", page.heatmap: None,
            page.answer_a: "", page.answer_b: "", **say(page, None), page.page_state: state_html(False, 0)}


# -- time you can click ----------------------------------------------------------------------------
def on_frame_select(ctx: Ctx, data: dict, evt: gr.SelectData = None):
    """A frame clicked in the gallery -> its time, which the page's script gives the player."""
    studio = ctx.existing(data)
    times = studio.video.clip.timestamps if studio is not None and studio.video is not None else ()
    k = evt.index if evt is not None and isinstance(evt.index, int) else -1
    return {ctx.page.seek: float(times[k]) if 0 <= k < len(times) else None}


# -- export -----------------------------------------------------------------------------------------
def _exports() -> Path:
    """Chat downloads: one folder per tab, overwritten on each download, deleted with the tab's studio
    (Studio.close: the tab closed or its state expired)."""
    from .serving import upload_folder  # the app's own folder: counted, swept, emptied at start

    return upload_folder()


def on_download(ctx: Ctx, data: dict, request: gr.Request = None):
    """The chat as Markdown and JSON files, shown in the files box for the browser to download."""
    page, studio = ctx.page, ctx.existing(data, request)
    if studio is None or not studio.session.turns:
        return {page.chat_files: gr.update(value=None, visible=False), **say(page, refusals.NO_CHAT_TO_DOWNLOAD)}
    key = "chat-" + (re.sub(r"\W", "", str(getattr(request, "session_hash", None) or studio.session.id))[:64] or "tab")
    files = export.export_chat(studio, _exports() / key)
    return {page.chat_files: gr.update(value=[str(f) for f in files], visible=True), **say(page, None)}


# -- compare ----------------------------------------------------------------------------------------
def on_compare(ctx: Ctx, data: dict, request: gr.Request = None):
    page = ctx.page
    studio = ctx.tab(data, request)
    changes = changes_from(page, data)
    changes.pop("num_frames")
    tabs.set_options(studio, **changes)
    b = dict(pooling=(studio.options.pooling[0], int(data[page.pool_h_b]), int(data[page.pool_w_b])))
    if data.get(page.strategy_b):  # another strategy for B, at its own default knobs
        b = {"strategy": {"name": data[page.strategy_b]}} if data[page.strategy_b] != "pllava" else b
    if studio.engine.spec.has_lora:
        b["lora_alpha"] = data[page.alpha_b]
    for la, a, lb, bb in tabs.compare(studio, **b):
        yield {page.answer_a: f"**{la}**\n\n{a}", page.answer_b: f"**{lb}**\n\n{bb}", **say(page, None)}


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
