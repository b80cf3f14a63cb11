"""What the model sees, as things a page can show: the sampled frames with their timestamps, the
number of visual tokens and their share of the context, and a heat map of the per-token feature norms
of the pooled grid (the paper's high-norm-token picture). Numbers for API clients too.

Plain functions of a tab (studio/tab.py); numpy and PIL only: no gradio, no matplotlib.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import PllavaError
from ..studio.options import Options, range_label
from ..studio.tab import Tab as Studio

THUMB_HEIGHT = 144  # gallery thumbnails: the page never needs the full frames


def video_info(studio: Studio) -> dict:
    """Numbers a client can check: it got its own video, at this frame count and pooling."""
    if studio.video is None:
        return {"loaded": False}
    clip = studio.video.clip
    info = studio.engine.describe_view(studio.video, studio.options.visual)
    if "pooling_shape" in info:
        info["pooling_shape"] = list(info["pooling_shape"])
    info.update(loaded=True, name=Path(clip.source).name, width=clip.width, height=clip.height,
                duration=round(float(clip.duration), 3), fps=round(float(clip.fps), 3),
                indices=list(clip.indices),
                time_range=list(clip.time_range) if clip.time_range else None,
                lora_alpha=studio.options.lora_alpha, options=options_dict(studio.options))
    from ..studio.chapters_scope import info as chapters_info  # the scope and the chapters the last answer used
    info.update(chapters_info(studio))
    return info


def options_dict(options: Options) -> dict:
    d = dataclasses.asdict(options)
    d.update(d.pop("generation"))  # the generation settings as before: flat, beside the others
    d["pooling"] = list(options.pooling)
    d["strategy"] = options.visual.as_dict()
    d.pop("system")
    return d


def gallery_items(studio: Studio) -> list[tuple[np.ndarray, str]]:
    if studio.video is None:
        return []
    clip = studio.video.clip
    # one decimal, or two where one would show two neighbours at the same time (32 frames of 3 s)
    tenths = [f"{t:.1f}" for t in clip.timestamps]
    digits = 2 if any(a == b for a, b in zip(tenths, tenths[1:])) else 1
    items = []
    for k, (frame, ts) in enumerate(zip(clip.frames, clip.timestamps)):
        img = Image.fromarray(frame)
        if img.height > THUMB_HEIGHT:
            img = img.resize((max(1, round(img.width * THUMB_HEIGHT / img.height)), THUMB_HEIGHT), Image.BILINEAR)
        items.append((np.asarray(img), f"{ts:.{digits}f} s"))  # short enough to read under a small thumbnail
    return items


def too_many_tokens(studio: Studio) -> str | None:
    """Why no question can be asked with these settings (the visual tokens alone fill the context
    window), the engine's own sentence; None when they fit. Said in the panel the moment it is true,
    and by Send instead of starting an answer."""
    if studio.video is None:
        return None
    engine = studio.engine
    try:
        studio.options.visual.check_fits(studio.video.features.shape[0], engine.spec.frame_grid,
                                         engine.loaded.context_length)
    except PllavaError as e:
        return str(e)
    return None


def view_markdown(studio: Studio) -> str:
    if studio.video is None:
        return "Upload a video to see the frames and visual tokens the model gets."
    visual = studio.options.visual
    info = studio.engine.describe_view(studio.video, visual)
    part = range_label(studio.video.clip.time_range)
    part = f" (sampled{part} of {studio.video.clip.duration:.1f} s)" if part else ""
    frames = "1 frame (a still image)" if info["frames"] == 1 else f"{info['frames']} frames"
    text = (f"**{frames}{part} → {info['strategy_text']} = {info['visual_tokens']:,} visual tokens**, "
            f"{info['context_share']:.0%} of the {info['context']:,}-token context window.")
    if studio.engine.spec.has_lora:
        text += f" LoRA alpha {studio.options.lora_alpha:g} (official 4; 0 = the image model alone)."
        if visual.training_free and studio.options.lora_alpha:
            text += f"  \n_{visual.title} is training-free: it is meant for the image model (LoRA alpha 0)._"
    if "note" in info:
        text += f"  \n_{info['note']}_"
    problem = too_many_tokens(studio)
    if problem:
        text += f"  \n**⚠ Too many tokens to ask anything:** {problem}"
    return text


# A few anchors of the viridis colour map, interpolated: no matplotlib needed.
_CMAP = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float32)


def colorize(x: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> RGB uint8 (..., 3)."""
    pos = np.clip(x, 0.0, 1.0) * (len(_CMAP) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(_CMAP) - 2)
    frac = (pos - lo)[..., None]
    return (_CMAP[lo] * (1 - frac) + _CMAP[lo + 1] * frac).round().astype(np.uint8)


