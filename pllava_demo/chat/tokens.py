"""Text <-> token ids at the two edges of the model: a prompt in which text a person typed never
becomes a control token, and streamed answers that never show half a character.

Knows a Hugging Face fast tokenizer (and its `tokenizers` backend); knows nothing of chat formats,
tensors or models. The chat formats (prompt.py) say which parts of a prompt are template and which
are text from a person or from the model.
"""

from __future__ import annotations

import codecs
import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

ZWJ = "\u200d"  # joins emoji into one picture: held back until the next one arrives
REPLACEMENT = "\ufffd"


@dataclass(frozen=True)
class _Facts:
    """What this module needs to know about one tokenizer, read once."""

    added: re.Pattern | None  # any added-token string (<image>, </s>, <|im_start|>, ...)
    byte_ids: dict[int, int]  # id of a byte-fallback piece <0xNN> -> the byte
    byte_of: dict[int, int]  # the byte -> its id
    skipped: frozenset[int]  # special ids, which decoding leaves out
    prefix: tuple[int, ...]  # what the tokenizer puts around a text (BOS)
    suffix: tuple[int, ...]


_FACTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def _facts(tokenizer) -> _Facts:
    facts = _FACTS.get(tokenizer)
    if facts is None:
        added = sorted(tokenizer.get_added_vocab(), key=len, reverse=True)
        byte_ids = {}
        for piece, i in tokenizer.get_vocab().items():
            m = _BYTE_PIECE.fullmatch(piece)
            if m:
                byte_ids[i] = int(m.group(1), 16)
        full = tokenizer("a", add_special_tokens=True).input_ids
        bare = tokenizer("a", add_special_tokens=False).input_ids
        at = next(i for i in range(len(full) - len(bare) + 1) if full[i:i + len(bare)] == bare)
        facts = _Facts(
            added=re.compile("|".join(map(re.escape, added))) if added else None,
            byte_ids=byte_ids, byte_of={b: i for i, b in byte_ids.items()},
            skipped=frozenset(tokenizer.all_special_ids),
            prefix=tuple(full[:at]), suffix=tuple(full[at + len(bare):]),
        )
        _FACTS[tokenizer] = facts
    return facts


# -- prompts ----------------------------------------------------------------------------------------
def encode_prompt(tokenizer, parts: Sequence[tuple[str, bool]]) -> list[int]:
    """Token ids of "".join(parts) with the tokenizer's special tokens added (BOS). Each part is
    (text, plain): control tokens are recognised only in template parts; in a plain part (a question,
    a system prompt, an earlier answer) "<image>" or "</s>" is just text.

    Ordinary text gets exactly the ids of tokenizing the whole string (what the official demo does);
    only when a plain part contains a control token's spelling is the prompt encoded piece by piece."""
    facts = _facts(tokenizer)
    if facts.added is None or not any(plain and facts.added.search(text) for text, plain in parts):
        return tokenizer("".join(t for t, _ in parts), add_special_tokens=True).input_ids
    return encode_pieces(tokenizer, parts)


def encode_pieces(tokenizer, parts: Sequence[tuple[str, bool]]) -> list[int]:
    """The prompt as the tokenizer's own pipeline would encode it (cut at control tokens, then normalise,
    pre-tokenise and run the model on each stretch between them), but cutting only at control tokens
    of template parts. Public so a test can show it equals the plain encoding on ordinary text."""
    facts = _facts(tokenizer)
    backend = tokenizer.backend_tokenizer
    ids, stretch = list(facts.prefix), []

    def flush():
        text = "".join(stretch)
        stretch.clear()
        if not text:
            return
        if backend.normalizer is not None:
            text = backend.normalizer.normalize_str(text)
        pieces = backend.pre_tokenizer.pre_tokenize_str(text) if backend.pre_tokenizer is not None else [(text, None)]
        for piece, _ in pieces:
            ids.extend(t.id for t in backend.model.tokenize(piece))

    for text, plain in parts:
        if plain or facts.added is None:
            stretch.append(text)
            continue
        at = 0
        for m in facts.added.finditer(text):
            stretch.append(text[at:m.start()])
            flush()
            ids.append(tokenizer.convert_tokens_to_ids(m.group()))
            at = m.end()
        stretch.append(text[at:])
    flush()
    return ids + list(facts.suffix)


