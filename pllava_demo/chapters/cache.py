"""Chapters kept by (file content, chapter settings, model): in memory for the server's tabs and, when
given a folder, as JSON files that outlive the process (the CLI's). Partial results (a Stop) are kept
too, so the next run captions only what is missing. Knows records' dict form; nothing else."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from pathlib import Path

from .records import Chapters

log = logging.getLogger(__name__)


def cache_key(content_key: str, settings_key: tuple, model_name: str) -> str:
    text = json.dumps([content_key, list(settings_key), model_name], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class ChapterCache:
    def __init__(self, folder=None, max_items: int = 64):
        self.folder = Path(folder) if folder else None
        self.max_items = max_items
        self._items: OrderedDict[str, Chapters] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Chapters | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        if self.folder is not None:
            f = self.folder / f"{key}.json"
            try:
                ch = Chapters.from_dict(json.loads(f.read_text(encoding="utf-8")))
            except FileNotFoundError:
                return None
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.warning("ignoring the unreadable chapter cache file %s: %s", f, e)
                return None
            self._remember(key, ch)
            return ch
        return None

    def put(self, key: str, ch: Chapters) -> None:
        self._remember(key, ch)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / f"{key}.json.tmp"
            tmp.write_text(json.dumps(ch.as_dict(), ensure_ascii=False), encoding="utf-8")
            tmp.replace(self.folder / f"{key}.json")

    def _remember(self, key: str, ch: Chapters) -> None:
        with self._lock:
            self._items[key] = ch
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
