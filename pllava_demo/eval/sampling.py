"""Which frames the official evaluation reads (tasks/eval/eval_utils.py `EvalDataset.get_index` and the
readers around it), as pure arithmetic on frame counts.

- A bound (start, end) in seconds becomes ordinals at the clip's frame rate: `round(start * fps)` (never
  before the first ordinal) to `round(end * fps)` (never past the last); without a bound the whole clip.
- Segment k of N is taken at `int(first + seg/2 + round(seg*k))`, `seg = (last - first) / N`; Python's
  round is banker's rounding, as numpy's.
- Videos use their own average frame rate, first ordinal 0, last n-1. GIFs are read at a fixed 25 fps,
  first 0, last n-1; frame folders (00001.jpg, ...) at a fixed 3 fps, first ordinal 1, last n.
- A GIF keeps each picked frame once, in order; when that leaves fewer than N frames (a short GIF),
  the whole list is repeated and cut to N (not each frame doubled in place).

Knows numbers only: no files, decoders or tensors.
"""

from __future__ import annotations

from typing import Literal

DataType = Literal["video", "gif", "frame"]
FIXED_FPS = {"gif": 25.0, "frame": 3.0}


def official_range(n_total: int, fps: float, bound: tuple[float, float] | None = None,
                   data_type: DataType = "video") -> tuple[int, int]:
    """(first, last) ordinal the segments are laid over (frame folders count from 1)."""
    first_idx = 1 if data_type == "frame" else 0
    max_frame = n_total if data_type == "frame" else n_total - 1
    fps = FIXED_FPS.get(data_type, fps)
    start, end = bound if bound is not None else (-100000, 100000)
    return max(first_idx, round(start * fps)), min(round(end * fps), max_frame)


def official_indices(num_frames: int, n_total: int, fps: float, bound: tuple[float, float] | None = None,
                     data_type: DataType = "video") -> list[int]:
    """The N ordinals get_index picks."""
    start_idx, end_idx = official_range(n_total, fps, bound, data_type)
    seg = float(end_idx - start_idx) / num_frames
    return [int(start_idx + seg / 2 + round(seg * k)) for k in range(num_frames)]


def gif_order(indices: list[int], num_frames: int) -> list[int]:
    """The ordinals read_gif returns, in order: each picked frame once, repeated as a whole if short."""
    unique = sorted(set(indices))
    if len(unique) >= num_frames:
        return unique[:num_frames]
    times = num_frames // len(unique) + 1
    return (unique * times)[:num_frames]
