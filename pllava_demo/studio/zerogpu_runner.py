"""The runner for a Hugging Face ZeroGPU Space, and the one module that knows the `spaces` package.

On ZeroGPU, functions that touch the GPU must run inside `spaces.GPU`, which borrows a GPU for at most
`duration` seconds; elsewhere (no `spaces` package, or PLLAVA_NO_ZEROGPU) `gpu(...)` returns the
function unchanged and the very same calls run in this process.

On ZeroGPU each `spaces.GPU` call runs in a worker process forked from this one: its arguments and
results are pickled across a queue, whatever it changes in memory stays in the worker, and a worker
is reused only while it is idle and alive (else a fresh fork starts from this process's memory).
So every GPU call here takes only picklable values (a path, numbers, the turns, the options, the
encoded video on the CPU), finds the engine through the holder the runner was made with (a fork
inherits it), and
returns what it made: the encoded video on the CPU (never a CUDA tensor), the answer's pieces, the
worker's engine counters. The main process owns the tab and writes every change into it.
Off ZeroGPU the very same calls run in this process.

What survives between turns on ZeroGPU:
- the encoded video: returned on the CPU and cached in this process's feature cache; every answer
  call carries it, so a video is decoded and CLIP-encoded once, whichever worker answers;
- the KV cache: it lives in a worker. A reused worker keeps it (a mirror of the session, by the
  main session's id), so a follow-up prefills only its new tokens; a fresh worker prefills the
  whole prompt (video tokens + chat) once for the turn.
- the counters of a worker's engine are added to this process's (`/status`), except for an
  answer that was stopped (its worker is told to stop; it sends no summary).

Knows nothing of gradio, doors or uploads (the tab's commands check every value first); a progress
callable passes through pickled, so the doors hand it a picklable one.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import logging
import os
import sys
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .. import refusals
from ..errors import InputError, PllavaError

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


# -- what the forked workers share with this process ------------------------------------------------
# Module globals on purpose: a worker forked from this process inherits them, and the GPU calls below
# (module functions, pickled by name) find the model and the sessions through them.
_MAIN_PID = os.getpid()
_holder = None  # the ModelHolder the GPU calls use (ZeroGpuRunner sets it)
# session id -> the session, in this process: the main process's own sessions (a fresh fork
# inherits them), and in a worker the mirrors it made; _KEPT holds a worker's mirrors alive.
_LIVE: "weakref.WeakValueDictionary[int, object]" = weakref.WeakValueDictionary()
_KEPT: OrderedDict = OrderedDict()
MIRRORS_KEPT = 8  # sessions whose KV caches a reused worker keeps (each also bounded by the KV budget)


def in_worker() -> bool:
    return os.getpid() != _MAIN_PID


@dataclass
class Done:
    """Sent back by every GPU call: its result, error, counters and the process that ran it."""

    value: object = None
    error: PllavaError | None = None
    stats: dict = field(default_factory=dict)
    pid: int = field(default_factory=os.getpid)
    notice: str | None = None
    finished: bool = False
    turn: object = None  # an answer's Turn as the worker's session wrote it (`raw` included)


@dataclass(frozen=True)
class Ask:
    """One question, with everything the worker needs to answer it (all picklable)."""

    session_id: int
    system: str
    turns: tuple
    video: object  # engine.VideoFeatures, on the CPU under ZeroGPU
    options: object  # the tab's Options
    question: str


def _engine():
    if _holder is None:
        raise RuntimeError("no ZeroGpuRunner was made for this process's model")
    return _holder.get()


def _delta(eng, before: Counter) -> dict:
    return {k: v - before.get(k, 0) for k, v in eng.stats.items() if v != before.get(k, 0)}


def _to_host(vf):
    """A worker's result must not hold CUDA tensors (unpickling them in the main process hangs)."""
    return dataclasses.replace(vf, features=vf.features.cpu()) if vf.features.device.type != "cpu" else vf


def _on_device(eng, vf):
    """In this process: the video as it is. In a worker: its copy of the video the main process sent,
    on the model's device, kept for the next call of a reused worker (under its own key)."""
    if not in_worker():
        return vf
    key = vf.key
    own = eng.feature_cache.get(key)
    if own is not None:
        return own
    kept = eng.feature_cache.get(("sent",) + key)
    if kept is None:
        kept = dataclasses.replace(vf, features=vf.features.to(eng.model.device))
        eng.feature_cache.put(("sent",) + key, kept)
    return kept


def _mirror(eng, ask: Ask):
    """The session to answer in: this process's own (in-process), or a worker's mirror of it."""
    session = _LIVE.get(ask.session_id)
    if session is None:
        session = eng.new_session(ask.system)
        _LIVE[ask.session_id] = session
    if in_worker():
        _KEPT[ask.session_id] = session
        _KEPT.move_to_end(ask.session_id)
        while len(_KEPT) > MIRRORS_KEPT:
            _KEPT.popitem(last=False)
    session.closed = False
    session.system, session.turns, session.video = ask.system, list(ask.turns), _on_device(eng, ask.video)
    return session


def _adopt(eng, done: Done):
    """Main process: count the worker's work, keep the video it encoded, raise its error."""
    if done.pid != os.getpid():
        eng.stats.update(done.stats)
    if done.error is not None:
        raise done.error
    vf = done.value
    if vf is not None and eng.feature_cache.get(vf.key) is None:
        eng.feature_cache.put(vf.key, vf)  # shared by content: a later hit gets it under its own name
    return vf


