"""Llama-style models (``llama``: SmolLM2, Llama-3; ``qwen2``: Qwen2/2.5) as llama.cpp lays them out::

    model.layers.N.input_layernorm.weight       blk.N.attn_norm.weight
    model.layers.N.self_attn.{q,k,v}_proj.*     blk.N.attn_{q,k,v}.*        (llama: Q, K rows permuted)
    model.layers.N.self_attn.o_proj.weight      blk.N.attn_output.weight
    model.layers.N.post_attention_layernorm.*   blk.N.ffn_norm.weight
    model.layers.N.mlp.{gate,up,down}_proj.*    blk.N.ffn_{gate,up,down}.weight

Facts from llama.cpp's ``convert_hf_to_gguf.py`` (``LlamaModel``, ``Qwen2Model``, ``TextModel``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .hparams import head_dim, kv_heads, rope_settings, write_common_hparams

if TYPE_CHECKING:
    import torch

LAYER_TENSORS = {
    "input_layernorm": "ATTN_NORM", "self_attn.q_proj": "ATTN_Q", "self_attn.k_proj": "ATTN_K", "self_attn.v_proj": "ATTN_V",
    "self_attn.o_proj": "ATTN_OUT", "post_attention_layernorm": "FFN_NORM", "mlp.gate_proj": "FFN_GATE",
    "mlp.up_proj": "FFN_UP", "mlp.down_proj": "FFN_DOWN",
}
ROPE_TYPES = ("default", "linear", "llama3")  # others (yarn, dynamic, longrope) are refused


def llama_problems(config: Any, gguf_arch: str, *, biases: bool) -> list[str]:
    """What llama.cpp's llama/qwen2 graph would compute differently from ``config``'s model."""
    problems: list[str] = []
    if getattr(config, "hidden_act", "silu") != "silu":
        problems.append(f"activation {config.hidden_act} (llama.cpp's {gguf_arch} graph runs SiLU)")
    if not biases and (getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False)):
        problems.append(f"attention or MLP biases (transformers' GGUF reader for {gguf_arch} cannot load them back)")
    _, rope = rope_settings(config)
    if rope["rope_type"] not in ROPE_TYPES:
        problems.append(f"RoPE scaling {rope['rope_type']!r} (exported: {', '.join(ROPE_TYPES)})")
    return problems


def write_llama_hparams(writer: Any, config: Any, rows: int) -> None:
    """The ``{arch}.*`` keys llama.cpp reads for a llama-style model; ``rows``: embedding rows (vocab size)."""
    import gguf

    theta, rope = rope_settings(config)
    write_common_hparams(writer, config)
    writer.add_rope_dimension_count(head_dim(config))
    writer.add_rope_freq_base(theta)
    writer.add_vocab_size(rows)
    if rope["rope_type"] == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))


def permute(weights: torch.Tensor, n_head: int) -> torch.Tensor:
    """llama.cpp's ``LlamaModel.permute``: within each head's ``d`` rows, HF rotates row ``i`` with row
    ``i + d/2``, llama.cpp row ``2i`` with ``2i + 1``, so rows are reordered ``0, d/2, 1, d/2+1, ...``.
    weights: (n_head * d, in) -> same shape. Pass the KV head count for K."""
    return weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def permute_qk(name: str, tensor: torch.Tensor, config: Any) -> torch.Tensor:
    """GGUF tensor ``name`` for llama.cpp's ``llama`` graph, which applies RoPE to adjacent pairs of each
    head's rows: Q and K rows interleaved (see :func:`permute`), everything else unchanged."""
    if ".attn_q." in name:
        return permute(tensor, int(config.num_attention_heads))
    if ".attn_k." in name:
        return permute(tensor, kv_heads(config))
    return tensor


def llama3_rope_factors(config: Any) -> torch.Tensor:
    """``rope_freqs.weight`` of a model with Llama-3.1 RoPE scaling, as the converter computes it:
    one divisor per rotated pair (head_dim / 2 values); llama.cpp divides each frequency by it."""
    import torch

    theta, rope = rope_settings(config)
    dim = head_dim(config)
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    factor = rope.get("factor", 8.0)
    low, high = rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old_context = rope.get("original_max_position_embeddings", 8192)
    low_wavelen, high_wavelen = old_context / low, old_context / high
    factors = []
    for freq in freqs.tolist():
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(factor)
        else:
            smooth = (old_context / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return torch.tensor(factors, dtype=torch.float32)


def rope_freqs(config: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """The extra ``rope_freqs.weight`` tensor of a Llama-3.1-scaled model; nothing otherwise."""
    _, rope = rope_settings(config)
    if rope["rope_type"] == "llama3":
        yield "rope_freqs.weight", llama3_rope_factors(config)
