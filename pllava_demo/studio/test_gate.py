"""A gate the tests use to hold an answer mid-stream, and nothing else in production. It sits in
the tab's `asking` (tab.py), so the page, the named API and the ZeroGPU runner are held alike.

With PLLAVA_TEST_GATE set to a folder, an answer about to show its next piece looks for the file
`hold` there: while it exists, the answer writes `held` (the count of pieces shown so far) and waits
until the test removes `hold` (or Stop is pressed). Without the variable, `hold_if_asked` returns at
once and costs one dictionary lookup. The test then acts while an answer is streaming for sure, at a
moment it chose, instead of guessing with sleeps or freezing the server.

It knows files and a stop flag; it does not know gradio, the model or the page.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

ENV = "PLLAVA_TEST_GATE"
POLL_S = 0.02


def folder() -> Path | None:
    value = os.environ.get(ENV)
    return Path(value) if value else None


def hold_if_asked(shown: int, stop: threading.Event) -> None:
    """Wait here while the test holds the gate (see the module's docstring)."""
    gate = folder()
    if gate is None or not (gate / "hold").exists():
        return
    (gate / "held").write_text(str(shown))
    try:
        while (gate / "hold").exists() and not stop.wait(POLL_S):
            pass
    finally:
        (gate / "held").unlink(missing_ok=True)
