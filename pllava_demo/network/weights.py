"""Filling a PllavaModel built on the meta device with the tensors of safetensors files: each stored
key is read under its family's name (families/), placed on the device in the dtype (or quantized to
4-bit nf4 for the layers the family names), and every weight is accounted for: missing, unexpected
(and not known to be unused) or wrong-shaped weights raise one CheckpointError naming them, because a
silent random init gives fluent garbage.

It knows tensors, modules and safetensors; it does not choose the device, dtype or quantization
(device_policy.py) nor read configs (checkpoint_config.py).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from .families import Family
from .model import PllavaModel


def _module_and_name(root: nn.Module, key: str):
    path, _, name = key.rpartition(".")
    return root.get_submodule(path), name, path


def _quantize_linear(linear: nn.Module, weight: torch.Tensor, device, dtype) -> nn.Module:
    import bitsandbytes as bnb

    q = bnb.nn.Linear4bit(
        linear.in_features, linear.out_features, bias=linear.bias is not None,
        compute_dtype=dtype, quant_type="nf4", device="meta",
    )
    q.weight = bnb.nn.Params4bit(weight.to(dtype), requires_grad=False, quant_type="nf4")
    if linear.bias is not None and not linear.bias.is_meta:
        q.bias = linear.bias
    return q.to(device)  # .to() quantizes (CUDA, and CPU with bitsandbytes >= 0.48)


def load_weights(model: PllavaModel, family: Family, files: list[Path], device, dtype, quantize: bool,
                  kept_layers: int):
    from safetensors import safe_open

    expected = set(model.state_dict().keys())
    loaded, unexpected, mismatched = set(), [], []
    for file in files:
        with safe_open(str(file), framework="pt", device="cpu") as f:
            for raw_key in f.keys():
                key = family.canonical(raw_key)
                if key not in expected:
                    if not family.unused(key, kept_layers):
                        unexpected.append(raw_key)
                    continue
                tensor = f.get_tensor(raw_key)
                module, name, path = _module_and_name(model, key)
                current = getattr(module, name)
                if tuple(current.shape) != tuple(tensor.shape) and not getattr(current, "bnb_quantized", False):
                    mismatched.append(f"{raw_key} {tuple(tensor.shape)} != {tuple(current.shape)}")
                    continue
                if quantize and name == "weight" and family.is_quantized(path):
                    parent, _, child = path.rpartition(".")
                    setattr(model.get_submodule(parent), child, _quantize_linear(module, tensor, device, dtype))
                else:
                    value = tensor.to(device=device, dtype=dtype if tensor.is_floating_point() else tensor.dtype)
                    if name in module._parameters:
                        module._parameters[name] = nn.Parameter(value, requires_grad=False)
                    else:
                        module._buffers[name] = value
                loaded.add(key)
    missing = sorted(expected - loaded)
    lm_head = "language_model.lm_head.weight"
    if missing == [lm_head] and getattr(model.text_config, "tie_word_embeddings", False):
        model.language_model.lm_head.weight = model.language_model.get_input_embeddings().weight
        missing = []
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing weights (e.g. {', '.join(missing[:5])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected weights (e.g. {', '.join(unexpected[:5])})")
    if mismatched:
        problems.append(f"{len(mismatched)} weights of the wrong shape (e.g. {'; '.join(mismatched[:3])})")
    if problems:
        raise CheckpointError("The checkpoint does not match the model: " + "; ".join(problems) + ".")
    return len(loaded)
