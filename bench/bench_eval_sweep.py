"""The LoRA-alpha sweep of `python -m pllava_demo eval` against the official evaluation's way of getting
the same curve: one run per alpha, each decoding and CLIP-encoding every video again and answering one
question at a time.

    python bench/bench_eval_sweep.py                        # tiny random checkpoint on CPU, 8 videos
    python bench/bench_eval_sweep.py --model small --videos 8
    python bench/bench_eval_sweep.py --model /path/to/pllava-7b --device cuda --videos 32

Both sides answer the same multiple-choice questions (official MVBench prompt, 16 frames, PLLaVA pooling)
with greedy answers of a fixed length (min = max new tokens, so an early stop flatters neither), and
must produce the same answers (checked). The sweep: `Sweep` + `run_sweep`, each clip decoded and encoded
once, the 6 alphas' rows decoded together in one batch. The official-style loop: for each alpha a fresh
run (caches emptied), for each video decode -> preprocess -> CLIP -> prefill -> answer alone. Same
process, same videos, round-robin over --repeats rounds, each side keeps its best time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from _common import OUT, checkpoint, load_average, machine, table  # noqa: E402
from pllava_demo.chat.engine import Engine  # noqa: E402
from pllava_demo.config import GenerationSettings  # noqa: E402
from pllava_demo.eval.datasets import read_mc_jsonl  # noqa: E402
from pllava_demo.eval.protocols import PROTOCOLS  # noqa: E402
from pllava_demo.eval.results import RowWriter  # noqa: E402
from pllava_demo.eval.runner import Setting, Sweep, run_sweep  # noqa: E402
from pllava_demo.network.checkpoint import load_pllava  # noqa: E402
from videos import write_video  # noqa: E402


def write_set(directory: Path, n: int, seconds: float, fps: int, width: int, height: int) -> list:
    """n textured h264 clips (x264's default keyframe interval), cached under bench/out, and a JSONL set."""
    lines = []
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        path = directory / f"v{i}.mp4"
        if not path.exists():
            write_video(path.with_suffix(".part.mp4"), n_frames=int(seconds * fps), fps=fps, width=width, height=height,
                        pattern="colour").rename(path)
        lines.append(json.dumps({"video": f"v{i}.mp4", "question": f"What happens in clip {i}?",
                                 "options": ["a dog runs", "a man sits", "nothing"], "answer": i % 3}))
    (directory / "set.jsonl").write_text("\n".join(lines))
    return read_mc_jsonl(directory / "set.jsonl")


def sweep_once(engine, items, alphas, gen, frames, out: Path, workers: int) -> tuple[float, dict]:
    """Our sweep: each clip decoded + encoded once, every alpha's row batched."""
    engine.feature_cache = type(engine.feature_cache)(engine.feature_cache.max_bytes, engine.feature_cache.size_of)
    engine.pooled = type(engine.pooled)(engine.pooled.max_bytes, engine.pooled.size_of)
    out.unlink(missing_ok=True)
    settings = [Setting(engine.check_alpha(a), engine.strategy(None)) for a in alphas]
    sweep = Sweep(engine, PROTOCOLS["mvbench"], settings, num_frames=frames, generation=gen)
    t0 = time.perf_counter()
    with RowWriter(out) as writer:
        stats = run_sweep(sweep, sweep.todo(items, writer), writer.write, workers=workers)
        rows = dict(writer.rows)
    return time.perf_counter() - t0, {"rows": rows, "decoded": stats["clips_decoded"], "encoded": stats["clips_encoded"]}


def official_style(engine, items, alphas, gen, frames, out: Path) -> tuple[float, dict]:
    """One run per alpha, as the official scripts need: decode, encode, answer, one question at a time."""
    out.unlink(missing_ok=True)
    rows, decoded, encoded = {}, 0, 0
    t0 = time.perf_counter()
    with RowWriter(out) as writer:
        for alpha in alphas:  # a new process per setting in the official eval; here its caches are emptied
            setting = Setting(engine.check_alpha(alpha), engine.strategy(None))
            sweep = Sweep(engine, PROTOCOLS["mvbench"], [setting], num_frames=frames, generation=gen)
            for item in items:
                engine.feature_cache = type(engine.feature_cache)(engine.feature_cache.max_bytes, engine.feature_cache.size_of)
                engine.pooled = type(engine.pooled)(engine.pooled.max_bytes, engine.pooled.size_of)
                prep = sweep.prepare([item])  # decode in the loop, not ahead
                for row in sweep.run_clip(prep, {id(item): [setting]}):
                    writer.write(row)
            decoded += sweep.stats["clips_decoded"] + len(items)
            encoded += sweep.stats["clips_encoded"]
        rows = dict(writer.rows)
    return time.perf_counter() - t0, {"rows": rows, "decoded": len(items) * len(alphas), "encoded": encoded}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny", help="tiny | small (random, cached under bench/out) or a checkpoint path")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--videos", type=int, default=8)
    # MVBench's largest sources (STAR / Charades_v1_480) are ~30 s 480p clips
    ap.add_argument("--seconds", type=float, default=30.0, help="clip length (default: %(default)s)")
    ap.add_argument("--size", default="640x480", help="clip size WxH (default: %(default)s)")
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--alphas", default="0,4,8,16,20,32")
    ap.add_argument("--tokens", type=int, default=8, help="answer length (fixed; MVBench answers are a few tokens)")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    alphas = [float(a) for a in args.alphas.split(",")]
    model = str(checkpoint(args.model)) if args.model in ("tiny", "small") else args.model

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        width, height = (int(v) for v in args.size.split("x"))
        items = write_set(OUT / f"eval_clips_{args.seconds:g}s_{args.size}_{args.fps}fps", args.videos, args.seconds,
                          args.fps, width, height)
        loaded = load_pllava(model, device=args.device, quantization="none")
        engine = Engine(loaded, batching=True, max_rows=len(alphas))
        gen = GenerationSettings(max_new_tokens=args.tokens, min_new_tokens=args.tokens)
        sweep_once(engine, items[:1], alphas[:2], gen, args.frames, tmp / "warm.jsonl", args.workers)  # warm-up
        best = {"sweep": float("inf"), "official": float("inf")}
        for _ in range(args.repeats):
            t, ours = sweep_once(engine, items, alphas, gen, args.frames, tmp / "ours.jsonl", args.workers)
            best["sweep"] = min(best["sweep"], t)
            t, theirs = official_style(engine, items, alphas, gen, args.frames, tmp / "theirs.jsonl")
            best["official"] = min(best["official"], t)
        same = all(ours["rows"][k]["answer_ids"] == theirs["rows"][k]["answer_ids"] for k in ours["rows"])
        assert set(ours["rows"]) == set(theirs["rows"]) and len(ours["rows"]) == len(items) * len(alphas)
        n_rows = len(ours["rows"])

    print(f"# eval sweep: {len(alphas)} alphas ({args.alphas}) x {args.videos} videos ({args.size}, {args.seconds:g} s, "
          f"{args.fps} fps, h264), "
          f"{args.frames} frames, answers {args.tokens} tokens; {loaded.describe()}")
    print(f"machine: {machine()}; load {load_average()}; best of {args.repeats}; same answers: {same}\n")
    print(table(["run", "clips decoded", "clips CLIP-encoded", "rows", "seconds", "rows/s", "speed-up"], [
        ["official-style: a run per alpha, one question at a time", theirs["decoded"], theirs["encoded"], n_rows,
         f"{best['official']:.2f}", f"{n_rows / best['official']:.2f}", "1.00x"],
        ["`eval` sweep: decode + encode once, alphas batched", ours["decoded"], ours["encoded"], n_rows,
         f"{best['sweep']:.2f}", f"{n_rows / best['sweep']:.2f}", f"{best['official'] / best['sweep']:.2f}x"],
    ]))
    return 0 if same else 1


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
