"""Where PLLaVA's one idea lives: parameter-free adaptive average pooling of per-frame features.

Knows shapes only: no CLIP, no LLM, no tokens. Input is the projected, un-pooled grid of a clip;
output is the flat sequence of visual tokens that replaces the prompt's single <image> token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import PoolingShape, check_pooling_shape


def repeat_frames(features: torch.Tensor, target: int) -> torch.Tensor:
    """Repeat frames of a clip shorter than the pooled length, in order, the way the official
    projector does (each frame int(target/T)+1 times, cut to target), so short clips and still
    images get the official numbers. features: (T, ...) -> (target, ...)."""
    t = features.shape[0]
    if t >= target:
        return features
    return features.repeat_interleave(target // t + 1, dim=0)[:target]


def frames_seen(num_frames: int, pooled_frames: int) -> list[int]:
    """Which input frame feeds each position after repeat_frames (for the UI's 'what the model sees')."""
    idx = torch.arange(num_frames)
    return repeat_frames(idx, pooled_frames).tolist()


def pool_video(features: torch.Tensor, grid: tuple[int, int], shape: PoolingShape) -> torch.Tensor:
    """features: (T, H*W, D) projected per-frame patches -> (T'*h'*w', D) tokens in (t, h, w) order."""
    tp, hp, wp = check_pooling_shape(shape, grid)
    feats = repeat_frames(features, tp)
    t, hw, d = feats.shape
    h, w = grid
    if hw != h * w:
        raise ValueError(f"expected {h}x{w}={h * w} patches per frame, got {hw}")
    x = feats.reshape(t, h, w, d).permute(3, 0, 1, 2).unsqueeze(0)  # (1, D, T, H, W)
    # Pool in float32: averaging many bf16 values in bf16 loses the low bits the official fp32-accumulating kernel keeps.
    x = F.adaptive_avg_pool3d(x.float(), (tp, hp, wp)).to(feats.dtype)  # (1, D, T', h', w')
    return x.squeeze(0).permute(1, 2, 3, 0).reshape(tp * hp * wp, d)  # (T'*h'*w', D)
