"""Video and image reading: a file path in, N sampled upright RGB frames out (`read_video` -> `Clip`).

The only module that imports `av`. It decodes only what the sampling rule needs: it seeks to the
keyframe before each sampled frame and decodes forward to it, and keeps decoding instead of
seeking when the next sampled frame lies in the GOP already being decoded. Short videos (all
targets within reach) therefore decode once, front to back, and keep only the wanted frames.

It deliberately knows nothing about torch, CLIP preprocessing or the model: frames leave as
uint8 numpy arrays at the file's own displayed resolution, unless the caller opts in to
`resize` (a function applied to each upright frame as a PIL image right after it is decoded: the
engine passes the official PLLaVA resize, so an 8K clip never holds more than one 8K frame, and
that one only in FFmpeg's buffer) or `max_short_side` (a fast swscale shrink while decoding).
Every failure a person can cause (missing, empty, corrupt, audio-only, too long, too slow, a time
range outside the video) is a `VideoError` with a sentence written for that person; no raw av/PIL
exception escapes.

Sampling (PLLaVA's official rule): frame k of N is `int(seg/2) + round(seg*k)` with
`seg = (n_total-1)/N`, and index i is the i-th frame in presentation order (decord's `vr[i]`).
On a constant-rate stream (an mp4 whose sample table spaces every frame evenly) i is found by time:
`start + i * duration/n_total`, the first frame whose pts is >= that minus half a frame, so a seek
lands on it. Any other stream (variable frame rate, or no complete index: webm, mkv, ...) is first
demuxed once without decoding, and its sorted packet pts give every ordinal its exact timestamp.
`start_s` / `end_s` restrict sampling to the frames whose timestamps lie in that range; the rule then
runs over the ordinals of those frames. `Clip.indices` are the ordinals actually returned.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import logging
import math
import os
import time
from dataclasses import dataclass
from collections.abc import Callable
from itertools import chain
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps, ImageSequence

from ..errors import VideoError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
_NO_INDEX_SEEK_S = 10.0  # without a keyframe index, seek only for jumps longer than this
# Containers whose seeks land where they say (a real index: mp4/mov sample tables, Matroska cues, AVI
# idx1). Others (MPEG program and transport streams, raw elementary streams, ...) seek by guessing a
# byte offset: PyAV marks every packet of an MPEG-2 PS a keyframe, the decoder resumes at the next real
# I-frame, and the first picture after such a seek can even carry a neighbour's pts. Those are decoded
# forward, never seeked.
_INDEXED_FORMATS = frozenset({"mov", "mp4", "matroska", "webm", "avi"})


def sample_indices(n_total: int, num_frames: int) -> list[int]:
    """PLLaVA's segment-centred rule; repeats frames when n_total < num_frames (as the official code)."""
    seg = (n_total - 1) / num_frames
    # Python's round() is banker's rounding, the same as the official np.round
    return [int(seg / 2) + int(round(seg * k)) for k in range(num_frames)]


@dataclass(frozen=True, repr=False)
class Clip:
    """Sampled frames of one file. A still image is a one-frame clip with fps 0.0 and duration 0.0
    (it has no frame rate). `indices` are the ordinals (0-based, presentation order) of the frames
    actually returned; `timestamps` their presentation times in seconds from the stream's start.
    `width` / `height` are the file's displayed (upright) size, which `frames` need not have (a
    resize). `time_range` is the (start_s, end_s) the caller restricted sampling to, or None."""

    frames: np.ndarray  # (T, H, W, 3) uint8, upright
    timestamps: tuple[float, ...]
    indices: tuple[int, ...]
    duration: float
    fps: float
    width: int
    height: int
    n_total: int
    source: str
    content_key: str  # identifies the file's bytes; the engine caches features by (content_key, T)
    decoded_frames: int = 0  # frames the decoder produced to make this clip (cost, for tests/bench)
    time_range: tuple[float, float] | None = None

    def __repr__(self) -> str:
        return (
            f"Clip(frames={tuple(self.frames.shape)} {self.frames.dtype}, T={len(self.indices)}, "
            f"indices={list(self.indices)}, duration={self.duration:.2f}s, fps={self.fps:.3f}, "
            f"size={self.width}x{self.height}, n_total={self.n_total}, decoded_frames={self.decoded_frames}, "
            f"{'' if self.time_range is None else f'time_range={self.time_range}, '}"
            f"source={Path(self.source).name!r}, content_key={self.content_key!r})"
        )


