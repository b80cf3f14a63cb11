"""Scene boundaries from frame features, SceneTilling-style: the cosine similarity of adjacent frames,
a depth score per gap (how far the similarity dips below the peaks on either side), boundaries where
the depth exceeds mean + k * std, then the minimum and maximum chapter lengths and the chapter cap.
Fixed windows when nothing stands out. numpy only: it knows no model, no video and no captions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .settings import ChapterSettings

MIN_DEPTH = 1e-3  # a dip smaller than this is noise even when everything else is flatter still


@dataclass(frozen=True)
class Segments:
    bounds: tuple[tuple[float, float], ...]  # (start, end) seconds, in order, covering [0, duration]
    method: str  # "scenes" or "fixed windows"


def adjacent_similarity(features: np.ndarray) -> np.ndarray:
    """(n, C) -> (n - 1,) cosine similarity of each frame with the next."""
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)  # (n, C)
    return np.sum(unit[:-1] * unit[1:], axis=1)  # (n - 1,)


def depth_scores(sim: np.ndarray) -> np.ndarray:
    """(m,) similarities -> (m,) depth: climb left and right while the similarity rises, and add the
    two heights above this gap (TextTiling's depth score)."""
    m = len(sim)
    left, right = np.empty(m), np.empty(m)
    for i in range(m):
        peak, j = sim[i], i
        while j > 0 and sim[j - 1] >= peak:
            j -= 1
            peak = sim[j]
        left[i] = peak
    for i in range(m - 1, -1, -1):
        peak, j = sim[i], i
        while j < m - 1 and sim[j + 1] >= peak:
            j += 1
            peak = sim[j]
        right[i] = peak
    return (left - sim) + (right - sim)


def fixed_windows(duration: float, window_s: float, max_chapters: int) -> tuple[tuple[float, float], ...]:
    n = max(1, min(max_chapters, math.ceil(duration / window_s - 1e-9)))
    edges = np.linspace(0.0, duration, n + 1)
    return tuple((float(a), float(b)) for a, b in zip(edges[:-1], edges[1:]))


def _split_long(bounds: list[tuple[float, float]], max_s: float) -> list[tuple[float, float]]:
    out = []
    for a, b in bounds:
        parts = max(1, math.ceil((b - a) / max_s - 1e-9))
        edges = np.linspace(a, b, parts + 1)
        out.extend((float(x), float(y)) for x, y in zip(edges[:-1], edges[1:]))
    return out


def find_segments(times: np.ndarray, features: np.ndarray, duration: float, s: ChapterSettings) -> Segments:
    """Chapters of a video of `duration` seconds from features (n, C) of frames at `times` (n,)."""
    duration = float(max(duration, times[-1] if len(times) else 0.0))
    if duration <= 0:
        return Segments(((0.0, 0.0),), "fixed windows")
    cuts: list[float] = []
    if len(times) >= 3:
        depth = depth_scores(adjacent_similarity(features))  # (n - 1,)
        threshold = max(float(depth.mean() + s.depth_std * depth.std()), MIN_DEPTH)
        # deepest first: a shallow boundary too close to a deeper one gives way (minimum chapter length)
        for i in sorted(np.flatnonzero(depth > threshold), key=lambda i: -depth[i]):
            t = float(times[i + 1])  # the first frame after the dip opens the new chapter
            if len(cuts) >= s.max_chapters - 1:
                break
            if min([t, duration - t] + [abs(t - c) for c in cuts]) >= s.min_chapter_s:
                cuts.append(t)
    if not cuts:
        return Segments(fixed_windows(duration, min(s.window_s, s.max_chapter_s), s.max_chapters), "fixed windows")
    edges = [0.0] + sorted(cuts) + [duration]
    bounds = _split_long(list(zip(edges[:-1], edges[1:])), s.max_chapter_s)
    if len(bounds) > s.max_chapters:  # too many long scenes to cut within the cap: even windows instead
        return Segments(fixed_windows(duration, duration / s.max_chapters, s.max_chapters), "fixed windows")
    return Segments(tuple(bounds), "scenes")
