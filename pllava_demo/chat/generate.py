"""Picking tokens: one sampler over a batch of rows, (B, V) logits -> (B,) ids, with each row's own
rules (greedy or temperature / top-p, repetition penalty, min_new_tokens, token budget, seed).

A row is one answer being written (`Row`: its settings, generator, seen ids and count). Rows of
one batch may have different settings and join or leave between steps: the scheduler
(scheduler.py) holds the rows and runs the one decode loop; the chat engine and the captioner both
go through it. This file knows no model, cache, text or UI.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import GenerationSettings


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of ids whose probability reaches top_p (always at least one). logits (V,)."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(descending=True)
    cum = sorted_logits.softmax(-1).cumsum(-1)
    drop = cum - sorted_logits.softmax(-1) >= top_p  # drop ids once the mass BEFORE them already reaches top_p
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(0, order, sorted_logits)


@dataclass(eq=False)
class Row:
    """One answer's sampling state. seen: (V,) bool of ids the repetition penalty applies to."""

    settings: GenerationSettings
    limit: int
    seen: torch.Tensor | None = None
    generator: torch.Generator | None = None
    count: int = 0

    @classmethod
    def new(cls, settings: GenerationSettings, vocab: int, device, seen_ids: torch.Tensor | None = None,
            limit: int | None = None) -> "Row":
        """seen_ids: the prompt's text ids (they count as seen, as in HF's repetition penalty)."""
        seen = None
        if settings.repetition_penalty != 1.0:
            seen = torch.zeros(vocab, dtype=torch.bool, device=device)  # (V,)
            if seen_ids is not None and seen_ids.numel():
                seen[seen_ids.to(device)] = True
        generator = None
        if settings.do_sample and settings.seed is not None:
            generator = torch.Generator(device=device).manual_seed(settings.seed)
        return cls(settings, settings.max_new_tokens if limit is None else limit, seen, generator)


class Sampler:
    """The one sampler: `pick(logits (B, V), rows) -> ids (B,)`, then `advance` records what each row got
    and says which rows are finished (a stop id, which is not part of the answer, or the budget)."""

    def __init__(self, stop_ids: set[int], device):
        self.stop_ids = frozenset(stop_ids)
        self.stop = torch.tensor(sorted(stop_ids), dtype=torch.long, device=device)  # (K,)

    def pick(self, logits: torch.Tensor, rows: list[Row]) -> torch.Tensor:
        logits = logits.float()  # (B, V)
        penalties = [r.settings.repetition_penalty for r in rows]
        if any(p != 1.0 for p in penalties):
            # CTRL-style: divide positive and multiply negative logits of already-seen ids
            p = torch.tensor(penalties, dtype=logits.dtype, device=logits.device)[:, None]  # (B, 1)
            seen = torch.stack([r.seen if r.seen is not None else torch.zeros_like(logits[0], dtype=torch.bool)
                                for r in rows])  # (B, V)
            logits = torch.where(seen, torch.where(logits > 0, logits / p, logits * p), logits)
        early = [r.count < r.settings.min_new_tokens for r in rows]
        if any(early) and self.stop.numel():
            block = torch.tensor(early, device=logits.device)[:, None] & torch.zeros_like(logits, dtype=torch.bool
                                                                                          ).index_fill(1, self.stop, True)
            logits = logits.masked_fill(block, float("-inf"))  # (B, V): no stop before min_new_tokens
        tokens = logits.argmax(-1)  # (B,)
        for b, r in enumerate(rows):
            s = r.settings
            if s.do_sample:  # each row draws from its own generator: a seeded answer never depends on the batch
                probs = top_p_filter(logits[b] / s.temperature, s.top_p).float().softmax(-1)
                tokens[b] = torch.multinomial(probs, 1, generator=r.generator)[0]
        return tokens

    def advance(self, tokens: list[int], rows: list[Row]) -> list[bool]:
        """Count each row's new id (host ints: the step's one sync was .tolist()); True where it ends."""
        ended = []
        for t, r in zip(tokens, rows):
            if t in self.stop_ids:
                ended.append(True)
                continue
            r.count += 1
            if r.seen is not None:
                r.seen[t] = True
            ended.append(r.count >= r.limit)
        return ended
