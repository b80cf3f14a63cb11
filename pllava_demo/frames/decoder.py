"""`VideoDecoder`: open a video, a still or an animation once, read its metadata, get frames by ordinal
or by time. The shape of torchcodec's decoder, on PyAV (video streams) and PIL (images).

    with VideoDecoder("clip.mp4") as decoder:
        decoder.metadata                      # VideoMetadata(n_frames=..., duration_seconds=..., ...)
        decoder.get_frames_at([0, 10, 20])    # FrameBatch(data=(3, H, W, 3) uint8, indices, pts_seconds)
        decoder.get_frames_played_at([1.5])   # the frame on screen at 1.5 s

seek_mode "exact" (default) knows every frame's time: a stream that is not known to be constant-rate
is demuxed once, without decoding, on first need. "approximate" trusts the headers (frame i at
i * duration/n), which is faster to open and can be off by frames on a variable-rate file.

Every failure a person can cause is a `VideoError` with a sentence for that person; no av/PIL
exception escapes. It knows nothing about which frames a rule wants (samplers.py), about torch, or
about the model; frames leave as uint8 arrays at the displayed size unless `resize` or
`max_short_side` says otherwise (convert.Convert).
"""

from __future__ import annotations

import bisect
import numbers
from dataclasses import dataclass
from typing import Literal

import av

from ..errors import VideoError
from .batch import FrameBatch
from .checks import Deadline, check_path, check_seconds, check_short_side, range_ordinals, unreadable
from .convert import Convert, Resize
from .images import IMAGE_EXTENSIONS, ImageSource
from .stream import StreamSource

SeekMode = Literal["exact", "approximate"]
SEEK_MODES = ("exact", "approximate")


@dataclass(frozen=True)
class VideoMetadata:
    """What a file is, as shown: `width` x `height` upright (after the display rotation or EXIF
    orientation). A still image has n_frames 1, duration 0 and fps 0 (it has no frame rate)."""

    n_frames: int
    duration_seconds: float
    average_fps: float
    width: int
    height: int
    codec: str  # FFmpeg's decoder name, or "image" for what PIL reads
    kind: Literal["video", "animation", "image"]


