"""Machinery shared by the recipes that train only the rows a transplant did not copy.

- :func:`new_row_ids`: which ids those are (from ``transplant.json``'s ``copied_ids``);
- :class:`RowAdam`: Adam that updates a row only on steps where it got a gradient, with its own step
  count for the bias correction (a "lazy" Adam, as TensorFlow's LazyAdam and torch's SparseAdam do).
  Plain Adam keeps moving a row on momentum long after the batch that saw it; for rows that occur a
  handful of times in a CPU run that drift is most of their movement;
- :class:`NewRowEmbedding`: the input embedding with the new rows as one small trainable matrix, so a
  backward pass never touches (or allocates a gradient for) the vocabulary's other rows;
- :func:`truncated`: run only the first ``layers`` decoder layers (then the final norm).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn


def transplant_record(model_dir: str | Path) -> dict:
    """``MODEL_DIR/transplant.json`` (empty when the folder has none)."""
    report = Path(model_dir) / "transplant.json"
    return json.loads(report.read_text(encoding="utf-8")) if report.is_file() else {}


def copied_ids_from_report(model_dir: str | Path) -> list[list[int]] | None:
    """``copied_ids`` ([start, stop) runs) of ``MODEL_DIR/transplant.json``, or None if it has none."""
    runs = transplant_record(model_dir).get("copied_ids")
    return [list(map(int, run)) for run in runs] if runs is not None else None


def ids_from_runs(runs: list[list[int]]) -> torch.Tensor:
    parts = [torch.arange(start, stop) for start, stop in runs if stop > start]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)


def new_row_ids(copied: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Ids below ``vocab_size`` (the tokenizer's; padded rows above it are never emitted) whose rows
    were not copied."""
    is_new = torch.ones(vocab_size, dtype=torch.bool)
    copied = copied[copied < vocab_size]
    is_new[copied] = False
    return torch.nonzero(is_new).flatten()


def embed_scale(model: Any) -> float:
    """The factor the model's embedding module multiplies looked-up rows by (Gemma: sqrt(hidden))."""
    scale = getattr(model.get_input_embeddings(), "embed_scale", None)
    return float(scale) if scale is not None else 1.0


class NewRowEmbedding(nn.Module):
    """``forward(ids) -> (B, L, D)`` embeddings: frozen rows from ``weight``, new rows from the
    trainable ``rows`` (n_new, D), both times the model's embedding scale."""

    def __init__(self, model: Any, new_ids: torch.Tensor) -> None:
        super().__init__()
        self.embedding = model.get_input_embeddings()
        weight = self.embedding.weight
        self.register_buffer("new_ids", new_ids.to(weight.device), persistent=False)
        slot = torch.full((weight.shape[0],), -1, dtype=torch.long, device=weight.device)
        slot[self.new_ids] = torch.arange(len(new_ids), device=weight.device)
        self.register_buffer("slot", slot, persistent=False)
        self.rows = nn.Parameter(weight.detach()[self.new_ids].clone().float())
        self.scale = embed_scale(model)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            base = self.embedding(ids)
        slot = self.slot[ids]
        new = self.rows[slot.clamp(min=0)] * self.scale
        return torch.where((slot >= 0)[..., None], new.to(base.dtype), base)

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy the trained rows into the model's embedding matrix."""
        weight = self.embedding.weight
        weight[self.new_ids] = self.rows.detach().to(weight.dtype)


class RowAdam:
    """Adam over the rows of one (n, D) parameter, updating only rows whose gradient is nonzero, each
    with its own step count (bias correction per row)."""

    def __init__(self, param: torch.Tensor, *, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.param = param
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.m = torch.zeros_like(param, dtype=torch.float32)
        self.v = torch.zeros_like(param, dtype=torch.float32)
        self.count = torch.zeros(param.shape[0], dtype=torch.float32, device=param.device)

    @torch.no_grad()
    def step(self) -> int:
        """One update from ``param.grad``; returns how many rows moved. Clears the gradient."""
        grad = self.param.grad
        if grad is None:
            return 0
        touched = torch.nonzero(grad.abs().sum(1) > 0).flatten()
        if len(touched):
            g = grad[touched].float()
            b1, b2 = self.betas
            self.m[touched] = b1 * self.m[touched] + (1 - b1) * g
            self.v[touched] = b2 * self.v[touched] + (1 - b2) * g * g
            self.count[touched] += 1
            c = self.count[touched][:, None]
            m_hat = self.m[touched] / (1 - b1**c)
            v_hat = self.v[touched] / (1 - b2**c)
            self.param[touched] -= (self.lr * m_hat / (v_hat.sqrt() + self.eps)).to(self.param.dtype)
        self.param.grad = None
        return int(len(touched))


def hidden_state_mse(hidden: torch.Tensor, target: torch.Tensor, positions: int | None = None) -> torch.Tensor:
    """Squared difference of compared hidden states (fp32), averaged over ``positions`` x width:
    by default the rows given; a larger count makes this one bucket's share of a mean over more."""
    squared = (hidden.float() - target.float()).pow(2)
    return squared.mean() if positions is None else squared.sum() / (positions * target.shape[-1])


def padded_ids(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask), both (len(rows), longest): each row of ids left-aligned, ``pad`` after it."""
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        ids[r, : len(row)] = torch.tensor(row)
        mask[r, : len(row)] = 1
    return ids, mask


def decoder_depth(model: Any) -> int:
    return len(model.get_decoder().layers)


def target_layer(model: Any, layer: float) -> int:
    """``layer`` >= 1: that many decoder layers; below 1: that fraction of the model's depth (at least 1)."""
    depth = decoder_depth(model)
    count = int(layer) if layer >= 1 else max(1, round(layer * depth))
    if not 1 <= count <= depth:
        raise ValueError(f"distill layer {layer} is outside the model's 1..{depth} decoder layers; pass a fraction in (0, 1) or a count")
    return count


@contextmanager
def truncated(model: Any, layers: int) -> Iterator[None]:
    """Inside the block, the model's decoder runs its first ``layers`` layers only, then its final norm
    (every decoder transformers ships iterates ``self.layers``; see tests)."""
    decoder = model.get_decoder()
    full = decoder.layers
    decoder.layers = full[:layers]
    try:
        yield
    finally:
        decoder.layers = full


@contextmanager
def autocast(device: str, mixed: str) -> Iterator[None]:
    """bf16/fp16 autocast on ``device`` when ``mixed`` asks for it, else nothing."""
    if mixed in ("bf16", "fp16"):
        kind = "cuda" if device.startswith("cuda") else "cpu"
        with torch.autocast(kind, dtype=torch.bfloat16 if mixed == "bf16" else torch.float16):
            yield
    else:
        yield
