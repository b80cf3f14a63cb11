"""Which frames to take, apart from how they are decoded: each sampler asks a `VideoDecoder` for the
frames its rule names and returns their `FrameBatch`.

- `segment_centred(decoder, num_frames)`: PLLaVA's official rule (the model's input).
- `every_seconds(decoder, seconds)`: one frame every S seconds (the frame on screen at 0, S, 2S, ...).
- `keyframes_only(decoder)`: the frames the encoder stored whole, found by the decoder; the cheapest
  way through a long video (only those frames are decoded).

Each takes an optional time range (start_s, end_s) and rules over the frames inside it. The rules are
pure functions of frame counts and times (`sample_indices`, `every_seconds_indices`), testable without
a file. No sampler knows about codecs, containers or pixels.
"""

from __future__ import annotations

import bisect

from ..errors import VideoError
from .batch import FrameBatch
from ..settings import NUM_FRAMES, check_time_range
from .checks import check_seconds
from .decoder import VideoDecoder


def sample_indices(n_total: int, num_frames: int) -> list[int]:
    """PLLaVA's segment-centred rule; repeats frames when n_total < num_frames (as the official code)."""
    seg = (n_total - 1) / num_frames
    # Python's round() is banker's rounding, the same as the official np.round
    return [int(seg / 2) + int(round(seg * k)) for k in range(num_frames)]


def every_seconds_indices(times, seconds: float, first: int = 0, last: int | None = None) -> list[int]:
    """Ordinals of the frames on screen at times[first], +S, +2S, ... up to times[last] (`times`: every
    frame's time, sorted); a frame is listed once even when S is shorter than it stays on screen."""
    last = len(times) - 1 if last is None else last
    out, t = [], times[first]
    while t <= times[last] + 1e-9:
        k = bisect.bisect_right(times, t + 1e-6, first, last + 1) - 1
        if not out or k != out[-1]:
            out.append(k)
        t += seconds
    return out


def segment_centred(decoder: VideoDecoder, num_frames: int, start_s: float | None = None,
                    end_s: float | None = None) -> FrameBatch:
    """`num_frames` frames by PLLaVA's rule over the frames in the range; a still image gives its one frame."""
    num_frames = NUM_FRAMES.check(num_frames, error=VideoError)
    start_s, end_s = check_time_range(start_s, end_s, error=VideoError)
    span = decoder.ordinals_between(start_s, end_s)
    if decoder.is_still:
        return decoder.get_frames_at([0])
    return decoder.get_frames_at([span.start + i for i in sample_indices(len(span), num_frames)])


def every_seconds(decoder: VideoDecoder, seconds: float, start_s: float | None = None,
                  end_s: float | None = None) -> FrameBatch:
    """One frame every `seconds`, starting with the range's first frame."""
    if check_seconds("seconds", seconds) is None:
        raise VideoError("seconds must be a number of seconds > 0, got None.")
    start_s, end_s = check_time_range(start_s, end_s, error=VideoError)
    span = decoder.ordinals_between(start_s, end_s)
    return decoder.get_frames_at(every_seconds_indices(decoder.frame_times(), seconds, span.start, span.stop - 1))


def keyframes_only(decoder: VideoDecoder, start_s: float | None = None, end_s: float | None = None) -> FrameBatch:
    """Every keyframe in the range (only those are decoded); a still gives its one frame."""
    start_s, end_s = check_time_range(start_s, end_s, error=VideoError)
    return decoder.get_keyframes(start_s, end_s)
