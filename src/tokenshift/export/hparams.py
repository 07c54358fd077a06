"""Hyperparameters every exported architecture reads the same way from a transformers config."""

from __future__ import annotations

from typing import Any


def rope_settings(config: Any) -> tuple[float, dict[str, Any]]:
    """(``rope_theta``, scaling parameters with ``rope_type``) of the full-attention layers, from a
    transformers 4 or 5 config (5 keeps one table per layer type when they differ, as Gemma 3 does)."""
    params = dict(getattr(config, "rope_parameters", None) or {})
    params = dict(params.get("full_attention", params))
    legacy = getattr(config, "rope_scaling", None) or {}
    if "rope_type" not in params and legacy:
        params.update(legacy)
    theta = params.get("rope_theta", getattr(config, "rope_theta", None) or 10000.0)
    params["rope_type"] = params.get("rope_type", params.get("type")) or "default"
    return float(theta), params


def head_dim(config: Any) -> int:
    return int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)


def kv_heads(config: Any) -> int:
    return int(getattr(config, "num_key_value_heads", None) or config.num_attention_heads)


def write_common_hparams(writer: Any, config: Any) -> None:
    """The ``{arch}.*`` keys llama.cpp's converter writes for every llama-like model (``TextModel``)."""
    writer.add_context_length(int(config.max_position_embeddings))
    writer.add_embedding_length(int(config.hidden_size))
    writer.add_block_count(int(config.num_hidden_layers))
    writer.add_feed_forward_length(int(config.intermediate_size))
    writer.add_head_count(int(config.num_attention_heads))
    writer.add_head_count_kv(kv_heads(config))
    writer.add_key_length(head_dim(config))
    writer.add_value_length(head_dim(config))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
