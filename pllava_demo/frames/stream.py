"""One video stream of a container, through PyAV: its timeline (which ordinal is at which time) and
the decoding of given ordinals, seeking only where it saves work and only where seeking can be trusted.

It decodes only what is asked: it seeks to the keyframe before a wanted frame and decodes forward to
it, and keeps decoding instead of seeking when the next wanted frame lies in the GOP already being
decoded (short videos therefore decode once, front to back). A container seeks only when it has a real
index (mp4/mov sample tables, Matroska cues, AVI idx1): elsewhere (MPEG program and transport streams,
raw streams) a seek guesses a byte offset, PyAV marks every packet of an MPEG-2 program stream a
keyframe, the decoder resumes at the next real I-frame and the first picture can even carry a
neighbour's pts; those streams are decoded forward. A seek that lands after its target steps back.

Timeline: on a constant-rate stream (an mp4 whose sample table spaces every frame evenly) ordinal i is
found by time, `start + i * duration/n`; any other stream is first demuxed once without decoding
(seek_mode "exact") and its sorted packet pts give every ordinal its exact time, or is taken as
constant-rate from its headers (seek_mode "approximate": no scan, ordinals can be off on a VFR file).

It knows nothing about sampling rules, stills or pixel formats (see samplers.py, images.py, convert.py).
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass
from functools import cached_property
from itertools import chain
from pathlib import Path

import av
import numpy as np

from ..errors import VideoError
from .batch import FrameBatch, FrameBuffer
from .checks import Deadline, check_duration
from .convert import Convert, display_size

log = logging.getLogger(__name__)

_NO_INDEX_SEEK_S = 10.0  # without a keyframe index, seek only for jumps longer than this
_INDEXED_FORMATS = frozenset({"mov", "mp4", "matroska", "webm", "avi"})


def header(container, stream) -> tuple[int | None, float | None, float | None]:
    """(n_frames, duration s, average fps) from headers; None where the file does not say."""
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


def constant_rate(stream, n_total: int, duration: float | None) -> bool:
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


def scan_packets(path: Path, deadline: Deadline) -> tuple[int, list[int] | None]:
    """One demux pass, no decoding: (frame count, every frame's pts sorted into presentation order),
    the pts None when some packet has none."""
    with av.open(str(path)) as container:
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
                    deadline.check()
        except av.FFmpegError:
            pass
    return n, sorted(pts) if timed and pts else None


class _EvenTimes:
    """The times k * spf of a constant-rate stream's n frames, as a sequence bisect can search."""

    def __init__(self, n: int, spf: float):
        self.n, self.spf = n, spf

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, k: int) -> float:
        if not 0 <= k < self.n:
            raise IndexError(k)
        return k * self.spf


@dataclass(frozen=True)
class Timeline:
    """Which ordinal is at which time. `pts`: every frame's pts in presentation order (exact), or None
    (constant rate: ordinal k is at k * spf). Units: seconds, except *_pts (the stream's time base)."""

    n_frames: int
    duration: float
    spf: float  # seconds per frame, on average
    start_pts: int
    spf_pts: float  # one frame in time-base units (the smallest gap when the pts are known)
    time_base: float
    pts: list[int] | None = None

    @cached_property
    def times(self):
        """Every ordinal's time in seconds from the start, sorted."""
        if self.pts is None:
            return _EvenTimes(self.n_frames, self.spf)
        return [(q - self.start_pts) * self.time_base for q in self.pts]

    def threshold(self, ordinal: int) -> float:
        """The first pts that counts as this ordinal's frame."""
        if self.pts is not None:
            return self.pts[ordinal] - 0.25
        return self.start_pts + (ordinal - 0.5) * self.spf_pts

    def ordinal_of(self, pts: int) -> int:
        if self.pts is not None:  # decoded frames carry exactly these pts
            return min(bisect.bisect_left(self.pts, pts), len(self.pts) - 1)
        return min(self.n_frames - 1, max(0, round((pts - self.start_pts) / self.spf_pts)))

    def seconds(self, pts: int) -> float:
        return (pts - self.start_pts) * self.time_base


