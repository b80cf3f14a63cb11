"""build_demo: the layout, its events and the named API put together, with the queue and the
clean-up when a tab goes away."""

from __future__ import annotations

import gradio as gr

from ..studio.model_holder import ModelHolder
from ..studio.runner import LocalRunner
from ..studio.zerogpu_runner import ZeroGpuRunner, wraps_calls
from . import upload_guard as ui_guard
from .api import wire_api
from .event_context import Ctx
from .events import wire
from .layout import build_layout
from .serving import ASSETS, examples_cached, make_registry


def build_demo(holder: ModelHolder, *, idle_timeout_s: float = 3600.0, concurrency: int = 2,
               max_queue: int = 32) -> gr.Blocks:
    limits = holder.limits
    demo_ref: list[gr.Blocks] = []
    examples = examples_cached()
    # on a Space with `spaces` the model's work runs as GPU calls (in forked workers on ZeroGPU)
    runner = ZeroGpuRunner(holder) if wraps_calls() else LocalRunner()
    registry = make_registry(demo_ref, examples, holder, runner)
    with gr.Blocks(title="PLLaVA Studio") as demo:
        demo_ref.append(demo)
        page = build_layout(holder, ASSETS, idle_timeout_s, registry.discard)
        ctx = Ctx(holder, registry, page, demo)
        wire(demo, ctx)
        wire_api(ctx)

        def on_unload(request: gr.Request):
            key = getattr(request, "session_hash", None)
            registry.close(key)
            # gradio keeps a closed session's record (a copy of the page's config, ~1 MB here) for an
            # hour in case the tab comes back; ours never do (a reload is a new session): drop it now.
            holder_ = getattr(demo, "state_holder", None)
            if key and holder_ is not None:
                with holder_.lock:
                    holder_.session_data.pop(key, None)
                    holder_.time_last_used.pop(key, None)

        demo.unload(on_unload)

    # GPU events share one group at the default limit: `concurrency` streams interleave per token.
    # api_open=False: POST /gradio_api/run/<name> may not skip the queue (only the unqueued /stop runs directly)
    demo.queue(max_size=max_queue, default_concurrency_limit=concurrency, api_open=False)
    ui_guard.attach(demo, registry.uploads, examples, budget_mb=limits.upload_budget_mb, grace_s=limits.upload_grace_s,
                    limits=limits)
    demo.registry = registry
    registry.max_items, demo.idle_timeout_s = limits.max_sessions, idle_timeout_s
    return demo
