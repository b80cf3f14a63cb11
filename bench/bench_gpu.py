"""Benchmark (CUDA): PLLaVA-7B shapes with random weights through OUR loader and engine, 4-bit nf4 and
bf16, beside transformers' own generate() on the same bf16 weights (the official pipeline).

A random checkpoint with the real PLLaVA-7B shapes in the official on-disk layout (CLIP ViT-L/14-336
24 x 1024, projector 1024 -> 4096, Llama-7B 32 x 4096, MLP 11008, vocab 32064, LoRA r=128 on q/v,
PEFT-wrapped keys, bf16 safetensors shards, about 14.5 GB) is written with its random numbers drawn
on the GPU, then loaded with pllava_demo.network.checkpoint.load_pllava (so the 4-bit path measured is ours).
Frames are synthetic CLIP-normalised pixels: the GPU machine has no PyAV, and the CPU benchmarks
cover decoding. Measured, per weights kind:

  load         seconds; GPU memory after and peak during the load; peak host RSS (and its anonymous
               part) during the load, sampled from /proc
  per (frames, pooling)
               CLIP seconds; TTFT with the video encoded; first TTFT = CLIP + TTFT (upload and ask);
               follow-up TTFT (KV cache re-used) and follow-up / first; decode tokens/s over --tokens
               forced tokens; the bytes one decode step reads (LLM weights as stored + LoRA + lm_head
               + the KV cache at the answer's mean length), the floor tokens/s that the measured copy
               bandwidth allows for them, the achieved share; peak GPU memory (allocated and reserved)
  concurrency  total tokens/s with N sessions asking at once: "batched" (the scheduler decodes them
               as one batch), "turns" (Engine(batching=False): one row per step, as on ZeroGPU) and
               "HF generate" (transformers' batched generate on the same N prompts, left-padded)
  chapters     long videos' chapter captions (chapters/captions.py): N chapters of 8 frames in one batch
               through the decode loop against one by one (target: batched >= 2x)
  official     (--official, bf16) the same prompts through language_model.generate(): CLIP and a full
               prefill every turn, transformers' DynamicCache (see _gpu_official.py)

Subcommands (bench/gpu_check.sh runs them as separate, time-limited stages):

    python bench/bench_gpu.py write --dir /tmp/p7b
    python bench/bench_gpu.py measure --dir /tmp/p7b --quant 4bit --json out/4bit.json
    python bench/bench_gpu.py measure --dir /tmp/p7b --quant none --official --json out/bf16.json
    python bench/bench_gpu.py summary out/4bit.json out/bf16.json --md out/summary.md
    python bench/bench_gpu.py            # all of it in one process on a temporary checkpoint

Without CUDA (and without --device cpu) it prints "not measured: no CUDA device" and exits 0.
`--device cpu --scale 0.0625` runs the same code on a 1/16-scale model on CPU: a dry run proving the
script; its numbers mean nothing. The JSON is rewritten after every part, so a stage killed by its
time limit keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path

import torch

from _common import (PLLAVA_7B, PeakHostMemory, at_once, copy_bandwidth, drain, first_token_clock, machine, median,
                     write_random_checkpoint)

import pllava_demo.chat.engine as engine_module  # noqa: E402
from pllava_demo.config import GenerationSettings  # noqa: E402
from pllava_demo.chat.engine import Engine  # noqa: E402
from pllava_demo.chat.features import VideoFeatures  # noqa: E402

CONFIGS = [(16, (16, 12, 12)), (16, (16, 6, 6)), (32, (16, 12, 12)), (32, (32, 6, 6))]  # (frames, pooling)
QUESTION = "What is happening in this video? Describe the background, characters and actions in detail."
FOLLOW_UP = "What does the man hold and what does he do with it?"
# Datasheet peak DRAM bandwidth (bytes/s) by device name, shown beside the measured copy bandwidth.
BANDWIDTH = [("H200", 4.8e12), ("H100 PCIe", 2.0e12), ("H100", 3.35e12), ("A100-SXM4-80GB", 2.04e12),
             ("A100 80GB PCIe", 1.94e12), ("A100", 1.555e12), ("L40S", 0.864e12), ("L4", 0.3e12),
             ("A10G", 0.6e12), ("A10", 0.6e12), ("T4", 0.32e12), ("V100", 0.9e12)]


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def gib(nbytes: float) -> float:
    return nbytes / 2**30


def datasheet_bandwidth(dev: torch.device) -> float | None:
    if dev.type != "cuda":
        return None
    name = torch.cuda.get_device_name(dev)
    return next((bw for key, bw in BANDWIDTH if key in name), None)


def weight_bytes_per_step(loaded) -> int:
    """Bytes of LLM weights one decode step reads: every parameter as stored (a 4-bit weight is its
    packed uint8 plus its quantization state), except the embedding table (one row is read)."""
    lm = loaded.model.language_model
    embed = lm.get_input_embeddings().weight
    total = 0
    for p in lm.parameters():
        if p is embed:
            continue
        total += p.numel() * p.element_size()
        qs = getattr(p, "quant_state", None)
        if qs is not None:
            for t in (getattr(qs, "absmax", None), getattr(getattr(qs, "state2", None), "absmax", None)):
                if isinstance(t, torch.Tensor):
                    total += t.numel() * t.element_size()
    return total


def kv_bytes_per_token(loaded) -> int:
    """Keys + values of one token over all layers, in the compute dtype."""
    cfg = loaded.model.text_config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    return 2 * cfg.num_hidden_layers * kv_heads * head_dim * torch.finfo(loaded.dtype).bits // 8


def synthetic_pixels(frames: int, seed: int) -> torch.Tensor:
    return torch.randn(frames, 3, 336, 336, generator=torch.Generator().manual_seed(seed))  # (T, 3, 336, 336)


def encode(engine, frames: int, dev, seed: int = 0) -> tuple[VideoFeatures, float]:
    """Encode synthetic frames; each call is a new 'video' (its own content key, so nothing pooled is
    re-used across calls). Returns the features and the CLIP + projector seconds."""
    pixels = synthetic_pixels(frames, seed)
    sync(dev)
    t0 = time.perf_counter()
    feats = engine._encode(pixels)  # (T, 576, D)
    sync(dev)
    seconds = time.perf_counter() - t0
    return as_video(feats, frames), seconds


def synthetic_clip(key: str, frames: int):
    """A Clip of no real frames (frames/batch.py imports no PyAV, which the GPU machine lacks)."""
    import numpy as np

    from pllava_demo.frames.batch import Clip

    return Clip(frames=np.zeros((0, 1, 1, 3), np.uint8), timestamps=(), indices=(), duration=0.0, fps=0.0,
                width=336, height=336, n_total=frames, source="synthetic", content_key=key)


def as_video(feats: torch.Tensor, frames: int) -> VideoFeatures:
    clip = synthetic_clip(f"synthetic-{frames}-{uuid.uuid4().hex}", frames)
    return VideoFeatures(clip=clip, features=feats, num_frames=frames)


def measure_config(engine, frames, shape, tokens, repeats, dev, bandwidth) -> dict:
    """TTFTs (median of `repeats` after a warm-up, 1-token answers), then one answer of `tokens` tokens
    for the decode speed; peak GPU memory over all of it."""
    one = GenerationSettings(max_new_tokens=1, min_new_tokens=1)
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    clip_s, ttft, follow, follow_prefill = [], [], [], []
    with first_token_clock(engine_module) as marks:
        for rep in range(repeats + 1):  # rep 0 warms kernels and the allocator up
            vf, seconds = encode(engine, frames, dev, seed=rep)
            session = engine.new_session()
            session.video = vf
            t0 = time.perf_counter()
            drain(session.ask(QUESTION, pooling_shape=shape, settings=one))
            first = marks[-1][0] - t0
            before = engine.stats["prefill_tokens"]
            t1 = time.perf_counter()
            drain(session.ask(FOLLOW_UP, pooling_shape=shape, settings=one))
            second = marks[-1][0] - t1
            session.close()
            if rep:
                clip_s.append(seconds)
                ttft.append(first)
                follow.append(second)
                follow_prefill.append(engine.stats["prefill_tokens"] - before)
        vf, _ = encode(engine, frames, dev, seed=99)
        session = engine.new_session()
        session.video = vf
        before = engine.stats["prefill_tokens"]
        drain(session.ask(QUESTION, pooling_shape=shape,
                          settings=GenerationSettings(max_new_tokens=tokens, min_new_tokens=tokens)))
        prompt_tokens = engine.stats["prefill_tokens"] - before
        times = marks[-1]
        session.close()
    decoded = len(times) - 1
    decode = decoded / (times[-1] - times[0]) if decoded > 0 else float("nan")
    mean_context = prompt_tokens + (len(times) + 1) / 2  # the KV length a decode step reads, on average
    step_bytes = weight_bytes_per_step(engine.loaded) + kv_bytes_per_token(engine.loaded) * mean_context
    floor = bandwidth / step_bytes if bandwidth else None
    first_ttft = median(clip_s) + median(ttft)
    out = {"frames": frames, "shape": list(shape), "visual_tokens": math.prod(shape), "prompt_tokens": prompt_tokens,
           "clip_s": median(clip_s), "ttft_s": median(ttft), "first_ttft_s": first_ttft, "follow_s": median(follow),
           "follow_over_first": median(follow) / first_ttft, "follow_prefill_tokens": median(follow_prefill),
           "decode_tokens": decoded, "decode_tok_s": decode, "step_bytes": step_bytes,
           "floor_tok_s": floor, "floor_share": decode / floor if floor else None}
    if dev.type == "cuda":
        out["peak_gib"] = gib(torch.cuda.max_memory_allocated(dev))
        out["peak_reserved_gib"] = gib(torch.cuda.max_memory_reserved(dev))
    return out


@torch.inference_mode()
def measure_hf_batched(engine, sessions: int, tokens: int, dev, frames=16, shape=(16, 12, 12)) -> dict:
    """transformers' generate on `sessions` copies of the prompt at once (same length: no padding)."""
    from pllava_demo.chat.prompt import fit_prompt

    feats = encode(engine, frames, dev, seed=7)[0].features
    model = engine.model
    vt = model.pool(feats, shape)  # (N, D)
    fitted = fit_prompt(engine.tokenizer, engine.format, engine_module.DEFAULT_SYSTEM, (), QUESTION,
                        n_video_tokens=vt.shape[0], context=engine.loaded.context_length, max_new_tokens=tokens)
    expanded, _ = model.expand_image_token(torch.tensor([list(fitted.ids)]), vt.shape[0])
    embeds = model.embed(expanded.to(model.device), vt).expand(sessions, -1, -1).contiguous()  # (B, S, D)
    sync(dev)
    t0 = time.perf_counter()
    out = model.language_model.generate(inputs_embeds=embeds, max_new_tokens=tokens, min_new_tokens=tokens,
                                        do_sample=False, pad_token_id=0)
    sync(dev)
    wall = time.perf_counter() - t0
    return {"sessions": sessions, "mode": "HF generate", "tokens": int(out.numel()), "wall_s": wall,
            "tok_s": out.numel() / wall, "mean_ttft_s": None, "max_ttft_s": None, "errors": []}


