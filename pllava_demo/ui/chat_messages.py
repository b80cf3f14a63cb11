"""A tab's chat as gradio 'messages' ({"role", "content"} dicts), rebuilt from its session (the one
source of truth): answers with times as seek links and, for a whole-video answer, its chapters.
`chat_stream` is the studio's ask command (studio/tab.py: `asking`) as those messages, growing.

No gradio import; knows the page's chat shape, nothing of events or components.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..studio import tab as tabs
from ..studio.chapters_scope import chapters_note
from .time_links import link_times


def history(tab: tabs.Tab | None) -> list[dict]:
    """The chat as messages; [] without a tab."""
    if tab is None:
        return []
    out = []
    for k, turn in enumerate(tab.session.turns):
        answer = shown_answer(tab, turn.answer) + (" *(stopped)*" if turn.stopped else "") + chapters_note(tab, k)
        out += [{"role": "user", "content": turn.question}, {"role": "assistant", "content": answer}]
    return out


def shown_answer(tab: tabs.Tab, text: str) -> str:
    """An answer as the chat shows it: its own text as text, and times in the video as seek links."""
    clip = tab.video.clip if tab.video is not None else None
    return link_times(text, float(clip.duration) if clip is not None else None)


def chat_stream(tab: tabs.Tab, question: str | None, regenerate: bool = False,
                stream: tabs.Stream | None = None) -> Iterator[list[dict]]:
    """The tab's history plus the answer growing, then the history again (the page shows what the model
    will see next, never a copy of its own). Every refusal is raised before anything is shown; a second
    question waits for the first's answer."""
    steps = tabs.asking(tab, question, regenerate, stream)
    try:
        shown = next(steps)  # accepted: checked, the answer slot taken
        before = history(tab)
        if regenerate:
            before = before[:-2]
        current = [{"role": "user", "content": shown}, {"role": "assistant", "content": ""}]
        yield before + current
        for text in steps:
            current[1] = {"role": "assistant", "content": shown_answer(tab, text)}
            yield before + current
    finally:
        steps.close()
    yield history(tab)
