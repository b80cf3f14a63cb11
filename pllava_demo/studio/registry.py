"""The one owner of every tab: tabs by id (a browser session, an API client), created on first use by an
atomic get-or-create, kept least recently used first and bounded, closed when dropped (evicted, the tab
closed, its page state expired). A door keeps only the id; every command finds its tab here.

Knows nothing of doors or where the model runs: it is given the model holder and the runner.
"""

from __future__ import annotations

import threading

from ..caches import CountLRU
from .tab import Tab


class Registry:
    def __init__(self, holder=None, runner=None, uploads=None, max_items: int = 256):
        self._tabs: CountLRU[str, Tab] = CountLRU(max_items, on_evict=Tab.close)  # least recently used first
        self._making = threading.Lock()  # get-or-create is one step: two requests of one tab get one tab
        self.holder, self.runner, self.uploads = holder, runner, uploads

    @property
    def max_items(self) -> int:
        return self._tabs.max_items

    @max_items.setter
    def max_items(self, n: int) -> None:  # the server's --max-sessions, known once the page is built
        self._tabs.limit = int(n)

    def tab(self, key: str | None, upload=None) -> Tab:
        """The tab for `key`, made now if there is none: two requests of one tab at once get the same tab.
        No key: a new tab nobody looks up. `upload`, the file this request brought, is deleted at once
        when there is no model to make a tab with (still loading, or failed). A tab pushed out by the
        bound is closed (its files and caches freed)."""
        with self._making:
            found = self._tabs.get(key) if key else None
            if found is not None:
                return found
            try:
                engine = self.holder.get()
            except Exception:
                if upload and self.uploads is not None:
                    self.uploads.drop(upload)
                raise
            tab = Tab(engine, uploads=self.uploads, runner=self.runner, id=key or None)
            if key:
                self._tabs.put(key, tab)
            return tab

    def get(self, key: str | None) -> Tab | None:
        """The tab for `key` if there is one (marked as used), else None: nothing is made."""
        return self._tabs.get(key) if key else None

    def open_tabs(self) -> list[Tab]:
        """Every tab held, least recently used first."""
        return [tab for _, tab in self._tabs.items()]

    def close(self, key: str | None) -> None:
        """The tab is gone (closed, or its state expired): its video, KV cache and uploads are freed now."""
        tab = self._tabs.pop(key) if key else None
        if tab is not None:
            tab.close()

    def discard(self, key) -> None:
        """gr.State's delete_callback: the page's state (the tab id) expired, idle or long closed."""
        self.close(key if isinstance(key, str) else None)

    def __len__(self) -> int:
        return len(self._tabs)