def measure_concurrency(engine, sessions: int, tokens: int, dev, frames=16, shape=(16, 12, 12)) -> dict:
    """`sessions` threads ask at once, each about its own video (one encoded tensor shared under
    distinct keys, so each session pools and prefills its own prompt); total tokens over wall time."""
    feats = encode(engine, frames, dev, seed=7)[0].features
    settings = GenerationSettings(max_new_tokens=tokens, min_new_tokens=tokens)
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    chats = []
    for _ in range(sessions):
        s = engine.new_session()
        s.video = as_video(feats, frames)
        chats.append(s)
    errors = []

    def ask(session):
        try:
            drain(session.ask(QUESTION, pooling_shape=shape, settings=settings))
        except Exception as e:  # reported in the table, not swallowed
            errors.append(f"{type(e).__name__}: {e}")

    with first_token_clock(engine_module) as marks:
        t0, ends = at_once([lambda s=s: ask(s) for s in chats])
        wall = max(ends) - t0
    for s in chats:
        s.close()
    total = sum(len(m) for m in marks)
    ttfts = [m[0] - t0 for m in marks if m]
    out = {"sessions": sessions, "mode": "batched" if engine.batching else "turns", "tokens": total, "wall_s": wall, "tok_s": total / wall,
           "mean_ttft_s": sum(ttfts) / len(ttfts) if ttfts else None, "max_ttft_s": max(ttfts, default=None),
           "errors": errors}
    if dev.type == "cuda":
        out["peak_gib"] = gib(torch.cuda.max_memory_allocated(dev))
    return out


