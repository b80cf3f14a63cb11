"""Server limits and GPU faults in the engine: every limit is checked before work starts and named in
its message; running out of memory in a forward pass (injected here, on CPU) becomes a one-sentence
`ResourceError`, frees what it can, leaves the session consistent, and the next request works."""

import re

import pytest
import torch

from pllava_demo.config import GenerationSettings, Limits
from pllava_demo.chat.engine import Engine
from pllava_demo.errors import InputError, ResourceError, VideoError
from test_hostile import _raw_h264, assert_readable
from videos import write_long_video, write_video

FAST = GenerationSettings(max_new_tokens=6, min_new_tokens=6)
POOL = (4, 6, 6)


def _kv_caches(s) -> int:
    """How many KV caches the engine's budget holds for this session."""
    return sum(1 for key in s.engine.kv_caches.keys() if key[0] == s.id)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("v") / "clip.mp4", n_frames=24, width=96, height=64, pattern="colour")


def _engine(ckpt, **limits) -> Engine:
    return Engine.load(ckpt, device="cpu", quantization="none", limits=Limits(**limits))


@pytest.fixture()
def fresh(tiny_official):
    return _engine(tiny_official)


# ------------------------------------------------------------------------------------------ limits


def test_a_file_over_the_size_limit_is_refused_before_reading_a_byte(fresh, tmp_path, monkeypatch):
    big = tmp_path / "big.mp4"
    with open(big, "wb") as f:
        f.truncate(250 * 2**20)  # sparse: 250 MB on paper, nothing on disk
    monkeypatch.setattr("pllava_demo.frames.video.content_key", lambda p: pytest.fail("hashed an oversized file"))
    with pytest.raises(VideoError, match=r"^The file is 250 MB; the limit is 200 MB\.$") as e:
        fresh.new_session().set_video(big, 8)
    assert_readable(e.value)
    assert fresh.stats["videos_decoded"] == 0


def test_size_limit_rounds_up_and_is_a_setting(tiny_official, video, tmp_path):
    eng = _engine(tiny_official, max_file_mb=0.001)
    kb = video.stat().st_size / 1024
    with pytest.raises(VideoError, match=r"^The file is 0\.0\d\d MB; the limit is 0\.001 MB\.$"):
        eng.prepare_video(video, 4)
    assert 1 < kb < 100
    just_over = tmp_path / "just_over.mp4"
    with open(just_over, "wb") as f:
        f.truncate(200 * 2**20 + 1)
    with pytest.raises(VideoError, match=r"^The file is 200\.1 MB; the limit is 200 MB\.$"):
        _engine(tiny_official).prepare_video(just_over, 4)


def test_duration_limit_is_named_and_checked_before_decoding(tiny_official, tmp_path):
    eng = _engine(tiny_official, max_duration_s=3600)
    long = write_long_video(tmp_path / "two_hours.mp4", seconds=7200, fps=1, width=64, height=48, keyframe_every_s=600)
    with pytest.raises(VideoError, match=r"^The video is 2 h 0 min long; the limit is 1 h 0 min\.$"):
        eng.new_session().set_video(long, 8)
    assert eng.stats["videos_decoded"] == 0


def test_duration_limit_holds_for_a_stream_that_reports_no_duration(tiny_official, tmp_path):
    # an elementary stream has no duration header: the reader counts packets, then checks
    raw = _raw_h264(tmp_path, n_frames=48)
    with pytest.raises(VideoError, match=r"^The video is 1\.92 s long; the limit is 1 s\.$"):
        _engine(tiny_official, max_duration_s=1).prepare_video(raw, 4)
    assert _engine(tiny_official, max_duration_s=2).prepare_video(raw, 4).features.shape[0] == 4


def test_frame_count_limit(tiny_official, video):
    eng = _engine(tiny_official, max_frames=8)
    with pytest.raises(InputError, match=r"^num_frames must be a whole number 1-8, got 9\.$"):
        eng.new_session().set_video(video, 9)
    with pytest.raises(InputError, match=r"got 0\.$"):
        eng.new_session().set_video(video, 0)
    assert eng.stats["videos_decoded"] == 0
    assert eng.new_session().set_video(video, 8).num_frames == 8


