"""Ask the whole video: retrieve the chapters a question is about (retrieval.py), sample frames across
them (the official rule inside each chapter, the frame budget split between them), give the model the
retrieved subtitle lines as context, and record which chapters the answer used.

Each chapter's frames and CLIP features come from the engine's feature cache, keyed by (file, frames,
time range): a follow-up that retrieves a chapter again with the same share re-decodes and re-encodes
nothing (engine.stats counts both). Knows the chat session and chapters; not the page or argv.
"""

from __future__ import annotations

import dataclasses
import re
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError
from .records import Chapters, Line, clock
from .retrieval import MAX_TOP_K, ChapterIndex

MAX_CONTEXT_LINES = 12
MAX_CONTEXT_CHARS = 1200


@dataclass(frozen=True)
class UsedChapter:
    index: int
    start: float
    end: float
    frames: int
    score: float
    title: str

    @property
    def label(self) -> str:
        return f"{clock(self.start)}–{clock(self.end)}"

    def as_dict(self) -> dict:
        return {"chapter": self.index + 1, "start": round(self.start, 3), "end": round(self.end, 3),
                "frames": self.frames, "score": round(self.score, 4), "title": self.title}


@dataclass(frozen=True)
class WholePlan:
    """What one whole-video answer is made from: chapters in time order with their frame shares, and the
    subtitle lines given as context."""

    used: tuple[UsedChapter, ...]
    lines: tuple[Line, ...]
    top_k: int

    def as_dict(self) -> dict:
        return {"scope": "whole", "top_k": self.top_k, "chapters": [u.as_dict() for u in self.used],
                "subtitle_lines": [[round(x.start, 3), x.text] for x in self.lines]}

    def describe(self) -> str:
        return "Chapters used: " + ", ".join(f"{u.index + 1} ({u.label}, {u.frames} frames)" for u in self.used)


def check_top_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_TOP_K:
        raise InputError(f"The number of chapters to retrieve (top-k) must be a whole number from 1 to {MAX_TOP_K}, "
                         f"got {k!r}.")
    return k


def split_frames(num_frames: int, n: int) -> list[int]:
    """num_frames split over n chapters as evenly as possible (earlier chapters get the remainder)."""
    base, extra = divmod(num_frames, n)
    return [base + (1 if i < extra else 0) for i in range(n)]


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"\w+", text.lower()) if len(w) > 2}


def context_lines(question: str, candidates: list[Line]) -> tuple[Line, ...]:
    """The subtitle lines of the chosen chapters that share a word with the question (all of them when
    none does), at most MAX_CONTEXT_LINES, in time order."""
    asked = _words(question)
    scored = [(len(asked & _words(x.text)), x) for x in candidates]
    if any(s for s, _ in scored):
        scored = [(s, x) for s, x in scored if s]
    best = sorted(scored, key=lambda sx: (-sx[0], sx[1].start))[:MAX_CONTEXT_LINES]
    return tuple(sorted((x for _, x in best), key=lambda x: x.start))


def plan_whole(chapters: Chapters, question: str, *, top_k: int = 3, num_frames: int = 16,
               index: ChapterIndex | None = None) -> WholePlan:
    top_k = check_top_k(top_k)
    if not chapters.chapters:
        raise InputError("This video has no chapters yet: make them first (or ask about the focus range).")
    hits = (index or ChapterIndex(chapters)).search(question, min(top_k, num_frames))
    hits = sorted(hits, key=lambda h: h.chapter.start)
    shares = split_frames(num_frames, len(hits))
    used = tuple(UsedChapter(h.chapter.index, h.chapter.start, h.chapter.end, n, h.score, h.chapter.title)
                 for h, n in zip(hits, shares))
    lines = context_lines(question, [x for h in hits for x in h.chapter.lines])
    return WholePlan(used, lines, top_k)


