"""Chapters of a long video with the tiny random model (answers are random text, so these tests check
the mechanism): boundaries on a generated 20-minute video of six distinct scenes, subtitle retrieval,
Stop keeping what was made, the cache and the reuse counters, and the two CLI doors."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from pllava_demo.chapters.cache import ChapterCache
from pllava_demo.chapters.maker import ChapterMaker
from pllava_demo.chapters.settings import ChapterSettings
from videos import write_scene_video

SCENES = [170, 230, 110, 290, 160, 240]  # seconds: 20 minutes in all
TRUTH = list(np.cumsum(SCENES)[:-1])  # 170, 400, 510, 800, 960
SUBTITLES = [(20.0, 24.0, "morning coffee in a quiet kitchen"), (250.0, 254.0, "the train leaves platform nine"),
             (430.0, 434.0, "a zebra parade crosses the old bridge"), (600.0, 604.0, "rain falls on the harbour"),
             (850.0, 854.0, "children build a sandcastle"), (1100.0, 1104.0, "fireworks over the city")]
SETTINGS = ChapterSettings(caption_frames=4, caption_tokens=4, caption_min_tokens=2, batch_size=3)


@pytest.fixture(scope="module")
def scene_video(tmp_path_factory):
    return write_scene_video(tmp_path_factory.mktemp("chapters") / "scenes.mkv", SCENES, subtitles=SUBTITLES)


def new_maker(engine) -> ChapterMaker:
    return ChapterMaker(engine.loaded, lock=engine.lock, cache=ChapterCache(), limits=engine.limits)


@pytest.fixture(scope="module")
def maker(engine):
    """The engine's own maker (the page's too), shared by the tests that read finished chapters."""
    from pllava_demo.chapters.maker import maker_for

    return maker_for(engine)


def test_boundaries_within_one_step_and_subtitles_in_their_scene(maker, scene_video):
    before = dict(maker.stats)
    ch = maker.chapters(scene_video, SETTINGS)
    assert ch.method == "scenes" and ch.complete
    starts = [c.start for c in ch.chapters[1:]]
    assert len(starts) == len(TRUTH)
    for found, true in zip(starts, TRUTH):
        assert abs(found - true) <= SETTINGS.step_s, (starts, TRUTH)
    assert ch.chapters[0].start == 0 and abs(ch.chapters[-1].end - 1200) <= 1
    assert maker.last_scan.keyframes_only  # a keyframe every 4 s: the scan decoded keyframes only
    assert maker.last_scan.decoded <= 1200 / 4 + 1
    for chapter, (start, _, text) in zip(ch.chapters, SUBTITLES):
        assert [x.text for x in chapter.lines] == [text] and chapter.start <= start < chapter.end
    assert all(c.caption for c in ch.chapters)
    assert maker.stats["chapters_captioned"] - before.get("chapters_captioned", 0) == 6
    assert maker.stats["scans"] - before.get("scans", 0) == 1


def test_stop_keeps_the_chapters_made_and_the_next_run_finishes_them(engine, scene_video):
    maker = new_maker(engine)
    stop = threading.Event()
    seen = []

    def on_update(ch):
        seen.append(ch.captioned)
        if ch.captioned >= 1:  # the first batch of captions is in: press Stop
            stop.set()

    partial = maker.chapters(scene_video, SETTINGS, stop=stop, on_update=on_update)
    assert not partial.complete and partial.captioned == SETTINGS.batch_size == 3
    assert len(partial.chapters) == 6 and seen[0] == 0  # the boundaries came first, captions after
    assert maker.stats["chapters_captioned"] == 3
    done = maker.chapters(scene_video, SETTINGS)
    assert done.complete and done.captioned == 6
    assert maker.stats["chapters_captioned"] == 6 and maker.stats["scans"] == 1  # no new scan, only the rest
    assert [c.caption for c in done.chapters[:3]] == [c.caption for c in partial.chapters[:3]]


def test_a_subtitle_question_retrieves_its_scene_and_a_follow_up_recaptions_nothing(engine, maker, scene_video):
    from pllava_demo.chapters.whole import ask_whole, plans_of
    from pllava_demo.config import GenerationSettings

    ch = maker.chapters(scene_video, SETTINGS)
    captioned = maker.stats["chapters_captioned"]
    session = engine.new_session()
    settings = GenerationSettings(max_new_tokens=3, min_new_tokens=1)
    stream, plan = ask_whole(session, scene_video, ch, "Where does the zebra parade cross?", top_k=1,
                             num_frames=4, settings=settings)
    "".join(stream)
    assert [u.index for u in plan.used] == [2] and plan.used[0].frames == 4
    assert [x.text for x in plan.lines] == ["a zebra parade crosses the old bridge"]
    assert "zebra parade" in session.turns[0].question  # the subtitle line went to the model as context
    assert all(400 <= t <= 514 for t in session.video.clip.timestamps)  # frames of that chapter only
    decoded, hits = engine.stats["videos_decoded"], engine.stats["feature_cache_hits"]

    again = maker.chapters(scene_video, SETTINGS)  # a second question: the chapters come from the cache
    assert again.complete and maker.stats["chapters_captioned"] == captioned and maker.stats["cache_hits"] >= 1
    stream, plan2 = ask_whole(session, scene_video, again, "Tell me more about the zebra.", top_k=1, num_frames=4,
                              settings=settings)
    "".join(stream)
    assert [u.index for u in plan2.used] == [2]
    assert engine.stats["videos_decoded"] == decoded  # the chapter's frames and features were reused
    assert engine.stats["feature_cache_hits"] == hits + 1
    assert len(session.turns) == 2 and set(plans_of(session)) == {0, 1}

    stream, plan3 = ask_whole(session, scene_video, again, "What happens in the rain and in the kitchen?", top_k=2,
                              num_frames=4, settings=settings)
    "".join(stream)
    assert [u.index for u in plan3.used] == [0, 3] and [u.frames for u in plan3.used] == [2, 2]


def test_cli_chapters_and_ask_whole_print_the_chapters(tiny_official, scene_video, tmp_path, capsys):
    from pllava_demo.chapters.subtitles import parse_text
    from pllava_demo.cli import main

    common = ["--model", str(tiny_official), "--device", "cpu", "--cache-dir", str(tmp_path / "cache"),
              "--caption-frames", "4", "--caption-tokens", "4", "--caption-min-tokens", "2"]
    out = tmp_path / "chapters.vtt"
    assert main(["chapters", str(scene_video), "--out", str(out), *common]) == 0
    printed = capsys.readouterr()
    assert "6 chapters (scenes), 6 captioned" in printed.err
    assert "  3          6:40–8:" in printed.out and "[a zebra parade crosses the old bridge]" in printed.out
    cues = parse_text(out.read_text())  # the .vtt reads back as six cues at the chapters' starts
    assert len(cues) == 6 and all(abs(c.start - t) <= SETTINGS.step_s for c, t in zip(cues[1:], TRUTH))
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1

    code = main(["ask", str(scene_video), "what is said about the zebra parade?", "--scope", "whole", "--top-k", "1",
                 "--frames", "4", "--max-new-tokens", "3", *common])
    printed = capsys.readouterr()
    assert code == 0
    assert "Chapters used: 3 (6:40–8:" in printed.err
    assert "a zebra parade crosses the old bridge" in printed.err
    assert "Scanning" not in printed.err  # the chapters came from the cache folder


def test_top_k_out_of_range_is_one_sentence(engine, scene_video):
    from pllava_demo.chapters.records import Chapter, Chapters
    from pllava_demo.chapters.whole import plan_whole
    from pllava_demo.errors import InputError

    ch = Chapters("k", 10.0, (Chapter(0, 0.0, 10.0, "x"),), "scenes", True)
    with pytest.raises(InputError, match="top-k"):
        plan_whole(ch, "q", top_k=0)


def test_caption_chapters_writes_a_line_per_video_with_its_chapters(tiny_official, tmp_path, capsys):
    import json

    from pllava_demo.cli import main

    folder = tmp_path / "videos"
    folder.mkdir()
    write_scene_video(folder / "a.mkv", [40, 60, 50], subtitles=[(70.0, 72.0, "hello from the middle")])
    (folder / "broken.mp4").write_bytes(b"not a video")
    out = tmp_path / "chapters.jsonl"
    args = ["caption", str(folder), "--chapters", "--out", str(out), "--model", str(tiny_official), "--device", "cpu",
            "--frames", "4", "--max-new-tokens", "4", "--min-new-tokens", "2"]
    assert main(args) == 0
    records = {Path(r["path"]).name: r for r in map(json.loads, out.read_text().splitlines())}
    assert records["broken.mp4"]["error"]
    ch = records["a.mkv"]["chapters"]
    assert len(ch) == 3 and all(abs(c["start"] - t) <= 4 for c, t in zip(ch, [0, 40, 100]))
    assert all(c["caption"] for c in ch)
    assert ch[1]["subtitles"] == [[70.0, 72.0, "hello from the middle"]]
    assert main(args) == 0 and "0 video(s) to caption, 2 already" in capsys.readouterr().err  # resumable


def test_the_page_scope_answers_from_the_retrieved_chapter_and_links_it(engine, maker, scene_video):
    from pllava_demo.studio import chapters_scope
    from pllava_demo.studio import tab as tabs
    from pllava_demo.ui.chat_messages import chat_stream, history
    from pllava_demo.ui.view import video_info

    studio = tabs.Tab(engine)
    tabs.load_video(studio, str(scene_video), 4)
    studio.options = studio.options.replace(max_new_tokens=3, min_new_tokens=1)
    assert video_info(studio)["scope"] == "focus"
    captioned = maker.stats["chapters_captioned"]
    chapters_scope.make_chapters(studio, SETTINGS)  # the page's maker is the engine's: from the cache
    assert maker.stats["chapters_captioned"] == captioned
    assert chapters_scope.scope_of(studio) == "whole"  # a 20-minute video with chapters: whole by default
    chapters_scope.set_scope(studio, top_k=1)
    for _ in chat_stream(studio, "Where does the zebra parade cross?"):
        pass
    info = video_info(studio)
    assert [c["chapter"] for c in info["chapters_used"]] == [3]
    assert tabs.turn_settings(studio, 0)["chapters"]["chapters"][0]["chapter"] == 3  # the download's record
    answer = history(studio)[-1]["content"]
    start = chapters_scope.tab(studio).chapters.chapters[2].start
    assert answer.endswith(f"*Chapters used:* [{chapters_scope.tab(studio).chapters.chapters[2].label}](#t={start:g})")
    chapters_scope.set_scope(studio, "focus")
    for _ in chat_stream(studio, "And the whole video?"):
        pass
    assert "chapters_used" not in video_info(studio) and "Chapters used" not in history(studio)[-1]["content"]
    assert max(studio.video.clip.timestamps) > 1000  # the focus range's frames are back
    studio.session.clear()  # Clear: a new chat has no whole-video answers
    assert chapters_scope.last_plan(studio) is None
