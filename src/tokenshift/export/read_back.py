"""Read an exported GGUF back for checking: the model through transformers' GGUF reader, the tokenizer
as llama.cpp runs it; and llama.cpp itself (``llama-cpp-python``, the optional extra ``llama``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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


GGML_TYPE_F32 = 0  # ggml_type of an f32 KV cache


def load_llama_cpp(path: str | Path, *, n_ctx: int = 512) -> Any:
    """The GGUF file at ``path`` in llama.cpp (``llama_cpp.Llama``, logits of every position kept), with an
    f32 KV cache (llama.cpp's default f16 cache alone costs 4.5e-3 nats on an f32 export) and without the
    CPU's repacked weight buffers (llama.cpp's ``--no-repack``): with them, llama-cpp-python 0.3.36
    segfaults in ``llama_decode`` on any q8_0 SmolLM2 on an AVX-512/AMX CPU, llama.cpp's own
    quantization of the f32 export included, so the crash is llama.cpp's, not the export's."""
    try:
        import llama_cpp.llama_cpp as bindings
        from llama_cpp import Llama
    except ImportError:
        raise ImportError("llama.cpp is not installed: pip install -e '.[llama]' (builds llama-cpp-python from source, "
                          "about 4 minutes on 2 cores)") from None
    default_params = bindings.llama_model_default_params

    def no_repack() -> Any:
        params = default_params()
        params.use_extra_bufts = False
        return params

    bindings.llama_model_default_params = no_repack
    try:
        return Llama(model_path=str(path), logits_all=True, n_ctx=n_ctx, n_batch=512, n_threads=os.cpu_count() or 1,
                     type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32, verbose=False)
    finally:
        bindings.llama_model_default_params = default_params
