"""Loading a checkpoint into a ready PllavaModel: the official PLLaVA release (a PEFT-wrapped full
state dict in safetensors shards) and plain llava-hf image checkpoints (LLaVA 1.5 / NeXT, used
training-free with pooling). `load_pllava` is the one entry point; each step is another module's job:
where the files are (hub.py), what they say (checkpoint_config.py), the device, quantization and dtype
(device_policy.py), the weights (weights.py, with each family's key names from families/) and the
tokenizer (tokenizer.py).

Only safetensors are read (no pickle, no trust_remote_code). This module does not know the chat, the
frames' decoding nor any door (UI, CLI, API).
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import VideoModelSpec, check_lora_alpha
from ..errors import CheckpointError
from ..settings import QUANTIZATION
from ..frames.preprocess import CLIP_PIXELS, PixelSpec
from .checkpoint_config import (context_length, hf_configs, read_config, read_pixel_spec, spec_from_config,
                                stored_keys, stored_lora_rank, weight_files)
from .device_policy import Device, Quantization, auto_quantization, choose_dtype, pick_device
from .families import LLAVA_HF, Family, family_of
from .hub import resolve_source
from .lora import attach_lora, lora_alpha_of, set_lora_alpha
from .model import PllavaModel, kept_vision_layers
from .tokenizer import load_tokenizer
from .weights import load_weights

log = logging.getLogger(__name__)


@dataclass
class LoadedPllava:
    """A ready model with what the engine needs to talk to it."""

    model: PllavaModel
    tokenizer: object
    spec: VideoModelSpec
    path: Path
    name: str
    device: torch.device
    dtype: torch.dtype
    quantization: str
    context_length: int
    is_tiny: bool = False
    notes: list[str] = field(default_factory=list)
    family: Family = LLAVA_HF
    pixels: PixelSpec = CLIP_PIXELS  # from preprocessor_config.json

    @property
    def has_lora(self) -> bool:
        return self.spec.has_lora

    @property
    def lora_alpha(self) -> float | None:
        return lora_alpha_of(self.model)

    def set_lora_alpha(self, alpha: float) -> None:
        """Change the LoRA strength in place (no reload). Alpha 0 is the image LLM's own weights."""
        if not self.has_lora:
            raise CheckpointError(f"{self.name} has no LoRA weights, so its alpha cannot be changed.")
        set_lora_alpha(self.model, alpha)

    def describe(self) -> str:
        lora = f", LoRA r={self.spec.lora_rank} alpha={self.lora_alpha:g}" if self.has_lora else ", no LoRA"
        q = "4-bit nf4" if self.quantization == "4bit" else str(self.dtype).replace("torch.", "")
        return f"{self.name} on {self.device.type} ({q}{lora})" + (" [tiny random test model]" if self.is_tiny else "")


# -- the entry point ----------------------------------------------------------------------------
def load_pllava(
    source: str | os.PathLike,
    *,
    device: Device | str = "auto",
    quantization: Quantization = "auto",
    lora_alpha: float | None = None,
    dtype: torch.dtype | None = None,
    cpu_dtype: str = "auto",
) -> LoadedPllava:
    """Load a PLLaVA (or plain LLaVA) checkpoint from a folder or a Hub repo id.

    quantization="auto" is 4-bit nf4 on CUDA and none on CPU; lora_alpha=None takes the official 4.
    cpu_dtype (on CPU, when dtype is not given): "auto" is float32 where it fits in RAM, else bfloat16;
    "float32" / "bfloat16" force it.
    """
    from accelerate import init_empty_weights

    QUANTIZATION.check(quantization, error=CheckpointError)
    path = resolve_source(source)
    cfg = read_config(path)
    files = weight_files(path)
    family = family_of(cfg, stored_keys(path, files))
    lora_rank = stored_lora_rank(files) if family.lora_targets else 0
    if lora_alpha is not None:
        lora_alpha = check_lora_alpha(lora_alpha)
    spec = spec_from_config(cfg, lora_rank, lora_alpha)  # the alpha asked for at load is the default
    dev = pick_device(str(device))
    quant = auto_quantization(dev.type) if quantization == "auto" else quantization
    dtype = choose_dtype(dev, quant, cpu_dtype, files, dtype)
    notes = []
    if dev.type == "cpu" and sum(f.stat().st_size for f in files) > 2**30:
        notes.append(f"Running on CPU in {str(dtype).replace('torch.', '')}: expect minutes per answer.")
        warnings.warn(notes[-1], stacklevel=2)

    vision_config, text_config = hf_configs(cfg)
    with init_empty_weights(include_buffers=False):
        model = PllavaModel(spec, vision_config, text_config)
    if lora_rank:
        attach_lora(model.language_model, lora_rank, spec.default_lora_alpha, family.lora_targets)
    kept = kept_vision_layers(vision_config.num_hidden_layers, spec.vision_feature_layer)
    n = load_weights(model, family, files, dev, dtype, quant == "4bit", kept)
    for module in model.modules():  # non-persistent buffers (rotary, position ids) were built on CPU
        for name, buf in list(module._buffers.items()):
            if buf is not None and buf.device != dev:
                module._buffers[name] = buf.to(dev)
    model.eval().requires_grad_(False)
    log.info("loaded %d tensors from %s", n, path)

    pixels = read_pixel_spec(path, int(vision_config.image_size), notes)
    tokenizer = load_tokenizer(path, spec, notes)
    context = context_length(text_config)
    is_tiny = bool(cfg.get("pllava_demo_tiny", False))
    if is_tiny:
        notes.append("This is a tiny random test model: its answers are random text.")
        log.warning(notes[-1])
    return LoadedPllava(
        model=model, tokenizer=tokenizer, spec=spec, path=path, name=str(source),
        device=dev, dtype=dtype, quantization=quant, context_length=context, is_tiny=is_tiny, notes=notes,
        family=family, pixels=pixels,
    )


__all__ = ["LoadedPllava", "load_pllava"]
