"""The settings table (pllava_demo/settings.py) and what is built from it: every default passes its own
check, the flags of app.py / `serve` / the CLI round-trip the defaults and take the environment, a bad
value gets the table's one sentence wherever it comes in (argparse, the API, the records), and
whatever JSON reaches `parse_changes` gives typed values or an InputError naming the setting."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hsettings
from hypothesis import strategies as st

from pllava_demo import api_types, settings
from pllava_demo.config import GenerationSettings, Limits
from pllava_demo.errors import CheckpointError, InputError, VideoError
from pllava_demo.settings import GENERATION, LIMITS, MODEL, VIEW, Setting, add_flags, from_args

ROOT = Path(__file__).resolve().parents[1]
TABLES = {"GENERATION": GENERATION, "VIEW": VIEW, "LIMITS": LIMITS, "MODEL": MODEL, "SERVER": settings.SERVER,
          "PAGE": settings.PAGE, "API": settings.API}
ALL = [(t, s) for t, table in TABLES.items() for s in table.values()]
IDS = [f"{t}.{s.name}" for t, s in ALL]


def _app():
    spec = importlib.util.spec_from_file_location("pllava_app_settings", ROOT / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    return app


def _parser(*tables) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    for table in tables:
        add_flags(p, table.values())
    return p


def _other_value(s: Setting):
    """A valid value of `s` other than its default (for the round trip and the environment)."""
    if s.kind is bool:
        return not s.default
    if s.choices:
        return next(c for c in s.choices if c != s.default)
    if s.kind is str:
        return "other-value"
    if s.kind is int:
        return (s.default or s.lo or 0) + 1 if s.hi is None or (s.default or 0) + 1 <= s.hi else s.lo
    base = s.default if s.default is not None else s.lo
    return base / 2 if base else 0.5


@pytest.mark.parametrize("table, s", ALL, ids=IDS)
def test_every_default_passes_its_own_check(table, s):
    if s.default is None:  # "not given": the checkpoint's alpha, a random seed, the whole video
        return
    assert s.check(s.default) == s.default
    assert s.check(_other_value(s)) == _other_value(s)


@pytest.mark.parametrize("table, s", [a for a in ALL if a[1].flag], ids=[i for a, i in zip(ALL, IDS) if a[1].flag])
def test_flags_round_trip_the_defaults_and_take_the_environment(table, s, monkeypatch):
    for t in TABLES.values():
        for other in t.values():
            if other.env:
                monkeypatch.delenv(other.env, raising=False)
    parsed = from_args(_parser(TABLES[table]).parse_args([]), [s])
    assert parsed == {s.name: s.default}
    other = _other_value(s)
    argv = [s.flag] if s.kind is bool else [s.flag, str(other)]
    assert from_args(_parser(TABLES[table]).parse_args(argv), [s]) == {s.name: other}
    if s.env:
        monkeypatch.setenv(s.env, "1" if s.kind is bool else str(other))
        assert from_args(_parser(TABLES[table]).parse_args([]), [s]) == {s.name: other}


@pytest.mark.parametrize("table, s", [a for a in ALL if a[1].flag and a[1].kind in (int, float)],
                         ids=[i for a, i in zip(ALL, IDS) if a[1].flag and a[1].kind in (int, float)])
def test_a_bad_flag_or_environment_value_gets_the_tables_sentence(table, s, monkeypatch, capsys):
    for bad in ("abc", str(s.lo - 1)):
        with pytest.raises(SystemExit):
            _parser(TABLES[table]).parse_args([s.flag, bad])
        assert s.refusal(bad) in capsys.readouterr().err
    if s.env:
        monkeypatch.setenv(s.env, "abc")
        with pytest.raises(SystemExit):
            _parser(TABLES[table]).parse_args([])
        assert s.refusal("abc") in capsys.readouterr().err


def test_the_records_are_the_tables():
    assert [f.name for f in dataclasses.fields(GenerationSettings)] == list(GENERATION)
    assert [f.name for f in dataclasses.fields(Limits)] == list(LIMITS)
    assert dataclasses.asdict(GenerationSettings()) == {n: s.default for n, s in GENERATION.items()}
    assert dataclasses.asdict(Limits()) == {n: s.default for n, s in LIMITS.items()}
    assert set(api_types.FIELDS) == set(GENERATION) | set(VIEW) | {"pooling", "strategy"}
    bounds = api_types.Bounds()
    assert (bounds.max_frames, bounds.max_new_tokens) == (Limits().max_frames, Limits().max_new_tokens)


def test_one_sentence_wherever_a_bad_value_comes_in(tmp_path):
    temperature, frames = GENERATION["temperature"], VIEW["num_frames"]
    with pytest.raises(InputError) as api:
        api_types.parse_changes({"temperature": 0}, api_types.Bounds())
    with pytest.raises(InputError) as record:
        GenerationSettings(temperature=0)
    assert str(api.value) == str(record.value) == temperature.refusal(0)
    with pytest.raises(InputError) as api:
        api_types.parse_changes({"num_frames": 40}, api_types.Bounds(max_frames=32))
    with pytest.raises(InputError) as limit:
        Limits(max_frames=32).check_frames(40)
    assert str(api.value) == str(limit.value) == frames.refusal(40, hi=32) \
        == "num_frames must be a whole number 1-32, got 40."
    with pytest.raises(ValueError, match=r"^max_frames must be a whole number >= 1, got 0\.$"):
        Limits(max_frames=0)
    with pytest.raises(InputError, match=r"^min_new_tokens must be a whole number 0-8, got 9\.$"):
        GenerationSettings(max_new_tokens=8, min_new_tokens=9)
    assert Limits(max_frames=8.0).max_frames == 8 and type(Limits(max_file_mb=50).max_file_mb) is float


def test_the_time_range_and_the_frame_count_are_checked_once_for_files_too(tmp_path):
    from videos import write_video

    from pllava_demo.frames.read import read_video

    path = write_video(tmp_path / "v.mp4", n_frames=8, width=32, height=32)
    with pytest.raises(VideoError) as e:
        read_video(path, 4, start_s=2.0, end_s=1.0)
    with pytest.raises(InputError) as api:
        api_types.time_range(2.0, 1.0)
    assert str(e.value) == str(api.value) == "The time range must start before it ends: start_s 2 s, end_s 1 s."
    with pytest.raises(VideoError, match=r"^start_s \(seconds into the video, or null for the whole video\) must"):
        read_video(path, 4, start_s=-1.0)
    with pytest.raises(VideoError, match=r"^num_frames must be a whole number >= 1, got 0\.$"):
        read_video(path, 0)


def test_the_choices_are_the_tables():
    from pllava_demo.network import checkpoint, device_policy

    assert device_policy.CPU_DTYPES == MODEL["cpu_dtype"].choices
    with pytest.raises(CheckpointError, match=r"^quantization must be one of auto, none, 4bit, got '8bit'\.$"):
        checkpoint.load_pllava(ROOT, quantization="8bit")
    with pytest.raises(SystemExit):
        _app().parse_args(["--quantization", "8bit"])


def test_app_and_serve_flags_are_the_tables(monkeypatch):
    """Every flag of `python app.py` and `serve` is a row of the table (nothing retyped there)."""
    from pllava_demo.cli import build_parser

    app = _app()
    monkeypatch.setenv("PLLAVA_MAX_FRAMES", "12")
    args = app.parse_args([])
    assert Limits.from_args(args) == Limits(max_frames=12)
    serve = build_parser().parse_args(["serve"])
    assert Limits.from_args(serve) == Limits(max_frames=12) and serve.port == 8000
    monkeypatch.setenv("GRADIO_SERVER_PORT", "9100")
    assert app.parse_args([]).port == 9100
    monkeypatch.setenv("PLLAVA_PORT", "9200")
    assert app.parse_args([]).port == 9200


def test_extensions_and_hub_ids_have_one_home():
    from pllava_demo.caption import records
    from pllava_demo.frames import images
    from pllava_demo.openai_api import media

    assert images.IMAGE_EXTENSIONS is settings.IMAGE_EXTENSIONS
    assert records.VIDEO_EXTENSIONS is settings.VIDEO_EXTENSIONS
    assert media.KNOWN == set(settings.UPLOAD_VIDEO_EXTENSIONS + settings.IMAGE_EXTENSIONS)
    assert set(media.SUFFIXES.values()) <= media.KNOWN
    assert settings.is_hub_id("ermu2001/pllava-7b") and not settings.is_hub_id("/models/x")
    assert not settings.is_hub_id("a/b/c")


json_scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
                | st.sampled_from([0, 1, 8, 16, 33, 0.5, 7.9, 8.0, 1e308]) | st.text(max_size=6)
                | st.sampled_from(["8", "no", "", "pllava", "ig-vlm"]))
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.sampled_from(["name", "pooling", "grid_frames", "x"]), kids, max_size=3),
                           max_leaves=8)


@hsettings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(api_types.FIELDS), value=json_values, has_lora=st.booleans())
def test_any_payload_gives_typed_values_or_a_sentence_naming_the_setting(name, value, has_lora):
    bounds = api_types.Bounds(has_lora=has_lora)
    try:
        out = api_types.parse_changes({name: value}, bounds)
    except InputError as e:
        text = str(e)
        assert "\n" not in text and text.endswith(".") and len(text) < 400
        assert name in text or (name == "strategy" and ("strateg" in text.lower() or "pooling" in text))
        if name in GENERATION or name in VIEW:  # the table's own sentence, with the server's upper bound
            hi = {"num_frames": bounds.max_frames, "max_new_tokens": bounds.max_new_tokens,
                  "min_new_tokens": bounds.max_new_tokens}.get(name)
            assert text == (GENERATION | VIEW)[name].refusal(value, hi=hi)
        return
    setting = (GENERATION | VIEW).get(name)
    if setting is not None and not (name == "lora_alpha" and not has_lora):
        assert out[name] == setting.check(out[name])  # what comes out passes its own check, typed
        assert out[name] is None or type(out[name]) is setting.kind
