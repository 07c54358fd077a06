"""Gemma 3 text models (``Gemma3ForCausalLM``, ``model_type`` ``gemma3_text``) as llama.cpp's ``gemma3``
graph reads them::

    model.layers.N.input_layernorm.weight              blk.N.attn_norm.weight         (+1)
    model.layers.N.self_attn.{q,k,v,o}_proj.weight     blk.N.attn_{q,k,v,output}.weight  (no Q/K permutation)
    model.layers.N.self_attn.{q,k}_norm.weight         blk.N.attn_{q,k}_norm.weight   (+1)
    model.layers.N.post_attention_layernorm.weight     blk.N.post_attention_norm.weight (+1)
    model.layers.N.pre_feedforward_layernorm.weight    blk.N.ffn_norm.weight          (+1)
    model.layers.N.post_feedforward_layernorm.weight   blk.N.post_ffw_norm.weight     (+1)
    model.norm.weight                                  output_norm.weight             (+1)

(+1): HF's ``Gemma3RMSNorm`` multiplies by ``1 + weight``, llama.cpp by ``weight``, so llama.cpp's
converter (``Gemma3Model.norm_shift``) adds 1 and transformers' GGUF reader subtracts it again.

What llama.cpp takes from elsewhere than the file, and so must hold for the model to be exported
(``src/models/gemma3.cpp``, llama-cpp-python 0.3.36): the query scale is ``1/sqrt(head_dim)``
(``1/sqrt(hidden/heads)`` for the 62-layer 27B), never ``query_pre_attn_scalar``; layer ``i`` is
sliding when ``i % 6 < 5`` unless ``attention.sliding_window_pattern`` says otherwise; the sliding
layers' RoPE is never scaled; the feed-forward activation is tanh-approximated GELU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .hparams import head_dim, rope_settings, write_common_hparams

if TYPE_CHECKING:
    import torch

LAYER_TENSORS = {
    "input_layernorm": "ATTN_NORM", "self_attn.q_proj": "ATTN_Q", "self_attn.k_proj": "ATTN_K", "self_attn.v_proj": "ATTN_V",
    "self_attn.o_proj": "ATTN_OUT", "self_attn.q_norm": "ATTN_Q_NORM", "self_attn.k_norm": "ATTN_K_NORM",
    "post_attention_layernorm": "ATTN_POST_NORM", "pre_feedforward_layernorm": "FFN_PRE_NORM",
    "post_feedforward_layernorm": "FFN_POST_NORM", "mlp.gate_proj": "FFN_GATE", "mlp.up_proj": "FFN_UP",
    "mlp.down_proj": "FFN_DOWN",
}
NORM_SHIFT = 1.0
SWA_PATTERN = 6  # llama.cpp's default for gemma3: layer i slides when i % 6 < 5
LOCAL_ROPE_THETA = 10000.0  # transformers' and llama.cpp's default for the sliding layers
_LAYER_TYPES = ("sliding_attention", "full_attention")


def layer_types(config: Any) -> list[str]:
    """``sliding_attention`` / ``full_attention`` per layer (transformers 4.5x and 5 configs)."""
    types = getattr(config, "layer_types", None)
    if types:
        return list(types)
    pattern = int(getattr(config, "sliding_window_pattern", None) or SWA_PATTERN)
    return [_LAYER_TYPES[(i + 1) % pattern == 0] for i in range(int(config.num_hidden_layers))]


def local_rope(config: Any) -> dict[str, Any]:
    """RoPE parameters of the sliding layers, with ``rope_theta`` and ``rope_type``."""
    params = dict((getattr(config, "rope_parameters", None) or {}).get("sliding_attention") or {})
    params.setdefault("rope_theta", getattr(config, "rope_local_base_freq", None) or LOCAL_ROPE_THETA)
    params["rope_type"] = params.get("rope_type", params.get("type")) or "default"
    return params


def attention_scale_dim(config: Any) -> int:
    """The ``d`` of llama.cpp's query scale ``1/sqrt(d)`` for this model."""
    if int(config.num_hidden_layers) == 62:  # llama.cpp's LLM_TYPE_27B
        return int(config.hidden_size) // int(config.num_attention_heads)
    return head_dim(config)


def gemma3_problems(config: Any, gguf_arch: str, *, biases: bool) -> list[str]:
    """What llama.cpp's gemma3 graph would compute differently from ``config``'s model."""
    del biases  # Gemma 3 has none; attention_bias is refused below
    problems: list[str] = []
    activation = getattr(config, "hidden_activation", None) or getattr(config, "hidden_act", None)
    if activation != "gelu_pytorch_tanh":
        problems.append(f"activation {activation} (llama.cpp's {gguf_arch} graph runs tanh-approximated GELU)")
    if getattr(config, "attn_logit_softcapping", None) is not None:
        problems.append(f"attention logit soft-capping (llama.cpp's {gguf_arch} graph has none)")
    if getattr(config, "attention_bias", False):
        problems.append(f"attention biases (llama.cpp's {gguf_arch} graph has none)")
    if getattr(config, "use_bidirectional_attention", False):
        problems.append("bidirectional attention (llama.cpp runs gemma3 causally)")
    scalar, scale_dim = getattr(config, "query_pre_attn_scalar", None), attention_scale_dim(config)
    if scalar is not None and float(scalar) != float(scale_dim):
        problems.append(f"query_pre_attn_scalar {scalar} (llama.cpp scales queries by 1/sqrt({scale_dim}) and reads no such key)")
    unknown = sorted(set(layer_types(config)) - set(_LAYER_TYPES))
    if unknown:
        problems.append(f"layer types {', '.join(unknown)} (llama.cpp knows sliding and full attention)")
    _, rope = rope_settings(config)
    if rope["rope_type"] not in ("default", "linear"):
        problems.append(f"RoPE scaling {rope['rope_type']!r} on full-attention layers (exported: default, linear)")
    if local_rope(config)["rope_type"] != "default":
        problems.append(f"RoPE scaling {local_rope(config)['rope_type']!r} on sliding layers (llama.cpp never scales them)")
    return problems


def write_gemma3_hparams(writer: Any, config: Any, rows: int) -> None:
    """The ``gemma3.*`` keys, as ``Gemma3Model.set_gguf_parameters`` writes them (no vocab size, no RoPE
    dimension count: llama.cpp takes them from the token list and the key length)."""
    import gguf

    del rows
    theta, rope = rope_settings(config)
    write_common_hparams(writer, config)
    writer.add_rope_freq_base(theta)
    if rope["rope_type"] == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    types = layer_types(config)
    if "sliding_attention" in types:
        writer.add_sliding_window(int(config.sliding_window))
        writer.add_rope_freq_base_swa(float(local_rope(config)["rope_theta"]))
        default = [i % SWA_PATTERN < SWA_PATTERN - 1 for i in range(len(types))]
        sliding = [kind == "sliding_attention" for kind in types]
        if sliding != default:  # llama.cpp reads the per-layer pattern only when present
            writer.add_sliding_window_pattern(sliding)
    if (softcap := getattr(config, "final_logit_softcapping", None)) is not None:
        writer.add_final_logit_softcapping(float(softcap))


def shift_norms(name: str, tensor: torch.Tensor, config: Any) -> torch.Tensor:
    """GGUF tensor ``name``: every RMSNorm weight ``+ 1`` (see the module docstring), others unchanged."""
    del config
    return tensor + NORM_SHIFT if name.endswith("_norm.weight") else tensor
