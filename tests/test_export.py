"""Download chat: Markdown and JSON with each answer's own settings and frame times (no server)."""

import json

import pytest
from videos import write_video

from pllava_demo.ui import export as X
from pllava_demo.studio import tab as tabs
from pllava_demo.ui.chat_messages import chat_stream


@pytest.fixture
def studio(engine, tmp_path):
    s = tabs.Tab(engine)
    tabs.set_options(s, pooling=(4, 6, 6), max_new_tokens=8, min_new_tokens=8)
    # its own video: the engine and its feature cache are shared by the whole run (no other test uses this one)
    tabs.load_video(s, write_video(tmp_path / "clip.mp4", n_frames=30, width=144, height=108, pattern="colour"), 8)
    yield s
    s.close()


def test_each_answer_keeps_the_settings_it_was_made_with(studio, tmp_path):
    list(tabs.answer(studio, "What happens?"))
    first_times = list(studio.video.clip.timestamps)
    tabs.set_options(studio, num_frames=4, pooling=(2, 3, 3), lora_alpha=8.0, do_sample=True, seed=7)
    list(chat_stream(studio, "And then?"))
    md, js = X.write_chat(studio, tmp_path / "out")
    assert (md.name, js.name) == ("chat-clip.md", "chat-clip.json")
    record = json.loads(js.read_text())
    one, two = record["turns"]
    assert [one["question"], two["question"]] == ["What happens?", "And then?"]
    assert one["answer"] == studio.session.turns[0].answer and two["answer"] == studio.session.turns[1].answer
    # the first answer's settings are those of its time, not today's sliders
    assert one["settings"]["frames"] == 8 and one["settings"]["pooling"] == [4, 6, 6]
    assert one["settings"]["timestamps_s"] == pytest.approx(first_times, abs=1e-3)
    assert one["settings"]["generation"]["do_sample"] is False and one["settings"]["range_s"] is None
    assert two["settings"]["frames"] == 4 and two["settings"]["pooling"] == [2, 3, 3]
    assert two["settings"]["lora_alpha"] == 8.0 and two["settings"]["generation"]["seed"] == 7
    assert len(two["settings"]["timestamps_s"]) == 4
    text = md.read_text()
    assert "> What happens?" in text and "> And then?" in text
    assert "8 frames of clip.mp4 (whole video), pooling 4×6×6" in text
    assert "4 frames of clip.mp4 (whole video), pooling 2×3×3, LoRA alpha 8; sampling" in text
    assert "Frame times (s): " + ", ".join(f"{t:g}" for t in one["settings"]["timestamps_s"]) in text


def test_a_regenerated_answer_gets_new_settings_and_a_cleared_chat_exports_empty(studio, tmp_path):
    list(tabs.answer(studio, "What happens?"))
    tabs.set_options(studio, pooling=(2, 2, 2))
    list(tabs.answer(studio, None, regenerate=True))
    (turn,) = X.chat_record(studio)["turns"]
    assert turn["settings"]["pooling"] == [2, 2, 2]
    studio.session.clear()
    assert X.chat_record(studio)["turns"] == []
    md, _ = X.write_chat(studio, tmp_path)
    assert "Question" not in md.read_text()


def test_a_tabs_chat_downloads_go_when_its_studio_closes(engine, tmp_path):
    """Every byte written for a visitor goes when it is no longer needed: the downloads with the tab."""
    s = tabs.Tab(engine)
    # a video no other test writes: the engine (and its feature cache) is shared by the whole run
    tabs.load_video(s, write_video(tmp_path / "clip.mp4", n_frames=10, width=72, height=40, pattern="colour"), 4)
    tabs.set_options(s, max_new_tokens=4, min_new_tokens=4)
    list(tabs.answer(s, "What happens?"))
    files = X.export_chat(s, tmp_path / "downloads" / "tab1")
    assert all(f.is_file() for f in files) and len(files) == 2
    s.close()
    assert not (tmp_path / "downloads" / "tab1").exists()
