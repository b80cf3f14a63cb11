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

The hour section (the long-video samplers): a 1-hour 1280x720 h264 at 5 fps with a keyframe every 4 s
(18000 frames, 900 keyframes; a low rate so that 2 cores can write it: about a minute, cached in
bench/out/), read three ways each for
  every 10 s   samplers.every_seconds (360 frames)   vs decoding every frame and keeping those
               vs decord's get_batch of the same ordinals
  keyframes    samplers.keyframes_only (900 frames)  vs decoding every frame and keeping keyframes
  official     the official recipe with decord itself: VideoReader(path, ctx=cpu(0)), its
               one-frame-per-second get_batch over the whole video (3600 frames; fetched in chunks
               of 100 and dropped, so its memory here is NOT the real recipe's ~10 GB), then vr[i]
               for the 16 frames of the rule; beside ours for the same 16 frames
  textured     a 2-minute 1280x720 clip of texture_frame pictures (noise, 1-px stripes, moving boxes) at
               5 fps, keyframe every 4 s: keyframes_only vs decoding every frame and keeping keyframes
               (the hour's flat grid makes its P-frames nearly free, which flatters the full decode)
Ours and the full decodes keep 320x180 frames (swscale shrink while decoding), so 900 frames fit in
memory; decord's rows keep none. One run per row (a full decode of the hour takes ~20 s); every row's
frames are checked by their stamped numbers.

    python bench/bench_sampling.py            # both sections
    python bench/bench_sampling.py --hour     # the hour section (and the textured clip) only
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

from pllava_demo.frames.video import (  # noqa: E402
    VideoDecoder,
    every_seconds,
    keyframes_only,
    read_video,
    sample_indices,
)
from tests.videos import frame_index, write_long_video, write_video  # noqa: E402

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


HOUR = {"seconds": 3600, "fps": 5, "keyframe_every_s": 4, "every_s": 10, "small": (320, 180)}
HOUR_METHODS = ["every10s", "every10s full", "every10s decord", "keyframes", "keyframes full", "16 ours",
                "16 official"]
# The hour's flat counter grid makes its P-frames nearly free to decode, which flatters a full decode
# against keyframes only; a textured clip (noise, stripes, moving boxes: every frame costs) shows the
# other end. Its frames carry no stamp: rows are checked by the ordinals they report.
TEXTURED = {"seconds": 120, "fps": 5, "keyframe_every_s": 4}
TEXTURED_METHODS = ["keyframes", "keyframes full"]


def textured_path() -> Path:
    return OUT / f"texture_{TEXTURED['seconds']}s_1280x720_{TEXTURED['fps']}fps_key{TEXTURED['keyframe_every_s']}s.mp4"


def run_textured(method: str, path: str) -> list[int]:
    """The ordinals of the keyframes `method` returns (320x180 frames kept, as in the hour rows)."""
    if method == "keyframes":
        with VideoDecoder(path, max_short_side=HOUR["small"][1]) as decoder:
            return list(keyframes_only(decoder).indices)
    container, stream = _open(path)
    with container:
        kept = [(i, _small(f)) for i, f in enumerate(container.decode(stream)) if f.key_frame]
        return [i for i, _ in kept]


def hour_path() -> Path:
    return OUT / f"hour_{HOUR['seconds']}s_1280x720_{HOUR['fps']}fps_key{HOUR['keyframe_every_s']}s.mp4"


def hour_expected(method: str, n: int) -> list[int]:
    if method.startswith("every10s"):
        return list(range(0, n, HOUR["fps"] * HOUR["every_s"]))
    if method.startswith("keyframes"):
        return list(range(0, n, HOUR["fps"] * HOUR["keyframe_every_s"]))  # TEXTURED has the same GOP
    return sample_indices(n, N)


def _small(frame) -> np.ndarray:
    width, height = HOUR["small"]
    return frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")


def _full_decode_keeping(path, keep) -> list[int]:
    container, stream = _open(path)
    with container:
        return [frame_index(_small(f)) for i, f in enumerate(container.decode(stream)) if keep(i, f)]


def _decord_batches(reader, indices, chunk: int):
    for start in range(0, len(indices), chunk):
        yield reader.get_batch(indices[start : start + chunk]).asnumpy()  # (chunk, H, W, 3)


def run_hour(method: str, path: str) -> list[int]:
    """The stamped numbers of the frames `method` returns."""
    if method in ("every10s", "keyframes"):
        with VideoDecoder(path, max_short_side=HOUR["small"][1]) as decoder:
            batch = every_seconds(decoder, HOUR["every_s"]) if method == "every10s" else keyframes_only(decoder)
            return [frame_index(f) for f in batch.data]
    if method == "every10s full":
        every = HOUR["fps"] * HOUR["every_s"]
        return _full_decode_keeping(path, lambda i, f: i % every == 0)
    if method == "keyframes full":
        return _full_decode_keeping(path, lambda i, f: f.key_frame)
    if method == "16 ours":
        return [frame_index(f) for f in read_video(path, N).frames]
    import decord

    reader = decord.VideoReader(path, ctx=decord.cpu(0))
    if method == "every10s decord":
        wanted = hour_expected(method, len(reader))
        return [frame_index(f) for batch in _decord_batches(reader, wanted, 36) for f in batch]
    # the official recipe: one frame per second of the whole video, thrown away, then the rule's frames
    per_second = list(range(0, len(reader), round(reader.get_avg_fps())))
    for _ in _decord_batches(reader, per_second, 100):
        pass
    return [frame_index(reader[i].asnumpy()) for i in sample_indices(len(reader), N)]


def child_hour(method: str, path: str) -> None:
    t0 = time.perf_counter()
    got = run_textured(method, path) if "texture" in Path(path).name else run_hour(method, path)
    seconds = time.perf_counter() - t0
    with av.open(path) as c:
        n = c.streams.video[0].frames
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    if "texture" in Path(path).name:
        n = n or TEXTURED["seconds"] * TEXTURED["fps"]
    print(json.dumps({"seconds": seconds, "rss_mb": rss_mb, "ok": got == hour_expected(method, n), "frames": len(got)}))


def textured_rows() -> None:
    path = textured_path()
    if not path.exists():
        t0 = time.perf_counter()
        tmp = path.with_suffix(".part.mp4")
        fps, key = TEXTURED["fps"], TEXTURED["keyframe_every_s"]
        write_video(tmp, n_frames=TEXTURED["seconds"] * fps, fps=fps, gop=fps * key, width=1280, height=720,
                    pattern="texture")
        tmp.rename(path)
        print(f"wrote {path.name} in {time.perf_counter() - t0:.1f} s")
    results = {m: measure("hour:" + m, path, repeats=1) for m in TEXTURED_METHODS}
    print(f"\ntextured clip ({TEXTURED['seconds']} s, 1280x720 h264 veryfast with B-frames, {TEXTURED['fps']} fps, "
          f"keyframe every {TEXTURED['keyframe_every_s']} s)")
    print("| sampler | method | frames | time (s) | / ours | peak RSS (MB) | ordinals right |")
    print("|---------|--------|-------:|---------:|-------:|--------------:|:--------------:|")
    for m, r in results.items():
        how = m.split(maxsplit=1)[1] if " " in m else "ours"
        print(f"| keyframes | {how} | {r['frames']} | {r['seconds']:.3f} | "
              f"{r['seconds'] / results['keyframes']['seconds']:.2f}x | {r['rss_mb']:.0f} | {'yes' if r['ok'] else 'NO'} |")


def hour_section() -> None:
    path = hour_path()
    if not path.exists():
        t0 = time.perf_counter()
        tmp = path.with_suffix(".part.mp4")
        write_long_video(tmp, seconds=HOUR["seconds"], fps=HOUR["fps"], width=1280, height=720,
                         keyframe_every_s=HOUR["keyframe_every_s"])
        tmp.rename(path)
        print(f"wrote {path.name} in {time.perf_counter() - t0:.1f} s")
    with av.open(str(path)) as c:
        n = c.streams.video[0].frames
    idle = measure("idle", path, repeats=1)
    print(f"\nhour video ({HOUR['seconds']} s, {n} frames at {HOUR['fps']} fps, keyframe every "
          f"{HOUR['keyframe_every_s']} s); one run per row; idle subprocess peak RSS {idle['rss_mb']:.0f} MB")
    print("| sampler | method | frames | time (s) | / ours | peak RSS (MB) | frames right |")
    print("|---------|--------|-------:|---------:|-------:|--------------:|:------------:|")
    results = {m: measure("hour:" + m, path, repeats=1) for m in HOUR_METHODS}
    for m, r in results.items():
        sampler = m.split()[0]
        ours = results[{"every10s": "every10s", "keyframes": "keyframes", "16": "16 ours"}[sampler]]["seconds"]
        how = m.split(maxsplit=1)[1] if " " in m else "ours"
        print(f"| {sampler} | {how} | {r['frames']} | {r['seconds']:.3f} | {r['seconds'] / ours:.2f}x | "
              f"{r['rss_mb']:.0f} | {'yes' if r['ok'] else 'NO'} |")
    textured_rows()


def child(method: str, path: str) -> None:
    """Subprocess body: one timed call, then a JSON line on stdout."""
    if method.startswith("hour:"):
        return child_hour(method.removeprefix("hour:"), path)
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


def measure(method: str, path: Path, repeats: int = REPEATS) -> dict:
    runs = []
    for _ in range(repeats):
        res = subprocess.run([sys.executable, __file__, "--child", method, str(path)], capture_output=True, text=True, check=True)
        runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "rss_mb": statistics.median(r["rss_mb"] for r in runs),
        "ok": all(r["ok"] for r in runs),
        "frames": runs[0].get("frames"),
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
    elif sys.argv[1:] == ["--hour"]:
        OUT.mkdir(parents=True, exist_ok=True)
        hour_section()
    else:
        main()
        hour_section()
