"""Read an exported GGUF back for checking: the model through transformers' GGUF reader, the tokenizer
as llama.cpp runs it."""

from __future__ import annotations

from pathlib import Path

from ..modeling.load import LoadedModel


def load_gguf(path: str | Path, *, device: str = "cpu", name: str | None = None) -> LoadedModel:
    """The GGUF file at ``path`` as a :class:`LoadedModel`: weights dequantized to float32 by
    ``AutoModelForCausalLM.from_pretrained(folder, gguf_file=...)`` (which undoes the llama Q/K
    permutation), and the file's vocabulary with llama.cpp's pre-tokenizer for its
    ``tokenizer.ggml.pre`` (:func:`tokenshift.tokenizer.load.from_gguf`)."""
    import torch
    from transformers import AutoModelForCausalLM

    from ..tokenizer.load import from_gguf

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file at {path}; pass the path of a .gguf file")
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    model.to(device)
    model.eval()
    return LoadedModel(model=model, tokenizer=from_gguf(path), name=name or path.name, device=device, dtype="float32")
