"""How often a streamed answer reaches the page: a few times a second, whatever the token rate.

A model on a GPU (or the tiny test model) writes hundreds of tokens a second; sending each one made
the browser re-render the whole growing answer hundreds of times a second and froze the page (Stop
took seconds to act). `coalesce` passes on the first piece at once, then at most one piece per
`interval_s` (the newest: each piece is the answer so far), and always the last one, so the answer
is whole when the stream ends. The stream itself is pulled at full speed, so a stop flag it checks
per token acts as soon as before.

A render costs the browser time in proportion to the answer's length (the chat re-renders the whole
growing Markdown): ~250 ms for a 4,000-token answer on a busy 2-core machine, so four a second kept
the page busy all the time and Stop waited its turn for a second. The pause between pieces therefore
grows with a text piece's length (`per_char_s`): the page stays mostly idle at any answer length.

Plain iterators and a clock: no gradio, no model. Of a piece it knows only its length, when it has one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

INTERVAL_S = 0.25  # at most four updates of the answer a second
PER_CHAR_S = 50e-6  # and 0.05 s more per 1,000 characters shown: ~0.9 s apart at 4,000 tokens


def coalesce(pieces: Iterator[T], interval_s: float = INTERVAL_S,
             clock: Callable[[], float] = time.monotonic, per_char_s: float = PER_CHAR_S) -> Iterator[T]:
    """`pieces`, thinned by time: the first, then the newest one at most every `interval_s` (plus
    `per_char_s` per character of the piece last sent, for a piece with a length), then the last.
    Closing this closes `pieces` (a stream that writes its turn when closed)."""
    sent_at, pending, waiting, pause = None, None, False, interval_s
    try:
        for piece in pieces:
            now = clock()
            if sent_at is None or now - sent_at >= pause:
                sent_at, waiting = now, False
                pause = interval_s + per_char_s * (len(piece) if isinstance(piece, str) else 0)
                yield piece
            else:
                pending, waiting = piece, True
        if waiting:
            yield pending
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


def coalesced(stream: Callable[..., Iterator[T]], interval_s: float = INTERVAL_S) -> Callable[..., Iterator[T]]:
    """`stream` (a function returning an iterator of pieces) with its pieces coalesced."""
    def thinned(*args, **kwargs) -> Iterator[T]:
        return coalesce(stream(*args, **kwargs), interval_s)
    return thinned
