"""What the engine's feature cache holds: a decoded clip with its projected, un-pooled CLIP features
(`VideoFeatures`), and the key it is cached by (`feature_key`: file content, frame count, time range).

It knows tensors and the frames room's Clip; it does not know the model that made the features, the
cache's budget (caches.ByteLRU, sized by the engine) nor sessions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch


def tensor_nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def feature_key(content_key: str, num_frames: int, time_range: tuple | None = None) -> tuple:
    """What encoded features are cached by: the file's content, the frame count and the time range."""
    start_s, end_s = time_range or (None, None)
    return (content_key, num_frames, start_s, end_s)


@dataclass(frozen=True)
class VideoFeatures:
    """A clip and its projected, un-pooled features (T, H*W, D) on the model's device."""

    clip: object  # frames.Clip (frames kept for the UI's gallery)
    features: torch.Tensor
    num_frames: int

    @property
    def nbytes(self) -> int:
        return tensor_nbytes(self.features) + int(getattr(self.clip.frames, "nbytes", 0))

    @property
    def key(self) -> tuple:
        """Its key in the engine's feature cache (see `feature_key`)."""
        return feature_key(self.clip.content_key, self.num_frames, self.clip.time_range)

    def shared_as(self, path) -> "VideoFeatures":
        """These features under another caller's own file name (the frames and tensors are not copied), so
        nothing about the first uploader's file reaches anyone else."""
        return dataclasses.replace(self, clip=dataclasses.replace(self.clip, source=str(path)))

    def __repr__(self) -> str:
        return f"VideoFeatures(features={tuple(self.features.shape)}, clip={self.clip!r})"
