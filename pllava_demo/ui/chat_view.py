"""The chat as the page shows it: a person's question exactly as typed.

The chat box renders Markdown (the model's answers need it for their time links, and arrive already
escaped by time_links). A question is the person's own text, so every character Markdown or HTML
could act on is escaped: `<image>` and `</s>` stay visible, `a*b*c` is not italic, `[x](url)` is
no link, an `<img>` tag is text. Line breaks and spaces stay as typed.

Plain strings and gradio's message dicts: no gradio import, no session.
"""

from __future__ import annotations

import re

# CommonMark lets a backslash escape any ASCII punctuation, and an escaped one is always literal
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
_LEADING_SPACES = re.compile(r"^( +)", re.MULTILINE)  # four would start a code block


def as_typed(text: str) -> str:
    """`text` as Markdown that shows exactly `text` (escaped, ':', '.' and '@' make no autolink)."""
    text = _PUNCTUATION.sub(r"\\\1", str(text))
    return _LEADING_SPACES.sub(lambda m: "\u00a0" * len(m[1]), text)


def for_page(messages: list[dict]) -> list[dict]:
    """Chat messages with each person's question escaped; the answers as they are."""
    return [{**m, "content": as_typed(m["content"])} if m.get("role") == "user" and isinstance(m.get("content"), str)
            else m for m in messages]
