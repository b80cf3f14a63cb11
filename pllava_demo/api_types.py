"""The door of the Studio: a raw payload (JSON from an API client, slider values from the page)
parsed into typed settings, once, before anything is stored or any work starts.

Every bad value gets one InputError sentence naming the field and what it may be ("top_p must be a
number in (0, 1], got 'abc'."); what comes out is plain ints, floats, bools and strings in range, so
`Options`, `GenerationSettings` and the engine trust them. Knows nothing about gradio or the engine
beyond the few numbers (patch grid, limits, LoRA or not) passed in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from .frames import strategies
from .config import MAX_LORA_ALPHA, Limits
from .errors import InputError

MAX_SEED = 2**32 - 1  # what every sampler backend accepts as a seed
FIELDS = ("num_frames", "pooling", "strategy", "lora_alpha", "do_sample", "temperature", "top_p", "max_new_tokens",
          "repetition_penalty", "min_new_tokens", "seed", "system", "start_s", "end_s")
MAX_TIME_S = 24 * 3600.0  # a time in a video: far beyond any video the server accepts


@dataclass(frozen=True)
class Bounds:
    """The ranges that depend on the server and the checkpoint."""

    max_frames: int = 32
    max_new_tokens: int = 1024
    grid: tuple[int, int] = (24, 24)
    has_lora: bool = True
    # whether a strategy's own CLIP pass (IG-VLM's grid, TS-LLaVA's thumbnail) can run when it is chosen:
    # not on ZeroGPU, where the model runs only inside a GPU call (an answer), in a forked worker
    own_images: bool = True

    @classmethod
    def of(cls, engine) -> "Bounds":
        return cls(max_frames=engine.limits.max_frames, max_new_tokens=engine.limits.max_new_tokens,
                   grid=tuple(engine.spec.frame_grid), has_lora=bool(engine.spec.has_lora),
                   own_images=bool(getattr(engine, "own_images", True)))


def _show(value, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(name: str, value, what: str) -> float:
    # bool is an int in Python, but `true` for a number is a client's mistake, not 1
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{name} must be {what}, got {_show(value)}.")
    try:
        f = float(value)
    except OverflowError:  # an int too large for a float
        raise InputError(f"{name} must be {what}, got {_show(value)}.") from None
    if not math.isfinite(f):
        raise InputError(f"{name} must be {what}, got {_show(value)}.")
    return f


def whole(name: str, value, lo: int, hi: int) -> int:
    """An int in [lo, hi]; 8.0 is 8, but 7.9, "8", true, Infinity and 10**30 are refused."""
    what = f"a whole number {lo}-{hi}"
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        f = _number(name, value, what)
        if not f.is_integer():
            raise InputError(f"{name} must be {what}, got {_show(value)}.")
        n = int(f)
    if not lo <= n <= hi:
        raise InputError(f"{name} must be {what}, got {_show(value)}.")
    return n


def real(name: str, value, lo: float, hi: float, *, open_low: bool = False) -> float:
    """A finite float in [lo, hi] (or (lo, hi] with open_low)."""
    what = f"a number in {'(' if open_low else '['}{lo:g}, {hi:g}]"
    f = _number(name, value, what)
    if not ((lo < f) if open_low else (lo <= f)) or f > hi:
        raise InputError(f"{name} must be {what}, got {_show(value)}.")
    return f


def flag(name: str, value) -> bool:
    """Only true or false: "no" is not False, and it must not be taken as True."""
    if not isinstance(value, bool):
        raise InputError(f"{name} must be true or false, got {_show(value)}.")
    return value


def seed(value) -> int | None:
    return None if value is None else whole("seed", value, 0, MAX_SEED)


def text(name: str, value) -> str:
    if not isinstance(value, str):
        raise InputError(f"{name} must be text, got {_show(value)}.")
    return value


def pooling(value, bounds: Bounds) -> tuple[int, int, int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or len(value) != 3:
        raise InputError(f"pooling must be three whole numbers [frames, height, width], got {_show(value)}.")
    t, h, w = value
    return (whole("pooling frames (T')", t, 1, bounds.max_frames),
            whole("pooling height (h')", h, 1, bounds.grid[0]),
            whole("pooling width (w')", w, 1, bounds.grid[1]))


def strategy(value, bounds: Bounds) -> strategies.Strategy:
    """A visual-token strategy: a name ("n-frame") or {"name": ..., its settings} ({"name": "pllava",
    "pooling": [16, 12, 12]}, {"name": "ig-vlm", "grid_frames": 6}); whole-number settings may come as
    8.0 (JSON), like every other whole number here."""
    if isinstance(value, str):
        return _runs_here(strategies.make(value), bounds)
    if not isinstance(value, Mapping):
        raise InputError(f"strategy must be a name ({', '.join(strategies.NAMES)}) or an object like "
                         f"{{\"name\": \"ig-vlm\", \"grid_frames\": 6}}, got {_show(value)}.")
    knobs = dict(value)
    cls = strategies.strategy_class(knobs.pop("name", None))
    if cls is strategies.PllavaPooling:
        shape = knobs.pop("pooling", knobs.pop("shape", None))
        if shape is not None:
            knobs["shape"] = pooling(shape, bounds)
    for name, (lo, hi, _) in cls.KNOBS.items():
        if name in knobs:
            knobs[name] = whole(f"strategy {cls.name} {name}", knobs[name], lo, hi)
    return _runs_here(strategies.make(cls.name, **knobs), bounds)


def _runs_here(s: strategies.Strategy, bounds: Bounds) -> strategies.Strategy:
    if s.changes_frames and not bounds.own_images:
        raise InputError(f"The {s.title} strategy builds its own image for CLIP, which this ZeroGPU Space can only "
                         f"encode inside an answer; choose PLLaVA pooling, n-frame or Video-ChatGPT here.")
    return s


def num_frames(value, bounds: Bounds) -> int:
    return whole("num_frames", value, 1, bounds.max_frames)


def time_point(name: str, value) -> float | None:
    """A start_s / end_s of the part of the video to sample: null is the video's own start or end."""
    if value is None:
        return None
    return real(f"{name} (seconds into the video, or null for the whole video)", value, 0.0, MAX_TIME_S)


