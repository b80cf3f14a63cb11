"""The chaptering knobs, validated once; their `key` is half of the chapter cache's key (the file's
content is the other half). Knows nothing about models or files."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..errors import InputError

LONG_VIDEO_S = 180.0  # videos at least this long get chapters by default (a button does shorter ones)


@dataclass(frozen=True)
class ChapterSettings:
    step_s: float = 4.0  # one frame every step_s seconds feeds the boundary scores
    min_chapter_s: float = 20.0
    max_chapter_s: float = 300.0  # longer scenes are cut into equal parts
    window_s: float = 120.0  # fixed windows when the scores find no scene boundary
    max_chapters: int = 120
    depth_std: float = 0.5  # a boundary's depth score exceeds mean + depth_std * std
    caption_frames: int = 8  # frames per chapter for its caption (the official rule inside the chapter)
    caption_tokens: int = 48
    caption_min_tokens: int = 0
    batch_size: int = 8  # chapters captioned together in one decode loop
    keyframes: str = "auto"  # "auto", "yes" (keyframes only) or "no" (every frame decoded)

    def __post_init__(self):
        positive = {"step_s": self.step_s, "min_chapter_s": self.min_chapter_s, "max_chapter_s": self.max_chapter_s,
                    "window_s": self.window_s}
        for name, value in positive.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise InputError(f"The chapter setting {name} must be a positive number of seconds, got {value!r}.")
        if self.min_chapter_s > self.max_chapter_s:
            raise InputError(f"The shortest chapter ({self.min_chapter_s:g} s) must not be longer than the longest "
                             f"({self.max_chapter_s:g} s).")
        for name, lo, hi in (("max_chapters", 1, 1000), ("caption_frames", 1, 64), ("caption_tokens", 1, 512),
                             ("caption_min_tokens", 0, 512), ("batch_size", 1, 64)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise InputError(f"The chapter setting {name} must be a whole number from {lo} to {hi}, got {value!r}.")
        if not 0 <= self.depth_std <= 5:
            raise InputError(f"The chapter setting depth_std must be between 0 and 5, got {self.depth_std!r}.")
        if self.keyframes not in ("auto", "yes", "no"):
            raise InputError(f"The chapter setting keyframes must be 'auto', 'yes' or 'no', got {self.keyframes!r}.")

    @property
    def key(self) -> tuple:
        """What the chapters depend on (batch_size does not change them)."""
        return tuple((k, v) for k, v in asdict(self).items() if k != "batch_size")

    def as_dict(self) -> dict:
        return asdict(self)
