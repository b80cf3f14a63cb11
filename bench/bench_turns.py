"""Benchmark: what a chat turn costs with our engine's caches, against the official demo's per-turn work.

  ours      Engine + ChatSession: the first question pays decode + CLIP + full prefill; a follow-up
            re-uses the session's KV cache (only its new tokens are prefilled); moving the pooling
            or LoRA-alpha slider re-pools cached CLIP features and re-prefills (never re-runs CLIP);
            switching the visual-token strategy (strategies.py) never re-decodes, and runs CLIP once
            more only for a strategy that builds an image of its own (IG-VLM's grid, TS-LLaVA's
            thumbnail); the training-free strategies are asked at alpha 0, as they are meant.
  official  every turn from scratch, as the official demo does: decode (one frame per second of the
            whole video, thrown away, then the N sampled frames), CLIP preprocessing, CLIP +
            projector, pooling, the whole prompt with history prefilled with no cache. Built from
            our own parts (read_video, clip_preprocess, encode_frames, pool, one language_model call).
            The official demo also computed logits at every position; this baseline keeps only the
            last (logits_to_keep=1), so it is FASTER than the real official demo.

TTFT = time from the call (set_video + ask for the first question, ask for the others) to the moment
the first new token id is known (the scheduler's Job.tokens is wrapped to time-stamp every id, because
TextStream may hold back whitespace or a partial stop marker). Both sides answer the same prompts
with the same history (the official side re-uses the answers ours produced). Each turn answers
exactly ANSWER_TOKENS tokens (min_new_tokens = max_new_tokens). Medians over REPEATS fresh engines,
after one warm-up. Also: the cost of changing LoRA alpha (LoadedPllava.set_lora_alpha and the
engine's per-step _apply_alpha), including on a 7B-shaped model built on the meta device.

    python bench/bench_turns.py [--models tiny small] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import torch

from _common import bench_video, checkpoint, first_token_clock, load_average, machine, median, official_decode, table

import pllava_demo.chat.engine as engine_module  # noqa: E402
from pllava_demo.config import GenerationSettings  # noqa: E402
from pllava_demo.chat.engine import Engine  # noqa: E402
from pllava_demo.frames.preprocess import clip_preprocess  # noqa: E402
from pllava_demo.chat.prompt import fit_prompt  # noqa: E402
from pllava_demo.frames.strategies import ImageGrid, PllavaPooling, SpatioTemporal, ThumbnailSampling, parse  # noqa: E402

NUM_FRAMES = 16
ANSWER_TOKENS = 32
STATS = ("vision_calls", "videos_decoded", "prefill_tokens", "reused_tokens")
# (label, question, strategy (a pooling shape is PLLaVA's), LoRA alpha); the first one uploads the video.
# (No pooling, n-frame, is left out: 16 frames are 9,216 tokens, past the 4,096-token context.)
STEPS = [
    ("first question (upload + ask)", "What is happening in this video? Describe the background, characters and actions.", (16, 12, 12), 4.0),
    ("follow-up", "What does the man hold and what does he do with it?", (16, 12, 12), 4.0),
    ("follow-up, alpha slider 4 -> 20", "Is the person walking on the street first or finally?", (16, 12, 12), 20.0),
    ("follow-up, pooling slider 16x12x12 -> 16x8x8", "Describe the kitchen and what someone cooks.", (16, 8, 8), 20.0),
    ("follow-up (sliders unchanged)", "Yes or no: do cars drive past buildings at night?", (16, 8, 8), 20.0),
    ("strategy -> Video-ChatGPT means", "What happens at the end?", SpatioTemporal(), 0.0),
    ("strategy -> IG-VLM grid (new image)", "What happens at the end?", ImageGrid(), 0.0),
    ("follow-up (IG-VLM unchanged)", "What colour is the car?", ImageGrid(), 0.0),
    ("strategy -> TS-LLaVA (new image)", "What happens at the end?", ThumbnailSampling(), 0.0),
    ("strategy back -> PLLaVA 16x8x8", "What happens at the end?", (16, 8, 8), 20.0),
]
SETTINGS = GenerationSettings(max_new_tokens=ANSWER_TOKENS, min_new_tokens=ANSWER_TOKENS)


def run_ours(loaded, video) -> list[dict]:
    """One conversation on a fresh engine (empty caches); per step: ttft, first piece, stats delta, history."""
    engine = Engine(loaded)
    session = engine.new_session()
    results = []
    with first_token_clock(engine_module) as marks:
        for i, (label, question, shape, alpha) in enumerate(STEPS):
            before = dict(engine.stats)
            history = list(session.turns)
            t0 = time.perf_counter()
            if i == 0:
                session.set_video(video, NUM_FRAMES)
            first_piece = None
            for piece in session.ask(question, strategy=engine.strategy(shape), lora_alpha=alpha, settings=SETTINGS):
                if first_piece is None and piece.strip():
                    first_piece = time.perf_counter() - t0
            times = marks[-1]
            decode = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
            results.append({
                "ttft": times[0] - t0, "first_piece": first_piece, "decode_tok_s": decode,
                "stats": {k: engine.stats[k] - before.get(k, 0) for k in STATS}, "history": history,
            })
    return results


@torch.inference_mode()
def official_turn(loaded, video, history, question, shape, alpha) -> float:
    """Seconds to the first token id when a turn redoes everything (see the module docstring)."""
    model, tok = loaded.model, loaded.tokenizer
    fmt = engine_module.chat_format_for(tok)
    t0 = time.perf_counter()
    clip = official_decode(video, NUM_FRAMES)
    pixels = clip_preprocess(clip.frames)  # (T, 3, 336, 336)
    loaded.set_lora_alpha(alpha)  # (the official demo needs a restart for this)
    feats = model.encode_frames(pixels)  # (T, 576, D)
    strategy = parse(shape)
    extra = model.encode_frames(strategy.frame_images(clip.frames)) if strategy.changes_frames else None  # (K, 576, D)
    tokens = model.pool(feats, strategy, extra)  # (N, D)
    fitted = fit_prompt(tok, fmt, engine_module.DEFAULT_SYSTEM, history, question, n_video_tokens=tokens.shape[0],
                        context=loaded.context_length, max_new_tokens=ANSWER_TOKENS)
    ids = tok(fitted.text, add_special_tokens=True, return_tensors="pt").input_ids
    expanded, _ = model.expand_image_token(ids, tokens.shape[0])  # (1, S)
    embeds = model.embed(expanded.to(model.device), tokens)  # (1, S, D)
    out = model.language_model(inputs_embeds=embeds, use_cache=True, logits_to_keep=1)
    int(out.logits[0, -1].argmax())
    return time.perf_counter() - t0


def bench_model(kind: str, repeats: int) -> str:
    from pllava_demo.network.checkpoint import load_pllava

    path = checkpoint(kind)
    video = bench_video()
    loaded = load_pllava(path, device="cpu", quantization="none")
    n_params = sum(p.numel() for p in loaded.model.parameters())
    run_ours(loaded, video)  # warm-up (first-call allocations, oneDNN kernels)
    ours_runs = [run_ours(loaded, video) for _ in range(repeats)]
    official = [[] for _ in STEPS]
    history = ours_runs[0]
    for _ in range(repeats):
        for i, (label, question, shape, alpha) in enumerate(STEPS):
            official[i].append(official_turn(loaded, video, history[i]["history"], question, shape, alpha))
    first = median(r[0]["ttft"] for r in ours_runs)
    rows = []
    for i, (label, question, shape, alpha) in enumerate(STEPS):
        ttft = median(r[i]["ttft"] for r in ours_runs)
        pieces = [r[i]["first_piece"] for r in ours_runs if r[i]["first_piece"] is not None]
        piece = f"{median(pieces):.3f}" if pieces else "n/a"
        off = median(official[i])
        st = ours_runs[-1][i]["stats"]
        s = parse(shape)
        shown = "x".join(map(str, s.shape)) if isinstance(s, PllavaPooling) else s.name
        rows.append([label, shown, f"{alpha:g}", f"{ttft:.3f}", f"{ttft / first:.3f}x",
                     f"{off:.3f}", f"{ttft / off:.3f}x", piece, st["vision_calls"], st["videos_decoded"],
                     st["prefill_tokens"], st["reused_tokens"]])
    decode = median(r[1]["decode_tok_s"] for r in ours_runs)
    head = (f"### {kind} model ({n_params / 1e6:.1f} M parameters, {loaded.dtype}, CPU); {NUM_FRAMES} frames of "
            f"{video.name}; answers {ANSWER_TOKENS} tokens; median of {repeats}; decode {decode:.1f} tokens/s\n")
    if kind == "small":
        head += ("(the small model's vocab is the real 32064 but its test tokenizer has about 410 ids: most sampled ids "
                 "decode to no text, so 'first text' is n/a where no visible piece came)\n")
    return head + "\n" + table(
        ["step", "strategy", "alpha", "ours TTFT (s)", "ours / ours first", "official TTFT (s)", "ours / official",
         "ours first text (s)", "vision calls", "videos decoded", "prefill tokens", "reused tokens"], rows)


def bench_alpha(kinds) -> str:
    """Cost of an alpha change: LoadedPllava.set_lora_alpha (walks model.modules()) and the engine's
    per-step _apply_alpha (a pre-collected list), on the bench models and a 7B-shaped meta model."""
    from accelerate import init_empty_weights

    from pllava_demo.network.checkpoint import load_pllava
    from pllava_demo.network.families import PLLAVA_RELEASE
    from pllava_demo.network.lora import LoRALinear, attach_lora, set_lora_alpha
    from pllava_demo.network.model import PllavaModel

    from _common import PLLAVA_7B, _llm_and_clip_configs

    def clock(fn, n=50):
        ts = []
        for k in range(n):
            t0 = time.perf_counter()
            fn(4.0 if k % 2 else 20.0)
            ts.append(time.perf_counter() - t0)
        return median(ts)

    rows = []
    for kind in kinds:
        loaded = load_pllava(checkpoint(kind), device="cpu", quantization="none")
        layers = [m for m in loaded.model.modules() if isinstance(m, LoRALinear)]
        shim = SimpleNamespace(_lora_layers=layers)
        rows.append([kind, len(layers), f"{clock(loaded.set_lora_alpha) * 1e3:.3f}",
                     f"{clock(lambda a: Engine._apply_alpha(shim, a)) * 1e3:.4f}"])
    from pllava_demo.config import VideoModelSpec

    vision, text = _llm_and_clip_configs(PLLAVA_7B, PLLAVA_7B.vocab)
    with init_empty_weights():
        model = PllavaModel(VideoModelSpec(image_token_index=32000, has_lora=True, lora_rank=128), vision, text)
        attach_lora(model.language_model, 128, 4.0, PLLAVA_RELEASE.lora_targets)
    layers = [m for m in model.modules() if isinstance(m, LoRALinear)]
    shim = SimpleNamespace(_lora_layers=layers)
    rows.append(["7B shapes (meta device)", len(layers), f"{clock(lambda a: set_lora_alpha(model, a)) * 1e3:.3f}",
                 f"{clock(lambda a: Engine._apply_alpha(shim, a)) * 1e3:.4f}"])
    return "### changing LoRA alpha (median of 50 changes)\n\n" + table(
        ["model", "LoRA layers", "set_lora_alpha (ms)", "engine _apply_alpha (ms)"], rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["tiny", "small"], choices=["tiny", "small"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: on a shared, oversubscribed CPU two threads ran 2-8x slower)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"# bench_turns on {machine()}, {torch.get_num_threads()} torch threads; load average at start {load_average()}\n")
    for kind in args.models:
        print(bench_model(kind, args.repeats), flush=True)
        print(f"\n(load average after: {load_average()})\n", flush=True)
    print(bench_alpha(args.models))


if __name__ == "__main__":
    main()
