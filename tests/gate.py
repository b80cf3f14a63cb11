"""The test gate's two sides for the tests (pllava_demo/studio/test_gate.py is the server's side): hold
every answer of a server started with PLLAVA_TEST_GATE=<gate> between two pieces while a block runs,
and wait until one is held there. The `gate` fixture (conftest) is a module's folder for it."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path


@contextlib.contextmanager
def held(gate: Path):
    """Answers wait between pieces while the block runs (studio/test_gate.py)."""
    (gate / "hold").touch()
    try:
        yield
    finally:
        (gate / "hold").unlink(missing_ok=True)


def wait_held(gate: Path, timeout_s: float = 60.0) -> int:
    """Waits for an answer to reach the gate; returns how many pieces it has shown."""
    deadline = time.monotonic() + timeout_s
    while not (gate / "held").exists():
        assert time.monotonic() < deadline, "no answer reached the gate"
        time.sleep(0.02)
    return int((gate / "held").read_text() or 0)
