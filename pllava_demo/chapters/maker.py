"""One chaptering run: scan (features.py) -> boundaries (scenes.py) -> subtitles -> captions in batches
(captions.py), publishing the chapters as they are made, with a Stop, through the cache. A maker
belongs to one loaded model and is shared by every tab (`maker_for(engine)`); its counters show what
was scanned and captioned. Knows no page and no command line."""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from ..frames.keyframes import ScanStats, duration_s
from .cache import ChapterCache, cache_key
from .captions import caption_chapters, chapter_captioner
from .features import scan
from .records import Chapter, Chapters
from .scenes import find_segments
from .settings import ChapterSettings
from .subtitles import assign, read_all, read_sidecar

Progress = Callable[[float, str], None]


class ChapterMaker:
    def __init__(self, loaded, *, lock=None, cache: ChapterCache | None = None, limits=None):
        self.loaded = loaded
        self.lock = lock or threading.RLock()
        self.cache = cache if cache is not None else ChapterCache()
        self.limits = limits
        self.stats: Counter = Counter()  # scans, frames_scanned, chapters_captioned, cache_hits
        self.last_scan: ScanStats | None = None
        self._captioners: dict[tuple, object] = {}
        self._runs: dict[str, threading.Lock] = {}
        self._runs_lock = threading.Lock()

    def _captioner(self, settings: ChapterSettings):
        key = settings.key
        if key not in self._captioners:
            self._captioners[key] = chapter_captioner(self.loaded, settings)
        return self._captioners[key]

    def _run_lock(self, key: str) -> threading.Lock:
        with self._runs_lock:
            return self._runs.setdefault(key, threading.Lock())

    def chapters(self, path, settings: ChapterSettings = ChapterSettings(), *, sidecar=None,
                 stop: threading.Event | None = None, on_update: Callable[[Chapters], None] | None = None,
                 progress: Progress | None = None) -> Chapters:
        """The video's chapters: from the cache when complete, else made (or finished) now. on_update gets
        every new state (boundaries first, then each captioned batch). After `stop` is set the chapters
        made so far are returned (complete=False) and cached, so a later call goes on from them.
        A sidecar subtitle file is read each time (it is not part of the cache key)."""
        from ..frames.video import check_file, content_key

        kwargs = {} if self.limits is None else {"max_mb": self.limits.max_file_mb}
        path = check_file(path, **kwargs)
        file_key = content_key(path)
        key = cache_key(file_key, settings.key, self.loaded.name)
        progress = progress or (lambda f, what: None)
        extra = read_sidecar(sidecar) if sidecar else []  # a bad sidecar is refused before any work
        with self._run_lock(key):  # a second tab asking for the same chapters waits for the first, then hits
            base = self.cache.get(key)  # never holds sidecar lines: they are this caller's, not the file's
            if base is not None and base.complete:
                self.stats["cache_hits"] += 1
                shown = with_lines(base, extra)
                if on_update:
                    on_update(shown)
                return shown
            if base is None:
                base = self._find(path, file_key, settings, stop, progress)
                if base is None:  # stopped before the boundaries were known: nothing to keep
                    return Chapters(file_key, 0.0, (), "stopped", False, settings.as_dict())
                self.cache.put(key, base)
            shown = with_lines(base, extra)
            if on_update:
                on_update(shown)
            todo = [(c.index, c.start, None if c.index == len(base.chapters) - 1 else c.end)
                    for c in base.chapters if not c.caption]
            done, n = len(base.chapters) - len(todo), len(base.chapters)
            progress(done / max(1, n), f"Captioned {done} of {n} chapters")
            for index, caption in caption_chapters(self._captioner(settings), path, todo, settings.batch_size,
                                                   lock=self.lock, stop=stop, key=file_key):
                self.stats["chapters_captioned"] += 1
                caption = caption or " "  # a blank caption still counts as made
                base, shown = base.with_caption(index, caption), shown.with_caption(index, caption)
                done += 1
                self.cache.put(key, base)
                progress(done / n, f"Captioned {done} of {n} chapters")
                if on_update:
                    on_update(shown)
            if all(c.caption for c in base.chapters):
                base, shown = replace(base, complete=True), replace(shown, complete=True)
                self.cache.put(key, base)
                if on_update:
                    on_update(shown)
            return shown

    def _find(self, path, file_key: str, settings: ChapterSettings, stop, progress: Progress) -> Chapters | None:
        duration = duration_s(path)
        if self.limits is not None and duration > self.limits.max_duration_s:
            from ..errors import VideoError
            from ..frames.video import human_duration

            raise VideoError(f"The video is {human_duration(duration)} long; this server takes videos up to "
                             f"{human_duration(self.limits.max_duration_s)}.")
        stats = ScanStats()
        progress(0.0, "Scanning for scene changes")
        times, feats = scan(self.loaded, path, settings, lock=self.lock, stop=stop, duration=duration, stats=stats,
                            progress=lambda f: progress(f, "Scanning for scene changes"))
        self.last_scan = stats
        self.stats["scans"] += 1
        self.stats["frames_scanned"] += len(times)
        if stop is not None and stop.is_set():
            return None
        segments = find_segments(times, feats, duration, settings)
        lines = read_all(path)
        n = len(segments.bounds)
        chapters = tuple(Chapter(i, a, b, "", assign(lines, a, b, last=i == n - 1))
                         for i, (a, b) in enumerate(segments.bounds))
        return Chapters(file_key, segments.bounds[-1][1], chapters, segments.method, False, settings.as_dict())


def with_lines(ch: Chapters, extra: list) -> Chapters:
    """The chapters with extra subtitle lines (a sidecar's) merged into each chapter's own."""
    if not extra:
        return ch
    n = len(ch.chapters)
    chapters = []
    for c in ch.chapters:
        merged = {(round(x.start, 2), x.text): x for x in c.lines + assign(extra, c.start, c.end, c.index == n - 1)}
        chapters.append(replace(c, lines=tuple(sorted(merged.values(), key=lambda x: (x.start, x.end)))))
    return replace(ch, chapters=tuple(chapters))


_MAKERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_MAKERS_LOCK = threading.Lock()


def maker_for(engine, cache: ChapterCache | None = None) -> ChapterMaker:
    """The chapter maker of a chat engine (its model, its lock and limits), made once."""
    with _MAKERS_LOCK:
        maker = _MAKERS.get(engine)
        if maker is None:
            maker = ChapterMaker(engine.loaded, lock=getattr(engine, "lock", contextlib.nullcontext()), cache=cache,
                                 limits=getattr(engine, "limits", None))
            _MAKERS[engine] = maker
        return maker
