"""A tab's settings: `Options`, everything the sliders (or an API payload, once parsed by api_types) set,
already typed and in range, and the checkpoint's defaults for them.

Knows nothing of tabs, runners or doors: values only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..chat.prompt import DEFAULT_SYSTEM
from ..config import GenerationSettings, PoolingShape
from ..frames.strategies import PllavaPooling, Strategy
from ..settings import GENERATION, NUM_FRAMES


@dataclass(frozen=True)
class Options:
    """Everything the sliders set, already typed and in range (api_types parses them). `consistent`
    keeps pooling[0] (T') <= num_frames; `replace` changes any field of Options or of its
    GenerationSettings (`generation`, whose fields read through: options.temperature), keeping
    min_new_tokens <= max_new_tokens. The visual tokens are `visual`: PLLaVA pooling at `pooling`
    while `strategy` is None, else that other strategy."""

    num_frames: int = NUM_FRAMES.default
    pooling: PoolingShape = (16, 12, 12)
    strategy: Strategy | None = None
    lora_alpha: float | None = 4.0
    generation: GenerationSettings = GenerationSettings()
    system: str = DEFAULT_SYSTEM
    start_s: float | None = None  # the part of the video the frames are sampled from (None: its start / end)
    end_s: float | None = None

    @property
    def time_range(self) -> tuple[float | None, float | None]:
        return self.start_s, self.end_s

    @property
    def visual(self) -> Strategy:
        return self.strategy if self.strategy is not None else PllavaPooling(self.pooling)

    def consistent(self) -> "Options":
        t, h, w = self.pooling
        return dataclasses.replace(self, pooling=(max(1, min(t, self.num_frames)), h, w))

    def replace(self, **changes) -> "Options":
        """A copy with Options and GenerationSettings fields changed; GenerationSettings checks its own."""
        gen = {k: changes.pop(k) for k in GENERATION_FIELDS if k in changes}
        generation = self.generation
        if gen:
            merged = {**dataclasses.asdict(generation), **gen}
            merged["min_new_tokens"] = min(merged["min_new_tokens"], merged["max_new_tokens"])
            generation = GenerationSettings(**merged)
        return dataclasses.replace(self, generation=generation, **changes)

    def settings(self) -> GenerationSettings:
        return self.generation

    def label(self, has_lora: bool = True) -> str:
        t, h, w = self.pooling
        alpha = f", alpha {self.lora_alpha:g}" if has_lora and self.lora_alpha is not None else ""
        visual = f"pooling {t}x{h}x{w}" if self.strategy is None else self.strategy.describe(self.num_frames)
        return f"{self.num_frames} frames{range_label(self.time_range)}, {visual}{alpha}"


GENERATION_FIELDS = tuple(f.name for f in dataclasses.fields(GenerationSettings))
for _name in GENERATION_FIELDS:  # read-only views of the one GenerationSettings: options.temperature
    setattr(Options, _name, property(lambda self, _n=_name: getattr(self.generation, _n)))


def range_label(time_range) -> str:
    """" from 1 s to 3 s" for a part of the video; nothing for the whole of it."""
    start, end = time_range or (None, None)
    if start is None and end is None:
        return ""
    return f" from {0 if start is None else start:g} s to {'the end' if end is None else f'{end:g} s'}"


def default_options(engine, max_new_tokens: int = GENERATION["max_new_tokens"].default) -> Options:
    spec = engine.spec
    opts = Options(num_frames=min(spec.num_frames, engine.limits.max_frames), pooling=tuple(spec.pooling_shape),
                   lora_alpha=engine.default_alpha,
                   generation=GenerationSettings(max_new_tokens=min(max_new_tokens, engine.limits.max_new_tokens)))
    if engine.loaded.is_tiny:  # random weights may stop at once: show some text, keep it short
        opts = opts.replace(min_new_tokens=8, max_new_tokens=min(48, opts.max_new_tokens))
    return opts.consistent()
