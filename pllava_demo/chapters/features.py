"""CLIP features of a video scanned one frame every few seconds (keyframes only where possible), for
scene boundaries. Memory stays flat: frames are encoded in small batches and only one (C,) vector per
frame is kept. Knows the model's vision tower and the scan; not boundaries, captions or files' text.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

import numpy as np
import torch

from ..frames.keyframes import ScanStats, sample_every
from .settings import ChapterSettings

ENCODE_BATCH = 16  # frames through CLIP at once while scanning


@torch.inference_mode()
def frame_embeddings(model, pixels: torch.Tensor) -> torch.Tensor:
    """(T, 3, 336, 336) CLIP-normalised frames -> (T, C) float32 on the CPU: the mean of the feature
    layer's patch tokens (the layer PLLaVA itself reads), one vector per frame."""
    dtype = model.multi_modal_projector.linear_1.weight.dtype
    hidden = model.vision_tower(pixel_values=pixels.to(model.device, dtype)).last_hidden_state  # (T, 1 + P, C)
    return hidden[:, 1:].mean(dim=1).float().cpu()  # (T, C)


def scan(loaded, path, settings: ChapterSettings, *, lock=None, stop: threading.Event | None = None,
         progress: Callable[[float], None] | None = None, duration: float = 0.0,
         stats: ScanStats | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(times (n,), features (n, C)) of the frames sampled every settings.step_s seconds."""
    lock = lock or contextlib.nullcontext()
    times: list[float] = []
    chunks: list[torch.Tensor] = []
    batch: list[np.ndarray] = []

    def flush() -> None:
        if not batch:
            return
        pixels = loaded.pixels.normalise(np.stack(batch))  # (B, 3, 336, 336)
        with lock:
            chunks.append(frame_embeddings(loaded.model, pixels))  # (B, C)
        batch.clear()
        if progress and duration > 0:
            progress(min(1.0, times[-1] / duration))

    for t, rgb in sample_every(path, settings.step_s, keyframes=settings.keyframes, stats=stats, stop=stop):
        if batch and rgb.shape != batch[0].shape:  # a mid-stream size change: encode what came before
            flush()
        times.append(t)
        batch.append(rgb)
        if len(batch) == ENCODE_BATCH:
            flush()
    flush()
    feats = torch.cat(chunks).numpy() if chunks else np.zeros((0, 1), np.float32)  # (n, C)
    return np.asarray(times, dtype=np.float64), feats
