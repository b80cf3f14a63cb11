"""The chapters on the page, in the player's column below the chat (the first screen of a phone stays
video, chat and question): a Chapters button (with Stop and a progress line),
the chapter list (time range + the caption's first line; choosing one seeks the player and makes it
the focus range), the scope of a question (focus range or whole video, and top-k), the chapters as a
WebVTT chapters track on the player and as .vtt/.srt/.json downloads; and the named endpoints
/chapters and /set_scope. The work is chapters_scope.py's; this file is gradio only.
Hooked into the page by two lines: layout.py calls `build`, events.py calls `wire`.
"""

from __future__ import annotations

import functools
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from ..chapters import export as chapter_files
from ..chapters.records import Chapters
from ..chapters.retrieval import MAX_TOP_K
from ..studio import chapters_scope as scope
from .messages import message

SCOPE_CHOICES = [("Focus range", "focus"), ("Whole video (retrieve chapters)", "whole")]

# The player gets the chapters as a WebVTT chapters track (a blob URL: same origin, nothing served).
TRACK_JS = """(vtt) => {
    const v = document.querySelector('#video-input video');
    if (!v) return;
    v.querySelectorAll('track[data-pllava-chapters]').forEach((t) => t.remove());
    if (!vtt) return;
    const t = document.createElement('track');
    t.kind = 'chapters'; t.label = 'Chapters'; t.srclang = 'en'; t.default = true;
    t.dataset.pllavaChapters = '1';
    t.src = URL.createObjectURL(new Blob([vtt], {type: 'text/vtt'}));
    v.appendChild(t);
}"""
SEEK_JS = "(t) => { if (t !== null && window.pllavaSeek) window.pllavaSeek(t); }"


@dataclass
class ChapterPage:
    make: gr.Button
    stop: gr.Button
    progress: gr.Markdown
    listing: gr.Radio
    scope: gr.Radio
    top_k: gr.Slider
    files: gr.File
    vtt: gr.Textbox  # the WebVTT text, for the player's track (hidden, in the DOM)
    seek: gr.Number  # the chosen chapter's start, for the player
    subtitles: gr.File  # a sidecar .srt / .vtt for the video


def build() -> ChapterPage:
    """The chapter components, inside the open column under the player."""
    with gr.Accordion("Chapters: see the whole video, ask about the right minutes", open=True, elem_id="chapters"):
        with gr.Row(equal_height=True):
            make = gr.Button("Make chapters", size="sm", elem_id="chapters-make", min_width=120)
            stop = gr.Button("Stop", size="sm", variant="stop", elem_id="chapters-stop", visible=False, min_width=80)
        subtitles = gr.File(label="Subtitles beside the video (optional: .srt or .vtt)", file_types=[".srt", ".vtt"],
                            elem_id="chapters-subtitles", height=90)
        progress = gr.Markdown("", elem_id="chapters-progress")
        listing = gr.Radio([], label="Chapters (choose one to watch it and focus on it)", elem_id="chapter-list",
                           visible=False)
        with gr.Row(equal_height=True):
            scope_radio = gr.Radio(SCOPE_CHOICES, value="focus", label="A question is about", elem_id="chapters-scope",
                                   min_width=200, scale=3)
            top_k = gr.Slider(1, MAX_TOP_K, value=3, step=1, label="Chapters retrieved (top-k)",
                              elem_id="chapters-top-k", min_width=140, scale=2)
        files = gr.File(label="Chapters (.vtt, .srt, .json)", file_count="multiple", interactive=False,
                        visible=False, elem_id="chapter-files")
        vtt = gr.Textbox("", visible="hidden", elem_id="chapters-vtt")
        seek = gr.Number(None, visible=False)
    return ChapterPage(make, stop, progress, listing, scope_radio, top_k, files, vtt, seek, subtitles)


def _label(c) -> str:
    title = c.title if len(c.title) <= 70 else c.title[:69] + "…"
    line = f"{c.label}  {title}"
    if c.lines:
        line += f" — “{c.lines[0].text[:60]}”"
    return line


def _choices(ch: Chapters) -> list[tuple[str, int]]:
    return [(_label(c), c.index) for c in ch.chapters]


