"""read_video on real files written with PyAV into tmp_path (no mocks).

Each written frame shows its own index (tests/videos.py), so every test checks WHICH frames came
back from the pixels, not only how many. Knows nothing about preprocessing or the model."""

import os
import shutil

import numpy as np
import pytest

from pllava_demo.errors import VideoError
from pllava_demo.frames.video import Clip, VideoDecoder, content_key, human_duration, read_video, sample_indices
from tests.videos import (
    frame_index, padded_size, video_path, write_animated_webp, write_audio_only, write_image, write_video,
)


def official(n_total: int, num_frames: int) -> list[int]:
    """The rule as PLLaVA's loader states it, with numpy (independent of the module's code)."""
    seg = float(n_total - 1) / num_frames
    start = int(seg / 2)
    return [start + int(np.round(seg * k)) for k in range(num_frames)]


def pixel_indices(clip: Clip) -> list[int]:
    return [frame_index(f) for f in clip.frames]


@pytest.mark.parametrize("n_total,num_frames", [(300, 16), (48, 16), (3, 32), (1, 4), (16, 16), (1000, 7), (37, 8)])
def test_sample_indices_is_the_official_rule(n_total, num_frames):
    got = sample_indices(n_total, num_frames)
    assert got == official(n_total, num_frames)
    assert got == sorted(got) and 0 <= got[0] and got[-1] <= max(n_total - 1, 0)


@pytest.mark.parametrize("codec", ["h264", "mpeg4", "vp9", "hevc", "mjpeg", "gif"])
def test_short_video_returns_the_rule_frames(tmp_path, codec):
    path = write_video(video_path(tmp_path, "v", codec), codec=codec, n_frames=48, width=160, height=96)
    clip = read_video(path, 16)
    assert clip.n_total == 48
    assert list(clip.indices) == official(48, 16)
    assert pixel_indices(clip) == list(clip.indices)
    assert clip.frames.shape == (16, 96, 160, 3) and clip.frames.dtype == np.uint8
    assert (clip.width, clip.height) == (160, 96)


def test_av1_decodes(tmp_path):
    # SVT-AV1 at fast presets drops some small changes of our counter cells (the writer's limit,
    # seen in a plain front-to-back decode too), so only most frames are checked by their pixels.
    clip = read_video(write_video(tmp_path / "v.mp4", codec="av1", n_frames=48, width=160, height=96), 16)
    assert list(clip.indices) == official(48, 16) and clip.frames.shape == (16, 96, 160, 3)
    assert sum(a == b for a, b in zip(pixel_indices(clip), clip.indices)) >= 12


@pytest.mark.parametrize("codec", ["h264", "vp9", "mpeg4"])
def test_long_video_seeks_and_decodes_only_what_it_needs(tmp_path, codec):
    path = write_video(video_path(tmp_path, "long", codec), codec=codec, n_frames=300, width=96, height=64, gop=12)
    clip = read_video(path, 16)
    assert list(clip.indices) == official(300, 16)
    assert pixel_indices(clip) == list(clip.indices)
    # 16 targets, one GOP of 12 at most each: far fewer than the 300 a full decode would make
    assert clip.decoded_frames < 300 * 0.6, clip


def test_sparse_sampling_decodes_a_small_fraction(tmp_path):
    path = write_video(tmp_path / "sparse.mp4", n_frames=720, width=64, height=48, gop=10)
    clip = read_video(path, 8)
    assert pixel_indices(clip) == official(720, 8)
    assert clip.decoded_frames <= 8 * 10 + 16, clip  # about one GOP per target, plus reorder delay


@pytest.mark.parametrize("codec", ["h264", "vp9", "mpeg4", "mjpeg"])
def test_odd_sizes(tmp_path, codec):
    path = write_video(video_path(tmp_path, "odd", codec), codec=codec, n_frames=20, width=333, height=197)
    clip = read_video(path, 5)
    w, h = padded_size(codec, 333, 197)  # mpeg4 has no 4:4:4 format: the writer pads to 334x198
    assert clip.frames.shape == (5, h, w, 3)
    assert pixel_indices(clip) == official(20, 5)