class VideoDecoder:
    """One open file. Knobs are keyword-only and checked here, naming the allowed values."""

    def __init__(self, path, *, seek_mode: SeekMode = "exact", resize: Resize | None = None,
                 max_short_side: int | None = None, time_budget: float | None = None,
                 max_duration: float | None = None):
        if seek_mode not in SEEK_MODES:
            raise VideoError(f"seek_mode must be one of {', '.join(SEEK_MODES)}; got {seek_mode!r}.")
        max_short_side = check_short_side(max_short_side)
        if resize is not None and (max_short_side is not None or not callable(resize)):
            raise VideoError("resize must be a function of a PIL image, and cannot be combined with max_short_side.")
        self.max_duration = check_seconds("max_duration", max_duration)
        self.time_budget = check_seconds("time_budget", time_budget)
        self.path = check_path(path)
        self.seek_mode = seek_mode
        self.convert = Convert(max_short_side, resize)
        self.deadline = Deadline(self.time_budget)  # the budget covers opening, scanning and decoding
        self._source = self._open()

    def _open(self) -> StreamSource | ImageSource:
        p, limits = self.path, {"deadline": self.deadline, "max_duration": self.max_duration}
        if p.suffix.lower() in IMAGE_EXTENSIONS:
            image = ImageSource.open(p, **limits)
            if image is not None:
                return image
        try:
            container = av.open(str(p))
        except (av.FFmpegError, OSError, ValueError) as e:
            image = ImageSource.open(p, **limits)
            if image is None:
                raise unreadable(p) from e
            return image
        if not container.streams.video:
            has_audio = bool(container.streams.audio)
            container.close()
            image = ImageSource.open(p, **limits)
            if image is not None:
                return image
            if has_audio:
                raise VideoError(f"'{p.name}' has no video track; it contains only audio.")
            raise VideoError(f"'{p.name}' contains no video track.")
        try:
            return StreamSource(p, container, exact=self.seek_mode == "exact", **limits)
        except BaseException:
            container.close()
            raise

    # ------------------------------------------------------------------------------------ metadata

    @property
    def metadata(self) -> VideoMetadata:
        """Costs at most one decoded frame (a video's display rotation) beyond the headers, and, in
        exact mode on a stream not known to be constant-rate, one demux pass."""
        src = self._source
        kind = "video" if isinstance(src, StreamSource) else ("image" if src.still else "animation")
        width, height = self._guarded(src.size)
        return VideoMetadata(self._guarded(lambda: src.n_frames), self._guarded(lambda: src.duration),
                             self._guarded(lambda: src.fps), width, height, src.codec, kind)

    def __len__(self) -> int:
        return self._guarded(lambda: self._source.n_frames)

    @property
    def is_still(self) -> bool:
        return isinstance(self._source, ImageSource) and self._source.still

    @property
    def decoded_frames(self) -> int:
        """Frames the decoder has produced so far (cost, for tests and benchmarks)."""
        return self._source.decoded

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) upright, of the frames decoded last (cheaper than metadata after a decode)."""
        return self._guarded(self._source.size)

    def frame_times(self):
        """Every frame's presentation time in seconds from the start, sorted (index = ordinal)."""
        return self._guarded(self._source.frame_times)

    def ordinals_between(self, start_s: float | None, end_s: float | None) -> range:
        """The ordinals of the frames whose times lie in [start_s, end_s] (None: the video's own start or
        end); a VideoError when the range is not inside the video or holds no frame."""
        if start_s is None and end_s is None:
            return range(len(self))
        if self.is_still:
            raise VideoError(f"'{self.path.name}' is a still image; a time range applies only to videos.")
        first, last = range_ordinals(self.frame_times(), start_s, end_s, self._source.duration, self.path.name)
        return range(first, last + 1)

    # -------------------------------------------------------------------------------------- frames

    def get_frames_at(self, indices) -> FrameBatch:
        """The frames at these ordinals (0-based, presentation order), in the order given."""
        indices = [self._check_index(i) for i in indices]
        if not indices:
            raise VideoError("Ask for at least one frame.")
        return self._guarded(lambda: self._source.decode(indices, self.convert))

    def get_frame_at(self, index: int) -> FrameBatch:
        return self.get_frames_at([index])

    def get_frames_played_at(self, seconds) -> FrameBatch:
        """The frames on screen at these times (seconds from the start): each is the last frame that
        starts at or before its time."""
        times, duration = self.frame_times(), self._source.duration
        ordinals = []
        for t in seconds:
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= max(duration, 0.0):
                raise VideoError(f"A time must be a number of seconds from 0 to {duration:.3f}; got {t!r}.")
            ordinals.append(max(0, _last_at_or_before(times, t)))
        return self.get_frames_at(ordinals)

    def get_keyframes(self, start_s: float | None = None, end_s: float | None = None) -> FrameBatch:
        """Every keyframe whose time lies in the range, as the decoder finds them (container keyframe
        flags are not trusted); every frame of an animation or a still."""
        span = self.ordinals_between(start_s, end_s)
        return self._guarded(lambda: self._source.keyframes(span.start, span.stop - 1, self.convert))

    def _check_index(self, i) -> int:
        n = len(self)
        if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not -n <= i < n:
            raise VideoError(f"A frame index must be a whole number from 0 to {n - 1}; got {i!r}.")
        return int(i) % n

    def _guarded(self, read):
        """Run a read of the source, turning a decoder failure into the person's sentence."""
        try:
            return read()
        except av.FFmpegError as e:
            raise VideoError(f"'{self.path.name}' could not be decoded (it may be corrupt or truncated).") from e

    # ------------------------------------------------------------------------------------ lifetime

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> VideoDecoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _last_at_or_before(times, t: float) -> int:
    return bisect.bisect_right(times, t + 1e-6) - 1
