"""LoRA on the language model's attention projections, with a strength that can change at any time.

PLLaVA's video knowledge is a LoRA (r=128) on q_proj and v_proj of the LLM; its strength alpha/r is
the paper's "fusion ratio" between image and video weights (alpha 0 = the image LLM). The adapter is
kept unmerged so that alpha is one float per layer: changing it costs microseconds, and alpha 0
skips the branch entirely, giving exactly the base model's numbers. The base layer may be a plain
Linear or a bitsandbytes Linear4bit: this module only calls it.

In a batched decode step the rows may want different strengths: `row_scale` (B, 1, 1) float32 then
replaces the one alpha for that step (set and cleared by the scheduler), and rows at alpha 0 take the
base output as it is (selected, not multiplied by 0), so they are exactly the image model's numbers.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import check_lora_alpha



class LoRALinear(nn.Module):
    """y = base(x) + (alpha / r) * B(A(x)); weights named base / lora_A / lora_B."""

    def __init__(self, base: nn.Module, in_features: int, out_features: int, rank: int, alpha: float):
        super().__init__()
        self.base = base
        self.lora_A = nn.Linear(in_features, rank, bias=False)
        self.lora_B = nn.Linear(rank, out_features, bias=False)
        self.rank = rank
        self.alpha = float(alpha)
        self.row_scale: torch.Tensor | None = None  # (B, 1, 1) float32 during a batched step, else None
        self.row_off: torch.Tensor | None = None  # (B, 1, 1) bool: rows at alpha 0

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.row_scale is not None:
            a = self.lora_A.weight
            # float32 scale times the branch, rounded once to y's dtype: the same numbers as the one-alpha path
            branch = (self.lora_B(self.lora_A(x.to(a.dtype))) * self.row_scale).to(y.dtype)
            return torch.where(self.row_off, y, y + branch)
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


def set_row_alphas(layers: list[LoRALinear], alphas: list[float] | None, device=None) -> None:
    """Per-row strengths for the next forward passes (B rows), or None to go back to the one alpha."""
    if alphas is None:
        for m in layers:
            m.row_scale = m.row_off = None
        return
    off = torch.tensor([a == 0 for a in alphas], device=device)[:, None, None]  # (B, 1, 1)
    scales: dict[int, torch.Tensor] = {}
    for m in layers:  # alpha / r in double, then float32: the value the one-alpha path multiplies by
        if m.rank not in scales:
            scales[m.rank] = torch.tensor([a / m.rank for a in alphas], dtype=torch.float32, device=device)[:, None, None]
        m.row_scale, m.row_off = scales[m.rank], off


def lora_alpha_of(model: nn.Module) -> float | None:
    for m in model.modules():
        if isinstance(m, LoRALinear):
            return m.alpha
    return None
