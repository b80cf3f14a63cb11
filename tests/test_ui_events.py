"""The page's event handlers (pllava_demo/ui/events.py) as plain functions: the layout is built inside
a gr.Blocks that is never served, and a handler is called with the values it reads, keyed by component,
with a real tab on the tiny random checkpoint. The page's state holds the tab's id; the registry owns the tab."""

import gradio as gr
import pytest
from videos import write_video

from pllava_demo.studio import tab as tabs
from pllava_demo.studio.model_holder import ModelHolder
from pllava_demo.studio.registry import Registry
from pllava_demo.ui import event_context, video_events as E
from pllava_demo.ui.layout import NARROW_PX, build_layout
from pllava_demo.ui.serving import ASSETS


@pytest.fixture(scope="module")
def ctx(engine):
    holder = ModelHolder.ready(engine)
    registry = Registry(holder)
    with gr.Blocks():
        page = build_layout(holder, ASSETS, 60.0, registry.discard)
    return event_context.Ctx(holder, registry, page)


def test_the_settings_fold_on_a_narrow_window_only(ctx):
    p = ctx.page
    assert E.on_viewport(ctx, {p.viewport: 390})[p.settings]["open"] is False
    assert E.on_viewport(ctx, {p.viewport: NARROW_PX - 1})[p.settings]["open"] is False
    for width in (NARROW_PX, 1440, None, 0):  # unknown width: open, as on a desktop
        assert E.on_viewport(ctx, {p.viewport: width})[p.settings]["open"] is True


def test_two_clicked_frames_make_the_range_and_whole_video_undoes_it(ctx, tmp_path):
    p = ctx.page
    studio = ctx.registry.tab("events-range")
    try:
        tabs.load_video(studio, write_video(tmp_path / "r.mp4", n_frames=72, width=96, height=64), 8)
        data = {p.state: studio.id, p.start: "", p.end: "", p.seek: None}
        out = E.on_frame_range(ctx, "start", data)  # no frame clicked yet: a way forward, nothing changed
        assert "Click a frame in the gallery first" in out[p.notice]["value"] and studio.video.clip.time_range is None

        t_start = studio.video.clip.timestamps[2]
        out = E.on_frame_range(ctx, "start", {**data, p.seek: t_start})
        start = round(t_start, 2)
        assert out[p.start] == f"{start:g}" and out[p.end] == "" and out[p.seek] is None
        assert studio.video.clip.time_range == (start, None) and len(out[p.gallery]) == 8
        assert f"sampled from {start:g} s" in out[p.view_md] and out[p.notice]["visible"] is False

        t_end = studio.video.clip.timestamps[5]
        out = E.on_frame_range(ctx, "end", {**data, p.start: out[p.start], p.seek: t_end})
        end = round(t_end, 2)
        assert studio.video.clip.time_range == (start, end) and out[p.end] == f"{end:g}"
        assert all(start <= t <= end for t in studio.video.clip.timestamps)

        # an end before the start: one sentence (as the page calls it: event_context.noticed), the range stays
        out = event_context.noticed(E.on_frame_range)(ctx, "end", {**data, p.start: f"{start:g}", p.end: f"{end:g}", p.seek: 0.0})
        assert "must start before it ends" in out[p.notice]["value"]
        assert (out[p.start], out[p.end]) == (f"{start:g}", f"{end:g}")  # the boxes show the range in effect
        assert studio.video.clip.time_range == (start, end)

        out = E.on_frame_range(ctx, "whole", {**data, p.start: f"{start:g}", p.end: f"{end:g}"})
        assert (out[p.start], out[p.end]) == ("", "") and studio.video.clip.time_range is None
    finally:
        ctx.registry.close(studio.id)


def test_nothing_to_change_is_still_an_answer_gradio_takes(ctx, tmp_path):
    """Tabbing through the blank range boxes, or a slider moved before there is anything to change:
    the handler says "nothing" as a no-op update (gradio takes `{}` as one value, fails the event and
    leaves a red "Error" pill on the panel)."""
    p = ctx.page
    studio = ctx.registry.tab("events-nothing")
    try:
        tabs.load_video(studio, write_video(tmp_path / "u.mp4", n_frames=24, width=96, height=64), 4)
        out = E.on_range(ctx, {p.state: studio.id, p.start: "", p.end: ""})  # the range it already has
        assert list(out) == [p.notice] and out[p.notice] == gr.update()
    finally:
        ctx.registry.close(studio.id)
    idle = event_context.Ctx(ModelHolder("nowhere"), ctx.registry, p)  # no model, no tab state yet
    data = {p.state: None, **{c: c.value for c in p.options.values()}}
    assert list(E.on_pooling(idle, data)) == [p.notice]
