"""A tab's chapters and its question scope ("focus": the frames of the focus range, as always;
"whole": each question retrieves its chapters first, chapters/whole.py). Plain functions of a tab (tab.py),
shared by the page (ui/chapters_view.py), the named API and the answer path (tab.py calls
`before_answer`). Knows nothing of gradio; runs in this process (not as a ZeroGPU call).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field

from ..chapters.maker import maker_for
from ..chapters.records import Chapters
from ..chapters.retrieval import ChapterIndex
from ..chapters.settings import LONG_VIDEO_S, ChapterSettings
from ..chapters.whole import check_top_k, plans_of, point_session
from ..errors import InputError

SCOPES = ("focus", "whole")


@dataclass
class TabChapters:
    scope: str | None = None  # None: "whole" for a video of LONG_VIDEO_S or more once it has chapters
    top_k: int = 3
    chapters: Chapters | None = None
    index: ChapterIndex | None = None
    path: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    running: bool = False


_TABS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def tab(studio) -> TabChapters:
    t = _TABS.get(studio)
    if t is None:
        t = _TABS[studio] = TabChapters()
    return t


def set_scope(studio, scope: str | None = None, top_k: int | None = None) -> TabChapters:
    t = tab(studio)
    if scope is not None:
        if scope not in SCOPES:
            raise InputError(f"The scope must be one of {', '.join(SCOPES)}, got {scope!r}.")
        t.scope = scope
    if top_k is not None:
        t.top_k = check_top_k(top_k)
    return t


def scope_of(studio) -> str:
    t = tab(studio)
    if t.scope is not None:
        return t.scope
    long = t.chapters is not None and t.chapters.duration >= LONG_VIDEO_S and t.path == studio.video_path
    return "whole" if long else "focus"


def make_chapters(studio, settings: ChapterSettings = ChapterSettings(), *, sidecar=None, on_update=None,
                  progress=None) -> Chapters:
    """The chapters of the tab's video (cached by content and settings; Stop keeps what was made), with
    a sidecar subtitle file's lines added when one is given."""
    if not studio.video_path:
        raise InputError("Upload a video (or pick an example) before making chapters.")
    t = tab(studio)
    t.stop.clear()

    def keep(ch: Chapters) -> None:
        t.chapters, t.index, t.path = ch, None, studio.video_path
        if on_update:
            on_update(ch)

    t.running = True
    try:
        ch = maker_for(studio.engine).chapters(studio.video_path, settings, sidecar=sidecar, stop=t.stop,
                                               on_update=keep, progress=progress)
    finally:
        t.running = False
    keep(ch)
    return ch


def wants_chapters(studio) -> bool:
    """A video of LONG_VIDEO_S or more whose chapters are neither made nor being made."""
    t, video = tab(studio), studio.video
    if t.running or video is None or (t.path == studio.video_path and t.chapters is not None):
        return False
    return float(video.clip.duration) >= LONG_VIDEO_S


def stop(studio) -> None:
    tab(studio).stop.set()


def before_answer(studio, question: str) -> tuple[str, dict | None]:
    """Called just before a question is answered: with the whole-video scope, retrieve its chapters and
    point the session at their frames; returns the question as the model gets it and the plan's record
    (None in the focus scope). The focus scope puts back the focus range's frames if a whole-video
    answer had replaced them."""
    session, t = studio.session, tab(studio)
    if scope_of(studio) != "whole":
        video = session.video
        if video is not None and "#whole:" in video.clip.content_key and studio.video_path:
            o = studio.options
            session.video = studio.engine.prepare_video(studio.video_path, o.num_frames, start_s=o.start_s, end_s=o.end_s)
        return question, None
    if t.chapters is None or t.path != studio.video_path or not t.chapters.chapters:
        raise InputError("Make the video's chapters first (the Chapters button), or ask about the focus range.")
    if t.index is None:
        t.index = ChapterIndex(t.chapters)
    asked, plan = point_session(session, studio.video_path, t.chapters, question, top_k=t.top_k,
                                num_frames=studio.options.num_frames, index=t.index)
    return asked, plan.as_dict()


def last_plan(studio) -> dict | None:
    """The chapters the latest whole-video answer used (for /info), or None."""
    plans = plans_of(studio.session)
    if not plans or not studio.session.turns:
        return None
    turn = max(plans)
    return plans[turn].as_dict() if turn == len(studio.session.turns) - 1 else None


def info(studio) -> dict:
    """The tab's chapter facts for /info: the scope, top-k, how many chapters, and the chapters the
    latest answer used (when it was a whole-video answer)."""
    t = tab(studio)
    out = {"scope": scope_of(studio), "top_k": t.top_k,
           "chapters": len(t.chapters.chapters) if t.chapters is not None and t.path == studio.video_path else 0}
    plan = last_plan(studio)
    if plan is not None:
        out["chapters_used"] = plan["chapters"]
    return out


def chapters_note(studio, turn: int) -> str:
    """For the chat: the chapters a whole-video answer used, as seek links ("" for other answers)."""
    plan = plans_of(studio.session).get(turn)
    if plan is None:
        return ""
    links = ", ".join(f"[{u.label}](#t={u.start:g})" for u in plan.used)
    return f"\n\n*Chapters used:* {links}"
