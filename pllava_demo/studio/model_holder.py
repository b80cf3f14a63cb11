"""The model, loaded once in a background thread so every door is up at once: its stage, its error as
one line a person can read (the server's paths shown as the model's name), the status line of the page,
and the server's status (`server_status`: totals over everyone, never one visitor's traces).

Knows nothing of tabs' contents, runners or doors.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from pathlib import Path

from ..errors import InputError, PllavaError
from ..config import DEFAULT_LIMITS, Limits
from ..settings import is_hub_id

log = logging.getLogger(__name__)


class ModelHolder:
    """Loads the engine in a thread so the page is up at once; handlers ask it for the engine and
    get a clear "still loading" / "failed to load: <reason>" instead of a dead page."""

    def __init__(self, source: str, *, device: str = "auto", quantization: str = "auto",
                 lora_alpha: float | None = None, limits: Limits = DEFAULT_LIMITS, expose_stats: bool = False,
                 cpu_dtype: str = "auto", max_rows: int = 8, own_images: bool = True):
        self.source, self.device, self.quantization = str(source), device, quantization
        self.cpu_dtype, self.max_rows = cpu_dtype, max(1, int(max_rows))  # rows: answers decoded together
        # the engine's counters in /status: for an operator's own tests only, since cache hits tell
        # whether someone recently uploaded the same bytes (off by default; --debug-stats)
        self.expose_stats = bool(expose_stats)
        self.lora_alpha, self.limits = lora_alpha, limits
        # False where every model call runs in a worker process of its own (the app asks the ZeroGPU runner)
        self.own_images = bool(own_images)
        self.engine = None
        self.error: str | None = None
        self.stage = "waiting to start"
        self.started = time.monotonic()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def ready(cls, engine) -> "ModelHolder":
        """A holder around an engine that is already loaded (tests, notebooks)."""
        holder = cls(str(engine.loaded.name), limits=engine.limits)
        holder.engine, holder.stage = engine, "ready"
        holder._done.set()
        return holder

    def start(self) -> "ModelHolder":
        if self._thread is None and not self._done.is_set():
            self.stage = "starting"
            self._thread = threading.Thread(target=self._load, name="pllava-load", daemon=True)
            self._thread.start()
        return self

    def _load(self) -> None:
        from ..network.hub import resolve_source
        from ..chat.engine import Engine

        try:
            self.stage = "finding the checkpoint (downloading it from the Hub if needed)"
            path = resolve_source(self.source)
            self.stage = "loading the weights"
            self.engine = Engine.load(path, device=self.device, quantization=self.quantization,
                                      lora_alpha=self.lora_alpha, limits=self.limits, cpu_dtype=self.cpu_dtype,
                                      max_rows=self.max_rows, own_images=self.own_images)
            self.stage = "ready"
        except Exception as e:  # any failure must reach the page as one line, not kill the thread
            log.exception("model failed to load")
            self.error = self._private(one_line(e))
            self.stage = "failed"
        finally:
            self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def get(self):
        """The engine, or a PllavaError a person can read."""
        if self.engine is not None:
            return self.engine
        if self.error is not None:
            raise PllavaError(f"The model failed to load: {self.error}")
        raise InputError(f"The model is still loading ({self.stage}, {self.elapsed:.0f} s so far). Try again in a moment.")

    @property
    def name(self) -> str:
        """What visitors see: a Hub repo id as it is, a local folder by its last part only (the
        server's paths are nobody's business)."""
        source = self.source.rstrip("/\\")
        if is_hub_id(source) and not Path(source).exists():
            return source
        return Path(source).name or "model"

    def _private(self, text: str) -> str:
        """A message with the checkpoint's server path shown as its name."""
        paths = {self.source, os.path.expanduser(self.source)}
        if self.engine is not None:
            paths.add(str(self.engine.loaded.name))
        for p in sorted((p for p in paths if p), key=len, reverse=True):
            text = text.replace(p, self.name)
        return text

    def status_markdown(self) -> str:
        if self.error is not None:
            return f"**Model failed to load** (`{self.name}`): {self.error}"
        if self.engine is None:
            return f"**Loading `{self.name}`**: {self.stage} ({self.elapsed:.0f} s)"
        loaded = self.engine.loaded
        described = self.name + loaded.describe().removeprefix(str(loaded.name))
        if loaded.has_lora:  # the checkpoint's alpha, not whatever a tab last used (every tab reads this line)
            described = re.sub(r"alpha=[^,)\s]+", f"alpha={self.engine.default_alpha:g}", described)
        text = f"**Model:** {described}, context {loaded.context_length:,} tokens"
        for note in loaded.notes:
            text += f"  \n_{self._private(note)}_"
        # how this server runs, in one line of small print (hidden on a phone: the chat comes first there)
        server = [f"Server: {self.engine.batching_note}"]
        if loaded.device.type == "cpu":
            server.append(cpu_dtype_note(loaded.dtype))
        return text + f'  \n<span class="server-notes">{"; ".join(server)}.</span>'


def cpu_dtype_note(dtype) -> str:
    from ..network.device_policy import cpu_has_bf16

    name = str(dtype).replace("torch.", "")
    native = cpu_has_bf16()
    if name == "bfloat16":
        return "CPU in bfloat16, native on this CPU" if native else \
            "CPU in bfloat16, emulated on this CPU (float32 is the fast choice)"
    if native:  # said only where the other choice is better: bench/README.md section 6
        return f"CPU in {name}, native bfloat16 available (--cpu-dtype bfloat16 reads prompts ~3x faster)"
    return f"CPU in {name}, no native bfloat16 (float32 is the fast choice)"


def one_line(e: BaseException) -> str:
    lines = [s.strip() for s in str(e).splitlines() if s.strip()]
    return (lines[0] if lines else type(e).__name__)[:300]


def server_status(holder: ModelHolder, registry=None, disk=None) -> dict:
    """What anyone may know about the server now: the model's name and state, live sessions, files
    and bytes kept on disk, memory used by the caches. Only totals over everyone: no per-video
    counters (cache hits, videos decoded, encoded-video entries), which would tell a visitor whether
    someone recently uploaded the same bytes. `disk` (the upload folder's DiskBudget) adds its numbers."""
    out = {"state": holder.stage if holder.error is None else "failed", "ready": holder.engine is not None,
           "error": holder.error, "status": holder.status_markdown(), "model": holder.name}
    if registry is not None:
        out["sessions"] = len(registry)
        out["uploads"] = len(registry.uploads) if registry.uploads is not None else 0
    if disk is not None:
        out.update(disk.status())
    eng = holder.engine
    if eng is not None:
        out.update(feature_cache_bytes=int(eng.feature_cache.bytes), feature_cache_budget_bytes=int(eng.feature_cache.max_bytes),
                   kv_cache_entries=len(eng.kv_caches), kv_cache_bytes=int(eng.kv_caches.bytes),
                   kv_cache_budget_bytes=int(eng.kv_caches.max_bytes), batching=eng.batching,
                   batching_note=eng.batching_note, dtype=str(eng.loaded.dtype).replace("torch.", ""))
        if holder.expose_stats:
            out["stats"] = dict(eng.stats)
    if holder.expose_stats and disk is not None:  # gradio's own records: also while the model loads
        out["stats"] = out.get("stats", {}) | disk.debug_counts()
    return out