class _Seeker:
    """Decodes forward from where the container is, and seeks only when it saves work."""

    def __init__(self, container, stream, deadline: Deadline, timeline: Timeline):
        self.container, self.stream, self.deadline = container, stream, deadline
        self.start_pts, self.spf_pts = timeline.start_pts, timeline.spf_pts
        self.decoded = 0
        self.seekable = bool(_INDEXED_FORMATS & set(container.format.name.split(",")))
        entries = stream.index_entries
        # container index (mp4 sample table, mkv cues): where GOPs start. mp4 indexes hold dts, which
        # B-frame reordering shifts before pts (seeking works on pts): align the first keyframe on start.
        keys = sorted(e.timestamp for e in entries if e.is_keyframe) if len(entries) and self.seekable else []
        # A single entry (webm cues per cluster) says nothing about GOPs: estimate from decoding instead.
        # But an index that also lists non-keyframes (an mp4 sample table) is complete even with one
        # keyframe: trusting it stops a one-GOP file (screen recordings) seeking back to 0 per frame.
        complete = len(keys) > 1 or len(entries) > len(keys)
        self.keyframes = [k + self.start_pts - keys[0] for k in keys] if keys and complete else []
        self.key_gaps: list[int] = []  # pts gaps between consecutive keyframes decoded in one run
        self._last_key: int | None = None

    def frames(self):
        """Decoded frames from the current position; bad packets are skipped, a demux error ends it."""
        try:
            for packet in self.container.demux(self.stream):
                self.deadline.check()
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

    def worth_seeking(self, thr: float, pos: float) -> bool:
        """Seek only if seeking can be trusted and a keyframe lies between where the decoder is and the target."""
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


