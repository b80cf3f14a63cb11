"""Benchmark: many sessions answering at once, decoded together by the scheduler, against one
session, against taking turns (batching off, as before the scheduler and as on ZeroGPU), and
against transformers' batched `generate` on the same model and prompts.

  batched   Engine (batching on): N sessions ask at the same moment from N threads; their decode
            steps run as one batch, each prompt is prefilled on its own cache.
  turns     Engine(batching=False): the same N threads, each answer stepping its own scheduler under
            the engine lock, so the answers take turns step by step.
  HF        transformers' `generate` on the N prompts' embeddings at once (left-padded; greedy); it
            has no cache across turns, so a follow-up prefills its whole prompt again.

Rows: first questions (each prefill reads the whole video prompt) and follow-ups (each session has
answered once; the KV prefix is reused). Each answer is exactly ANSWER_TOKENS tokens. Total tokens/s
= all answers' tokens / wall time from the common start to the last answer; latency = median of each
answer's start-to-end. Ratios are against batched N=1 of the same kind and dtype, all in one run; each
dtype (the app's --cpu-dtype: float32, and bfloat16, which CPUs with AMX multiply natively) in turn.

Streaming gap: session A streams a long answer; B's first question (its 2.3k-token prompt) arrives
mid-answer; the longest gap between two of A's pieces while B is prefilled, with chunked prefill and
with the whole prompt in one go.

    python bench/bench_concurrency.py [--model small] [--threads 1] [--sessions 1 2 4 8] [--dtype float32 bfloat16]

Step table: one batched decode step alone (model.decode on a SlotCache of N rows with 16 or 2,750
KV tokens each), to show what a row costs apart from prefill, sampling and threads.
"""

from __future__ import annotations

import argparse
import threading
import time

import torch

from _common import at_once, bench_video, checkpoint, drain, first_token_clock, load_average, machine, median, table

import pllava_demo.chat.engine as engine_module  # noqa: E402

from pllava_demo.config import GenerationSettings  # noqa: E402
from pllava_demo.chat.engine import Engine  # noqa: E402

NUM_FRAMES = 16
ANSWER_TOKENS = 64
SETTINGS = GenerationSettings(max_new_tokens=ANSWER_TOKENS, min_new_tokens=ANSWER_TOKENS)
QUESTIONS = ["What is happening in this video?", "Describe the background.", "Who is in the video?",
             "What colours do you see?", "Is it day or night?", "What happens at the end?",
             "Describe the characters and actions.", "What is the camera doing?"]
FOLLOW_UP = "And then what happens?"


def _sessions(engine, video, n):
    out = []
    for _ in range(n):
        s = engine.new_session()
        s.set_video(video, NUM_FRAMES)  # a feature-cache hit after the first: CLIP is not measured
        out.append(s)
    return out


def _at_once(sessions, questions) -> tuple[float, list[float]]:
    """All sessions ask at the same moment; (wall seconds, each answer's seconds)."""
    t0, ends = at_once([lambda s=s, q=q: drain(s.ask(q, settings=SETTINGS)) for s, q in zip(sessions, questions)])
    return max(ends) - t0, [e - t0 for e in ends]


def run_engine(loaded, video, n, batching, follow_up) -> tuple[float, float]:
    """(total tokens/s, median latency s) of n sessions asking at once."""
    engine = Engine(loaded, batching=batching, max_rows=max(8, n))
    sessions = _sessions(engine, video, n)
    questions = QUESTIONS[:n]
    if follow_up:
        for s, q in zip(sessions, questions):
            "".join(s.ask(q, settings=SETTINGS))
        questions = [FOLLOW_UP] * n
    with first_token_clock(engine_module) as marks:
        wall, each = _at_once(sessions, questions)
    tokens = sum(len(m) for m in marks)  # the ids the readers got (a stop string would end one early)
    return tokens / wall, median(each)


@torch.inference_mode()
def run_hf(loaded, video, n, follow_up) -> tuple[float, float]:
    """transformers' batched generate on the same prompts (left-padded embeddings)."""
    engine = Engine(loaded, batching=False)
    sessions = _sessions(engine, video, n)
    model = loaded.model
    rows = []
    for i, s in enumerate(sessions):
        if follow_up:
            "".join(s.ask(QUESTIONS[i], settings=SETTINGS))
        q = FOLLOW_UP if follow_up else QUESTIONS[i]
        fitted = engine_fit(engine, s, q)
        tokens = engine.visual_tokens(s.video)
        expanded, _ = model.expand_image_token(torch.tensor([fitted]), tokens.shape[0])
        rows.append(model.embed(expanded, tokens)[0])  # (S_i, D)
    width = max(r.shape[0] for r in rows)
    embeds = torch.zeros(n, width, rows[0].shape[-1], dtype=rows[0].dtype)  # (B, S, D)
    mask = torch.zeros(n, width, dtype=torch.long)
    for b, r in enumerate(rows):
        embeds[b, width - r.shape[0]:] = r
        mask[b, width - r.shape[0]:] = 1
    t0 = time.perf_counter()
    out = model.language_model.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=ANSWER_TOKENS,
                                        min_new_tokens=ANSWER_TOKENS, do_sample=False, pad_token_id=0)
    wall = time.perf_counter() - t0
    assert out.shape[1] == ANSWER_TOKENS
    return n * ANSWER_TOKENS / wall, wall  # every row ends with the batch


def engine_fit(engine, session, question) -> list[int]:
    from pllava_demo.chat.prompt import fit_prompt

    n_video = engine.strategy(None).n_tokens(session.video.features.shape[0], engine.spec.frame_grid)
    return list(fit_prompt(engine.tokenizer, engine.format, session.system, session.turns, question,
                           n_video_tokens=n_video, context=engine.loaded.context_length,
                           max_new_tokens=ANSWER_TOKENS).ids)


