"""One chat-completions request as the studio's commands (studio/tab.py), the page's own request path: the
tab's settings are set by `set_options` (the page's validation), the video by `load_video`, the answer by
`stream_answer` (the tab is this request's alone: conversations.py lends it),
so it is answered by the engine's one scheduler, batched with the page's answers, under every limit
of the page. Adds what the protocol needs around it: admission (429 past the queue), the media's
temporary file, custom stop strings, finish_reason and usage.

Blocking code (runs in worker threads); knows no HTTP framework.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..errors import InputError, PllavaError, ResourceError, VideoError
from ..studio.model_holder import one_line
from ..studio.options import default_options
from ..studio.tab import load_video, set_options, stream_answer
from .conversations import Conversations
from .errors import ApiError, bad
from .media import MediaFiles, MediaPolicy, resolve
from .request import ChatRequest



@dataclass(frozen=True)
class ApiSettings:
    """How the API is served (built from the flags by flags.py)."""

    api_key: str | None = None
    media: MediaPolicy = field(default_factory=MediaPolicy)
    concurrency: int = 2  # answers at once (the engine decodes them as one batch)
    max_queue: int = 32  # requests waiting beyond those; one more gets 429
    exposed: bool = False  # listening beyond 127.0.0.1 (or a share link): warned about without a key


def api_error(e: PllavaError) -> ApiError:
    """The project's errors as the protocol's: a bad request 400, no memory for it 503."""
    if isinstance(e, ResourceError):
        return ApiError(503, str(e), code="out_of_memory")
    if isinstance(e, (InputError, VideoError)):
        return bad(str(e))
    return ApiError(500, one_line(e))


class ChatService:
    def __init__(self, holder, settings: ApiSettings):
        self.holder, self.settings = holder, settings
        self.conversations = Conversations()
        self.files = MediaFiles()
        self._active = 0
        self._lock = threading.Lock()

    def engine(self):
        """The engine, or 503 while the model loads (500 when it failed to load)."""
        if self.holder.engine is not None:
            return self.holder.engine
        try:
            return self.holder.get()
        except InputError as e:
            raise ApiError(503, str(e), code="model_loading") from None
        except PllavaError as e:
            raise ApiError(500, str(e), code="model_failed") from None

    @property
    def model_name(self) -> str:
        return self.holder.name

    def enter(self) -> None:
        """Take one of concurrency + max_queue places (`leave` gives it back), or 429."""
        with self._lock:
            if self._active >= self.settings.concurrency + self.settings.max_queue:
                raise ApiError(429, "Queue is full, please try again.", code="queue_full")
            self._active += 1

    def leave(self) -> None:
        with self._lock:
            self._active -= 1

    def start(self, req: ChatRequest) -> "Answer":
        """Everything that can refuse the request, done before the first byte of the answer: the media is
        read, decoded and encoded (or found in the caches), the settings and question checked."""
        from ..frames.video import content_key

        engine = self.engine()
        if req.media is None:
            raise bad("The conversation needs a video: a video_url (or image_url) part in a user message.", "messages")
        changes = dict(req.changes)
        if req.system is not None:
            changes["system"] = req.system
        system = engine.limits.check_system(req.system) if req.system is not None else default_options(engine).system
        with resolve(req.media, self.settings.media, self.files) as path:
            try:
                key = content_key(path)
            except OSError:
                raise bad("The media file could not be read.", req.media.param) from None
            studio = self.conversations.take(engine, key, system, req.turns)
            try:
                studio.video_path = None  # a kept studio's file is gone: the video is set from this request's
                studio.options = default_options(engine)
                set_options(studio, **changes)
                load_video(studio, path)
                studio.session.turns = self.conversations.turns(req.turns)
                pieces = stream_answer(studio, req.question)
            except PllavaError as e:
                self.conversations.give_back(studio) if studio.video is not None else studio.close()
                raise api_error(e) from None
            except BaseException:
                studio.close()
                raise
        return Answer(self, studio, pieces, req.stop)


class Answer:
    """The answer's new text, piece by piece (`deltas`), then `finish_reason` and `usage`."""

    def __init__(self, service: ChatService, studio, texts: Iterator[str], stops: tuple[str, ...]):
        self.service, self.studio, self.texts, self.stops = service, studio, texts, stops
        self.finish_reason: str | None = None
        self.usage: dict | None = None
        self._closed = False

    def cancel(self) -> None:
        """The client went away: the answer ends after its next token (any thread)."""
        self.studio.stop.set()

    def deltas(self) -> Iterator[str]:
        sent, stopped, whole = "", False, ""
        try:
            for text in self.texts:  # the answer so far
                whole = text
                cut = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
                if cut >= 0:
                    text, stopped = text[:cut], True
                else:  # hold back what may begin a stop string
                    text = text[: len(text) - _held(text, self.stops)]
                if len(text) > len(sent):
                    yield text[len(sent):]
                    sent = text
                if stopped:
                    break
        except PllavaError as e:
            raise api_error(e) from None
        finally:
            self._close(stopped)
        if not stopped and len(whole) > len(sent):  # the tail held back for a stop string that never came
            yield whole[len(sent):]

    def text(self) -> str:
        return "".join(self.deltas())

    def _close(self, stopped: bool) -> None:
        if self._closed:
            return
        self._closed = True
        self.texts.close()  # the engine's end of the answer: the turn joins the session, the row leaves
        used = self.studio.session.last_usage
        if used is not None:
            self.usage = {"prompt_tokens": used.prompt_tokens, "completion_tokens": used.completion_tokens,
                          "total_tokens": used.prompt_tokens + used.completion_tokens,
                          "prompt_tokens_details": {"cached_tokens": used.cached_tokens,
                                                    "video_tokens": used.video_tokens}}
        self.finish_reason = "length" if used is not None and used.hit_limit and not stopped else "stop"
        self.service.conversations.give_back(self.studio)


def _held(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest end of `text` that begins one of the stop strings."""
    return max((k for s in stops for k in range(min(len(s) - 1, len(text)), 0, -1) if text.endswith(s[:k])),
               default=0)
