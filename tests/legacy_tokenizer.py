"""Test helpers: a tokenizer in the released legacy LLaMA layout, a tiny checkpoint that uses it, and
weights that make that checkpoint answer a chosen text (so streaming is tested on known answers).

The tokenizer is built with the `tokenizers` library as the release's tokenizer.json is laid out: BPE
with byte_fallback and the 256 byte pieces <0x00>..<0xFF> right after <unk> <s> </s>, a
Prepend("▁") + Replace(" ", "▁") normaliser, no pre-tokenizer, the Replace / ByteFallback / Fuse /
Strip decoder, and <image> and <pad> added after the base vocabulary. The merges are learnt from a
little English, so ordinary words are one or a few pieces while emoji and CJK fall back to bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pllava_demo.chat.prompt import DEFAULT_SYSTEM
from pllava_demo.network.tiny import CORPUS, make_tiny

WORDS = CORPUS + " " + DEFAULT_SYSTEM + (
    " USER: ASSISTANT: Yes, it is. No, it is not. The dog runs across the park and the man laughs. "
    "What does the person hold? A red ball. Describe the video in detail. café naïve résumé déjà vu ")


def build_legacy_tokenizer(pieces: int = 700):
    """A PreTrainedTokenizerFast in the released legacy LLaMA layout (see the module docstring)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    # Learn merges on words (as sentencepiece does: "▁" only ever starts a piece), then lay the vocabulary
    # out as the release does and drop the pre-tokenizer.
    learner = Tokenizer(models.BPE(unk_token="<unk>"))
    learner.pre_tokenizer = pre_tokenizers.Metaspace()
    learner.train_from_iterator([WORDS] * 4, trainers.BpeTrainer(
        vocab_size=pieces, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False))
    learnt = json.loads(learner.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab.update({f"<0x{b:02X}>": 3 + b for b in range(256)})
    for piece in sorted(learnt["vocab"], key=learnt["vocab"].get):
        vocab.setdefault(piece, len(vocab))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learnt["merges"]]

    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<unk>", clean_up_tokenization_spaces=False)
    fast.add_special_tokens({"additional_special_tokens": ["<image>", "<pad>"]})
    assert fast.backend_tokenizer.pre_tokenizer is None
    return fast


def make_legacy_tiny(directory) -> Path:
    """A tiny official-layout checkpoint whose tokenizer is the legacy LLaMA one."""
    return make_tiny(directory, layout="official", tokenizer=build_legacy_tokenizer())


def script_answer(checkpoint: Path, anchor_id: int, answer_ids: list[int], eos_id: int = 2) -> None:
    """Rewrite the checkpoint's language-model weights so that, after the token anchor_id, greedy
    decoding emits answer_ids and then eos_id, whatever the video and the rest of the prompt.

    With every attention and MLP output projection at zero the residual stream at a position is the
    embedding of its token, so the next token depends on the current one only: token k of the chain
    gets its own embedding direction and the LM head maps that direction to token k + 1. Every other
    token maps to EOS. The chain's tokens (anchor included) must therefore all be different."""
    from safetensors.torch import load_file, save_file

    chain = [anchor_id, *answer_ids]
    assert len(set(chain)) == len(chain), f"a chain needs distinct tokens, got {chain}"
    for shard in sorted(checkpoint.glob("*.safetensors")):
        sd = load_file(str(shard))
        for key, value in sd.items():
            if key.endswith(("o_proj.weight", "down_proj.weight")) and key.startswith("language_model."):
                sd[key] = torch.zeros_like(value)
            elif key.endswith("embed_tokens.weight"):
                d = value.shape[1]
                assert len(chain) < d, "the chain is longer than the hidden size"
                emb = torch.zeros_like(value)
                emb[:, 0] = 1.0
                for k, t in enumerate(chain):
                    emb[t] = 0.0
                    emb[t, k + 1] = 1.0
                sd[key] = emb
            elif key.endswith("lm_head.weight"):
                head = torch.zeros_like(value)
                head[eos_id, 0] = 10.0
                for k, nxt in enumerate([*answer_ids, eos_id]):
                    head[nxt, k + 1] = 10.0
                sd[key] = head
        save_file(sd, str(shard), metadata={"format": "pt"})
