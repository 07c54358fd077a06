"""The exportable architectures: each ``config.model_type`` registered with its GGUF
``general.architecture``, its tensor layout and hyperparameter keys (one file per family:
:mod:`.llama`, :mod:`.gemma3`). Global tensors are named alike in every family::

    model.embed_tokens.weight     token_embd.weight
    model.norm.weight             output_norm.weight
    lm_head.weight                output.weight         (left out when tied, as the converter does)

Names come from ``gguf.constants`` (``TENSOR_NAMES``), checked against the architecture's ``MODEL_TENSORS``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import gemma3, llama
from .hparams import head_dim as head_dim
from .hparams import rope_settings as rope_settings
from .llama import llama3_rope_factors as llama3_rope_factors
from .llama import permute as permute

if TYPE_CHECKING:
    import torch


def _unchanged(name: str, tensor: torch.Tensor, config: Any) -> torch.Tensor:
    return tensor


def _no_extra_tensors(config: Any) -> Iterator[tuple[str, torch.Tensor]]:
    return iter(())


@dataclass(frozen=True)
class ArchSpec:
    """One exportable architecture.

    ``layer_tensors``: HF name inside ``model.layers.N`` -> ``gguf.MODEL_TENSOR`` member.
    ``biases``: members that may carry a ``.bias``. ``problems(config, gguf_arch, biases=...)``: what
    llama.cpp's graph would compute differently (each one refuses the export).
    ``write_hparams(writer, config, rows)``: the ``{arch}.*`` keys. ``transform(gguf_name, tensor, config)``:
    a tensor in HF layout ``(out, in)`` as llama.cpp wants it. ``extra_tensors(config)``: tensors
    llama.cpp needs that the model does not hold."""

    model_type: str  # transformers' config.model_type
    gguf_arch: str  # GGUF general.architecture
    examples: str
    layer_tensors: Mapping[str, str]
    biases: frozenset[str]
    problems: Callable[..., list[str]]
    write_hparams: Callable[[Any, Any, int], None]
    transform: Callable[[str, torch.Tensor, Any], torch.Tensor] = _unchanged
    extra_tensors: Callable[[Any], Iterator[tuple[str, torch.Tensor]]] = _no_extra_tensors


ARCHITECTURES: dict[str, ArchSpec] = {
    spec.model_type: spec
    for spec in [
        ArchSpec("llama", "llama", "SmolLM2, Llama-3", llama.LAYER_TENSORS, frozenset(), llama.llama_problems,
                 llama.write_llama_hparams, transform=llama.permute_qk, extra_tensors=llama.rope_freqs),
        ArchSpec("qwen2", "qwen2", "Qwen2, Qwen2.5", llama.LAYER_TENSORS, frozenset({"ATTN_Q", "ATTN_K", "ATTN_V"}),
                 llama.llama_problems, llama.write_llama_hparams),
        ArchSpec("gemma3_text", "gemma3", "Gemma-3", gemma3.LAYER_TENSORS, frozenset(), gemma3.gemma3_problems,
                 gemma3.write_gemma3_hparams, transform=gemma3.shift_norms),
    ]
}

_GLOBAL = {"model.embed_tokens": "TOKEN_EMBD", "model.norm": "OUTPUT_NORM", "lm_head": "OUTPUT"}
_LAYER_NAME = re.compile(r"^model\.layers\.(?P<bid>\d+)\.(?P<part>.+)$")


def supported() -> str:
    """The supported architectures in words, for error messages."""
    return ", ".join(f"{spec.model_type} ({spec.examples})" for spec in ARCHITECTURES.values())


def check_architecture(config: Any, name: str) -> ArchSpec:
    """The registered architecture of ``config``; a one-line ValueError naming the supported ones otherwise."""
    model_type = getattr(config, "model_type", None)
    spec = ARCHITECTURES.get(str(model_type))
    classes = ", ".join(getattr(config, "architectures", None) or [])
    if spec is None:
        kind = f"a {model_type} model" + (f" ({classes})" if classes else "")
        raise ValueError(f"model {name!r} is {kind}; GGUF export supports {supported()}")
    problems = spec.problems(config, spec.gguf_arch, biases=bool(spec.biases))
    if problems:
        raise ValueError(f"model {name!r} ({spec.model_type}) has {'; '.join(problems)}: not exported to GGUF")
    return spec


def write_hparams(writer: Any, config: Any, spec: ArchSpec, *, rows: int) -> None:
    """The ``{arch}.*`` keys llama.cpp reads; ``rows``: embedding rows (vocab size)."""
    spec.write_hparams(writer, config, rows)


def _gguf_name(hf_name: str, spec: ArchSpec) -> str | None:
    """The GGUF name of HF tensor ``hf_name`` in ``spec``'s layout, or None when it has no place there."""
    import gguf

    stem, _, kind = hf_name.rpartition(".")
    bid = None
    member = _GLOBAL.get(stem)
    if member is None and (match := _LAYER_NAME.match(stem)):
        bid, member = int(match["bid"]), spec.layer_tensors.get(match["part"])
    if member is None or kind not in ("weight", "bias") or (kind == "bias" and member not in spec.biases):
        return None
    tensor = gguf.MODEL_TENSOR[member]
    arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == spec.gguf_arch)
    assert tensor in gguf.MODEL_TENSORS[arch], (member, spec.gguf_arch)
    return f"{gguf.TENSOR_NAMES[tensor].format(bid=bid)}.{kind}"