def test_fewer_frames_than_asked_repeats(tmp_path):
    clip = read_video(write_video(tmp_path / "three.mp4", n_frames=3, width=64, height=48), 32)
    assert clip.frames.shape[0] == 32
    assert list(clip.indices) == official(3, 32)
    assert pixel_indices(clip) == list(clip.indices)


def test_timestamps_follow_indices(tmp_path):
    clip = read_video(write_video(tmp_path / "t.mp4", n_frames=60, fps=30, width=64, height=48), 8)
    ts = np.asarray(clip.timestamps)
    assert np.all(np.diff(ts) > 0)
    np.testing.assert_allclose(ts, np.asarray(clip.indices) / 30.0, atol=1e-3)
    assert clip.fps == pytest.approx(30.0) and clip.duration == pytest.approx(2.0)


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_metadata_makes_frames_upright(tmp_path, rotation):
    path = write_video(tmp_path / "phone.mp4", n_frames=24, width=160, height=96, rotation=rotation)
    clip = read_video(path, 4)
    upright = (96, 160) if rotation == 180 else (160, 96)
    assert clip.frames.shape[1:3] == upright and (clip.height, clip.width) == upright
    back = [frame_index(np.rot90(f, k=-(rotation // 90))) for f in clip.frames]  # undo the display rotation
    assert back == official(24, 4)
    with VideoDecoder(path, seek_mode="approximate") as decoder:
        assert (decoder.metadata.height, decoder.metadata.width) == upright


def test_still_images(tmp_path):
    for name in ["a.png", "a.jpg", "a.bmp", "a.webp"]:
        clip = read_video(write_image(tmp_path / name, 320, 240, k=7), 16)
        assert clip.frames.shape == (1, 240, 320, 3)
        assert clip.timestamps == (0.0,) and clip.fps == 0.0 and clip.duration == 0.0 and clip.n_total == 1
        assert frame_index(clip.frames[0]) == 7


def test_jpeg_exif_orientation_is_applied(tmp_path):
    clip = read_video(write_image(tmp_path / "phone.jpg", 320, 240, k=9, exif_orientation=6), 1)
    assert clip.frames.shape == (1, 240, 320, 3) and frame_index(clip.frames[0]) == 9


def test_animated_images_are_videos(tmp_path):
    webp = read_video(write_animated_webp(tmp_path / "anim.webp", n_frames=6), 4)
    assert pixel_indices(webp) == official(6, 4) and webp.duration == pytest.approx(0.6)
    gif = read_video(write_video(tmp_path / "anim.gif", codec="gif", n_frames=20, width=64, height=48), 4)
    assert pixel_indices(gif) == official(20, 4)


def test_max_duration(tmp_path):
    path = write_video(tmp_path / "two_s.mp4", n_frames=48, fps=24, width=64, height=48)
    with pytest.raises(VideoError, match=r"^The video is 2 s long; the limit is 1 s\.$"):
        read_video(path, 4, max_duration=1)
    assert read_video(path, 4, max_duration=2.5).frames.shape[0] == 4
    assert human_duration(7200) == "2 h 0 min" and human_duration(600) == "10 min"
    assert human_duration(90) == "1 min 30 s"


def test_time_budget(tmp_path):
    path = write_video(tmp_path / "v.mp4", n_frames=48, width=64, height=48)
    with pytest.raises(VideoError, match="longer than"):
        read_video(path, 8, time_budget=1e-9)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "8"])
def test_num_frames_validated(tmp_path, bad):
    path = write_video(tmp_path / "v.mp4", n_frames=4, width=64, height=48)
    with pytest.raises(VideoError, match="num_frames must be a whole number >= 1"):
        read_video(path, bad)


def test_bad_files_raise_readable_errors(tmp_path):
    with pytest.raises(VideoError, match="does not exist"):
        read_video(tmp_path / "nope.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match="empty"):
        read_video(tmp_path / "empty.mp4")
    (tmp_path / "page.mp4").write_text("<!DOCTYPE html><html><body>Not found</body></html>")
    with pytest.raises(VideoError, match="web page"):
        read_video(tmp_path / "page.mp4")
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(VideoError, match="not a video or image"):
        read_video(tmp_path / "noise.mp4")
    with pytest.raises(VideoError, match="only audio"):
        read_video(write_audio_only(tmp_path / "voice.m4a"))
    with pytest.raises(VideoError, match="not a file"):
        read_video(tmp_path)


@pytest.mark.parametrize("faststart", [False, True])
def test_truncated_files_give_frames_or_video_error(tmp_path, faststart):
    whole = write_video(tmp_path / "whole.mp4", n_frames=60, width=96, height=64, gop=12, faststart=faststart)
    data = whole.read_bytes()
    for frac in [0.02, 0.3, 0.6, 0.95]:
        cut = tmp_path / f"cut{int(frac * 100)}.mp4"
        cut.write_bytes(data[: int(len(data) * frac)])
        try:
            clip = read_video(cut, 8)
        except VideoError as e:
            assert str(e).endswith(".") and "cut" in str(e)
        else:
            assert clip.frames.shape[0] == 8


def test_garbage_in_the_middle_still_returns_frames(tmp_path):
    path = write_video(tmp_path / "g.mp4", n_frames=96, width=96, height=64, gop=12, faststart=True)
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 400] = np.random.default_rng(1).integers(0, 256, 400, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    clip = read_video(path, 8)
    assert clip.frames.shape[0] == 8
    assert sum(a == b for a, b in zip(pixel_indices(clip), official(96, 8))) >= 6


def test_repr_and_content_key(tmp_path):
    path = write_video(tmp_path / "v.mp4", n_frames=24, width=64, height=48)
    clip = read_video(path, 4)
    text = repr(clip)
    assert "(4, 48, 64, 3)" in text and "array(" not in text and len(text) < 400
    copy = tmp_path / "copy.mp4"
    shutil.copy(path, copy)
    assert content_key(copy) == clip.content_key == read_video(copy, 2).content_key
    other = write_video(tmp_path / "w.mp4", n_frames=25, width=64, height=48)
    assert content_key(other) != clip.content_key


def test_metadata_without_decoding(tmp_path):
    path = write_video(tmp_path / "v.webm", codec="vp9", n_frames=48, fps=24, width=64, height=48)
    with VideoDecoder(path, seek_mode="approximate") as decoder:
        info = decoder.metadata
    assert info.width == 64 and info.height == 48 and info.codec == "vp9"
    assert info.duration_seconds == pytest.approx(2.0, abs=0.05) and info.average_fps == pytest.approx(24)


def test_content_key_covers_the_whole_file(tmp_path):
    """The key is shared by all users' caches: files differing anywhere, even mid-file, never share it."""
    from pllava_demo.frames.video import content_key

    data = bytearray(os.urandom(5 * 2**20))
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    a.write_bytes(data)
    data[len(data) // 2] ^= 1  # one bit in the middle
    b.write_bytes(data)
    assert content_key(a) != content_key(b)
    c = tmp_path / "copy of a.mp4"
    c.write_bytes(a.read_bytes())
    assert content_key(c) == content_key(a)  # same bytes, other name: the cache is shared


# ------------------------------------------------ variable frame rate: the i-th frame, as decord


def vfr_times(n: int) -> list[float]:
    """A phone-like timeline: a fast burst, a slow stretch, then irregular gaps (seconds)."""
    gaps = [1 / 60] * (n // 3) + [1 / 8] * (n // 3) + [(1 / 30, 1 / 12, 1 / 20)[k % 3] for k in range(n - 2 * (n // 3))]
    return [round(sum(gaps[:k]), 3) for k in range(n)]


@pytest.mark.parametrize("codec,gop", [("h264", None), ("h264", 6), ("vp9", 6), ("mpeg4", 6)])
def test_vfr_returns_the_ith_frame_with_its_timestamp(tmp_path, codec, gop):
    times = vfr_times(60)
    path = write_video(video_path(tmp_path, "vfr", codec), codec=codec, n_frames=60, width=96, height=64,
                       pts_seconds=times, gop=gop)
    clip = read_video(path, 8)
    assert clip.n_total == 60
    assert list(clip.indices) == official(60, 8)
    assert pixel_indices(clip) == list(clip.indices)  # the frames decord's vr[i] would give
    np.testing.assert_allclose(clip.timestamps, [times[i] for i in clip.indices], atol=1e-3)


def test_vfr_long_file_is_not_decoded_whole(tmp_path):
    times = vfr_times(240)
    path = write_video(tmp_path / "vfr.mp4", n_frames=240, width=64, height=48, pts_seconds=times, gop=12)
    clip = read_video(path, 8)
    assert pixel_indices(clip) == official(240, 8) == list(clip.indices)
    assert clip.decoded_frames < 240 * 0.6, clip


# ------------------------------------------------------------------------- a time range to sample


def test_time_range_samples_only_its_frames(tmp_path):
    path = write_video(tmp_path / "cfr.mp4", n_frames=48, fps=24, width=64, height=48, gop=8)
    clip = read_video(path, 8, start_s=0.5, end_s=1.5)  # frames 12..36 (t = k / 24)
    want = [12 + i for i in official(25, 8)]
    assert list(clip.indices) == want and pixel_indices(clip) == want
    assert all(0.5 <= t <= 1.5 for t in clip.timestamps) and clip.time_range == (0.5, 1.5)
    assert list(read_video(path, 4, start_s=1.0).indices) == [24 + i for i in official(24, 4)]
    assert list(read_video(path, 4, end_s=0.25).indices) == official(7, 4)  # frames 0..6
    assert read_video(path, 4).time_range is None


def test_time_range_on_vfr_counts_the_frames_inside_it(tmp_path):
    times = vfr_times(60)
    path = write_video(tmp_path / "vfr.mp4", n_frames=60, width=64, height=48, pts_seconds=times, gop=6)
    inside = [k for k, t in enumerate(times) if 0.4 <= t <= 3.0]
    clip = read_video(path, 6, start_s=0.4, end_s=3.0)
    want = [inside[0] + i for i in official(len(inside), 6)]
    assert list(clip.indices) == want and pixel_indices(clip) == want


def test_time_range_on_animated_image(tmp_path):
    webp = write_animated_webp(tmp_path / "anim.webp", n_frames=6)  # frames at 0.0, 0.1, ... 0.5 s
    clip = read_video(webp, 2, start_s=0.2, end_s=0.5)
    assert pixel_indices(clip) == [2 + i for i in official(4, 2)] == list(clip.indices)


def test_time_range_is_validated(tmp_path):
    path = write_video(tmp_path / "two_s.mp4", n_frames=48, fps=24, width=64, height=48)
    # the settings table's sentences (settings.check_time_range), as the API's
    with pytest.raises(VideoError, match=r"^The time range must start before it ends: start_s 1 s, end_s 1 s\.$"):
        read_video(path, 4, start_s=1, end_s=1)
    with pytest.raises(VideoError, match=r"^start_s \(seconds into the video, or null for the whole video\) must be a "
                                         r"number in \[0, 86400\], got -1\.$"):
        read_video(path, 4, start_s=-1)
    with pytest.raises(VideoError, match=r"^end_s \(.*\) must be .* got 'x'\.$"):
        read_video(path, 4, end_s="x")
    with pytest.raises(VideoError, match=r"not inside 'two_s.mp4', which runs from 0 s to 2\.000 s\.$"):
        read_video(path, 4, start_s=1, end_s=5)
    with pytest.raises(VideoError, match=r"not inside"):
        read_video(path, 4, start_s=2.5)
    with pytest.raises(VideoError, match=r"No frame of 'two_s.mp4' lies between 0\.501 s and 0\.52 s"):
        read_video(path, 4, start_s=0.501, end_s=0.52)  # frames at 0.5 and 0.5417 s
    with pytest.raises(VideoError, match=r"still image; a time range applies only to videos"):
        read_video(write_image(tmp_path / "a.png"), 1, start_s=0, end_s=1)
