"""Benchmark (CUDA): PLLaVA-7B shapes with random weights through OUR loader, 4-bit nf4 and bf16.

Writes a random checkpoint with the real PLLaVA-7B shapes in the official on-disk layout (CLIP
ViT-L/14-336 24 layers x 1024, projector 1024 -> 4096, Llama-7B 32 layers x 4096, MLP 11008,
vocab 32064, LoRA r=128 on q_proj/v_proj, PEFT-wrapped keys, bf16 safetensors shards, about
14.5 GB) to a temporary folder, then loads it with pllava_demo.checkpoint.load_pllava (so the
4-bit path measured is ours) and measures, per (frames, pooling shape):

  CLIP       encode_frames on T random CLIP-normalised frames (no video decoding: the GPU
             machine has no PyAV; the CPU benchmarks cover decoding)
  TTFT       ask() -> first token id, video already encoded (the chat after an upload)
  cold TTFT  CLIP + TTFT (upload and question at once)
  follow-up  TTFT of a second question that re-uses the KV cache
  decode     tokens/s over --tokens forced tokens (min_new_tokens), and the memory-bandwidth
             floor: bytes one decode step must read (LLM weights as stored + LoRA + lm_head +
             the KV cache at that length) / the GPU's peak bandwidth; "% of floor" = achieved
             tokens/s / floor tokens/s
  memory     torch.cuda.max_memory_allocated over load, and over each configuration

Without CUDA it prints "not measured: no CUDA device" and exits 0. `--device cpu --scale 0.0625`
runs the same code path on a scaled-down model on CPU (a dry run proving the script; its numbers
mean nothing).

    python bench/bench_gpu.py                         # on a CUDA machine (about 5-8 min)
    python bench/bench_gpu.py --quant 4bit --dir /tmp/p7b --keep   # split runs, re-using the files
    python bench/bench_gpu.py --device cpu --scale 0.0625 --tokens 8   # CPU dry run
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from _common import PLLAVA_7B, first_token_clock, machine, median, table, write_random_checkpoint

import pllava_demo.engine as engine_module  # noqa: E402
from pllava_demo.config import GenerationSettings  # noqa: E402
from pllava_demo.engine import Engine, VideoFeatures  # noqa: E402

CONFIGS = [(16, (16, 12, 12)), (16, (16, 6, 6)), (32, (16, 12, 12)), (32, (32, 6, 6))]  # (frames, pooling)
QUESTION = "What is happening in this video? Describe the background, characters and actions in detail."
FOLLOW_UP = "What does the man hold and what does he do with it?"
# Peak DRAM bandwidth (bytes/s) by device name; --bandwidth overrides.
BANDWIDTH = [("H200", 4.8e12), ("H100 PCIe", 2.0e12), ("H100", 3.35e12), ("A100-SXM4-80GB", 2.04e12),
             ("A100 80GB PCIe", 1.94e12), ("A100", 1.555e12), ("L40S", 0.864e12), ("L4", 0.3e12),
             ("A10G", 0.6e12), ("A10", 0.6e12), ("T4", 0.32e12), ("V100", 0.9e12)]


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def peak_bandwidth(dev: torch.device, override: float | None) -> float | None:
    if override:
        return override * 1e9
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


def kv_bytes(cache) -> int:
    total = 0
    for layer in getattr(cache, "layers", []):
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
    return total


def synthetic_video(engine, frames: int, dev) -> tuple[VideoFeatures, float]:
    """Encode random CLIP-normalised frames (no decoder on the GPU machine); returns features and CLIP seconds."""
    pixels = torch.randn(frames, 3, 336, 336, generator=torch.Generator().manual_seed(frames))  # (T, 3, 336, 336)
    sync(dev)
    t0 = time.perf_counter()
    with torch.inference_mode():
        feats = engine.model.encode_frames(pixels)  # (T, 576, D)
    sync(dev)
    seconds = time.perf_counter() - t0
    clip = SimpleNamespace(content_key=f"synthetic-{frames}", frames=None, timestamps=(), source="synthetic")
    return VideoFeatures(clip=clip, features=feats, num_frames=frames), seconds


def one_config(engine, frames, shape, tokens, repeats, dev, bandwidth) -> dict:
    settings = GenerationSettings(max_new_tokens=tokens, min_new_tokens=tokens)
    short = GenerationSettings(max_new_tokens=1, min_new_tokens=1)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    synthetic_video(engine, frames, dev)  # warm-up: kernels, allocator
    clip_s, ttft, follow = [], [], []
    decode = None
    with first_token_clock(engine_module) as marks:
        for rep in range(repeats + 1):  # rep 0 is a warm-up
            vf, seconds = synthetic_video(engine, frames, dev)
            session = engine.new_session()
            session.video = vf
            t0 = time.perf_counter()
            for _ in session.ask(QUESTION, pooling_shape=shape, settings=settings if rep == repeats else short):
                pass
            first = marks[-1][0] - t0
            kv = next((engine.kv_budget.get(k) for k in engine.kv_budget.keys() if k[0] == session.id), None)
            if rep == repeats:  # the last run also decodes `tokens` tokens
                times = marks[-1]
                decode = (len(times) - 1) / (times[-1] - times[0])
                ctx_bytes = kv_bytes(kv.cache) if kv else 0
            t1 = time.perf_counter()
            for _ in session.ask(FOLLOW_UP, pooling_shape=shape, settings=short):
                pass
            second = marks[-1][0] - t1
            session.close()
            if rep:
                clip_s.append(seconds)
                ttft.append(first)
                follow.append(second)
    n_tokens = shape[0] * shape[1] * shape[2]
    step_bytes = weight_bytes_per_step(engine.loaded) + ctx_bytes
    floor = bandwidth / step_bytes if bandwidth else None
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else float("nan")
    return {"frames": frames, "shape": shape, "visual": n_tokens, "clip": median(clip_s), "ttft": median(ttft),
            "follow": median(follow), "decode": decode, "step_gb": step_bytes / 1e9, "floor": floor, "peak": peak}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--scale", type=float, default=1.0, help="shrink widths and depths (CPU dry runs)")
    p.add_argument("--quant", nargs="+", default=["4bit", "none"], choices=["4bit", "none"],
                   help="quantization modes to load, in order ('none' = bf16 on CUDA)")
    p.add_argument("--tokens", type=int, default=128, help="forced answer length for the decode speed")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dir", type=Path, help="checkpoint folder (written if it has no config.json)")
    p.add_argument("--keep", action="store_true", help="keep the checkpoint folder")
    p.add_argument("--bandwidth", type=float, help="peak memory bandwidth in GB/s (default: from the GPU name)")
    p.add_argument("--configs", type=int, default=len(CONFIGS), help="run only the first N (frames, pooling) configs")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("not measured: no CUDA device")
        return 0
    from pllava_demo.checkpoint import load_pllava

    dev = torch.device(args.device)
    size = PLLAVA_7B if args.scale >= 1 else PLLAVA_7B.scaled(args.scale)
    where = dev.type if dev.type == "cuda" else "cpu"
    print(f"# bench_gpu: {size}\n# on {torch.cuda.get_device_name(dev) if dev.type == 'cuda' else machine()}\n")
    folder = args.dir or Path(tempfile.mkdtemp(prefix="pllava7b-"))
    try:
        if not (folder / "config.json").exists():
            t0 = time.perf_counter()
            write_random_checkpoint(folder, size, device=where)
            gb = sum(f.stat().st_size for f in folder.glob("*.safetensors")) / 1e9
            print(f"wrote {gb:.1f} GB of random bf16 safetensors to {folder} in {time.perf_counter() - t0:.0f} s", flush=True)
        bandwidth = peak_bandwidth(dev, args.bandwidth)
        load_rows, rows = [], []
        for quant in args.quant:
            if dev.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(dev)
            t0 = time.perf_counter()
            dtype = None if dev.type == "cuda" else torch.bfloat16
            loaded = load_pllava(folder, device=args.device, quantization=quant, dtype=dtype)
            sync(dev)
            load_s = time.perf_counter() - t0
            label = "4-bit nf4" if quant == "4bit" else str(loaded.dtype).replace("torch.", "")
            if dev.type == "cuda":
                load_rows.append([label, f"{load_s:.0f}", f"{torch.cuda.memory_allocated(dev) / 2**30:.2f}",
                                  f"{torch.cuda.max_memory_allocated(dev) / 2**30:.2f}"])
            else:
                load_rows.append([label, f"{load_s:.1f}", "n/a", "n/a"])
            engine = Engine(loaded)
            for frames, shape in CONFIGS[: args.configs]:
                r = one_config(engine, frames, shape, args.tokens, args.repeats, dev, bandwidth)
                floor = f"{r['floor']:.0f}" if r["floor"] else "n/a"
                share = f"{100 * r['decode'] / r['floor']:.0f}%" if r["floor"] else "n/a"
                rows.append([label, r["frames"], "x".join(map(str, r["shape"])), r["visual"], f"{r['clip']:.3f}",
                             f"{r['ttft']:.3f}", f"{r['clip'] + r['ttft']:.3f}", f"{r['follow']:.3f}",
                             f"{r['follow'] / r['ttft']:.2f}x", f"{r['decode']:.1f}", f"{r['step_gb']:.2f}", floor, share,
                             f"{r['peak']:.2f}"])
                print(rows[-1], flush=True)
            del engine, loaded
        print("\n## loading\n")
        print(table(["weights", "load (s)", "GPU memory after load (GiB)", "peak during load (GiB)"], load_rows))
        bw = f"{bandwidth / 1e9:.0f} GB/s peak" if bandwidth else "no peak bandwidth known"
        print(f"\n## chat ({args.tokens} decode tokens, median of {args.repeats}; bandwidth floor from {bw})\n")
        print(table(["weights", "frames", "pooling", "visual tokens", "CLIP (s)", "TTFT (s)", "cold TTFT (s)",
                     "follow-up TTFT (s)", "follow-up / TTFT", "decode tok/s", "GB read per step",
                     "floor tok/s", "% of floor", "peak GPU mem (GiB)"], rows))
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
