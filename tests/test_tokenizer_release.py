"""The tokenizer of a checkpoint in the released layout (tokenizer.json + tokenizer.model + a config naming
LlamaTokenizer) gives the ids the official demo got: tokenizer.json's own pipeline, BOS first. The
official prompts go through the real loader, the prompt builder and the chat engine; decoding matches
tokenizer.json's decoder; the 34B ChatML layout keeps working."""

import json

import pytest
import sentencepiece
from legacy_tokenizer import build_legacy_tokenizer, make_legacy_tiny, script_answer
from release_layout import official_ids, write_release_tokenizer
from tokenizers import Tokenizer
from videos import write_video

from pllava_demo.network.checkpoint import load_pllava
from pllava_demo.config import GenerationSettings
from pllava_demo.chat.engine import Engine
from pllava_demo.chat.prompt import CHATML, DEFAULT_SYSTEM, VICUNA, Turn, chat_format_for, fit_prompt
from pllava_demo.network.tiny import build_tokenizer, make_tiny

ANSWER = "Yes, the dog runs."
GREEDY = GenerationSettings(max_new_tokens=40)
TURNS = (Turn("Is there a dog?", ANSWER, raw=" " + ANSWER), Turn("  What  colour?", "A red ball.", raw=" A red ball."))
QUESTIONS = ["What does the person hold?", " Describe the video in detail.", "café naïve résumé 猫🐶", "a  b   c"]


# The release's config.json says "llava", which transformers 5 happens to list as a model whose tokenizer
# class is wrong on the Hub (so AutoTokenizer reads tokenizer.json as saved); a folder whose config.json
# has no model_type, or one not on that list, must get the same ids.
MODEL_TYPES = ["llava", None, "llava_next_video"]


def release_tiny(directory, model_type="llava", **kw):
    """The tiny legacy checkpoint with its tokenizer files in the release layout."""
    ckpt = make_legacy_tiny(directory)
    config = json.loads((ckpt / "config.json").read_text())
    config.pop("model_type")
    if model_type:
        config["model_type"] = model_type
    (ckpt / "config.json").write_text(json.dumps(config, indent=2))
    return write_release_tokenizer(ckpt, build_legacy_tokenizer(), bos="<s>", eos="</s>", **kw)


def fitted(tokenizer, fmt, system, turns, question):
    return fit_prompt(tokenizer, fmt, system, turns, question, n_video_tokens=16, context=4096, max_new_tokens=40)


@pytest.fixture(scope="module", params=MODEL_TYPES)
def release(tmp_path_factory, request):
    ckpt = release_tiny(tmp_path_factory.mktemp("release"), request.param)
    return ckpt, load_pllava(ckpt, device="cpu", quantization="none").tokenizer


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("release_video") / "v.mp4", n_frames=24, width=96, height=64)


