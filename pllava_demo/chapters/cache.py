"""Chapters kept by (file content, chapter settings, model): in memory for the server's tabs and, when
given a folder, as JSON files that outlive the process (the CLI's). Partial results (a Stop) are kept
too, so the next run captions only what is missing. Knows records' dict form; nothing else."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from ..caches import CountLRU
from .records import Chapters

log = logging.getLogger(__name__)


def cache_key(content_key: str, settings_key: tuple, model_name: str) -> str:
    text = json.dumps([content_key, list(settings_key), model_name], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class ChapterCache:
    def __init__(self, folder=None, max_items: int = 64):
        self.folder = Path(folder) if folder else None
        self._items: CountLRU[str, Chapters] = CountLRU(max_items)

    def get(self, key: str) -> Chapters | None:
        ch = self._items.get(key)
        if ch is not None:
            return ch
        if self.folder is not None:
            f = self.folder / f"{key}.json"
            try:
                ch = Chapters.from_dict(json.loads(f.read_text(encoding="utf-8")))
            except FileNotFoundError:
                return None
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.warning("ignoring the unreadable chapter cache file %s: %s", f, e)
                return None
            self._items.put(key, ch)
            return ch
        return None

    def put(self, key: str, ch: Chapters) -> None:
        self._items.put(key, ch)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / f"{key}.json.tmp"
            tmp.write_text(json.dumps(ch.as_dict(), ensure_ascii=False), encoding="utf-8")
            tmp.replace(self.folder / f"{key}.json")
