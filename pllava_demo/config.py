"""Frozen settings of the project: what a checkpoint says about the video model, how to generate,
and the limits that protect a shared server. Plain dataclasses; the defaults, ranges and refusal
sentences of GenerationSettings' and Limits' fields are the settings table's (settings.py), checked in
__post_init__. Nothing here reads argv or the environment (the entry points do that)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

from . import settings
from .errors import InputError
from .settings import DEFAULT_FRAMES, GENERATION, LIMITS, LORA_ALPHA, NUM_FRAMES  # noqa: F401 (DEFAULT_FRAMES: read from here)

PoolingShape = tuple[int, int, int]  # (T', h', w')


def check_lora_alpha(alpha) -> float:
    """A LoRA alpha as a float in [0, MAX_LORA_ALPHA], or InputError with the settings table's sentence."""
    return LORA_ALPHA.check(alpha)


def check_pooling_shape(shape, grid: tuple[int, int] = (24, 24)) -> PoolingShape:
    """Validate a pooling shape (T', h', w') against the per-frame patch grid; returns it as a tuple."""
    try:
        t, h, w = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise InputError(f"The pooling shape must be three whole numbers (frames, height, width), got {shape!r}.") from None
    if t < 1 or not (1 <= h <= grid[0]) or not (1 <= w <= grid[1]):
        raise InputError(
            f"The pooling shape {t}x{h}x{w} is out of range: frames must be at least 1, "
            f"height 1-{grid[0]} and width 1-{grid[1]}."
        )
    return (t, h, w)


def clean_text(text: str) -> str:
    """Text that can be encoded: a lone UTF-16 surrogate (raw JSON "\\ud83d", a cut emoji) cannot be
    turned into UTF-8 by the tokenizer, so it becomes U+FFFD; a surrogate pair becomes its character."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


@dataclass(frozen=True)
class VideoModelSpec:
    """What the PLLaVA glue needs from a checkpoint's config.json (not the CLIP or LLM shapes)."""

    image_token_index: int
    pad_token_id: int = 0
    pooling_shape: PoolingShape = (16, 12, 12)
    num_frames: int = 16
    frame_grid: tuple[int, int] = (24, 24)  # image_size // patch_size, per side
    vision_feature_layer: int = -2
    vision_feature_select_strategy: Literal["default", "full"] = "default"
    projector_hidden_act: str = "gelu"
    has_lora: bool = False
    lora_rank: int = 0
    default_lora_alpha: float = 0.0

    def __post_init__(self):
        check_pooling_shape(self.pooling_shape, self.frame_grid)
        if self.vision_feature_select_strategy not in ("default", "full"):
            raise ValueError(
                f"vision_feature_select_strategy must be 'default' or 'full', got {self.vision_feature_select_strategy!r}"
            )


def _checked(record, table: dict, error: type[Exception]) -> None:
    """A frozen record's fields replaced by their settings' typed values (8.0 -> 8), or `error`."""
    for f in fields(record):
        object.__setattr__(record, f.name, table[f.name].check(getattr(record, f.name), error=error))


_G, _L = GENERATION, LIMITS  # the defaults, ranges and sentences are the settings table's (settings.py)


@dataclass(frozen=True)
class GenerationSettings:
    """How to pick tokens. do_sample=False is greedy decoding; the other knobs then only matter for sampling."""

    do_sample: bool = _G["do_sample"].default
    temperature: float = _G["temperature"].default
    top_p: float = _G["top_p"].default
    max_new_tokens: int = _G["max_new_tokens"].default
    repetition_penalty: float = _G["repetition_penalty"].default
    min_new_tokens: int = _G["min_new_tokens"].default
    seed: int | None = _G["seed"].default

    def __post_init__(self):
        _checked(self, GENERATION, InputError)
        GENERATION["min_new_tokens"].check(self.min_new_tokens, hi=self.max_new_tokens)  # cross-field


@dataclass(frozen=True)
class Limits:
    """Safe defaults for a shared server; every limit is named in the message when hit. What each one
    means, its flag and its environment variable: settings.LIMITS."""

    max_file_mb: float = _L["max_file_mb"].default
    max_duration_s: float = _L["max_duration_s"].default
    max_frames: int = _L["max_frames"].default
    max_question_chars: int = _L["max_question_chars"].default
    max_system_chars: int = _L["max_system_chars"].default
    max_prompt_chars: int = _L["max_prompt_chars"].default
    max_new_tokens: int = _L["max_new_tokens"].default
    decode_time_budget_s: float = _L["decode_time_budget_s"].default
    feature_cache_mb: float = _L["feature_cache_mb"].default
    kv_cache_mb: float = _L["kv_cache_mb"].default
    upload_budget_mb: float = _L["upload_budget_mb"].default
    upload_grace_s: float = _L["upload_grace_s"].default
    max_pixels: int = _L["max_pixels"].default
    max_upload_files: int = _L["max_upload_files"].default
    max_files_per_upload: int = _L["max_files_per_upload"].default
    max_request_kb: float = _L["max_request_kb"].default
    body_timeout_s: float = _L["body_timeout_s"].default
    max_sessions: int = _L["max_sessions"].default

    def __post_init__(self):
        _checked(self, LIMITS, ValueError)  # an operator's configuration, not a visitor's request

    @classmethod
    def from_args(cls, args) -> "Limits":
        """The limits the parsed flags (settings.add_flags with LIMITS) set; the others at their defaults."""
        return cls(**settings.from_args(args, LIMITS.values()))

    def check_question(self, text: str) -> str:
        if text is not None and not isinstance(text, str):
            raise InputError(f"The question must be text, got {type(text).__name__}.")
        text = clean_text(text or "").strip()
        if not text:
            raise InputError("Please type a question first.")
        if len(text) > self.max_question_chars:
            raise InputError(
                f"The question is {len(text):,} characters long; the limit is {self.max_question_chars:,}."
            )
        return text

    def check_system(self, text) -> str:
        """The system prompt as the model gets it; empty is allowed (no system block)."""
        if text is None:
            return ""
        if not isinstance(text, str):
            raise InputError(f"The system prompt must be text, got {type(text).__name__}.")
        text = clean_text(text)
        if len(text) > self.max_system_chars:
            raise InputError(
                f"The system prompt is {len(text):,} characters long; the limit is {self.max_system_chars:,}."
            )
        return text

    def check_frames(self, num_frames: int) -> int:
        return NUM_FRAMES.check(num_frames, hi=self.max_frames)


DEFAULT_LIMITS = Limits()