class StreamSource:
    """The first video stream of an open container. `decode` and `keyframes` return FrameBatches;
    `decoded` counts the frames the decoder produced (cost, for tests and benchmarks)."""

    def __init__(self, path: Path, container, *, exact: bool, deadline: Deadline, max_duration: float | None):
        self.path, self.deadline, self.exact, self.max_duration = path, deadline, exact, max_duration
        self.container, self._used = container, False
        self.n_header, self.duration_header, self.rate = header(container, container.streams.video[0])
        check_duration(self.duration_header, max_duration)
        self.decoded = 0
        self.display: tuple[int, int] | None = None  # (width, height) upright, once a frame is decoded
        self._key_gaps: list[int] = []

    @property
    def stream(self):
        return self.container.streams.video[0]

    @property
    def codec(self) -> str:
        return self.stream.codec_context.name

    @cached_property
    def timeline(self) -> Timeline:
        stream, n_total, duration, rate = self.stream, self.n_header, self.duration_header, self.rate
        pts = None
        if n_total is None or (self.exact and not constant_rate(stream, n_total, duration)):
            count, pts = scan_packets(self.path, self.deadline)
            n_total = len(pts) if pts else (n_total or count)
            if duration is None and rate:
                duration = n_total / rate
                check_duration(duration, self.max_duration)
        if not n_total:
            raise VideoError(f"'{self.path.name}' contains no video frames.")
        tb = float(stream.time_base)
        spf = duration / n_total if duration else (1.0 / rate if rate else 1.0)
        start_pts = stream.start_time or 0
        spf_pts = spf / tb
        if pts is not None:
            start_pts = stream.start_time if stream.start_time is not None else pts[0]
            gaps = np.diff(np.asarray(pts, dtype=np.float64))
            if (gaps > 0).any():
                spf_pts = float(gaps[gaps > 0].min())  # tolerances stay under any gap
        return Timeline(n_total, duration or n_total * spf, spf, start_pts, spf_pts, tb, pts)

    @property
    def n_frames(self) -> int:
        return self.timeline.n_frames

    @property
    def duration(self) -> float:
        return self.timeline.duration

    @property
    def fps(self) -> float:
        return 1.0 / self.timeline.spf

    def frame_times(self):
        return self.timeline.times

    def size(self) -> tuple[int, int]:
        """(width, height) as shown; decodes the first frame when none has been (for the rotation)."""
        if self.display is None:
            container = self._fresh()
            frame = next(iter(container.decode(self.stream)), None)
            ctx = self.stream.codec_context
            self.display = display_size(frame) if frame is not None else (ctx.width, ctx.height)
        return self.display

    def _fresh(self):
        """The container at its start: the one opened first, then a new one per call."""
        if self._used:
            self.container.close()
            self.container = av.open(str(self.path))
        self._used = True
        return self.container

    def _seeker(self) -> _Seeker:
        seeker = _Seeker(self._fresh(), self.stream, self.deadline, self.timeline)
        seeker.key_gaps = self._key_gaps  # what earlier runs learned about the GOP length
        return seeker

    def decode(self, ordinals, convert: Convert) -> FrameBatch:
        """The frames at these ordinals (any order, repeats allowed)."""
        rgb, tl, seeker = convert.video, self.timeline, self._seeker()
        targets = sorted(set(ordinals))
        # Frame threads pay off when decoding long runs; when most targets need their own seek they
        # only add a pipeline to refill after every flush, so those reads use slice threads.
        sparse = len(seeker.keyframes) > 1 and tl.n_frames / len(ordinals) > 2 * tl.n_frames / len(seeker.keyframes)
        self.stream.thread_type = "SLICE" if sparse else "AUTO"
        thr = [tl.threshold(t) for t in targets]
        got = FrameBuffer(targets)
        run, pos, last, i = seeker.frames(), tl.start_pts - tl.spf_pts / 2, None, 0
        try:
            while i < len(targets):
                if seeker.worth_seeking(thr[i], pos):
                    run = seeker.seek_run(thr[i])
                for frame in run:
                    last = frame
                    if frame.pts is None:  # no timestamps: only counting works, and only front to back
                        return self._decode_by_count(ordinals, convert)
                    pos = frame.pts
                    hit = pos >= thr[i]
                    if hit:
                        picture = rgb(frame)
                    while i < len(targets) and pos >= thr[i]:
                        got.put(targets[i], picture, tl.seconds(pos), tl.ordinal_of(pos))
                        i += 1
                    if hit:
                        break
                else:  # end of stream before these targets (frame count overestimated): repeat the last frame
                    if last is None:
                        break
                    picture = rgb(last)
                    q = last.pts if last.pts is not None else tl.start_pts
                    for t in targets[i:]:
                        got.put(t, picture, tl.seconds(q), tl.ordinal_of(q))
                    break
        finally:
            self.decoded += seeker.decoded
        if not got:
            raise VideoError(f"No frame of '{self.path.name}' could be decoded; the file may be corrupt or truncated.")
        self.display = display_size(last)
        return got.batch(ordinals)

    def _decode_by_count(self, ordinals, convert: Convert) -> FrameBatch:
        """Front to back, counting frames, for streams whose frames carry no pts."""
        rgb, tl, seeker = convert.video, self.timeline, self._seeker()
        want, last, n = set(ordinals), None, 0
        got = FrameBuffer(sorted(want))
        try:
            for n, frame in enumerate(seeker.frames()):
                last = frame
                if n in want:
                    got.put(n, rgb(frame), n * tl.spf, n)
                if n >= max(want):
                    break
        finally:
            self.decoded += seeker.decoded
        if last is None:
            raise VideoError(f"No frame of '{self.path.name}' could be decoded; the file may be corrupt or truncated.")
        if got.missing():
            picture = rgb(last)
            for t in got.missing():
                got.put(t, picture, n * tl.spf, n)
        self.display = display_size(last)
        return got.batch(ordinals)

    def keyframes(self, first: int, last: int, convert: Convert) -> FrameBatch:
        """Every keyframe whose ordinal lies in [first, last], found by the decoder itself (never by the
        container's flags): packets are demuxed, only keyframes are decoded."""
        rgb, tl, seeker = convert.video, self.timeline, self._seeker()
        ctx = self.stream.codec_context
        ctx.skip_frame = "NONKEY"
        self.stream.thread_type = "AUTO"
        pictures, times, found = [], [], []
        try:
            run = seeker.seek_run(tl.threshold(first)) if first and seeker.seekable else seeker.frames()
            for frame in run:
                if frame.pts is None or not frame.key_frame:
                    continue
                ordinal = tl.ordinal_of(frame.pts)
                if ordinal > last:
                    break
                if ordinal >= first and (not found or ordinal > found[-1]):
                    pictures.append(rgb(frame))
                    times.append(tl.seconds(frame.pts))
                    found.append(ordinal)
                    self.display = display_size(frame)
        finally:
            ctx.skip_frame = "DEFAULT"
            self.decoded += seeker.decoded
        if not found:
            return self.decode([first], convert)  # no keyframe inside the range: its first frame stands in
        return FrameBatch(np.stack(pictures), tuple(times), tuple(found))  # (K, H, W, 3)

    def close(self) -> None:
        self.container.close()
