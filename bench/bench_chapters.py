"""Chapters of a long video: what finding them costs against the keyframe-only decode floor, whether
memory stays flat in the video's length, and batched chapter captions against one by one.

    python bench/bench_chapters.py                          # 10-minute 720p video, tiny random model, CPU
    python bench/bench_chapters.py --seconds 3600           # the 1-hour case (writing the video takes minutes)
    python bench/bench_chapters.py --model ermu2001/pllava-7b --device cuda

Rows, measured side by side in one run (round-robin, each keeps its best of --repeats):
- keyframe-only decode floor: every keyframe decoded, no pixel converted (frames/keyframes.decode_floor);
- scan: the chaptering scan's decode (one frame per step, keyframes only, shrunk to 336 px);
- chapter finding: the scan + CLIP features + boundaries (everything before captions);
and for chapter captions, the same decoded chapters captioned in one batch vs one at a time (the same
fixed number of new tokens each, so early stops cannot flatter either). The peak of Python-tracked
memory (numpy and torch CPU buffers) during chapter finding is printed for the video and for its
first half, which should be about the same (flat in length).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pllava_demo.chapters.captions import chapter_captioner, prepare_chapter  # noqa: E402
from pllava_demo.chapters.features import scan  # noqa: E402
from pllava_demo.chapters.scenes import find_segments  # noqa: E402
from pllava_demo.chapters.settings import ChapterSettings  # noqa: E402
from pllava_demo.frames.keyframes import decode_floor, sample_every  # noqa: E402
from pllava_demo.network.checkpoint import load_pllava  # noqa: E402
from videos import write_long_video  # noqa: E402


def best_of(configs: dict, repeats: int) -> dict:
    best = {name: float("inf") for name in configs}
    for _ in range(repeats):
        for name, fn in configs.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def find(loaded, path, settings: ChapterSettings, seconds: float):
    times, feats = scan(loaded, path, settings)
    return find_segments(times, feats, seconds, settings)


def table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |\n" + "|---" * len(header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def peak_mb(fn) -> float:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="checkpoint (default: a tiny random one written to a temp dir)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", type=int, default=24)
    ap.add_argument("--step", type=float, default=4.0)
    ap.add_argument("--chapters", type=int, default=8, help="chapters captioned in the caption rows")
    ap.add_argument("--tokens", type=int, default=16, help="new tokens per chapter caption (fixed)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.model is None:
            from pllava_demo.network.tiny import make_tiny

            args.model = str(make_tiny(tmp / "tiny"))
        t0 = time.perf_counter()
        full = write_long_video(tmp / "long.mp4", seconds=args.seconds, fps=args.fps, width=args.width,
                                height=args.height, keyframe_every_s=2)
        half = write_long_video(tmp / "half.mp4", seconds=args.seconds // 2, fps=args.fps, width=args.width,
                                height=args.height, keyframe_every_s=2)
        print(f"wrote {args.seconds} s and {args.seconds // 2} s of {args.width}x{args.height} at {args.fps} fps "
              f"(keyframe every 2 s) in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        loaded = load_pllava(args.model, device=args.device, quantization="none")
        settings = ChapterSettings(step_s=args.step, caption_frames=8, caption_tokens=args.tokens,
                                   caption_min_tokens=args.tokens, batch_size=args.chapters)
        find(loaded, half, settings, args.seconds / 2)  # warm-up
        rows = best_of({
            "keyframe-only decode floor": lambda: decode_floor(full),
            "scan (decode + shrink, one frame per step)": lambda: sum(1 for _ in sample_every(full, args.step)),
            "chapter finding (scan + CLIP + boundaries)": lambda: find(loaded, full, settings, args.seconds),
        }, args.repeats)
        floor = rows["keyframe-only decode floor"]
        print(f"\nChapter finding, {args.seconds} s {args.width}x{args.height} video, step {args.step:g} s, "
              f"{loaded.name} on {args.device}")
        table(["what", "seconds", "x floor"], [[name, f"{s:.2f}", f"{s / floor:.2f}"] for name, s in rows.items()])
        mem_full = peak_mb(lambda: find(loaded, full, settings, args.seconds))
        mem_half = peak_mb(lambda: find(loaded, half, settings, args.seconds / 2))
        print(f"\nPeak traced memory during chapter finding: {mem_half:.1f} MB ({args.seconds // 2} s video), "
              f"{mem_full:.1f} MB ({args.seconds} s video)")

        captioner = chapter_captioner(loaded, settings)
        span = args.seconds / args.chapters
        items = [prepare_chapter(loaded, full, i * span, (i + 1) * span, settings.caption_frames)
                 for i in range(args.chapters)]
        captioner.caption_batch(items[:2])  # warm-up
        caps = best_of({
            "one by one": lambda: [captioner.caption_batch([it]) for it in items],
            f"batched ({args.chapters} at once)": lambda: captioner.caption_batch(items),
        }, args.repeats)
        one = caps["one by one"]
        print(f"\nChapter captions: {args.chapters} chapters x {settings.caption_frames} frames, {args.tokens} new "
              f"tokens each")
        table(["what", "seconds", "chapters/s", "x one by one"],
              [[name, f"{s:.2f}", f"{args.chapters / s:.2f}", f"{one / s:.2f}"] for name, s in caps.items()])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
