"""A short caption per chapter with PLLaVA: the chapter's own frames (the official sampling rule
inside the chapter's time range), a short recaption-style prompt, and several chapters at a time
through the captioner's batch (caption/captioner.py: one CLIP pass, then the scheduler's one decode
loop). Knows the captioner and the reader; not boundaries, caches or the page.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from ..caption.captioner import CaptionOptions, Captioner, Prepared
from ..caption.records import CaptionJob
from ..chat.prompt import RECAPTION_SYSTEM
from ..config import GenerationSettings
from .settings import ChapterSettings

# The official recaption task line, asked for a short answer (a chapter title is read at a glance).
CHAPTER_PROMPT = ("Describe the background, characters and the actions in the provided video in one short "
                  "sentence, then add one more sentence of detail.")


def chapter_captioner(loaded, settings: ChapterSettings) -> Captioner:
    gen = GenerationSettings(max_new_tokens=settings.caption_tokens, min_new_tokens=settings.caption_min_tokens)
    return Captioner(loaded, CaptionOptions(prompt=CHAPTER_PROMPT, system=RECAPTION_SYSTEM,
                                            num_frames=settings.caption_frames, settings=gen))


def prepare_chapter(loaded, path, start: float, end: float | None, num_frames: int, key: str | None = None) -> Prepared:
    """Decode + CLIP-preprocess num_frames of [start, end] (end None: to the video's end). Never raises
    for a bad chapter: the error is returned for the record, like the captioner's own prepare."""
    from ..frames.video import read_video

    t0 = time.perf_counter()
    job = CaptionJob(str(path))
    try:
        clip = read_video(path, num_frames, resize=loaded.pixels.resize, start_s=start or None, end_s=end, key=key)
        pixels = loaded.pixels.normalise(clip.frames)  # (T, 3, 336, 336)
    except Exception as e:  # noqa: BLE001 - one bad chapter must not lose the others
        return Prepared(job, error=str(e) or type(e).__name__, error_type=type(e).__name__,
                        decode_seconds=time.perf_counter() - t0)
    return Prepared(job, pixels, tuple(float(s) for s in clip.timestamps), float(clip.duration),
                    time.perf_counter() - t0)


def caption_chapters(captioner: Captioner, path, ranges: list[tuple[int, float, float | None]], batch_size: int, *,
                     lock=None, stop: threading.Event | None = None, key: str | None = None) -> Iterator[tuple[int, str]]:
    """(chapter index, caption) for each (index, start, end) of `ranges`, a batch at a time. At most
    one batch of chapters' frames is held. `stop` ends the run between batches; what was yielded stays."""
    for lo in range(0, len(ranges), batch_size):
        if stop is not None and stop.is_set():
            return
        part = ranges[lo : lo + batch_size]
        items = [prepare_chapter(captioner.loaded, path, a, b, captioner.options.num_frames, key) for _, a, b in part]
        if lock is not None:
            with lock:
                records = captioner.caption_batch(items)
        else:
            records = captioner.caption_batch(items)
        del items
        for (index, _, _), record in zip(part, records):
            yield index, (record.get("caption") or "").strip()
