"""``mean``: every composed token gets the mean of all old rows (the baseline of baselines)."""

from __future__ import annotations

from typing import Any

from . import register


@register("mean", "mean of all old rows")
def mean_rows(old: Any, plan: Any, *, donor: Any = None) -> Any:
    """old: (V_old, D) -> (n_composed, D)"""
    return old.float().mean(0, keepdim=True).expand(len(plan.composed), -1).clone()
