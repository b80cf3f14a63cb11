"""What a person hands the decoder, checked before a byte is decoded, and the sentences they get back.

Every failure a person can cause (a missing, empty or oversized file, a text file, a bad knob, a time
range outside the video, a video too long or too slow to read) becomes a `VideoError` here, worded for
that person. The frame count and the time range a person asks for are the settings table's to check
(settings.NUM_FRAMES, settings.check_time_range); whether a range lies inside the video is checked here.
This module knows nothing about decoding: it reads at most 512 bytes of a file (to say what it is when
it is not a video).
"""

from __future__ import annotations

import bisect
import math
import time
from pathlib import Path

from ..errors import VideoError


def human_duration(seconds: float) -> str:
    """'2 h 0 min', '10 min', '1 min 30 s', '4.5 s' (for messages)."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60} min"
    if s >= 60:
        return f"{s // 60} min" + (f" {s % 60} s" if s % 60 else "")
    return f"{seconds:.3g} s"


def _mb(n_bytes: float) -> str:
    """Megabytes (2**20 bytes) rounded UP (to 0.1, or 0.001 below 1 MB), so a file just over a limit
    never reads as equal to it."""
    scale = 10 if n_bytes >= 2**20 else 1000
    return f"{math.ceil(n_bytes / 2**20 * scale) / scale:,g}"


def check_file(path, *, max_mb: float | None = None) -> Path:
    """The checks every reader starts with (exists, is a file, not empty, at most `max_mb`), done
    before any byte is decoded; a server calls it first so an oversized upload costs nothing."""
    p = check_path(path)
    size = p.stat().st_size
    if max_mb is not None and size > max_mb * 2**20:
        raise VideoError(f"The file is {_mb(size)} MB; the limit is {max_mb:,g} MB.")
    return p


def check_path(path) -> Path:
    p = Path(path)
    if not p.exists():
        raise VideoError(f"The file '{p.name}' does not exist.")
    if not p.is_file():
        raise VideoError(f"'{p.name}' is not a file.")
    if p.stat().st_size == 0:
        raise VideoError(f"The file '{p.name}' is empty (0 bytes).")
    return p


def _is_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def check_seconds(name: str, value) -> float | None:
    """None or a number of seconds > 0 (a limit, a budget, a sampling interval)."""
    if value is not None and (not _is_number(value) or not value > 0):
        raise VideoError(f"{name} must be None or a number of seconds > 0, got {value!r}.")
    return None if value is None else float(value)


def check_short_side(value) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise VideoError(f"max_short_side must be None or a whole number >= 1, got {value!r}.")
    return value


def range_ordinals(times, start_s: float | None, end_s: float | None, duration: float, name: str) -> tuple[int, int]:
    """(first, last) ordinal of the frames whose time lies in [start_s, end_s]; `times` is a sorted
    sequence of every frame's time in seconds (or anything bisect can search)."""
    lo = 0.0 if start_s is None else start_s
    hi = duration if end_s is None else end_s
    eps = 1e-6  # a range typed from a shown timestamp (rounded to ms) still includes that frame
    if lo >= duration or hi > duration + 1e-3:
        raise VideoError(f"The time range {lo:g} s to {hi:g} s is not inside '{name}', which runs from "
                         f"0 s to {duration:.3f} s.")
    first = bisect.bisect_left(times, lo - eps)
    last = bisect.bisect_right(times, hi + eps) - 1
    if last < first:
        raise VideoError(f"No frame of '{name}' lies between {lo:g} s and {hi:g} s; widen the range "
                         f"(the video runs from 0 s to {duration:.3f} s).")
    return first, last


def unreadable(p: Path) -> VideoError:
    """The error for a file no decoder can read, saying what it is when that is plain (text, a web page)."""
    with open(p, "rb") as f:
        head = f.read(512)  # never the whole file: it may be huge
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.strip() and all(c.isprintable() or c.isspace() for c in text):
        kind = "a web page" if "<html" in text.lower() or "<!doctype" in text.lower() else "a text file"
        return VideoError(f"'{p.name}' is {kind}, not a video or an image.")
    return VideoError(f"'{p.name}' is not a video or image that can be read (it may be corrupt, truncated or of an unsupported type).")


def check_duration(duration: float | None, max_duration: float | None) -> None:
    if max_duration is not None and duration is not None and duration > max_duration:
        raise VideoError(f"The video is {human_duration(duration)} long; the limit is {human_duration(max_duration)}.")


class Deadline:
    """The decode time budget: started when a decoder opens, checked as packets and frames go by."""

    def __init__(self, budget: float | None):
        self.budget = budget
        self.at = time.monotonic() + budget if budget is not None else None

    def check(self) -> None:
        if self.at is not None and time.monotonic() > self.at:
            raise VideoError(f"Reading the video took longer than the {self.budget:g} s allowed; try a shorter video "
                             "or fewer frames.")
