"""The checkpoint's tokenizer, loaded the way the official release's own code read it (see
`load_tokenizer`), and checked against config.json's image token.

It knows tokenizer files and transformers' tokenizer classes; it does not know the model's weights,
devices nor the chat format (chat/prompt.py reads that from the tokenizer's vocabulary).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..config import VideoModelSpec
from ..errors import CheckpointError

log = logging.getLogger(__name__)


def load_tokenizer(path: Path, spec: VideoModelSpec, notes: list[str]):
    """The checkpoint's tokenizer, checked against the config; None (with a note) when the folder has
    none: the network itself still runs on token ids, but chatting needs a tokenizer.

    A tokenizer.json is used exactly as saved, as transformers 4 (the official demo) did. Transformers 5's
    AutoTokenizer does so only when config.json's model_type is on its list of models with a wrong
    tokenizer_class ("llava" is); otherwise it rebuilds a LlamaTokenizer with its own pipeline (a Metaspace
    pre-tokenizer, not the release's Prepend + Replace normaliser), one "▁" fewer after <image> and </s>.
    Transformers 4's LlamaTokenizerFast also set BOS/EOS from add_bos_token/add_eos_token (default on/off),
    which transformers 5 ignores next to a tokenizer.json. A folder without tokenizer.json, or whose config
    sets add_prefix_space (transformers 4 then converted tokenizer.model), goes through AutoTokenizer."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if not any((path / f).exists() for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
        notes.append(f"{path} has no tokenizer files: the model runs on token ids only (no chat).")
        log.warning(notes[-1])
        return None
    try:
        config_file = path / "tokenizer_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.exists() else {}
        if not isinstance(config, dict):
            raise ValueError("tokenizer_config.json is not a JSON object")
        if (path / "tokenizer.json").exists() and config.get("add_prefix_space") is None:
            tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path))
            if config.get("tokenizer_class") in ("LlamaTokenizer", "LlamaTokenizerFast"):
                tokenizer.add_bos_token = bool(config.get("add_bos_token", True))
                tokenizer.add_eos_token = bool(config.get("add_eos_token", False))
        else:
            tokenizer = AutoTokenizer.from_pretrained(str(path))
    except Exception as e:  # tokenizer classes raise many types; the user needs one line
        raise CheckpointError(f"The tokenizer in {path} could not be loaded: {str(e).splitlines()[0][:200]}") from e
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    if image_id != spec.image_token_index:
        raise CheckpointError(
            f"The tokenizer maps '<image>' to {image_id} but config.json says image_token_index "
            f"{spec.image_token_index}."
        )
    return tokenizer
