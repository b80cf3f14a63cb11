"""Which chapters a question is about: BM25 over each chapter's caption and subtitle lines.

The library is `bm25s` rather than `rank_bm25`: bm25s is maintained (releases through 2026, against
rank_bm25's last in 2022), needs only numpy, scores with sparse matrices built once per index (rank_bm25
loops over every document in Python for every query), and ships English stop-word lists (the larger
STOPWORDS_EN_PLUS, with question words), so "what is said about the zebra" matches on "zebra" and
not on "what" or "the".
Knows chapters' text only; no model, no video.
"""

from __future__ import annotations

from dataclasses import dataclass

import bm25s
from bm25s.stopwords import STOPWORDS_EN_PLUS

from .records import Chapter, Chapters

MAX_TOP_K = 20


@dataclass(frozen=True)
class Hit:
    chapter: Chapter
    score: float


def chapter_text(c: Chapter) -> str:
    return " ".join([c.caption] + [x.text for x in c.lines])


def _tokens(texts: list[str]) -> list[list[str]]:
    return bm25s.tokenize(texts, stopwords=STOPWORDS_EN_PLUS, return_ids=False, show_progress=False)


class ChapterIndex:
    """A BM25 index of one video's chapters (build once per chapters value; searching is cheap)."""

    def __init__(self, chapters: Chapters):
        self.chapters = chapters.chapters
        docs = _tokens([chapter_text(c) for c in self.chapters]) if self.chapters else []
        self._empty = not any(docs)
        self._bm25 = None
        if not self._empty:
            self._bm25 = bm25s.BM25()
            self._bm25.index([d or [""] for d in docs], show_progress=False)

    def search(self, question: str, k: int) -> list[Hit]:
        """The k chapters that match best, best first; chapters with no matching word are left out, and
        when none matches at all the k chapters are spread evenly over the video (the question is then
        about the whole, not a part)."""
        if not self.chapters:
            return []
        k = max(1, min(k, len(self.chapters)))
        hits: list[Hit] = []
        query = _tokens([question])[0]
        if self._bm25 is not None and query:
            vocab = set(self._bm25.vocab_dict)
            query = [t for t in query if t in vocab]
            if query:
                ids, scores = self._bm25.retrieve([query], k=k, show_progress=False)  # (1, k) each
                hits = [Hit(self.chapters[int(i)], float(s)) for i, s in zip(ids[0], scores[0]) if s > 0]
        if hits:
            return hits
        n = len(self.chapters)
        return [Hit(self.chapters[(2 * j + 1) * n // (2 * k)], 0.0) for j in range(k)]
