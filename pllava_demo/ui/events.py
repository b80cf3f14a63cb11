"""What the page does: one plain function per event, taking the values it reads as a dict keyed by
component (gradio's set inputs) and returning the components it changes, by name.

A failure is one line in the page's notice box (`Page.notice`) and nothing else: handlers here never
raise to gradio, so no toast and no red "Error" pill on the chat, the gallery or the heat map.
The chat's turns belong to the engine's session; the chat box only ever shows `history(studio)`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import typing
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from . import export as X
from ..frames import strategies as S
from . import handlers as H
from . import view as V
from . import gpu_calls as gpu
from .layout import NARROW_PX, Page
from .messages import message

GPU = "gpu"  # one concurrency group for everything that runs the model or CLIP


@dataclass
class Ctx:
    holder: H.ModelHolder
    registry: H.Registry
    page: Page
    demo: gr.Blocks | None = None

    def idle(self, data: dict) -> bool:
        """No tab state yet and no model: a slider or box moved before there is anything to change."""
        return data.get(self.page.state) is None and self.holder.engine is None

    def studio(self, data: dict, request, upload=None) -> H.Studio:
        return H.ensure_studio(data.get(self.page.state), self.holder, self.registry,
                               getattr(request, "session_hash", None), upload)


def say(page: Page, text: str | None) -> dict:
    """The notice box showing `text`, or hidden when there is nothing to say."""
    return {page.notice: gr.update(value=text or "", visible=bool(text))}


def unchanged(page: Page) -> dict:
    """Nothing to change: a no-op update of the notice box (in every event's outputs). Not `{}`:
    gradio takes an empty dict as one output value and fails an event with several outputs."""
    return {page.notice: gr.update()}


def noticed(fn):
    """Any exception -> its one line in the notice box (generator and plain handlers alike)."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(ctx, *args, **kwargs):
            try:
                yield from fn(ctx, *args, **kwargs)
            except Exception as e:
                yield say(ctx.page, message(e, fn.__name__))
        return gen

    @functools.wraps(fn)
    def plain(ctx, *args, **kwargs):
        try:
            return fn(ctx, *args, **kwargs)
        except Exception as e:
            return say(ctx.page, message(e, fn.__name__))
    return plain


def quiet(c, value):
    """A slider's value clamped to its range: a number typed out of range in its box is taken as the
    nearest end, quietly (the slider events skip gradio's check, which would refuse it with an error)."""
    if isinstance(c, gr.Slider) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return min(max(value, c.minimum), c.maximum)
    return value


def chosen_strategy(page: Page, data: dict, name: str | None = None) -> dict:
    """The strategy selector and its strategy's own knobs as api_types' {"name": ..., knob: value}."""
    name = name or data.get(page.strategy) or "pllava"
    cls = S.STRATEGIES.get(name, S.PllavaPooling)
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


def _settings_only(studio: H.Studio, changes: dict) -> dict:
    """The frames slider's own event re-encodes; every other event leaves the frame count alone."""
    if studio.video is not None and changes["num_frames"] != studio.video.num_frames:
        changes.pop("num_frames")
    return changes


def view(page: Page, studio: H.Studio, gallery: bool = True) -> dict:
    picture = V.strategy_picture(studio)
    out = {page.view_md: V.view_markdown(studio), page.heatmap: V.token_heatmap(studio),
           page.strategy_image: gr.update(value=picture, visible=picture is not None)}
    if gallery:
        out[page.gallery] = V.gallery_items(studio)
    return out


# -- model status ----------------------------------------------------------------------------------
NEXT_STEPS = ("To go on: make sure this machine can reach the Hugging Face Hub (or download the model "
              "first), or try the app with a tiny random model: `python -m pllava_demo make-tiny ./tiny && "
              "python app.py --model ./tiny`.")


def on_page_load(ctx: Ctx, progress=gr.Progress()):
    """Wait for the model; then set the sliders from the checkpoint, or say what to do next and grey
    out what cannot work without a model."""
    page, holder = ctx.page, ctx.holder
    while not holder.wait(0.5):
        progress(None, desc=f"Loading the model: {holder.stage} ({holder.elapsed:.0f} s)")
    if holder.engine is None:
        off = gr.update(interactive=False)
        out = {page.status: f"{holder.status_markdown()}  \n{NEXT_STEPS}",
               page.msg: gr.update(interactive=False, placeholder="The model is not loaded: see the message above."),
               page.send: off, page.regen: off, page.compare_btn: off, page.video: off, page.upload: off}
        if page.examples is not None:
            out[page.examples.dataset] = gr.update(visible=False)
        return out
    eng, opts = holder.engine, H.default_options(holder.engine)
    has_lora = eng.spec.has_lora
    return {page.status: holder.status_markdown(),
            page.frames: gr.update(value=opts.num_frames),
            page.pool_t: gr.update(value=opts.pooling[0], maximum=opts.num_frames),
            page.pool_h: gr.update(value=opts.pooling[1], maximum=eng.spec.frame_grid[0]),
            page.pool_w: gr.update(value=opts.pooling[2], maximum=eng.spec.frame_grid[1]),
            page.alpha: gr.update(value=opts.lora_alpha if has_lora else 0, interactive=has_lora,
                                  info=None if has_lora else "This checkpoint has no LoRA weights: alpha does nothing."),
            page.max_new: gr.update(value=opts.max_new_tokens)}


def on_viewport(ctx: Ctx, data: dict):
    """The settings start folded on a narrow window (a phone), so the chat is the first screen."""
    width = data.get(ctx.page.viewport)
    narrow = isinstance(width, (int, float)) and 0 < width < NARROW_PX
    return {ctx.page.settings: gr.update(open=not narrow)}


# -- video ------------------------------------------------------------------------------------------
def on_video(ctx: Ctx, component, data: dict, request: gr.Request = None, progress=gr.Progress()):
    page = ctx.page
    path = data[component]
    studio = ctx.studio(data, request, upload=path)
    if not path:  # the video was removed: start over
        studio.close()
        return {page.state: studio, page.chatbot: [], **view(page, studio), **say(page, None)}
    out = {}
    if path != studio.video_path:
        studio.stop.set()  # an answer about the old video ends now; it will not join the new chat
        if studio.options.time_range != (None, None):  # a new video is seen whole
            studio.options = dataclasses.replace(studio.options, start_s=None, end_s=None)
            out = {page.start: "", page.end: ""}
    changes = changes_from(page, data)
    num_frames = changes.pop("num_frames")
    H.set_options(studio, **changes)
    gpu.load_video(studio, path, num_frames, progress)
    out[page.pool_t] = studio.options.pooling[0]  # a still image has one time step (and a video after it its own)
    return {**out, page.state: studio, page.chatbot: H.history(studio), **view(page, studio), **say(page, None)}


def _seconds(text):
    """A range box's text as api_types takes it: blank is None, a number is a number, anything else
    stays text so that api_types names the field and its range."""
    text = str(text or "").strip().rstrip("s").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def on_range(ctx: Ctx, data: dict, request: gr.Request = None, progress=gr.Progress()):
    """Focus on a part: the frames are sampled from [start, end] (blank: the video's own start or end);
    a range not inside the video is one line in the notice box, and the frames stay as they were."""
    page = ctx.page
    if ctx.idle(data):
        return unchanged(page)
    studio = ctx.studio(data, request)
    span = {"start_s": _seconds(data[page.start]), "end_s": _seconds(data[page.end])}
    if (span["start_s"], span["end_s"]) == studio.options.time_range:
        return unchanged(page)
    gpu.set_options(studio, progress, **span)
    return {page.state: studio, **view(page, studio), **say(page, None)}


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
    studio = ctx.studio(data, request)
    gpu.set_options(studio, progress, **changes_from(page, data))
    return {**out, page.state: studio, **view(page, studio), **say(page, None)}


def on_pooling(ctx: Ctx, data: dict, request: gr.Request = None):
    page = ctx.page
    if ctx.idle(data):
        return unchanged(page)
    studio = ctx.studio(data, request)
    H.set_options(studio, **_settings_only(studio, changes_from(page, data)))
    return {page.state: studio, **view(page, studio, gallery=False)}  # new token grid: a new heat map


def on_strategy(ctx: Ctx, data: dict, request: gr.Request = None):
    """A new strategy or one of its knobs: its own knobs are shown, the view and heat map redrawn."""
    page = ctx.page
    name = chosen_strategy(page, data)["name"]
    out = {page.pool_row: gr.update(visible=name == "pllava")}
    for knob, slider in page.knobs.items():
        out[slider] = gr.update(visible=knob in S.STRATEGIES[name].KNOBS)
    if ctx.idle(data):
        return out
    studio = ctx.studio(data, request)
    H.set_options(studio, **_settings_only(studio, changes_from(page, data)))
    return {**out, page.state: studio, **view(page, studio, gallery=False)}


def on_settings(ctx: Ctx, data: dict, request: gr.Request = None):
    page = ctx.page
    if ctx.idle(data):
        return unchanged(page)
    studio = ctx.studio(data, request)
    H.set_options(studio, **_settings_only(studio, changes_from(page, data)))
    return {page.state: studio, page.view_md: V.view_markdown(studio)}  # the token grid stays as it is


# -- chat -------------------------------------------------------------------------------------------
def busy(page: Page, answering: bool) -> dict:
    """While an answer streams Send is replaced by Stop, and Regenerate and Compare are off."""
    return {page.send: gr.update(visible=not answering), page.stop: gr.update(visible=answering),
            page.regen: gr.update(interactive=not answering), page.compare_btn: gr.update(interactive=not answering)}


def on_chat(ctx: Ctx, data: dict, request: gr.Request = None, regenerate: bool = False):
    """Stream the answer into the chat. The question box is cleared once, when the question is
    accepted, and never written again (the next question may be typed meanwhile)."""
    page = ctx.page
    studio = ctx.studio(data, request)
    H.set_options(studio, **_settings_only(studio, changes_from(page, data)))
    question = None if regenerate else data[page.msg]
    first = True
    for messages in H.chat_stream(studio, question, regenerate, stream=gpu.stream_answer):
        out = {page.chatbot: messages, page.state: studio}
        if first:
            out.update({**busy(page, True), **say(page, None)})
            if not regenerate:
                out[page.msg] = ""
            first = False
        yield out
    if studio.session.notice:
        yield say(page, studio.session.notice)


def on_regenerate(ctx: Ctx, data: dict, request: gr.Request = None):
    yield from on_chat(ctx, data, request, regenerate=True)


def on_idle(ctx: Ctx):
    return busy(ctx.page, False)


def on_stop(ctx: Ctx, data: dict):
    studio = data.get(ctx.page.state)
    if studio is not None:
        studio.stop.set()


def on_clear(ctx: Ctx, data: dict):
    page, studio = ctx.page, data.get(ctx.page.state)
    if studio is not None:
        studio.stop.set()  # an answer still streaming ends; clear() keeps it out of the new chat
        studio.session.clear()
    return {page.chatbot: [], page.answer_a: "", page.answer_b: "", **say(page, None)}


def on_new_video(ctx: Ctx, data: dict):
    page, studio = ctx.page, data.get(ctx.page.state)
    if studio is not None:
        studio.close()
    return {page.video: None, page.upload: None, page.chatbot: [], page.gallery: [],
            page.view_md: V.view_markdown(studio) if studio else "", page.heatmap: None,
            page.answer_a: "", page.answer_b: "", **say(page, None)}


# -- time you can click ----------------------------------------------------------------------------
def on_frame_select(ctx: Ctx, data: dict, evt: gr.SelectData = None):
    """A frame clicked in the gallery -> its time, which the page's script gives the player."""
    studio = data.get(ctx.page.state)
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
    page, studio = ctx.page, data.get(ctx.page.state)
    if studio is None or not studio.session.turns:
        return {page.chat_files: gr.update(value=None, visible=False), **say(page, "There is no chat to download yet.")}
    key = "chat-" + (re.sub(r"\W", "", str(getattr(request, "session_hash", None) or studio.session.id))[:64] or "tab")
    files = X.export_chat(studio, _exports() / key)
    return {page.chat_files: gr.update(value=[str(f) for f in files], visible=True), **say(page, None)}


# -- compare ----------------------------------------------------------------------------------------
def on_compare(ctx: Ctx, data: dict, request: gr.Request = None):
    page = ctx.page
    studio = ctx.studio(data, request)
    changes = changes_from(page, data)
    changes.pop("num_frames")
    H.set_options(studio, **changes)
    b = dict(pooling=(studio.options.pooling[0], int(data[page.pool_h_b]), int(data[page.pool_w_b])))
    if data.get(page.strategy_b):  # another strategy for B, at its own default knobs
        b = {"strategy": {"name": data[page.strategy_b]}} if data[page.strategy_b] != "pllava" else b
    if studio.engine.spec.has_lora:
        b["lora_alpha"] = data[page.alpha_b]
    for la, a, lb, bb in gpu.compare(studio, **b):
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
                p.strategy_image]

    demo.load(functools.partial(on_page_load, ctx), None,
              [p.status, p.frames, p.pool_t, p.pool_h, p.pool_w, p.alpha, p.max_new, p.msg, p.send, p.regen,
               p.compare_btn, p.video, p.upload] + ([p.examples.dataset] if p.examples is not None else []),
              concurrency_limit=None, **private)

    # the window's width comes from the browser (the js), then the server folds the settings on a phone
    demo.load(_bind(ctx, on_viewport), {p.viewport}, [p.settings], js="() => window.innerWidth", queue=False,
              **private)

    for component in (p.video, p.upload):
        component.change(_bind(ctx, on_video, component), {component, *settings}, view_out,
                         concurrency_id=GPU, trigger_mode="always_last", **private)
    # the sliders' own events take their values raw and clamp them (changes_from): no red "Error" for 99 frames
    p.frames.change(_bind(ctx, on_frames), settings, [p.frames, p.state, p.pool_t, p.gallery, p.view_md, p.heatmap,
                                                      p.notice, p.strategy_image],
                    concurrency_id=GPU, trigger_mode="always_last", preprocess=False, **private)
    range_out = [p.state, p.gallery, p.view_md, p.heatmap, p.notice, p.strategy_image]
    gr.on([p.start.submit, p.start.blur, p.end.submit, p.end.blur], _bind(ctx, on_range), {p.start, p.end, p.state},
          range_out, concurrency_id=GPU, trigger_mode="always_last", **private)
    for button, which in ((p.from_frame, "start"), (p.to_frame, "end"), (p.whole, "whole")):
        button.click(_bind(ctx, on_frame_range, which), {p.start, p.end, p.seek, p.state},
                     [p.start, p.end, p.seek, *range_out], concurrency_id=GPU, trigger_mode="always_last", **private)
    view_kw = dict(concurrency_limit=4, concurrency_id="view", trigger_mode="always_last", show_progress="hidden",
                   preprocess=False, **private)
    for component in (p.pool_t, p.pool_h, p.pool_w):
        component.change(_bind(ctx, on_pooling), settings, [p.state, p.view_md, p.heatmap, p.notice, p.strategy_image],
                         **view_kw)
    # a strategy that builds an image runs CLIP once for it: on the GPU queue, like a new frame count. The
    # knobs listen to the person only (.input): wired with .change, these hidden sliders' events were seen to
    # put back a tab state older than the chat's (tests/test_browser_time.py's download found no chat)
    strategy_kw = {**{k: v for k, v in view_kw.items() if k != "concurrency_limit"}, "concurrency_id": GPU}
    strategy_out = [p.state, p.view_md, p.heatmap, p.notice, p.pool_row, *p.knobs.values(), p.strategy_image]
    p.strategy.change(_bind(ctx, on_strategy), settings, strategy_out, **strategy_kw)
    for component in p.knobs.values():
        component.input(_bind(ctx, on_strategy), settings, strategy_out, **strategy_kw)
    for component in (p.alpha, p.do_sample, p.temperature, p.top_p, p.max_new, p.rep, p.system):
        component.change(_bind(ctx, on_settings), settings, [p.state, p.view_md, p.notice], **view_kw)

    # Enter and Send are one event ("once": ignored while it runs), so a follow-up cannot race the answer
    controls = [p.send, p.stop, p.regen, p.compare_btn]
    chat_out = [p.msg, p.chatbot, p.state, p.notice, *controls]
    chat_kw = dict(concurrency_id=GPU, trigger_mode="once", **private)
    gr.on([p.msg.submit, p.send.click], _bind(ctx, on_chat), {p.msg, *settings}, chat_out,
          **chat_kw).then(functools.partial(on_idle, ctx), None, controls, queue=False)
    p.regen.click(_bind(ctx, on_regenerate), settings, chat_out,
                  **chat_kw).then(functools.partial(on_idle, ctx), None, controls, queue=False)
    # not queued: Stop must reach a stream while the queue is busy
    p.stop.click(_bind(ctx, on_stop), {p.state}, None, concurrency_limit=None, queue=False, **private)
    clear_out = [p.chatbot, p.answer_a, p.answer_b, p.notice]
    p.clear.click(_bind(ctx, on_clear), {p.state}, clear_out, concurrency_limit=None, **private)
    # the chat's own trash icon: the model forgets too, not only the screen
    p.chatbot.clear(_bind(ctx, on_clear), {p.state}, clear_out, concurrency_limit=None, **private)
    p.new_video.click(_bind(ctx, on_new_video), {p.state},
                      [p.video, p.upload, p.chatbot, p.gallery, p.view_md, p.heatmap, p.answer_a, p.answer_b, p.notice,
                       p.strategy_image],
                      concurrency_limit=None, **private)
    p.gallery.select(_bind(ctx, on_frame_select), {p.state}, [p.seek], queue=False,
                     **private).then(None, [p.seek], None, js="(t) => { if (t !== null) window.pllavaSeek(t); }")
    p.download.click(_bind(ctx, on_download), {p.state}, [p.chat_files, p.notice], concurrency_limit=None, **private)
    p.compare_btn.click(_bind(ctx, on_compare), {p.alpha_b, p.pool_h_b, p.pool_w_b, p.strategy_b, *settings},
                        [p.answer_a, p.answer_b, p.notice], concurrency_id=GPU, **private)
