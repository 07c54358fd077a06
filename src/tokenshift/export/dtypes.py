"""The number formats a GGUF export writes its weight matrices in, and how one tensor is encoded.

Which tensors keep float32 follows llama.cpp's ``convert_hf_to_gguf.py``: 1-D tensors (norms, biases,
``rope_freqs``) and everything not named ``*.weight`` stay F32 whatever the file type; the 2-D
``*.weight`` matrices take the chosen format. A matrix whose rows do not split into whole q8_0 blocks
(32 values) falls back to F16, as the converter does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..registry import lookup

if TYPE_CHECKING:
    import numpy as np

GgufDType = Literal["f32", "f16", "bf16", "q8_0"]


@dataclass(frozen=True)
class DTypeSpec:
    """One ``--dtype`` choice: the ggml type of the weight matrices and the file type llama.cpp records."""

    name: str
    quantization: str  # a gguf.GGMLQuantizationType member name
    file_type: str  # a gguf.LlamaFileType member name
    description: str


DTYPES: dict[str, DTypeSpec] = {
    spec.name: spec
    for spec in [
        DTypeSpec("f32", "F32", "ALL_F32", "float32: exact, 4 bytes per weight"),
        DTypeSpec("f16", "F16", "MOSTLY_F16", "float16: 2 bytes per weight, 11-bit mantissa"),
        DTypeSpec("bf16", "BF16", "MOSTLY_BF16", "bfloat16: 2 bytes per weight, float32's range, 8-bit mantissa"),
        DTypeSpec("q8_0", "Q8_0", "MOSTLY_Q8_0", "8-bit blocks of 32 with one f16 scale: 1.06 bytes per weight"),
    ]
}


def get_dtype(name: str) -> DTypeSpec:
    """The registered ``--dtype`` ``name``, or a ValueError with "did you mean"."""
    return lookup(DTYPES, name, what="GGUF dtype")


def keeps_float32(name: str, ndim: int) -> bool:
    """Whether GGUF tensor ``name`` stays F32 in every file type (as llama.cpp's converter decides)."""
    return ndim <= 1 or name.endswith("_norm.weight") or not name.endswith(".weight")


# Rows quantized per call: bounds the quantizer's temporaries (several times its input) for a large
# embedding matrix; every type here quantizes rows independently, so the bytes are the same.
CHUNK_ROWS = 4096


def target_type(name: str, shape: tuple[int, ...], dtype: DTypeSpec) -> str:
    """The ggml type GGUF tensor ``name`` of ``shape`` is written in under ``dtype`` (see the module docstring)."""
    import gguf

    target = "F32" if keeps_float32(name, len(shape)) else dtype.quantization
    block, _ = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[target]]
    return "F16" if shape and shape[-1] % block else target


def encoded_bytes(shape: tuple[int, ...], kind: str) -> int:
    """Bytes of a tensor of ``shape`` (whole blocks) in ggml type ``kind``."""
    import gguf

    block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[kind]]
    numel = 1
    for d in shape:
        numel *= d
    return numel // block * size


def encode(name: str, array: np.ndarray, dtype: DTypeSpec) -> tuple[np.ndarray, str]:
    """``array`` (float32, HF layout ``(out, in)``) encoded for GGUF tensor ``name``.

    Returns (data, ggml type name): data is float32/float16 values, or the raw uint8 blocks of a
    quantized type (the writer is then given the type, and takes the shape from the bytes).
    """
    import gguf
    import numpy as np
    from gguf.quants import quantize

    kind = target_type(name, tuple(array.shape), dtype)
    qtype = gguf.GGMLQuantizationType[kind]
    if array.ndim < 2 or array.shape[0] <= CHUNK_ROWS:
        return quantize(array, qtype), kind
    return np.concatenate([quantize(array[i:i + CHUNK_ROWS], qtype) for i in range(0, array.shape[0], CHUNK_ROWS)]), kind


def bytes_per_weight(dtype: DTypeSpec) -> float:
    """Bytes one weight of a matrix takes in ``dtype`` (for a disk-space estimate)."""
    import gguf

    block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[dtype.quantization]]
    return size / block
