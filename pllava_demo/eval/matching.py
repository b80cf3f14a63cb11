"""The official multiple-choice answer rule (tasks/eval/mvbench/__init__.py `check_ans`), restated.

Both strings are lower-cased and split on single spaces; the prediction's first word is its option, the
answer's first word ("(b)") is the right option. A prediction is right when its option, with full stops
removed, lies inside the right option ("b", "b)", "(b)"), or the right option lies inside it ("(b)yes");
a first word with no letter a-g is not an answer at all. Quirks kept on purpose, because the reported
numbers were made with them: "Best option:(B" is wrong (its first word is "best"), and so is " (B)" (its
first word is empty).

Knows strings only.
"""

from __future__ import annotations

_LETTERS = set("abcdefgABCDEFG")


def follows_instructions(pred: str) -> bool:
    """False where the official script prints "model doesn't follow instructions"."""
    first = pred.lower().split(" ")[0]
    return any(c in _LETTERS for c in first)


def official_match(pred: str, answer: str) -> bool:
    """pred: the model's cut answer ("(B) a dog"); answer: the right option as "(B) text"."""
    option = pred.lower().split(" ")[0]
    right = answer.lower().split(" ")[0]
    if not follows_instructions(pred):
        return False
    return option.replace(".", "") in right or right in option


def option_label(index: int, text: str) -> str:
    """The right answer in the form the rule compares against: "(C) text"."""
    return f"({chr(ord('A') + index)}) {text}"