def test_question_and_new_token_limits(tiny_official, video):
    eng = _engine(tiny_official, max_question_chars=50, max_new_tokens=64)
    s = eng.new_session()
    s.set_video(video, 4)
    with pytest.raises(InputError, match=r"^The question is 51 characters long; the limit is 50\.$"):
        s.ask("q" * 51)
    with pytest.raises(InputError, match=r"^max_new_tokens must be a whole number 1-64, got 65\.$"):
        s.ask("ok?", settings=GenerationSettings(max_new_tokens=65))
    assert eng.stats["prefills"] == 0 and s.turns == []
    "".join(s.ask("q" * 50, pooling_shape=POOL, settings=GenerationSettings(max_new_tokens=64, min_new_tokens=2)))
    assert len(s.turns) == 1


def test_decoding_has_a_time_budget(tiny_official, tmp_path):
    eng = _engine(tiny_official, decode_time_budget_s=1e-3)
    video = write_video(tmp_path / "v.mp4", n_frames=48, width=64, height=48)
    raw = _raw_h264(tmp_path, "long.h264", n_frames=600)  # no header: counting its packets is timed too
    for path in (video, raw):
        with pytest.raises(VideoError, match=r"^Reading the video took longer than the 0\.001 s allowed; ") as e:
            eng.new_session().set_video(path, 16)
        assert_readable(e.value)
    assert eng.stats["videos_decoded"] == 0


def test_one_gop_video_decodes_once_front_to_back(tmp_path):
    """A 10-minute mp4 with a single keyframe: seeking can only land on frame 0, so it must not seek."""
    from pllava_demo.frames.video import read_video

    path = write_long_video(tmp_path / "one_gop.mp4", seconds=600, fps=24, width=64, height=48, keyframe_every_s=600)
    clip = read_video(path, 16)
    assert clip.decoded_frames <= 600 * 24


def test_limits_are_validated():
    with pytest.raises(ValueError, match="max_file_mb must be a number > 0"):
        Limits(max_file_mb=0)
    with pytest.raises(ValueError, match="max_frames"):
        Limits(max_frames=True)
    with pytest.raises(ValueError, match=r"^max_new_tokens must be a whole number 1-4096, got 5000\.$"):
        Limits(max_new_tokens=5000)


# -------------------------------------------------------------------------------------- GPU faults


def _fail_once(monkeypatch, obj, name, exc, on_call=1):
    """Make obj.name raise exc on its on_call-th call (1-based), and work before and after."""
    real, calls = getattr(obj, name), []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == on_call:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(obj, name, flaky)
    return calls


OOM = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.15 GiB total capacity)")


def _answer(session, question="What happens?"):
    return "".join(session.ask(question, pooling_shape=POOL, settings=FAST))


def _same_as_fresh(tiny_official, session, question, answer) -> None:
    """A session that never failed, given the same history, gives the same answer."""
    other = _engine(tiny_official).new_session()
    other.set_video(session.video.clip.source, session.video.num_frames)
    other.turns = list(session.turns[:-1])
    assert _answer(other, question) == answer


def test_oom_while_encoding_is_a_message_and_the_next_upload_works(fresh, video):
    s = fresh.new_session()
    s.set_video(video, 4)
    _answer(s)
    mp = pytest.MonkeyPatch()
    try:
        calls = _fail_once(mp, fresh.model, "encode_frames", OOM)
        with pytest.raises(ResourceError, match=r"^The server ran out of memory while encoding the video; "
                                                r"try fewer frames or a smaller pooling shape\.$") as e:
            s.set_video(video, 8)
        assert_readable(e.value)
        assert e.value.__context__ is None and e.value.__cause__ is None  # the OOM (and its tensors) let go
        assert s.video.num_frames == 4 and len(s.turns) == 1  # the session still holds its last video
        assert fresh.stats["out_of_memory"] == 1 and len(fresh.feature_cache) == 1
        assert s.set_video(video, 8).num_frames == 8 and len(calls) == 2
    finally:
        mp.undo()
    _answer(s, "Now?")
    assert len(s.turns) == 2