# -- the GPU calls (run in a worker on ZeroGPU) --------------------------------------------------
@gpu(lambda path, num_frames, progress=None, time_range=(None, None): gpu_duration(num_frames, 1))
def _encode(path: str, num_frames: int, progress=None, time_range=(None, None)) -> Done:
    eng = _engine()
    before = Counter(eng.stats)
    try:
        start_s, end_s = time_range
        vf = eng.prepare_video(path, num_frames, progress, start_s=start_s, end_s=end_s)
        return Done(value=_to_host(vf) if in_worker() else vf, stats=_delta(eng, before))
    except PllavaError as e:  # as a value: spaces would turn it into its class name
        return Done(error=e, stats=_delta(eng, before))


@gpu(lambda ask: gpu_duration(ask.video.num_frames, ask.options.max_new_tokens))
def _answer(ask: Ask) -> Iterator:
    from .runner import ask_in

    eng = _engine()
    before = Counter(eng.stats)
    session = _mirror(eng, ask)
    try:
        yield from ask_in(session, ask.question, ask.options)
    except PllavaError as e:
        yield Done(error=e, stats=_delta(eng, before), notice=session.notice)
        return
    # the turn as the worker's session wrote it (its `raw` text is what the next prompt gets)
    yield Done(turn=session.turns[-1] if session.turns else None, stats=_delta(eng, before),
               notice=session.notice, finished=True)


@gpu(lambda ask, pair: gpu_duration(ask.video.num_frames, max(o.max_new_tokens for o in pair), answers=2))
def _compare(ask: Ask, pair: tuple) -> Iterator:
    from .runner import compare_in

    eng = _engine()
    before = Counter(eng.stats)
    session = eng.new_session(ask.system)
    session.turns, session.video = list(ask.turns), _on_device(eng, ask.video)
    try:
        yield from compare_in(eng, session, ask.question, pair)
    except PllavaError as e:
        yield Done(error=e, stats=_delta(eng, before))
        return
    finally:
        session.close()
    yield Done(stats=_delta(eng, before), finished=True)


# -- the runner (main process) -----------------------------------------------------------------------
class ZeroGpuRunner:
    """runner.LocalRunner's three jobs as GPU calls: the video encoded in one (this process's session
    then finds it in the feature cache), each answer and each comparison in one. The main process owns
    the tab and writes every change into it."""

    def __init__(self, holder):
        global _holder
        _holder = holder  # set before the first call: a forked worker inherits it

    def prepare(self, tab, path, num_frames: int, progress, time_range) -> None:
        """Encode (path, num_frames, time range) in a GPU call unless this process's cache has it already."""
        from ..chat.engine import feature_key
        from ..frames.video import content_key

        eng = tab.engine
        if eng.feature_cache.get(feature_key(content_key(path), num_frames, tuple(time_range))) is None:
            _adopt(eng, _encode(str(path), num_frames, progress, tuple(time_range)))

    def _ask_for(self, tab, question: str, turns: list) -> Ask:
        session = tab.session
        if session.video is None:
            raise InputError(refusals.NO_VIDEO)
        _LIVE[session.id] = session
        return Ask(session.id, session.system, tuple(turns), session.video, tab.options, question)

    def stream(self, tab, question: str, regenerate: bool = False) -> Iterator[str]:
        """The answer so far after each piece, from a GPU call. Stops when `tab.stop` is set. The turn
        (partial and marked stopped, if so) is written into this process's session at the end."""
        session = tab.session
        turns_before = list(session.turns)
        if regenerate:
            if not turns_before:
                raise InputError(refusals.NOTHING_TO_REGENERATE)
            question, turns = turns_before[-1].question, turns_before[:-1]
        else:
            question, turns = tab.engine.limits.check_question(question), turns_before
        return self._stream(tab, self._ask_for(tab, question, turns), turns_before)

    def _stream(self, tab, ask: Ask, turns_before: list) -> Iterator[str]:
        from ..chat.prompt import Turn

        session = tab.session
        epoch = session.epoch  # Clear or a new video meanwhile: this answer joins no chat
        tab.stop.clear()
        text, done = "", None
        stream = _answer(ask)
        try:
            for item in stream:
                if isinstance(item, Done):
                    done = item
                    break
                text += item
                yield text
                if tab.stop.is_set():
                    break
        finally:
            stream.close()  # on ZeroGPU: tells the worker to stop
            if text or (done is not None and done.error is None):
                finished = done is not None and done.finished
                turn = done.turn if finished and done.turn is not None else Turn(ask.question, text, stopped=not finished)
                session.keep_answer(turn, len(ask.turns), epoch)  # the session owns its turns
            elif session.epoch == epoch and not session.closed:
                session.turns = turns_before  # refused or failed before any text: the chat is as it was
        if done is not None:
            session.notice = done.notice
            _adopt(tab.engine, done)

    def compare(self, tab, question: str, pair) -> Iterator[tuple[str, str]]:
        """Both answers from one GPU call; the tab is not changed."""
        ask = self._ask_for(tab, question, list(tab.session.turns))  # compare_in leaves the last one out
        for item in _compare(ask, tuple(pair)):
            if isinstance(item, Done):
                _adopt(tab.engine, item)
                return
            yield item