def content_key(path) -> str:
    """sha256 of the whole file, as 16 hex digits; independent of name and mtime. The whole file: the
    key is shared by every user's cache, so two files that differ anywhere must never share it (a copy
    altered only in the middle would otherwise be answered with another video's features). Remembered
    per (path, size, mtime) so an upload is hashed once (about 0.1 s for 200 MB)."""
    st = os.stat(path)
    return _content_key(os.path.realpath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _content_key(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


def human_duration(seconds: float) -> str:
    """'2 h 0 min', '10 min', '1 min 30 s', '4.5 s' (for messages)."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60} min"
    if s >= 60:
        return f"{s // 60} min" + (f" {s % 60} s" if s % 60 else "")
    return f"{seconds:.3g} s"


# ---------------------------------------------------------------------------------------- checks


def _mb(n_bytes: float) -> str:
    """Megabytes (2**20 bytes) rounded UP (to 0.1, or 0.001 below 1 MB), so a file just over a limit
    never reads as equal to it."""
    scale = 10 if n_bytes >= 2**20 else 1000
    return f"{math.ceil(n_bytes / 2**20 * scale) / scale:,g}"


def check_file(path, *, max_mb: float | None = None) -> Path:
    """The checks every reader starts with (exists, is a file, not empty, at most `max_mb`), done
    before any byte is decoded; a server calls it first so an oversized upload costs nothing."""
    p = _check_path(path)
    size = p.stat().st_size
    if max_mb is not None and size > max_mb * 2**20:
        raise VideoError(f"The file is {_mb(size)} MB; the limit is {max_mb:,g} MB.")
    return p


def _check_path(path) -> Path:
    p = Path(path)
    if not p.exists():
        raise VideoError(f"The file '{p.name}' does not exist.")
    if not p.is_file():
        raise VideoError(f"'{p.name}' is not a file.")
    if p.stat().st_size == 0:
        raise VideoError(f"The file '{p.name}' is empty (0 bytes).")
    return p


def _check_knobs(num_frames, max_duration, time_budget, max_short_side) -> None:
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise VideoError(f"num_frames must be a whole number >= 1, got {num_frames!r}.")
    if max_short_side is not None and (isinstance(max_short_side, bool) or not isinstance(max_short_side, int)
                                       or max_short_side < 1):
        raise VideoError(f"max_short_side must be None or a whole number >= 1, got {max_short_side!r}.")
    for name, value in (("max_duration", max_duration), ("time_budget", time_budget)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
            raise VideoError(f"{name} must be None or a number of seconds > 0, got {value!r}.")


def _check_range(start_s, end_s) -> tuple[float | None, float | None]:
    """The requested time range as floats (None = open end); its fit to the video is checked later."""
    out = []
    for name, value in (("start_s", start_s), ("end_s", end_s)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value < 0):
            raise VideoError(f"{name} must be None or a number of seconds >= 0, got {value!r}.")
        out.append(None if value is None else float(value))
    if out[0] is not None and out[1] is not None and not out[0] < out[1]:
        raise VideoError(f"The time range must start before it ends, got {out[0]:g} s to {out[1]:g} s.")
    return out[0], out[1]


def _range_ordinals(times, start_s: float | None, end_s: float | None, duration: float, name: str) -> tuple[int, int]:
    """(first, last) ordinal of the frames whose time lies in [start_s, end_s]; `times` is a sorted
    sequence of every frame's time in seconds (or anything bisect can search)."""
    lo = 0.0 if start_s is None else start_s
    hi = duration if end_s is None else end_s
    eps = 1e-6  # a range typed from a shown timestamp (rounded to ms) still includes that frame
    if lo >= duration or hi > duration + 1e-3:
        raise VideoError(f"The time range {lo:g} s to {hi:g} s is not inside '{name}', which runs from "
                         f"0 s to {duration:.3f} s.")
    first = bisect.bisect_left(times, lo - eps)
    last = bisect.bisect_right(times, hi + eps) - 1
    if last < first:
        raise VideoError(f"No frame of '{name}' lies between {lo:g} s and {hi:g} s; widen the range "
                         f"(the video runs from 0 s to {duration:.3f} s).")
    return first, last


class _Times:
    """The times k * spf of a constant-rate stream's n frames, as a sequence bisect can search."""

    def __init__(self, n: int, spf: float):
        self.n, self.spf = n, spf

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, k: int) -> float:
        return k * self.spf


def _unreadable(p: Path) -> VideoError:
    with open(p, "rb") as f:
        head = f.read(512)  # never the whole file: it may be huge
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.strip() and all(c.isprintable() or c.isspace() for c in text):
        kind = "a web page" if "<html" in text.lower() or "<!doctype" in text.lower() else "a text file"
        return VideoError(f"'{p.name}' is {kind}, not a video or an image.")
    return VideoError(f"'{p.name}' is not a video or image that can be read (it may be corrupt, truncated or of an unsupported type).")


def _check_duration(p: Path, duration: float | None, max_duration: float | None) -> None:
    if max_duration is not None and duration is not None and duration > max_duration:
        raise VideoError(f"The video is {human_duration(duration)} long; the limit is {human_duration(max_duration)}.")


# ------------------------------------------------------------------------------------ still images


def _shrunk(width: int, height: int, max_short_side: int | None) -> tuple[int, int] | None:
    """(width, height) with the short side brought down to max_short_side, or None if already small."""
    short = min(width, height)
    if max_short_side is None or short <= max_short_side:
        return None
    scale = max_short_side / short
    return max(1, round(width * scale)), max(1, round(height * scale))


Resize = Callable[[Image.Image], Image.Image]
_ROTATIONS = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_270}


