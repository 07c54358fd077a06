"""Convert a GGUF checkpoint into a normal Hugging Face safetensors folder (dequantized once, fp32)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def gguf_to_hf_folder(gguf_path: Path, out: Path) -> dict[str, Any]:
    """Dequantize ``gguf_path`` with transformers' GGUF reader and save model + tokenizer into ``out``.

    The result loads with ``AutoModelForCausalLM.from_pretrained(out)`` without ``gguf_file``. Weights
    stay float32: the dequantized values are exact in fp32 and would be rounded in bf16.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from ..tokenizer.load import save_gguf_tokenizer

    gguf_path = Path(gguf_path)
    folder, name = str(gguf_path.parent), gguf_path.name
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = quantized.config
    # A model loaded from GGUF is flagged as quantized and refuses save_pretrained; a fresh model
    # built from the same config without that flag takes the dequantized weights.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict(), assign=True)
    plain.tie_weights()
    plain.generation_config = quantized.generation_config
    plain.save_pretrained(str(out), safe_serialization=True)
    save_gguf_tokenizer(gguf_path, out)
    return {
        "architecture": type(plain).__name__,
        "parameters": sum(p.numel() for p in plain.parameters()),
        "vocab_size": int(config.vocab_size),
        "dtype": "float32",
        "source_gguf": gguf_path.name,
    }
