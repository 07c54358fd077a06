"""Random-weight models of real shapes, written shard by shard, for measuring memory and time at size.

Only memory and time mean anything on these models: the weights are random (matrices N(0, 0.02),
norms 1). The tokenizer is a real one from the assets, so transplants, exports and evaluations run
the same code a user's model would. Never holds more than one shard's tensors.

    from shapes import SHAPES, write_random_model
    write_random_model(Path("/tmp/llama-8b"), SHAPES["llama-3.1-8b"])   # 16 GB of bf16, about 2 minutes here
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SHARD_BYTES = 5 * 10**9  # transformers' default max_shard_size ("5GB")


@dataclass(frozen=True)
class Shape:
    """A published model's shape: its config.json keys, and the tokenizer asset it is used with."""

    name: str
    tokenizer: str  # asset name
    config: dict[str, Any] = field(default_factory=dict)


LLAMA_3_ROPE = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192, "rope_theta": 500000.0}
LLAMA_3 = dict(model_type="llama", architectures=["LlamaForCausalLM"], vocab_size=128256, num_key_value_heads=8,
               max_position_embeddings=131072, rms_norm_eps=1e-5, hidden_act="silu", bos_token_id=128000,
               eos_token_id=128001, rope_parameters=LLAMA_3_ROPE)

SHAPES: dict[str, Shape] = {s.name: s for s in [
    # published configs of meta-llama/Llama-3.2-1B, Llama-3.2-3B, Llama-3.1-8B and Qwen/Qwen2.5-7B
    Shape("llama-3.2-1b", "llama-3", dict(LLAMA_3, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                                          num_attention_heads=32, head_dim=64, tie_word_embeddings=True)),
    Shape("llama-3.2-3b", "llama-3", dict(LLAMA_3, hidden_size=3072, intermediate_size=8192, num_hidden_layers=28,
                                          num_attention_heads=24, head_dim=128, tie_word_embeddings=True)),
    Shape("llama-3.1-8b", "llama-3", dict(LLAMA_3, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                          num_attention_heads=32, head_dim=128, tie_word_embeddings=False,
                                          rope_parameters=dict(LLAMA_3_ROPE, factor=8.0))),
    Shape("qwen2.5-7b", "qwen2.5", dict(model_type="qwen2", architectures=["Qwen2ForCausalLM"], vocab_size=152064,
                                        hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                                        num_key_value_heads=4, max_position_embeddings=32768, rms_norm_eps=1e-6,
                                        hidden_act="silu", tie_word_embeddings=False, bos_token_id=151643, eos_token_id=151643,
                                        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})),
]}


def model_config(shape: Shape) -> Any:
    """The transformers config of ``shape`` (bf16)."""
    from transformers import AutoConfig

    keys = dict(shape.config)
    return AutoConfig.for_model(keys.pop("model_type"), dtype="bfloat16", **keys)


def tensor_shapes(config: Any) -> dict[str, tuple[int, ...]]:
    """Every tensor the checkpoint holds, with its shape, from the model built on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()
            if not (config.tie_word_embeddings and name == "lm_head.weight")}


def parameters(shape: Shape) -> int:
    from math import prod

    return sum(prod(s) for s in tensor_shapes(model_config(shape)).values())


def write_random_model(folder: Path, shape: Shape, *, shard_bytes: int = SHARD_BYTES, seed: int = 0) -> Path:
    """``shape`` with random bf16 weights and its asset tokenizer, as a Hugging Face folder in shards of at
    most ``shard_bytes`` (with ``model.safetensors.index.json`` when there is more than one). Written to
    a temporary beside ``folder`` and renamed, so a folder that exists is whole."""
    import torch
    from safetensors.torch import save_file

    from tokenshift.assets.registry import prepare_asset

    folder = Path(folder)
    if (folder / "config.json").is_file():
        return folder
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    config = model_config(shape)
    shapes = tensor_shapes(config)
    shards: list[list[str]] = [[]]
    size = 0
    for name, dims in shapes.items():
        nbytes = 2 * int(torch.Size(dims).numel())
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    generator = torch.Generator().manual_seed(seed)
    weight_map: dict[str, str] = {}
    total = 0
    for index, names in enumerate(shards, start=1):
        file = "model.safetensors" if len(shards) == 1 else f"model-{index:05d}-of-{len(shards):05d}.safetensors"
        tensors = {}
        for name in names:
            if len(shapes[name]) == 1:  # norms (and biases): ones and zeros, as a trained model's are near
                tensors[name] = torch.ones(shapes[name], dtype=torch.bfloat16) if "norm" in name else torch.zeros(shapes[name], dtype=torch.bfloat16)
            else:
                tensors[name] = (torch.randn(shapes[name], generator=generator) * 0.02).to(torch.bfloat16)
            weight_map[name] = file
            total += tensors[name].numel() * 2
        save_file(tensors, str(tmp / file), metadata={"format": "pt"})
        del tensors
    if len(shards) > 1:
        (tmp / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    config.save_pretrained(tmp)
    tokenizer = prepare_asset(shape.tokenizer)
    for path in Path(tokenizer).iterdir():
        if path.name.startswith("tokenizer") or path.name == "special_tokens_map.json":
            shutil.copy2(path, tmp / path.name)
    tmp.rename(folder)
    return folder
