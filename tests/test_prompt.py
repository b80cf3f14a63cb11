"""Prompt text equals the official demo's, history fits the window, and answers keep every letter."""

import pytest
from transformers import AutoTokenizer

from pllava_demo.chat.prompt import CHATML, VICUNA, TextStream, Turn, chat_format_for, fit_prompt


def rendered(fmt, system, turns, question) -> str:
    """The prompt's text as the model reads it: its parts joined (what fit_prompt's `text` is)."""
    return "".join(text for text, _ in fmt.parts(system, turns, question))


def test_vicuna_prompt_is_the_official_plain_demo_string():
    # Official conv_plain_v1 + demo: system + " ", video turn "USER:" + "<image> " + " ", then turns.
    text = rendered(VICUNA, "SYS", [Turn("q1", "a1")], "q2")
    assert text == "SYS USER:<image>  USER:q1 ASSISTANT:a1</s>USER:q2 ASSISTANT:"
    assert rendered(VICUNA, "", [], "q") == "USER:<image>  USER:q ASSISTANT:"


def test_chatml_prompt_for_34b():
    text = rendered(CHATML, "SYS", [Turn("q1", "a1")], "q2")
    assert text == ("<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\n<image>\n<|im_end|>\n"
                    "<|im_start|>user\nq1<|im_end|>\n<|im_start|>assistant\na1<|im_end|>\n"
                    "<|im_start|>user\nq2<|im_end|>\n<|im_start|>assistant\n")


def test_format_is_chosen_from_the_checkpoint(tiny_official, tiny_chatml):
    assert chat_format_for(AutoTokenizer.from_pretrained(str(tiny_official))) is VICUNA
    assert chat_format_for(AutoTokenizer.from_pretrained(str(tiny_chatml))) is CHATML


def test_oldest_turns_dropped_first_never_the_video(tiny_official):
    tok = AutoTokenizer.from_pretrained(str(tiny_official))
    turns = [Turn(f"question number {i} " * 20, f"answer {i} " * 20) for i in range(10)]
    fitted = fit_prompt(tok, VICUNA, "SYS", turns, "last question", n_video_tokens=2304, context=4096,
                        max_new_tokens=512)
    assert 0 < fitted.dropped_turns < 10
    assert fitted.turns == tuple(turns[fitted.dropped_turns:])
    assert "<image>" in fitted.text and "question number 9" in fitted.text and "question number 0 " not in fitted.text
    assert fitted.n_prompt_tokens + 512 <= 4096


def test_question_too_long_for_the_window_is_a_message(tiny_official):
    tok = AutoTokenizer.from_pretrained(str(tiny_official))
    with pytest.raises(ValueError, match="context window"):
        fit_prompt(tok, VICUNA, "", [], "word " * 3000, n_video_tokens=2304, context=4096, max_new_tokens=100)


def test_answer_keeps_trailing_letters_the_official_rstrip_ate(tiny_official):
    tok = AutoTokenizer.from_pretrained(str(tiny_official))
    ids = tok("the man runs across the street yes", add_special_tokens=False).input_ids
    stream = TextStream(tok, VICUNA.stop_strings)
    pieces = [stream.push(i) for i in ids] + [stream.finish()]
    assert "".join(pieces) == stream.text == "the man runs across the street yes"  # official rstrip("</s>") -> "ye"


def test_stream_cuts_at_a_new_user_turn_and_holds_back_partial_markers(tiny_official):
    tok = AutoTokenizer.from_pretrained(str(tiny_official))
    ids = tok("a dog runs USER: what next", add_special_tokens=False).input_ids
    stream = TextStream(tok, VICUNA.stop_strings)
    sent = ""
    for i in ids:
        sent += stream.push(i)
        assert "U" not in sent  # never shows a marker it later has to take back
        if stream.stopped:
            break
    sent += stream.finish()
    assert stream.stopped and sent == stream.text == "a dog runs"
