"""`read_video(path, n)`: the one-line convenience the engine and the captioner use. It opens a
`VideoDecoder`, samples by PLLaVA's rule and returns a `Clip` (the frames with what the engine keys
its caches by). A file's metadata without frames is `VideoDecoder(path).metadata`. Knows nothing about
decoding or the rule's arithmetic (decoder.py, samplers.py).
"""

from __future__ import annotations

from .batch import Clip
from ..errors import VideoError
from ..settings import NUM_FRAMES, check_time_range
from .content_key import content_key
from .convert import Resize
from .decoder import VideoDecoder
from .samplers import segment_centred


def read_video(path, num_frames: int = 16, *, max_duration: float | None = None, time_budget: float | None = None,
               max_short_side: int | None = None, resize: Resize | None = None, start_s: float | None = None,
               end_s: float | None = None, key: str | None = None) -> Clip:
    """Read `num_frames` frames of a video (or one of a still image) sampled by PLLaVA's rule.
    resize: applied to every upright RGB frame (a PIL image) right after decoding; the clip keeps what it
    returns (the engine passes preprocess.official_resize). max_short_side: instead, shrink frames whose
    short side is longer inside swscale (fast, not the official pixels). Clip.width/height stay the file's
    displayed size. start_s / end_s: sample only the frames whose timestamps lie in [start_s, end_s]
    (seconds from the start; either may be None); the range must lie inside the video.
    key: the file's content_key when the caller already computed it (saves hashing the file again)."""
    num_frames = NUM_FRAMES.check(num_frames, error=VideoError)
    time_range = check_time_range(start_s, end_s, error=VideoError)
    with VideoDecoder(path, resize=resize, max_short_side=max_short_side, time_budget=time_budget,
                      max_duration=max_duration) as decoder:
        batch = segment_centred(decoder, num_frames, *time_range)
        m = decoder.metadata  # nothing left to decode: the batch made the size and the times known
        return Clip(batch.data, batch.pts_seconds, batch.indices, m.duration_seconds, m.average_fps, m.width,
                    m.height, m.n_frames, str(decoder.path), key or content_key(decoder.path),
                    decoder.decoded_frames, None if time_range == (None, None) else time_range)
