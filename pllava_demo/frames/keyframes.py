"""Frames one every S seconds, for scanning a long video (chapters): keyframes only where the file
has them often enough, every frame decoded otherwise. To be folded into the decoder object (#20,
frames/decoder.py) as a streaming form of its samplers: samplers.every_seconds / keyframes_only
return the whole FrameBatch at once (an hour at one frame per 4 s is ~900 frames, ~0.5 GB at 336 px),
while a chapter scan needs a generator that decodes only the keyframes it keeps and holds none.

Memory stays flat in the video's length: frames are yielded one at a time, shrunk (swscale) to a
short side of `short_side` as they are decoded, and nothing is kept. This module knows PyAV and
numpy; it does not know CLIP, chapters or the official PLLaVA frame rule (video.py has that). It does
not apply a display-rotation flag: the frames feed similarity scores, which do not need them upright.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from ..errors import VideoError

SPARSE_FACTOR = 2.0  # keyframes further apart than this many steps (median) are too sparse: decode every frame


@dataclass
class ScanStats:
    """What a scan cost: frames the decoder produced, frames yielded, and whether it read keyframes only."""

    decoded: int = 0
    kept: int = 0
    keyframes_only: bool = False
    keyframe_times: list[float] = field(default_factory=list)


def _open(path) -> tuple[object, object]:
    p = Path(path)
    try:
        container = av.open(str(p))
    except (av.FFmpegError, OSError, ValueError) as e:
        raise VideoError(f"'{p.name}' could not be opened as a video.") from e
    if not container.streams.video:
        container.close()
        raise VideoError(f"'{p.name}' contains no video track.")
    return container, container.streams.video[0]


def duration_s(path) -> float:
    """The video's duration in seconds (stream, else container), 0.0 when the file does not say."""
    container, stream = _open(path)
    with container:
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return container.duration / av.time_base
    return 0.0


def keyframe_times(path, *, first: int | None = None) -> list[float]:
    """Presentation times of the keyframes, read from packet flags (demuxing only: nothing is decoded);
    `first` stops after that many keyframes (enough to judge how often they come)."""
    container, stream = _open(path)
    times = []
    with container:
        for packet in container.demux(stream):
            if packet.is_keyframe and packet.pts is not None:
                times.append(float(packet.pts * stream.time_base))
                if first is not None and len(times) >= first:
                    break
    return sorted(times)


def _sparse(times: list[float], step_s: float) -> bool:
    if len(times) < 2:
        return True
    gaps = np.diff(times)
    return float(np.median(gaps)) > SPARSE_FACTOR * step_s


JUDGE_KEYFRAMES = 12  # "auto" looks at this many keyframes to choose keyframes-only or every frame


def sample_every(path, step_s: float, *, short_side: int = 336, keyframes: str = "auto",
                 stats: ScanStats | None = None, stop: threading.Event | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (seconds, RGB uint8 (H, W, 3)) for at most one frame per `step_s`: the first frame at or
    after each step's start. keyframes: "yes" reads keyframes only, and decodes only the keyframes it
    keeps (a keyframe decodes on its own); "no" decodes every frame; "auto" reads keyframes only unless
    the first JUDGE_KEYFRAMES are further apart than SPARSE_FACTOR steps. `stop` ends the scan early
    (what was yielded stays yielded)."""
    if not step_s > 0:
        raise VideoError(f"The sampling step must be a positive number of seconds, got {step_s}.")
    if keyframes not in ("auto", "yes", "no"):
        raise VideoError(f"keyframes must be 'auto', 'yes' or 'no', got {keyframes!r}.")
    stats = stats if stats is not None else ScanStats()
    if keyframes == "auto":
        stats.keyframe_times = keyframe_times(path, first=JUDGE_KEYFRAMES)
        only_key = not _sparse(stats.keyframe_times, step_s)
    else:
        only_key = keyframes == "yes"
    stats.keyframes_only = only_key
    container, stream = _open(path)
    with container:
        stream.thread_type = "AUTO"
        frames = _keyframes(container, stream, step_s) if only_key else container.decode(stream)
        last_cell = None
        for frame in frames:
            stats.decoded += 1
            if stop is not None and stop.is_set():
                return
            # frames from codec_context.decode carry no time base of their own: use the stream's
            t = None if frame.pts is None else float(frame.pts * stream.time_base)
            cell = _cell(t, step_s)
            if cell is None or (last_cell is not None and cell <= last_cell):
                continue
            last_cell = cell
            yield t, _shrunk(frame, short_side)
            stats.kept += 1


def _cell(t: float | None, step_s: float) -> int | None:
    """Which step a time falls in (a frame a millisecond early still counts as on time)."""
    return None if t is None else int((t + 1e-3) // step_s)


def _keyframes(container, stream, step_s: float):
    """Decoded keyframes, at most about one per step: a keyframe packet in a step already served is
    never decoded."""
    codec = stream.codec_context
    codec.skip_frame = "NONKEY"
    served = None
    for packet in container.demux(stream):
        if not packet.is_keyframe or packet.pts is None:
            continue
        cell = _cell(float(packet.pts * stream.time_base), step_s)
        if served is not None and cell <= served:
            continue
        served = cell
        yield from codec.decode(packet)
    yield from codec.decode(None)  # frames the decoder still holds (reordering delay)


def _shrunk(frame, short_side: int) -> np.ndarray:
    w, h = frame.width, frame.height
    scale = short_side / min(w, h)
    if scale < 1:
        w, h = max(2, round(w * scale)), max(2, round(h * scale))
    # swscale's area filter: quick, and pixels good enough for similarity scores (captions re-read the
    # chapter's frames with the official resize)
    return frame.to_ndarray(width=w, height=h, format="rgb24", interpolation="AREA")  # (H, W, 3) uint8


def decode_floor(path) -> int:
    """Decode every keyframe and nothing else, converting no pixels: the least a keyframe scan can cost
    (bench/bench_chapters.py compares a chapter scan with it). Returns the number of frames decoded."""
    container, stream = _open(path)
    n = 0
    with container:
        stream.thread_type = "AUTO"
        stream.codec_context.skip_frame = "NONKEY"
        for _ in container.decode(stream):
            n += 1
    return n