def _rotation(frame) -> int:
    """Quarter turns counter-clockwise the display matrix asks for (0 for other angles, with a warning)."""
    try:
        rotation = frame.rotation  # degrees counter-clockwise
    except Exception:  # noqa: BLE001 - a malformed display matrix must not lose the frame
        rotation = 0
    if rotation % 90:
        log.warning("ignoring a %s degree display rotation (only multiples of 90 are applied)", rotation)
        return 0
    return round(rotation / 90) % 4


def _display_size(frame) -> tuple[int, int]:
    """(width, height) as shown: after the display rotation."""
    return (frame.height, frame.width) if _rotation(frame) % 2 else (frame.width, frame.height)


def _progressive(frame):
    """The same picture without the interlaced flag. swscale converts a frame flagged interlaced field
    by field (each field's chroma apart), which differs from the official decoder's whole-frame
    conversion by up to ~150 levels on edges; a copy of the planes without the flag converts as it
    does. Colour tags travel with the copy; the display matrix does not (read it from the original)."""
    out = av.VideoFrame(frame.width, frame.height, frame.format.name)
    for src, dst in zip(frame.planes, out.planes):
        rows_in = np.frombuffer(src, np.uint8).reshape(-1, src.line_size)  # (rows, line_size)
        rows_out = np.frombuffer(dst, np.uint8).reshape(-1, dst.line_size)
        n = min(src.line_size, dst.line_size)
        rows_out[:, :n] = rows_in[: rows_out.shape[0], :n]
    for tag in ("colorspace", "color_range", "color_primaries", "color_trc"):
        setattr(out, tag, getattr(frame, tag))
    return out


def _to_rgb(frame, max_short_side: int | None = None, resize: Resize | None = None) -> np.ndarray:
    k = _rotation(frame)
    if frame.interlaced_frame:
        frame = _progressive(frame)
    if resize is not None:
        # FFmpeg converts to RGBX, which PIL maps without a copy (PIL keeps RGB as RGBX anyway, and
        # resamples each channel alike), so the one full-size frame exists once, in FFmpeg's buffer;
        # turned upright, resized by the caller, and only the small result becomes an array.
        plane = frame.reformat(format="rgb0").planes[0]
        im = Image.frombuffer("RGBX", (plane.width, plane.height), plane, "raw", "RGBX", plane.line_size, 1)
        out = resize(im.transpose(_ROTATIONS[k]) if k else im)
        return np.asarray(out.convert("RGB") if out.mode != "RGB" else out)  # (h, w, 3)
    size = _shrunk(frame.width, frame.height, max_short_side)
    if size is None:
        arr = frame.to_ndarray(format="rgb24")  # (H, W, 3)
    else:  # scale inside swscale, from YUV: the full-size RGB picture is never made
        arr = frame.to_ndarray(format="rgb24", width=size[0], height=size[1], interpolation="AREA")  # (h, w, 3)
    if k:
        arr = np.ascontiguousarray(np.rot90(arr, k=k))  # rot90 turns counter-clockwise
    return arr