def _progress_text(ch: Chapters, final: bool = False) -> str:
    n = len(ch.chapters)
    state = "done" if ch.complete else ("stopped (Make chapters goes on from here)" if final else "captioning…")
    return f"**{n} chapters** ({ch.method}), {ch.captioned} of {n} captioned: {state}"


def _files(studio, ch: Chapters) -> list[str]:
    stem = re.sub(r"[^\w.-]+", "_", Path(studio.video_path or "video").stem)[:60] or "video"
    folder = Path(tempfile.gettempdir()) / "pllava-chapters" / f"{ch.content_key[:16]}-{id(studio):x}"
    folder.mkdir(parents=True, exist_ok=True)
    return [str(chapter_files.write(ch, folder / f"chapters-{stem}{suffix}")) for suffix in chapter_files.FORMATS]


def _shown(cp: ChapterPage, studio, ch: Chapters, final: bool) -> dict:
    out = {cp.listing: gr.update(choices=_choices(ch), visible=bool(ch.chapters), value=None),
           cp.progress: _progress_text(ch, final)}
    if final:
        out.update({cp.files: gr.update(value=_files(studio, ch) if ch.chapters else None, visible=bool(ch.chapters)),
                    cp.vtt: chapter_files.to_vtt(ch) if ch.chapters else "", cp.make: gr.update(visible=True),
                    cp.stop: gr.update(visible=False), cp.scope: scope.scope_of(studio)})
    return out


def on_auto(ctx, cp: ChapterPage, data: dict, request: gr.Request = None):
    """After a new video's frames are shown: a video of LONG_VIDEO_S or more gets its chapters without
    a click (shorter ones, or one whose chapters are made or being made, are left alone)."""
    studio = ctx.existing(data)
    if studio is None or not studio.video_path or not scope.wants_chapters(studio):
        yield {cp.progress: gr.update()}
        return
    yield from on_make(ctx, cp, data, request)


def on_make(ctx, cp: ChapterPage, data: dict, request: gr.Request = None):
    """Chapters as they are made: the list fills in after the scan, then caption by caption."""
    import queue
    import threading

    page = ctx.page
    try:
        studio = ctx.tab(data, request)
        if not studio.video_path:
            raise scope.InputError("Upload a video (or pick an example) before making chapters.")
        if scope.tab(studio).running:
            raise scope.InputError("The chapters are being made already: wait for them, or press Stop.")
    except Exception as e:  # noqa: BLE001 - one line in the notice box, as every page event
        yield {page.notice: gr.update(value=message(e, "on_make"), visible=True)}
        return
    yield {cp.make: gr.update(visible=False), cp.stop: gr.update(visible=True), page.state: studio.id,
           cp.progress: "Scanning the video for scene changes…", page.notice: gr.update(value="", visible=False)}
    updates: queue.SimpleQueue = queue.SimpleQueue()
    result: dict = {}

    def work():
        try:
            result["chapters"] = scope.make_chapters(studio, sidecar=data.get(cp.subtitles), on_update=updates.put,
                                                     progress=lambda f, what: updates.put((f, what)))
        except Exception as e:  # noqa: BLE001
            result["error"] = e
        updates.put(None)

    threading.Thread(target=work, name="chapters", daemon=True).start()
    while (item := updates.get()) is not None:
        if isinstance(item, Chapters):
            yield _shown(cp, studio, item, final=False)
        else:
            yield {cp.progress: f"{item[1]} ({item[0]:.0%})"}
    if "error" in result:
        yield {page.notice: gr.update(value=message(result["error"], "on_make"), visible=True),
               cp.make: gr.update(visible=True), cp.stop: gr.update(visible=False)}
        return
    yield _shown(cp, studio, result["chapters"], final=True)


def on_pick(ctx, cp: ChapterPage, data: dict, request: gr.Request = None, progress=gr.Progress()):
    """A chapter chosen in the list: its range becomes the focus range; the player seeks to its start."""
    from .video_events import on_range

    page = ctx.page
    studio = ctx.existing(data)
    t = scope.tab(studio) if studio is not None else None
    index = data.get(cp.listing)
    if t is None or t.chapters is None or index is None or not 0 <= int(index) < len(t.chapters.chapters):
        return {cp.seek: None}
    c = t.chapters.chapters[int(index)]
    last = c.index == len(t.chapters.chapters) - 1
    boxes = {page.start: f"{c.start:g}" if c.start > 0 else "", page.end: "" if last else f"{c.end:g}"}
    out = on_range(ctx, {**data, **boxes}, request, progress)
    return {**boxes, cp.seek: float(c.start), **out}


