"""Running out of memory in a forward pass, as one request's error: `guarded` runs a call and turns an
out-of-memory failure into a `ResourceError` naming what to reduce, after giving the memory back.

It knows torch's memory errors and the project's errors; it does not know the model, the lock around
forward passes nor which request was running (the caller names it in `doing`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

import torch

from ..errors import ResourceError

log = logging.getLogger(__name__)


def is_out_of_memory(e: BaseException) -> bool:
    # torch raises OutOfMemoryError for CUDA; other backends and older paths a RuntimeError saying so
    text = str(e)
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


def release_memory() -> None:
    """Hand cached, unused GPU memory back (nothing to do on CPU)."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def guarded(doing: str, fn: Callable, *args, device_type: str, stats: Counter | None = None):
    """fn(*args), with running out of memory turned into a ResourceError naming what to reduce."""
    try:
        return fn(*args)
    except RuntimeError as e:  # torch.OutOfMemoryError is a RuntimeError
        if not is_out_of_memory(e):
            raise
        log.warning("out of memory while %s: %s", doing, str(e).splitlines()[0][:300])
    # Raised here, after the except block, so the OOM's traceback (and the activations its frames
    # hold) is already gone and empty_cache can hand that memory back.
    if stats is not None:
        stats["out_of_memory"] += 1
    release_memory()
    where = "GPU" if device_type == "cuda" else "server"
    raise ResourceError(f"The {where} ran out of memory while {doing}; try fewer frames or a smaller pooling shape.")
