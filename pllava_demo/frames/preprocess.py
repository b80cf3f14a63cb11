"""PLLaVA's frame preprocessing, in its two official steps (PLLAVA.md section 3).

1. `official_resize`: PllavaProcessor's per-video resize of a full-size RGB frame (a PIL image) with
   PIL bicubic on uint8: the long side capped at 640, the short side following the aspect ratio and
   floored at 336, then the official slice of the long side to `int(new_short * rate)`, rate being
   long/short as a float (one pixel shorter than the resize for some sizes, e.g. 51x21). The video reader calls it on each frame right after
   decoding, so a video is never held at full size.
2. `clip_preprocess`: uint8 frames (T, H, W, 3) -> normalised float32 tensor (T, 3, S, S).

Step 2 matches transformers' CLIPImageProcessor (its PIL backend, the one used without torchvision)
step for step: resize the shortest edge to `size` with PIL bicubic (long side
`int(size * long / short)`), centre-crop with offsets `(new - size) // 2`, scale by 1/255,
normalise with the CLIP mean/std. It knows nothing about video files (no av) or the model;
the engine casts the result to the model's dtype and device.

One deliberate deviation, in both steps: when the rule would make an enormous intermediate image
(an aspect ratio over 4:1, such as 4000x16 -> 84000x336), the source is first cut to the central
part of its long side that maps to 4 x 336 output pixels (the final crop sees the middle 336), so
memory stays bounded. Pixels in the final crop can then differ from transformers' by sub-pixel resampling
phase; the crop shows the same region.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MAX_LONG_FACTOR = 4  # intermediate long side is capped at MAX_LONG_FACTOR * size
PLLAVA_LONG_SIDE = 640  # PllavaProcessor: min(640, longest side); processor_config's 762 is never used


@dataclass(frozen=True)
class PixelSpec:
    """The CLIP input a checkpoint expects, from its preprocessor_config.json: crop size and the
    normalisation constants (CLIP's own when the file is absent)."""

    size: int = 336
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    def resize(self, im: Image.Image) -> Image.Image:
        """The official per-frame resize (step 1), for read_video(resize=...)."""
        return official_resize(im, self.size)

    def normalise(self, frames: np.ndarray) -> torch.Tensor:
        """(T, H, W, 3) uint8 -> (T, 3, size, size) float32 (step 2)."""
        return clip_preprocess(frames, self.size, self.mean, self.std)


CLIP_PIXELS = PixelSpec()


def official_size(width: int, height: int, size: int = 336) -> tuple[int, int, int]:
    """PllavaProcessor's step for one video of (width, height) frames: (resize_w, resize_h, keep), where
    keep is how much of the long side its slice keeps (the slice starts at 0 whenever keep differs)."""
    short, long = min(width, height), max(width, height)
    rate = long / short  # the official long/short ratio, in this float form (keep depends on it)
    cap = min(PLLAVA_LONG_SIDE, long)
    new_short = max(min(short, int(cap / rate)), size)
    new_long = int(new_short * long / short)  # transformers' get_resize_output_image_size
    keep = min(new_long, int(new_short * rate))
    return (new_short, new_long, keep) if width <= height else (new_long, new_short, keep)


def official_resize(im: Image.Image, size: int = 336) -> Image.Image:
    """Step 1 on one full-size RGB frame: PIL bicubic to official_size, then the official long-side slice."""
    width, height = im.size
    new_w, new_h, keep = official_size(width, height, size)
    portrait = new_h > new_w
    new_long = new_h if portrait else new_w
    cap = MAX_LONG_FACTOR * size
    if keep > cap:  # extreme aspect ratio: only the central part can reach the final crop (see above)
        src_long = height if portrait else width
        span = min(src_long, int(np.ceil(src_long * cap / new_long)))
        a = (src_long - span) // 2
        im = im.crop((0, a, width, a + span) if portrait else (a, 0, a + span, height))
        return im.resize((new_w, cap) if portrait else (cap, new_h), resample=Image.BICUBIC)
    out = im.resize((new_w, new_h), resample=Image.BICUBIC)
    if keep < new_long:
        a = (new_long - keep) // 2 // 2  # the official slice start: half of half the overhead
        out = out.crop((0, a, new_w, a + keep) if portrait else (a, 0, a + keep, new_h))
    return out


def resize_output_size(height: int, width: int, size: int) -> tuple[int, int]:
    """transformers' get_resize_output_image_size(size=size, default_to_square=False): (new_h, new_w)."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    return (new_long, new_short) if width <= height else (new_short, new_long)


def _resize_crop(frame: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8: shortest edge to size (bicubic), centre crop."""
    height, width = frame.shape[:2]
    new_h, new_w = resize_output_size(height, width, size)
    cap = MAX_LONG_FACTOR * size
    if max(new_h, new_w) > cap:
        # keep only the central source span that maps to `cap` output pixels (margin included)
        if new_w > new_h:
            keep = min(width, int(np.ceil(width * cap / new_w)))
            x0 = (width - keep) // 2
            frame, new_w = frame[:, x0 : x0 + keep], cap
        else:
            keep = min(height, int(np.ceil(height * cap / new_h)))
            y0 = (height - keep) // 2
            frame, new_h = frame[y0 : y0 + keep], cap
    img = Image.fromarray(np.ascontiguousarray(frame)).resize((new_w, new_h), resample=Image.BICUBIC)
    arr = np.asarray(img)  # (new_h, new_w, 3)
    top, left = (new_h - size) // 2, (new_w - size) // 2  # same offsets as transformers' center_crop
    return arr[top : top + size, left : left + size]


def clip_preprocess(frames: np.ndarray, size: int = 336, mean=CLIP_MEAN, std=CLIP_STD) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, size, size) float32, CLIP-normalised."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]  # a single (H, W, 3) image
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be an int >= 1, got {size!r}")
    crops = np.stack([_resize_crop(f, size) for f in frames])  # (T, S, S, 3) uint8
    lut = _lookup_table(tuple(mean), tuple(std))  # (3, 256)
    out = np.empty((crops.shape[0], 3, size, size), dtype=np.float32)  # (T, 3, S, S)
    for c in range(3):
        out[:, c] = lut[c][crops[..., c]]
    return torch.from_numpy(out)


@functools.lru_cache(maxsize=8)
def _lookup_table(mean: tuple, std: tuple) -> np.ndarray:
    """(3, 256) float32: every uint8 value rescaled and normalised with transformers' exact arithmetic
    (rescale in float64, then float32; normalise in float32), so a table lookup gives the same bits
    as computing it per pixel, at a fraction of the cost."""
    v = (np.arange(256, dtype=np.float64) * (1 / 255)).astype(np.float32)  # (256,)
    m, s = np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)
    return ((v[None, :] - m[:, None]) / s[:, None]).astype(np.float32)  # (3, 256)
