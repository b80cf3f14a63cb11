"""The one owner of every tab: tabs by id (a browser session, an API client), created on first use by an
atomic get-or-create, kept least recently used first and bounded, closed when dropped (evicted, the tab
closed, its page state expired). A door keeps only the id; every command finds its tab here.

Knows nothing of doors or where the model runs: it is given the model holder and the runner.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from .tab import Tab


class Registry:
    def __init__(self, holder=None, runner=None, uploads=None, max_items: int = 256):
        self._items: OrderedDict[str, Tab] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()
        self.holder, self.runner, self.uploads, self.max_items = holder, runner, uploads, max_items

    def tab(self, key: str | None, upload=None) -> Tab:
        """The tab for `key`, made now if there is none: two requests of one tab at once get the same tab.
        No key: a new tab nobody looks up. `upload`, the file this request brought, is deleted at once
        when there is no model to make a tab with (still loading, or failed)."""
        with self._lock:
            found = self._items.get(key) if key else None
            if found is not None:
                self._items.move_to_end(key)
                return found
            try:
                engine = self.holder.get()
            except Exception:
                if upload and self.uploads is not None:
                    self.uploads.drop(upload)
                raise
            tab = Tab(engine, uploads=self.uploads, runner=self.runner, id=key or None)
            if not key:
                return tab
            self._items[key] = tab
            evicted = [self._items.popitem(last=False)[1] for _ in range(len(self._items) - self.max_items)]
        for old in evicted:  # outside the lock: closing frees files and caches
            old.close()
        return tab

    def get(self, key: str | None) -> Tab | None:
        """The tab for `key` if there is one (marked as used), else None: nothing is made."""
        with self._lock:
            found = self._items.get(key) if key else None
            if found is not None:
                self._items.move_to_end(key)
            return found

    def close(self, key: str | None) -> None:
        """The tab is gone (closed, or its state expired): its video, KV cache and uploads are freed now."""
        with self._lock:
            tab = self._items.pop(key, None) if key else None
        if tab is not None:
            tab.close()

    def discard(self, key) -> None:
        """gr.State's delete_callback: the page's state (the tab id) expired, idle or long closed."""
        self.close(key if isinstance(key, str) else None)

    def __len__(self) -> int:
        return len(self._items)