def _pil_rgb(im, max_short_side: int | None, resize: Resize | None = None) -> np.ndarray:
    im = im.convert("RGB")
    if resize is not None:
        return np.asarray(resize(im))  # (h, w, 3)
    size = _shrunk(im.width, im.height, max_short_side)
    if size is not None:
        im = im.resize(size, Image.BICUBIC, reducing_gap=2.0)  # reducing_gap: box-reduce first, fast
    return np.asarray(im)  # (H, W, 3)


@dataclass(frozen=True)
class _Request:
    """What read_video was asked for, validated once and passed down."""

    num_frames: int
    key: str
    max_duration: float | None = None
    budget: float | None = None
    deadline: float | None = None
    short_side: int | None = None
    resize: Resize | None = None
    start_s: float | None = None
    end_s: float | None = None

    @property
    def time_range(self) -> tuple[float, float] | None:
        return None if self.start_s is None and self.end_s is None else (self.start_s, self.end_s)

    def rgb(self, frame) -> np.ndarray:
        return _to_rgb(frame, self.short_side, self.resize)

    def pick(self, times, duration: float, name: str) -> list[int]:
        """The rule's ordinals among the frames whose `times` (sorted, seconds) lie in the range."""
        if self.time_range is None:
            return sample_indices(len(times), self.num_frames)
        first, last = _range_ordinals(times, self.start_s, self.end_s, duration, name)
        return [first + i for i in sample_indices(last - first + 1, self.num_frames)]


def _read_pil(p: Path, req: _Request) -> Clip | None:
    """Still or animated image through PIL; None when PIL cannot read it either. An animation is read in
    one pass under the decode time budget (two with a time range: the first only learns the times)."""
    try:
        with Image.open(p) as im:
            n = getattr(im, "n_frames", 1)
            if n <= 1:
                if req.time_range is not None:
                    raise VideoError(f"'{p.name}' is a still image; a time range applies only to videos.")
                width, height = im.size
                if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # EXIF orientations that turn it a quarter
                    width, height = height, width
                size = _shrunk(im.width, im.height, req.short_side) if req.resize is None else None
                if size is not None:
                    im.draft("RGB", size)  # JPEG decodes at 1/2, 1/4 or 1/8 scale; other formats ignore it
                rgb = _pil_rgb(ImageOps.exif_transpose(im), req.short_side, req.resize)  # EXIF orientation: upright
                return Clip(rgb[None], (0.0,), (0,), 0.0, 0.0, width, height, 1, str(p), req.key, 1)
            starts, t = [], 0.0
            for fr in ImageSequence.Iterator(im) if req.time_range is not None else ():
                _check_deadline(req.deadline, req.budget)
                starts.append(t)
                t += (fr.info.get("duration") or 100) / 1000.0  # ms; browsers show 0 as ~100 ms
            indices = req.pick(starts, t, p.name) if req.time_range is not None else sample_indices(n, req.num_frames)
            wanted: dict[int, np.ndarray | None] = {i: None for i in indices}
            starts, t = [], 0.0
            for i, fr in enumerate(ImageSequence.Iterator(im)):
                _check_deadline(req.deadline, req.budget)
                starts.append(t)
                t += (fr.info.get("duration") or 100) / 1000.0
                if req.max_duration is not None and t > req.max_duration:
                    _check_duration(p, t, req.max_duration)
                if i in wanted:
                    wanted[i] = _pil_rgb(fr, req.short_side, req.resize)
            frames = np.stack([wanted[i] for i in indices])  # (T, H, W, 3)
    except VideoError:
        raise
    except Image.DecompressionBombError as e:
        raise VideoError(f"The image '{p.name}' is too large to open safely.") from e
    except Exception:  # noqa: BLE001 - PIL raises many kinds; the caller turns None into a VideoError
        return None
    return Clip(frames, tuple(starts[i] for i in indices), tuple(indices), t, n / t, im.width, im.height, n, str(p),
                req.key, n, req.time_range)


