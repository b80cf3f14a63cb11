"""Test helper: a checkpoint's tokenizer files rewritten in the layout of the released PLLaVA folders
(ermu2001/pllava-7b and kin), and the ids the official demo got from them.

The release holds tokenizer.json, a sentencepiece tokenizer.model, a tokenizer_config.json naming
LlamaTokenizer (add_bos_token true, add_eos_token false), special_tokens_map.json and added_tokens.json
(<image>, <pad> after the base vocabulary). The tokenizer.model written here is built piece by piece
from tokenizer.json's vocabulary (byte pieces as BYTE, specials as CONTROL, merge order as scores), so
a loader that converts it instead of reading tokenizer.json still gets the same vocabulary.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json", "chat_template.jinja")


def _sentencepiece_model(vocab: dict[str, int], unk: str, control: set[str]) -> bytes:
    from sentencepiece import sentencepiece_model_pb2 as sp

    model = sp.ModelProto()
    kind = sp.ModelProto.SentencePiece
    for rank, (piece, _) in enumerate(sorted(vocab.items(), key=lambda kv: kv[1])):
        p = model.pieces.add()
        p.piece = piece
        if piece == unk:
            p.type = kind.UNKNOWN
        elif piece in control:
            p.type = kind.CONTROL
        elif re.fullmatch(r"<0x[0-9A-F]{2}>", piece):
            p.type = kind.BYTE
        else:
            p.type, p.score = kind.NORMAL, -float(rank)
    model.trainer_spec.model_type = sp.TrainerSpec.BPE
    model.trainer_spec.vocab_size = len(vocab)
    model.trainer_spec.byte_fallback = True
    model.normalizer_spec.name = "identity"
    model.normalizer_spec.add_dummy_prefix = True
    model.normalizer_spec.remove_extra_whitespaces = False
    return model.SerializeToString()


def write_release_tokenizer(folder: str | Path, fast, *, bos: str, eos: str, add_bos_token: bool = True,
                            legacy: bool | None = True, post_processor: bool = True) -> Path:
    """Replace the tokenizer files in `folder` by `fast`'s tokenizer in the release layout.
    post_processor=False leaves tokenizer.json without one (BOS then comes from the config only)."""
    folder = Path(folder)
    for name in TOKENIZER_FILES:
        (folder / name).unlink(missing_ok=True)
    data = json.loads(fast.backend_tokenizer.to_str())
    if not post_processor:
        data["post_processor"] = None
    (folder / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")

    base = data["model"]["vocab"]
    added = {t["content"]: t["id"] for t in data["added_tokens"]}
    (folder / "tokenizer.model").write_bytes(_sentencepiece_model(base, "<unk>", set(added) & set(base)))
    spec = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
    config = {
        "add_bos_token": add_bos_token, "add_eos_token": False,
        "added_tokens_decoder": {str(i): {"content": t, **spec} for t, i in sorted(added.items(), key=lambda x: x[1])},
        "bos_token": bos, "clean_up_tokenization_spaces": False, "eos_token": eos, "model_max_length": 4096,
        "pad_token": "<pad>" if "<pad>" in added else "<unk>", "padding_side": "left",
        "processor_class": "LlavaProcessor", "sp_model_kwargs": {}, "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>", "use_default_system_prompt": False,
    }
    if legacy is not None:
        config["legacy"] = legacy
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": bos, "eos_token": eos, "pad_token": config["pad_token"], "unk_token": "<unk>"}), encoding="utf-8")
    (folder / "added_tokens.json").write_text(json.dumps(
        {t: i for t, i in added.items() if t not in base}), encoding="utf-8")
    return folder


def official_ids(folder: str | Path, text: str) -> list[int]:
    """The ids transformers 4's LlamaTokenizerFast gave the official demo: tokenizer.json's own pipeline
    (control tokens split out, each stretch normalised on its own), BOS first when add_bos_token."""
    from tokenizers import Tokenizer

    folder = Path(folder)
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    ids = tok.encode(text, add_special_tokens=False).ids
    return [tok.token_to_id(config["bos_token"])] + ids if config.get("add_bos_token", True) else ids
