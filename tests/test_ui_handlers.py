"""The studio's tab and its commands (pllava_demo/studio/) as plain functions, with the tiny random
checkpoint (no server)."""

import dataclasses

import numpy as np
import pytest
from videos import write_video

from pllava_demo.studio import tab as tabs
from pllava_demo.chat.prompt import Turn
from pllava_demo.studio.model_holder import ModelHolder
from pllava_demo.studio.options import Options
from pllava_demo.studio.registry import Registry
from pllava_demo.ui.chat_messages import chat_stream, history
from pllava_demo.ui import view as V
from pllava_demo.errors import InputError, PllavaError, VideoError
from pllava_demo.studio.zerogpu_runner import gpu, gpu_duration


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("ui") / "clip.mp4", n_frames=36, width=160, height=120,
                       pattern="colour")


@pytest.fixture
def studio(engine, clip_path):
    s = tabs.Tab(engine)
    tabs.set_options(s, pooling=(4, 6, 6), max_new_tokens=16, min_new_tokens=16)
    tabs.load_video(s, clip_path, 8)
    yield s
    s.close()


def test_video_info_gallery_and_view(studio):
    info = V.video_info(studio)
    assert info["loaded"] and info["frames"] == 8 and len(info["timestamps"]) == 8
    assert (info["width"], info["height"], info["name"]) == (160, 120, "clip.mp4")
    assert info["visual_tokens"] == 4 * 6 * 6 and info["pooling_shape"] == [4, 6, 6]
    items = V.gallery_items(studio)
    assert len(items) == 8 and items[0][0].shape[0] <= V.THUMB_HEIGHT
    assert items[1][1] == f"{info['timestamps'][1]:.1f} s"
    assert "144 visual tokens" in V.view_markdown(studio)
    img = V.token_heatmap(studio)
    assert img.width > 4 * 6 and img.mode == "RGBA"


def test_sliders_repool_without_reencoding_but_frames_reencode(studio):
    stats = studio.engine.stats
    decoded, vision = stats["videos_decoded"], stats["vision_calls"]
    tabs.set_options(studio, pooling=(2, 3, 3), lora_alpha=20.0)
    assert V.video_info(studio)["visual_tokens"] == 18
    assert V.token_heatmap(studio) is not None
    assert (stats["videos_decoded"], stats["vision_calls"]) == (decoded, vision)
    tabs.set_options(studio, num_frames=4, pooling=(16, 3, 3))  # T' follows the frames down
    info = V.video_info(studio)
    assert info["frames"] == 4 and studio.options.pooling == (4, 3, 3) and len(V.gallery_items(studio)) == 4
    assert stats["videos_decoded"] == decoded + 1
    tabs.set_options(studio, num_frames=8)  # back to 8: cached, no decode
    assert stats["videos_decoded"] == decoded + 1 and V.video_info(studio)["frames"] == 8


def test_chat_streams_follow_up_regenerate_clear(studio):
    states = list(chat_stream(studio, "What happens?"))
    partials = [m[-1]["content"] for m in states[1:-1]]
    assert len(partials) > 2 and all(a != b for a, b in zip(partials, partials[1:]))
    assert states[-1] == history(studio) and len(states[-1]) == 2
    list(chat_stream(studio, "And then?"))
    assert [t.question for t in studio.session.turns] == ["What happens?", "And then?"]
    last = list(chat_stream(studio, None, regenerate=True))[-1]
    assert len(last) == 4 and last[-2]["content"] == "And then?"
    studio.session.clear()
    assert history(studio) == []


def test_stop_keeps_partial_answer(studio):
    tabs.set_options(studio, max_new_tokens=40, min_new_tokens=40)
    stream = tabs.stream_answer(studio, "Describe it.")
    first = next(stream)
    studio.stop.set()
    rest = list(stream)
    turn = studio.session.turns[-1]
    assert turn.stopped and turn.answer == (rest[-1] if rest else first)
    assert history(studio)[-1]["content"].endswith("*(stopped)*")


def test_compare_leaves_main_chat_alone(studio):
    with pytest.raises(InputError, match="Ask a question first"):
        next(tabs.compare(studio, lora_alpha=20.0))
    list(chat_stream(studio, "What happens?"))
    turns = list(studio.session.turns)
    la, a, lb, b = list(tabs.compare(studio, lora_alpha=20.0, pooling=(4, 2, 2)))[-1]
    assert "alpha 4" in la and "alpha 20" in lb and "4x2x2" in lb
    assert a == turns[-1].answer  # A re-asks with the same (greedy) settings
    assert a != b
    assert studio.session.turns == turns and studio.options.lora_alpha == 4.0


