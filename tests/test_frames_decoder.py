"""The decoder object and the samplers: metadata, frames by ordinal and by time, seek modes, one frame
every S seconds, keyframes only; stills and animations through the same object. Frames are identified
by the numbers stamped into their pixels (tests/videos.py)."""

from __future__ import annotations

import pytest

from pllava_demo.errors import VideoError
from pllava_demo.frames.video import (
    FrameBatch,
    VideoDecoder,
    every_seconds,
    every_seconds_indices,
    keyframes_only,
    segment_centred,
)
from videos import frame_index, write_animated_webp, write_image, write_mpeg2, write_video


def stamped(batch: FrameBatch) -> list[int]:
    return [frame_index(f) for f in batch.data]


@pytest.fixture(scope="module")
def gop12(tmp_path_factory):
    """48 frames at 24 fps, a keyframe every 12 frames."""
    return write_video(tmp_path_factory.mktemp("d") / "gop12.mp4", n_frames=48, fps=24, gop=12, width=160, height=96)


def test_metadata_and_frames_by_ordinal(gop12):
    with VideoDecoder(gop12) as decoder:
        m = decoder.metadata
        assert (m.n_frames, m.width, m.height, m.codec, m.kind) == (48, 160, 96, "h264", "video")
        assert m.duration_seconds == pytest.approx(2.0) and m.average_fps == pytest.approx(24.0)
        batch = decoder.get_frames_at([30, 5, 5, -1])
    assert stamped(batch) == list(batch.indices) == [30, 5, 5, 47]
    assert batch.data.shape == (4, 96, 160, 3) and batch.pts_seconds == pytest.approx((30 / 24, 5 / 24, 5 / 24, 47 / 24))
    assert repr(batch).startswith("FrameBatch(data=(4, 96, 160, 3) uint8, indices=[30, 5, 5, 47]")


def test_frames_by_time_are_the_frames_on_screen(tmp_path):
    times = [0.0, 0.1, 0.15, 0.6, 0.7, 1.5, 1.6, 1.7]  # a phone's variable rate
    path = write_video(tmp_path / "vfr.mp4", n_frames=8, pts_seconds=times, width=96, height=64)
    with VideoDecoder(path) as decoder:
        assert list(decoder.frame_times()) == pytest.approx(times)
        batch = decoder.get_frames_played_at([0.0, 0.12, 0.59, 1.0, 1.5, 1.69])
    assert stamped(batch) == list(batch.indices) == [0, 1, 2, 4, 5, 6]


def test_approximate_mode_trusts_the_headers(tmp_path):
    times = [0.0, 0.05, 0.1, 1.0, 1.05, 1.1, 2.0, 2.05]
    path = write_video(tmp_path / "vfr.mp4", n_frames=8, pts_seconds=times, width=96, height=64)
    with VideoDecoder(path, seek_mode="approximate") as decoder:
        assert decoder.frame_times()[3] != pytest.approx(1.0)  # evenly spaced: not this file's times
    with VideoDecoder(path, seek_mode="exact") as decoder:
        assert decoder.frame_times()[3] == pytest.approx(1.0)


def test_one_frame_every_s_seconds(tmp_path):
    path = write_video(tmp_path / "ten.mp4", n_frames=240, fps=24, gop=48, width=96, height=64)  # 10 s
    with VideoDecoder(path) as decoder:
        batch = every_seconds(decoder, 2)
        assert stamped(batch) == list(batch.indices) == [0, 48, 96, 144, 192]
        assert batch.pts_seconds == pytest.approx((0, 2, 4, 6, 8))
        part = every_seconds(decoder, 1.5, start_s=3.0, end_s=6.0)
    assert stamped(part) == [72, 108, 144]


def test_every_seconds_rule_lists_each_frame_once():
    times = [0.0, 0.5, 3.0, 3.1, 7.0]
    assert every_seconds_indices(times, 1.0) == [0, 1, 2, 3, 4]  # at 0, 1, (2: frame 1 still on), 3, 4, ... 7
    assert every_seconds_indices(times, 2.0) == [0, 1, 3]  # at 0, 2, 4 and 6 (frame 3 on for both)
    assert every_seconds_indices(times, 10.0) == [0]
    assert every_seconds_indices(times, 1.0, first=2, last=3) == [2]


def test_keyframes_only_decodes_only_keyframes(gop12):
    with VideoDecoder(gop12) as decoder:
        batch = keyframes_only(decoder)
        assert stamped(batch) == list(batch.indices) == [0, 12, 24, 36]
        assert decoder.decoded_frames == 4
        assert stamped(keyframes_only(decoder, start_s=0.6, end_s=1.9)) == [24, 36]


def test_keyframes_of_a_program_stream_are_the_decoders_not_the_containers(tmp_path):
    """Container keyframe flags are not trusted; the I-frames are (the encoder closes on one: 59)."""
    path = write_mpeg2(tmp_path / "dvd.mpg", n_frames=60, gop=12, width=720, height=480)
    with VideoDecoder(path) as decoder:
        assert stamped(keyframes_only(decoder)) == [0, 12, 24, 36, 48, 59]


def test_stills_and_animations_are_the_same_object(tmp_path):
    still = write_image(tmp_path / "p.jpg", 120, 80, k=9, exif_orientation=6)
    with VideoDecoder(still) as decoder:
        m = decoder.metadata
        assert (m.kind, m.n_frames, m.duration_seconds, m.average_fps, m.width, m.height) == ("image", 1, 0.0, 0.0, 120, 80)
        assert len(segment_centred(decoder, 16)) == 1
        assert frame_index(decoder.get_frame_at(0).data[0]) == 9  # turned upright by its EXIF orientation
        with pytest.raises(VideoError, match="still image; a time range applies only to videos"):
            segment_centred(decoder, 4, start_s=0.5)
    anim = write_animated_webp(tmp_path / "a.webp", n_frames=6, frame_ms=100)
    with VideoDecoder(anim) as decoder:
        assert decoder.metadata.kind == "animation" and len(decoder) == 6
        assert decoder.metadata.duration_seconds == pytest.approx(0.6)
        assert stamped(decoder.get_frames_played_at([0.25, 0.5])) == [2, 5]
        assert stamped(keyframes_only(decoder)) == list(range(6))


@pytest.mark.parametrize("call, message", [
    (lambda p: VideoDecoder(p, seek_mode="fast"), r"seek_mode must be one of exact, approximate; got 'fast'\."),
    (lambda p: VideoDecoder(p, max_short_side=0), r"max_short_side must be None or a whole number >= 1"),
    (lambda p: VideoDecoder(p).get_frames_at([48]), r"A frame index must be a whole number from 0 to 47; got 48\."),
    (lambda p: VideoDecoder(p).get_frames_at([1.5]), r"A frame index must be a whole number"),
    (lambda p: VideoDecoder(p).get_frames_at([]), r"Ask for at least one frame\."),
    (lambda p: VideoDecoder(p).get_frames_played_at([9.0]), r"A time must be a number of seconds from 0 to 2\.000"),
    (lambda p: every_seconds(VideoDecoder(p), 0), r"seconds must be None or a number of seconds > 0"),
    (lambda p: every_seconds(VideoDecoder(p), None), r"seconds must be a number of seconds > 0, got None\."),
    (lambda p: keyframes_only(VideoDecoder(p), start_s=5.0), r"is not inside 'gop12.mp4'"),
    (lambda p: VideoDecoder(p.with_name("missing.mp4")), r"The file 'missing.mp4' does not exist\."),
])
def test_every_mistake_is_one_sentence(gop12, call, message):
    with pytest.raises(VideoError, match=message):
        call(gop12)