# -- answers ----------------------------------------------------------------------------------------
class TextStream:
    """Turns generated token ids into text pieces for streaming; the pieces always add up to `text`.

    A character that arrives as several byte-fallback pieces (emoji, most CJK characters with the LLaMA
    tokenizer) is held back until it is complete; bytes that can never form a character are dropped, so
    U+FFFD is never sent. Also held back: a tail that may begin a stop string, trailing whitespace and a
    trailing zero-width joiner. The answer is cut at the first stop string.

    `anchor_id` (the prompt's last token) lets `raw` decode the answer as it reads in context, leading
    space included (" Yes"): the text the official demo puts back into the next prompt."""

    def __init__(self, tokenizer, stop_strings=(), anchor_id: int | None = None):
        self.tokenizer = tokenizer
        self.stop_strings = tuple(s for s in stop_strings if s)
        self.anchor_id = anchor_id
        self._facts = _facts(tokenizer)
        self._clean: list[int] = []  # ids whose text is settled; byte runs kept only where valid UTF-8
        self._run: list[int] = []  # the trailing run of byte-fallback ids, not settled yet
        self.sent = ""
        self.stopped = False

    def push(self, token_id: int) -> str:
        token_id = int(token_id)
        if token_id in self._facts.skipped:  # decoding leaves specials out, so bytes around one still join
            return ""
        if token_id in self._facts.byte_ids:
            self._run.append(token_id)
        else:
            self._clean += self._valid_bytes(final=True)
            self._run = []
            self._clean.append(token_id)
        return self._advance(self._visible(final=False))

    def finish(self) -> str:
        return self._advance(self._visible(final=True))

    @property
    def text(self) -> str:
        return self.sent

    @property
    def raw(self) -> str:
        """The whole answer as it reads after the prompt (leading space kept), cut at a stop string."""
        ids = self._ids(final=True)
        if self.anchor_id is None:
            return self._cut(self._decode(ids))[0]
        head = self._decode([self.anchor_id])
        both = self._decode([self.anchor_id, *ids])
        text = both[len(head):] if both.startswith(head) else self._decode(ids)
        text, cut = self._cut(text)
        return text.rstrip() if cut else text

    # -- inside --
    def _valid_bytes(self, final: bool) -> list[int]:
        """The ids of the byte run's complete, valid characters; an incomplete tail waits unless final."""
        decoder = codecs.getincrementaldecoder("utf-8")("ignore")
        chars = decoder.decode(bytes(self._facts.byte_ids[i] for i in self._run), final=final)
        return [self._facts.byte_of[b] for b in chars.encode("utf-8")]

    def _ids(self, final: bool) -> list[int]:
        return self._clean + self._valid_bytes(final) if self._run else self._clean

    def _decode(self, ids: list[int]) -> str:
        # Byte runs are valid UTF-8 by now; a U+FFFD left is a piece of the vocabulary itself.
        return self.tokenizer.decode(ids, skip_special_tokens=True).replace(REPLACEMENT, "")

    def _cut(self, text: str) -> tuple[str, bool]:
        cut = min((i for i in (text.find(s) for s in self.stop_strings) if i >= 0), default=-1)
        return (text[:cut], True) if cut >= 0 else (text, False)

    def _visible(self, final: bool) -> str:
        text, cut = self._cut(self._decode(self._ids(final)))
        if cut:
            self.stopped = True
        elif not final:
            for s in self.stop_strings:  # hold back a possible beginning of a stop string
                for k in range(min(len(s) - 1, len(text)), 0, -1):
                    if text.endswith(s[:k]):
                        text = text[:-k]
                        break
            text = text.rstrip().removesuffix(ZWJ)
        return text.strip()  # trailing space waits for the next word: the answer never ends in one

    def _advance(self, visible: str) -> str:
        if not visible.startswith(self.sent):  # a decoder re-spaced earlier text: send nothing new yet
            return ""
        piece, self.sent = visible[len(self.sent):], visible
        return piece