def question_with_context(question: str, lines: tuple[Line, ...], max_chars: int = 4000) -> str:
    """The question after the subtitle lines, within max_chars (the context is cut, never the question)."""
    head = "Subtitles of these parts of the video:\n"
    room = min(MAX_CONTEXT_CHARS, max_chars - len(question) - len(head) - 2)
    if not lines or room < 40:
        return question
    body = "\n".join(f"[{clock(x.start)}] {x.text}" for x in lines)[:room]
    return f"{head}{body}\n\n{question}"


def compose(engine, path, chapters: Chapters, plan: WholePlan, progress=None):
    """One VideoFeatures holding every used chapter's frames and features, in time order. Each chapter
    comes from engine.prepare_video (cached per file, frames and range)."""
    from ..chat.features import VideoFeatures

    last = len(chapters.chapters) - 1
    parts = []
    for j, u in enumerate(plan.used):
        if progress:
            progress(j / len(plan.used), f"Reading chapter {u.index + 1}")
        parts.append(engine.prepare_video(path, u.frames, start_s=u.start or None,
                                          end_s=None if u.index == last else u.end))
    first = parts[0].clip
    key = f"{first.content_key}#whole:" + ",".join(f"{u.index}x{u.frames}" for u in plan.used)
    clip = dataclasses.replace(
        first, frames=np.concatenate([p.clip.frames for p in parts]),  # (T, H, W, 3)
        timestamps=tuple(t for p in parts for t in p.clip.timestamps),
        indices=tuple(i for p in parts for i in p.clip.indices), content_key=key, time_range=None,
        decoded_frames=sum(p.clip.decoded_frames for p in parts))
    features = torch.cat([p.features for p in parts])  # (T, H*W, D)
    return VideoFeatures(clip=clip, features=features, num_frames=features.shape[0])


# session id -> turn number -> (the chat's epoch, plan); dropped with the session
_PLANS: dict[int, dict[int, tuple[int, WholePlan]]] = {}


def plans_of(session) -> dict[int, WholePlan]:
    """turn number -> the plan its answer was made from, for every whole-video answer of the session's
    current chat (a Clear or a new video starts a chat with none)."""
    return {turn: plan for turn, (epoch, plan) in _PLANS.get(session.id, {}).items() if epoch == session.epoch}


def _remember(session, turn: int, plan: WholePlan) -> None:
    if session.id not in _PLANS:
        _PLANS[session.id] = {}
        weakref.finalize(session, _PLANS.pop, session.id, None)
    _PLANS[session.id][turn] = (session.epoch, plan)


def point_session(session, path, chapters: Chapters, question: str, *, top_k: int = 3, num_frames: int = 16,
                  index: ChapterIndex | None = None, progress=None) -> tuple[str, WholePlan]:
    """Retrieve the chapters for `question` and point the session's video at their frames (the chat
    goes on; another file starts a new one). Returns the question as the model gets it (after the
    retrieved subtitle lines) and the plan, which is kept for the turn about to be asked (`plans_of`)."""
    engine = session.engine
    question = engine.limits.check_question(question)
    num_frames = engine.limits.check_frames(num_frames)
    plan = plan_whole(chapters, question, top_k=top_k, num_frames=num_frames, index=index)
    vf = compose(engine, path, chapters, plan, progress)
    if session.video is None or not session.video.clip.content_key.startswith(chapters.content_key):
        session.clear()  # another file: a new chat (the same file in another scope keeps it)
    session.video = vf
    session.closed = False
    _remember(session, len(session.turns), plan)
    return question_with_context(question, plan.lines, engine.limits.max_question_chars), plan


def ask_whole(session, path, chapters: Chapters, question: str, *, top_k: int = 3, num_frames: int = 16,
              index: ChapterIndex | None = None, progress=None, **ask_kwargs) -> tuple[Iterator[str], WholePlan]:
    """point_session, then ChatSession.ask: the answer stream and the plan."""
    asked, plan = point_session(session, path, chapters, question, top_k=top_k, num_frames=num_frames, index=index,
                                progress=progress)
    return session.ask(asked, **ask_kwargs), plan
