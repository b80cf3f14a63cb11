"""Checkpoint families: everything one on-disk layout knows, in one place per family.

A family says how its files name the weights (and how to write them), which stored weights never
influence PLLaVA's output, where its LoRA sits, which linears 4-bit quantisation replaces, which
extra fields its config.json carries, and which prompt format its tokenizer implies. The loader
(`checkpoint.py`, `weights.py`), the tiny random checkpoints (`tiny.py`) and the benchmarks' 7B-shaped random
checkpoints (`bench/_common.py`) all go through a Family, so a third family is one new file here
(a `Family` value) plus its entry in FAMILIES, before the catch-all llava-hf.

Knows key names, config fields and file layout; nothing of tensors' maths, prompts' text or the UI.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

# Linears of a Llama-architecture LLM (every released PLLaVA and LLaVA 1.5/1.6 LLM).
LLAMA_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def unused_everywhere(key: str, kept_vision_layers: int) -> bool:
    """Stored weights no LLaVA-family checkpoint needs for PLLaVA: LLaVA-NeXT's image_newline (PLLaVA
    never tiles), CLIP's post-LN and the layers after the feature layer, and recomputed buffers."""
    if key == "image_newline" or key.startswith("vision_tower.post_layernorm.") or key.endswith(".position_ids"):
        return True
    if key.endswith("rotary_emb.inv_freq"):
        return True
    m = re.match(r"vision_tower\.encoder\.layers\.(\d+)\.", key)
    return bool(m and int(m.group(1)) >= kept_vision_layers)


@dataclass(frozen=True)
class Family:
    name: str
    description: str
    renames: tuple[tuple[str, str], ...]  # (regex on a stored key, replacement) -> our module path
    to_disk: Callable[[str], str]  # our module path -> the name this family stores it under
    recognises: Callable[[dict, list[str]], bool]  # (config.json, stored keys) -> is it ours?
    lora_targets: tuple[str, ...] = ()  # () = the family carries no LoRA
    quantized_linears: tuple[str, ...] = LLAMA_LINEARS
    config_fields: Callable[..., dict] = field(default=lambda **_: {})  # extra config.json fields, by kwargs
    extra_files: tuple[tuple[str, str], ...] = ()  # (file name, text) its folders carry besides the weights
    sharded: bool = False  # written as "-0000i-of-0000n" shards plus an index (the release), else one file

    def canonical(self, key: str) -> str:
        """A stored key as this project's module path."""
        for pattern, repl in self.renames:
            key = re.sub(pattern, repl, key)
        return key

    def unused(self, key: str, kept_vision_layers: int) -> bool:
        return unused_everywhere(key, kept_vision_layers)

    def is_quantized(self, module_path: str) -> bool:
        """Whether 4-bit replaces the Linear at this module path (LoRA's `base` counts as its parent)."""
        if not module_path.startswith("language_model.model.layers."):
            return False
        parts = module_path.split(".")
        leaf = parts[-2] if parts[-1] == "base" else parts[-1]
        return leaf in self.quantized_linears

    def chat_format_name(self, vocab) -> str:
        """'chatml' when the tokenizer knows ChatML's markers (the 34B release, Yi-based), else 'vicuna'."""
        return "chatml" if "<|im_start|>" in vocab and "<|im_end|>" in vocab else "vicuna"

    # -- writing ---------------------------------------------------------------------------------
    def write_weights(self, out: Path, tensors: Iterable[tuple[str, torch.Tensor]], *,
                      shard_bytes: int = 2 << 30) -> int:
        """Write (our module path, tensor) pairs under this family's names, streaming shard by shard so a
        7B-shaped model never sits whole in memory. Returns the total bytes."""
        from safetensors.torch import save_file

        out.mkdir(parents=True, exist_ok=True)
        written: list[tuple[str, list[str]]] = []
        shard: dict[str, torch.Tensor] = {}
        size = total = 0

        def flush():
            nonlocal shard, size
            if shard:
                fname = f"part-{len(written) + 1:05d}.safetensors"
                save_file(shard, str(out / fname), metadata={"format": "pt"})
                written.append((fname, list(shard)))
                shard, size = {}, 0

        for key, tensor in tensors:
            if not self.lora_targets and (".lora_A." in key or ".lora_B." in key):
                raise ValueError(f"the {self.name} family stores no LoRA, got {key}")
            shard[self.to_disk(key)] = tensor.contiguous()
            nbytes = tensor.numel() * tensor.element_size()
            size, total = size + nbytes, total + nbytes
            if size >= shard_bytes:
                flush()
        flush()
        if not self.sharded and len(written) == 1:
            (out / written[0][0]).rename(out / "model.safetensors")
            return total
        weight_map = {}
        for i, (fname, keys) in enumerate(written, 1):
            final = f"model-{i:05d}-of-{len(written):05d}.safetensors"
            (out / fname).rename(out / final)
            weight_map.update({k: final for k in keys})
        (out / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
        return total


def family_of(config: dict, keys: list[str]) -> Family:
    """The first family that recognises the checkpoint (llava-hf, last, takes any LLaVA)."""
    return next(f for f in FAMILIES if f.recognises(config, keys))


def by_name(name: str) -> Family:
    for f in FAMILIES:
        if f.name == name:
            return f
    raise ValueError(f"no checkpoint family {name!r}; known: {', '.join(f.name for f in FAMILIES)}")


def clip_keys(clip_state: dict[str, torch.Tensor]) -> Iterator[tuple[str, torch.Tensor]]:
    """A transformers CLIPVisionModel's state dict as our module paths."""
    for k, v in clip_state.items():
        yield "vision_tower." + re.sub(r"^vision_model\.", "", k), v


def llm_keys(llm_state: dict[str, torch.Tensor], lora: Callable[[str, tuple], tuple] | None = None
             ) -> Iterator[tuple[str, torch.Tensor]]:
    """A transformers *ForCausalLM state dict as our module paths; `lora(path, (out, in))` gives
    (A, B) for each LoRA target, which is then stored as base + lora_A + lora_B."""
    for k, v in llm_state.items():
        path = f"language_model.{k}"
        m = re.search(r"\.(q_proj|v_proj)\.weight$", k)
        if lora is not None and m:
            stem = path[: -len(".weight")]
            a, b = lora(stem, tuple(v.shape))
            yield f"{stem}.base.weight", v
            yield f"{stem}.lora_A.weight", a
            yield f"{stem}.lora_B.weight", b
        else:
            yield path, v


from .llava_hf import LLAVA_HF  # noqa: E402  (the families need the helpers above)
from .pllava_release import PLLAVA_RELEASE  # noqa: E402

FAMILIES: tuple[Family, ...] = (PLLAVA_RELEASE, LLAVA_HF)

__all__ = ["FAMILIES", "Family", "LLAVA_HF", "PLLAVA_RELEASE", "by_name", "clip_keys", "family_of", "llm_keys"]
