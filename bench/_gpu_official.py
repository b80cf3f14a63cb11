"""The official pipeline's per-turn work on OUR loaded bf16 weights, through transformers' generate().

The official demo re-runs everything on every turn: CLIP + projector on the frames, pooling, the
whole prompt (video and history) prefilled into a fresh transformers DynamicCache by
`generate()`, then greedy decoding there. Here each turn does exactly that with our modules:
`encode_frames` -> `pool` -> the prompt text from the same format and history rules as the engine
(`fit_prompt`) -> `embed` -> `language_model.generate(inputs_embeds=...)`. The LLM is the same object
the engine uses (LoRA unmerged on q/v, as the official PEFT model runs it), so any difference is
the pipeline, not the weights. Frames are synthetic pixels (no decoder on the GPU machine), so the
official demo's decoding and preprocessing, which cost more than ours, are left out of its TTFT.

TTFT is timed as a whole `generate(max_new_tokens=1)` (after which the token is on the host);
decode speed from a streamer's timestamps over one answer of `tokens` tokens (recent transformers
hand tokens to a streamer one step late, which does not change a rate).
"""

from __future__ import annotations

import math
import time

import torch
from transformers.generation.streamers import BaseStreamer

from _common import median
from pllava_demo.chat.prompt import DEFAULT_SYSTEM, Turn, fit_prompt

SHAPE = (16, 12, 12)  # the official pooling; 16 frames


class _Clock(BaseStreamer):
    """Timestamps of each new token handed over (the prompt's own put comes first and is skipped)."""

    def __init__(self):
        self.times: list[float] = []
        self._prompt = True

    def put(self, value):
        if self._prompt:
            self._prompt = False
            return
        self.times.append(time.perf_counter())

    def end(self):
        pass


def _turn(loaded, engine, pixels, turns, question, tokens, streamer=None):
    """One official turn from scratch; returns (seconds to the end of generate, new ids)."""
    model, tok = loaded.model, loaded.tokenizer
    t0 = time.perf_counter()
    with torch.inference_mode():
        engine._apply_alpha(engine.default_alpha)
        feats = model.encode_frames(pixels)  # (T, 576, D)
        visual = model.pool(feats, SHAPE)  # (N, D)
        fitted = fit_prompt(tok, engine.format, DEFAULT_SYSTEM, turns, question,
                            n_video_tokens=math.prod(SHAPE), context=loaded.context_length, max_new_tokens=tokens)
        ids = torch.tensor([fitted.ids])  # (1, L)
        expanded, _ = model.expand_image_token(ids, math.prod(SHAPE))  # (1, S)
        embeds = model.embed(expanded.to(model.device), visual)  # (1, S, D)
        mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=model.device)
        out = model.language_model.generate(
            inputs_embeds=embeds, attention_mask=mask, max_new_tokens=tokens, min_new_tokens=tokens,
            do_sample=False, pad_token_id=loaded.spec.pad_token_id, streamer=streamer,
        )  # (1, tokens): with inputs_embeds only, generate returns the new ids alone
    if model.device.type == "cuda":
        torch.cuda.synchronize(model.device)
    return time.perf_counter() - t0, out[0].tolist(), fitted.n_prompt_tokens


def measure_official(loaded, engine, pixels: torch.Tensor, question: str, follow_up: str, tokens: int,
                     repeats: int) -> dict:
    """First-turn and follow-up TTFT (median of `repeats` after a warm-up, 1-token answers, as the
    engine's are measured) and decode tokens/s over one `tokens`-token answer; pixels (16, 3, 336, 336)."""
    first, follow = [], []
    for rep in range(repeats + 1):
        s1, ids, prompt1 = _turn(loaded, engine, pixels, (), question, 1)
        answer = loaded.tokenizer.decode(ids, skip_special_tokens=True).strip()
        s2, _, prompt2 = _turn(loaded, engine, pixels, (Turn(question, answer),), follow_up, 1)
        if rep:
            first.append(s1)
            follow.append(s2)
    clock = _Clock()
    _turn(loaded, engine, pixels, (), question, tokens, streamer=clock)
    times = clock.times
    decode = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
    return {"frames": pixels.shape[0], "shape": list(SHAPE), "first_ttft_s": median(first), "follow_s": median(follow),
            "follow_over_first": median(follow) / median(first), "first_prompt_tokens": prompt1,
            "follow_prompt_tokens": prompt2, "decode_tokens": len(times) - 1, "decode_tok_s": decode}