@pytest.mark.parametrize("exc", [OOM, RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB)")])
def test_oom_in_prefill_adds_no_turn_and_frees_the_cache(fresh, tiny_official, video, monkeypatch, exc):
    s = fresh.new_session()
    s.set_video(video, 4)
    _answer(s)
    assert _kv_caches(s)
    _fail_once(monkeypatch, fresh.model.language_model.model, "forward", exc)
    stream = s.ask("And then?", pooling_shape=POOL, settings=FAST)  # validation passes; work starts on next()
    with pytest.raises(ResourceError, match="try fewer frames or a smaller pooling shape") as e:
        "".join(stream)
    assert_readable(e.value)
    assert len(s.turns) == 1 and not _kv_caches(s)
    again = _answer(s, "And then?")
    assert len(s.turns) == 2 and not s.turns[-1].stopped
    _same_as_fresh(tiny_official, s, "And then?", again)


def test_oom_mid_answer_keeps_what_was_shown_marked_stopped(fresh, tiny_official, video, monkeypatch):
    s = fresh.new_session()
    s.set_video(video, 4)
    long = GenerationSettings(max_new_tokens=24, min_new_tokens=24)
    # the decoder (language_model.model) runs once for the prefill, then once per token: fail on the 12th token
    _fail_once(monkeypatch, fresh.model.language_model.model, "forward", OOM, on_call=13)
    shown = ""
    with pytest.raises(ResourceError, match="ran out of memory while writing the answer") as e:
        for piece in s.ask("Describe it.", pooling_shape=POOL, settings=long):
            shown += piece
    assert_readable(e.value)
    assert shown and len(s.turns) == 1
    assert s.turns[-1].stopped and s.turns[-1].answer == shown.strip()
    assert not _kv_caches(s)
    follow = _answer(s, "Go on.")
    _same_as_fresh(tiny_official, s, "Go on.", follow)


def test_other_errors_are_not_disguised_as_memory(fresh, video, monkeypatch):
    s = fresh.new_session()
    s.set_video(video, 4)
    _fail_once(monkeypatch, fresh.model.language_model.model, "forward", RuntimeError("shape mismatch in matmul"))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        _answer(s)
    assert s.turns == [] and not _kv_caches(s) and fresh.stats["out_of_memory"] == 0
    _answer(s)
    assert len(s.turns) == 1


def test_cuda_memory_is_handed_back_after_an_oom(fresh, video, monkeypatch):
    emptied = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    monkeypatch.setattr(fresh.model, "encode_frames", lambda pixels: (_ for _ in ()).throw(OOM))
    with pytest.raises(ResourceError):
        fresh.prepare_video(video, 4)
    assert emptied


def test_regenerate_refused_before_work_keeps_the_old_answer(fresh, tiny_official, video):
    eng = _engine(tiny_official, max_new_tokens=64)
    s = eng.new_session()
    s.set_video(video, 4)
    first = _answer(s)
    with pytest.raises(InputError, match="max_new_tokens must be a whole number 1-64, got 65"):
        s.regenerate(pooling_shape=POOL, settings=GenerationSettings(max_new_tokens=65))
    assert len(s.turns) == 1 and s.turns[0].answer == first.strip()


def test_package_never_unpickles_or_runs_remote_code():
    """Weights are safetensors only (pickle folders are refused: tests/test_checkpoint.py); this pins
    that no module grows a pickle or remote-code path."""
    from pathlib import Path

    import pllava_demo

    banned = re.compile(r"torch\.load\(|pickle\.loads?\(|trust_remote_code\s*=\s*True|weights_only\s*=\s*False"
                        r"|(?<![.\w])(eval|exec)\(")
    for src in Path(pllava_demo.__file__).parent.glob("*.py"):
        assert not banned.search(src.read_text()), f"{src.name}: {banned.search(src.read_text()).group()}"


def test_animated_image_reading_keeps_the_time_budget(tmp_path):
    from pllava_demo.errors import VideoError
    from pllava_demo.frames.video import read_video
    from videos import write_animated_webp

    path = write_animated_webp(tmp_path / "anim.webp", n_frames=400, width=64, height=48)
    assert read_video(path, 8).frames.shape[0] == 8
    with pytest.raises(VideoError, match="longer than the 1e-06 s allowed"):
        read_video(path, 8, time_budget=1e-6)
