"""The chapter room's parts on their own: boundaries from given features (numpy only), subtitle
formats (embedded SubRip / ASS / WebVTT streams written with PyAV, sidecar files, mov_text packets),
retrieval, exports and the settings' refusals. No model here."""

from __future__ import annotations

import numpy as np
import pytest

from pllava_demo.chapters import export, subtitles
from pllava_demo.chapters.records import Chapter, Chapters, Line
from pllava_demo.chapters.retrieval import ChapterIndex
from pllava_demo.chapters.scenes import depth_scores, find_segments
from pllava_demo.chapters.settings import ChapterSettings
from pllava_demo.errors import InputError
from videos import write_scene_video


def clustered(lengths: list[int], step: float = 4.0, noise: float = 0.01, seed: int = 0):
    """Features of frames every `step` s: each scene its own random direction plus a little noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(lengths), 32))
    feats = np.concatenate([centres[i] + noise * rng.normal(size=(n, 32)) for i, n in enumerate(lengths)])
    return np.arange(len(feats)) * step, feats


def test_depth_is_highest_at_the_dip():
    sim = np.array([0.99, 0.98, 0.2, 0.97, 0.99])
    depth = depth_scores(sim)
    assert int(np.argmax(depth)) == 2 and depth[2] == pytest.approx((0.99 - 0.2) + (0.99 - 0.2))


def test_scenes_min_and_max_length_and_the_cap():
    times, feats = clustered([30, 2, 40, 100])  # a 8-second flash between two scenes
    seg = find_segments(times, feats, len(times) * 4.0, ChapterSettings(min_chapter_s=20, max_chapter_s=300))
    assert seg.method == "scenes"
    starts = [a for a, _ in seg.bounds]
    assert 120 in starts and 288 in starts and all(b - a >= 20 for a, b in seg.bounds)
    long = find_segments(times, feats, len(times) * 4.0, ChapterSettings(min_chapter_s=20, max_chapter_s=150))
    assert max(b - a for a, b in long.bounds) <= 150 and len(long.bounds) > len(seg.bounds)
    capped = find_segments(times, feats, len(times) * 4.0, ChapterSettings(max_chapters=2))
    assert len(capped.bounds) <= 2 or capped.method == "fixed windows"


def test_no_scene_change_gives_fixed_windows():
    times, feats = clustered([300], noise=0.0)
    seg = find_segments(times, feats, 1200.0, ChapterSettings(window_s=120))
    assert seg.method == "fixed windows" and len(seg.bounds) == 10 and seg.bounds[-1][1] == 1200.0


@pytest.mark.parametrize("name, text, webm", [
    ("subs.srt", "1\n00:00:02,000 --> 00:00:03,500\n<i>hello</i> zebra\nsecond line\n", False),
    ("subs.ass", "[Script Info]\nScriptType: v4.00+\n\n[V4+ Styles]\nFormat: Name, Fontname, Fontsize\n"
                 "Style: Default,Arial,20\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, "
                 "MarginV, Effect, Text\nDialogue: 0,0:00:02.00,0:00:03.50,Default,,0,0,0,,{\\i1}hello{\\i0} "
                 "zebra\\Nsecond line\n", False),
    ("subs.vtt", "WEBVTT\n\n00:00:02.000 --> 00:00:03.500\n<v Bob>hello</v> zebra\nsecond line\n", True),
])
def test_embedded_text_subtitles_become_plain_lines(tmp_path, name, text, webm):
    sub = tmp_path / name
    sub.write_text(text, encoding="utf-8")
    video = write_scene_video(tmp_path / ("v.webm" if webm else "v.mkv"), [4, 4], fps=2, subtitle_file=sub, webm=webm)
    assert subtitles.read_embedded(video) == [Line(2.0, 3.5, "hello zebra second line")]


def test_mov_text_packets_and_sidecars(tmp_path):
    from pllava_demo.frames.subtitle_stream import _text

    assert _text("mov_text", b"\x00\x05hello\x00\x00\x00\x0cstyl") == "hello"
    vtt = tmp_path / "side.vtt"
    vtt.write_text("WEBVTT\n\nNOTE a comment\n\n1:02:03.5 --> 1:02:04.250 align:start\nfar <b>later</b>\n")
    assert subtitles.read_sidecar(vtt) == [Line(3723.5, 3724.25, "far later")]
    bad = tmp_path / "side.txt"
    bad.write_text("x")
    with pytest.raises(InputError, match="must be .srt or .vtt"):
        subtitles.read_sidecar(bad)
    junk = tmp_path / "junk.srt"
    junk.write_text("not subtitles at all")
    with pytest.raises(InputError, match="holds no subtitle cue"):
        subtitles.read_sidecar(junk)


def chapters() -> Chapters:
    return Chapters("key", 300.0, (
        Chapter(0, 0.0, 100.0, "A man cooks pasta. Then he eats.", (Line(10, 12, "the water is boiling"),)),
        Chapter(1, 100.0, 200.0, "A dog runs on a beach.", ()),
        Chapter(2, 200.0, 300.0, "", (Line(250, 251, "what --> a zebra"),)),
    ), "scenes", True)


def test_retrieval_matches_words_not_stop_words_and_spreads_when_nothing_matches():
    index = ChapterIndex(chapters())
    assert [h.chapter.index for h in index.search("Where is the zebra?", 3)] == [2]
    assert [h.chapter.index for h in index.search("is the water boiling", 1)] == [0]
    assert [h.chapter.index for h in index.search("what is this about", 3)] == [0, 1, 2]  # no content word matches


def test_exports_read_back(tmp_path):
    ch = chapters()
    vtt = export.render(ch, ".vtt")
    assert vtt.startswith("WEBVTT\n\n1\n00:00:00.000 --> 00:01:40.000\nA man cooks pasta.\n")
    assert [(x.start, x.text) for x in subtitles.parse_text(vtt)] == [(0, "A man cooks pasta."),
                                                                      (100, "A dog runs on a beach."), (200, "Chapter 3")]
    srt = export.write(ch, tmp_path / "c.srt").read_text()
    assert "00:01:40,000 --> 00:03:20,000\nA dog runs on a beach." in srt
    back = Chapters.from_dict(__import__("json").loads(export.render(ch, ".json")))
    assert back == ch
    with pytest.raises(InputError, match=r"\.vtt, \.srt, \.json"):
        export.render(ch, ".txt")


@pytest.mark.parametrize("kwargs, words", [
    ({"step_s": 0}, "step_s must be a positive number"), ({"min_chapter_s": 400}, "must not be longer"),
    ({"max_chapters": 0}, "max_chapters must be a whole number from 1"), ({"keyframes": "some"}, "keyframes must be"),
])
def test_settings_refuse_in_one_sentence(kwargs, words):
    with pytest.raises(InputError, match=words) as e:
        ChapterSettings(**kwargs)
    assert "\n" not in str(e.value)


def test_scan_reads_keyframes_only_when_they_are_dense_enough(tmp_path):
    from pllava_demo.frames.keyframes import ScanStats, decode_floor, sample_every

    dense = write_scene_video(tmp_path / "dense.mkv", [40, 40], fps=2, gop_s=4)
    stats = ScanStats()
    times = [t for t, _ in sample_every(dense, 4.0, stats=stats)]
    assert stats.keyframes_only and stats.decoded == decode_floor(dense) == 20
    assert times == [4.0 * k for k in range(20)]
    stats = ScanStats()
    assert [t for t, _ in sample_every(dense, 8.0, keyframes="yes", stats=stats)] == [8.0 * k for k in range(10)]
    assert stats.decoded == 10  # a keyframe in a step already served is not even decoded
    sparse = write_scene_video(tmp_path / "sparse.mkv", [40, 40], fps=2, gop_s=40)
    stats = ScanStats()
    frames = list(sample_every(sparse, 4.0, short_side=24, stats=stats))
    assert not stats.keyframes_only and stats.decoded == 160  # every frame decoded, one kept per step
    assert [t for t, _ in frames] == [4.0 * k for k in range(20)] and frames[0][1].shape == (24, 32, 3)


@pytest.mark.parametrize("argv, words", [
    (["chapters", "v.mkv", "--out", "c.txt"], "can be written as .vtt, .srt, .json; got '.txt'"),
    (["chapters", "v.mkv", "--min-chapter", "500"], "must not be longer"),
    (["ask", "v.mkv", "q", "--scope", "whole", "--top-k", "0"], "top-k"),
])
def test_cli_refuses_bad_chapter_flags_before_loading_a_model(argv, words, capsys):
    from pllava_demo.cli import main

    assert main([*argv, "--model", "/nonexistent/model"]) == 2
    err = capsys.readouterr().err
    assert words in err and "Loaded" not in err
