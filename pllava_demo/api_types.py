"""The door of the Studio: a raw payload (JSON from an API client, slider values from the page)
parsed into typed settings, once, before anything is stored or any work starts.

Every bad value gets one InputError sentence naming the field and what it may be ("top_p must be a
number in (0, 1], got 'abc'."); what comes out is plain ints, floats, bools and strings in range, so
`Options`, `GenerationSettings` and the engine trust them. Knows nothing about gradio or the engine
beyond the few numbers (patch grid, limits, LoRA or not) passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from . import settings
from .config import Limits
from .errors import InputError
from .frames import strategies
from .settings import GENERATION, LIMITS, LORA_ALPHA, NUM_FRAMES, VIEW, Setting

FIELDS = ("num_frames", "pooling", "strategy", "lora_alpha", "do_sample", "temperature", "top_p", "max_new_tokens",
          "repetition_penalty", "min_new_tokens", "seed", "system", "start_s", "end_s")
_TABLE = GENERATION | VIEW  # every field but pooling and strategy (their checks are below)
_show = settings.show


@dataclass(frozen=True)
class Bounds:
    """The ranges that depend on the server and the checkpoint."""

    max_frames: int = LIMITS["max_frames"].default
    max_new_tokens: int = LIMITS["max_new_tokens"].default
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


def whole(name: str, value, lo: int, hi: int) -> int:
    """An int in [lo, hi]; 8.0 is 8, but 7.9, "8", true, Infinity and 10**30 are refused."""
    return Setting(name, int, lo=lo, hi=hi).check(value)


def real(name: str, value, lo: float, hi: float, *, open_low: bool = False) -> float:
    """A finite float in [lo, hi] (or (lo, hi] with open_low)."""
    return Setting(name, float, lo=lo, hi=hi, open_low=open_low).check(value)


def flag(name: str, value) -> bool:
    """Only true or false: "no" is not False, and it must not be taken as True."""
    return Setting(name, bool).check(value)


def seed(value) -> int | None:
    return GENERATION["seed"].check(value)


def text(name: str, value) -> str:
    return Setting(name, str).check(value)


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
    return NUM_FRAMES.check(value, hi=bounds.max_frames)


def time_point(name: str, value) -> float | None:
    """A start_s / end_s of the part of the video to sample: null is the video's own start or end."""
    return VIEW[name].check(value)


def time_range(start_s: float | None, end_s: float | None) -> tuple[float | None, float | None]:
    """The merged range must start before it ends; whether it lies inside the video is the video's to say."""
    return settings.check_time_range(start_s, end_s)


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
    # the upper bounds that are the server's: the rest are the settings table's own
    hi = {"num_frames": bounds.max_frames, "max_new_tokens": bounds.max_new_tokens,
          "min_new_tokens": bounds.max_new_tokens}
    for name, value in changes.items():
        if name == "pooling":  # PLLaVA's knob: giving it chooses PLLaVA pooling
            out[name] = pooling(value, bounds)
            out.setdefault("strategy", None)
        elif name == "strategy":
            s = strategy(value, bounds)
            out[name] = None if isinstance(s, strategies.PllavaPooling) else s  # None: PLLaVA at Options.pooling
            if isinstance(value, Mapping) and s.name == "pllava" and ({"pooling", "shape"} & set(value)):
                out["pooling"] = s.shape
        elif name == "lora_alpha":
            # without LoRA weights alpha means nothing: any value is dropped, never stored
            out[name] = LORA_ALPHA.check(value) if bounds.has_lora else None
        else:
            out[name] = _TABLE[name].check(value, hi=hi.get(name))
    if "lora_alpha" not in out and not bounds.has_lora:
        out["lora_alpha"] = None
    return out


def upload_frames(value, limits: Limits) -> int | None:
    """/upload's num_frames: null (or absent) keeps the session's count; anything else is checked."""
    if value is None:
        return None
    return NUM_FRAMES.check(value, hi=limits.max_frames)
