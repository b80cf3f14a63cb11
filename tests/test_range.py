"""Focus on a part: a start/end range restricts the sampled frames, through the handlers (no server),
the API (a real server through gradio_client) and the CLI; each range is encoded once and cached."""

import pytest
from videos import write_video

from pllava_demo.studio import tab as tabs
from pllava_demo.studio.model_holder import ModelHolder
from pllava_demo.studio.zerogpu_runner import ZeroGpuRunner
from pllava_demo.studio.options import default_options
from pllava_demo.ui import view as V
from pllava_demo.errors import InputError
from pllava_demo.frames.video import sample_indices


@pytest.fixture
def studio(engine, tmp_path):
    s = tabs.Tab(engine)
    tabs.set_options(s, pooling=(4, 6, 6), max_new_tokens=4, min_new_tokens=4)
    tabs.load_video(s, write_video(tmp_path / "clip.mp4", n_frames=72, width=96, height=64), 4)  # 3 s at 24 fps
    yield s
    s.close()


def test_a_range_samples_only_its_frames_by_the_official_rule_and_is_cached(studio):
    eng = studio.engine
    tabs.set_options(studio, start_s=1.0, end_s=2.0)
    clip = studio.video.clip
    assert clip.time_range == (1.0, 2.0) and all(1.0 <= t <= 2.0 for t in clip.timestamps)
    assert list(clip.indices) == [24 + i for i in sample_indices(25, 4)]  # frames 24..48 of the range
    info = V.video_info(studio)
    assert info["time_range"] == [1.0, 2.0] and info["options"]["start_s"] == 1.0
    assert "4 frames (sampled from 1 s to 2 s of 3.0 s)" in V.view_markdown(studio)
    decoded = eng.stats["videos_decoded"]
    tabs.set_options(studio, start_s=None, end_s=None)  # the whole video again: cached already
    tabs.set_options(studio, start_s=1.0, end_s=2.0)  # and this range: cached too
    assert eng.stats["videos_decoded"] == decoded
    assert studio.video.clip.time_range == (1.0, 2.0)
    tabs.set_options(studio, end_s=None)  # from 1 s to the end
    assert studio.video.clip.time_range == (1.0, None) and min(studio.video.clip.timestamps) >= 1.0
    assert "from 1 s to the end" in studio.options.label()


def test_a_bad_range_is_one_sentence_and_changes_nothing(studio):
    before, frames = studio.options, studio.video.clip.indices
    with pytest.raises(InputError, match=r"^start_s \(seconds into the video, or null for the whole video\) must be "
                                         r"a number in \[0, 86400\], got 'abc'\.$"):
        tabs.set_options(studio, start_s="abc")
    with pytest.raises(InputError, match=r"^The time range must start before it ends: start_s 2 s, end_s 1 s\.$"):
        tabs.set_options(studio, start_s=2, end_s=1)
    with pytest.raises(InputError, match=r"not inside 'clip\.mp4', which runs from 0 s to 3\.000 s"):
        studio.runner = ZeroGpuRunner(ModelHolder.ready(studio.engine))
        tabs.set_options(studio, start_s=5.0)  # the ZeroGPU runner's path, through a GPU call
    assert studio.options == before and studio.video.clip.indices == frames


def test_an_answer_records_its_range(studio):
    tabs.set_options(studio, start_s=0.5, end_s=1.5)
    list(tabs.answer(studio, "What happens here?"))
    settings = tabs.turn_settings(studio, 0)
    assert settings["range_s"] == [0.5, 1.5] and all(0.5 <= t <= 1.5 for t in settings["timestamps_s"])


def test_the_api_and_the_cli_take_a_range(tiny_official, tmp_path):
    import os
    import subprocess
    import sys

    from gradio_client import handle_file
    from ui_server import Client
    from gradio_client.exceptions import AppError
    from ui_server import ROOT, running_app, wait_until_ready

    video = write_video(tmp_path / "api.mp4", n_frames=72, width=96, height=64)
    with running_app(tiny_official, tmp_path / "app.log") as url:
        wait_until_ready(url)
        client = Client(url, verbose=False)
        try:
            client.predict(handle_file(str(video)), 4, api_name="/upload")
            info = client.predict({"start_s": 2.0, "end_s": None}, api_name="/set_options")
            assert info["time_range"] == [2.0, None] and all(t >= 2.0 for t in info["timestamps"])
            assert info["frames"] == 4 and info["options"]["start_s"] == 2.0
            with pytest.raises(AppError, match="end_s .* must be a number"):
                client.predict({"end_s": "soon"}, api_name="/set_options")
            info = client.predict({"start_s": None}, api_name="/set_options")
            assert info["time_range"] is None and info["timestamps"][0] < 1.0
        finally:
            client.close()
    out = subprocess.run([sys.executable, "-m", "pllava_demo", "ask", str(video), "What?", "--model", str(tiny_official),
                          "--frames", "4", "--start", "1", "--end", "2", "--max-new-tokens", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=180, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr
    times = [float(t) for t in out.stderr.split(" frames at ")[1].split(" s ->")[0].split(", ")]
    assert len(times) == 4 and all(1.0 <= t <= 2.0 for t in times)


def test_a_still_image_is_one_frame_and_one_time_step(engine, tmp_path):
    from videos import write_image

    s = tabs.Tab(engine)
    try:
        tabs.load_video(s, write_image(tmp_path / "still.png"))
        info = V.video_info(s)
        assert info["frames"] == 1 and info["pooling_shape"][0] == 1 and "note" not in info
        assert info["visual_tokens"] == s.options.pooling[1] * s.options.pooling[2]
        text = V.view_markdown(s)
        assert text.startswith("**1 frame (a still image) → pooling 1×") and "[0, 0" not in text
        tabs.load_video(s, write_video(tmp_path / "after.mp4", n_frames=48, width=96, height=64), 8)
        assert s.options.pooling[0] == min(default_options(engine).pooling[0], 8)  # a video gets its T' back
    finally:
        s.close()
