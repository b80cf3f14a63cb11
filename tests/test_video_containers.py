"""Containers without a real index (MPEG-2 program streams, transport streams): the sampled frames are
the rule's frames, read from the pixels each frame carries, never what a guessed seek lands on."""

from __future__ import annotations

import pytest

from pllava_demo.frames.video import read_video, sample_indices
from videos import frame_index, write_mpeg2


@pytest.mark.parametrize("name", ["camcorder.mpg", "dvd.vob", "broadcast.ts"])
@pytest.mark.parametrize("num_frames", [8, 16])
def test_mpeg_containers_give_the_rules_frames(tmp_path, name, num_frames):
    path = write_mpeg2(tmp_path / name, n_frames=150, width=720, height=480, gop=12)  # DVD size
    clip = read_video(path, num_frames)
    want = sample_indices(150, num_frames)
    assert clip.n_total == 150
    assert list(clip.indices) == want
    assert [frame_index(f) for f in clip.frames] == want  # the pixels, not the reported ordinals


def test_a_time_range_in_a_program_stream_gives_its_frames(tmp_path):
    path = write_mpeg2(tmp_path / "range.mpg", n_frames=100, width=720, height=480, gop=12)
    clip = read_video(path, 6, start_s=1.0, end_s=3.0)  # frames 25..75 at 25 fps
    want = [25 + i for i in sample_indices(51, 6)]
    assert list(clip.indices) == want
    assert [frame_index(f) for f in clip.frames] == want
