"""``hybrid`` (TokenAdapt, Sharthak et al. 2025): a local estimate from the token's pieces plus a global
estimate from the old tokens most similar to it.

- local: the pieces' rows weighted by their byte length (a long piece says more about the token);
- global: the ``k`` old rows with the highest cosine similarity to the local estimate, weighted by a
  softmax of similarity / ``temperature``. The similarity space is the old embedding matrix itself
  (TokenAdapt uses an external sentence-embedding model, which is not available offline);
- result: ``local_weight * local + (1 - local_weight) * global``.
"""

from __future__ import annotations

from typing import Any

from . import register
from .subword import piece_mean

CHUNK = 4096


def nearest_rows_mean(queries: Any, table: Any, *, k: int, temperature: float) -> Any:
    """Softmax-weighted mean of the ``k`` rows of ``table`` most cosine-similar to each query.
    queries: (B, D), table: (V, D) -> (B, D)"""
    import torch

    normed = torch.nn.functional.normalize(table.float(), dim=1)
    out = torch.empty_like(queries, dtype=torch.float32)
    for start in range(0, len(queries), CHUNK):
        q = torch.nn.functional.normalize(queries[start : start + CHUNK].float(), dim=1)
        sims, idx = (q @ normed.T).topk(k, dim=1)
        weights = torch.softmax(sims / temperature, dim=1)
        out[start : start + CHUNK] = torch.einsum("bk,bkd->bd", weights, table[idx].float())
    return out


@register("hybrid", "TokenAdapt: length-weighted pieces, blended with the nearest old tokens")
def hybrid_rows(old: Any, plan: Any, *, donor: Any = None, k: int = 8, temperature: float = 0.05, local_weight: float = 0.7) -> Any:
    """old: (V_old, D) -> (n_composed, D)"""
    local = piece_mean(old, plan, weights=plan.piece_bytes)
    if len(local) == 0:
        return local
    global_ = nearest_rows_mean(local, old, k=k, temperature=temperature)
    return local_weight * local + (1 - local_weight) * global_