@dataclass(frozen=True)
class PlannedTensor:
    """One tensor of the GGUF file: its name there, the HF tensor it comes from (None for an extra tensor
    such as ``rope_freqs``), and its shape in HF layout ``(out, in)``."""

    name: str
    source: str | None
    shape: tuple[int, ...]


def plan_tensors(shapes: Mapping[str, tuple[int, ...]], spec: ArchSpec, config: Any, *, tied: bool) -> list[PlannedTensor]:
    """Every tensor llama.cpp needs, in file order, from the HF tensors' names and shapes alone (no data):
    the architecture's extra tensors, then the model's in its order. A tied head is left out, as the
    converter does; RoPE tables are computed by llama.cpp.

    Raises a ValueError listing every HF tensor that has no place in the layout."""
    names = {hf_name: _gguf_name(hf_name, spec) for hf_name in shapes
             if ".rotary_emb" not in hf_name and not (tied and hf_name == "lm_head.weight")}
    unplaced = [hf_name for hf_name, name in names.items() if name is None]
    if unplaced:
        shown = ", ".join(unplaced[:6]) + (f" and {len(unplaced) - 6} more" if len(unplaced) > 6 else "")
        raise ValueError(f"{len(unplaced)} tensors have no place in llama.cpp's {spec.gguf_arch} layout ({shown}); "
                         f"this model is not a plain {spec.model_type} one and is not exported")
    planned = [PlannedTensor(name, None, tuple(tensor.shape)) for name, tensor in spec.extra_tensors(config)]
    planned += [PlannedTensor(name, hf_name, tuple(shapes[hf_name])) for hf_name, name in names.items() if name is not None]
    return planned


def extra_tensor(name: str, spec: ArchSpec, config: Any) -> torch.Tensor:
    """The extra tensor ``name`` (see :attr:`ArchSpec.extra_tensors`), float32."""
    return dict(spec.extra_tensors(config))[name]


def gguf_tensor(name: str, tensor: torch.Tensor, spec: ArchSpec, config: Any) -> torch.Tensor:
    """HF tensor ``tensor`` as llama.cpp wants GGUF tensor ``name``: float32, transformed, contiguous."""
    import torch

    tensor = tensor.detach().to("cpu", dtype=torch.float32)
    return spec.transform(name, tensor, config).contiguous()
