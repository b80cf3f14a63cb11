"""Text subtitle streams inside a video file (mov_text in mp4, SubRip / ASS / WebVTT in mkv or webm),
read as raw cues by demuxing: nothing is decoded, no frame is touched.

This module knows PyAV and each codec's packet layout; it does not know sidecar files, markup
clean-up or chapters (chapters/subtitles.py turns these cues into plain lines). Bitmap subtitles
(DVD, PGS) carry no text and are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

TEXT_CODECS = {"subrip": "srt", "srt": "srt", "mov_text": "mov_text", "ass": "ass", "ssa": "ass", "webvtt": "vtt",
               "text": "srt"}


@dataclass(frozen=True)
class RawCue:
    start: float  # seconds
    end: float
    text: str  # as the codec carries it (SRT/VTT markup, an ASS event line's fields)
    kind: str  # "srt", "ass", "vtt" or "mov_text": how to clean `text`
    language: str | None = None


def _text(kind: str, data: bytes) -> str:
    if kind == "mov_text":  # a 16-bit big-endian length, the UTF-8 text, then optional style boxes
        n = int.from_bytes(data[:2], "big") if len(data) >= 2 else 0
        data = data[2 : 2 + n]
    return data.decode("utf-8", errors="replace")


def read_embedded(path) -> list[RawCue]:
    """Every cue of every text subtitle stream of the file, in time order; [] when there are none or the
    file cannot be opened (subtitles are extra: their absence is never an error)."""
    try:
        container = av.open(str(Path(path)))
    except (av.FFmpegError, OSError, ValueError):
        return []
    cues = []
    with container:
        streams = [s for s in container.streams.subtitles if s.codec_context.name in TEXT_CODECS]
        if not streams:
            return []
        try:
            for packet in container.demux(*streams):
                if packet.pts is None or packet.size == 0:
                    continue
                stream = packet.stream
                start = float(packet.pts * packet.time_base)
                end = start + float((packet.duration or 0) * packet.time_base)
                kind = TEXT_CODECS[stream.codec_context.name]
                cues.append(RawCue(start, end, _text(kind, bytes(packet)), kind, stream.metadata.get("language")))
        except av.FFmpegError:
            pass  # a damaged stream loses its later cues, not the video
    return sorted(cues, key=lambda c: (c.start, c.end))
