"""The Studio's GPU work as calls that survive ZeroGPU's process model.

On ZeroGPU each `spaces.GPU` call runs in a worker process forked from this one: its arguments and
results are pickled across a queue, whatever it changes in memory stays in the worker, and a worker
is reused only while it is idle and alive (else a fresh fork starts from this process's memory).
So every GPU call here takes only picklable values (a path, numbers, the turns, the options, the
encoded video on the CPU), finds the engine through `bind(holder)` (a fork inherits it), and
returns what it made: the encoded video on the CPU (never a CUDA tensor), the answer's pieces, the
worker's engine counters. The main process owns the studio and writes every change into it.
Off ZeroGPU the very same calls run in this process.

What survives between turns on ZeroGPU:
- the encoded video: returned on the CPU and cached in this process's feature cache; every answer
  call carries it, so a video is decoded and CLIP-encoded once, whichever worker answers;
- the KV cache: it lives in a worker. A reused worker keeps it (a mirror of the session, by the
  main session's id), so a follow-up prefills only its new tokens; a fresh worker prefills the
  whole prompt (video tokens + chat) once for the turn.
- the counters of a worker's engine are added to this process's (`/status`), except for an
  answer that was stopped (its worker is told to stop; it sends no summary).

Knows nothing of gradio: `gr.Progress` passes through as an object with `__call__(frac, desc=)`.
"""

from __future__ import annotations

import dataclasses
import os
import weakref
from collections import Counter, OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

from .. import api_types as A
from . import handlers as H
from ..errors import InputError, PllavaError
from ..chat.prompt import Turn
from ..zerogpu import gpu, gpu_duration

_MAIN_PID = os.getpid()
_holder: H.ModelHolder | None = None
# session id -> the session, in this process: the main process's own sessions (a fresh fork
# inherits them), and in a worker the mirrors it made; _KEPT holds a worker's mirrors alive.
_LIVE: "weakref.WeakValueDictionary[int, object]" = weakref.WeakValueDictionary()
_KEPT: OrderedDict = OrderedDict()
MIRRORS_KEPT = 8  # sessions whose KV caches a reused worker keeps (each also bounded by the KV budget)


def bind(holder: H.ModelHolder) -> None:
    """The model the GPU calls use. Set before the first call: a forked worker inherits it."""
    global _holder
    _holder = holder


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
    turn: Turn | None = None  # an answer's turn as the worker's session wrote it (`raw` included)


@dataclass(frozen=True)
class Ask:
    """One question, with everything the worker needs to answer it (all picklable)."""

    session_id: int
    system: str
    turns: tuple[Turn, ...]
    video: object  # engine.VideoFeatures, on the CPU under ZeroGPU
    options: H.Options
    question: str


class _Progress:
    """gradio's progress as the engine's `(fraction, text)` callback, and picklable."""

    def __init__(self, progress):
        self.progress = progress

    def __call__(self, frac: float, text: str) -> None:
        self.progress(frac, desc=text)


def _engine():
    if _holder is None:
        raise RuntimeError("gpu_calls.bind(holder) was not called")
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
    own = eng.features.get(key)
    if own is not None:
        return own
    kept = eng.features.get(("sent",) + key)
    if kept is None:
        kept = dataclasses.replace(vf, features=vf.features.to(eng.model.device))
        eng.features.put(("sent",) + key, kept)
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
    if vf is not None and eng.features.get(vf.key) is None:
        eng.features.put(vf.key, vf)  # shared by content: a later hit gets it under its own name
    return vf


# -- the GPU calls (run in a worker on ZeroGPU) --------------------------------------------------
@gpu(lambda path, num_frames, progress=None, time_range=(None, None): gpu_duration(num_frames, 1))
def _encode(path: str, num_frames: int, progress=None, time_range=(None, None)) -> Done:
    eng = _engine()
    before = Counter(eng.stats)
    try:
        start_s, end_s = time_range
        vf = eng.prepare_video(path, num_frames, _Progress(progress) if progress is not None else None,
                               start_s=start_s, end_s=end_s)
        return Done(value=_to_host(vf) if in_worker() else vf, stats=_delta(eng, before))
    except PllavaError as e:  # as a value: spaces would turn it into its class name
        return Done(error=e, stats=_delta(eng, before))


@gpu(lambda ask: gpu_duration(ask.video.num_frames, ask.options.max_new_tokens))
def _answer(ask: Ask) -> Iterator[str | Done]:
    eng = _engine()
    before = Counter(eng.stats)
    session = _mirror(eng, ask)
    o = ask.options
    try:
        pieces = session.ask(ask.question, strategy=o.visual, lora_alpha=o.lora_alpha, settings=o.settings())
        yield from pieces
    except PllavaError as e:
        yield Done(error=e, stats=_delta(eng, before), notice=session.notice)
        return
    # the turn as the worker's session wrote it (its `raw` text is what the next prompt gets)
    yield Done(turn=session.turns[-1] if session.turns else None, stats=_delta(eng, before),
               notice=session.notice, finished=True)