def test_the_fixture_is_the_release_layout(release):
    ckpt, _ = release
    config = json.loads((ckpt / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "LlamaTokenizer" and config["legacy"] is True
    assert json.loads((ckpt / "added_tokens.json").read_text()) == {"<image>": 744, "<pad>": 745}
    sp = sentencepiece.SentencePieceProcessor(model_file=str(ckpt / "tokenizer.model"))
    assert sp.vocab_size() == 744 and sp.id_to_piece(3) == "<0x00>" and sp.is_byte(3)
    text = "The dog runs across the park, café 猫"  # the sentencepiece model agrees with tokenizer.json
    assert sp.encode(text) == official_ids(ckpt, text)[1:]


def test_the_loader_keeps_the_released_pipeline(release):
    ckpt, tok = release
    saved = json.loads((ckpt / "tokenizer.json").read_text())
    loaded = json.loads(tok.backend_tokenizer.to_str())
    for part in ("normalizer", "pre_tokenizer", "decoder", "model"):
        assert loaded[part] == saved[part], part
    assert tok.convert_tokens_to_ids(["<s>", "</s>", "<image>", "<pad>"]) == [1, 2, 744, 745]


@pytest.mark.parametrize("question", QUESTIONS)
@pytest.mark.parametrize("n_turns", [0, 1, 2])
def test_official_prompts_get_the_official_ids(release, question, n_turns):
    ckpt, tok = release
    turns = TURNS[:n_turns]
    fit = fitted(tok, VICUNA, DEFAULT_SYSTEM, turns, question)
    history = "".join(f"USER:{t.question} ASSISTANT:{t.raw}</s>" for t in turns)
    expected = f"{DEFAULT_SYSTEM} USER:<image>  " + history + f"USER:{question} ASSISTANT:"
    assert fit.text == expected
    assert list(fit.ids) == official_ids(ckpt, expected)
    assert list(fit.ids).count(744) == 1 and fit.ids[0] == 1


def test_decoding_matches_the_released_decoder_and_round_trips(release):
    ckpt, tok = release
    ref = Tokenizer.from_file(str(ckpt / "tokenizer.json"))
    prompt = fitted(tok, VICUNA, DEFAULT_SYSTEM, TURNS, QUESTIONS[2]).ids
    for skip in (False, True):
        assert tok.decode(prompt, skip_special_tokens=skip) == ref.decode(list(prompt), skip_special_tokens=skip)
    for text in [ANSWER, "café naïve résumé 猫🐶", "a  b   c", " lead"]:
        assert tok.decode(tok(text, add_special_tokens=False).input_ids) == text


def test_bos_comes_from_the_config_when_tokenizer_json_has_no_post_processor(tmp_path):
    ckpt = release_tiny(tmp_path, post_processor=False)  # as transformers 4 did; transformers 5 drops it
    tok = load_pllava(ckpt, device="cpu", quantization="none").tokenizer
    text = f"{DEFAULT_SYSTEM} USER:<image>  USER:q ASSISTANT:"
    assert tok(text).input_ids == official_ids(ckpt, text) and tok(text).input_ids[0] == 1


@pytest.mark.parametrize("model_type", MODEL_TYPES[:2])
def test_the_engine_prefills_the_official_ids(tmp_path, video, model_type):
    ckpt = release_tiny(tmp_path, model_type)
    ref = Tokenizer.from_file(str(ckpt / "tokenizer.json"))
    anchor = ref.encode("USER: ASSISTANT:", add_special_tokens=False).ids[-1]
    script_answer(ckpt, anchor, ref.encode(ANSWER, add_special_tokens=False).ids)
    engine = Engine(load_pllava(ckpt, device="cpu", quantization="none"))
    session, shape, n_video = engine.new_session(), (4, 2, 2), 16
    session.set_video(video, 4)
    q1, q2 = "Is there a dog?", "What does the man hold?"

    assert "".join(session.ask(q1, pooling_shape=shape, settings=GREEDY)) == ANSWER
    first = official_ids(ckpt, f"{DEFAULT_SYSTEM} USER:<image>  USER:{q1} ASSISTANT:")
    assert engine.stats["prefill_tokens"] == len(first) - 1 + n_video
    assert session.turns[0].raw == " " + ANSWER

    official = f"{DEFAULT_SYSTEM} USER:<image>  USER:{q1} ASSISTANT: {ANSWER}</s>USER:{q2} ASSISTANT:"
    fit = fitted(engine.tokenizer, engine.format, session.system, session.turns, q2)
    assert fit.text == official and list(fit.ids) == official_ids(ckpt, official)
    before = dict(engine.stats)
    assert "".join(session.ask(q2, pooling_shape=shape, settings=GREEDY)) == ANSWER
    seen = (engine.stats["prefill_tokens"] - before["prefill_tokens"]) + (
        engine.stats["reused_tokens"] - before["reused_tokens"])
    assert seen == len(official_ids(ckpt, official)) - 1 + n_video


@pytest.mark.parametrize("add_bos_token", [True, False])
def test_the_chatml_release_layout_still_works(tmp_path, add_bos_token):
    ckpt = make_tiny(tmp_path, chat_format="chatml")  # config.json says "llava"
    write_release_tokenizer(ckpt, build_tokenizer("chatml"), bos="<|startoftext|>", eos="<|endoftext|>",
                            add_bos_token=add_bos_token, legacy=None)
    loaded = load_pllava(ckpt, device="cpu", quantization="none")
    tok = loaded.tokenizer
    assert chat_format_for(tok) is CHATML
    turns = (Turn("is there a dog", "yes", raw="yes"),)
    fit = fitted(tok, CHATML, "be brief", turns, "what then")
    assert list(fit.ids) == official_ids(ckpt, fit.text)
    assert (fit.ids[0] == tok.convert_tokens_to_ids("<|startoftext|>")) is add_bos_token
    ref = Tokenizer.from_file(str(ckpt / "tokenizer.json"))
    assert tok.decode(fit.ids, skip_special_tokens=True) == ref.decode(list(fit.ids), skip_special_tokens=True)
