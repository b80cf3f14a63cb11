"""Picking tokens: greedy or temperature / top-p sampling with a repetition penalty, as a generator
of token ids (gpt-fast style: the loop knows nothing about text, printing or the UI).

The model is behind one callable, `step(token_id) -> logits`, so the same loop serves the chat
engine (with its KV cache) and the batch captioner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from .config import GenerationSettings


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL-style: divide positive and multiply negative logits of already-seen ids. logits (V,), seen (K,)."""
    if penalty == 1.0 or seen.numel() == 0:
        return logits
    picked = logits.gather(0, seen)
    picked = torch.where(picked > 0, picked / penalty, picked * penalty)
    return logits.scatter(0, seen, picked)


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of ids whose probability reaches top_p (always at least one)."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(descending=True)
    cum = sorted_logits.softmax(-1).cumsum(-1)
    drop = cum - sorted_logits.softmax(-1) >= top_p  # drop ids once the mass BEFORE them already reaches top_p
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(0, order, sorted_logits)


def pick_token(logits: torch.Tensor, settings: GenerationSettings, generator: torch.Generator | None) -> torch.Tensor:
    if not settings.do_sample:
        return logits.argmax()
    logits = top_p_filter(logits / settings.temperature, settings.top_p)
    probs = logits.float().softmax(-1)
    return torch.multinomial(probs, 1, generator=generator)[0]


def generate_tokens(
    first_logits: torch.Tensor,
    step: Callable[[int], torch.Tensor],
    settings: GenerationSettings,
    stop_ids: set[int],
    seen_ids: torch.Tensor | None = None,
    max_new_tokens: int | None = None,
) -> Iterator[int]:
    """Yield new token ids until a stop id or the token budget. first_logits: (V,) for the first new
    token; step(id) feeds an id and returns the next (V,) logits. Closing the generator stops it."""
    limit = settings.max_new_tokens if max_new_tokens is None else max_new_tokens
    device = first_logits.device
    generator = None
    if settings.do_sample and settings.seed is not None:
        generator = torch.Generator(device=device).manual_seed(settings.seed)
    seen = (seen_ids if seen_ids is not None else torch.empty(0, dtype=torch.long)).to(device)
    stop = torch.tensor(sorted(stop_ids), dtype=torch.long, device=device)
    logits = first_logits
    for i in range(limit):
        logits = apply_repetition_penalty(logits.float(), seen, settings.repetition_penalty)
        if i < settings.min_new_tokens and stop.numel():
            logits = logits.index_fill(0, stop, float("-inf"))
        token = pick_token(logits, settings, generator)
        token_id = int(token)  # the one host sync per token: streaming and stopping need the id
        if token_id in stop_ids:
            return
        yield token_id
        if settings.repetition_penalty != 1.0:
            seen = torch.cat([seen, token.reshape(1)])
        if i + 1 < limit:
            logits = step(token_id)
