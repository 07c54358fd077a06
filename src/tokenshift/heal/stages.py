"""Stage kinds: which parameters a stage trains. Each kind is registered with its default learning rate.

    new-rows    the embedding and head rows the transplant did not copy exactly; everything else frozen
    embeddings  every embedding and head row; the body frozen
    all         every parameter
    lora        LoRA adapters (PEFT) on the body's linear layers, plus the new embedding and head rows
                (all rows where the copied rows are unknown); merged into the weights when the stage ends

Row freezing masks the gradient of the frozen rows to exactly zero; with no weight decay on those
matrices, AdamW then leaves the rows bit-for-bit unchanged. The lora stage leaves the copied rows out
of training instead: PEFT's trainable tokens hold only the new rows (see heal/lora.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..registry import Registry

if TYPE_CHECKING:
    import torch


@dataclass
class StageContext:
    """What a stage kind may need. ``copied_rows``: new ids whose rows the transplant copied from the
    original model (None where the original tokenizer is unknown)."""

    copied_rows: torch.Tensor | None = None
    lora_rank: int = 16
    lora_alpha: float = 32.0
    weight_decay: float = 0.0


@dataclass
class Trainable:
    """The optimizer's parameter groups for one stage, and the gradient hooks to remove after it."""

    groups: list[dict[str, Any]]
    hooks: list[Any] = field(default_factory=list)
    frozen_rows: int = 0
    adapters: Any = None  # lora.Adapters, merged when the stage ends

    @property
    def n_params(self) -> int:
        return sum(p.numel() for g in self.groups for p in g["params"])

    def remove(self) -> None:
        for hook in self.hooks:
            hook.remove()
        self.hooks.clear()


@dataclass(frozen=True)
class StageKind:
    name: str
    apply: Callable[[Any, StageContext], Trainable]
    default_lr: float
    summary: str


STAGE_KINDS: Registry[StageKind] = Registry("stage")


def register_stage(name: str, *, default_lr: float, summary: str) -> Callable[[Callable[..., Trainable]], Callable[..., Trainable]]:
    def wrap(fn: Callable[..., Trainable]) -> Callable[..., Trainable]:
        STAGE_KINDS.add(name, StageKind(name, fn, default_lr, summary))
        return fn

    return wrap


def get_stage_kind(name: str) -> StageKind:
    return STAGE_KINDS.find(name)


def embedding_matrices(model: Any) -> list[torch.nn.Parameter]:
    """The input embedding and, where untied, the output head weight (each once)."""
    matrices = [model.get_input_embeddings().weight]
    head = model.get_output_embeddings()
    if head is not None and head.weight is not matrices[0]:
        matrices.append(head.weight)
    return matrices


def _freeze_all(model: Any) -> None:
    for param in model.parameters():
        param.requires_grad_(False)


def _mask_rows(param: torch.nn.Parameter, rows: torch.Tensor) -> Any:
    """Zero the gradient of ``rows`` of ``param`` (V, D) before it is accumulated."""
    import torch

    keep = torch.ones(param.shape[0], 1, dtype=param.dtype, device=param.device)
    keep[rows.to(param.device)] = 0
    return param.register_hook(lambda grad: grad * keep.to(grad.dtype))


def _body_groups(params: list[Any], weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices only (not on norms and biases)."""
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    return [g for g in ({"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}) if g["params"]]


@register_stage("new-rows", default_lr=2e-3, summary="the rows the transplant did not copy; everything else frozen")
def train_new_rows(model: Any, context: StageContext) -> Trainable:
    if context.copied_rows is None:
        raise ValueError("stage 'new-rows' needs the original tokenizer to know which rows the transplant copied: "
                         "pass --teacher ORIGINAL (or heal a folder whose transplant.json names its model), or use the stage 'embeddings'")
    _freeze_all(model)
    matrices = embedding_matrices(model)
    hooks = []
    for matrix in matrices:
        matrix.requires_grad_(True)
        hooks.append(_mask_rows(matrix, context.copied_rows))
    return Trainable([{"params": matrices, "weight_decay": 0.0}], hooks, frozen_rows=int(len(context.copied_rows)))


@register_stage("embeddings", default_lr=1e-3, summary="every embedding and head row; the body frozen")
def train_embeddings(model: Any, context: StageContext) -> Trainable:
    _freeze_all(model)
    matrices = embedding_matrices(model)
    for matrix in matrices:
        matrix.requires_grad_(True)
    return Trainable([{"params": matrices, "weight_decay": 0.0}])


@register_stage("all", default_lr=1e-4, summary="every parameter")
def train_all(model: Any, context: StageContext) -> Trainable:
    matrices = embedding_matrices(model)
    ids = {id(m) for m in matrices}
    for param in model.parameters():
        param.requires_grad_(True)
    body = [p for p in model.parameters() if id(p) not in ids]
    return Trainable([{"params": matrices, "weight_decay": 0.0}, *_body_groups(body, context.weight_decay)])


@register_stage("lora", default_lr=5e-4, summary="LoRA adapters on the body's linear layers, plus the new embedding and head rows")
def train_lora(model: Any, context: StageContext) -> Trainable:
    import torch

    from .lora import add_lora

    _freeze_all(model)
    rows = model.get_input_embeddings().weight.shape[0]
    is_new = torch.ones(rows, dtype=torch.bool)
    if context.copied_rows is not None:
        copied = context.copied_rows.cpu()
        is_new[copied[copied < rows]] = False
    adapters = add_lora(model, rank=context.lora_rank, alpha=context.lora_alpha, rows=torch.nonzero(is_new).flatten().tolist())
    groups = [{"params": adapters.rows, "weight_decay": 0.0}, {"params": adapters.lora, "weight_decay": context.weight_decay}]
    frozen = rows - int(is_new.sum())
    return Trainable([g for g in groups if g["params"]], frozen_rows=frozen, adapters=adapters)


def finish_stage(model: Any, trainable: Trainable) -> None:
    """Remove the stage's gradient hooks and fold LoRA adapters into the weights."""
    from .lora import merge_lora

    trainable.remove()
    if trainable.adapters is not None:
        merge_lora(trainable.adapters)
