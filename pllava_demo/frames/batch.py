"""Decoded frames with their times: the `FrameBatch` every decoder call returns, the buffer it is
written into while decoding, and the `Clip` read_video returns (sampled frames of one file). Knows
nothing about codecs, and imports no PyAV (a GPU benchmark builds a Clip of synthetic frames)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True, repr=False)
class FrameBatch:
    """T frames in the order they were asked for (a frame asked for twice appears twice).
    `indices` are their ordinals (0-based, presentation order: decord's `vr[i]`), `pts_seconds` their
    presentation times from the stream's start."""

    data: np.ndarray  # (T, H, W, 3) uint8, upright
    pts_seconds: tuple[float, ...]
    indices: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        times = ", ".join(f"{t:.3f}" for t in self.pts_seconds[:8]) + (", ..." if len(self) > 8 else "")
        return (f"FrameBatch(data={tuple(self.data.shape)} {self.data.dtype}, indices={list(self.indices[:8])}"
                f"{'...' if len(self) > 8 else ''}, pts_seconds=[{times}])")


class FrameBuffer:
    """The wanted frames, written into one array as they are decoded. Holding them apart and stacking
    at the end would allocate and page-fault a second full-size copy: a third of the time of a
    seek-based read of a 720p video."""

    def __init__(self, targets: list[int]):
        self.slot = {t: k for k, t in enumerate(targets)}  # distinct ordinals, increasing
        self.buf: np.ndarray | None = None  # (len(targets), H, W, 3)
        self.times: dict[int, float] = {}
        self.ordinals: dict[int, int] = {}  # target -> ordinal of the frame actually stored for it

    def put(self, target: int, rgb: np.ndarray, seconds: float, ordinal: int) -> None:
        if self.buf is None:
            self.buf = np.empty((len(self.slot), *rgb.shape), dtype=np.uint8)
        elif rgb.shape != self.buf.shape[1:]:  # resolution changed mid-stream: one size per batch
            rgb = np.asarray(Image.fromarray(rgb).resize((self.buf.shape[2], self.buf.shape[1]), Image.BICUBIC))
        self.buf[self.slot[target]] = rgb
        self.times[target] = float(seconds)
        self.ordinals[target] = int(ordinal)

    def __bool__(self) -> bool:
        return bool(self.times)

    def missing(self) -> list[int]:
        return [t for t in self.slot if t not in self.times]

    def batch(self, wanted) -> FrameBatch:
        """The frames for `wanted` (ordinals, any order, repeats allowed). A target the stream never
        reached (a damaged tail) gets the nearest decoded frame."""
        done = sorted(self.times)
        for t in self.missing():
            near = min(done, key=lambda d: abs(d - t))
            self.put(t, self.buf[self.slot[near]], self.times[near], self.ordinals[near])
        wanted = list(wanted)
        # the buffer itself when no frame repeats and the order is the buffer's (the usual case)
        data = self.buf if wanted == list(self.slot) else self.buf[[self.slot[t] for t in wanted]]  # (T, H, W, 3)
        return FrameBatch(data, tuple(self.times[t] for t in wanted), tuple(self.ordinals[t] for t in wanted))


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