def test_the_zerogpu_runner_answers_and_compares_as_the_local_one(studio):
    """The same commands through the ZeroGPU runner (its GPU calls run in this process here: no `spaces`)
    give what the local runner gives: the same regenerated answer, the same comparison of a later turn."""
    from pllava_demo.studio.zerogpu_runner import ZeroGpuRunner

    stats = studio.engine.stats

    def both():
        answer = list(tabs.answer(studio, None, regenerate=True))[-1]
        before = stats["prefill_tokens"] + stats["reused_tokens"]
        compared = list(tabs.compare(studio, lora_alpha=20.0))[-1]
        return answer, compared, stats["prefill_tokens"] + stats["reused_tokens"] - before  # the prompts read

    list(tabs.answer(studio, "What happens?"))
    list(tabs.answer(studio, "And then?"))
    local = both()
    studio.runner = ZeroGpuRunner(ModelHolder.ready(studio.engine))
    assert both() == local and [t.question for t in studio.session.turns] == ["What happens?", "And then?"]


def test_errors_are_readable(engine, studio, tmp_path):
    fresh = tabs.Tab(engine)
    with pytest.raises(InputError, match="Upload a video"):
        tabs.stream_answer(fresh, "hi")
    with pytest.raises(InputError, match="type a question"):
        tabs.stream_answer(studio, "  ")
    bad = tmp_path / "notes.txt"
    bad.write_text("x")
    with pytest.raises(VideoError, match="Unsupported file type"):
        tabs.load_video(fresh, bad)
    with pytest.raises(InputError, match="temperature must be a number in \(0, 5\]"):
        tabs.set_options(studio, temperature=0.0)
    with pytest.raises(InputError, match="Unknown setting"):
        tabs.set_options(studio, colour="red")
    assert studio.options.temperature == 0.7  # a rejected change changes nothing


def test_model_holder_states(engine, tmp_path):
    ok = ModelHolder.ready(engine)
    assert ok.get() is engine and "Model:" in ok.status_markdown()
    broken = ModelHolder(str(tmp_path / "missing-checkpoint"), device="cpu").start()
    assert broken.wait(60)
    with pytest.raises(PllavaError, match="failed to load"):
        broken.get()
    assert "failed to load" in broken.status_markdown() and "\n" not in broken.error
    loading = ModelHolder("anything")  # never started
    with pytest.raises(InputError, match="still loading"):
        loading.get()


def test_registry_frees_closed_tabs(engine, clip_path):
    reg = Registry(ModelHolder.ready(engine))
    s = reg.tab("tab-1")
    tabs.load_video(s, clip_path, 4)
    assert reg.tab("tab-1") is s and reg.get("tab-1") is s and s.id == "tab-1"
    reg.close("tab-1")
    assert s.video is None and len(reg) == 0 and reg.get("tab-1") is None


def test_many_threads_asking_for_one_tab_id_get_one_tab(engine):
    """The registry's get-or-create is atomic: requests of one tab arriving together (a page's events, an
    API client's calls) all get the same tab, and no tab is made and lost beside it."""
    import threading

    reg = Registry(ModelHolder.ready(engine))
    start, got = threading.Barrier(16), []

    def ask():
        start.wait()
        got.append(reg.tab("same-tab"))

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 16 and len({id(t) for t in got}) == 1 and len(reg) == 1
    reg.close("same-tab")


def test_the_registry_is_bounded_and_closes_what_it_drops(engine, clip_path):
    reg = Registry(ModelHolder.ready(engine), max_items=2)
    first = reg.tab("a")
    tabs.load_video(first, clip_path, 4)
    reg.tab("b"), reg.tab("a"), reg.tab("c")  # "b" is the least recently used now
    assert reg.get("b") is None and reg.get("a") is first and first.video is not None and len(reg) == 2
    reg.discard("a")  # the page state's expiry hands over the id
    assert reg.get("a") is None and first.video is None
    assert reg.tab(None) is not reg.tab(None) and len(reg) == 1  # no id: a tab nobody looks up


