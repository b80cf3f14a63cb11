"""ZeroGPU support: on a Hugging Face ZeroGPU Space, functions that touch the GPU must run inside
`spaces.GPU`, which borrows a GPU for at most `duration` seconds. Elsewhere (no `spaces` package,
or a Space with its own GPU) `gpu(...)` returns the function unchanged.

Knows nothing of gradio or the model: it only wraps callables.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)

BASE_S = 15.0  # prefill, CLIP and scheduling slack
PER_FRAME_S = 0.75  # CLIP + projector per frame, 7B on a shared A100 slice, rounded up
PER_TOKEN_S = 0.06  # one decode step of a 4-bit 7B, rounded up
MAX_S = 120.0


def gpu_duration(num_frames: int = 16, max_new_tokens: int = 512, answers: int = 1) -> int:
    """Seconds to ask ZeroGPU for: grows with frames (encoding) and max tokens (decoding)."""
    s = BASE_S + PER_FRAME_S * max(1, int(num_frames)) + PER_TOKEN_S * max(1, int(max_new_tokens)) * answers
    return int(min(MAX_S, s))


def zerogpu_available() -> bool:
    """True when the `spaces` package can be imported (it is installed on every Space; its GPU
    decorator is a no-op on Spaces without ZeroGPU)."""
    return importlib.util.find_spec("spaces") is not None


def wraps_calls() -> bool:
    """True when `gpu(...)` wraps functions in spaces.GPU (a no-op off ZeroGPU)."""
    return not os.environ.get("PLLAVA_NO_ZEROGPU") and zerogpu_available()


def forks_per_call() -> bool:
    """True on ZeroGPU proper (spaces.GPU active: SPACES_ZERO_GPU set): every GPU call then runs in a
    forked worker, so answers of different visitors live in different processes and cannot share a
    batch (the engine turns batching off)."""
    return wraps_calls() and os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")


def gpu(duration: Callable[..., int] | int) -> Callable[[Callable], Callable]:
    """Decorator: `spaces.GPU(duration=...)` when `spaces` is importable, else the identity.
    `duration` may be a callable taking the wrapped function's arguments (ZeroGPU's dynamic duration)."""

    def wrap(fn: Callable) -> Callable:
        if not wraps_calls():
            return fn
        import spaces

        log.info("ZeroGPU: wrapping %s with spaces.GPU", fn.__name__)
        wrapped = spaces.GPU(duration=duration)(fn)
        return functools.wraps(fn)(wrapped)

    return wrap


def import_early() -> bool:
    """On ZeroGPU, `spaces` must be imported before torch touches CUDA: app.py calls this first."""
    if os.environ.get("PLLAVA_NO_ZEROGPU") or not zerogpu_available():
        return False
    if "torch" in sys.modules:  # spaces' own check only catches CUDA already initialised
        log.warning("ZeroGPU: torch was imported before spaces; import spaces first")
    import spaces  # noqa: F401

    log.info("ZeroGPU: spaces imported before torch (ZeroGPU mode: %s)", os.environ.get("SPACES_ZERO_GPU", "off"))
    return True
