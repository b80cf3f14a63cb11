"""Visual-token strategies: how T sampled frames become the visual tokens that replace <image>.

PLLaVA's one idea is a choice of strategy (adaptive average pooling); its paper and its field
measure it against training-free alternatives run on the image model (LoRA alpha 0). Each strategy
here is a frozen, hashable value, validated when it is made (the error names the valid values),
that knows:
- `n_tokens(T, grid)`: how many visual tokens it gives for T frames;
- `frame_images(frames)`: the images it wants through CLIP besides the frames themselves (a grid,
  a thumbnail), or None; `tokens(features, grid, extra)` what it does to the projected features;
- how it is shown: `panels(T, grid)` (the heat map's tiles, in token order), `describe(T)` and
  `note(T)` (one line each), `picture(frames)` (the image it builds, if any);
- `key`: what the engine caches its tokens (and its CLIP pass) by.

Adding a strategy: one frozen dataclass below (a `name`, its knobs as fields with their ranges in
`KNOBS`, the methods it changes), one entry in STRATEGIES, and its test in tests/test_strategies.py.
The engine, the page, the API, the CLI and the captioner read everything else from here.

Knows shapes and pixels only: no model, no tokens, no UI.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import astuple, dataclass, fields
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..config import PoolingShape, check_pooling_shape
from ..errors import InputError
from .pooling import frames_seen, pool_video
from .preprocess import CLIP_PIXELS, PixelSpec

Grid = tuple[int, int]  # (H, W) patches per frame side, 24x24 for CLIP ViT-L/14-336
WORDS_ROOM = 128  # tokens a fitted frame count leaves for a short question and the start of an answer


@dataclass(frozen=True)
class Strategy:
    """The base of every strategy: knob checks, cache key, defaults for 'changes no frames'."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""  # what the page's selector shows
    recipe: ClassVar[str] = ""  # whose recipe, in a few words
    training_free: ClassVar[bool] = True  # meant for the image model (LoRA alpha 0)
    KNOBS: ClassVar[dict[str, tuple[int, int, str]]] = {}  # field -> (lowest, highest, what it is)

    def __post_init__(self):
        for f in fields(self):
            if f.name in self.KNOBS:
                lo, hi, what = self.KNOBS[f.name]
                value = getattr(self, f.name)
                if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                    raise InputError(f"The {self.name} strategy's {f.name} ({what}) must be a whole number "
                                     f"{lo}-{hi}, got {value!r}.")

    @property
    def key(self) -> tuple:
        """Hashable and the same for equal strategies: the engine's cache key for its tokens."""
        return (self.name, *astuple(self))

    @property
    def changes_frames(self) -> bool:
        return False

    def knobs(self) -> dict:
        """Its settings as plain JSON values (the API's and the caption record's form)."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}

    def as_dict(self) -> dict:
        return {"name": self.name, **self.knobs()}

    def frame_images(self, frames: np.ndarray, pixels: PixelSpec = CLIP_PIXELS) -> torch.Tensor | None:
        """(T, H, W, 3) uint8 frames -> (K, 3, S, S) extra images normalised by the checkpoint's pixel
        spec (S = its CLIP input size, 336), or None."""
        return None

    def picture(self, frames: np.ndarray) -> np.ndarray | None:
        """The image this strategy builds from the frames, as (h, w, 3) uint8 for the page, or None."""
        return None

    def note(self, t: int, grid: Grid) -> str | None:
        return None

    def most_frames(self, grid: Grid, context: int, words: int = WORDS_ROOM) -> int | None:
        """The most frames whose tokens leave `words` tokens for the prompt's text and the answer, or None
        when the token count does not grow with the frames faster than any frame count allows."""
        return None

    def fitted_frames(self, wanted: int, grid: Grid, context: int, words: int = WORDS_ROOM) -> tuple[int, str | None]:
        """The frame count to use when a person did not choose one: `wanted` (the default), or the most
        that fit this strategy, with a sentence saying so."""
        most = self.most_frames(grid, context, words)
        if most is None or wanted <= most:
            return wanted, None
        return max(1, most), (f"{self.title}: {max(1, most)} frame(s), the most whose tokens fit the "
                              f"{context:,}-token context window (the default is {wanted}).")

    def check_fits(self, t: int, grid: Grid, context: int) -> None:
        """InputError when the tokens alone cannot fit the context window."""
        n = self.n_tokens(t, grid)
        if n >= context:
            raise InputError(f"The {self.title} strategy gives {n:,} visual tokens for {t} frames, more than the "
                             f"{context:,}-token context window holds; use fewer frames or another strategy.")

    # subclasses: n_tokens, tokens, panels, describe


def _mean(x: torch.Tensor, dim: int) -> torch.Tensor:
    # averaged in float32, as pooling is: many bf16 values summed in bf16 lose their low bits
    return x.float().mean(dim).to(x.dtype)


@dataclass(frozen=True)
class PllavaPooling(Strategy):
    """PLLaVA (paper §3.2): adaptive average pooling of the (T, 24, 24) grid of projected features to
    (T', h', w'), flattened in (t, h, w) order; short clips repeat frames to fill T'."""

    shape: PoolingShape = (16, 12, 12)
    name: ClassVar[str] = "pllava"
    title: ClassVar[str] = "PLLaVA pooling"
    recipe: ClassVar[str] = "PLLaVA: adaptive average pooling to (T', h', w')"
    training_free: ClassVar[bool] = False

    def __post_init__(self):
        # CLIP ViT-L/14-336's 24x24 grid: every PLLaVA checkpoint's (the engine checks its own again)
        object.__setattr__(self, "shape", check_pooling_shape(self.shape))

    def n_tokens(self, t: int, grid: Grid) -> int:
        return math.prod(self.shape)  # repeat_frames fills T' when T < T': N never depends on the video

    def tokens(self, features: torch.Tensor, grid: Grid, extra=None) -> torch.Tensor:
        return pool_video(features, grid, self.shape)  # (T'*h'*w', D)

    def panels(self, t: int, grid: Grid) -> list[tuple[str, tuple[int, int]]]:
        tp, hp, wp = self.shape
        return [(f"t{k + 1}", (hp, wp)) for k in range(tp)]

    def describe(self, t: int) -> str:
        return "pooling {}×{}×{}".format(*self.shape)

    def note(self, t: int, grid: Grid) -> str | None:
        tp = self.shape[0]
        if t < tp:
            return f"{t} frame(s) repeated to fill {tp} pooled time steps (frames used: {frames_seen(t, tp)})."
        if t % tp:
            return f"{t} frames pooled unevenly into {tp} time steps (adaptive windows overlap)."
        return None


@dataclass(frozen=True)
class NFrame(Strategy):
    """The PLLaVA paper's n-frame baseline: every patch token of every frame, no pooling (T*576)."""

    name: ClassVar[str] = "n-frame"
    title: ClassVar[str] = "No pooling (n-frame)"
    recipe: ClassVar[str] = "PLLaVA paper's n-frame baseline: all 576 tokens of each frame"

    def n_tokens(self, t: int, grid: Grid) -> int:
        return t * grid[0] * grid[1]

    def tokens(self, features: torch.Tensor, grid: Grid, extra=None) -> torch.Tensor:
        t, hw, d = features.shape
        return features.reshape(t * hw, d)  # (T*H*W, D), frame after frame

    def panels(self, t: int, grid: Grid) -> list[tuple[str, tuple[int, int]]]:
        return [(f"f{k + 1}", grid) for k in range(t)]

    def describe(self, t: int) -> str:
        return f"no pooling, {t} frames × 576 tokens"

    def most_frames(self, grid: Grid, context: int, words: int = WORDS_ROOM) -> int | None:
        return max(0, (context - words) // (grid[0] * grid[1]))

    def check_fits(self, t: int, grid: Grid, context: int) -> None:
        per = grid[0] * grid[1]
        if t * per >= context:
            raise InputError(f"No pooling keeps all {per} tokens of each frame: {t} frames are {t * per:,} tokens, "
                             f"more than the {context:,}-token context window; at most "
                             f"{self.most_frames(grid, context)} frame(s) fit with room for the question and answer.")


@dataclass(frozen=True)
class SpatioTemporal(Strategy):
    """Video-ChatGPT (Maaz et al. 2023, get_spatio_temporal_features): the per-frame spatial mean
    (T tokens) followed by the per-patch temporal mean (H*W tokens). Video-ChatGPT also pads the T
    frame tokens with zeros to 100 and averages CLIP features before its linear projector; on
    LLaVA's MLP projector we average the projected features and add no zero tokens."""

    name: ClassVar[str] = "video-chatgpt"
    title: ClassVar[str] = "Video-ChatGPT means"
    recipe: ClassVar[str] = "Video-ChatGPT: T frame means + 576 patch means over time"

    def n_tokens(self, t: int, grid: Grid) -> int:
        return t + grid[0] * grid[1]

    def tokens(self, features: torch.Tensor, grid: Grid, extra=None) -> torch.Tensor:
        temporal = _mean(features, 1)  # (T, D): each frame's mean over its patches
        spatial = _mean(features, 0)  # (H*W, D): each patch's mean over time
        return torch.cat([temporal, spatial])  # (T + H*W, D)

    def panels(self, t: int, grid: Grid) -> list[tuple[str, tuple[int, int]]]:
        return [("frame means", (1, t)), ("patch means", grid)]

    def describe(self, t: int) -> str:
        return f"{t} frame means + 576 patch means"


def _tile(images: list[np.ndarray], per_row: int, fill: int) -> np.ndarray:
    """Images of one size (h, w, 3) -> one (rows*h, per_row*w, 3) image, in reading order."""
    h, w = images[0].shape[:2]
    rows = -(-len(images) // per_row)
    canvas = np.full((rows * h, per_row * w, 3), fill, dtype=np.uint8)
    for k, im in enumerate(images):
        r, c = divmod(k, per_row)
        canvas[r * h:(r + 1) * h, c * w:(c + 1) * w] = im
    return canvas


@dataclass(frozen=True)
class ImageGrid(Strategy):
    """IG-VLM (Kim et al. 2024): `grid_frames` frames taken at a fixed interval from the first (see
    `chosen`) tiled in reading order, round(sqrt(n)) per row (6 frames: 3 rows of 2), white cells
    filling the last row; the grid is resized to the model's one input size and goes through CLIP
    once: 576 tokens."""

    grid_frames: int = 6
    name: ClassVar[str] = "ig-vlm"
    title: ClassVar[str] = "Image grid (IG-VLM)"
    recipe: ClassVar[str] = "IG-VLM: 6 frames tiled 3×2 into one image, one CLIP pass"
    KNOBS: ClassVar[dict] = {"grid_frames": (1, 16, "frames tiled into the grid")}

    @property
    def changes_frames(self) -> bool:
        return True

    def chosen(self, t: int) -> list[int]:
        """Which of the T sampled frames fill the grid. IG-VLM takes frame k * floor(N / n) of a video's N
        frames, i.e. frame k sits k/n of the way in; of T sampled frames that is frame floor(k * T / n)
        (every frame when T <= n). A plain floor(T / n) step would leave out the last third of a
        16-frame clip."""
        n = min(self.grid_frames, t)
        return [k * t // n for k in range(n)]

    def layout(self, t: int) -> tuple[int, int]:
        """(rows, per_row) of the grid for T frames."""
        n = len(self.chosen(t))
        per_row = max(1, round(math.sqrt(n)))
        return -(-n // per_row), per_row

    def picture(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)  # (T, H, W, 3) uint8, all one size
        _, per_row = self.layout(len(frames))
        return _tile([frames[k] for k in self.chosen(len(frames))], per_row, fill=255)

    def frame_images(self, frames: np.ndarray, pixels: PixelSpec = CLIP_PIXELS) -> torch.Tensor:
        grid = Image.fromarray(self.picture(frames)).resize((pixels.size, pixels.size), Image.BICUBIC)
        return pixels.normalise(np.asarray(grid)[None])  # (1, 3, S, S): already S x S, nothing cropped

    def n_tokens(self, t: int, grid: Grid) -> int:
        return grid[0] * grid[1]

    def tokens(self, features: torch.Tensor, grid: Grid, extra=None) -> torch.Tensor:
        return extra.reshape(-1, extra.shape[-1])  # (H*W, D): the grid image's own tokens

    def panels(self, t: int, grid: Grid) -> list[tuple[str, tuple[int, int]]]:
        return [("grid image", grid)]

    def describe(self, t: int) -> str:
        rows, per_row = self.layout(t)
        return f"image grid of {len(self.chosen(t))} frames ({rows}×{per_row}) = one image"

    def note(self, t: int, grid: Grid) -> str | None:
        if t < self.grid_frames:
            return f"Only {t} frame(s) sampled: the grid holds {t}, not {self.grid_frames}."
        return None


def best_grid(n: int) -> tuple[int, int]:
    """TS-LLaVA's find_best_grid: the factor pair of n closest to square, rows >= columns."""
    pairs = [(i, n // i) for i in range(1, int(math.isqrt(n)) + 1) if n % i == 0]
    a, b = min(pairs, key=lambda p: abs(p[0] - p[1]))
    return max(a, b), min(a, b)


def equidistant(n_total: int, n: int) -> list[int]:
    """n indices from 0 to n_total-1 inclusive, evenly spaced and rounded (TS-LLaVA's linspace rule)."""
    return torch.linspace(0, n_total - 1, steps=n).round().long().clamp(0, n_total - 1).tolist()


@dataclass(frozen=True)
class ThumbnailSampling(Strategy):
    """TS-LLaVA (Qu et al. 2024, default "V2"): a thumbnail image of `thumb_frames` equidistant frames
    (CLIP pixels area-resized into a rows x cols grid of one 336x336 image: 6 frames = 3x2) through
    CLIP once, plus `sampled_tokens` tokens taken at equal steps over all frames' tokens (first and
    last included); the sampled tokens come first, then the thumbnail's 576."""

    thumb_frames: int = 6
    sampled_tokens: int = 2880
    name: ClassVar[str] = "ts-llava"
    title: ClassVar[str] = "Thumbnail + sampling (TS-LLaVA)"
    recipe: ClassVar[str] = "TS-LLaVA: 6-frame thumbnail + 2880 tokens sampled from all frames"
    KNOBS: ClassVar[dict] = {"thumb_frames": (1, 16, "frames in the thumbnail image"),
                             "sampled_tokens": (1, 16384, "tokens sampled from all frames")}

    @property
    def changes_frames(self) -> bool:
        return True

    def thumbnail(self, pixels: torch.Tensor) -> torch.Tensor:
        """(T, 3, S, S) CLIP pixels -> (1, 3, S, S): the chosen frames area-resized into their cells."""
        t, c, s, _ = pixels.shape
        rows, cols = best_grid(self.thumb_frames)
        picked = pixels[equidistant(t, self.thumb_frames)]  # (n, 3, S, S)
        cells = F.interpolate(picked, size=(s // rows, s // cols), mode="area")  # (n, 3, S/rows, S/cols)
        grid = cells.reshape(rows, cols, c, s // rows, s // cols).permute(2, 0, 3, 1, 4)  # (3, rows, h, cols, w)
        out = pixels.new_zeros((1, c, s, s))
        out[0, :, : rows * (s // rows), : cols * (s // cols)] = grid.reshape(c, rows * (s // rows), cols * (s // cols))
        return out  # (1, 3, S, S)

    def frame_images(self, frames: np.ndarray, pixels: PixelSpec = CLIP_PIXELS) -> torch.Tensor:
        return self.thumbnail(pixels.normalise(np.asarray(frames)))  # (1, 3, S, S)

    def picture(self, frames: np.ndarray, pixels: PixelSpec = CLIP_PIXELS) -> np.ndarray:
        x = self.frame_images(frames, pixels)[0]  # (3, S, S) normalised
        x = x * torch.tensor(pixels.std)[:, None, None] + torch.tensor(pixels.mean)[:, None, None]
        return (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()  # (S, S, 3)

    def n_sampled(self, t: int, grid: Grid) -> int:
        return min(self.sampled_tokens, t * grid[0] * grid[1])

    def n_tokens(self, t: int, grid: Grid) -> int:
        return self.n_sampled(t, grid) + grid[0] * grid[1]

    def tokens(self, features: torch.Tensor, grid: Grid, extra=None) -> torch.Tensor:
        t, hw, d = features.shape
        flat = features.reshape(t * hw, d)  # (T*H*W, D) all frames' tokens in order
        sampled = flat[equidistant(t * hw, self.n_sampled(t, grid))]  # (M, D)
        return torch.cat([sampled, extra.reshape(-1, d)])  # (M + H*W, D)

    def panels(self, t: int, grid: Grid) -> list[tuple[str, tuple[int, int]]]:
        m = self.n_sampled(t, grid)
        side = math.ceil(math.sqrt(m))
        return [("sampled", (-(-m // side), side)), ("thumbnail", grid)]

    def describe(self, t: int) -> str:
        rows, cols = best_grid(self.thumb_frames)
        return f"{self.sampled_tokens} sampled tokens + a {self.thumb_frames}-frame thumbnail ({rows}×{cols})"

    def note(self, t: int, grid: Grid) -> str | None:
        notes = []
        if t < self.thumb_frames:
            notes.append(f"only {t} frame(s) sampled: the thumbnail repeats some")
        if self.sampled_tokens > t * grid[0] * grid[1]:
            notes.append(f"{t} frames hold only {t * grid[0] * grid[1]:,} tokens: all are used")
        return ("; ".join(notes) + ".").capitalize() if notes else None


STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (PllavaPooling, NFrame, SpatioTemporal, ImageGrid,
                                                                     ThumbnailSampling)}
NAMES = tuple(STRATEGIES)


def strategy_class(name) -> type[Strategy]:
    if not isinstance(name, str) or name not in STRATEGIES:
        raise InputError(f"Unknown strategy {name!r}; the strategies are {', '.join(NAMES)}.")
    return STRATEGIES[name]


def knob_names(cls: type[Strategy]) -> list[str]:
    return [f.name for f in fields(cls)]


def make(name: str, **knobs) -> Strategy:
    """A strategy by name with some of its knobs (the rest default); unknown knobs are refused."""
    cls = strategy_class(name)
    unknown = sorted(set(knobs) - set(knob_names(cls)))
    if unknown:
        raise InputError(f"The {name} strategy has no setting(s) {unknown}; its settings are {knob_names(cls)}.")
    return cls(**knobs)


def parse(value, default: PoolingShape | Strategy = (16, 12, 12)) -> Strategy:
    """Anything a caller may give for the visual tokens -> a Strategy: a Strategy as it is, None for
    the default, a (T', h', w') tuple for PLLaVA pooling at that shape, a name, or a mapping
    {"name": ..., knob: value, ...}."""
    if isinstance(value, Strategy):
        return value
    if value is None:
        return default if isinstance(default, Strategy) else PllavaPooling(tuple(default))
    if isinstance(value, str):
        return make(value)
    if isinstance(value, Mapping):
        knobs = dict(value)
        name = knobs.pop("name", None)
        if name == PllavaPooling.name and "pooling" in knobs:  # the API's word for PLLaVA's shape
            knobs["shape"] = knobs.pop("pooling")
        if name == PllavaPooling.name and "shape" in knobs:
            knobs["shape"] = tuple(knobs["shape"]) if isinstance(knobs["shape"], (list, tuple)) else knobs["shape"]
        return make(name, **knobs)
    if isinstance(value, (tuple, list)):
        return PllavaPooling(tuple(value))
    raise InputError(f"A strategy is a name ({', '.join(NAMES)}) or {{\"name\": ..., settings}}, got {value!r}.")
