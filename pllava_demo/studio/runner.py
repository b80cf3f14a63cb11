"""The runner: where a tab's model work runs. `LocalRunner` runs it in this process: encoding is left to
the session (`ChatSession.set_video` encodes and caches), an answer streams from the engine's scheduler,
a comparison asks twice in throwaway sessions. studio/zerogpu_runner.py does the same work as ZeroGPU
calls; a tab holds one runner and never asks which.

A runner is given checked values (the tab's commands refuse first): it knows no refusals, no uploads,
no doors, and nothing of ZeroGPU.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

Progress = Callable[[float, str], None]


def ask_in(session, question: str, options, regenerate: bool = False) -> Iterator[str]:
    """The engine's stream of answer pieces, asked with the options' visual tokens, alpha and settings."""
    kwargs = dict(strategy=options.visual, lora_alpha=options.lora_alpha, settings=options.settings())
    return session.regenerate(**kwargs) if regenerate else session.ask(question, **kwargs)


def grow(pieces: Iterator[str], stop: threading.Event) -> Iterator[str]:
    """The answer so far after each piece, until the pieces end or `stop` is set."""
    text = ""
    try:
        for piece in pieces:
            text += piece
            yield text
            if stop.is_set():
                break
    finally:
        pieces.close()  # runs the engine's finally: the (partial) turn joins the history


def compare_in(engine, session, question: str, pair) -> Iterator[tuple[str, str]]:
    """(answer A, answer B) as they grow: the question asked with each of the two Options in a throwaway
    copy of `session` (its video and its turns before the last); `session` is not touched."""
    answers = ["", ""]
    for k, opts in enumerate(pair):
        copy = engine.new_session(session.system)
        copy.video, copy.turns = session.video, list(session.turns[:-1])
        try:
            for piece in ask_in(copy, question, opts):
                answers[k] += piece
                yield answers[0], answers[1]
        finally:
            copy.close()


class LocalRunner:
    """The model's work in this process, for the tab's own engine."""

    def prepare(self, tab, path, num_frames: int, progress: Progress | None, time_range) -> None:
        """Nothing ahead of time: the session encodes the video itself when it is set."""

    def stream(self, tab, question: str, regenerate: bool = False) -> Iterator[str]:
        """The answer so far after each piece; stops when `tab.stop` is set (the partial answer stays in
        the chat, marked as stopped). Validates now: raises before any work."""
        tab.stop.clear()
        return grow(ask_in(tab.session, question or "", tab.options, regenerate), tab.stop)

    def compare(self, tab, question: str, pair) -> Iterator[tuple[str, str]]:
        return compare_in(tab.engine, tab.session, question, pair)
