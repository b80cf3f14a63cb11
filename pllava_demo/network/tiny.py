"""`make-tiny`: write a tiny random checkpoint in a real on-disk format, so tests, the UI and
newcomers can run the whole pipeline offline in seconds.

The CLIP tower keeps the real 336 px / 14 px-patch grid (24x24 patches per frame) so pooling
shapes mean what they mean for the released models; widths and depths are tiny. Two layouts:
"official" (the PLLaVA release: PEFT-wrapped keys with LoRA, safetensors shards + index) and
"llava-hf" (a plain LLaVA image checkpoint, no LoRA). Answers are random text, and the config
carries a flag so the loader says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import torch

CORPUS = (
    "the person is walking on the street and a dog runs across the park while people talk . "
    "a man holds a red ball and throws it to the child who laughs . the video shows a kitchen "
    "where someone cooks food , cuts vegetables and stirs a pot on the stove . cars drive past "
    "buildings in the city at night with bright lights . what is happening in this video ? "
    "describe the background , characters and actions . yes no maybe first then finally"
)
VICUNA_SPECIALS = ["<unk>", "<s>", "</s>"]
CHATML_SPECIALS = ["<unk>", "<|startoftext|>", "<|endoftext|>"]


def build_tokenizer(chat_format: str):
    """A small Llama-style (metaspace BPE) tokenizer with <image> added after the base vocab."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = CHATML_SPECIALS if chat_format == "chatml" else VICUNA_SPECIALS
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    alphabet = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;!?'\"()-_*#/\n")
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials, initial_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator([CORPUS] * 4, trainer)
    extra = ["<|im_start|>", "<|im_end|>"] if chat_format == "chatml" else []
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token=specials[1], eos_token=specials[2], pad_token="<unk>",
        add_bos_token=True,
    )
    fast.add_special_tokens({"additional_special_tokens": extra + ["<image>"]})
    return fast


def _configs(vocab: int, image_token: int, family, pooling_shape, num_frames: int, context: int = 4096,
             llm_layers: int = 2):
    from transformers import CLIPVisionConfig, LlamaConfig

    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
        image_size=336, patch_size=14, projection_dim=16,
    )
    text = LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=llm_layers, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=vocab + 8, max_position_embeddings=context, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        rms_norm_eps=1e-5,
    )
    v = {k: vision.to_dict()[k] for k in (
        "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "image_size",
        "patch_size", "projection_dim", "layer_norm_eps", "hidden_act")}
    v["model_type"] = "clip_vision_model"
    t = {k: text.to_dict()[k] for k in (
        "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
        "vocab_size", "max_position_embeddings", "pad_token_id", "bos_token_id", "eos_token_id", "rms_norm_eps")}
    t["model_type"] = "llama"
    cfg = {
        "model_type": "llava",
        "image_token_index": image_token,
        "projector_hidden_act": "gelu",
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default",
        "vision_config": v,
        "text_config": t,
        "pad_token_id": 0,
        "pllava_demo_tiny": True,
        "torch_dtype": "bfloat16",
    }
    cfg.update(family.config_fields(pooling_shape=pooling_shape, num_frames=num_frames))
    return vision, text, cfg


def _weights(vision_config, text_config, family, lora_rank: int, seed: int, dtype):
    """Random weights as (our module path, tensor): real module inits for CLIP and the LLM, small
    random projector and LoRA matrices (the draw order is fixed, so a seed gives the same model)."""
    from transformers import CLIPVisionModel, LlamaForCausalLM

    from .families import clip_keys, llm_keys

    torch.manual_seed(seed)
    clip = CLIPVisionModel(vision_config).state_dict()
    d_v, d_t = vision_config.hidden_size, text_config.hidden_size
    projector = {
        "multi_modal_projector.linear_1.weight": torch.randn(d_t, d_v) * 0.2,
        "multi_modal_projector.linear_1.bias": torch.randn(d_t) * 0.02,
        "multi_modal_projector.linear_2.weight": torch.randn(d_t, d_t) * 0.2,
        "multi_modal_projector.linear_2.bias": torch.randn(d_t) * 0.02,
    }
    llm = LlamaForCausalLM(text_config).state_dict()

    def lora(stem, shape):
        out_f, in_f = shape
        return torch.randn(lora_rank, in_f) * 0.1, torch.randn(out_f, lora_rank) * 0.1

    pairs = [*clip_keys(clip), *projector.items(), *llm_keys(llm, lora if family.lora_targets else None)]
    return [(k, v.to(dtype)) for k, v in pairs]


def write_processor_files(out: Path, family) -> None:
    """preprocessor_config.json (CLIP 336, the loader reads its crop and normalisation) and the files
    the family's releases carry besides (the release's processor_config.json)."""
    from ..frames.preprocess import CLIP_PIXELS

    (out / "preprocessor_config.json").write_text(json.dumps({
        "crop_size": {"height": CLIP_PIXELS.size, "width": CLIP_PIXELS.size}, "do_center_crop": True,
        "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": list(CLIP_PIXELS.mean),
        "image_std": list(CLIP_PIXELS.std), "resample": 3, "rescale_factor": 1 / 255,
        "size": {"shortest_edge": CLIP_PIXELS.size}, "image_processor_type": "CLIPImageProcessor"}, indent=2))
    for name, text in family.extra_files:
        (out / name).write_text(text)


def make_tiny(
    directory: str | Path,
    *,
    layout: Literal["official", "llava-hf"] = "official",
    chat_format: Literal["vicuna", "chatml"] = "vicuna",
    pooling_shape=(16, 12, 12),
    num_frames: int = 16,
    lora_rank: int = 8,
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
    tokenizer=None,
    context: int = 4096,
    llm_layers: int = 2,
) -> Path:
    """Write a tiny random checkpoint to `directory` and return its path. `tokenizer`: a transformers fast
    tokenizer with "<image>" to save instead of the built-in one (tests use the legacy LLaMA layout).
    `context`: the LLM's max_position_embeddings; `llm_layers` its depth (the page benchmark wants
    4,000-token answers at a GPU's pace, ~150 tokens/s on a CPU)."""
    from .families import LLAVA_HF, PLLAVA_RELEASE

    if layout not in ("official", "llava-hf"):
        raise ValueError(f"layout must be 'official' or 'llava-hf', got {layout!r}")
    if chat_format not in ("vicuna", "chatml"):
        raise ValueError(f"chat_format must be 'vicuna' or 'chatml', got {chat_format!r}")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = tokenizer or build_tokenizer(chat_format)
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    family = PLLAVA_RELEASE if layout == "official" else LLAVA_HF
    vision, text, cfg = _configs(len(tokenizer), image_token, family, pooling_shape, num_frames, context, llm_layers)
    if chat_format == "chatml":
        eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
        cfg["text_config"]["eos_token_id"] = eos
    tokenizer.save_pretrained(str(out))
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    gen = {"bos_token_id": 1, "eos_token_id": cfg["text_config"]["eos_token_id"], "pad_token_id": 0}
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2))
    write_processor_files(out, family)
    weights = _weights(vision, text, family, lora_rank, seed, dtype)
    total = sum(v.numel() * v.element_size() for _, v in weights)
    # the release comes in two shards (and an index); a llava-hf folder in one file
    family.write_weights(out, weights, shard_bytes=total // 2 + 1 if family.sharded else total + 1)
    return out
