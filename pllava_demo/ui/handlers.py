"""The Studio's handlers as plain functions: load a model in the background, hold one person's
video, chat and settings; the pictures of what the model sees are in view.py.

Knows nothing about gradio: errors are the project's `PllavaError`s and progress is a plain
`(fraction, text)` callback; the `ui` package turns both into gradio's. Every function here runs without a
server, so the tests call them directly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import shutil
import threading
from collections import OrderedDict
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path


from ..api_types import Bounds, parse_changes, time_range, upload_frames
from ..config import DEFAULT_LIMITS, GenerationSettings, Limits, PoolingShape
from ..errors import InputError, PllavaError, VideoError
from ..chat.prompt import DEFAULT_SYSTEM, Turn  # noqa: F401 (Turn: part of this module's surface)
from ..frames.strategies import PllavaPooling, Strategy
from .time_links import link_times
from .files import Uploads
from ..frames.video import check_file

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]

VIDEO_TYPES = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif")
IMAGE_TYPES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


# -- the model, loaded once in the background ----------------------------------------------------
class ModelHolder:
    """Loads the engine in a thread so the page is up at once; handlers ask it for the engine and
    get a clear "still loading" / "failed to load: <reason>" instead of a dead page."""

    def __init__(self, source: str, *, device: str = "auto", quantization: str = "auto",
                 lora_alpha: float | None = None, limits: Limits = DEFAULT_LIMITS, expose_stats: bool = False,
                 cpu_dtype: str = "auto", max_rows: int = 8):
        self.source, self.device, self.quantization = str(source), device, quantization
        self.cpu_dtype, self.max_rows = cpu_dtype, max(1, int(max_rows))  # rows: answers decoded together
        # the engine's counters in /status: for an operator's own tests only, since cache hits tell
        # whether someone recently uploaded the same bytes (off by default; --debug-stats)
        self.expose_stats = bool(expose_stats)
        self.lora_alpha, self.limits = lora_alpha, limits
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
        from ..network.checkpoint import resolve_source
        from ..chat.engine import Engine

        try:
            self.stage = "finding the checkpoint (downloading it from the Hub if needed)"
            path = resolve_source(self.source)
            self.stage = "loading the weights"
            self.engine = Engine.load(path, device=self.device, quantization=self.quantization,
                                      lora_alpha=self.lora_alpha, limits=self.limits, cpu_dtype=self.cpu_dtype,
                                      max_rows=self.max_rows)
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
        if re.fullmatch(r"[\w.\-]+/[\w.\-]+", source) and not Path(source).exists():
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
    from ..network.checkpoint import cpu_has_bf16

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


# -- one person's settings and chat --------------------------------------------------------------
@dataclass(frozen=True)
class Options:
    """Everything the sliders set, already typed and in range (api_types parses them). `consistent`
    keeps pooling[0] (T') <= num_frames; `replace` changes any field of Options or of its
    GenerationSettings (`generation`, whose fields read through: options.temperature), keeping
    min_new_tokens <= max_new_tokens. The visual tokens are `visual`: PLLaVA pooling at `pooling`
    while `strategy` is None, else that other strategy."""

    num_frames: int = 16
    pooling: PoolingShape = (16, 12, 12)
    strategy: Strategy | None = None
    lora_alpha: float | None = 4.0
    generation: GenerationSettings = GenerationSettings()
    system: str = DEFAULT_SYSTEM
    start_s: float | None = None  # the part of the video the frames are sampled from (None: its start / end)
    end_s: float | None = None

    @property
    def time_range(self) -> tuple[float | None, float | None]:
        return self.start_s, self.end_s

    @property
    def visual(self) -> Strategy:
        return self.strategy if self.strategy is not None else PllavaPooling(self.pooling)

    def consistent(self) -> "Options":
        t, h, w = self.pooling
        return dataclasses.replace(self, pooling=(max(1, min(t, self.num_frames)), h, w))

    def replace(self, **changes) -> "Options":
        """A copy with Options and GenerationSettings fields changed; GenerationSettings checks its own."""
        gen = {k: changes.pop(k) for k in GENERATION_FIELDS if k in changes}
        generation = self.generation
        if gen:
            merged = {**dataclasses.asdict(generation), **gen}
            merged["min_new_tokens"] = min(merged["min_new_tokens"], merged["max_new_tokens"])
            generation = GenerationSettings(**merged)
        return dataclasses.replace(self, generation=generation, **changes)

    def settings(self) -> GenerationSettings:
        return self.generation

    def label(self, has_lora: bool = True) -> str:
        t, h, w = self.pooling
        alpha = f", alpha {self.lora_alpha:g}" if has_lora and self.lora_alpha is not None else ""
        visual = f"pooling {t}x{h}x{w}" if self.strategy is None else self.strategy.describe(self.num_frames)
        return f"{self.num_frames} frames{range_label(self.time_range)}, {visual}{alpha}"


GENERATION_FIELDS = tuple(f.name for f in dataclasses.fields(GenerationSettings))
for _name in GENERATION_FIELDS:  # read-only views of the one GenerationSettings: options.temperature
    setattr(Options, _name, property(lambda self, _n=_name: getattr(self.generation, _n)))


def range_label(time_range) -> str:
    """" from 1 s to 3 s" for a part of the video; nothing for the whole of it."""
    start, end = time_range or (None, None)
    if start is None and end is None:
        return ""
    return f" from {0 if start is None else start:g} s to {'the end' if end is None else f'{end:g} s'}"


def default_options(engine, max_new_tokens: int = 512) -> Options:
    spec = engine.spec
    opts = Options(num_frames=min(spec.num_frames, engine.limits.max_frames), pooling=tuple(spec.pooling_shape),
                   lora_alpha=engine.default_alpha,
                   generation=GenerationSettings(max_new_tokens=min(max_new_tokens, engine.limits.max_new_tokens)))
    if engine.loaded.is_tiny:  # random weights may stop at once: show some text, keep it short
        opts = opts.replace(min_new_tokens=8, max_new_tokens=min(48, opts.max_new_tokens))
    return opts.consistent()


class Studio:
    """One browser tab (or one API client): a ChatSession, its settings and a stop flag.
    `close()` frees the video, the chat and this studio's uploaded files; the studio stays usable
    (New video), so the same call serves both "start over" and "the tab is gone"."""

    def __init__(self, engine, options: Options | None = None, uploads: "Uploads | None" = None):
        self.engine = engine
        self.options = options or default_options(engine)
        self.session = engine.new_session(self.options.system)
        self.video_path: str | None = None
        self.stop = threading.Event()
        self.answering = threading.Lock()  # one answer at a time: a second question waits its turn
        self.uploads = uploads
        # turn number -> (the turn, the settings it was answered with): written where the answer is made,
        # read by the export; the turn itself is kept to tell a stale record (regenerated, cleared) apart
        self.answered_with: dict[int, tuple[Turn, dict]] = {}
        self.exports: Path | None = None  # the folder of this tab's chat downloads, deleted on close

    @property
    def video(self):
        return self.session.video

    def close(self) -> None:
        self.stop.set()
        self.session.close()
        self.video_path = None
        if self.uploads is not None:
            self.uploads.release(self)
        if self.exports is not None:
            shutil.rmtree(self.exports, ignore_errors=True)
            self.exports = None


class Registry:
    """Studios by browser session id, so closing a tab (demo.unload) frees its video, KV cache and
    uploads at once instead of when gradio's closed-tab state expires (an hour later)."""

    def __init__(self, uploads: Uploads | None = None, max_items: int = 256):
        self._items: OrderedDict[str, Studio] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()
        self.uploads, self.max_items = uploads, max_items

    def add(self, key: str | None, studio: Studio) -> None:
        """Keep `studio` for `key`; past `max_items` the least recently used studio is closed."""
        if not key:
            return
        with self._lock:
            self._items[key] = studio
            self._items.move_to_end(key)
            evicted = [self._items.popitem(last=False)[1] for _ in range(len(self._items) - self.max_items)]
        for old in evicted:
            old.close()

    def get(self, key: str | None) -> Studio | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
            return self._items.get(key) if key else None

    def close(self, key: str | None) -> None:
        with self._lock:
            studio = self._items.pop(key, None) if key else None
        if studio is not None:
            studio.close()

    def discard(self, studio: Studio | None) -> None:
        """gr.State's delete_callback: the session's state expired (idle, or its tab long closed)."""
        if studio is None:
            return
        with self._lock:
            for key in [k for k, v in self._items.items() if v is studio]:
                del self._items[key]
        studio.close()

    def __len__(self) -> int:
        return len(self._items)


def ensure_studio(studio: Studio | None, holder: ModelHolder, registry: Registry | None = None,
                  key: str | None = None, upload=None) -> Studio:
    """This session's studio. A handler that raised never returned its state, so the registry (by
    session id) is asked before a new studio is made: a failed first upload must not orphan one.
    `upload`, the file this request brought, is deleted at once when there is no model to take it."""
    found = registry.get(key) if registry is not None else None  # also marks the session as used
    if studio is not None or found is not None:
        return studio if studio is not None else found
    try:
        engine = holder.get()
    except PllavaError:
        if upload and registry is not None and registry.uploads is not None:
            registry.uploads.drop(upload)
        raise
    studio = Studio(engine, uploads=registry.uploads if registry is not None else None)
    if registry is not None:
        registry.add(key, studio)
    return studio


def server_status(holder: ModelHolder, registry: Registry | None = None, disk=None) -> dict:
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
        out.update(feature_cache_bytes=int(eng.features.bytes), feature_cache_budget_bytes=int(eng.features.max_bytes),
                   kv_cache_entries=len(eng.kv_budget), kv_cache_bytes=int(eng.kv_budget.bytes),
                   kv_cache_budget_bytes=int(eng.kv_budget.max_bytes), batching=eng.batching,
                   batching_note=eng.batching_note, dtype=str(eng.loaded.dtype).replace("torch.", ""))
        if holder.expose_stats:
            out["stats"] = dict(eng.stats)
    if holder.expose_stats and disk is not None:  # gradio's own records: also while the model loads
        out["stats"] = out.get("stats", {}) | disk.debug_counts()
    return out


# -- video and settings --------------------------------------------------------------------------
def check_upload(path, limits: Limits) -> Path:
    if not path:
        raise VideoError("Choose a video or image first.")
    p = Path(path)
    if p.suffix.lower() not in VIDEO_TYPES + IMAGE_TYPES:
        raise VideoError(f"Unsupported file type {p.suffix or '(none)'}: use one of "
                         f"{', '.join(VIDEO_TYPES + IMAGE_TYPES)}.")
    return check_file(p, max_mb=limits.max_file_mb)


def load_video(studio: Studio, path, num_frames: int | None = None, progress: Progress | None = None) -> Studio:
    """Decode and encode a new video (or the same one with another frame count)."""
    if path and studio.uploads is not None:
        studio.uploads.hold(studio, path)  # held even if it is refused: deleted when let go
    try:
        p = check_upload(path, studio.engine.limits)
        options = studio.options
        if num_frames is not None:
            options = dataclasses.replace(options, num_frames=upload_frames(num_frames, studio.engine.limits)).consistent()
        was_still = studio.video is not None and is_still(studio.video.clip)
        studio.session.set_video(p, options.num_frames, progress, start_s=options.start_s, end_s=options.end_s)
        options = _time_steps_for(studio, options, was_still)
    except BaseException:
        if path and studio.uploads is not None:  # keep only the video still in use
            studio.uploads.release(studio, keep=studio.video_path)
        raise
    studio.options = options
    studio.video_path = str(p)
    if studio.uploads is not None:
        studio.uploads.release(studio, keep=p)  # the previous video's file is no longer needed
    return studio


def video_range(studio: Studio) -> tuple[float | None, float | None]:
    """The (start_s, end_s) the studio's video was sampled from; (None, None) for the whole video."""
    return (studio.video.clip.time_range if studio.video is not None else None) or (None, None)


@contextlib.contextmanager
def range_request(changed: bool):
    """A new time range that does not fit the video is a bad request (InputError), not a bad file."""
    try:
        yield
    except VideoError as e:
        if changed:
            raise InputError(str(e)) from None
        raise


def is_still(clip) -> bool:
    """A still image: one frame with no frame rate (video.Clip's convention)."""
    return clip.fps == 0.0 and len(clip.frames) == 1


def _time_steps_for(studio: Studio, options: Options, was_still: bool) -> Options:
    """A still image is one frame: T' = 1 (more time steps would repeat that one frame's tokens). The
    next video after it gets the checkpoint's T' back, unless T' was changed meanwhile."""
    t, h, w = options.pooling
    if is_still(studio.video.clip):
        return dataclasses.replace(options, pooling=(1, h, w))
    if was_still and t == 1:
        return dataclasses.replace(options, pooling=(default_options(studio.engine).pooling[0], h, w)).consistent()
    return options


def set_options(studio: Studio, progress: Progress | None = None, **changes) -> Studio:
    """Change any Options field; a new frame count or time range re-encodes the video (cached per count
    and range). Every value is parsed first (api_types: one message naming the field and its range),
    and a failed re-encode changes nothing, so a bad request never sticks."""
    engine = studio.engine
    typed = parse_changes(changes, Bounds.of(engine))
    if "system" in typed:  # text, length limit, no lone surrogates
        typed["system"] = engine.limits.check_system(typed["system"])
    new = studio.options.replace(**typed).consistent()  # GenerationSettings has the last word on its ranges
    time_range(*new.time_range)
    if studio.video_path and (new.num_frames != studio.video.num_frames or new.time_range != video_range(studio)):
        with range_request(new.time_range != video_range(studio)):
            studio.session.set_video(studio.video_path, new.num_frames, progress, start_s=new.start_s, end_s=new.end_s)
    studio.options = new
    if new.system != studio.session.system:
        studio.session.system = new.system
        studio.session.drop_cache()
    return studio


# -- chat ----------------------------------------------------------------------------------------
def history(studio: Studio | None) -> list[dict]:
    """The chat as gradio 'messages', rebuilt from the session (the one source of truth)."""
    if studio is None:
        return []
    from .chapters_scope import chapters_note  # a whole-video answer's chapters, as seek links

    out = []
    for k, turn in enumerate(studio.session.turns):
        answer = shown_answer(studio, turn.answer) + (" *(stopped)*" if turn.stopped else "") + chapters_note(studio, k)
        out += [{"role": "user", "content": turn.question}, {"role": "assistant", "content": answer}]
    return out


def shown_answer(studio: Studio, text: str) -> str:
    """An answer as the chat shows it: its own text as text, and times in the video as seek links."""
    clip = studio.video.clip if studio.video is not None else None
    return link_times(text, float(clip.duration) if clip is not None else None)


def _ask(session, question: str, options: Options, regenerate: bool = False) -> Iterator[str]:
    kwargs = dict(strategy=options.visual, lora_alpha=options.lora_alpha, settings=options.settings())
    return session.regenerate(**kwargs) if regenerate else session.ask(question, **kwargs)


BUSY = "Still answering your previous question: wait for the answer, or press Stop."
ANSWER_WAIT_S = 300.0  # a question sent while another is answered waits this long for its turn


@contextlib.contextmanager
def one_at_a_time(studio: Studio, wait_s: float = ANSWER_WAIT_S):
    """Hold the studio's answer slot: two questions sent at once (two API calls, a double click) are
    answered one after the other, each with the other's turn in its history. A plain Lock, not an
    RLock: gradio resumes a generator on any thread of its pool, and the release must work there."""
    if not studio.answering.acquire(timeout=wait_s):
        raise InputError(BUSY)
    try:
        yield
    finally:
        studio.answering.release()


def stream_answer(studio: Studio, question: str | None, regenerate: bool = False) -> Iterator[str]:
    """Validate now (raises InputError before any work), then return a stream of the answer so far
    after each piece. Stops when `studio.stop` is set; the partial answer stays in the chat, marked
    as stopped. The caller holds the answer slot (see `answer`); this is what runs on the GPU."""
    studio.stop.clear()
    pieces = _ask(studio.session, question or "", studio.options, regenerate)
    return _grow(pieces, studio.stop)


def _grow(pieces: Iterator[str], stop: threading.Event) -> Iterator[str]:
    text = ""
    try:
        for piece in pieces:
            text += piece
            yield text
            if stop.is_set():
                break
    finally:
        pieces.close()  # runs the engine's finally: the (partial) turn joins the history


def answer(studio: Studio, question: str | None, regenerate: bool = False,
           stream: Callable[[Studio, str, bool], Iterator[str]] | None = None) -> Iterator[str]:
    """The answer text as it grows, asked in the studio's answer slot (`stream` defaults to
    stream_answer; the page passes its ZeroGPU-wrapped one)."""
    with one_at_a_time(studio):
        yield from _answer(studio, question, regenerate, stream)


def _answer(studio, question, regenerate, stream) -> Iterator[str]:
    """The session owns the turns: the engine adds this one when the stream ends (a stream that runs
    on a copy of the session, gpu_calls' ZeroGPU worker, hands its turn to `ChatSession.keep_answer`).
    The settings it was asked with are recorded beside it, for the chat's download."""
    session = studio.session
    if regenerate and session.turns:
        question = session.turns[-1].question
    at, epoch = len(session.turns) - (1 if regenerate and session.turns else 0), session.epoch
    plan = None
    if not regenerate:  # the whole-video scope retrieves the question's chapters first (chapters_scope.py)
        from .chapters_scope import before_answer
        question, plan = before_answer(studio, question)
    used = answer_settings(studio)  # as they are when the question is asked, before any later change
    if plan is not None:
        used["chapters"] = plan
    pieces = (stream or stream_answer)(studio, question, regenerate)
    try:
        yield from pieces
    finally:  # also for an answer closed early (a tab gone): closing the stream puts its partial turn in
        pieces.close()
        if session.epoch == epoch and at < len(session.turns):
            studio.answered_with[at] = (session.turns[at], used)


def answer_settings(studio: Studio) -> dict:
    """What an answer is made with, as plain JSON values: the frames and their times, the range,
    the pooling, alpha and the generation settings."""
    o, clip = studio.options, studio.video.clip if studio.video is not None else None
    return {"video": Path(clip.source).name if clip else None, "frames": studio.video.num_frames if clip else o.num_frames,
            "range_s": list(clip.time_range) if clip and clip.time_range else None,
            "timestamps_s": [round(float(t), 3) for t in clip.timestamps] if clip else [],
            "pooling": list(o.pooling) if o.strategy is None else None, "strategy": o.visual.as_dict(),
            "lora_alpha": o.lora_alpha,
            "generation": dataclasses.asdict(o.settings()), "system": o.system}


def turn_settings(studio: Studio, k: int) -> dict | None:
    """The settings turn number k was answered with, or None when not recorded for that very turn."""
    record = studio.answered_with.get(k)
    turns = studio.session.turns
    return record[1] if record is not None and k < len(turns) and record[0] is turns[k] else None


def chat_stream(studio: Studio, question: str | None, regenerate: bool = False,
                stream: Callable[[Studio, str, bool], Iterator[str]] | None = None) -> Iterator[list[dict]]:
    """The same stream as chat messages: the session's history plus the answer growing, then the
    session's history again (the page shows what the model will see next, never a copy of its own).
    Checks the request before showing anything; a second question waits for the first's answer."""
    if not regenerate:
        question = studio.engine.limits.check_question(question)
    with one_at_a_time(studio):
        if regenerate and not studio.session.turns:
            raise InputError("There is no answer to regenerate yet.")
        if studio.video is None:
            raise InputError("Upload a video (or pick an example) before asking.")
        before = history(studio)
        if regenerate:
            before, question = before[:-2], studio.session.turns[-1].question
        current = [{"role": "user", "content": question}, {"role": "assistant", "content": ""}]
        yield before + current
        for text in _answer(studio, question, regenerate, stream):
            current[1] = {"role": "assistant", "content": shown_answer(studio, text)}
            yield before + current
    yield history(studio)


# -- compare -------------------------------------------------------------------------------------
def compare(studio: Studio, **changes) -> Iterator[tuple[str, str, str, str]]:
    """Re-ask the last question with the current settings (A) and with `changes` (B), each in a
    throwaway copy of the session holding the same video and earlier turns; the main chat is not
    touched. Yields (label A, answer A, label B, answer B) as the answers grow. With sampling on,
    both use the same seed, so only the settings differ."""
    if studio.video is None or not studio.session.turns:
        raise InputError("Ask a question first: Compare re-asks the last one with other settings.")
    a = studio.options
    if a.do_sample and a.seed is None:
        a = a.replace(seed=int(time.time()) % 2**31)
    b_studio = Studio(studio.engine, a)
    try:
        b = set_options(b_studio, **changes).options  # validates B before any work
    finally:
        b_studio.close()
    if b.num_frames != a.num_frames:
        raise InputError("Compare keeps the frame count; change the strategy, pooling or alpha instead.")
    question = studio.session.turns[-1].question
    has_lora = studio.engine.spec.has_lora
    labels = (f"A: {a.label(has_lora)}", f"B: {b.label(has_lora)}")
    answers = ["", ""]
    for k, opts in enumerate((a, b)):
        copy = studio.engine.new_session(studio.session.system)
        copy.video, copy.turns = studio.session.video, list(studio.session.turns[:-1])
        try:
            for piece in _ask(copy, question, opts):
                answers[k] += piece
                yield labels[0], answers[0], labels[1], answers[1]
        finally:
            copy.close()
    yield labels[0], answers[0], labels[1], answers[1]
