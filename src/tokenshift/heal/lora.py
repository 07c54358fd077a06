"""Low-rank adapters for the linear layers of a model's body, merged back into the weights at the end
so that the healed model is a plain Hugging Face folder (no peft needed to load it)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


class LoRALinear(nn.Module):
    """``base(x) + scale * x A^T B^T`` with ``base`` frozen; A: (rank, in), B: (out, rank), B starts
    at zero so the wrapped layer starts as the base layer."""

    def __init__(self, base: nn.Linear, *, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        base.weight.requires_grad_(False)
        if base.bias is not None:
            base.bias.requires_grad_(False)
        device, dtype = base.weight.device, base.weight.dtype
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, device=device, dtype=dtype))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, device=device, dtype=dtype))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x.to(self.lora_A.dtype) @ self.lora_A.T @ self.lora_B.T).to(x.dtype) * self.scale

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """The base layer with ``scale * B A`` added to its weight."""
        self.base.weight += (self.scale * self.lora_B.float() @ self.lora_A.float()).to(self.base.weight.dtype)
        return self.base


def add_lora(model: Any, *, rank: int, alpha: float) -> list[nn.Parameter]:
    """Wrap every ``nn.Linear`` of the model's body (``get_decoder()``; never the output head) and
    return the new adapter parameters."""
    if rank < 1:
        raise ValueError(f"LoRA rank must be at least 1, got {rank}")
    body = model.get_decoder()
    targets = [(name, module) for name, module in body.named_modules() if isinstance(module, nn.Linear)]
    if not targets:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layers in its body for LoRA; use the stage 'all' instead")
    params: list[nn.Parameter] = []
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = body.get_submodule(parent_name) if parent_name else body
        wrapped = LoRALinear(module, rank=rank, alpha=alpha)
        setattr(parent, child, wrapped)
        params += [wrapped.lora_A, wrapped.lora_B]
    return params


def merge_lora(model: Any) -> int:
    """Fold every adapter into its base weight and put the plain layer back; return how many."""
    body = model.get_decoder()
    wrapped = [(name, module) for name, module in body.named_modules() if isinstance(module, LoRALinear)]
    for name, module in wrapped:
        parent_name, _, child = name.rpartition(".")
        parent = body.get_submodule(parent_name) if parent_name else body
        setattr(parent, child, module.merged())
    return len(wrapped)
