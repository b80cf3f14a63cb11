"""Times in an answer ("at 0:12", "12 s", "00:01:05") as links that seek the video player.

`link_times` turns an answer into Markdown in which the only links are ours: `[0:12](#t=12)`; every
other character of the answer stays text (Markdown's link and HTML characters are escaped), so a
model cannot put a link or a tag on the page. The page's script (ui/serving.py) takes a click on a
`#t=` link and sets the player's time. Plain text in, text out: no gradio, no video.
"""

from __future__ import annotations

import re

# h:mm:ss, m:ss (optionally with a fraction), or a number of seconds written as "12 s", "12.5s", "12 seconds"
_TIME = re.compile(
    r"(?<![\w.:])(?:(?P<h>\d{1,2}):(?P<hm>[0-5]\d):(?P<hs>[0-5]\d(?:\.\d+)?)"
    r"|(?P<m>\d{1,3}):(?P<ms>[0-5]\d(?:\.\d+)?)"
    r"|(?P<s>\d+(?:\.\d+)?)\s?(?:seconds?|secs?|s)\b)(?![\w:])")
_ESCAPE = re.compile(r"([\\`*_\[\]<>])")  # what could start a link, a tag or break our own link text
# what the chat's Markdown would turn into a link by itself (GFM autolinks): "http://", "www.", e-mail
_AUTOLINK = re.compile(r"(?<=\w)(:)(?=//)|(?<=\bwww)(\.)|(@)", re.IGNORECASE)
SLACK_S = 0.5  # a time said a little past the end (rounding) still seeks to the end


def _seconds(m: re.Match) -> float:
    if m["h"] is not None:
        return int(m["h"]) * 3600 + int(m["hm"]) * 60 + float(m["hs"])
    if m["m"] is not None:
        return int(m["m"]) * 60 + float(m["ms"])
    return float(m["s"])


def escape(text: str) -> str:
    """Text that Markdown shows as written: no link, no tag, no emphasis of its own."""
    return _AUTOLINK.sub(lambda m: "\\" + m[0], _ESCAPE.sub(r"\\\1", text))


def link_times(text: str, duration: float | None) -> str:
    """The answer as Markdown with each time inside the video (0 <= t <= duration) a seek link;
    without a video (duration None or 0: a still image) nothing is linked."""
    out, end = [], 0
    for m in _TIME.finditer(text):
        t = _seconds(m)
        if not duration or t > duration + SLACK_S:
            continue
        out += [escape(text[end:m.start()]), f"[{escape(m[0])}](#t={min(t, duration):g})"]
        end = m.end()
    out.append(escape(text[end:]))
    return "".join(out)
