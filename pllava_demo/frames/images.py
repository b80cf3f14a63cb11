"""Stills and animations through PIL, with the same face as a video stream (`timeline`, `decode`,
`keyframes`), so a decoder treats a photo, an animated WebP and an mp4 alike.

A still is one frame at time 0 (fps 0, duration 0), turned upright by its EXIF orientation; a JPEG is
decoded at a reduced scale when only a small picture is wanted. An animation's frame times come from
the frames' own durations (0 ms is shown by browsers as ~100 ms, and counted so); it is read in one
pass, or two when its times are needed before the frames (a time range). GIFs normally arrive here only
when FFmpeg cannot read them. It knows nothing about sampling rules or video containers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, ImageSequence

from ..errors import VideoError
from ..settings import IMAGE_EXTENSIONS  # noqa: F401 (the frames room's name for it)
from .batch import FrameBatch, FrameBuffer
from .checks import Deadline, check_duration, unreadable
from .convert import Convert, shrunk

_EXIF_QUARTER_TURNS = (5, 6, 7, 8)  # EXIF orientations that turn the picture a quarter
_ZERO_MS_AS = 100  # ms: how browsers show a frame whose duration says 0


class ImageSource:
    """An image PIL can open. `still`: one frame; otherwise an animation of `n_frames` frames.
    `decoded` counts the pictures converted (cost, for tests)."""

    codec = "image"

    def __init__(self, path: Path, im: Image.Image, *, deadline: Deadline, max_duration: float | None):
        self.path, self.im, self.deadline, self.max_duration = path, im, deadline, max_duration
        self.n_frames = getattr(im, "n_frames", 1)
        self.still = self.n_frames <= 1
        width, height = im.size
        if self.still and im.getexif().get(0x0112, 1) in _EXIF_QUARTER_TURNS:
            width, height = height, width
        self.display = (width, height)
        self.decoded = 0
        self._starts: list[float] | None = None  # each frame's start time, once a pass has read them
        self._total = 0.0

    @classmethod
    def open(cls, path: Path, *, deadline: Deadline, max_duration: float | None) -> ImageSource | None:
        """The image, or None when PIL cannot read it either."""
        try:
            im = Image.open(path)
            im.size  # noqa: B018 - a header PIL cannot make sense of raises here
        except Image.DecompressionBombError as e:
            raise VideoError(f"The image '{path.name}' is too large to open safely.") from e
        except Exception:  # noqa: BLE001 - PIL raises many kinds; the caller turns None into a VideoError
            return None
        return cls(path, im, deadline=deadline, max_duration=max_duration)

    def size(self) -> tuple[int, int]:
        return self.display

    def frame_times(self) -> list[float]:
        """Every frame's start in seconds (an animation's first call reads them in a pass)."""
        if self.still:
            return [0.0]
        if self._starts is None:
            self._pass(None, None, None)
        return self._starts

    @property
    def duration(self) -> float:
        if self.still:
            return 0.0
        self.frame_times()  # an animation's total is learnt with its times
        return self._total

    @property
    def fps(self) -> float:
        return 0.0 if self.still else self.n_frames / self.duration  # a still has no frame rate

    def decode(self, ordinals, convert: Convert) -> FrameBatch:
        """The frames at these ordinals (any order, repeats allowed)."""
        if self.still:
            return self._still(ordinals, convert)
        got = FrameBuffer(sorted(set(ordinals)))
        self._pass(got, convert, set(ordinals))
        return got.batch(ordinals)

    def keyframes(self, first: int, last: int, convert: Convert) -> FrameBatch:
        """Every frame of an animation stands alone (PIL composes each in full)."""
        return self.decode(list(range(first, last + 1)), convert)

    def _still(self, ordinals, convert: Convert) -> FrameBatch:
        try:
            im = self.im
            size = shrunk(im.width, im.height, convert.max_short_side) if convert.resize is None else None
            if size is not None:
                im.draft("RGB", size)  # JPEG decodes at 1/2, 1/4 or 1/8 scale; other formats ignore it
            rgb = convert.image(ImageOps.exif_transpose(im))  # EXIF orientation: upright
        except Image.DecompressionBombError as e:
            raise VideoError(f"The image '{self.path.name}' is too large to open safely.") from e
        except Exception as e:  # noqa: BLE001 - PIL raises many kinds
            raise unreadable(self.path) from e
        self.decoded += 1
        wanted = list(ordinals)
        return FrameBatch(np.repeat(rgb[None], len(wanted), axis=0), (0.0,) * len(wanted), (0,) * len(wanted))

    def _pass(self, got: FrameBuffer | None, convert: Convert | None, wanted: set | None) -> None:
        """One pass over the frames: learns every start time, and converts the wanted ones into `got`."""
        starts, t = [], 0.0
        try:
            for i, frame in enumerate(ImageSequence.Iterator(self.im)):
                self.deadline.check()
                starts.append(t)
                t += (frame.info.get("duration") or _ZERO_MS_AS) / 1000.0
                if self.max_duration is not None and t > self.max_duration:
                    check_duration(t, self.max_duration)
                if wanted is not None and i in wanted:
                    got.put(i, convert.image(frame), starts[i], i)
                    self.decoded += 1
        except VideoError:
            raise
        except Exception as e:  # noqa: BLE001 - PIL raises many kinds
            raise unreadable(self.path) from e
        self._starts, self._total = starts, t

    def close(self) -> None:
        self.im.close()