def on_scope(ctx, cp: ChapterPage, data: dict, request: gr.Request = None):
    page = ctx.page
    try:
        studio = ctx.tab(data, request)
        scope.set_scope(studio, data[cp.scope], int(data[cp.top_k]))
    except Exception as e:  # noqa: BLE001
        return {page.notice: gr.update(value=message(e, "on_scope"), visible=True)}
    return {page.state: studio.id}


def on_stop(ctx, data: dict):
    studio = ctx.existing(data)
    if studio is not None:
        scope.stop(studio)


def wire(ctx, cp: ChapterPage) -> None:
    p = ctx.page
    private = dict(api_visibility="private")
    bind = functools.partial
    make_out = [p.state, p.notice, cp.make, cp.stop, cp.progress, cp.listing, cp.files, cp.vtt, cp.scope]
    # the chapters' own queue group: the model work inside takes the engine's lock, and a long scan does
    # not hold back the page's other GPU events
    make_kw = dict(concurrency_id="chapters", concurrency_limit=2, **private)
    cp.make.click(bind(on_make, ctx, cp), {p.state, cp.subtitles}, make_out, **make_kw).then(
        None, [cp.vtt], None, js=TRACK_JS)
    # a long video's chapters start by themselves once its frames are shown (the gallery is the last
    # thing a new video's event writes)
    p.gallery.change(bind(on_auto, ctx, cp), {p.state, cp.subtitles}, make_out, trigger_mode="always_last",
                     show_progress="hidden", **make_kw).then(None, [cp.vtt], None, js=TRACK_JS)
    cp.stop.click(bind(on_stop, ctx), {p.state}, None, queue=False, **private)
    pick_out = [p.start, p.end, cp.seek, p.state, p.gallery, p.view_md, p.heatmap, p.notice, p.strategy_image]
    cp.listing.input(bind(on_pick, ctx, cp), {cp.listing, p.start, p.end, p.state}, pick_out, concurrency_id="gpu",
                     **private).then(None, [cp.seek], None, js=SEEK_JS)
    gr.on([cp.scope.input, cp.top_k.release], bind(on_scope, ctx, cp), {cp.scope, cp.top_k, p.state},
          [p.state, p.notice], queue=False, **private)
    _wire_api(ctx)


def _wire_api(ctx) -> None:
    """/chapters(settings: dict) -> the chapters as JSON (made or cached) for this client's video;
    /set_scope(changes: dict {"scope": "focus"|"whole", "top_k": k}) -> the scope. Errors are gr.Error."""
    from dataclasses import fields

    from ..chapters.settings import ChapterSettings
    from .messages import guard

    def payload(raw, allowed: list[str], name: str) -> dict:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise scope.InputError(f"/{name} takes a JSON object of {', '.join(allowed)}, got {type(raw).__name__}.")
        unknown = sorted(str(k)[:24] for k in raw if k not in allowed)
        if unknown:
            raise scope.InputError(f"/{name} takes {', '.join(allowed)}, not {', '.join(unknown[:3])}.")
        return dict(raw)

    with gr.Group(visible=False):
        api_in = gr.JSON()
        api_out = gr.JSON()

    @guard
    def api_chapters(settings, studio, request: gr.Request = None):
        studio = ctx.tab({ctx.page.state: studio}, request)
        given = payload(settings, [f.name for f in fields(ChapterSettings)], "chapters")
        ch = scope.make_chapters(studio, ChapterSettings(**given))
        return ch.as_dict(), studio.id

    @guard
    def api_set_scope(changes, studio, request: gr.Request = None):
        studio = ctx.tab({ctx.page.state: studio}, request)
        given = payload(changes, ["scope", "top_k"], "set_scope")
        scope.set_scope(studio, given.get("scope"), given.get("top_k"))
        return scope.info(studio), studio.id

    state = ctx.page.state
    gr.Button(visible=False).click(api_chapters, [api_in, state], [api_out, state], api_name="chapters",
                                   concurrency_id="gpu")
    gr.Button(visible=False).click(api_set_scope, [api_in, state], [api_out, state], api_name="set_scope",
                                   concurrency_limit=None)
