"""The frames of one evaluation clip, picked by the official rule (sampling.py) and resized as the
official processor does (the checkpoint's PixelSpec), as (T, H, W, 3) uint8.

Videos go through frames.video.read_video (PyAV): a bound becomes a time range half a frame wider than
the official ordinals, so the decoder's own segment rule lands on exactly those ordinals; the ordinals it
returns are compared with the official ones and the row says whether they agree (they do on every
constant-rate file; a variable-rate file may differ by a frame). GIFs and frame folders are read with PIL
at their fixed official rates.

Knows files and PIL; no model, prompt or tensor beyond the uint8 frames.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

from ..errors import VideoError
from .sampling import DataType, gif_order, official_indices, official_range


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
    p = Path(path)
    if not p.exists():
        raise VideoError(f"'{p}' does not exist.")
    resize = resize or (lambda im: im)
    if data_type == "frame":
        return _read_folder(p, num_frames, bound, resize)
    if data_type == "gif":
        return _read_gif(p, num_frames, bound, resize)
    return _read_file(p, num_frames, bound, resize)


def _read_file(p: Path, num_frames: int, bound, resize) -> EvalClip:
    from ..frames.video import probe, read_video

    if bound is None:  # the decoder's own rule over the whole clip is the official one
        clip = read_video(p, num_frames, resize=resize)
        official = official_indices(num_frames, clip.n_total, clip.fps)
        return EvalClip(clip.frames, tuple(clip.indices), tuple(official), _key(p, "video", clip.indices))
    meta = probe(p)
    n, fps, duration = meta["n_frames"], meta["fps"], meta["duration"]
    if not n or not fps or not duration:
        raise VideoError(f"'{p.name}' does not say its frame count and rate, so a bound cannot be applied.")
    first, last = official_range(n, fps, bound)
    if last < first:
        raise VideoError(f"The bound {bound[0]:g}-{bound[1]:g} s lies outside '{p.name}' ({duration:.2f} s).")
    spf = duration / n  # the decoder places ordinal k at k * spf on a constant-rate file
    start_s, end_s = max(0.0, (first - 0.5) * spf), min(duration, (last + 0.5) * spf)
    clip = read_video(p, num_frames, resize=resize, start_s=start_s, end_s=end_s)
    official = official_indices(num_frames, n, fps, bound)
    return EvalClip(clip.frames, tuple(clip.indices), tuple(official), _key(p, "video", clip.indices))


def _rgb(im: Image.Image, resize) -> np.ndarray:
    return np.asarray(resize(im.convert("RGB")))  # (H, W, 3)


def _read_gif(p: Path, num_frames: int, bound, resize) -> EvalClip:
    try:
        with Image.open(p) as im:
            n = getattr(im, "n_frames", 1)
            order = gif_order(official_indices(num_frames, n, 0.0, bound, "gif"), num_frames)
            wanted = set(order)
            got = {i: _rgb(fr, resize) for i, fr in enumerate(ImageSequence.Iterator(im)) if i in wanted}
    except (OSError, ValueError) as e:
        raise VideoError(f"'{p.name}' could not be read as a GIF ({e}).") from None
    frames = np.stack([got[i] for i in order])  # (T, H, W, 3)
    return EvalClip(frames, tuple(order), tuple(order), _key(p, "gif", order))


def _read_folder(p: Path, num_frames: int, bound, resize) -> EvalClip:
    if not p.is_dir():
        raise VideoError(f"'{p}' is not a folder of frames (00001.jpg, ...).")
    n = len(os.listdir(p))
    indices = official_indices(num_frames, n, 0.0, bound, "frame")
    frames = []
    for i in indices:
        f = p / f"{i:05d}.jpg"
        try:
            with Image.open(f) as im:
                frames.append(_rgb(im, resize))
        except OSError:
            raise VideoError(f"The frame folder '{p.name}' has no readable {f.name}.") from None
    return EvalClip(np.stack(frames), tuple(indices), tuple(indices), _key(p, "frame", indices))