def measure_chapter_captions(loaded, chapters: int, tokens: int, dev, frames: int = 8) -> dict:
    """Long videos' chapter captions (pllava_demo/chapters/captions.py: its captioner, its prompt, each
    chapter's own 8 frames): `chapters` captioned in one batch through the one decode loop, against the
    same chapters one by one. Synthetic pixels stand for the decoded chapters (no PyAV here)."""
    from pllava_demo.caption.captioner import Prepared
    from pllava_demo.caption.records import CaptionJob
    from pllava_demo.chapters.captions import chapter_captioner
    from pllava_demo.chapters.settings import ChapterSettings

    settings = ChapterSettings(caption_frames=frames, caption_tokens=tokens, caption_min_tokens=tokens)
    captioner = chapter_captioner(loaded, settings)
    items = [Prepared(CaptionJob(f"chapter-{i}"), synthetic_pixels(frames, 100 + i), duration=60.0)
             for i in range(chapters)]
    captioner.caption_batch(items[:1])  # warm-up: kernels, allocator
    sync(dev)
    t0 = time.perf_counter()
    alone = [captioner.caption_batch([item])[0] for item in items]
    sync(dev)
    one_by_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    batched = captioner.caption_batch(items)
    sync(dev)
    together = time.perf_counter() - t0
    errors = [r["error"] for r in alone + batched if r.get("error")]
    return {"chapters": chapters, "frames": frames, "tokens": tokens, "one_by_one_s": one_by_one,
            "batched_s": together, "speedup": one_by_one / together if together else None,
            "same_greedy": [r.get("caption") for r in alone] == [r.get("caption") for r in batched], "errors": errors}


