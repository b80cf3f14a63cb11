"""The chapter values every door shows: a subtitle line, a chapter, a video's chapters. Plain frozen
data with a dict form (the JSON export and the cache file use it); no model, no files."""

from __future__ import annotations

from dataclasses import dataclass, field, replace


def clock(seconds: float) -> str:
    """m:ss or h:mm:ss, as a player shows it."""
    s = int(max(0.0, seconds) + 1e-6)
    h, m, s = s // 3600, s // 60 % 60, s % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@dataclass(frozen=True)
class Line:
    """One subtitle line: plain text (markup removed) shown from start to end (seconds)."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Chapter:
    index: int  # 0-based position in the video
    start: float
    end: float
    caption: str = ""
    lines: tuple[Line, ...] = ()  # the subtitle lines that start inside the chapter

    @property
    def title(self) -> str:
        """The caption's first line (or sentence), else 'Chapter N'."""
        text = self.caption.strip().splitlines()[0].strip() if self.caption.strip() else ""
        if ". " in text:
            text = text.split(". ")[0] + "."
        return text[:120] or f"Chapter {self.index + 1}"

    @property
    def label(self) -> str:
        return f"{clock(self.start)}–{clock(self.end)}"

    def as_dict(self) -> dict:
        return {"index": self.index, "start": round(self.start, 3), "end": round(self.end, 3), "title": self.title,
                "caption": self.caption, "subtitles": [[round(x.start, 3), round(x.end, 3), x.text] for x in self.lines]}

    @classmethod
    def from_dict(cls, d: dict) -> "Chapter":
        return cls(int(d["index"]), float(d["start"]), float(d["end"]), d.get("caption", ""),
                   tuple(Line(float(a), float(b), str(t)) for a, b, t in d.get("subtitles", ())))


@dataclass(frozen=True)
class Chapters:
    """A video's chapters, in time order, covering [0, duration]. complete is False while captions are
    still being made (or after a Stop): the chapters made so far are in `chapters` either way."""

    content_key: str
    duration: float
    chapters: tuple[Chapter, ...]
    method: str  # "scenes" or "fixed windows"
    complete: bool = False
    settings: dict = field(default_factory=dict)

    @property
    def captioned(self) -> int:
        return sum(1 for c in self.chapters if c.caption)

    def with_caption(self, index: int, caption: str) -> "Chapters":
        chapters = list(self.chapters)
        chapters[index] = replace(chapters[index], caption=caption)
        return replace(self, chapters=tuple(chapters))

    def as_dict(self) -> dict:
        return {"duration": round(self.duration, 3), "method": self.method, "complete": self.complete,
                "settings": self.settings, "content_key": self.content_key,
                "chapters": [c.as_dict() for c in self.chapters]}

    @classmethod
    def from_dict(cls, d: dict) -> "Chapters":
        return cls(d["content_key"], float(d["duration"]), tuple(Chapter.from_dict(c) for c in d["chapters"]),
                   d["method"], bool(d.get("complete")), dict(d.get("settings", {})))
