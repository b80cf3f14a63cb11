"""Batch captioning throughput: videos per second for batch sizes 1, 4 and 8, and what decoding ahead
in worker threads gains over the plain sequential loop (decode, then caption, then the next video).

    python bench/bench_caption.py                       # tiny random checkpoint on CPU, 8 videos
    python bench/bench_caption.py --model ermu2001/pllava-7b --device cuda --videos 64

Every configuration captions the same real videos (written with PyAV) with the same fixed number of
new tokens (min = max, so early stops cannot flatter a configuration), in one process, after a
warm-up. The configurations run round-robin for --repeats rounds and each keeps its best time, so
load from other processes on a shared machine hits every configuration alike; ratios come from the
same run. Also printed: decode-only and model-only times, whose max bounds what perfect overlap
could reach.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from pllava_demo.caption.captioner import CaptionJob, CaptionOptions, Captioner, run_captions  # noqa: E402
from pllava_demo.network.checkpoint import load_pllava  # noqa: E402
from pllava_demo.config import GenerationSettings  # noqa: E402
from videos import write_video  # noqa: E402


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="checkpoint (default: a tiny random one written to a temp dir)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=16, help="new tokens per caption (fixed)")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2, help="decoding threads for the decode-ahead runs")
    ap.add_argument("--batch-sizes", default="1,4,8")
    ap.add_argument("--repeats", type=int, default=3, help="round-robin rounds; each configuration keeps its best")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.model is None:
            from pllava_demo.network.tiny import make_tiny

            args.model = str(make_tiny(tmp / "tiny"))
        jobs = []
        for i in range(args.videos):
            path = write_video(tmp / f"v{i}.mp4", n_frames=96, fps=24, width=640, height=360, pattern="colour")
            jobs.append(CaptionJob(str(path)))
        loaded = load_pllava(args.model, device=args.device, quantization="none")
        settings = GenerationSettings(max_new_tokens=args.tokens, min_new_tokens=args.tokens)
        captioner = Captioner(loaded, CaptionOptions(num_frames=args.frames, settings=settings))
        sink = []
        run_captions(captioner, jobs[:2], sink.append, batch_size=2, workers=0)  # warm-up

        n = len(jobs)
        prepared = [captioner.prepare(j) for j in jobs]
        batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
        configs = {
            "decode only": lambda: [captioner.prepare(j) for j in jobs],
            "model only": lambda: [captioner.caption_batch([p]) for p in prepared],
            ("sequential loop (decode, then caption)", 1): lambda: run_captions(
                captioner, jobs, sink.append, batch_size=1, workers=0),
        }
        for bs in batch_sizes:
            configs[(f"decode ahead ({args.workers} threads)", bs)] = (
                lambda bs=bs: run_captions(captioner, jobs, sink.append, batch_size=bs, workers=args.workers))
        best = {k: float("inf") for k in configs}
        for _ in range(args.repeats):
            for key, fn in configs.items():
                best[key] = min(best[key], timed(fn))
        t_decode, t_model = best.pop("decode only"), best.pop("model only")
        t_seq = best[("sequential loop (decode, then caption)", 1)]
        rows = [(name, bs, t) for (name, bs), t in best.items()]

    print(f"\n{loaded.describe()}; {n} videos (640x360, 96 frames, h264), {args.frames} frames each, "
          f"{captioner.n_video_tokens} visual tokens, {args.tokens} new tokens each; torch threads "
          f"{torch.get_num_threads()}, {os.cpu_count()} CPUs; best of {args.repeats} round-robin rounds\n")
    print(f"decode + preprocess only: {t_decode:.2f} s ({n / t_decode:.2f} videos/s); "
          f"model only (batch 1): {t_model:.2f} s ({n / t_model:.2f} videos/s); "
          f"perfect overlap would be {t_seq / max(t_decode, t_model):.2f}x the sequential loop\n")
    print("| configuration | batch | videos/s | vs sequential |")
    print("|---|---|---|---|")
    for name, bs, t in rows:
        print(f"| {name} | {bs} | {n / t:.2f} | {t_seq / t:.2f}x |")
    if args.device == "cpu" and not torch.cuda.is_available():
        print("\nGPU (7B-shaped model): not measured: no GPU lent to this session.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
