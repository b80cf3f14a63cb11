"""The page's events about the conversation: ask (Send or Enter) and regenerate, streamed a few
pieces a second; Stop, Clear, New video; a clicked frame's time; the chat's download; Compare. Each
takes the values it reads as a dict keyed by component and returns the components it changes (wired in
events.py).
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

import gradio as gr

from .. import refusals
from ..studio import tab as tabs
from . import export
from . import view
from .chat_messages import chat_stream
from .chat_view import for_page
from .event_context import Ctx, changes_from, say, settings_only
from .layout import Page
from .page_state import state_html
from .streaming import coalesce

# -- chat -------------------------------------------------------------------------------------------
def busy(page: Page, answering: bool) -> dict:
    """While an answer streams Send is replaced by Stop, and Regenerate and Compare are off."""
    return {page.send: gr.update(visible=not answering), page.stop: gr.update(visible=answering),
            page.regen: gr.update(interactive=not answering), page.compare_btn: gr.update(interactive=not answering)}


def paced(*args) -> typing.Iterator[str]:
    """The GPU stream of the answer so far, a few pieces a second (streaming.py: the page stays
    responsive whatever the token rate)."""
    return coalesce(tabs.stream_answer(*args))


def on_chat(ctx: Ctx, data: dict, request: gr.Request = None, regenerate: bool = False):
    """Stream the answer into the chat. The question box is cleared once, when the question is
    accepted, and never written again (the next question may be typed meanwhile)."""
    page = ctx.page
    studio = ctx.tab(data, request)
    tabs.set_options(studio, **settings_only(studio, changes_from(page, data)))
    question = None if regenerate else data[page.msg]
    problem = view.too_many_tokens(studio)
    if problem:  # known before any answer starts: said, and no empty answer bubble
        yield say(page, problem)
        return
    first = True
    for messages in chat_stream(studio, question, regenerate, stream=paced):
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
