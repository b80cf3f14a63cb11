"""Frozen settings of the project: what a checkpoint says about the video model, how to generate,
and the limits that protect a shared server. Plain dataclasses with checks in __post_init__;
nothing here reads argv or the environment (the entry points do that)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

from .errors import InputError

PoolingShape = tuple[int, int, int]  # (T', h', w')


MAX_LORA_ALPHA = 256.0  # the paper sweeps 0-32 (trained at 32); well past that the LoRA swamps the model


def check_lora_alpha(alpha) -> float:
    """A LoRA alpha as a float in [0, MAX_LORA_ALPHA], or InputError naming the range."""
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise InputError(f"LoRA alpha must be a number, got {alpha!r}.") from None
    if not (0.0 <= value <= MAX_LORA_ALPHA):
        raise InputError(f"LoRA alpha must be 0-{MAX_LORA_ALPHA:g}, got {value:g}.")
    return value


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


DEFAULT_FRAMES = 16  # the official frame count: every PLLaVA checkpoint is trained and evaluated at 16


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


@dataclass(frozen=True)
class GenerationSettings:
    """How to pick tokens. do_sample=False is greedy decoding; the other knobs then only matter for sampling."""

    do_sample: bool = False
    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 512
    repetition_penalty: float = 1.0
    min_new_tokens: int = 0
    seed: int | None = None

    def __post_init__(self):
        if not (0.0 < self.temperature <= 5.0):
            raise InputError(f"Temperature must be in (0, 5], got {self.temperature}.")
        if not (0.0 < self.top_p <= 1.0):
            raise InputError(f"Top-p must be in (0, 1], got {self.top_p}.")
        if not (1 <= self.max_new_tokens <= 4096):
            raise InputError(f"Max new tokens must be 1-4096, got {self.max_new_tokens}.")
        if not (0 <= self.min_new_tokens <= self.max_new_tokens):
            raise InputError(f"Min new tokens must be 0-{self.max_new_tokens}, got {self.min_new_tokens}.")
        if not (0.5 <= self.repetition_penalty <= 2.0):
            raise InputError(f"Repetition penalty must be 0.5-2.0, got {self.repetition_penalty}.")


@dataclass(frozen=True)
class Limits:
    """Safe defaults for a shared server; every limit is named in the message when hit."""

    max_file_mb: float = 200.0
    max_duration_s: float = 3 * 3600.0
    max_frames: int = 32
    max_question_chars: int = 4000
    max_system_chars: int = 8000
    max_prompt_chars: int = 64000  # system + history + question; older turns are left out past it
    max_new_tokens: int = 1024
    decode_time_budget_s: float = 60.0
    feature_cache_mb: float = 2048.0
    kv_cache_mb: float = 4096.0
    upload_budget_mb: float = 10240.0  # the upload folder in all: uploads, thumbnails, heat maps
    upload_grace_s: float = 300.0  # a file nobody holds is deleted once it is this old
    max_pixels: int = 7680 * 4320  # per frame, read from the header before decoding (8K fits)
    max_upload_files: int = 10_000  # files in the upload folder in all
    max_files_per_upload: int = 16  # files in one upload request
    max_request_kb: float = 1024.0  # body of any request that is not an upload
    body_timeout_s: float = 30.0  # a request body that sends nothing for this long is ended
    max_sessions: int = 256  # live sessions; past it the least recently used one is closed

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"Limits.{f.name} must be a number > 0, got {value!r}.")
        if self.max_new_tokens > 4096:  # GenerationSettings never allows more
            raise ValueError(f"Limits.max_new_tokens must be at most 4096, got {self.max_new_tokens}.")

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
        if not (1 <= int(num_frames) <= self.max_frames):
            raise InputError(f"The number of frames must be 1-{self.max_frames}, got {num_frames}.")
        return int(num_frames)


DEFAULT_LIMITS = Limits()
