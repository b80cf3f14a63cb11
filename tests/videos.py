"""Writers of real test media (videos with PyAV, images with PIL) whose pixels say which frame they are.

Every frame written by `write_video` carries its own index as a 4 x 4 grid of dark/bright cells
(16 bits, row-major, most significant bit first), so a test can recover WHICH frame a decoder
returned from the pixels alone (`frame_index`), through any lossy codec, palette (gif) or resize.

This module knows nothing about the project's reader: it only writes files. Odd frame sizes:
4:2:0 encoders (libx264 yuv420p, libvpx-vp9, libsvtav1) reject odd widths/heights, so for an odd
size `write_video` picks a 4:4:4 pixel format where the codec has one (libx264, libx265, vp9,
mjpeg) and otherwise pads to the next even size (mpeg4, av1): `padded_size` says which.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

GRID = 4  # GRID x GRID cells = 16 bits: frame indices up to 65535
DARK, BRIGHT = 40, 215  # far from the 128 threshold, so codec noise never flips a bit

# name -> (encoder, file extension, default pixel format, 4:4:4 format for odd sizes or None)
CODECS = {
    "h264": ("libx264", ".mp4", "yuv420p", "yuv444p"),
    "mpeg4": ("mpeg4", ".mp4", "yuv420p", None),
    "hevc": ("libx265", ".mp4", "yuv420p", "yuv444p"),
    "vp9": ("libvpx-vp9", ".webm", "yuv420p", "yuv444p"),
    "av1": ("libsvtav1", ".mp4", "yuv420p", None),
    "mjpeg": ("mjpeg", ".avi", "yuvj420p", "yuvj444p"),
    "gif": ("gif", ".gif", "rgb8", "rgb8"),
}
_FAST_OPTIONS = {
    "libx264": {"preset": "veryfast"},  # keeps B-frames, so tests see reordered pts
    "libx265": {"preset": "ultrafast", "x265-params": "log-level=none"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8"},
    "libsvtav1": {"preset": "10", "crf": "25"},  # preset 12 skips small changes: bits get lost
}


def _bits(k: int) -> np.ndarray:
    return np.array([(k >> (GRID * GRID - 1 - b)) & 1 for b in range(GRID * GRID)], dtype=bool)


def _cell_bounds(n: int, i: int) -> tuple[int, int]:
    return (n * i) // GRID, (n * (i + 1)) // GRID


def texture_frame(k: int, width: int, height: int) -> np.ndarray:
    """RGB uint8 (H, W, 3) that flat colours cannot stand in for: noise, one-pixel stripes, sharp-edged
    boxes and text-like glyph strokes, all moving with k. Resize differences show up on it."""
    rng = np.random.default_rng(k)
    yy, xx = np.mgrid[0:height, 0:width]
    img = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)  # noise everywhere
    band = slice(height // 4, height // 2)
    img[band] = np.where(((xx[band] + k) % 2 == 0)[..., None], 250, 5).astype(np.uint8)  # 1 px stripes
    img[height // 2 :, : width // 3] = np.where(((yy + xx + k) % 3 == 0)[height // 2 :, : width // 3, None], 255, 0)
    glyphs = np.random.default_rng(1000 + k).integers(0, 2, size=(height // 16 + 1, width // 8 + 1)).astype(bool)
    strokes = glyphs[yy // 16, xx // 8] & ((xx % 8 < 2) | (yy % 16 < 2))  # glyph-like strokes on a grid
    right = (slice(height // 2, height), slice(width // 3, width))
    img[right] = np.where(strokes[right][..., None], 0, 235).astype(np.uint8)
    for i in range(4):  # sharp saturated boxes
        x0, y0 = (k * 37 + i * width // 5) % max(width - 64, 1), (i * height // 7) % max(height - 48, 1)
        img[y0 : y0 + 48, x0 : x0 + 64] = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0))[i]
    return img


def counter_frame(k: int, width: int, height: int, pattern: str = "counter") -> np.ndarray:
    """RGB uint8 (H, W, 3) picture of frame k. pattern 'counter': flat cells; 'colour': cells plus a
    colourful texture that moves with k (exercises resampling; averages out inside a cell);
    'texture': `texture_frame` (no readable index)."""
    if pattern == "texture":
        return texture_frame(k, width, height)
    bits = _bits(k)
    img = np.empty((height, width, 3), dtype=np.float32)
    for r in range(GRID):
        y0, y1 = _cell_bounds(height, r)
        for c in range(GRID):
            x0, x1 = _cell_bounds(width, c)
            img[y0:y1, x0:x1] = BRIGHT if bits[r * GRID + c] else DARK
    if pattern == "colour":
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        for ch, (fx, fy, speed) in enumerate([(0.11, 0.03, 0.3), (0.04, 0.13, -0.2), (0.07, 0.07, 0.5)]):
            img[..., ch] += 35.0 * np.sin(fx * xx + fy * yy + speed * k)
    elif pattern != "counter":
        raise ValueError(f"pattern must be 'counter', 'colour' or 'texture', got {pattern!r}")
    return np.clip(img, 0, 255).astype(np.uint8)


def frame_index(rgb: np.ndarray) -> int:
    """Recover k from a decoded (H, W, 3) frame written by `counter_frame` (upright, any size)."""
    height, width = rgb.shape[:2]
    grey = rgb.astype(np.float32).mean(axis=2)
    k = 0
    for r in range(GRID):
        y0, y1 = _cell_bounds(height, r)
        for c in range(GRID):
            x0, x1 = _cell_bounds(width, c)
            # the cell's central half only: edges blur into neighbours after lossy coding
            dy, dx = max((y1 - y0) // 4, 0), max((x1 - x0) // 4, 0)
            cell = grey[y0 + dy : y1 - dy, x0 + dx : x1 - dx]
            k = (k << 1) | int(cell.mean() > 128)
    return k


def padded_size(codec: str, width: int, height: int) -> tuple[int, int]:
    """The size `write_video` really writes for this codec (odd sizes padded where no 4:4:4 exists)."""
    if (width % 2 or height % 2) and CODECS[codec][3] is None:
        return width + width % 2, height + height % 2
    return width, height


def video_path(directory: Path, name: str, codec: str = "h264") -> Path:
    return Path(directory) / f"{name}{CODECS[codec][1]}"


@contextmanager
def own_scheduling():
    """Gives the calling thread its scheduling policy back afterwards. SVT-AV1 (libsvtav1) run as root
    switches the thread that opens an encoder to real-time SCHED_FIFO 99, and every thread started from
    that thread later inherits it (the scheduler's, OpenMP's). Two such threads spinning on a 2-core
    machine then starve the whole process, watchdogs included: the test run stalled in CI that way."""
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        if (os.sched_getscheduler(0), os.sched_getparam(0)) != (policy, param):
            os.sched_setscheduler(0, policy, param)


def write_video(
    path,
    *,
    codec: str = "h264",
    n_frames: int = 48,
    fps: int = 24,
    width: int = 320,
    height: int = 240,
    gop: int | None = None,
    pix_fmt: str | None = None,
    pattern: str = "counter",
    rotation: int = 0,
    pts_seconds: list[float] | None = None,
    faststart: bool = False,
) -> Path:
    """Write a real video; frame k shows `counter_frame(k)`. `codec` is a key of CODECS.

    rotation: display-matrix rotation in degrees counter-clockwise (as PyAV reports it on
    frames); the pixels are stored unrotated, so an upright reader must undo it.
    pts_seconds: presentation time of each frame, for variable-frame-rate files (mp4/mkv).
    faststart: put the mp4 index first, so a truncated copy still opens.
    """
    encoder, _, default_fmt, fmt_444 = CODECS[codec]
    odd = bool(width % 2 or height % 2)
    fmt = pix_fmt or (fmt_444 if odd and fmt_444 else default_fmt)
    out_w, out_h = padded_size(codec, width, height) if pix_fmt is None else (width, height)
    options = {"movflags": "+faststart"} if faststart else {}
    path = Path(path)
    with own_scheduling(), av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(encoder, rate=fps, options=dict(_FAST_OPTIONS.get(encoder, {})))
        stream.width, stream.height, stream.pix_fmt = out_w, out_h, fmt
        if gop is not None:
            stream.codec_context.gop_size = gop
            if encoder == "libx264":
                stream.codec_context.options = {**stream.codec_context.options, "keyint_min": str(gop), "sc_threshold": "0"}
        if rotation:
            stream.set_display_rotation(rotation)
        time_base = Fraction(1, 1000) if pts_seconds is not None else Fraction(1, fps)
        stream.codec_context.time_base = time_base
        for k in range(n_frames):
            rgb = counter_frame(k, width, height, pattern)
            if (out_w, out_h) != (width, height):
                rgb = np.pad(rgb, ((0, out_h - height), (0, out_w - width), (0, 0)), mode="edge")
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = round(pts_seconds[k] * 1000) if pts_seconds is not None else k
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_long_video(
    path, *, seconds: float = 600, fps: int = 24, width: int = 1280, height: int = 720, keyframe_every_s: float = 2,
    pts_seconds: list[float] | None = None,
) -> Path:
    """A long h264 mp4, cheap to make: the picture is the flat counter grid written straight into
    the Y plane (no RGB conversion), encoded with x264 ultrafast, keyframe every keyframe_every_s
    (every keyframe_every_s * fps frames). pts_seconds: each frame's time, for a variable-rate file
    (then `seconds` is ignored and the file has len(pts_seconds) frames)."""
    n_frames = len(pts_seconds) if pts_seconds is not None else int(round(seconds * fps))
    gop = max(1, int(round(keyframe_every_s * fps)))
    path = Path(path)
    with av.open(str(path), "w") as container:
        opts = {"preset": "ultrafast", "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
        stream = container.add_stream("libx264", rate=fps, options=opts)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if pts_seconds is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        yuv = np.full((height * 3 // 2, width), 128, dtype=np.uint8)  # (Y rows, then U and V rows)
        bounds = [(_cell_bounds(height, r), _cell_bounds(width, c)) for r in range(GRID) for c in range(GRID)]
        for k in range(n_frames):
            for bit, ((y0, y1), (x0, x1)) in zip(_bits(k), bounds):
                yuv[y0:y1, x0:x1] = BRIGHT if bit else DARK
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            if pts_seconds is not None:
                frame.pts, frame.time_base = round(pts_seconds[k] * 1000), Fraction(1, 1000)
            else:
                frame.pts = k
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_audio_only(path, *, seconds: float = 1.0, rate: int = 16000) -> Path:
    """An m4a/mp4 with one AAC audio track and no video (a 440 Hz tone)."""
    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        n, step = int(seconds * rate), 1024
        t = np.arange(n, dtype=np.float32) / rate
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for i in range(0, n, step):
            frame = av.AudioFrame.from_ndarray(tone[None, i : i + step], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_image(path, width: int = 320, height: int = 240, *, k: int = 7, exif_orientation: int | None = None) -> Path:
    """A still image (format from the extension) showing `counter_frame(k)`; with exif_orientation
    (e.g. 6 = 'rotate 90 CW to view') the stored pixels are the counter-rotated picture."""
    rgb = counter_frame(k, width, height, "counter")
    path = Path(path)
    exif = None
    if exif_orientation == 6:
        rgb = np.rot90(rgb, k=1)  # stored rotated 90 CCW; viewer rotates 90 CW to undo
        exif = Image.Exif()
        exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(rgb)).save(path, **({"exif": exif} if exif is not None else {}))
    return path


def write_animated_webp(path, n_frames: int = 6, width: int = 96, height: int = 64, frame_ms: int = 100) -> Path:
    frames = [Image.fromarray(counter_frame(k, width, height)) for k in range(n_frames)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=frame_ms, loop=0, lossless=True)
    return Path(path)


def write_mpeg2(
    path, *, n_frames: int = 60, fps: int = 25, width: int = 320, height: int = 240, gop: int = 12,
    interlaced: bool = False, pattern: str = "counter", fmt: str | None = None,
) -> Path:
    """An MPEG-2 video in an MPEG container, as DVDs and camcorders write them: a program stream
    (.mpg / .vob) or a transport stream (.ts), chosen from the extension unless `fmt` names the muxer.
    Two B-frames between references, a GOP of `gop` frames. interlaced: coded as interlaced pictures
    (field DCT and motion, top field first), so decoders flag the frames interlaced."""
    path = Path(path)
    muxer = fmt or {".mpg": "mpeg", ".mpeg": "mpeg", ".vob": "vob", ".ts": "mpegts"}[path.suffix.lower()]
    with av.open(str(path), "w", format=muxer) as container:
        stream = container.add_stream("mpeg2video", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        ctx = stream.codec_context
        ctx.gop_size, ctx.max_b_frames, ctx.bit_rate = gop, 2, 8_000_000
        if interlaced:
            ctx.flags |= av.codec.context.Flags.interlaced_dct | av.codec.context.Flags.interlaced_me
            ctx.options = {**ctx.options, "top": "1"}
        for k in range(n_frames):
            frame = av.VideoFrame.from_ndarray(counter_frame(k, width, height, pattern), format="rgb24")
            frame.pts = k
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_encoded(
    path, picture=None, *, encoder: str = "libx264", pix_fmt: str = "yuv420p", n_frames: int = 8, fps: int = 24,
    width: int = 320, height: int = 240, muxer: str | None = None, options: dict | None = None,
    context: dict | None = None, flags: int = 0, rotation: int = 0, pts_seconds: list[float] | None = None,
) -> Path:
    """Any encoder with any settings, for files as people's devices write them: `options` go to the
    encoder (x264-params, open-gop, ...), `context` sets codec-context attributes (colorspace,
    color_range, gop_size, max_b_frames, ...), `flags` are codec flags (interlaced), `muxer` overrides
    the container chosen from the extension. picture(k, width, height) -> RGB (H, W, 3) uint8 is frame k
    (default: the counter grid). Encoded under own_scheduling(), as write_video is."""
    picture = picture or counter_frame
    path = Path(path)
    time_base = Fraction(1, 1000) if pts_seconds is not None else Fraction(1, fps)
    with own_scheduling(), av.open(str(path), "w", format=muxer) as container:
        stream = container.add_stream(encoder, rate=fps, options=dict(options or {}))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for name, value in (context or {}).items():
            setattr(stream.codec_context, name, value)
        stream.codec_context.flags |= flags
        stream.codec_context.time_base = time_base
        if rotation:
            stream.set_display_rotation(rotation)
        for k in range(n_frames):
            frame = av.VideoFrame.from_ndarray(picture(k, width, height), format="rgb24")
            frame.pts = round(pts_seconds[k] * 1000) if pts_seconds is not None else k
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_edit_list_cut(source, path, start_frame: int) -> Path:
    """What `ffmpeg -ss T -c copy` writes: the packets from the keyframe at or before `start_frame`,
    shifted so that `start_frame` is at time 0; the pre-roll frames get negative times, which the mp4
    muxer turns into an edit list (players decode them but never show them). `source` must be a
    constant-rate mp4 without B-frames before its first keyframe."""
    path = Path(path)
    with av.open(str(source)) as src, av.open(str(path), "w") as dst:
        stream = src.streams.video[0]
        out = dst.add_stream_from_template(stream)
        spf = round(1 / (stream.average_rate * stream.time_base))  # one frame, in time-base units
        target = (stream.start_time or 0) + start_frame * spf
        keys = [p.pts for p in src.demux(stream) if p.is_keyframe and p.pts is not None and p.pts <= target]
        src.seek(0, stream=stream)
        for packet in src.demux(stream):
            if packet.dts is None or packet.pts is None or packet.pts < max(keys):
                continue
            packet.pts, packet.dts, packet.stream = packet.pts - target, packet.dts - target, out
            dst.mux(packet)
    return path


def scene_frame(scene: int, k: int, width: int, height: int) -> np.ndarray:
    """RGB uint8 (H, W, 3) of scene `scene` at frame k: each scene its own colours, stripe direction and
    period, and noise seed; within a scene the stripes drift slowly with k (a little motion)."""
    yy, xx = np.mgrid[0:height, 0:width]
    period = 4 + 3 * scene
    angle = scene * np.pi / 6
    phase = (xx * np.cos(angle) + yy * np.sin(angle) + k * 0.5) / period
    stripes = (np.sin(2 * np.pi * phase) > 0)[..., None]  # (H, W, 1)
    rng = np.random.default_rng(100 + scene)
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    noise = rng.integers(-20, 21, size=(height, width, 3))
    img = np.where(stripes, a, b) + noise
    return np.clip(img, 0, 255).astype(np.uint8)


def srt_text(cues: list[tuple[float, float, str]]) -> str:
    def stamp(s: float) -> str:
        ms = int(round(s * 1000))
        return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    return "\n".join(f"{i + 1}\n{stamp(a)} --> {stamp(b)}\n{text}\n" for i, (a, b, text) in enumerate(cues))


def write_scene_video(path, scene_seconds: list[float], *, fps: int = 1, width: int = 64, height: int = 48,
                      gop_s: float = 4.0, subtitles: list[tuple[float, float, str]] | None = None,
                      subtitle_file=None, webm: bool = False) -> Path:
    """A Matroska h264 (or, webm=True, WebM VP9) video of visually distinct scenes (`scene_frame`) of the
    given lengths, cheap to make (tiny frames, low fps, a keyframe every gop_s seconds and at no scene
    cut of its own), with an embedded SubRip track of `subtitles` (start_s, end_s, text), or the stream
    of `subtitle_file` (.srt, .ass, .vtt) copied in (PyAV has no text-subtitle encoders, but can copy
    a demuxed stream)."""
    path = Path(path)
    gop = max(1, int(round(gop_s * fps)))
    srt = None
    if subtitles:
        srt = path.with_suffix(".embedded.srt")
        srt.write_text(srt_text(subtitles), encoding="utf-8")
    with av.open(str(path), "w", format="webm" if webm else "matroska") as container:
        opts = ({"deadline": "realtime", "cpu-used": "8", "g": str(gop)} if webm else
                {"preset": "ultrafast", "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"})
        stream = container.add_stream("libvpx-vp9" if webm else "libx264", rate=fps, options=opts)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        source = av.open(str(srt or subtitle_file)) if (srt or subtitle_file) else None
        sub = container.add_stream_from_template(source.streams.subtitles[0]) if source else None
        k = 0
        for scene, seconds in enumerate(scene_seconds):
            for i in range(int(round(seconds * fps))):
                frame = av.VideoFrame.from_ndarray(scene_frame(scene, i, width, height), format="rgb24")
                frame.pts = k
                k += 1
                container.mux(stream.encode(frame))
        container.mux(stream.encode())
        if source is not None:
            with source:
                for packet in source.demux(source.streams.subtitles[0]):
                    if packet.size:
                        packet.stream = sub
                        container.mux(packet)
    if srt is not None:
        srt.unlink()
    return path
