"""Automatic prefix caching for a stateless protocol: the conversations the API answered are kept as
idle tabs (studio/tab.py: a ChatSession with its settings), so a follow-up that repeats
the earlier messages is answered by the studio that wrote them. Its session's KV cache (under the
engine's byte budget, cropped to the longest common token prefix by the engine) and the shared encoded
video are then reused, and only the new tokens are prefilled.

The earlier answers go back into the prompt as the page's turns do: the raw text the model wrote
(leading space included) is remembered by the answer's text, so an assistant message the server
wrote gets the same token ids as the page's next turn. An assistant message it did not write (or has
forgotten) goes back as sent, as a page turn without its raw text does.

Knows studios and turns; nothing of HTTP, media or the protocol's fields.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from ..caches import CountLRU
from ..chat.prompt import Turn
from ..config import clean_text
from ..studio.options import default_options
from ..studio.tab import Tab as Studio

MAX_IDLE = 256  # studios kept between requests (their KV caches live under the engine's budget)
MAX_ANSWERS = 4096  # raw answers remembered


def _same(a: tuple[str, str], b: tuple[str, str]) -> bool:
    return a[0].strip() == b[0].strip() and a[1].strip() == b[1].strip()


class Conversations:
    def __init__(self, max_idle: int = MAX_IDLE, max_answers: int = MAX_ANSWERS):
        self.max_idle, self.max_answers = max_idle, max_answers
        self._idle: OrderedDict[int, Studio] = OrderedDict()  # least recently used first
        self._raw: CountLRU[str, str] = CountLRU(max_answers)  # answer as shown -> as the model wrote it
        self._lock = threading.Lock()

    def take(self, engine, content_key: str, system: str, turns: tuple[tuple[str, str], ...]) -> Studio:
        """A studio for this request, for its use alone until `give_back`: the idle one on the same video and
        system prompt whose turns the request repeats (most of them), else a new one. An idle studio is
        taken over only if the request repeats at least one of its turns, or all of them (none: it had
        just seen the video), so another conversation's next follow-up keeps its own."""
        best, best_n = None, -1
        with self._lock:
            for key, studio in self._idle.items():
                session = studio.session
                if session.video is None or session.video.clip.content_key != content_key or session.system != system:
                    continue
                had = [(t.question, t.answer) for t in session.turns]
                n = 0
                while n < min(len(had), len(turns)) and _same(had[n], turns[n]):
                    n += 1
                if (n >= 1 or n == len(had)) and n > best_n:
                    best, best_n = key, n
            if best is not None:
                return self._idle.pop(best)
        return Studio(engine, default_options(engine))

    def give_back(self, studio: Studio) -> None:
        """Keep a studio for follow-ups (the least recently used beyond max_idle is closed: KV freed)."""
        for turn in studio.session.turns[-1:]:
            if turn.raw is not None:
                self._remember(turn.answer, turn.raw)
        encoded = set(studio.engine.feature_cache.keys())
        with self._lock:
            self._idle[id(studio)] = studio
            extra = [self._idle.popitem(last=False)[1] for _ in range(len(self._idle) - self.max_idle)]
            # a studio whose video the engine's feature cache has let go would keep it in memory past that
            # budget: it goes too (its follow-up, if any, finds the video again in the request)
            for key in [k for k, s in self._idle.items() if s.video is None or s.video.key not in encoded]:
                extra.append(self._idle.pop(key))
        for old in extra:
            old.close()

    def turns(self, pairs: tuple[tuple[str, str], ...]) -> list[Turn]:
        """The request's earlier turns as the session holds them: questions as the page stores them
        (cleaned, stripped), answers with their raw text where the server wrote them."""
        with self._lock:
            return [Turn(clean_text(q).strip(), a.strip(), raw=self._raw.get(a.strip())) for q, a in pairs]

    def _remember(self, answer: str, raw: str) -> None:
        self._raw.put(answer, raw)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = list(self._idle.values()), OrderedDict()
        for studio in idle:
            studio.close()

    def __len__(self) -> int:
        return len(self._idle)
