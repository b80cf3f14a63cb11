"""Subtitles as plain timed lines: the text streams inside the file (frames/subtitle_stream.py reads
them) and a sidecar .srt / .vtt uploaded beside the video. Markup (SRT/VTT tags, ASS override
blocks) is removed here. Knows no chapters beyond `assign` (which lines start inside which range)."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError
from .records import Line

SIDECAR_SUFFIXES = (".srt", ".vtt")
MAX_SIDECAR_BYTES = 5_000_000
_TIME = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})")
_TAG = re.compile(r"<[^>]*>")
_ASS_BLOCK = re.compile(r"\{[^}]*\}")


def _seconds(match: re.Match) -> float:
    h, m, s, frac = match.groups()
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(frac.ljust(3, "0")) / 1000


def clean(text: str, kind: str = "srt") -> str:
    """Plain text of one cue: ASS events keep their Text field only; tags and overrides go; lines join."""
    if kind == "ass":
        # Matroska ASS packets: ReadOrder, Layer, Style, Name, MarginL, MarginR, MarginV, Effect, Text
        text = text.split(",", 8)[-1] if text.count(",") >= 8 else text
        text = _ASS_BLOCK.sub("", text).replace("\\N", " ").replace("\\n", " ").replace("\\h", " ")
    text = _TAG.sub("", text)
    return " ".join(text.split())


def parse_text(text: str) -> list[Line]:
    """Lines of a SubRip or WebVTT document (the cue timing line finds each cue; numbers and headers are
    skipped)."""
    lines, cue, times = [], [], None
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") + [""]:
        if "-->" in raw:
            stamps = list(_TIME.finditer(raw))
            times = (_seconds(stamps[0]), _seconds(stamps[1])) if len(stamps) >= 2 else None
            cue = []
        elif not raw.strip():
            if times is not None and cue:
                body = clean("\n".join(cue))
                if body:
                    lines.append(Line(times[0], times[1], body))
            times, cue = None, []
        elif times is not None:
            cue.append(raw)
    return sorted(lines, key=lambda x: (x.start, x.end))


def read_sidecar(path) -> list[Line]:
    p = Path(path)
    if p.suffix.lower() not in SIDECAR_SUFFIXES:
        raise InputError(f"A subtitle file must be .srt or .vtt, got '{p.name}'.")
    if p.stat().st_size > MAX_SIDECAR_BYTES:
        raise InputError(f"The subtitle file '{p.name}' is larger than {MAX_SIDECAR_BYTES // 1_000_000} MB.")
    data = p.read_bytes()
    text = data.decode("utf-8-sig", errors="replace")
    lines = parse_text(text)
    if not lines and text.strip():
        raise InputError(f"'{p.name}' holds no subtitle cue this reader understands (SubRip or WebVTT).")
    return lines


def read_embedded(path) -> list[Line]:
    from ..frames.subtitle_stream import read_embedded as raw_cues

    out = []
    for cue in raw_cues(path):
        text = clean(cue.text, "ass" if cue.kind == "ass" else "srt")
        if text:
            out.append(Line(cue.start, max(cue.end, cue.start), text))
    return out


def read_all(video, sidecar=None) -> list[Line]:
    """The file's own subtitle lines, then a sidecar's, in time order (duplicates dropped)."""
    lines = read_embedded(video) + (read_sidecar(sidecar) if sidecar else [])
    seen, out = set(), []
    for line in sorted(lines, key=lambda x: (x.start, x.end, x.text)):
        key = (round(line.start, 2), line.text)
        if key not in seen:
            seen.add(key)
            out.append(line)
    return out


def assign(lines: list[Line], start: float, end: float, last: bool = False) -> tuple[Line, ...]:
    """The lines that start inside [start, end) (the last chapter also takes what starts at its end)."""
    return tuple(x for x in lines if start <= x.start < end or (last and x.start >= start))
