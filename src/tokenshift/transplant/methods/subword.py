"""``subword`` (FVT, Gee et al. 2022): the mean of the old rows of the token's pieces under the old tokenizer."""

from __future__ import annotations

from typing import Any

from . import register


def piece_mean(old: Any, plan: Any, weights: Any = None) -> Any:
    """Weighted mean of each composed token's piece rows. old: (V_old, D), weights: (n_pieces,) or None."""
    import torch

    rows = old[plan.piece_ids].float()
    segments = plan.piece_segments()
    w = torch.ones(len(plan.piece_ids), device=old.device) if weights is None else weights.float().to(old.device)
    sums = torch.zeros(len(plan.composed), old.shape[1], device=old.device).index_add_(0, segments, rows * w[:, None])
    totals = torch.zeros(len(plan.composed), device=old.device).index_add_(0, segments, w)
    return sums / totals.clamp_min(1e-12)[:, None]


@register("subword", "mean of the token's pieces under the old tokenizer (FVT)")
def subword_mean(old: Any, plan: Any, *, donor: Any = None) -> Any:
    """old: (V_old, D) -> (n_composed, D)"""
    return piece_mean(old, plan)
