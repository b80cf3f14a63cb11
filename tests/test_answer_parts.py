"""A long answer's paragraph is shown in parts: cut only at spaces of plain text lines, never inside a
time link, and the parts already shown stay the same while the answer grows."""

from pllava_demo.ui.answer_parts import PART_CHARS, in_parts
from pllava_demo.ui.time_links import link_times


def _long_answer(words: int = 900) -> str:
    said = ["The ball rolls", "left.", "It stops at 0:12 and", "turns", "*red*", "[x](y)!", "again?", "slowly"]
    return link_times(" ".join(said[k % len(said)] for k in range(words)), 20.0)


def test_a_long_paragraph_is_cut_into_parts_only_where_a_space_was():
    answer = _long_answer()
    shown = in_parts(answer)
    parts = shown.split("\n\n")
    assert len(parts) > 3
    assert " ".join(parts) == answer  # each cut is one space made a paragraph break, nothing else changed
    assert all(len(p) >= PART_CHARS for p in parts[:-1])
    assert all(p.count("[0:12](#t=12)") == p.count("[0:12]") for p in parts)  # no link cut in two
    assert all(p[0].isalpha() for p in parts)  # a part never starts as a list, a heading or a quote


def test_parts_already_shown_stay_the_same_while_the_answer_grows():
    answer = _long_answer()
    whole = in_parts(answer).split("\n\n")
    for n in range(PART_CHARS, len(answer), 97):
        growing = in_parts(answer[:n]).split("\n\n")
        assert growing[:-1] == whole[:len(growing) - 1]


def test_short_lines_and_lines_with_block_markup_are_left_whole():
    long = "word " * (PART_CHARS // 2)
    for line in ("- " + long, "1. " + long, "2) " + long, "# " + long, "    " + long, "| " + long, "> " + long):
        assert in_parts(line) == line
    assert in_parts("short line\n\nanother") == "short line\n\nanother"
    assert in_parts("intro\n" + long + "\n- item").startswith("intro\n")
    assert in_parts(long).count("\n\n") >= 1
