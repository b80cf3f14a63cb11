"""A long answer's paragraphs in parts, so that the page renders a growing answer in time proportional
to what changed, not to the whole answer.

The chat renders an answer's Markdown block by block and, as the answer grows, renders again only the
blocks that changed; the browser lays out again only those. A paragraph of 4,000 tokens is one block:
each update re-parsed and re-laid out all of it (~100-400 ms of the page's main thread a time on a
busy 2-core machine, bench/README.md section 9). A plain paragraph line longer than PART_CHARS is
therefore cut into paragraphs of at least PART_CHARS characters: at the first sentence end after
PART_CHARS, or, with none in the next PART_CHARS, at the first space after 2 * PART_CHARS. A cut depends
only on the text before it (and the letter after it), so the parts already shown stay the same while
the answer grows and are not rendered again. Only plain text lines are cut: a list item, a heading, a
table row, a quote or an indented line is left whole, and never inside one of our time links.

Markdown text in (time_links' output: the model's own brackets escaped), Markdown text out.
"""

from __future__ import annotations

import re

PART_CHARS = 600
# a line starting with none of Markdown's block markers (space: code or a list's continuation)
_PLAIN_LINE = re.compile(r"[^\s#>|~=+*-]")
_NUMBERED = re.compile(r"\d{1,9}[.)](\s|$)")  # "1. " or "1) " starts a numbered list item


def in_parts(markdown: str) -> str:
    """`markdown` with each plain line over PART_CHARS characters cut into paragraphs (see above)."""
    return "\n".join(_cut(line) if len(line) > PART_CHARS and _PLAIN_LINE.match(line)
                     and not _NUMBERED.match(line) else line for line in markdown.split("\n"))


def _cut(line: str) -> str:
    parts, start, depth, sentence_end = [], 0, 0, False
    for k, ch in enumerate(line):
        escaped = k > 0 and line[k - 1] == "\\"
        if not escaped and ch == "[":  # our own time link: the model's brackets are escaped (time_links)
            depth += 1
        elif not escaped and ch == ")" and depth:
            depth -= 1
        elif ch == " " and not depth and k + 1 < len(line) and line[k + 1].isalpha():
            length = k - start
            if (length >= PART_CHARS and sentence_end) or length >= 2 * PART_CHARS:
                parts.append(line[start:k])
                start = k + 1
        if ch != " ":
            sentence_end = ch in ".!?" and not escaped
    parts.append(line[start:])
    return "\n\n".join(parts)