def time_range(start_s: float | None, end_s: float | None) -> tuple[float | None, float | None]:
    """The merged range must start before it ends; whether it lies inside the video is the video's to say."""
    if start_s is not None and end_s is not None and not start_s < end_s:
        raise InputError(f"The time range must start before it ends: start_s {start_s:g} s, end_s {end_s:g} s.")
    return start_s, end_s


def changes_dict(raw) -> dict:
    """An API payload that must be a JSON object of settings (null is no change)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InputError(f"The settings must be a JSON object like {{\"top_p\": 0.9}}, got {_show(raw)}.")
    unknown = sorted(str(k) for k in raw if k not in FIELDS)
    if unknown:  # named short (a key may be any text), so the message stays one readable line
        named = ", ".join(_show(k, 24) for k in unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        raise InputError(f"Unknown setting(s) {named}; the settings are {', '.join(FIELDS)}.")
    return dict(raw)


def parse_changes(raw, bounds: Bounds) -> dict:
    """Settings changes (any subset of FIELDS) -> the same keys with typed, in-range values. The
    cross-field rule (min_new_tokens <= max_new_tokens) is checked by the caller on the merged result."""
    changes = changes_dict(raw)
    out = {}
    for name, value in changes.items():
        if name == "num_frames":
            out[name] = num_frames(value, bounds)
        elif name == "pooling":  # PLLaVA's knob: giving it chooses PLLaVA pooling
            out[name] = pooling(value, bounds)
            out.setdefault("strategy", None)
        elif name == "strategy":
            s = strategy(value, bounds)
            out[name] = None if isinstance(s, strategies.PllavaPooling) else s  # None: PLLaVA at Options.pooling
            if isinstance(value, Mapping) and s.name == "pllava" and ({"pooling", "shape"} & set(value)):
                out["pooling"] = s.shape
        elif name == "lora_alpha":
            # without LoRA weights alpha means nothing: any value is dropped, never stored
            out[name] = real("lora_alpha", value, 0.0, MAX_LORA_ALPHA) if bounds.has_lora else None
        elif name == "do_sample":
            out[name] = flag(name, value)
        elif name == "temperature":
            out[name] = real(name, value, 0.0, 5.0, open_low=True)
        elif name == "top_p":
            out[name] = real(name, value, 0.0, 1.0, open_low=True)
        elif name == "max_new_tokens":
            out[name] = whole(name, value, 1, bounds.max_new_tokens)
        elif name == "min_new_tokens":
            out[name] = whole(name, value, 0, bounds.max_new_tokens)
        elif name == "repetition_penalty":
            out[name] = real(name, value, 0.5, 2.0)
        elif name == "seed":
            out[name] = seed(value)
        elif name == "system":
            out[name] = text(name, value)
        elif name in ("start_s", "end_s"):
            out[name] = time_point(name, value)
    if "lora_alpha" not in out and not bounds.has_lora:
        out["lora_alpha"] = None
    return out


def upload_frames(value, limits: Limits) -> int | None:
    """/upload's num_frames: null (or absent) keeps the session's count; anything else is checked."""
    if value is None:
        return None
    return whole("num_frames", value, 1, limits.max_frames)
