"""Property-based fuzz of the settings payloads (hypothesis), on the handlers directly: whatever JSON
a client sends to /set_options, /compare or /upload's num_frames, the result is a valid studio or one
readable InputError, nothing invalid is stored, a refused upload leaves no file, and the session still
answers afterwards. The same through a real server is in test_api_server.py."""

from __future__ import annotations

import dataclasses
import math
import shutil

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from videos import write_video

from pllava_demo import api_types as A
from pllava_demo.studio import tab as tabs
from pllava_demo.studio.options import Options
from pllava_demo.ui.files import Uploads
from pllava_demo.errors import InputError

json_scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.sampled_from([0, 1, 4, 7, 8, 16, 33])
                | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.5, 0.9, 1.0, 7.9, 8.0])
                | st.text(max_size=8) | st.sampled_from(["abc", "no", "yes", "8", ""]))
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.text(max_size=6), kids, max_size=3), max_leaves=8)
# settings dicts: mostly known keys, each with any JSON value (plausible ones often)
setting_dicts = st.dictionaries(st.sampled_from(A.FIELDS + ("colour", "studio", "progress")), json_values, max_size=4)
payloads = setting_dicts | json_values

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("fuzz") / "clip.mp4", n_frames=12, width=64, height=48)


@pytest.fixture(scope="module")
def studio(engine, clip_path):
    s = tabs.Tab(engine)
    tabs.set_options(s, pooling=(2, 3, 3), max_new_tokens=4, min_new_tokens=4)
    tabs.load_video(s, clip_path, 4)
    yield s
    s.close()


def assert_valid(options: Options, engine) -> None:
    """Every stored field has its type and range: the engine may trust it."""
    b = A.Bounds.of(engine)
    whole = lambda v: type(v) is int  # noqa: E731
    real = lambda v: type(v) is float and math.isfinite(v)  # noqa: E731
    assert whole(options.num_frames) and 1 <= options.num_frames <= b.max_frames
    t, h, w = options.pooling
    assert all(map(whole, (t, h, w))) and 1 <= t <= options.num_frames and h <= b.grid[0] and w <= b.grid[1]
    assert type(options.do_sample) is bool and isinstance(options.system, str)
    assert real(options.temperature) and real(options.top_p) and real(options.repetition_penalty)
    assert whole(options.max_new_tokens) and whole(options.min_new_tokens)
    assert options.seed is None or (whole(options.seed) and 0 <= options.seed <= A.MAX_SEED)
    assert options.lora_alpha is None or real(options.lora_alpha)
    options.settings()


def readable(e: InputError) -> None:
    text = str(e)
    assert text and "\n" not in text and len(text) < 300 and text.endswith(".")


def answers(studio) -> None:
    """The session still answers, with whatever settings it kept (capped to a short answer)."""
    tabs.set_options(studio, max_new_tokens=4, min_new_tokens=4)
    turns = len(studio.session.turns)
    text = list(tabs.stream_answer(studio, "What is in the video?"))[-1]
    assert text and len(studio.session.turns) == turns + 1


@FUZZ
@given(payload=payloads)
@example(payload={"\U000108b0\U00012544\U00018d09\U00018d09\U0001dab0": None, "\U00018d09\U0001b2fc": None})
def test_set_options_payloads(studio, payload):
    before = studio.options
    try:
        tabs.set_options(studio, **A.changes_dict(payload))
    except InputError as e:
        readable(e)
        assert studio.options == before  # a refused request changes nothing
    assert_valid(studio.options, studio.engine)
    assert studio.video.num_frames == studio.options.num_frames


def test_set_options_then_answers(studio):
    answers(studio)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(payload=payloads)
def test_compare_payloads(studio, payload):
    if not studio.session.turns:
        answers(studio)
    tabs.set_options(studio, max_new_tokens=4, min_new_tokens=4)
    turns, before = list(studio.session.turns), studio.options
    try:
        changes = A.changes_dict(payload)
        if changes.get("max_new_tokens") is not None or changes.get("min_new_tokens") is not None:
            changes.update(max_new_tokens=4, min_new_tokens=4)  # valid either way; keeps answers short
        out = list(tabs.compare(studio, **changes))
        assert len(out[-1]) == 4
    except InputError as e:
        readable(e)
    assert studio.session.turns == turns and studio.options == before  # compare never touches the chat


@FUZZ
@given(num_frames=json_values)
def test_upload_num_frames(engine, clip_path, tmp_path_factory, num_frames):
    root = tmp_path_factory.mktemp("uploads")
    upload = root / "abc" / "mine.mp4"
    upload.parent.mkdir()
    shutil.copy(clip_path, upload)
    studio = tabs.Tab(engine, uploads=Uploads(root))
    tabs.set_options(studio, pooling=(2, 3, 3), max_new_tokens=4, min_new_tokens=4)
    try:
        tabs.load_video(studio, upload, num_frames)
    except InputError as e:
        readable(e)
        assert studio.video is None and not upload.exists()  # a refused upload is deleted at once
    else:
        assert studio.video.num_frames == (studio.options.num_frames if num_frames is None else num_frames)
        assert type(studio.options.num_frames) is int and upload.exists()
    assert_valid(studio.options, engine)
    studio.close()
    assert not upload.exists()


def test_upload_frames_refuses_what_used_to_be_bent(engine, clip_path):
    """0 was silently 16 and 7.9 was 8; now each names the field and its range."""
    studio = tabs.Tab(engine)
    for bad in (0, 7.9, "abc", [4], {"n": 4}, True, math.inf):
        with pytest.raises(InputError, match=r"^num_frames must be a whole number 1-32, got "):
            tabs.load_video(studio, clip_path, bad)
    tabs.load_video(studio, clip_path, 8.0)
    assert studio.video.num_frames == 8 and type(studio.options.num_frames) is int
    studio.close()


@pytest.mark.parametrize("changes, message", [
    ({"max_new_tokens": math.inf}, r"^max_new_tokens must be a whole number 1-1024, got inf\.$"),
    ({"max_new_tokens": -math.inf}, r"^max_new_tokens must be a whole number"),
    ({"seed": "abc"}, r"^seed must be a whole number 0-4294967295, got 'abc'\.$"),
    ({"seed": 1.5}, r"^seed must be a whole number"),
    ({"seed": 10**30}, r"^seed must be a whole number"),
    ({"system": 5}, r"^system must be text, got 5\.$"),
    ({"system": ["a"]}, r"^system must be text"),
    ({"do_sample": "no"}, r"^do_sample must be true or false, got 'no'\.$"),
    ({"pooling": "4x4x4"}, r"^pooling must be three whole numbers"),
    ({"top_p": "0.9"}, r"^top_p must be a number in \(0, 1\]"),
])
def test_named_bad_values(studio, changes, message):
    before = studio.options
    with pytest.raises(InputError, match=message):
        tabs.set_options(studio, **changes)
    assert studio.options == before


@pytest.mark.parametrize("payload", [[1, 2], "top_p=0.9", 5, True])
def test_payload_must_be_an_object(payload):
    with pytest.raises(InputError, match=r"^The settings must be a JSON object"):
        A.changes_dict(payload)


def test_options_are_frozen_typed_after_a_float_slider(studio):
    tabs.set_options(studio, num_frames=4.0, pooling=[2.0, 3, 3])
    assert dataclasses.astuple(studio.options)[:2] == (4, (2, 3, 3)) and type(studio.options.num_frames) is int
