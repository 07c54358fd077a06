"""LoRA through Hugging Face PEFT, merged back into the weights at the end so that the healed model is a
plain Hugging Face folder (no peft needed to load it).

The adapters go on every ``nn.Linear`` of the model's body (never the output head). Embedding rows are
trained the way PEFT's ``trainable_token_indices`` does: only the given rows, held in a small
(n_rows, D) matrix per embedding (the head's rows follow the input embedding's where they are tied),
written into the full matrices on merging; every other row stays bit-for-bit as it was.

Adapters are injected in place (``LoraModel``), so the model object stays the one the trainer and the
checkpoints work on; only the names of the wrapped parameters change while the adapters are in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn


@dataclass
class Adapters:
    """The PEFT tuner that holds a model's adapters, and their trainable parameters: ``lora`` (the
    A and B matrices) and ``rows`` (the trained embedding rows; empty when no rows are trained)."""

    tuner: Any  # peft.LoraModel; its .model is the model the adapters were injected into
    lora: list[nn.Parameter]
    rows: list[nn.Parameter]


def _module_name(model: nn.Module, module: nn.Module) -> str:
    return next(name for name, m in model.named_modules() if m is module)


def add_lora(model: Any, *, rank: int, alpha: float, rows: Sequence[int] = (), layers: int | None = None,
             seed: int | None = None) -> Adapters:
    """Inject LoRA adapters (rank ``rank``, scale ``alpha / rank``) into every ``nn.Linear`` of the
    model's body (``get_decoder()``), or only of its first ``layers`` decoder layers, and make the
    embedding rows ``rows`` (ids) trainable; every other parameter is frozen. ``seed``: the adapters'
    random start comes from it (and not from whatever drew from torch's global generator before)."""
    import torch
    from peft import LoraConfig, LoraModel

    if rank < 1:
        raise ValueError(f"LoRA rank must be at least 1, got {rank}")
    body, head = model.get_decoder(), model.get_output_embeddings()
    prefix = _module_name(model, body)
    allowed = None if layers is None else {id(m) for layer in body.layers[:layers] for m in layer.modules()}
    targets = [f"{prefix}.{name}" if prefix else name for name, module in body.named_modules()
               if isinstance(module, nn.Linear) and module is not head and (allowed is None or id(module) in allowed)]
    if not targets:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layers in its body for LoRA; use the stage 'all' instead")
    token_indices = None
    if len(rows):
        if getattr(head, "bias", None) is not None:
            # PEFT's trainable tokens compute a wrapped head as a bias-free linear layer.
            raise ValueError(f"{type(model).__name__}'s output head has a bias, which PEFT's trainable tokens (the new rows of "
                             "the stage 'lora') would drop; use the stages new-rows then all instead")
        ids = sorted(int(i) for i in rows)
        token_indices = {_module_name(model, model.get_input_embeddings()): ids}
        if head.weight is not model.get_input_embeddings().weight:
            token_indices[_module_name(model, head)] = ids
        # A tied head is wrapped by PEFT itself, sharing the input embedding's trainable rows.
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets, trainable_token_indices=token_indices)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        tuner = LoraModel(model, config, "default")
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    lora = [p for name, p in named if ".lora_" in name]
    trained_rows = [p for name, p in named if "trainable_tokens_delta" in name]
    if len(lora) + len(trained_rows) != len(named):
        raise RuntimeError(f"unexpected trainable parameters after injecting LoRA: {[n for n, _ in named]}")
    return Adapters(tuner, lora, trained_rows)


def merge_lora(adapters: Adapters) -> int:
    """Fold the adapters and the trained rows into the model's weights and put the plain layers back
    (in place; tied embeddings stay tied); return how many LoRA layers were merged."""
    from peft.tuners.lora import LoraLayer

    merged = sum(isinstance(m, LoraLayer) for m in adapters.tuner.model.modules())
    adapters.tuner.merge_and_unload()
    return merged
