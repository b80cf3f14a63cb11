"""The frames of one evaluation clip, picked by the official rule (sampling.py) and resized as the
official processor does (the checkpoint's PixelSpec), as (T, H, W, 3) uint8.

Videos and GIFs are opened with the frames room's `VideoDecoder` and read by ordinal
(`get_frames_at`): the official ordinals from the file's frame count and average rate (decord's
`len(vr)` and `get_avg_fps()`; GIFs at a fixed 25 fps), so a bound lands on exactly the frames the
official reader takes. Frame folders (00001.jpg, ...) are read picture by picture at 3 fps.

Knows paths and the decoder; no model, prompt or tensor beyond the uint8 frames.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import VideoError
from .sampling import DataType, gif_order, official_indices


@dataclass(frozen=True, repr=False)
class EvalClip:
    frames: np.ndarray  # (T, H, W, 3) uint8, resized as the official processor does
    indices: tuple[int, ...]  # the ordinals read
    official: tuple[int, ...]  # the ordinals the official reader reads
    key: str  # identifies (file, ordinals): the feature cache's key

    @property
    def exact(self) -> bool:
        return self.indices == self.official

    def __repr__(self) -> str:
        return f"EvalClip(frames={tuple(self.frames.shape)}, indices={list(self.indices)}, exact={self.exact})"


def _key(path: Path, data_type: str, indices) -> str:
    st = os.stat(path)
    text = f"{os.path.realpath(path)}|{st.st_size}|{st.st_mtime_ns}|{data_type}|{list(indices)}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_clip(path, num_frames: int, *, data_type: DataType = "video", bound: tuple[float, float] | None = None,
              resize=None) -> EvalClip:
    """resize: a function of a PIL image (PixelSpec.resize), applied to every frame read."""
    from ..frames.video import VideoDecoder

    p = Path(path)
    if not p.exists():
        raise VideoError(f"'{p}' does not exist.")
    if data_type == "frame":
        return _read_folder(p, num_frames, bound, resize)
    with VideoDecoder(p, resize=resize) as decoder:
        m = decoder.metadata
        if data_type == "gif":
            official = gif_order(official_indices(num_frames, m.n_frames, 0.0, bound, "gif"), num_frames)
        else:
            official = official_indices(num_frames, m.n_frames, m.average_fps, bound)
        if any(not 0 <= i < m.n_frames for i in official):
            where = f"{bound[0]:g}-{bound[1]:g} s" if bound else "the whole clip"
            raise VideoError(f"The bound {where} lies outside '{p.name}' ({m.duration_seconds:.2f} s).")
        batch = decoder.get_frames_at(official)
    return EvalClip(batch.data, tuple(batch.indices), tuple(official), _key(p, data_type, batch.indices))


def _read_folder(p: Path, num_frames: int, bound, resize) -> EvalClip:
    from ..frames.video import VideoDecoder

    if not p.is_dir():
        raise VideoError(f"'{p}' is not a folder of frames (00001.jpg, ...).")
    indices = official_indices(num_frames, len(os.listdir(p)), 0.0, bound, "frame")
    frames = []
    for i in indices:
        f = p / f"{i:05d}.jpg"
        if not f.exists():
            raise VideoError(f"The frame folder '{p.name}' has no {f.name}.")
        with VideoDecoder(f, resize=resize) as picture:
            frames.append(picture.get_frames_at([0]).data[0])  # (H, W, 3)
    return EvalClip(np.stack(frames), tuple(indices), tuple(indices), _key(p, "frame", indices))
