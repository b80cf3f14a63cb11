"""Least-recently-used maps, thread-safe: `CountLRU` keeps at most N values, `ByteLRU` at most N bytes
of values. Both are one rule, `LRU`: every value has a size (1 by default), and putting a value past the
limit drops the least recently used ones (never the one just put) and hands each to `on_evict`.

This module knows no torch, no model and no product object: what a value is, how big it is and what
dropping it means (closing a studio, nothing at all) are the caller's.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _one(value) -> int:
    return 1


class LRU(Generic[K, V]):
    """A map bounded by the sum of `size_of(value)`. `get` counts as a use. `on_evict(value)` runs for a
    value dropped to make room, outside the lock (it may be slow: closing a session); a value replaced
    under its own key or taken out with `pop` is the caller's and is not handed to it."""

    def __init__(self, limit: int, *, size_of: Callable[[V], int] = _one,
                 on_evict: Callable[[V], None] | None = None):
        self.limit = int(limit)
        self.size_of = size_of
        self.on_evict = on_evict
        self.size = 0
        self._items: OrderedDict[K, V] = OrderedDict()  # least recently used first
        self._sizes: dict[K, int] = {}
        self._lock = threading.Lock()

    def get(self, key: K, default: V | None = None) -> V | None:
        with self._lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: K, value: V) -> None:
        size = self.size_of(value)
        evicted = []
        with self._lock:
            if key in self._items:
                self.size -= self._sizes.pop(key)
                del self._items[key]
            self._items[key] = value
            self._sizes[key] = size
            self.size += size
            while self.size > self.limit and len(self._items) > 1:
                old, old_value = self._items.popitem(last=False)
                self.size -= self._sizes.pop(old)
                evicted.append(old_value)
        if self.on_evict is not None:
            for old_value in evicted:
                self.on_evict(old_value)

    def pop(self, key: K, default: V | None = None) -> V | None:
        with self._lock:
            if key not in self._items:
                return default
            self.size -= self._sizes.pop(key)
            return self._items.pop(key)

    def keys(self) -> list[K]:
        """Keys from least to most recently used (a copy: safe to pop while walking it)."""
        with self._lock:
            return list(self._items)

    def items(self) -> list[tuple[K, V]]:
        """(key, value) from least to most recently used (a copy)."""
        with self._lock:
            return list(self._items.items())

    def __contains__(self, key) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        return len(self._items)


class CountLRU(LRU[K, V]):
    """At most `max_items` values."""

    def __init__(self, max_items: int, on_evict: Callable[[V], None] | None = None):
        if int(max_items) < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}.")
        super().__init__(max_items, on_evict=on_evict)

    @property
    def max_items(self) -> int:
        return self.limit


class ByteLRU(LRU[K, V]):
    """At most `max_bytes` of values as `size_of` counts them; a single value larger than that is still
    kept (alone), so one big video works on a small budget."""

    def __init__(self, max_bytes: int, size_of: Callable[[V], int], on_evict: Callable[[V], None] | None = None):
        super().__init__(max_bytes, size_of=size_of, on_evict=on_evict)

    @property
    def max_bytes(self) -> int:
        return self.limit

    @property
    def bytes(self) -> int:
        return self.size
