"""The one LRU rule (caches.py) and the one KV growth rule (kvcache.grown_length)."""

import threading

import pytest

from pllava_demo.caches import ByteLRU, CountLRU
from pllava_demo.chat.kvcache import BLOCK, GrowingLayer, grown_length, new_kv_cache
from pllava_demo.chat.scheduler import SlotCache


def test_count_lru_evicts_the_oldest_and_hands_it_over():
    dropped = []
    lru = CountLRU(2, on_evict=dropped.append)
    lru.put("a", 1)
    lru.put("b", 2)
    lru.put("c", 3)
    assert dropped == [1] and lru.keys() == ["b", "c"] and lru.get("a") is None and len(lru) == 2


def test_count_lru_get_counts_as_a_use():
    dropped = []
    lru = CountLRU(2, on_evict=dropped.append)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # "a" is now the most recent: "b" goes next
    lru.put("c", 3)
    assert dropped == [2] and lru.keys() == ["a", "c"]


def test_count_lru_pop_and_replace_are_not_evictions():
    dropped = []
    lru = CountLRU(2, on_evict=dropped.append)
    lru.put("a", 1)
    lru.put("a", 10)  # replaced under its own key: the caller's business
    assert lru.pop("a") == 10 and lru.pop("a", "gone") == "gone"
    assert dropped == [] and len(lru) == 0 and "a" not in lru


def test_on_evict_runs_outside_the_lock():
    """A slow or re-entrant on_evict (closing a studio that looks at the registry) must not deadlock."""
    seen = []
    lru = CountLRU(1, on_evict=lambda v: seen.append((v, lru.get("b"))))
    lru.put("a", 1)
    done = threading.Event()
    threading.Thread(target=lambda: (lru.put("b", 2), done.set()), daemon=True).start()
    assert done.wait(10), "put deadlocked calling on_evict under its own lock"
    assert seen == [(1, 2)]


def test_count_lru_refuses_room_for_nothing():
    with pytest.raises(ValueError, match="at least 1"):
        CountLRU(0)


def test_byte_lru_keeps_its_bytes_and_one_oversized_value():
    lru = ByteLRU(10, size_of=len)
    lru.put("a", "xxxx")
    lru.put("b", "xxxx")
    assert lru.bytes == 8 and lru.max_bytes == 10
    lru.put("c", "xxxx")
    assert lru.keys() == ["b", "c"] and lru.bytes == 8
    lru.put("big", "x" * 50)  # larger than the budget: kept alone
    assert lru.keys() == ["big"] and lru.bytes == 50


@pytest.mark.parametrize("needed", [1, 255, 256, 257, 1000, 2700, 10_000])
def test_growth_rule_rounds_a_quarter_spare_up_to_blocks(needed):
    got = grown_length(needed)
    assert got % BLOCK == 0
    assert got >= needed + max(BLOCK, needed // 4)
    assert got - BLOCK < needed + max(BLOCK, needed // 4)


def test_both_kv_caches_grow_by_the_one_rule():
    import torch

    keys = torch.zeros(1, 2, 300, 4)  # (B, H, n, Dh)
    cache = new_kv_cache()
    cache.update(keys, keys.clone(), 0)
    layer = cache.layers[0]
    assert isinstance(layer, GrowingLayer) and layer._k.shape[2] == grown_length(300)
    slots = SlotCache(max_rows=2)
    slots.add(cache, room=20)
    assert slots.k[0].shape[2] == grown_length(320)
