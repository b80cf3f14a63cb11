"""LoRA on the language model's attention projections, with a strength that can change at any time.

PLLaVA's video knowledge is a LoRA (r=128) on q_proj and v_proj of the LLM; its strength alpha/r is
the paper's "fusion ratio" between image and video weights (alpha 0 = the image LLM). The adapter is
kept unmerged so that alpha is one float per layer: changing it costs microseconds, and alpha 0
skips the branch entirely, giving exactly the base model's numbers. The base layer may be a plain
Linear or a bitsandbytes Linear4bit: this module only calls it.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import check_lora_alpha



class LoRALinear(nn.Module):
    """y = base(x) + (alpha / r) * B(A(x)); weights named base / lora_A / lora_B."""

    def __init__(self, base: nn.Module, in_features: int, out_features: int, rank: int, alpha: float):
        super().__init__()
        self.base = base
        self.lora_A = nn.Linear(in_features, rank, bias=False)
        self.lora_B = nn.Linear(rank, out_features, bias=False)
        self.rank = rank
        self.alpha = float(alpha)

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.alpha == 0.0:
            return y
        a = self.lora_A.weight
        return y + (self.lora_B(self.lora_A(x.to(a.dtype))) * self.scale).to(y.dtype)


def attach_lora(language_model: nn.Module, rank: int, alpha: float, targets: tuple[str, ...]) -> int:
    """Wrap every targeted Linear of the LLM (and nothing outside it) in place; returns how many.
    The targets are the checkpoint family's (the release: q_proj and v_proj)."""
    count = 0
    for name, module in list(language_model.named_modules()):
        for child_name, child in list(module.named_children()):
            if child_name in targets and not isinstance(child, LoRALinear):
                lora = LoRALinear(child, child.in_features, child.out_features, rank, alpha)
                setattr(module, child_name, lora)
                count += 1
    return count


def set_lora_alpha(model: nn.Module, alpha: float) -> int:
    """Set the LoRA strength of every adapter in place; returns how many adapters changed."""
    alpha = check_lora_alpha(alpha)
    layers = [m for m in model.modules() if isinstance(m, LoRALinear)]
    for m in layers:
        m.alpha = alpha
    return len(layers)


def lora_alpha_of(model: nn.Module) -> float | None:
    for m in model.modules():
        if isinstance(m, LoRALinear):
            return m.alpha
    return None
