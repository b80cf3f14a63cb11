"""Benchmark: read_video(path, 16) against other ways of getting PLLaVA's 16 frames.

  ours      pllava_demo.frames.video.read_video (seek per GOP, continue inside a GOP; on a stream that is not
            constant-rate, one demux pass first for the packet timestamps)
  full      decode every frame with PyAV, keep the 16 sampled ones (by ordinal)
  official  the official recipe with PyAV in place of decord: decode the whole video keeping one
            frame per second (np.linspace over frames, held in memory like vr.get_batch), then the
            16 sampled frames (fetched by seeking to each one's keyframe, as decord's get_batch does)
  floor     seek to the keyframe before each sampled frame (GOP and every frame's pts known for free:
            the bench wrote the file) and decode to it
  ours+px / floor+px   the same, each frame given the official PLLaVA resize (PIL bicubic to 640 on
            the long side, what the engine feeds CLIP) right after it is decoded

Videos: 1280x720 h264 ultrafast with a keyframe every 48 frames: `long` (600 s, 24 fps), `short`
(10 s), and `vfr` (600 s of 1 s at 30 fps then 1 s at 15 fps, repeated: a variable-rate mp4 whose
frame i is not at time i * duration / n). Each (method, video) runs 5 times, each in a fresh
subprocess; time is measured inside it around the call (imports excluded), memory is the
subprocess's peak RSS (getrusage ru_maxrss), shown beside an 'idle' subprocess that only imports.
Every method's 16 frames are checked by their pixels against the ordinals of the official rule.
Videos are written once into bench/out/ and reused. Knows nothing about the model.

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

from pllava_demo.frames.video import read_video, sample_indices  # noqa: E402
from tests.videos import frame_index, write_long_video  # noqa: E402

OUT = ROOT / "bench" / "out"
FPS, GOP, N = 24, 48, 16
REPEATS = 5  # medians of 5: other work on a shared machine swings single runs by 2x
VIDEOS = {"long": 600, "short": 10, "vfr": 600}  # name -> seconds
METHODS = {"long": ["ours", "full", "official", "floor", "ours+px", "floor+px"],
           "short": ["ours", "full", "official", "floor"],
           "vfr": ["ours", "full", "floor", "ours+px", "floor+px"]}


def vfr_times(seconds: float) -> list[float]:
    """1 s at 30 fps, then 1 s at 15 fps, repeated (seconds, rounded to the file's 1 ms time base)."""
    out = []
    for block in range(int(seconds // 2)):
        out += [2 * block + k / 30 for k in range(30)] + [2 * block + 1 + k / 15 for k in range(15)]
    return [round(t, 3) for t in out]


def video_path(name: str) -> Path:
    return OUT / f"{name}_{VIDEOS[name]}s_1280x720_{'vfr' if name == 'vfr' else f'{FPS}fps'}.mp4"


def _open(path):
    container = av.open(str(path))
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # the same decoder threading as ours, so only the strategy differs
    return container, stream


def run_full(path, px=False):
    container, stream = _open(path)
    with container:
        want = set(sample_indices(stream.frames, N))
        return [f.to_ndarray(format="rgb24") for i, f in enumerate(container.decode(stream)) if i in want]


def _targets_pts(path, stream, indices) -> list[float]:
    """Each sampled frame's pts, known to the bench because it wrote the file."""
    if "vfr" in Path(path).name:
        times = vfr_times(VIDEOS["vfr"])
        return [times[i] / stream.time_base for i in indices]
    return [i / (FPS * stream.time_base) for i in indices]


def _resize():
    # imported only by the +px methods: preprocess brings torch, which would swamp the others' RSS
    from pllava_demo.frames.preprocess import official_resize

    return official_resize


def _seek_decode(container, stream, path, indices, px=False):
    """Each index: seek to its keyframe (index // GOP * GOP), decode forward to it."""
    official_resize = _resize() if px else None
    out = []
    keys = _targets_pts(path, stream, [i // GOP * GOP for i in indices])
    for idx, key, want in zip(indices, keys, _targets_pts(path, stream, indices)):
        container.seek(int(round(key)), stream=stream, backward=True, any_frame=False)
        for f in container.decode(stream):
            if f.pts >= want - 0.5:
                out.append(np.asarray(official_resize(f.to_image())) if px else f.to_ndarray(format="rgb24"))
                break
    return out


def run_official(path, px=False):
    container, stream = _open(path)
    with container:
        n = stream.frames
        duration = n / FPS
        per_second = set(np.linspace(0, n - 1, int(duration)).astype(int).tolist())
        buffer = [f.to_ndarray(format="rgb24") for i, f in enumerate(container.decode(stream)) if i in per_second]
        del buffer  # the official loader throws it away too
        return _seek_decode(container, stream, path, sample_indices(n, N))


def run_floor(path, px=False):
    container, stream = _open(path)
    with container:
        return _seek_decode(container, stream, path, sample_indices(stream.frames, N), px)


def run_ours(path, px=False):
    return list(read_video(path, N, resize=_resize() if px else None).frames)


def child(method: str, path: str) -> None:
    """Subprocess body: one timed call, then a JSON line on stdout."""
    base, px = method.removesuffix("+px"), method.endswith("+px")
    fn = {"ours": run_ours, "full": run_full, "official": run_official, "floor": run_floor, "idle": None}[base]
    t0 = time.perf_counter()
    frames = fn(path, px) if fn else []
    seconds = time.perf_counter() - t0
    with av.open(path) as c:
        n = c.streams.video[0].frames
    ok = fn is None or [frame_index(f) for f in frames] == sample_indices(n, N)
    ok = ok and (fn is None or not px or all(f.shape == (360, 640, 3) for f in frames))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"seconds": seconds, "rss_mb": rss_mb, "ok": ok}))


def measure(method: str, path: Path) -> dict:
    runs = []
    for _ in range(REPEATS):
        res = subprocess.run([sys.executable, __file__, "--child", method, str(path)], capture_output=True, text=True, check=True)
        runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "rss_mb": statistics.median(r["rss_mb"] for r in runs),
        "ok": all(r["ok"] for r in runs),
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, seconds in VIDEOS.items():
        path = video_path(name)
        if not path.exists():
            t0 = time.perf_counter()
            tmp = path.with_suffix(".part.mp4")
            write_long_video(tmp, seconds=seconds, fps=FPS, width=1280, height=720, keyframe_every_s=GOP / FPS,
                             pts_seconds=vfr_times(seconds) if name == "vfr" else None)
            tmp.rename(path)
            print(f"wrote {path.name} in {time.perf_counter() - t0:.1f} s")
    print(f"PyAV {av.__version__}, {N} frames, h264 1280x720 ultrafast, keyframe every {GOP} frames; "
          f"median of {REPEATS} runs, each in its own subprocess; memory = peak RSS of that subprocess")
    for name in VIDEOS:
        path = video_path(name)
        with av.open(str(path)) as c:
            n = c.streams.video[0].frames
        idle = measure("idle", path)
        results = {m: measure(m, path) for m in METHODS[name]}
        print(f"\n{name} video ({VIDEOS[name]} s, {n} frames); idle subprocess peak RSS {idle['rss_mb']:.0f} MB")
        print("| method   | time (s) | / ours (same output) | peak RSS (MB) | frames right |")
        print("|----------|---------:|---------------------:|--------------:|:------------:|")
        for m, r in results.items():
            ours = results["ours+px" if m.endswith("+px") else "ours"]["seconds"]
            print(f"| {m:<8} | {r['seconds']:8.3f} | {r['seconds'] / ours:19.2f}x | {r['rss_mb']:13.0f} | "
                  f"{'yes' if r['ok'] else 'NO':^12} |")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
