"""Conversation text: the official prompt formats, history that fits the context window, and
streaming detokenization that cleans answers without eating letters.

Knows strings and a tokenizer; knows nothing of tensors, models or video beyond the single
"<image>" placeholder that the model replaces with visual tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

IMAGE = "<image>"

# The official demo's system prompt (tasks/eval/demo/pllava_demo.py), kept word for word.
DEFAULT_SYSTEM = (
    "You are a powerful Video Magic ChatBot, a large vision-language assistant. \n"
    "You are able to understand the video content that the user provides and assist the user in a "
    "video-language related task.\n"
    "The user might provide you with the video and maybe some extra noisy information to help you out or "
    "ask you a question. Make use of the information in a proper way to be competent for the job.\n"
    "### INSTRUCTIONS:\n"
    "1. Follow the user's instruction.\n"
    "2. Be critical yet believe in yourself.\n"
)

RECAPTION_SYSTEM = (
    "You are a powerful Video Magic ChatBot, a large vision-language assistant. \n"
    "You are able to understand the video content that the user provides and assist the user in a video "
    "recaptioning task.\n"
    "The user will provide you with the video and maybe some extra noisy information to help you out. Make use "
    "of the information in a proper way to be competent for the recaption job\n"
    "### INSTRUCTIONS:\n"
    "1. Follow the user's instruction.\n"
    "2. Be critical yet believe in yourself.\n"
)

# The official recaption instruction (tasks/eval/recaption/pllava_recaption.py), typos included.
RECAPTION_PROMPT = (
    "You are to assist me in accomplishing a task about the input video. Reply to me with a precise yet "
    "detailed response. For how you would succeed in the recaptioning task, read the following Instructions "
    "section and Then, make your response with a elaborate paragraph.\n"
    "# Instructions\n"
    "1. Avoid providing over detailed information such as color, counts of any objects as you are terrible "
    "regarding observing these details\n"
    "2. Instead, you should carefully go over the provided video and reason about key information about the "
    "overall video\n"
    "3. If you are not sure about something, do not include it in you response.\n"
    "# Task\n"
    "Describe the background, characters and the actions in the provided video.\n"
)


@dataclass(frozen=True)
class Turn:
    question: str
    answer: str
    stopped: bool = False  # the user stopped it mid-way; kept as they saw it


@dataclass(frozen=True)
class ChatFormat:
    """How one checkpoint family spells a conversation."""

    name: Literal["vicuna", "chatml"]
    user: str
    assistant: str
    user_end: str
    assistant_end: str
    video_turn: str
    stop_tokens: tuple[str, ...]
    stop_strings: tuple[str, ...]

    def system_block(self, system: str) -> str:
        if not system:
            return ""
        if self.name == "chatml":
            return f"<|im_start|>system\n{system}{self.user_end}"
        return system + self.user_end

    def render(self, system: str, turns: list[Turn] | tuple[Turn, ...], question: str) -> str:
        """The whole prompt up to where the assistant starts its answer."""
        parts = [self.system_block(system), self.user, self.video_turn, self.user_end]
        for t in turns:
            parts += [self.user, t.question, self.user_end, self.assistant, t.answer, self.assistant_end]
        parts += [self.user, question, self.user_end, self.assistant]
        return "".join(parts)


# Official 7B/13B "plain" demo: `{system} USER:<image>  USER:{q} ASSISTANT:{a}</s>USER:...`.
VICUNA = ChatFormat(
    name="vicuna", user="USER:", assistant="ASSISTANT:", user_end=" ", assistant_end="</s>",
    video_turn=f"{IMAGE} ", stop_tokens=("</s>",), stop_strings=("USER:", "</s>"),
)
# 34B (Nous-Hermes-2-Yi): ChatML roles, video alone in its own user message.
CHATML = ChatFormat(
    name="chatml", user="<|im_start|>user\n", assistant="<|im_start|>assistant\n", user_end="<|im_end|>\n",
    assistant_end="<|im_end|>\n", video_turn=f"{IMAGE}\n", stop_tokens=("<|im_end|>", "<|endoftext|>"),
    stop_strings=("<|im_start|>", "<|im_end|>"),
)


def chat_format_for(tokenizer) -> ChatFormat:
    """ChatML when the tokenizer knows its markers (the 34B release), else the vicuna format."""
    vocab = tokenizer.get_vocab()
    return CHATML if "<|im_start|>" in vocab and "<|im_end|>" in vocab else VICUNA


def stop_token_ids(tokenizer, fmt: ChatFormat) -> set[int]:
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    vocab = tokenizer.get_vocab()
    ids |= {vocab[t] for t in fmt.stop_tokens if t in vocab}
    return ids


@dataclass(frozen=True)
class FittedPrompt:
    text: str
    turns: tuple[Turn, ...]
    dropped_turns: int
    max_new_tokens: int
    n_prompt_tokens: int  # with the video counted as its visual tokens
    ids: tuple[int, ...] = ()  # the text's token ids (one <image> id), so nobody tokenizes it again


def fit_prompt(tokenizer, fmt: ChatFormat, system: str, turns, question: str, *, n_video_tokens: int,
               context: int, max_new_tokens: int, min_answer_tokens: int = 16) -> FittedPrompt:
    """Drop the oldest turns (never the video) until prompt + video + answer fit the context window.
    If the prompt alone leaves less than max_new_tokens, the answer budget shrinks; if it leaves less
    than min_answer_tokens, ValueError with a message for the user."""
    turns = tuple(turns)
    for dropped in range(len(turns) + 1):
        kept = turns[dropped:]
        text = fmt.render(system, kept, question)
        ids = tuple(tokenizer(text, add_special_tokens=True).input_ids)
        n = len(ids) - 1 + n_video_tokens
        if n + max_new_tokens <= context:
            return FittedPrompt(text, kept, dropped, max_new_tokens, n, ids)
    room = context - n
    if room >= min_answer_tokens:
        return FittedPrompt(text, (), len(turns), room, n, ids)
    raise ValueError(
        f"The question, system prompt and {n_video_tokens} visual tokens need {n} of the {context}-token "
        f"context window, leaving no room for an answer; shorten the question or use a smaller pooling shape."
    )


class TextStream:
    """Turns generated token ids into text pieces for streaming. Holds back an incomplete UTF-8
    character and any tail that may be the start of a stop string, and cuts at a stop string."""

    def __init__(self, tokenizer, stop_strings=()):
        self.tokenizer = tokenizer
        self.stop_strings = tuple(s for s in stop_strings if s)
        self.ids: list[int] = []
        self.sent = ""
        self.stopped = False

    def _visible(self, final: bool) -> str:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        cut = min((i for i in (text.find(s) for s in self.stop_strings) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            return text[:cut].rstrip()
        if final:
            return text.rstrip()
        if text.endswith("\ufffd"):
            text = text[:-1]
        for s in self.stop_strings:  # hold back a possible beginning of a stop string
            for k in range(min(len(s) - 1, len(text)), 0, -1):
                if text.endswith(s[:k]):
                    text = text[:-k]
                    break
        return text.rstrip()  # trailing space waits for the next word: the answer never ends in one

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        return self._advance(self._visible(final=False))

    def finish(self) -> str:
        return self._advance(self._visible(final=True))

    def _advance(self, visible: str) -> str:
        if not visible.startswith(self.sent):  # a decoder re-spaced earlier text: send nothing new yet
            return ""
        piece, self.sent = visible[len(self.sent):], visible
        return piece

    @property
    def text(self) -> str:
        return self.sent.strip()
