"""Llama-style architectures as llama.cpp's GGUF lays them out: hyperparameter keys and tensor names.

Each supported ``config.model_type`` is registered with its GGUF ``general.architecture``; the names
come from ``gguf.constants`` (``TENSOR_NAMES``), checked against the architecture's ``MODEL_TENSORS``::

    model.embed_tokens.weight                   token_embd.weight
    model.layers.N.input_layernorm.weight       blk.N.attn_norm.weight
    model.layers.N.self_attn.{q,k,v}_proj.*     blk.N.attn_{q,k,v}.*        (llama: Q, K rows permuted)
    model.layers.N.self_attn.o_proj.weight      blk.N.attn_output.weight
    model.layers.N.post_attention_layernorm.*   blk.N.ffn_norm.weight
    model.layers.N.mlp.{gate,up,down}_proj.*    blk.N.ffn_{gate,up,down}.weight
    model.norm.weight                           output_norm.weight
    lm_head.weight                              output.weight               (left out when tied, as the converter does)

Facts from llama.cpp's ``convert_hf_to_gguf.py`` (``LlamaModel``, ``Qwen2Model``, ``TextModel``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ArchSpec:
    """One exportable architecture. ``permute_qk``: llama.cpp's ``llama`` graph applies RoPE to
    adjacent pairs of each head's rows, so the converter interleaves the two halves HF rotates (see
    :func:`permute`). ``biases``: layer tensors that may carry a ``.bias``."""

    model_type: str  # transformers' config.model_type
    gguf_arch: str  # GGUF general.architecture
    permute_qk: bool
    biases: frozenset[str]
    examples: str


ARCHITECTURES: dict[str, ArchSpec] = {
    spec.model_type: spec
    for spec in [
        ArchSpec("llama", "llama", True, frozenset(), "SmolLM2, Llama-3"),
        ArchSpec("qwen2", "qwen2", False, frozenset({"ATTN_Q", "ATTN_K", "ATTN_V"}), "Qwen2, Qwen2.5"),
    ]
}

_GLOBAL = {"model.embed_tokens": "TOKEN_EMBD", "model.norm": "OUTPUT_NORM", "lm_head": "OUTPUT"}
_LAYER = {
    "input_layernorm": "ATTN_NORM", "self_attn.q_proj": "ATTN_Q", "self_attn.k_proj": "ATTN_K", "self_attn.v_proj": "ATTN_V",
    "self_attn.o_proj": "ATTN_OUT", "post_attention_layernorm": "FFN_NORM", "mlp.gate_proj": "FFN_GATE",
    "mlp.up_proj": "FFN_UP", "mlp.down_proj": "FFN_DOWN",
}
_LAYER_NAME = re.compile(r"^model\.layers\.(?P<bid>\d+)\.(?P<part>.+)$")
_ROPE_TYPES = ("default", "linear", "llama3")  # others (yarn, dynamic, longrope) are refused


def supported() -> str:
    """The supported architectures in words, for error messages."""
    return ", ".join(f"{spec.model_type} ({spec.examples})" for spec in ARCHITECTURES.values())


def rope_settings(config: Any) -> tuple[float, dict[str, Any]]:
    """(``rope_theta``, scaling parameters with ``rope_type``) from a transformers 4 or 5 config."""
    params = dict(getattr(config, "rope_parameters", None) or {})
    params = dict(params.get("full_attention", params))
    legacy = getattr(config, "rope_scaling", None) or {}
    if "rope_type" not in params and legacy:
        params.update(legacy)
    theta = params.get("rope_theta", getattr(config, "rope_theta", None) or 10000.0)
    params["rope_type"] = params.get("rope_type", params.get("type")) or "default"
    return float(theta), params


def check_architecture(config: Any, name: str) -> ArchSpec:
    """The registered architecture of ``config``; a one-line ValueError naming the supported ones otherwise."""
    model_type = getattr(config, "model_type", None)
    spec = ARCHITECTURES.get(str(model_type))
    classes = ", ".join(getattr(config, "architectures", None) or [])
    if spec is None:
        kind = f"a {model_type} model" + (f" ({classes})" if classes else "")
        raise ValueError(f"model {name!r} is {kind}; GGUF export supports {supported()}")
    problems: list[str] = []
    if getattr(config, "hidden_act", "silu") != "silu":
        problems.append(f"activation {config.hidden_act} (llama.cpp's {spec.gguf_arch} graph runs SiLU)")
    if not spec.biases and (getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False)):
        problems.append(f"attention or MLP biases (transformers' GGUF reader for {spec.gguf_arch} cannot load them back)")
    _, rope = rope_settings(config)
    if rope["rope_type"] not in _ROPE_TYPES:
        problems.append(f"RoPE scaling {rope['rope_type']!r} (exported: {', '.join(_ROPE_TYPES)})")
    if problems:
        raise ValueError(f"model {name!r} ({spec.model_type}) has {'; '.join(problems)}: not exported to GGUF")
    return spec


def head_dim(config: Any) -> int:
    return int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)


def write_hparams(writer: Any, config: Any, *, rows: int) -> None:
    """The ``{arch}.*`` keys llama.cpp reads for a llama-style model; ``rows``: embedding rows (vocab size)."""
    import gguf

    theta, rope = rope_settings(config)
    heads = int(config.num_attention_heads)
    writer.add_context_length(int(config.max_position_embeddings))
    writer.add_embedding_length(int(config.hidden_size))
    writer.add_block_count(int(config.num_hidden_layers))
    writer.add_feed_forward_length(int(config.intermediate_size))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(getattr(config, "num_key_value_heads", None) or heads))
    writer.add_key_length(head_dim(config))
    writer.add_value_length(head_dim(config))
    writer.add_rope_dimension_count(head_dim(config))
    writer.add_rope_freq_base(theta)
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(rows)
    if rope["rope_type"] == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))


def permute(weights: torch.Tensor, n_head: int) -> torch.Tensor:
    """llama.cpp's ``LlamaModel.permute``: within each head's ``d`` rows, HF rotates row ``i`` with row
    ``i + d/2``, llama.cpp row ``2i`` with ``2i + 1``, so rows are reordered ``0, d/2, 1, d/2+1, ...``.
    weights: (n_head * d, in) -> same shape. Pass the KV head count for K."""
    return weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


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


def _gguf_name(hf_name: str, spec: ArchSpec) -> str | None:
    """The GGUF name of HF tensor ``hf_name`` in ``spec``'s layout, or None when it has no place there."""
    import gguf

    stem, _, kind = hf_name.rpartition(".")
    bid = None
    member = _GLOBAL.get(stem)
    if member is None and (match := _LAYER_NAME.match(stem)):
        bid, member = int(match["bid"]), _LAYER.get(match["part"])
    if member is None or kind not in ("weight", "bias") or (kind == "bias" and member not in spec.biases):
        return None
    tensor = gguf.MODEL_TENSOR[member]
    arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == spec.gguf_arch)
    assert tensor in gguf.MODEL_TENSORS[arch], (member, spec.gguf_arch)
    return f"{gguf.TENSOR_NAMES[tensor].format(bid=bid)}.{kind}"


