"""The official evaluation prompts and answer cuts (magic-research/PLLaVA @6f49fd2, tasks/eval), as data.

A `Protocol` is one official conversation template with what the official script adds around it: the
text after the question, the assistant's prefill, the greedy token limit, the stop keywords, and how the
answer is cut out of the decoded output. `parts(question)` gives the prompt as (text, plain) parts for
tokens.encode_prompt: the template's own text may hold control tokens (`<image>`), a question never.

Official assembly (eval_utils.Conversation.get_prompt with MM_ALONE, `user_query(..., is_mm=True)`):
    system + sep_user + user_role + "<image>\\n" + sep_user + user_role + query + sep_user + assistant_role + prefill
with `query = question + " " + post_query` when the script gives a post-query prompt. MM_INTERLEAF
(the VideoQA template) puts the image in the question's own turn: `"<image>\\n" + " " + query`.

Knows strings only: no tokenizer, tensors, model or video.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError

IMAGE = "<image>"

SYSTEM_MVBENCH = (
    "Carefully watch the video and pay attention to the cause and sequence of events, the detail and movement of "
    "objects, and the action and pose of persons. Based on your observations, select the best option that "
    "accurately addresses the question.\n"
)
SYSTEM_VCG = (
    "You are Video-ChatGPT, a large vision-language assistant. "
    "You are able to understand the video content that the user provides, and assist the user with a variety of "
    "tasks using natural language."
    "Follow the instructions carefully and explain your answers in detail based on the provided video."
)
VIDEOQA_PRE = (
    "The input consists of a sequence of key frames from a video. Answer the question concisely first and followed "
    "by significant events, characters, or objects that appear throughout the frames. Question:"
)
MVBENCH_POST = "\nOnly give the best option."
MVBENCH_PREFILL = "Best option:("


@dataclass(frozen=True)
class Roles:
    """A chat spelling of the official templates: vicuna-style for 7B/13B, ChatML (`_llavanext`) for 34B."""

    user: str
    assistant: str
    user_sep: str
    assistant_sep: str
    split_tag: str  # what the official answer cut splits the decoded output on


VICUNA_ROLES = Roles("USER: ", "ASSISTANT:", " ", "</s>", "ASSISTANT:")
# pllava_answer splits ChatML output on "<|im_start|> assistant\n" (with that space), as decoded text shows it
CHATML_ROLES = Roles("<|im_start|>user\n", "<|im_start|>assistant\n", "<|im_end|>\n", "<|im_end|>\n",
                     "<|im_start|> assistant\n")


@dataclass(frozen=True)
class Protocol:
    name: str
    system: str
    roles: Roles
    interleaf: bool = False  # MM_INTERLEAF: the image opens the question's turn instead of its own
    pre_query: str | None = None
    post_query: str | None = None
    prefill: str | None = None  # the assistant's answer starts with this (official answer_prompt)
    return_prefix: str | None = None  # put back in front of the cut answer (official return_prompt)
    max_new_tokens: int = 100
    stop_keywords: tuple[str, ...] = ()  # generation stops once ALL of them are in the new text (official rule)
    strip_after_prefill: bool = False  # infer_videoqabench strips the cut answer; infer_mvbench does not

    def query(self, question: str) -> str:
        q = question
        if self.post_query is not None:
            q = f"{q} {self.post_query}"
        if self.pre_query is not None:
            q = f"{self.pre_query} {q}"
        return q

    def parts(self, question: str) -> list[tuple[str, bool]]:
        """The prompt up to the model's first token, as (text, plain) parts; "".join is `text`."""
        r, T, P = self.roles, False, True
        out: list[tuple[str, bool]] = []
        if self.system:
            out += [(self.system + r.user_sep, T)]  # fixed by the protocol (ChatML's holds control tokens)
        if self.interleaf:
            out += [(r.user + IMAGE + "\n" + " ", T)]
        else:
            out += [(r.user + IMAGE + "\n" + r.user_sep + r.user, T)]
        out += [(self.query(question), P), (r.user_sep + r.assistant, T)]
        if self.prefill is not None:
            out += [(self.prefill, T)]
        return out

    def text(self, question: str) -> str:
        return "".join(t for t, _ in self.parts(question))

    def cut(self, decoded: str) -> str:
        """The answer as the official script records it, from the decoded prompt + answer (special tokens
        skipped): the text after the last assistant tag, less the end separator, stripped; then what
        follows the prefill, with `return_prefix` in front."""
        text = decoded.split(self.roles.split_tag)[-1].removesuffix(self.roles.assistant_sep).strip()
        if self.prefill is not None:
            marker = self.prefill.strip("\n")
            text = "".join(text.split(marker)[1:])
            if self.strip_after_prefill:
                text = text.strip()
        if self.return_prefix is not None:
            text = self.return_prefix + text
        return text


def _protocols() -> dict[str, Protocol]:
    out = {}
    for suffix, roles in (("", VICUNA_ROLES), ("-chatml", CHATML_ROLES)):
        # eval_mvbench_llavanext keeps the VCG system prompt (official, sic)
        out["mvbench" + suffix] = Protocol("mvbench" + suffix, SYSTEM_MVBENCH if not suffix else SYSTEM_VCG, roles,
                                           post_query=MVBENCH_POST, prefill=MVBENCH_PREFILL, return_prefix="(")
        out["vcg" + suffix] = Protocol("vcg" + suffix, SYSTEM_VCG, roles, stop_keywords=("###", "USER"))
        out["videoqa" + suffix] = Protocol(
            "videoqa" + suffix, "" if not suffix else "<|im_start|>system\nAnswer the question.", roles,
            interleaf=True, pre_query=VIDEOQA_PRE, post_query="\n", prefill="\nAnswer: In the video,",
            strip_after_prefill=True)
    return out


PROTOCOLS = _protocols()


def protocol_for(kind: str, chat_format: str) -> Protocol:
    """The official template of a benchmark kind ("mvbench", "vcg", "videoqa") for a checkpoint whose chat
    format is "vicuna" (7B/13B) or "chatml" (34B)."""
    name = kind + ("-chatml" if chat_format == "chatml" else "")
    if name not in PROTOCOLS:
        raise InputError(f"Unknown protocol {kind!r}; the protocols are mvbench, vcg, videoqa.")
    return PROTOCOLS[name]


def mvbench_question(question: str, candidates: list[str] | tuple[str, ...], answer: str | None) -> tuple[str, str | None]:
    """MVBench's qa_template: "Question: ...\\nOptions:\\n(A) ...\\n(B) ..." with trailing whitespace stripped,
    and the answer as "(B) text" (None when no answer is given)."""
    text = f"Question: {question}\nOptions:\n"
    label = None
    for i, c in enumerate(candidates):
        text += f"({chr(ord('A') + i)}) {c}\n"
        if answer is not None and c == answer:
            label = f"({chr(ord('A') + i)}) {answer}"
    return text.rstrip(), label