def test_heatmap_and_colours():
    norms = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    img = np.asarray(V.heatmap_image(norms))
    assert img.ndim == 3 and img.shape[2] == 4
    # a transparent canvas (no white sheet on a dark page); its labels bring their own light chip
    assert img[0, 0, 3] == 0 and img[-1, -1, 3] == 0
    ink = (img[..., 3] == 255) & (img[..., :3].max(-1) < 60)  # darker than any colour of the map
    assert ink.any() and (img == V.CHIP).all(-1).any()
    c = V.colorize(np.array([0.0, 1.0]))
    assert tuple(c[0]) == (68, 1, 84) and tuple(c[1]) == (253, 231, 37)
    V.heatmap_image(np.ones((1, 1, 1)))  # flat input: no division by zero
    strip = img[-22:, :, :3]  # the colour scale under the tiles: both ends of the map are in it
    for end in c:
        assert (strip == end).all(-1).any()


def test_options_consistency_and_zerogpu_fallback():
    o = dataclasses.replace(Options(), num_frames=4, pooling=(16, 12, 12)).consistent()
    assert o.pooling == (4, 12, 12)

    def f(x):
        return x + 1

    assert gpu(lambda x: 10)(f) is f  # no `spaces` package here: unchanged
    assert gpu_duration(32, 1024) > gpu_duration(4, 64) and gpu_duration(32, 4096) <= 120


def test_app_flags_and_env_fallbacks(monkeypatch):
    import app

    monkeypatch.setenv("PLLAVA_MODEL", "/models/tiny")
    monkeypatch.setenv("PLLAVA_MAX_FILE_MB", "50")
    args = app.parse_args([])
    assert (args.model, args.max_file_size, args.host, args.port, args.share) == ("/models/tiny", 50.0, "127.0.0.1", 7860, False)
    args = app.parse_args(["--model", "x", "--quantization", "4bit", "--device", "cuda", "--port", "9000",
                           "--share", "--max-duration", "60"])
    assert (args.model, args.quantization, args.device, args.port, args.share, args.max_duration) == \
        ("x", "4bit", "cuda", 9000, True, 60.0)


def test_bad_settings_are_messages_and_never_stick(studio, tmp_path):
    tabs.load_video(studio, write_video(tmp_path / "v.mp4", n_frames=24), 8)
    before = studio.options
    for bad in ({"pooling": [1, "a", 2]}, {"pooling": 5}, {"lora_alpha": "x"}, {"temperature": "hot"},
                {"num_frames": 100}):
        with pytest.raises(InputError):
            tabs.set_options(studio, **bad)
        assert studio.options == before and studio.video.num_frames == 8
    tabs.set_options(studio, lora_alpha=10)  # the session still takes good settings
    assert studio.options.lora_alpha == 10


def test_one_answer_at_a_time_and_clear_mid_answer(studio):
    """The session owns the turns: a second question waits for the first answer's end (and sees it in
    its history); Clear while an answer streams leaves the chat empty (the answer does not come back)."""
    import threading

    first = tabs.answer(studio, "First?")
    next(first)  # streaming, holding the answer slot
    second_done = threading.Event()
    second = threading.Thread(target=lambda: (list(tabs.answer(studio, "Second?")), second_done.set()))
    second.start()
    second.join(0.5)
    assert not second_done.is_set() and studio.answering.locked()  # waiting its turn
    list(first)
    second.join(60)
    assert second_done.is_set()
    assert [t.question for t in studio.session.turns] == ["First?", "Second?"]

    stream = tabs.answer(studio, "Cleared mid-answer?")
    next(stream)
    studio.session.clear()
    list(stream)
    assert studio.session.turns == [] and history(studio) == []
    # a turn streamed elsewhere (ZeroGPU's worker) joins once, and never after the chat started over
    turn = Turn("Q?", "A.")
    studio.session.keep_answer(turn, 0, studio.session.epoch)
    studio.session.keep_answer(turn, 0, studio.session.epoch)
    studio.session.keep_answer(Turn("Old?", "x"), 1, studio.session.epoch - 1)
    assert studio.session.turns == [turn]


def test_gallery_times_tell_neighbours_apart(engine, tmp_path):
    """32 frames of a 3-second video are 0.1 s apart: one decimal would show two of them at the same time."""
    s = tabs.Tab(engine)
    try:
        tabs.load_video(s, write_video(tmp_path / "short.mp4", n_frames=72, width=96, height=64), 32)
        captions = [c for _, c in V.gallery_items(s)]
        assert len(set(captions)) == 32 and captions[1] == f"{s.video.clip.timestamps[1]:.2f} s"
        tabs.load_video(s, write_video(tmp_path / "long.mp4", n_frames=240, width=96, height=64), 8)
        assert [c for _, c in V.gallery_items(s)][1] == f"{s.video.clip.timestamps[1]:.1f} s"  # one decimal is enough
    finally:
        s.close()
