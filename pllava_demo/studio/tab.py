"""A tab and its commands, written once for every door: upload a video, set options, ask (or regenerate),
compare, stop, clear, and the turns with the settings each answer was made with. A tab is one browser
tab, one API client, one CLI chat or one OpenAI conversation: a ChatSession, its Options, an answer slot
(one answer at a time) and a stop flag.

Every value is checked here once (api_types parses the raw ones) before any work; a refused command says
one sentence (../refusals.py) and changes nothing. The model's work goes through the tab's runner
(runner.py, zerogpu_runner.py). Knows no gradio, HTTP, argparse, nor where the model runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .. import refusals
from ..api_types import Bounds, parse_changes, time_range, upload_frames
from ..chat.prompt import Turn
from ..config import Limits
from ..errors import InputError, VideoError
from ..settings import IMAGE_EXTENSIONS, UPLOAD_VIDEO_EXTENSIONS
from ..frames.video import check_file
from . import test_gate
from .options import Options, default_options
from .runner import LocalRunner, Progress

VIDEO_TYPES = UPLOAD_VIDEO_EXTENSIONS  # what the page's boxes take: settings.py
IMAGE_TYPES = IMAGE_EXTENSIONS
ANSWER_WAIT_S = 300.0  # a question sent while another is answered waits this long for its turn
Stream = Callable[["Tab", str, bool], Iterator[str]]


class Tab:
    """One tab's session, settings, answer slot and stop flag. `close()` frees the video, the chat and
    this tab's uploaded files; the tab stays usable (New video), so the same call serves both "start
    over" and "the tab is gone". `id` is the registry's key for it (None: a tab nobody looks up)."""

    def __init__(self, engine, options: Options | None = None, uploads=None, runner=None, id: str | None = None):
        self.id = id
        self.engine = engine
        self.runner = runner or LocalRunner()
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


# -- upload and settings --------------------------------------------------------------------------
def check_upload(path, limits: Limits) -> Path:
    if not path:
        raise VideoError(refusals.NO_FILE)
    p = Path(path)
    if p.suffix.lower() not in VIDEO_TYPES + IMAGE_TYPES:
        raise VideoError(f"Unsupported file type {p.suffix or '(none)'}: use one of "
                         f"{', '.join(VIDEO_TYPES + IMAGE_TYPES)}.")
    return check_file(p, max_mb=limits.max_file_mb)


def load_video(tab: Tab, path, num_frames=None, progress: Progress | None = None) -> Tab:
    """Upload: decode and encode a new video (or the same one with another frame count). The file is
    held by the tab from the start, so a refused one is deleted when let go."""
    if path and tab.uploads is not None:
        tab.uploads.hold(tab, path)
    try:
        p = check_upload(path, tab.engine.limits)
        options = tab.options
        if num_frames is not None:
            options = dataclasses.replace(options, num_frames=upload_frames(num_frames, tab.engine.limits)).consistent()
        tab.runner.prepare(tab, p, options.num_frames, progress, options.time_range)
        was_still = tab.video is not None and is_still(tab.video.clip)
        tab.session.set_video(p, options.num_frames, progress, start_s=options.start_s, end_s=options.end_s)
        options = _time_steps_for(tab, options, was_still)
    except BaseException:
        if path and tab.uploads is not None:  # keep only the video still in use
            tab.uploads.release(tab, keep=tab.video_path)
        raise
    tab.options = options
    tab.video_path = str(p)
    if tab.uploads is not None:
        tab.uploads.release(tab, keep=p)  # the previous video's file is no longer needed
    return tab


def video_range(tab: Tab) -> tuple[float | None, float | None]:
    """The (start_s, end_s) the tab's video was sampled from; (None, None) for the whole video."""
    return (tab.video.clip.time_range if tab.video is not None else None) or (None, None)


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


def _time_steps_for(tab: Tab, options: Options, was_still: bool) -> Options:
    """A still image is one frame: T' = 1 (more time steps would repeat that one frame's tokens). The
    next video after it gets the checkpoint's T' back, unless T' was changed meanwhile."""
    t, h, w = options.pooling
    if is_still(tab.video.clip):
        return dataclasses.replace(options, pooling=(1, h, w))
    if was_still and t == 1:
        return dataclasses.replace(options, pooling=(default_options(tab.engine).pooling[0], h, w)).consistent()
    return options


def set_options(tab: Tab, progress: Progress | None = None, **changes) -> Tab:
    """Change any Options field; a new frame count or time range re-encodes the video (cached per count
    and range). Every value is parsed first (api_types: one message naming the field and its range),
    and a failed re-encode changes nothing, so a bad request never sticks."""
    engine = tab.engine
    typed = parse_changes(changes, Bounds.of(engine))
    if "system" in typed:  # text, length limit, no lone surrogates
        typed["system"] = engine.limits.check_system(typed["system"])
    new = tab.options.replace(**typed).consistent()  # GenerationSettings has the last word on its ranges
    time_range(*new.time_range)
    if tab.video_path and (new.num_frames != tab.video.num_frames or new.time_range != video_range(tab)):
        with range_request(new.time_range != video_range(tab)):
            n = engine.limits.check_frames(new.num_frames)
            tab.runner.prepare(tab, tab.video_path, n, progress, new.time_range)
            tab.session.set_video(tab.video_path, n, progress, start_s=new.start_s, end_s=new.end_s)
    tab.options = new
    if new.system != tab.session.system:
        tab.session.system = new.system
        tab.session.drop_cache()
    return tab


