"""Conversation text: the official prompt formats and history that fits the context window. Token ids
at the edges (control tokens only where the template puts them, streaming without half characters)
are tokens.py's job.

Knows strings and a tokenizer; knows nothing of tensors, models or video beyond the single
"<image>" placeholder that the model replaces with visual tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .tokens import TextStream, encode_prompt  # noqa: F401  (TextStream: callers import it from here)

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
    answer: str  # as the chat shows it: stripped
    stopped: bool = False  # the user stopped it mid-way; kept as they saw it
    raw: str | None = None  # as the model wrote it after the assistant marker (" Yes"): what the prompt gets

    @property
    def said(self) -> str:
        return self.answer if self.raw is None else self.raw


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

    def parts(self, system: str, turns: list[Turn] | tuple[Turn, ...], question: str) -> list[tuple[str, bool]]:
        """The prompt up to where the assistant starts its answer, as (text, plain) parts: template text,
        or plain text (typed by a person or written by the model) in which control tokens mean nothing."""
        T, P = False, True
        out = []
        if system:
            out += [("<|im_start|>system\n", T)] if self.name == "chatml" else []
            out += [(system, P), (self.user_end, T)]
        out += [(self.user + self.video_turn + self.user_end, T)]
        for t in turns:
            out += [(self.user, T), (t.question, P), (self.user_end + self.assistant, T), (t.said, P),
                    (self.assistant_end, T)]
        out += [(self.user, T), (question, P), (self.user_end + self.assistant, T)]
        return out


# Official 7B/13B "plain" demo: `{system} USER:<image>  USER:{q} ASSISTANT:{a}</s>USER:...`, where {a} is
# the answer as the model wrote it after "ASSISTANT:", leading space included.
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


def chat_format_for(tokenizer, family=None) -> ChatFormat:
    """The prompt format the checkpoint family reads from its tokenizer (ChatML for the 34B release's
    markers, else vicuna); `family` is the loaded checkpoint's (families/), llava-hf's rule by default."""
    from ..network.families import LLAVA_HF

    name = (family or LLAVA_HF).chat_format_name(tokenizer.get_vocab())
    return {"vicuna": VICUNA, "chatml": CHATML}[name]


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


MIN_ANSWER_TOKENS = 16  # a prompt that leaves fewer for the answer is refused


def fit_prompt(tokenizer, fmt: ChatFormat, system: str, turns, question: str, *, n_video_tokens: int,
               context: int, max_new_tokens: int, min_answer_tokens: int = MIN_ANSWER_TOKENS,
               max_chars: int | None = None) -> FittedPrompt:
    """Drop the oldest turns (never the video) until prompt + video + answer fit the context window, and
    the prompt text fits max_chars (checked before tokenizing, so a huge history costs no tokenizer time).
    If the prompt alone leaves less than max_new_tokens, the answer budget shrinks; if it leaves less
    than min_answer_tokens, or the prompt without history is over max_chars, ValueError for the user."""
    turns = tuple(turns)
    for dropped in range(len(turns) + 1):
        kept = turns[dropped:]
        parts = fmt.parts(system, kept, question)
        text = "".join(t for t, _ in parts)
        if max_chars is not None and len(text) > max_chars:
            if kept:
                continue
            raise ValueError(f"The prompt (system prompt and question) is {len(text):,} characters long; "
                             f"the limit is {max_chars:,}.")
        ids = tuple(encode_prompt(tokenizer, parts))
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
