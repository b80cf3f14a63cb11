"""Chapters as files: WebVTT (a chapters track for the player), SubRip and JSON. Text only: knows no
model and no page."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError
from .records import Chapters

FORMATS = (".vtt", ".srt", ".json")


def _stamp(seconds: float, comma: bool) -> str:
    ms = int(round(max(0.0, seconds) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{',' if comma else '.'}{ms:03d}"


def _one_line(text: str) -> str:
    return " ".join(text.replace("-->", "->").split())


def to_vtt(ch: Chapters) -> str:
    cues = [f"{c.index + 1}\n{_stamp(c.start, False)} --> {_stamp(c.end, False)}\n{_one_line(c.title)}"
            for c in ch.chapters]
    return "WEBVTT\n\n" + "\n\n".join(cues) + "\n"


def to_srt(ch: Chapters) -> str:
    cues = [f"{c.index + 1}\n{_stamp(c.start, True)} --> {_stamp(c.end, True)}\n{_one_line(c.caption or c.title)}"
            for c in ch.chapters]
    return "\n\n".join(cues) + "\n"


def to_json(ch: Chapters) -> str:
    return json.dumps(ch.as_dict(), ensure_ascii=False, indent=1)


def render(ch: Chapters, suffix: str) -> str:
    suffix = suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"Chapters can be written as {', '.join(FORMATS)}; got '{suffix or 'no suffix'}'.")
    return {".vtt": to_vtt, ".srt": to_srt, ".json": to_json}[suffix](ch)


def write(ch: Chapters, path) -> Path:
    p = Path(path)
    text = render(ch, p.suffix)
    p.write_text(text, encoding="utf-8")
    return p