@gpu(lambda ask, changes: gpu_duration(ask.video.num_frames, ask.options.max_new_tokens, answers=2))
def _compare(ask: Ask, changes: dict) -> Iterator[tuple | Done]:
    eng = _engine()
    before = Counter(eng.stats)
    studio = H.Studio(eng, ask.options)
    s = studio.session
    s.system, s.turns, s.video = ask.system, list(ask.turns), _on_device(eng, ask.video)
    try:
        yield from H.compare(studio, **changes)
    except PllavaError as e:
        yield Done(error=e, stats=_delta(eng, before))
        return
    finally:
        s.close()
    yield Done(stats=_delta(eng, before), finished=True)


# -- what the page calls (main process) -----------------------------------------------------------
def _ensure_encoded(studio: H.Studio, path, num_frames: int, progress, time_range=(None, None)) -> None:
    """Encode (path, num_frames, time range) in a GPU call unless this process's cache has it already."""
    from ..chat.engine import feature_key
    from ..frames.video import content_key

    eng = studio.engine
    if eng.features.get(feature_key(content_key(path), num_frames, tuple(time_range))) is None:
        _adopt(eng, _encode(str(path), num_frames, progress, tuple(time_range)))


def load_video(studio: H.Studio, path, num_frames: int | None = None, progress=None) -> H.Studio:
    """handlers.load_video, with the decoding and CLIP-encoding in a GPU call."""
    try:
        p = H.check_upload(path, studio.engine.limits)
        n = A.upload_frames(num_frames, studio.engine.limits) or studio.options.num_frames
    except PllavaError:
        p = None  # refused: load_video below says why (and lets go of the upload)
    if p is not None:
        try:
            _ensure_encoded(studio, p, n, progress, studio.options.time_range)
        except PllavaError:
            if studio.uploads is not None:  # held and let go as load_video would: the file is deleted
                studio.uploads.hold(studio, path)
                studio.uploads.release(studio, keep=studio.video_path)
            raise
    return H.load_video(studio, path, num_frames, _Progress(progress) if progress is not None else None)


def set_options(studio: H.Studio, progress=None, **changes) -> H.Studio:
    """handlers.set_options; a new frame count or time range is encoded in a GPU call first."""
    typed = A.parse_changes(changes, A.Bounds.of(studio.engine))  # a bad value is refused here
    n = typed.get("num_frames", studio.video.num_frames if studio.video is not None else None)
    span = A.time_range(typed.get("start_s", studio.options.start_s), typed.get("end_s", studio.options.end_s))
    if studio.video_path and studio.video is not None and (n != studio.video.num_frames or span != H.video_range(studio)):
        with H.range_request(span != H.video_range(studio)):
            _ensure_encoded(studio, studio.video_path, studio.engine.limits.check_frames(n), progress, span)
    return H.set_options(studio, _Progress(progress) if progress is not None else None, **changes)


def _ask_for(studio: H.Studio, question: str, turns: list[Turn]) -> Ask:
    session = studio.session
    if session.video is None:
        raise InputError("Upload a video (or pick an example) before asking.")
    _LIVE[session.id] = session
    return Ask(session.id, session.system, tuple(turns), session.video, studio.options, question)


def stream_answer(studio: H.Studio, question: str | None, regenerate: bool = False) -> Iterator[str]:
    """The answer so far after each piece, from a GPU call. Stops when `studio.stop` is set. The turn
    (partial and marked stopped, if so) is written into this process's session at the end."""
    session = studio.session
    turns_before = list(session.turns)
    if regenerate:
        if not turns_before:
            raise InputError("There is no answer to regenerate yet.")
        question, turns = turns_before[-1].question, turns_before[:-1]
    else:
        question, turns = studio.engine.limits.check_question(question), turns_before
    ask = _ask_for(studio, question, turns)
    epoch = session.epoch  # Clear or a new video meanwhile: this answer joins no chat
    studio.stop.clear()
    text, done = "", None
    stream = _answer(ask)
    try:
        for item in stream:
            if isinstance(item, Done):
                done = item
                break
            text += item
            yield text
            if studio.stop.is_set():
                break
    finally:
        stream.close()  # on ZeroGPU: tells the worker to stop
        if text or (done is not None and done.error is None):
            finished = done is not None and done.finished
            turn = done.turn if finished and done.turn is not None else Turn(question, text, stopped=not finished)
            session.keep_answer(turn, len(turns), epoch)  # the session owns its turns; in-process it has it already
        elif session.epoch == epoch and not session.closed:
            session.turns = turns_before  # refused or failed before any text: the chat is as it was
    if done is not None:
        session.notice = done.notice
        _adopt(studio.engine, done)


def compare(studio: H.Studio, **changes) -> Iterator[tuple[str, str, str, str]]:
    """handlers.compare in a GPU call; the studio is not changed."""
    ask = _ask_for(studio, "", list(studio.session.turns))
    for item in _compare(ask, dict(changes)):
        if isinstance(item, Done):
            _adopt(studio.engine, item)
            return
        yield item
