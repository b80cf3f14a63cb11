"""Benchmark: read_video(path, 16) against three other ways of getting PLLaVA's 16 frames.

  ours      pllava_demo.video.read_video (seek per GOP, continue inside a GOP)
  full      decode every frame with PyAV, keep the 16 sampled ones
  official  the official recipe with PyAV in place of decord: decode the whole video keeping one
            frame per second (np.linspace over frames, held in memory like vr.get_batch), then the
            16 sampled frames (fetched by seeking to each one's keyframe, as decord's get_batch does)
  floor     seek to the keyframe before each sampled frame (GOP known exactly) and decode to it

Each (method, video) runs 3 times, each in a fresh subprocess; time is measured inside it around
the call (imports excluded), memory is the subprocess's peak RSS (getrusage ru_maxrss), shown
beside an 'idle' subprocess that only imports. Every method's 16 frames are checked by their
pixels. Videos are written once into bench/out/ and reused. Knows nothing about the model.

    python bench/bench_sampling.py
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import numpy as np  # noqa: E402

from pllava_demo.video import read_video, sample_indices  # noqa: E402
from tests.videos import frame_index, write_long_video  # noqa: E402

OUT = ROOT / "bench" / "out"
FPS, KEY_S, N = 24, 2, 16
VIDEOS = {"long": 600, "short": 10}  # name -> seconds, 1280x720 h264 ultrafast, keyframe every 2 s
METHODS = ["ours", "full", "official", "floor"]


def _open(path):
    container = av.open(str(path))
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # the same decoder threading as ours, so only the strategy differs
    return container, stream


def run_full(path):
    container, stream = _open(path)
    with container:
        want = set(sample_indices(stream.frames, N))
        got = [f.to_ndarray(format="rgb24") for i, f in enumerate(container.decode(stream)) if i in want]
    return got


def _seek_decode(container, stream, indices, gop):
    """Each index: seek to its keyframe (index // gop * gop), decode forward to it."""
    spf = 1 / (FPS * stream.time_base)  # pts per frame
    out = []
    for idx in indices:
        container.seek(int(idx // gop * gop * spf), stream=stream, backward=True, any_frame=False)
        for f in container.decode(stream):
            if f.pts >= (idx - 0.5) * spf:
                out.append(f.to_ndarray(format="rgb24"))
                break
    return out


def run_official(path):
    container, stream = _open(path)
    with container:
        n = stream.frames
        duration = n / FPS
        per_second = set(np.linspace(0, n - 1, int(duration)).astype(int).tolist())
        buffer = [f.to_ndarray(format="rgb24") for i, f in enumerate(container.decode(stream)) if i in per_second]
        del buffer  # the official loader throws it away too
        return _seek_decode(container, stream, sample_indices(n, N), KEY_S * FPS)


def run_floor(path):
    container, stream = _open(path)
    with container:
        return _seek_decode(container, stream, sample_indices(stream.frames, N), KEY_S * FPS)


def run_ours(path):
    return list(read_video(path, N).frames)


def child(method: str, path: str) -> None:
    """Subprocess body: one timed call, then a JSON line on stdout."""
    fn = {"ours": run_ours, "full": run_full, "official": run_official, "floor": run_floor, "idle": None}[method]
    t0 = time.perf_counter()
    frames = fn(path) if fn else []
    seconds = time.perf_counter() - t0
    with av.open(path) as c:
        n = c.streams.video[0].frames
    ok = fn is None or [frame_index(f) for f in frames] == sample_indices(n, N)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"seconds": seconds, "rss_mb": rss_mb, "ok": ok}))


def measure(method: str, path: Path) -> dict:
    runs = []
    for _ in range(3):
        res = subprocess.run([sys.executable, __file__, "--child", method, str(path)], capture_output=True, text=True, check=True)
        runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "rss_mb": statistics.median(r["rss_mb"] for r in runs),
        "ok": all(r["ok"] for r in runs),
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, seconds in VIDEOS.items():
        path = OUT / f"{name}_{seconds}s_1280x720_{FPS}fps.mp4"
        if not path.exists():
            t0 = time.perf_counter()
            tmp = path.with_suffix(".part.mp4")
            write_long_video(tmp, seconds=seconds, fps=FPS, width=1280, height=720, keyframe_every_s=KEY_S)
            tmp.rename(path)
            print(f"wrote {path.name} in {time.perf_counter() - t0:.1f} s")
        paths[name] = path
    print(f"PyAV {av.__version__}, {N} frames, h264 1280x720 {FPS} fps ultrafast, keyframe every {KEY_S} s; "
          "median of 3 runs, each in its own subprocess; memory = peak RSS of that subprocess")
    for name, path in paths.items():
        idle = measure("idle", path)
        results = {m: measure(m, path) for m in METHODS}
        ours = results["ours"]["seconds"]
        print(f"\n{name} video ({VIDEOS[name]} s, {VIDEOS[name] * FPS} frames); idle subprocess peak RSS {idle['rss_mb']:.0f} MB")
        print(f"| method   | time (s) | ours faster by | peak RSS (MB) | frames right |")
        print(f"|----------|---------:|---------------:|--------------:|:------------:|")
        for m, r in results.items():
            ratio = r["seconds"] / ours
            print(f"| {m:<8} | {r['seconds']:8.3f} | {ratio:13.1f}x | {r['rss_mb']:13.0f} | {'yes' if r['ok'] else 'NO':^12} |")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
