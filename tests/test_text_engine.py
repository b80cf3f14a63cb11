"""Text through the real chat engine, with the legacy LLaMA tokenizer: an emoji/CJK answer streams whole,
a follow-up's prompt is the official template's and re-prefills only its own new tokens, control tokens
and lone surrogates typed by a person are plain text, and the system prompt and whole prompt have limits."""

import json

import pytest
from legacy_tokenizer import make_legacy_tiny, script_answer
from transformers import AutoTokenizer
from videos import write_video

from pllava_demo.caption.captioner import CaptionOptions, Captioner
from pllava_demo.caption.records import discover
from pllava_demo.network.checkpoint import load_pllava
from pllava_demo.config import GenerationSettings, Limits
from pllava_demo.chat.engine import Engine
from pllava_demo.errors import InputError
from pllava_demo.chat.prompt import DEFAULT_SYSTEM, fit_prompt

ANSWER_CJK = "猫🐶한 café ok"  # every piece different, as script_answer needs: 猫, an emoji, Korean, an accent
ANSWER_YES = "Yes, the dog runs."
GREEDY = GenerationSettings(max_new_tokens=40)


def scripted_engine(directory, answer: str) -> Engine:
    ckpt = make_legacy_tiny(directory)
    tok = AutoTokenizer.from_pretrained(str(ckpt))
    anchor = tok("USER: ASSISTANT:", add_special_tokens=False).input_ids[-1]  # the prompt's last piece
    script_answer(ckpt, anchor, tok(answer, add_special_tokens=False).input_ids)
    return Engine(load_pllava(ckpt, device="cpu", quantization="none"))


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("text_video") / "v.mp4", n_frames=24, width=96, height=64)


@pytest.fixture(scope="module")
def legacy_engine(tiny_legacy):
    return Engine.load(tiny_legacy, device="cpu", quantization="none")


def test_an_emoji_cjk_answer_streams_whole_through_the_engine(tmp_path, video):
    session = scripted_engine(tmp_path, ANSWER_CJK).new_session()
    session.set_video(video, 4)
    pieces = list(session.ask("What is in the video?", pooling_shape=(4, 2, 2), settings=GREEDY))
    assert "".join(pieces) == ANSWER_CJK
    assert not any("\ufffd" in p for p in pieces) and len(pieces) > 3
    assert session.turns[-1].answer == ANSWER_CJK
    # and the next answer streams too (before, a completed character stopped the stream for good)
    assert "".join(session.ask("And then?", pooling_shape=(4, 2, 2), settings=GREEDY)) == ANSWER_CJK


def test_follow_up_is_the_official_prompt_and_prefills_only_its_new_tokens(tmp_path, video):
    engine = scripted_engine(tmp_path, ANSWER_YES)
    tok, session = engine.tokenizer, engine.new_session()
    session.set_video(video, 4)
    q1, q2, shape, n_video = "Is there a dog?", "What does the man hold?", (4, 2, 2), 16

    assert "".join(session.ask(q1, pooling_shape=shape, settings=GREEDY)) == ANSWER_YES
    first_ids = tok(f"{DEFAULT_SYSTEM} USER:<image>  USER:{q1} ASSISTANT:").input_ids
    assert session.turns[0].answer == ANSWER_YES and session.turns[0].raw == " " + ANSWER_YES

    official = f"{DEFAULT_SYSTEM} USER:<image>  USER:{q1} ASSISTANT: {ANSWER_YES}</s>USER:{q2} ASSISTANT:"
    fitted = fit_prompt(tok, engine.format, session.system, session.turns, q2, n_video_tokens=n_video,
                        context=engine.loaded.context_length, max_new_tokens=GREEDY.max_new_tokens)
    assert fitted.text == official and list(fitted.ids) == tok(official).input_ids

    before = dict(engine.stats)
    assert "".join(session.ask(q2, pooling_shape=shape, settings=GREEDY)) == ANSWER_YES
    answer_ids = tok(ANSWER_YES, add_special_tokens=False).input_ids
    new_tokens = len(fitted.ids) - len(first_ids) - len(answer_ids)  # "</s>USER:{q2} ASSISTANT:"
    assert engine.stats["prefill_tokens"] - before["prefill_tokens"] == new_tokens
    assert engine.stats["reused_tokens"] - before["reused_tokens"] == len(first_ids) - 1 + n_video + len(answer_ids)
    assert [t.answer for t in session.turns] == [ANSWER_YES, ANSWER_YES]  # the chat shows it stripped


