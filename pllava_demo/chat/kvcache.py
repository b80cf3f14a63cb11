"""A KV cache that appends in place.

transformers' DynamicCache appends each new token with torch.cat, copying the whole cache on every
decode step: O(n) bytes per token, about 1.4 GB per step for a 7B model holding a 2.7k-token video
prompt. Here each layer keeps keys and values in buffers with spare room and returns views of the
filled part; a buffer grows by a quarter (at least one block) when full, so copies are amortised
O(1) per token and the spare room stays small. Cropping (for prefix reuse) just moves the fill mark.

Knows only tensors and transformers' cache-layer protocol; nothing about prompts or sessions.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

BLOCK = 256  # tokens: buffers grow in whole blocks


def grown_length(needed: int) -> int:
    """The token length a buffer that must hold `needed` tokens grows to: a quarter spare (at least one
    block), rounded up to whole blocks, so growing copies amortised O(1) bytes per token. One rule for
    a session's cache (GrowingLayer) and the scheduler's batch of rows (scheduler.SlotCache)."""
    return -(-(needed + max(BLOCK, needed // 4)) // BLOCK) * BLOCK


class GrowingLayer(DynamicLayer):
    """keys / values: (B, H, n, Dh) views of buffers (B, H, capacity, Dh)."""

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self._k = self._v = None
        self._n = 0

    def _grow(self, needed: int, like_k: torch.Tensor, like_v: torch.Tensor) -> None:
        capacity = grown_length(needed)
        b, h, _, dk = like_k.shape
        new_k = like_k.new_empty(b, h, capacity, dk)
        new_v = like_v.new_empty(b, h, capacity, like_v.shape[-1])
        if self._n:
            new_k[:, :, : self._n] = self._k[:, :, : self._n]
            new_v[:, :, : self._n] = self._v[:, :, : self._n]
        self._k, self._v = new_k, new_v

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self._n + key_states.shape[-2]
        if self._k is None or end > self._k.shape[-2]:
            self._grow(end, key_states, value_states)
        self._k[:, :, self._n : end] = key_states
        self._v[:, :, self._n : end] = value_states
        self._n = end
        self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
        return self.keys, self.values

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError("crop takes a negative number: the tokens to remove from the end")
        if tokens_to_remove == 0 or not self.is_initialized:
            return
        self._n = max(0, self._n + tokens_to_remove)
        self.keys, self.values = self._k[:, :, : self._n], self._v[:, :, : self._n]

    def reset(self) -> None:
        self._k = self._v = None
        self._n = 0
        super().reset()

    @property
    def nbytes(self) -> int:
        """Bytes held, spare room included."""
        return sum(t.numel() * t.element_size() for t in (self._k, self._v) if t is not None)


def new_kv_cache() -> DynamicCache:
    """A DynamicCache whose layers append in place (see module docstring)."""
    cache = DynamicCache()
    cache.layer_class_to_replicate = GrowingLayer
    return cache


def cache_nbytes(cache) -> int:
    total = 0
    for layer in getattr(cache, "layers", []):
        if isinstance(layer, GrowingLayer):
            total += layer.nbytes
        else:
            total += sum(t.numel() * t.element_size() for t in (layer.keys, layer.values) if isinstance(t, torch.Tensor))
    return total
