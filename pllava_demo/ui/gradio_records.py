"""Bounds on what gradio itself remembers per visitor: its per-session records (a copy of the page's
config each, kept forever for a client that never sends a heartbeat) and its per-upload progress
records (kept until someone reads them, which a script never does).

A thread drops session records unused for the idle timeout (their gr.State values first, through
their delete callbacks, so the studio goes too) and keeps only the newest `UPLOAD_IDS_KEPT` upload
progress records. gradio's own session capacity is set to the session bound at launch (serving.py). Knows nothing of the page.
"""

from __future__ import annotations

import datetime
import logging
import threading

log = logging.getLogger(__name__)

UPLOAD_IDS_KEPT = 256  # a page reads its progress within seconds; a script never does


def drop_idle_sessions(holder, idle_s: float, now: datetime.datetime | None = None) -> int:
    """Delete gradio's records of sessions unused for `idle_s` seconds; returns how many went.

    gradio creates a record (`StateHolder.__getitem__`) in steps, outside its lock: the record, then
    its last-used time, then it reads the record back. A record with no time yet is being created
    and is never touched here (dropping those gave a visitor's first request a 500 under churn: 1
    of 300 new sessions in a clean-clone run); each record's time is read again just before it goes,
    so a session used since the list was made stays."""
    now = now or datetime.datetime.now()
    cutoff = now - datetime.timedelta(seconds=idle_s)

    def idle(key) -> bool:
        used = holder.time_last_used.get(key)
        return used is not None and used < cutoff

    with holder.lock:
        stale = [key for key in list(holder.time_last_used) if idle(key)]
    gone = 0
    for key in stale:
        with holder.lock:
            if not idle(key):
                continue
        try:
            holder.delete_state(key)  # runs the delete callbacks (the studio closes)
        except Exception:  # one bad record must not keep the others
            log.exception("deleting the state of an idle session failed")
        with holder.lock:
            if idle(key):
                holder.session_data.pop(key, None)
                holder.time_last_used.pop(key, None)
                gone += 1
    return gone


def trim_upload_progress(tracker, kept: int = UPLOAD_IDS_KEPT) -> int:
    """Forget all but the newest `kept` upload progress records; returns how many went."""
    gone = 0
    for table in (tracker._statuses, tracker._signals):
        for key in list(table)[: max(0, len(table) - kept)]:
            table.pop(key, None)
            gone += 1
    return gone


def counts(demo) -> dict:
    """How many records gradio keeps now: sessions, and upload progress (status and signal tables)."""
    from gradio import routes

    holder, tracker = getattr(demo, "state_holder", None), routes.file_upload_statuses
    return {"gradio_sessions": len(holder.session_data) if holder is not None else 0,
            "upload_progress_records": len(tracker._statuses) + len(tracker._signals)}


def bound_gradio_records(demo, limits) -> threading.Thread:
    """Start the thread that drops idle session records and old upload progress records (gradio's own
    session capacity, `limits.max_sessions`, is a launch setting: serving.py)."""
    from gradio import routes

    demo.disk.debug_counts = lambda: counts(demo)
    idle_s = float(getattr(demo, "idle_timeout_s", 3600.0))
    stop = threading.Event()

    def loop():
        while not stop.wait(max(0.5, min(60.0, idle_s / 4))):
            try:
                holder = getattr(demo, "state_holder", None)
                if holder is not None:
                    drop_idle_sessions(holder, idle_s)
                trim_upload_progress(routes.file_upload_statuses)
            except Exception:
                log.exception("bounding gradio's records failed")

    thread = threading.Thread(target=loop, name="pllava-gradio-records", daemon=True)
    thread.start()
    demo.records_stop = stop
    return thread
