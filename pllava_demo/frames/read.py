"""`read_video(path, n)`: the one-line convenience the engine and the captioner use. It opens a
`VideoDecoder`, samples by PLLaVA's rule and returns a `Clip` (the frames with what the engine keys
its caches by). `probe(path)`: cheap metadata for the UI. Knows nothing about decoding or the rule's
arithmetic (decoder.py, samplers.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checks import check_count, check_path, check_range
from .content_key import content_key
from .convert import Resize
from .decoder import VideoDecoder
from .samplers import segment_centred


@dataclass(frozen=True, repr=False)
class Clip:
    """Sampled frames of one file. A still image is a one-frame clip with fps 0.0 and duration 0.0
    (it has no frame rate). `indices` are the ordinals (0-based, presentation order) of the frames
    actually returned; `timestamps` their presentation times in seconds from the stream's start.
    `width` / `height` are the file's displayed (upright) size, which `frames` need not have (a
    resize). `time_range` is the (start_s, end_s) the caller restricted sampling to, or None."""

    frames: np.ndarray  # (T, H, W, 3) uint8, upright
    timestamps: tuple[float, ...]
    indices: tuple[int, ...]
    duration: float
    fps: float
    width: int
    height: int
    n_total: int
    source: str
    content_key: str  # identifies the file's bytes; the engine caches features by (content_key, T)
    decoded_frames: int = 0  # frames the decoder produced to make this clip (cost, for tests/bench)
    time_range: tuple[float, float] | None = None

    def __repr__(self) -> str:
        return (
            f"Clip(frames={tuple(self.frames.shape)} {self.frames.dtype}, T={len(self.indices)}, "
            f"indices={list(self.indices)}, duration={self.duration:.2f}s, fps={self.fps:.3f}, "
            f"size={self.width}x{self.height}, n_total={self.n_total}, decoded_frames={self.decoded_frames}, "
            f"{'' if self.time_range is None else f'time_range={self.time_range}, '}"
            f"source={Path(self.source).name!r}, content_key={self.content_key!r})"
        )


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
    check_count("num_frames", num_frames)
    time_range = check_range(start_s, end_s)
    with VideoDecoder(path, resize=resize, max_short_side=max_short_side, time_budget=time_budget,
                      max_duration=max_duration) as decoder:
        batch = segment_centred(decoder, num_frames, *time_range)
        m = decoder.metadata  # nothing left to decode: the batch made the size and the times known
        return Clip(batch.data, batch.pts_seconds, batch.indices, m.duration_seconds, m.average_fps, m.width,
                    m.height, m.n_frames, str(decoder.path), key or content_key(decoder.path),
                    decoder.decoded_frames, None if time_range == (None, None) else time_range)


def probe(path) -> dict:
    """Cheap metadata for the UI (reject too-long files before decoding): duration, fps, width, height
    (displayed, i.e. after rotation), codec, n_frames. Decodes at most one frame (for the rotation), and
    never scans the file (header counts)."""
    check_path(path)
    with VideoDecoder(path, seek_mode="approximate") as decoder:
        m = decoder.metadata
        return {"duration": m.duration_seconds, "fps": m.average_fps, "width": m.width, "height": m.height,
                "codec": m.codec, "n_frames": m.n_frames}