CHIP, INK = (250, 250, 250, 255), (30, 30, 30, 255)  # labels: dark ink on a light chip, readable on any page
# the picture is shown at about half its size: a 20 px font reads as the page's small print
FONT = ImageFont.load_default(size=20)


def _label(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str) -> int:
    """Text on its own small light chip: the canvas is transparent (it takes the page's light or dark
    background), so the text brings its contrast with it. Returns the chip's right edge."""
    x0, y0, x1, y1 = draw.textbbox(xy, text, font=FONT)
    draw.rectangle((x0 - 3, y0 - 2, x1 + 3, y1 + 2), fill=CHIP)
    draw.text(xy, text, fill=INK, font=FONT)
    return x1 + 3


def heatmap_image(norms, per_row: int = 8, tile: int = 96) -> Image.Image:
    """Token norms -> one RGBA picture on a transparent background (light and dark pages alike), one
    colour scale for all tiles, so the high-norm tokens stand out across frames as in the paper's
    analysis. norms: (T', h', w') (PLLaVA: a tile per pooled time step) or a strategy's panels
    [(label, (h, w) norms), ...] (NaN: no token there, drawn grey)."""
    if isinstance(norms, (list, tuple)):
        panels = [(str(label), np.asarray(x, dtype=np.float32)) for label, x in norms]
    else:
        panels = [(f"t{k + 1}", x) for k, x in enumerate(np.asarray(norms, dtype=np.float32))]  # (h', w') each
    allv = np.concatenate([x[np.isfinite(x)] for _, x in panels] or [np.zeros(1, np.float32)])
    lo, hi = (float(allv.min()), float(allv.max())) if allv.size else (0.0, 0.0)
    tp = len(panels)
    gap, label = 6, 28
    th = tw = tile
    cols = min(per_row, tp)
    rows = -(-tp // cols)
    scale_h = 36  # the colour scale under the tiles: what purple and yellow mean
    width = max(cols * (tw + gap) + gap, 240)  # room for the scale and its two numbers, even at T' = 1
    canvas = Image.new("RGBA", (width, rows * (th + gap + label) + gap + scale_h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    for k, (name, x_norms) in enumerate(panels):
        x = gap + (k % cols) * (tw + gap)
        y = gap + (k // cols) * (th + gap + label)
        _label(draw, (x + 3, y + 2), name)
        hp, wp = x_norms.shape
        cell = max(1, min(tw // wp, th // hp)) if max(hp, wp) <= tile else 1
        size = (max(1, min(tw, wp * cell)), max(1, min(th, hp * cell)))  # keeps the panel's aspect
        if max(hp, wp) > tile:
            size = (max(1, round(tw * wp / max(hp, wp))), max(1, round(th * hp / max(hp, wp))))
        scaled = (x_norms - lo) / (hi - lo) if hi > lo else np.zeros_like(x_norms)
        rgb = colorize(np.nan_to_num(scaled, nan=0.0))  # (h, w, 3)
        rgb[~np.isfinite(x_norms)] = 128
        canvas.paste(Image.fromarray(rgb).resize(size, Image.NEAREST), (x, y + label))
    y = canvas.height - scale_h + 6
    lo_text, hi_text = f"{lo:.2g}", f"{hi:.2g}"
    left = _label(draw, (gap + 3, y), lo_text) + 6
    right = width - gap - 6 - (draw.textbbox((0, 0), hi_text, font=FONT)[2] + 6)
    bar_w = max(8, right - left)
    bar = colorize(np.linspace(0.0, 1.0, bar_w, dtype=np.float32)[None, :].repeat(14, 0))  # (14, bar_w, 3)
    canvas.paste(Image.fromarray(bar), (left, y + 4))
    _label(draw, (left + bar_w + 9, y), hi_text)
    return canvas


def token_heatmap(studio: Studio) -> Image.Image | None:
    if studio.video is None:
        return None
    norms = studio.engine.token_norms(studio.video, studio.options.visual)
    return heatmap_image(norms.numpy() if hasattr(norms, "numpy") else [(k, v.numpy()) for k, v in norms])


def strategy_picture(studio: Studio) -> Image.Image | None:
    """The image the strategy itself builds from the frames (IG-VLM's grid, TS-LLaVA's thumbnail)."""
    if studio.video is None:
        return None
    picture = studio.options.visual.picture(studio.video.clip.frames)
    return None if picture is None else Image.fromarray(picture)
