"""The page's state for machines: one hidden element whose data attributes say whether the tab is
answering, how many turns its chat has, and the id of the last event that changed it.

Browser tests wait on these (`#page-state [data-answering="0"][data-turns="2"]`) instead of guessing
from what is visible ("Send is visible" means both "not started" and "finished"). The id grows with
every state written by this server, so "a later event than the one I saw" is a plain comparison.

Strings only: no gradio, no session; events.py decides when the state changes.
"""

from __future__ import annotations

import itertools

_ids = itertools.count(1)  # next() on a count is atomic under the GIL: ids stay unique across threads
INITIAL = '<div data-answering="0" data-turns="0" data-event="0"></div>'


def state_html(answering: bool, turns: int) -> str:
    return (f'<div data-answering="{int(bool(answering))}" data-turns="{int(turns)}" '
            f'data-event="{next(_ids)}"></div>')
