"""gradio's per-session records, bounded by ui/gradio_records.py, on a real gradio StateHolder: idle
records go (their state's delete callbacks run, so the studio closes), and a record being created or
used meanwhile is never taken from under gradio (that was a 500 for a visitor's first request)."""

from __future__ import annotations

import datetime
import sys
import threading

import gradio as gr
from gradio.state_holder import StateHolder

from pllava_demo.ui.gradio_records import drop_idle_sessions


def holder_with_state(deleted: list) -> StateHolder:
    with gr.Blocks() as demo:
        gr.State("tab id", delete_callback=deleted.append)
    holder = StateHolder()
    holder.set_blocks(demo)
    return holder


def test_idle_records_go_with_their_state_and_used_ones_stay():
    deleted: list = []
    holder = holder_with_state(deleted)
    for key in ("old", "new"):
        session = holder[key]
        for block_id, block in session.blocks_config.blocks.items():
            if isinstance(block, gr.State):
                session[block_id] = "tab id"  # an event wrote the page's state: a value to delete
    holder.time_last_used["old"] -= datetime.timedelta(seconds=120)
    assert drop_idle_sessions(holder, idle_s=60) == 1
    assert list(holder.session_data) == ["new"] and list(holder.time_last_used) == ["new"]
    assert deleted == ["tab id"]


def test_a_record_being_created_is_never_dropped_from_under_gradio():
    """New sessions arrive while the sweep runs over and over (thread switches forced often): none is
    dropped (none is idle) and gradio never fails to read back the record it just made."""
    holder = holder_with_state([])
    stop, swept = threading.Event(), []

    def sweep():
        while not stop.is_set():
            swept.append(drop_idle_sessions(holder, idle_s=3600))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    sweeper = threading.Thread(target=sweep, daemon=True)
    sweeper.start()
    try:
        for k in range(1000):
            holder[f"visitor{k}"]  # KeyError when a sweep took the record between its steps
    finally:
        stop.set()
        sweeper.join(10)
        sys.setswitchinterval(interval)
    assert len(holder.session_data) == 1000 and sum(swept) == 0 and len(swept) > 10