def gguf_tensors(model: Any, spec: ArchSpec, *, tied: bool) -> Iterator[tuple[str, torch.Tensor]]:
    """(GGUF name, float32 tensor in HF layout ``(out, in)``) for every tensor llama.cpp needs.

    Raises a ValueError listing every HF tensor that has no place in the layout before yielding any."""
    import torch

    config = model.config
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("rotary_emb.inv_freq")}
    if tied:
        state.pop("lm_head.weight", None)
    names = {hf_name: _gguf_name(hf_name, spec) for hf_name in state}
    unplaced = [hf_name for hf_name, name in names.items() if name is None]
    if unplaced:
        shown = ", ".join(unplaced[:6]) + (f" and {len(unplaced) - 6} more" if len(unplaced) > 6 else "")
        raise ValueError(f"{len(unplaced)} tensors have no place in llama.cpp's {spec.gguf_arch} layout ({shown}); "
                         "this model is not a plain llama-style one and is not exported")
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    _, rope = rope_settings(config)
    if rope["rope_type"] == "llama3":
        yield "rope_freqs.weight", llama3_rope_factors(config)
    for hf_name, tensor in state.items():
        name = names[hf_name]
        assert name is not None
        tensor = tensor.detach().to("cpu", dtype=torch.float32)
        if spec.permute_qk and ".attn_q." in name:
            tensor = permute(tensor, heads)
        elif spec.permute_qk and ".attn_k." in name:
            tensor = permute(tensor, kv_heads)
        yield name, tensor.contiguous()