# -- ask, regenerate, stop, clear -------------------------------------------------------------------
@contextlib.contextmanager
def one_at_a_time(tab: Tab, wait_s: float = ANSWER_WAIT_S):
    """Hold the tab's answer slot: two questions sent at once (two API calls, a double click) are
    answered one after the other, each with the other's turn in its history. A plain Lock, not an
    RLock: gradio resumes a generator on any thread of its pool, and the release must work there."""
    if not tab.answering.acquire(timeout=wait_s):
        raise InputError(refusals.STILL_ANSWERING)
    try:
        yield
    finally:
        tab.answering.release()


def stream_answer(tab: Tab, question: str | None, regenerate: bool = False) -> Iterator[str]:
    """The runner's stream of the answer so far, with no answer slot and no record (the slot holder's
    part: `answer` / `asking`). Validates now: raises before any work."""
    return tab.runner.stream(tab, question or "", regenerate)


def asking(tab: Tab, question: str | None, regenerate: bool = False, stream: Stream | None = None) -> Iterator[str]:
    """Ask (or regenerate) in the tab's answer slot. Yields first the question as the chat shows it, once
    it is accepted (checked, the slot taken: every refusal is raised before), then the answer so far
    after each piece. `stream` is the runner's stream by default (the page paces it). The settings the
    answer is made with are recorded beside its turn, for the chat's download."""
    if not regenerate:
        question = tab.engine.limits.check_question(question)
    with one_at_a_time(tab):
        session = tab.session
        if regenerate and not session.turns:
            raise InputError(refusals.NOTHING_TO_REGENERATE)
        if tab.video is None:
            raise InputError(refusals.NO_VIDEO)
        if regenerate:
            question = session.turns[-1].question
        at, epoch = len(session.turns) - (1 if regenerate else 0), session.epoch
        yield question
        asked, plan = question, None
        if not regenerate:  # the whole-video scope retrieves the question's chapters first (chapters_scope.py)
            from .chapters_scope import before_answer
            asked, plan = before_answer(tab, question)
        used = answer_settings(tab)  # as they are when the question is asked, before any later change
        if plan is not None:
            used["chapters"] = plan
        pieces = (stream or stream_answer)(tab, asked, regenerate)
        try:
            for shown, text in enumerate(pieces, 1):
                yield text
                test_gate.hold_if_asked(shown, tab.stop)  # a test may hold any door's answer here
        finally:  # also for an answer closed early (a tab gone): closing the stream puts its partial turn in
            pieces.close()
            if session.epoch == epoch and at < len(session.turns):
                tab.answered_with[at] = (session.turns[at], used)


def answer(tab: Tab, question: str | None, regenerate: bool = False, stream: Stream | None = None) -> Iterator[str]:
    """The answer text as it grows (`asking` without the question it shows first)."""
    steps = asking(tab, question, regenerate, stream)
    try:
        next(steps)
        yield from steps
    finally:
        steps.close()


def stop(tab: Tab | None) -> bool:
    """The tab's answer ends after its next piece (any thread); False when there is no tab."""
    if tab is None:
        return False
    tab.stop.set()
    return True


def clear(tab: Tab | None) -> None:
    """Forget the chat (the video stays): an answer still streaming ends and joins no chat."""
    if tab is not None:
        tab.stop.set()
        tab.session.clear()


def turns(tab: Tab) -> list[dict]:
    """The chat's turns as plain values."""
    return [dataclasses.asdict(t) for t in tab.session.turns]


def answer_settings(tab: Tab) -> dict:
    """What an answer is made with, as plain JSON values: the frames and their times, the range,
    the pooling, alpha and the generation settings."""
    o, clip = tab.options, tab.video.clip if tab.video is not None else None
    return {"video": Path(clip.source).name if clip else None, "frames": tab.video.num_frames if clip else o.num_frames,
            "range_s": list(clip.time_range) if clip and clip.time_range else None,
            "timestamps_s": [round(float(t), 3) for t in clip.timestamps] if clip else [],
            "pooling": list(o.pooling) if o.strategy is None else None, "strategy": o.visual.as_dict(),
            "lora_alpha": o.lora_alpha,
            "generation": dataclasses.asdict(o.settings()), "system": o.system}


def turn_settings(tab: Tab, k: int) -> dict | None:
    """The settings turn number k was answered with, or None when not recorded for that very turn."""
    record = tab.answered_with.get(k)
    session_turns = tab.session.turns
    return record[1] if record is not None and k < len(session_turns) and record[0] is session_turns[k] else None


# -- compare ------------------------------------------------------------------------------------------
def compare(tab: Tab, **changes) -> Iterator[tuple[str, str, str, str]]:
    """Re-ask the last question with the current settings (A) and with `changes` (B), each in a
    throwaway copy of the session holding the same video and earlier turns; the main chat is not
    touched. Yields (label A, answer A, label B, answer B) as the answers grow. With sampling on,
    both use the same seed, so only the settings differ."""
    if tab.video is None or not tab.session.turns:
        raise InputError(refusals.COMPARE_NEEDS_A_QUESTION)
    a = tab.options
    if a.do_sample and a.seed is None:
        a = a.replace(seed=int(time.time()) % 2**31)
    b_tab = Tab(tab.engine, a)  # no video: only B's values are checked here
    try:
        b = set_options(b_tab, **changes).options
    finally:
        b_tab.close()
    if b.num_frames != a.num_frames:
        raise InputError(refusals.COMPARE_KEEPS_FRAMES)
    has_lora = tab.engine.spec.has_lora
    la, lb = f"A: {a.label(has_lora)}", f"B: {b.label(has_lora)}"
    answers = ("", "")
    for answers in tab.runner.compare(tab, tab.session.turns[-1].question, (a, b)):
        yield la, answers[0], lb, answers[1]
    yield la, answers[0], lb, answers[1]