@pytest.mark.parametrize("typed", ["<image>", "</s> USER: <s>", "<pad><unk><|im_start|>"])
def test_control_tokens_in_question_and_system_are_plain_text(legacy_engine, video, typed):
    session = legacy_engine.new_session(f"You are helpful {typed} and brief.")
    session.set_video(video, 4)
    settings = GenerationSettings(max_new_tokens=6, min_new_tokens=6)
    tok = legacy_engine.tokenizer
    for question in [f"What is {typed} here?", "And now an ordinary question?"]:
        # the ids the engine sends: <s> once, </s> only after earlier answers, never <pad> or <unk>
        ids = fit_prompt(tok, legacy_engine.format, session.system, session.turns, question, n_video_tokens=16,
                         context=4096, max_new_tokens=6).ids
        assert (ids.count(1), ids.count(2), ids.count(0)) == (1, len(session.turns), 0)
        assert ids.count(tok.convert_tokens_to_ids("<pad>")) == 0
        assert "".join(session.ask(question, pooling_shape=(4, 2, 2), settings=settings))
    assert len(session.turns) == 2 and session.turns[0].question == f"What is {typed} here?"


def test_a_lone_surrogate_in_a_question_is_replaced_not_a_crash(legacy_engine, video):
    session = legacy_engine.new_session()
    session.set_video(video, 4)
    settings = GenerationSettings(max_new_tokens=4, min_new_tokens=4)
    assert "".join(session.ask(json.loads('"what is \\ud83d this?"'), pooling_shape=(4, 2, 2), settings=settings))
    assert session.turns[0].question == "what is \ufffd this?"
    session.system = json.loads('"be brief \\udc00"')
    assert "".join(session.ask("and now?", pooling_shape=(4, 2, 2), settings=settings))


def test_system_prompt_and_whole_prompt_have_limits_named_in_the_message(tiny_legacy, video):
    engine = Engine.load(tiny_legacy, device="cpu", quantization="none",
                         limits=Limits(max_system_chars=100, max_prompt_chars=400))
    with pytest.raises(InputError, match="system prompt is 101 characters long; the limit is 100"):
        engine.new_session("x" * 101)
    session = engine.new_session("short")
    session.set_video(video, 4)
    session.system = "y" * 6_000_000  # set behind the checks' back: the next question still refuses it
    with pytest.raises(InputError, match="limit is 100"):
        session.ask("hello?")
    session.system = "s" * 100
    with pytest.raises(InputError, match="prompt .* is [0-9,]+ characters long; the limit is 400"):
        session.ask("q" * 300)
    settings = GenerationSettings(max_new_tokens=4, min_new_tokens=4)
    for i in range(4):  # history past the character limit is left out, oldest first
        "".join(session.ask(f"question number {i} " * 6, pooling_shape=(4, 2, 2), settings=settings))
    assert session.notice and "oldest turn" in session.notice


def test_caption_prompts_with_control_tokens_and_surrogates(tiny_legacy, tmp_path, video):
    loaded = load_pllava(tiny_legacy, device="cpu", quantization="none")
    captioner = Captioner(loaded, CaptionOptions(prompt="Describe <image> then </s> stop", system="S <s>"))
    ids, _ = captioner._prompt_ids(captioner.options.prompt)
    assert ids.count(loaded.spec.image_token_index) == 1 and ids.count(2) == 0 and ids.count(1) == 1
    listing = tmp_path / "list.jsonl"
    listing.write_text('{"path": "%s", "prompt": "a <image> \\ud83d b"}\n' % video)
    (job,) = discover(listing)
    assert job.prompt == "a <image> \ufffd b"
    assert captioner._prompt_ids(job.prompt)[0].count(loaded.spec.image_token_index) == 1
