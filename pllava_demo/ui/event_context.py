"""What every page event uses: its context (the model holder, the registry of tabs, the page's
components), the message line, the sliders read as the studio's Options changes, and the panels that
show what the model sees. The events themselves are in video_events.py and chat_events.py; their wiring
in events.py.

Knows gradio's components and the studio's tab; runs no model and makes no tab except through the
registry's get-or-create.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..frames import strategies
from ..studio import tab as tabs
from ..studio.model_holder import ModelHolder
from ..studio.registry import Registry
from . import view
from .layout import Page
from .messages import guard

GPU = "gpu"  # one concurrency group for everything that runs the model or CLIP


@dataclass
class Ctx:
    holder: ModelHolder
    registry: Registry
    page: Page
    demo: gr.Blocks | None = None

    def idle(self, data: dict) -> bool:
        """No tab state yet and no model: a slider or box moved before there is anything to change."""
        return data.get(self.page.state) is None and self.holder.engine is None

    def key(self, data: dict, request=None) -> str | None:
        """The tab's id: the page's state once written, else the browser session's (the same id)."""
        return data.get(self.page.state) or getattr(request, "session_hash", None)

    def tab(self, data: dict, request=None, upload=None) -> tabs.Tab:
        """The tab, made on first use (the registry's atomic get-or-create)."""
        return self.registry.tab(self.key(data, request), upload)

    def existing(self, data: dict, request=None) -> tabs.Tab | None:
        """The tab if there is one; nothing is made."""
        return self.registry.get(self.key(data, request))


class PageProgress:
    """gr.Progress as the studio's `(fraction, text)` callable, and picklable (a ZeroGPU call takes it)."""

    def __init__(self, progress):
        self.progress = progress

    def __call__(self, frac: float, text: str) -> None:
        self.progress(frac, desc=text)


def say(page: Page, text: str | None) -> dict:
    """The notice box showing `text`, or hidden when there is nothing to say."""
    return {page.notice: gr.update(value=text or "", visible=bool(text))}


def unchanged(page: Page) -> dict:
    """Nothing to change: a no-op update of the notice box (in every event's outputs). Not `{}`:
    gradio takes an empty dict as one output value and fails an event with several outputs."""
    return {page.notice: gr.update()}


def noticed(fn):
    """messages.guard with the line in the notice box (an event's first argument is its Ctx)."""
    return guard(fn, shown=lambda args, line: say(args[0].page, line))


def quiet(c, value):
    """A slider's value clamped to its range: a number typed out of range in its box is taken as the
    nearest end, quietly (the slider events skip gradio's check, which would refuse it with an error)."""
    if isinstance(c, gr.Slider) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return min(max(value, c.minimum), c.maximum)
    return value


def chosen_strategy(page: Page, data: dict, name: str | None = None) -> dict:
    """The strategy selector and its strategy's own knobs as api_types' {"name": ..., knob: value}."""
    name = name or data.get(page.strategy) or "pllava"
    cls = strategies.STRATEGIES.get(name, strategies.PllavaPooling)
    return {"name": cls.name, **{k: int(quiet(page.knobs[k], data[page.knobs[k]])) for k in cls.KNOBS
                                 if page.knobs[k] in data}}


def changes_from(page: Page, data: dict) -> dict:
    """The sliders' values as Options changes (T' <= frames is kept by Options.consistent)."""
    v = {name: quiet(c, data[c]) for name, c in page.options.items() if c in data}
    return dict(num_frames=int(v["num_frames"]), pooling=(int(v["pool_t"]), int(v["pool_h"]), int(v["pool_w"])),
                strategy=chosen_strategy(page, data),
                lora_alpha=v["lora_alpha"], do_sample=bool(v["do_sample"]), temperature=v["temperature"],
                top_p=v["top_p"], max_new_tokens=int(v["max_new_tokens"]), repetition_penalty=v["repetition_penalty"],
                system=v["system"])


def settings_only(studio: tabs.Tab, changes: dict) -> dict:
    """The frames slider's own event re-encodes; every other event leaves the frame count alone."""
    if studio.video is not None and changes["num_frames"] != studio.video.num_frames:
        changes.pop("num_frames")
    return changes


def panels(page: Page, studio: tabs.Tab, gallery: bool = True) -> dict:
    """What the model sees: the panel text, the heat map, the strategy's picture (and the gallery)."""
    picture = view.strategy_picture(studio)
    out = {page.view_md: view.view_markdown(studio), page.heatmap: view.token_heatmap(studio),
           page.strategy_image: gr.update(value=picture, visible=picture is not None)}
    if gallery:
        out[page.gallery] = view.gallery_items(studio)
    return out
