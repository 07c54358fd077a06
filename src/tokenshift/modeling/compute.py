"""Half-precision weights, float32 arithmetic: for a model loaded in its stored bf16/f16 on a CPU that
has no native bf16 (no AVX512-BF16 or AMX), where PyTorch emulates half-precision matrix products.

Measured here (2 cores, no AVX512): a (512 x 4096) @ (4096 x 14336) product takes 3.47 s in bf16 and
0.91 s as float32 with the weight converted for the call (0.16 s of it the conversion). So every
``nn.Linear`` converts its weight for the call and computes in float32, and the input embedding's
output is float32, which carries float32 through the body: memory holds the stored weights and one
converted matrix at a time.
"""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

HALF = (torch.bfloat16, torch.float16)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX): autocast to bf16 then doubles
    throughput; without it bf16 is emulated and slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


class _FrozenHalfLinear(torch.autograd.Function):
    """``x @ weight.T + bias`` in float32 for a frozen half-precision weight, keeping only the half
    weight for the backward pass (which converts it again): a plain ``F.linear(x, weight.float())``
    would keep every layer's float32 copy alive until the backward pass, twice the body's memory."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(weight)
        return F.linear(x, weight.to(torch.float32), None if bias is None else bias.to(torch.float32))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, torch.Tensor | None]:
        (weight,) = ctx.saved_tensors
        grad_x = grad @ weight.to(torch.float32) if ctx.needs_input_grad[0] else None
        grad_bias = grad.reshape(-1, grad.shape[-1]).sum(0) if ctx.needs_input_grad[2] else None
        return grad_x, None, grad_bias


def _linear_in_float32(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    x = x.to(torch.float32)
    if not self.weight.requires_grad:
        return _FrozenHalfLinear.apply(x, self.weight, self.bias)
    bias = None if self.bias is None else self.bias.to(torch.float32)
    return F.linear(x, self.weight.to(torch.float32), bias)


def _embedding_output_float32(module: Any, args: Any, output: torch.Tensor) -> torch.Tensor:
    return output.to(torch.float32)


def compute_in_float32(model: Any) -> int:
    """Make ``model`` (weights in bf16/f16) compute in float32 (see the module docstring); return how many
    linear layers now convert their weight per call. A model already in float32 is left alone (0)."""
    if getattr(model, "_tokenshift_float32_compute", False):
        return 0
    changed = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module.weight.dtype in HALF:
            module.forward = types.MethodType(_linear_in_float32, module)
            changed += 1
    embedding = model.get_input_embeddings()
    if changed and embedding is not None and embedding.weight.dtype in HALF:
        embedding.register_forward_hook(_embedding_output_float32)
    model._tokenshift_float32_compute = bool(changed)
    return changed