# ----------------------------------------------------------------------------------------- videos


def _check_deadline(deadline: float | None, budget: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise VideoError(f"Reading the video took longer than the {budget:g} s allowed; try a shorter video or fewer frames.")


class _Decoder:
    """Decodes the frames at given thresholds (pts) of one stream, seeking only when it saves work."""

    def __init__(self, container, stream, deadline: float | None, budget: float | None, start_pts: int, spf_pts: float):
        self.container, self.stream = container, stream
        self.deadline, self.budget = deadline, budget
        self.start_pts, self.spf_pts = start_pts, spf_pts  # stream start; one frame, in time_base units
        self.decoded = 0
        self.seekable = bool(_INDEXED_FORMATS & set(container.format.name.split(",")))
        entries = stream.index_entries
        # container index (mp4 sample table, mkv cues): where GOPs start. mp4 indexes hold dts, which
        # B-frame reordering shifts before pts (seeking works on pts): align the first keyframe on start.
        keys = sorted(e.timestamp for e in entries if e.is_keyframe) if len(entries) else []
        # A single entry (webm cues per cluster) says nothing about GOPs: estimate from decoding instead.
        # But an index that also lists non-keyframes (an mp4 sample table) is complete even with one
        # keyframe: trusting it stops a one-GOP file (screen recordings) seeking back to 0 per frame.
        complete = len(keys) > 1 or len(entries) > len(keys)
        self.keyframes = [k + start_pts - keys[0] for k in keys] if keys and complete else []
        self.key_gaps: list[int] = []  # pts gaps between consecutive keyframes decoded in one run
        self._last_key: int | None = None

    def frames(self):
        """Decoded frames from the current position; bad packets are skipped, a demux error ends it."""
        try:
            for packet in self.container.demux(self.stream):
                self._check_time()
                try:
                    out = packet.decode()
                except av.FFmpegError:
                    log.debug("skipping a packet that does not decode at pts %s", packet.pts)
                    continue
                yield from self._count(out)
        except av.FFmpegError as e:  # truncated or garbled container: end of stream, keep what we have
            log.info("demuxing stopped early: %s", e)
            try:
                yield from self._count(self.stream.codec_context.decode(None))  # drain reordered frames
            except av.FFmpegError:
                pass

    def _count(self, out):
        for frame in out:
            self.decoded += 1
            if frame.key_frame and frame.pts is not None:
                if self._last_key is not None:
                    self.key_gaps.append(frame.pts - self._last_key)
                self._last_key = frame.pts
            yield frame

    def _check_time(self) -> None:
        _check_deadline(self.deadline, self.budget)

    def worth_seeking(self, thr: float, pos: float) -> bool:
        """Seek only if a keyframe lies between where the decoder is and the target."""
        if thr <= pos or not self.seekable:
            return False
        if self.keyframes:
            i = bisect.bisect_right(self.keyframes, thr + self.spf_pts / 2) - 1
            return i >= 0 and self.keyframes[i] > pos + self.spf_pts / 2
        gop = max(self.key_gaps, default=None)
        if gop is None:
            gop = _NO_INDEX_SEEK_S / float(self.stream.time_base)
        return thr - pos > gop

    def seek_run(self, thr: float):
        """Frames from a keyframe at or before `thr`. Demuxer indexes hold dts and some formats seek
        loosely, so when the first frame lands after the target we step further back and retry."""
        step = self.spf_pts * 4
        target = int(thr + self.spf_pts / 2)  # the frame's own pts: a keyframe target needs no earlier GOP
        for _ in range(6):
            self._last_key = None  # a seek breaks the run: the next gap would span skipped GOPs
            self.container.seek(max(target, self.start_pts), stream=self.stream, backward=True, any_frame=False)
            run = self.frames()
            first = next(run, None)
            if first is not None and (first.pts is None or first.pts < thr + self.spf_pts or target <= self.start_pts):
                return chain([first], run)
            target = int(min(target, first.pts if first is not None else target) - step)
            step *= 2
        self.container.seek(self.start_pts, stream=self.stream, backward=True, any_frame=False)
        return self.frames()


def _meta(container, stream) -> tuple[int | None, float | None, float | None]:
    """(n_total, duration s, average fps) from headers; None where the file does not say."""
    tb = stream.time_base
    if stream.duration and tb:
        duration = float(stream.duration * tb)
    elif container.duration:
        duration = container.duration / av.time_base
    else:
        duration = None
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    rate = float(rate) if rate else None
    n = stream.frames if stream.frames and stream.frames > 0 else None
    if n is None and duration and rate:
        n = max(1, int(round(duration * rate)))
    return n, duration, rate


def _constant_rate(stream, n_total: int, duration: float | None) -> bool:
    """True when the container's sample table lists every frame at an even spacing (an mp4 from a
    camera, an encoder at a fixed rate): then frame i is found by time. Anything else is not known to
    be constant-rate (a phone's or screen recorder's VFR mp4; webm/mkv, whose cues list keyframes only)."""
    if n_total == 1:
        return True
    entries = stream.index_entries
    if not duration or len(entries) != n_total:
        return False
    dts = np.fromiter((e.timestamp for e in entries), dtype=np.float64, count=len(entries))  # (n,)
    spf_pts = duration / n_total / float(stream.time_base)
    # the time rule picks ordinal k iff frame k lies within half a frame of k * spf: demand a quarter
    drift = dts - dts[0] - np.arange(len(dts)) * spf_pts
    return bool(np.abs(drift).max() < spf_pts / 4)


def _scan_packets(p: Path, req: _Request) -> tuple[int, list[int] | None]:
    """One demux pass, no decoding: (frame count, every frame's pts sorted into presentation order),
    the pts None when some packet has none."""
    with av.open(str(p)) as container:
        stream = container.streams.video[0]
        n, pts, timed = 0, [], True
        try:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.is_discard:  # flush packets; frames an edit list drops
                    continue
                n += 1
                if packet.pts is None:
                    timed = False
                else:
                    pts.append(packet.pts)
                if n % 256 == 0:  # a huge stream must not escape the time budget
                    _check_deadline(req.deadline, req.budget)
        except av.FFmpegError:
            pass
    return n, sorted(pts) if timed and pts else None


def read_video(path, num_frames: int = 16, *, max_duration: float | None = None, time_budget: float | None = None,
               max_short_side: int | None = None, resize: Resize | None = None, start_s: float | None = None,
               end_s: float | None = None, key: str | None = None) -> Clip:
    """Read `num_frames` frames of a video (or one of a still image) sampled by PLLaVA's rule.
    resize: applied to every upright RGB frame (a PIL image) right after decoding; the clip keeps what it
    returns (the engine passes preprocess.official_resize). max_short_side: instead, shrink frames whose
    short side is longer inside swscale (fast, not the official pixels). Clip.width/height stay the file's
    displayed size. start_s / end_s: sample only the frames whose timestamps lie in [start_s, end_s]
    (seconds from the start; either may be None); the range must lie inside the video.
    key: the file's content_key when the caller already computed it (saves hashing the file again)."""
    _check_knobs(num_frames, max_duration, time_budget, max_short_side)
    if resize is not None and (max_short_side is not None or not callable(resize)):
        raise VideoError("resize must be a function of a PIL image, and cannot be combined with max_short_side.")
    start_s, end_s = _check_range(start_s, end_s)
    p = _check_path(path)
    deadline = time.monotonic() + time_budget if time_budget is not None else None
    req = _Request(num_frames, key or content_key(p), max_duration, time_budget, deadline, max_short_side, resize,
                   start_s, end_s)
    if p.suffix.lower() in IMAGE_EXTENSIONS:
        clip = _read_pil(p, req)
        if clip is not None:
            return clip
    try:
        container = av.open(str(p))
    except (av.FFmpegError, OSError, ValueError) as e:
        clip = _read_pil(p, req)
        if clip is not None:
            return clip
        raise _unreadable(p) from e
    with container:
        if not container.streams.video:
            clip = _read_pil(p, req)
            if clip is not None:
                return clip
            if container.streams.audio:
                raise VideoError(f"'{p.name}' has no video track; it contains only audio.")
            raise VideoError(f"'{p.name}' contains no video track.")
        try:
            return _read_stream(p, container, req)
        except av.FFmpegError as e:
            raise VideoError(f"'{p.name}' could not be decoded (it may be corrupt or truncated).") from e


def _read_stream(p, container, req: _Request) -> Clip:
    stream = container.streams.video[0]
    n_total, duration, rate = _meta(container, stream)
    _check_duration(p, duration, req.max_duration)
    pts = None  # every frame's pts in presentation order, when the stream is not known to be constant-rate
    if n_total is None or not _constant_rate(stream, n_total, duration):
        count, pts = _scan_packets(p, req)
        n_total = len(pts) if pts else (n_total or count)
        if duration is None and rate:
            duration = n_total / rate
            _check_duration(p, duration, req.max_duration)
    if not n_total:
        raise VideoError(f"'{p.name}' contains no video frames.")
    tb = float(stream.time_base)
    spf = duration / n_total if duration else (1.0 / rate if rate else 1.0)  # seconds per frame (average)
    start_pts = stream.start_time or 0
    if pts is not None:  # exact: ordinal k is the k-th pts, whatever the spacing
        start_pts = stream.start_time if stream.start_time is not None else pts[0]
        gaps = np.diff(np.asarray(pts, dtype=np.float64))
        spf_pts = float(gaps[gaps > 0].min()) if (gaps > 0).any() else spf / tb  # tolerances stay under any gap
        indices = req.pick([(q - start_pts) * tb for q in pts], duration or n_total * spf, p.name)
        thr_of = lambda t: pts[t] - 0.25  # noqa: E731 - the frame whose pts is pts[t]

        def ordinal_of(q):  # decoded frames carry exactly these pts
            return min(bisect.bisect_left(pts, q), len(pts) - 1)
    else:
        spf_pts = spf / tb
        indices = req.pick(_Times(n_total, spf), duration or n_total * spf, p.name)
        thr_of = lambda t: start_pts + (t - 0.5) * spf_pts  # noqa: E731 - first pts that counts as frame t

        def ordinal_of(q):
            return min(n_total - 1, max(0, round((q - start_pts) / spf_pts)))
    dec = _Decoder(container, stream, req.deadline, req.budget, start_pts, spf_pts)
    # Frame threads pay off when decoding long runs; when most targets need their own seek they
    # only add a pipeline to refill after every flush, so those reads use slice threads.
    sparse = len(dec.keyframes) > 1 and n_total / req.num_frames > 2 * n_total / len(dec.keyframes)
    stream.thread_type = "SLICE" if sparse else "AUTO"

    targets = sorted(set(indices))
    thr = [thr_of(t) for t in targets]
    got = _Frames(targets)
    run, pos, last, i = dec.frames(), start_pts - spf_pts / 2, None, 0  # a fresh container is at the start
    while i < len(targets):
        if dec.worth_seeking(thr[i], pos):
            run = dec.seek_run(thr[i])
        for frame in run:
            last = frame
            if frame.pts is None:  # no timestamps: only counting works, and only front to back
                return _read_by_count(p, req, n_total, duration, rate)
            pos = frame.pts
            hit = i < len(targets) and pos >= thr[i]
            if hit:
                rgb = req.rgb(frame)
            while i < len(targets) and pos >= thr[i]:
                got.put(targets[i], rgb, (pos - start_pts) * tb, ordinal_of(pos))
                i += 1
            if hit:
                break
        else:  # end of stream before these targets (frame count overestimated): repeat the last frame
            if last is None:
                break
            rgb = req.rgb(last)
            q = last.pts if last.pts is not None else start_pts
            for t in targets[i:]:
                got.put(t, rgb, (q - start_pts) * tb, ordinal_of(q))
            break
    if not got:
        raise VideoError(f"No frame of '{p.name}' could be decoded; the file may be corrupt or truncated.")
    return _make_clip(p, req, indices, got, duration if duration else n_total * spf, 1.0 / spf, n_total, dec.decoded,
                      _display_size(last))


def _read_by_count(p, req: _Request, n_total, duration, rate) -> Clip:
    """Front-to-back decode picking frames by their ordinal, for streams without pts."""
    fps = rate or 1.0
    indices = req.pick(_Times(n_total, 1.0 / fps), duration or n_total / fps, p.name)
    want, got, last = set(indices), _Frames(sorted(set(indices))), None
    with av.open(str(p)) as container:
        stream = container.streams.video[0]
        dec = _Decoder(container, stream, req.deadline, req.budget, 0, 1.0)
        for n, frame in enumerate(dec.frames()):
            last = frame
            if n in want:
                got.put(n, req.rgb(frame), n / fps, n)
            if n >= max(indices):
                break
        if last is None:
            raise VideoError(f"No frame of '{p.name}' could be decoded; the file may be corrupt or truncated.")
        missing = want - got.done
        if missing:
            rgb = req.rgb(last)
            for t in missing:
                got.put(t, rgb, float(n) / fps, n)
        return _make_clip(p, req, indices, got, duration or n_total / fps, fps, n_total, dec.decoded,
                          _display_size(last))


class _Frames:
    """The sampled frames, written into the clip's array as they are decoded. Holding them apart and
    stacking at the end would allocate and page-fault a second full-size copy: a third of the time of
    a seek-based read of a 720p video."""

    def __init__(self, targets: list[int]):
        self.slot = {t: k for k, t in enumerate(targets)}  # distinct frame numbers, increasing
        self.buf: np.ndarray | None = None  # (len(targets), H, W, 3)
        self.times: dict[int, float] = {}
        self.ordinals: dict[int, int] = {}  # target -> ordinal of the frame actually stored for it

    def put(self, target: int, rgb: np.ndarray, seconds: float, ordinal: int) -> None:
        if self.buf is None:
            self.buf = np.empty((len(self.slot), *rgb.shape), dtype=np.uint8)
        elif rgb.shape != self.buf.shape[1:]:  # resolution changed mid-stream: one size per clip
            rgb = np.asarray(Image.fromarray(rgb).resize((self.buf.shape[2], self.buf.shape[1]), Image.BICUBIC))
        self.buf[self.slot[target]] = rgb
        self.times[target] = float(seconds)
        self.ordinals[target] = int(ordinal)

    @property
    def done(self) -> set[int]:
        return set(self.times)

    def __bool__(self) -> bool:
        return bool(self.times)

    def frames(self, indices) -> np.ndarray:
        """(T, H, W, 3) in sampling order; the buffer itself when no frame repeats (the usual case)."""
        if list(indices) == list(self.slot):
            return self.buf
        return self.buf[[self.slot[t] for t in indices]]


def _make_clip(p, req: _Request, indices, got: _Frames, duration, fps, n_total, decoded, size) -> Clip:
    done = sorted(got.done)
    for t in set(indices) - got.times.keys():  # a damaged tail: the nearest decoded frame stands in
        near = min(done, key=lambda d: abs(d - t))
        got.put(t, got.buf[got.slot[near]], got.times[near], got.ordinals[near])
    frames = got.frames(indices)  # (T, H, W, 3)
    return Clip(frames, tuple(got.times[t] for t in indices), tuple(got.ordinals[t] for t in indices),
                float(duration), float(fps), size[0], size[1], int(n_total), str(p), req.key,
                decoded, req.time_range)


def probe(path) -> dict:
    """Cheap metadata for the UI (reject too-long files before decoding): duration, fps, width, height
    (displayed, i.e. after rotation), codec, n_frames. Decodes at most one frame (for the rotation)."""
    p = _check_path(path)
    if p.suffix.lower() in IMAGE_EXTENSIONS:
        clip = _read_pil(p, _Request(1, ""))
        if clip is not None:
            return {"duration": clip.duration, "fps": clip.fps, "width": clip.width, "height": clip.height,
                    "codec": "image", "n_frames": clip.n_total}
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise VideoError(f"'{p.name}' has no video track.")
            stream = container.streams.video[0]
            n, duration, rate = _meta(container, stream)
            width, height = stream.codec_context.width, stream.codec_context.height
            frame = next(iter(container.decode(stream)), None)
            if frame is not None and frame.rotation % 180:
                width, height = height, width
            return {"duration": duration, "fps": rate, "width": width, "height": height,
                    "codec": stream.codec_context.name, "n_frames": n}
    except av.FFmpegError as e:
        raise _unreadable(p) from e
