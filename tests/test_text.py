"""Text at the model's edges, with a tokenizer in the released legacy LLaMA layout: prompt ids equal the
official template's, text a person types never becomes a control token, and streamed answers add up
to the final text with no U+FFFD for emoji, CJK, accents and runs of byte pieces."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from pllava_demo.chat.prompt import CHATML, DEFAULT_SYSTEM, VICUNA, Turn, fit_prompt
from pllava_demo.chat.tokens import TextStream, encode_pieces, encode_prompt

CONTROL = ["<image>", "</s>", "<s>", "<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]
SAMPLES = {
    "emoji with ZWJ": "Two coders 👩‍💻👨‍💻 and a family 👨‍👩‍👧 wave 👋🏽!",
    "Chinese": "视频里有一只狗在公园里跑。",
    "Japanese": "犬が公園を走っています。かわいいですね",
    "Korean": "개가 공원에서 뛰고 있습니다.",
    "accented": "Le café est très bon, déjà vu à Zürich — naïve résumé.",
    "mixed": "the dog runs 🐕 across the park 公园 ok",
}


def rendered(fmt, system, turns, question) -> str:
    """The prompt's text as the model reads it: its parts joined (what fit_prompt's `text` is)."""
    return "".join(text for text, _ in fmt.parts(system, turns, question))


def stream_all(tok, ids, stops=VICUNA.stop_strings, anchor=None):
    stream = TextStream(tok, stops, anchor_id=anchor)
    pieces = []
    for i in ids:
        pieces.append(stream.push(i))
        if stream.stopped:
            break
    pieces.append(stream.finish())
    return pieces, stream


def official_ids(tok, text):
    return tok(text, add_special_tokens=True).input_ids


# -- prompts ------------------------------------------------------------------------------------------
def test_the_legacy_fixture_is_the_released_layout(legacy_tokenizer):
    tok = legacy_tokenizer
    backend = tok.backend_tokenizer
    assert backend.pre_tokenizer is None and "Prepend" in str(backend.normalizer)
    assert [tok.convert_ids_to_tokens(i) for i in (0, 1, 2, 3, 258)] == ["<unk>", "<s>", "</s>", "<0x00>", "<0xFF>"]
    assert tok.convert_tokens_to_ids(["<image>", "<pad>"]) == [len(tok) - 2, len(tok) - 1]
    words = tok.convert_ids_to_tokens(tok("the person is walking", add_special_tokens=False).input_ids)
    assert words == ["▁the", "▁person", "▁is", "▁walking"]
    assert tok.convert_ids_to_tokens(tok("猫", add_special_tokens=False).input_ids) == ["▁", "<0xE7>", "<0x8C>", "<0xAB>"]


def test_follow_up_prompt_is_the_official_string_leading_space_kept():
    turns = [Turn("q1", "Yes", raw=" Yes")]
    assert rendered(VICUNA, "SYS", turns, "q2") == "SYS USER:<image>  USER:q1 ASSISTANT: Yes</s>USER:q2 ASSISTANT:"


@pytest.mark.parametrize("which", ["legacy", "metaspace", "chatml"])
def test_ordinary_text_keeps_the_official_ids(which, legacy_tokenizer, tiny_official, tiny_chatml):
    tok = {"legacy": legacy_tokenizer, "metaspace": AutoTokenizer.from_pretrained(str(tiny_official)),
           "chatml": AutoTokenizer.from_pretrained(str(tiny_chatml))}[which]
    fmt = CHATML if which == "chatml" else VICUNA
    turns = [Turn("What is the dog doing?", "It runs.", raw=" It runs."), Turn("猫 café 🙂?", "No", raw=" No")]
    for system, question in [(DEFAULT_SYSTEM, "Describe the video."), ("", "what 公园 👩‍💻 then"), ("S", "x")]:
        parts = fmt.parts(system, turns, question)
        want = official_ids(tok, rendered(fmt, system, turns, question))
        assert encode_prompt(tok, parts) == want
        assert encode_pieces(tok, parts) == want  # the piecewise path, used only for control-token text


@pytest.mark.parametrize("where", ["question", "system", "history"])
def test_control_tokens_typed_by_a_person_are_plain_text(where, legacy_tokenizer, tiny_chatml):
    for tok, fmt in [(legacy_tokenizer, VICUNA), (AutoTokenizer.from_pretrained(str(tiny_chatml)), CHATML)]:
        typed = "look " + " ".join(CONTROL) + " here"
        system, turns, question = "SYS", [Turn("q", "a")], "what?"
        if where == "question":
            question = typed
        elif where == "system":
            system = typed
        else:
            turns = [Turn(typed, typed)]
        ids = fit_prompt(tok, fmt, system, turns, question, n_video_tokens=10, context=4096, max_new_tokens=16).ids
        clean = fit_prompt(tok, fmt, "SYS", [Turn("q", "a")], "what?", n_video_tokens=10, context=4096,
                           max_new_tokens=16).ids
        # (<unk> is left out: the tiny ChatML vocabulary has no "<" and spells it <unk>, as plain text)
        specials = {tok.convert_tokens_to_ids(t) for t in CONTROL if t in tok.get_vocab()} - {tok.unk_token_id}
        count = {s: ids.count(s) for s in specials}
        assert count == {s: clean.count(s) for s in specials}, "only the template's own control tokens"
        assert ids.count(tok.convert_tokens_to_ids("<image>")) == 1
        if tok is legacy_tokenizer:  # byte fallback spells every character
            assert typed in tok.decode(ids, skip_special_tokens=False)


# -- streaming ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SAMPLES)
def test_non_english_answers_stream_whole(name, legacy_tokenizer):
    tok, text = legacy_tokenizer, SAMPLES[name]
    ids = tok(text + " and more words", add_special_tokens=False).input_ids
    assert any(tok.convert_ids_to_tokens(i).startswith("<0x") for i in ids), "the sample needs byte pieces"
    pieces, stream = stream_all(tok, ids)
    assert "".join(pieces) == stream.text == text + " and more words"
    assert not any("\ufffd" in p for p in pieces)


def test_zwj_sequence_arrives_in_one_piece(legacy_tokenizer):
    tok = legacy_tokenizer
    pieces, _ = stream_all(tok, tok("ok 👩‍💻", add_special_tokens=False).input_ids)
    assert "💻" in next(p for p in pieces if "\u200d" in p)


def test_bytes_that_never_form_a_character_are_dropped_not_shown(legacy_tokenizer):
    tok = legacy_tokenizer
    byte = {b: tok.convert_tokens_to_ids(f"<0x{b:02X}>") for b in range(256)}
    zhong = [byte[b] for b in "中".encode()]
    word = tok("dog", add_special_tokens=False).input_ids
    ids = zhong + [byte[0xFF]] + zhong + [byte[0xE4], byte[0xB8]] + word + zhong[:2]
    pieces, stream = stream_all(tok, ids)
    assert "".join(pieces) == stream.text == "中中 dog"
    assert stream.raw == "中中 dog"  # no "▁" piece first: in context too the answer starts at once


def test_stop_string_after_cjk_cuts_and_raw_keeps_the_leading_space(legacy_tokenizer):
    tok = legacy_tokenizer
    anchor = tok("ASSISTANT:", add_special_tokens=False).input_ids[-1]
    ids = tok("你好 world USER: next", add_special_tokens=False).input_ids
    pieces, stream = stream_all(tok, ids, anchor=anchor)
    assert stream.stopped and "".join(pieces) == stream.text == "你好 world"
    assert stream.raw == " 你好 world"


def _oracle(tok, ids, stops):
    """The legacy decoder (Replace ▁, ByteFallback, Fuse, Strip one leading space), written out here with
    invalid bytes dropped instead of shown as U+FFFD, then cut at the first stop string."""
    out, run = [], bytearray()
    for piece in tok.convert_ids_to_tokens([i for i in ids if i not in tok.all_special_ids]):
        if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
            run.append(int(piece[3:5], 16))
            continue
        out.append(run.decode("utf-8", "ignore"))
        run = bytearray()
        out.append(piece.replace("▁", " "))
    out.append(run.decode("utf-8", "ignore"))
    text = "".join(out).replace("\ufffd", "")
    text = text[1:] if text.startswith(" ") else text
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    return text[:cut].strip()


BYTES = st.integers(3, 258)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_token_ids_stream_to_the_final_text_without_replacement_chars(legacy_tokenizer, data):
    tok = legacy_tokenizer
    ids = data.draw(st.lists(st.one_of(BYTES, BYTES, st.integers(0, len(tok) - 1)), max_size=40))
    pieces, stream = stream_all(tok, ids)
    assert not any("\ufffd" in p for p in pieces)
    assert "".join(pieces) == stream.text == _oracle(tok, ids, VICUNA.stop_strings)


ALPHABET = st.sampled_from(list("the dog runs 中文字日本語のカナ한국어éàüñ ") + ["👩‍💻", "🐕", "👋🏽", "\u200d", "USER:", "</s>"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.lists(ALPHABET, max_size=30).map("".join))
def test_random_text_streams_back_exactly(legacy_tokenizer, text):
    tok = legacy_tokenizer
    ids = tok(text, add_special_tokens=False, split_special_tokens=True).input_ids
    pieces, stream = stream_all(tok, ids)
    cut = min((i for i in (text.find(s) for s in VICUNA.stop_strings) if i >= 0), default=len(text))
    assert not any("\ufffd" in p for p in pieces)
    assert "".join(pieces) == stream.text == text[:cut].strip()