def versions() -> dict:
    import transformers

    v = {"torch": torch.__version__, "transformers": transformers.__version__, "python": sys.version.split()[0]}
    try:
        import bitsandbytes

        v["bitsandbytes"] = bitsandbytes.__version__
    except Exception as e:  # absent or broken: say which
        v["bitsandbytes"] = f"not importable ({type(e).__name__})"
    return v


class Results:
    """A dict written to its JSON file after every part, and the part runner that records failures."""

    def __init__(self, path: Path | None, **meta):
        self.path = path
        self.data = {**meta, "errors": {}}
        self.save()

    def save(self) -> None:
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.data, indent=1, default=str))

    def part(self, name: str, fn, *args):
        print(f"-- {name}", flush=True)
        try:
            value = fn(*args)
        except Exception as e:  # one failing part must not lose the others
            traceback.print_exc()
            self.data["errors"][name] = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
            self.save()
            return None
        print(f"   {json.dumps(value, default=str)[:600]}", flush=True)
        self.save()
        return value


def size_for(scale: float):
    return PLLAVA_7B if scale >= 1 else PLLAVA_7B.scaled(scale)


def cmd_write(args) -> int:
    folder = args.dir
    if (folder / "config.json").exists():
        print(f"{folder} already holds a checkpoint")
        return 0
    tmp = folder.with_name(folder.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.perf_counter()
    write_random_checkpoint(tmp, size_for(args.scale), device=args.device)
    tmp.rename(folder)
    gb = sum(f.stat().st_size for f in folder.glob("*.safetensors")) / 1e9
    print(f"wrote {gb:.2f} GB of random bf16 safetensors to {folder} in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_measure(args) -> int:
    from pllava_demo.network.checkpoint import load_pllava

    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else machine()
    res = Results(args.json, quant=args.quant, device=name, device_type=dev.type, scale=args.scale,
                  size=str(size_for(args.scale)), tokens=args.tokens, repeats=args.repeats, versions=versions())
    print(f"# bench_gpu measure {args.quant} on {name}", flush=True)
    if dev.type == "cuda":
        torch.zeros(1, device=dev)  # the CUDA context is made before the host-memory baseline
    bw = res.part("bandwidth", lambda: {"copy_bytes_s": copy_bandwidth(dev, 2 << 30 if dev.type == "cuda" else 64 << 20),
                                       "datasheet_bytes_s": datasheet_bandwidth(dev)})
    res.data["bandwidth"] = bw

    def load():
        if dev.type == "cuda":
            torch.cuda.empty_cache()  # the bandwidth buffers' cached blocks must not count as the model's
            torch.cuda.reset_peak_memory_stats(dev)
        dtype = None if dev.type == "cuda" else torch.bfloat16  # bf16 on CPU too, as on the GPU
        with PeakHostMemory() as host:
            t0 = time.perf_counter()
            loaded = load_pllava(args.dir, device=args.device, quantization=args.quant, dtype=dtype)
            sync(dev)
            seconds = time.perf_counter() - t0
        label = "4-bit nf4" if loaded.quantization == "4bit" else str(loaded.dtype).replace("torch.", "")
        info = {"label": label, "load_s": seconds, "host_before_gib": host.before_gib, "host_peak_gib": host.peak_gib,
                "host_peak_anon_gib": host.peak_anon_gib, "weight_step_bytes": weight_bytes_per_step(loaded)}
        if dev.type == "cuda":
            info.update(gpu_after_gib=gib(torch.cuda.memory_allocated(dev)),
                        gpu_peak_gib=gib(torch.cuda.max_memory_allocated(dev)),
                        gpu_reserved_gib=gib(torch.cuda.memory_reserved(dev)))
        return loaded, info

    got = res.part("load", load)
    if got is None:
        return 1
    loaded, res.data["load"] = got
    res.save()
    engine = Engine(loaded)
    copy_bw = (bw or {}).get("copy_bytes_s")
    res.data["configs"] = []
    for frames, shape in CONFIGS[: args.configs]:
        r = res.part(f"config {frames} frames {'x'.join(map(str, shape))}", measure_config, engine, frames, shape,
                     args.tokens, args.repeats, dev, copy_bw)
        if r:
            res.data["configs"].append(r)
            res.save()
    res.data["concurrency"] = []
    turns = Engine(loaded, batching=False)
    for n in args.concurrency:
        for label, fn, eng in (("batched", measure_concurrency, engine), ("turns", measure_concurrency, turns),
                               ("HF generate", measure_hf_batched, engine)):
            r = res.part(f"concurrency {n} {label}", fn, eng, n, args.concurrency_tokens, dev)
            if r:
                res.data["concurrency"].append(r)
                res.save()
    res.data["chapter_captions"] = []
    for n in args.chapters:
        r = res.part(f"chapter captions {n}", measure_chapter_captions, loaded, n, args.concurrency_tokens, dev)
        if r:
            res.data["chapter_captions"].append(r)
            res.save()
    if args.official:
        from _gpu_official import measure_official

        res.data["official"] = res.part("official generate()", measure_official, loaded, engine,
                                        synthetic_pixels(16, 0), QUESTION, FOLLOW_UP, args.tokens, args.repeats)
        res.save()
    return 1 if res.data["errors"] else 0


def cmd_summary(args) -> int:
    from _gpu_report import summary

    text = summary(args.results, stages=args.stages, junit=args.junit)
    print(text)
    if args.md:
        args.md.write_text(text + "\n")
    return 0


def cmd_all(args) -> int:
    folder = Path(tempfile.mkdtemp(prefix="pllava7b-"))
    out = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    try:
        args.dir = folder / "ckpt"
        cmd_write(args)
        files = []
        for quant in ("4bit", "none"):
            args.quant, args.official, args.json = quant, quant == "none", out / f"{quant}.json"
            cmd_measure(args)
            files.append(args.json)
        args.results, args.stages, args.junit, args.md = files, None, None, None
        return cmd_summary(args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command")

    def common(q):
        q.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
        q.add_argument("--scale", type=float, default=1.0, help="shrink widths and depths (CPU dry runs)")

    def measuring(q):
        q.add_argument("--tokens", type=int, default=128, help="forced answer length for the decode speed")
        q.add_argument("--repeats", type=int, default=3)
        q.add_argument("--configs", type=int, default=len(CONFIGS), help="only the first N (frames, pooling)")
        q.add_argument("--concurrency", type=int, nargs="*", default=[1, 4, 8], help="sessions at once")
        q.add_argument("--concurrency-tokens", type=int, default=32, help="answer length per session")
        q.add_argument("--chapters", type=int, nargs="*", default=[8],
                       help="chapter captions batched against one by one, for these chapter counts")

    w = sub.add_parser("write", help="write the random checkpoint")
    common(w)
    w.add_argument("--dir", type=Path, required=True)
    m = sub.add_parser("measure", help="load one weights kind and measure it")
    common(m)
    measuring(m)
    m.add_argument("--dir", type=Path, required=True)
    m.add_argument("--quant", choices=["4bit", "none"], required=True, help="'none' = bf16")
    m.add_argument("--official", action="store_true", help="also transformers' generate() on these weights")
    m.add_argument("--json", type=Path)
    s = sub.add_parser("summary", help="tables and targets from measure's JSON files")
    s.add_argument("results", type=Path, nargs="+")
    s.add_argument("--stages", type=Path, help="gpu_check.sh's stages.tsv")
    s.add_argument("--junit", type=Path, help="pytest's junit XML")
    s.add_argument("--md", type=Path)
    common(p)
    measuring(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    needs_cuda = args.command != "summary" and getattr(args, "device", "cuda") == "cuda"
    if needs_cuda and not torch.cuda.is_available():
        print("not measured: no CUDA device")
        return 0
    return {"write": cmd_write, "measure": cmd_measure, "summary": cmd_summary}.get(args.command, cmd_all)(args)


if __name__ == "__main__":
    sys.exit(main())
