"""The page's words and state without a browser (the tiny random checkpoint, no server): too many
tokens said in the panel before Send; a bad time range refused in the page's own words; the header
shows the checkpoint's alpha, never the one another tab last used."""

import pytest
from videos import write_video

from pllava_demo.errors import InputError
from pllava_demo.ui import video_events as E
from pllava_demo.studio import tab as tabs
from pllava_demo.studio.model_holder import ModelHolder
from pllava_demo.ui import view as V


@pytest.fixture
def studio(engine, tmp_path):
    s = tabs.Tab(engine)
    tabs.set_options(s, pooling=(4, 6, 6), max_new_tokens=16)
    tabs.load_video(s, write_video(tmp_path / "clip.mp4", n_frames=36, width=160, height=120), 8)
    yield s
    s.close()


def test_too_many_tokens_is_said_in_the_panel_before_send(studio):
    assert V.too_many_tokens(studio) is None and "Too many tokens" not in V.view_markdown(studio)
    tabs.set_options(studio, strategy={"name": "n-frame"})  # 8 frames x 576 tokens: more than the 4,096 context
    problem = V.too_many_tokens(studio)
    assert problem and "frame(s) fit" in problem
    assert problem in V.view_markdown(studio) and "Too many tokens" in V.view_markdown(studio)


@pytest.mark.parametrize("typed", ["abc", "-3", "nan", "inf", "1e999"])
def test_a_bad_time_is_refused_in_the_page_words(typed):
    with pytest.raises(InputError) as e:
        E._seconds(typed, "start_s")
    assert "“Only from (s)” takes seconds" in str(e.value) and "start_s" not in str(e.value)
    with pytest.raises(InputError, match="“to \\(s\\)”"):
        E._seconds(typed, "end_s")


def test_a_time_box_takes_seconds_or_blank():
    assert E._seconds(" 12.5 s ", "start_s") == 12.5 and E._seconds("", "end_s") is None


def test_the_header_shows_the_checkpoint_alpha_not_the_last_tab(engine):
    holder = ModelHolder.ready(engine)
    default = engine.default_alpha
    assert f"alpha={default:g}" in holder.status_markdown()
    engine.loaded.set_lora_alpha(20.0)  # what another tab's Compare or slider leaves on the shared model
    try:
        assert f"alpha={default:g}" in holder.status_markdown() and "alpha=20" not in holder.status_markdown()
    finally:
        engine.loaded.set_lora_alpha(default)
