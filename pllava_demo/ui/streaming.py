"""How often a streamed answer reaches the page: a few times a second, whatever the token rate.

A model on a GPU (or the tiny test model) writes hundreds of tokens a second; sending each one made
the browser re-render the whole growing answer hundreds of times a second and froze the page (Stop
took seconds to act). `coalesce` passes on the first piece at once, then at most one piece per
`interval_s` (the newest: each piece is the answer so far), and always the last one, so the answer
is whole when the stream ends. The stream itself is pulled at full speed, so a stop flag it checks
per token acts as soon as before.

Plain iterators and a clock: no gradio, no model. It does not know what a piece is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

INTERVAL_S = 0.25  # at most four updates of the answer a second


def coalesce(pieces: Iterator[T], interval_s: float = INTERVAL_S,
             clock: Callable[[], float] = time.monotonic) -> Iterator[T]:
    """`pieces`, thinned by time: the first, then the newest one at most every `interval_s`, then
    the last. Closing this closes `pieces` (a stream that writes its turn when closed)."""
    sent_at, pending, waiting = None, None, False
    try:
        for piece in pieces:
            now = clock()
            if sent_at is None or now - sent_at >= interval_s:
                sent_at, waiting = now, False
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