def streaming_gap(loaded, video, chunk_tokens) -> tuple[float, float]:
    """(A's longest gap between token ids while B's first question is read, B's time to its first id)."""
    engine = Engine(loaded, batching=True, chunk_tokens=chunk_tokens)
    a, b = _sessions(engine, video, 2)
    long = GenerationSettings(max_new_tokens=300, min_new_tokens=300)
    with first_token_clock(engine_module) as marks:
        ta = threading.Thread(target=lambda: "".join(a.ask(QUESTIONS[0], settings=long)))
        ta.start()
        while not marks or len(marks[0]) < 10:  # A is streaming
            time.sleep(0.01)
        t0 = time.perf_counter()
        "".join(b.ask(QUESTIONS[1], settings=SETTINGS))
        ta.join()
    times, t1 = marks[0], marks[1][0]
    gaps = [y - x for x, y in zip(times, times[1:]) if y >= t0 and x <= t1]
    return max(gaps, default=float("nan")), t1 - t0


@torch.inference_mode()
def step_ms(loaded, rows: int, kv_length: int, steps: int = 30) -> float:
    """Milliseconds of one batched decode step (model.decode over a SlotCache) of `rows` rows whose
    caches hold about kv_length tokens each: the step alone, without prefill, sampling or threads."""
    from transformers import DynamicCache

    from pllava_demo.chat.scheduler import SlotCache

    cfg = loaded.model.language_model.config
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    slots = SlotCache()
    for b in range(rows):
        cache = DynamicCache()
        for layer in range(cfg.num_hidden_layers):
            k = torch.randn(1, cfg.num_key_value_heads, kv_length + b, head_dim, dtype=loaded.dtype)
            cache.update(k, k.clone(), layer)
        slots.add(cache, room=steps + 8)
    tokens = torch.arange(rows) + 100
    for s in range(steps + 3):
        if s == 3:
            t0 = time.perf_counter()
        loaded.model.decode(tokens, slots, slots.select(0, rows))
        slots.commit(0, rows)
    return (time.perf_counter() - t0) / steps * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="small", choices=["tiny", "small"])
    p.add_argument("--sessions", nargs="+", type=int, default=[1, 2, 4, 8])
    p.add_argument("--dtype", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"],
                   help="the weights' dtypes to run, one after the other (the app's --cpu-dtype)")
    p.add_argument("--gap-only", action="store_true", help="only the streaming-gap table")
    p.add_argument("--steps-only", action="store_true", help="only the decode-step table")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: on a shared, oversubscribed CPU more threads ran slower)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from pllava_demo.network.checkpoint import load_pllava

    video = bench_video()
    print(f"# bench_concurrency on {machine()}, {torch.get_num_threads()} torch threads, model {args.model}; "
          f"load average at start {load_average()}\n")
    rows, step_rows, gap_rows = [], [], []
    for name in args.dtype:
        loaded = load_pllava(checkpoint(args.model), device="cpu", quantization="none", dtype=getattr(torch, name))
        run_engine(loaded, video, 2, True, False)  # warm-up
        for follow_up in (() if args.gap_only or args.steps_only else (False, True)):
            kind = "follow-up" if follow_up else "first question"
            base = None
            for n in args.sessions:
                tps, lat = run_engine(loaded, video, n, True, follow_up)
                base = base or tps
                turns_tps, turns_lat = run_engine(loaded, video, n, False, follow_up)
                hf_tps, hf_lat = run_hf(loaded, video, n, follow_up)
                rows.append([name, kind, n, f"{tps:.1f}", f"{tps / base:.2f}x", f"{lat:.2f}", f"{turns_tps:.1f}",
                             f"{turns_lat:.2f}", f"{hf_tps:.1f}", f"{hf_lat:.2f}", f"{tps / hf_tps:.2f}x"])
                print(" | ".join(map(str, rows[-1])), flush=True)
        # where a batched step's time goes: the weights are read once per step for all rows, each row's
        # keys and values once per row (with the video's ~2.7k tokens, 45 MB a row in float32 against
        # 120 MB of weights), and a matmul of a few rows may cost more than one row's (the kernels)
        for kv in (() if args.gap_only else (16, 2750)):
            base = None
            for n in args.sessions if 1 in args.sessions else [1, *args.sessions]:
                ms = step_ms(loaded, n, kv)
                base = base or n / ms
                step_rows.append([name, kv, n, f"{ms:.1f}", f"{n / ms * 1e3:.0f}", f"{n / ms / base:.2f}x"])
        for chunk in (() if args.steps_only else (128, 256, 10**9)):
            gap, ttft = streaming_gap(loaded, video, chunk)
            gap_rows.append([name, "whole prompt at once" if chunk == 10**9 else f"{chunk}-token chunks",
                             f"{gap:.3f}", f"{ttft:.2f}"])
    if rows:
        print()
        print(table(["dtype", "prompt", "sessions", "batched tok/s", "vs 1 session", "batched latency s",
                     "turns tok/s", "turns latency s", "HF generate tok/s", "HF latency s", "batched / HF"], rows))
    if step_rows:
        print()
        print(table(["dtype", "KV tokens per row", "rows", "ms per step", "tok/s", "vs 1 row"], step_rows))
    if gap_rows:
        print()
        print(table(["dtype", "prefill of B's first question", "A's longest gap s", "B's first piece s"], gap_rows))
    print(f"\n(load average after: {load_average()})")


if __name__ == "__main__":
    main()
