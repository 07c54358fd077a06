"""``omp``: orthogonal matching pursuit over shared anchor tokens (Goddard & Fernandes Neto 2025, as in
mergekit's tokensurgeon).

Each composed token is written as a sparse combination of ``k`` anchors (tokens both vocabularies
share, copied exactly) in a space where the token itself has a representation, and the same
coefficients are applied to the anchors' old rows:

- with a donor (a model trained with the new tokenizer): that space is the donor's embedding matrix;
- without one: the base model's own embedding space, the token represented by its subword mean;
  OMP then re-expresses that mean with ``k`` real, frequent tokens.

Vectorised over many tokens at once: anchors are first narrowed to the ``candidates`` most
cosine-similar ones per token (one matrix product), then ``k`` greedy steps each solve a batch of
small least-squares problems.
"""

from __future__ import annotations

from typing import Any

from . import register
from .subword import piece_mean

CHUNK = 512


def batched_omp(targets: Any, atoms: Any, *, k: int, candidates: int = 64) -> tuple[Any, Any]:
    """Sparse codes of ``targets`` (B, D) over ``atoms`` (A, D): indices (B, k) into atoms, coefficients (B, k)."""
    import torch

    k = min(k, len(atoms))
    candidates = min(max(candidates, k), len(atoms))
    atoms = atoms.float()
    atoms_n = torch.nn.functional.normalize(atoms, dim=1)
    all_idx, all_coef = [], []
    for start in range(0, len(targets), CHUNK):
        y = targets[start : start + CHUNK].float()
        b = len(y)
        cand = (torch.nn.functional.normalize(y, dim=1) @ atoms_n.T).abs().topk(candidates, dim=1).indices
        dictionary, dictionary_n = atoms[cand], atoms_n[cand]  # (b, C, D)
        residual = y.clone()
        chosen = torch.zeros(b, k, dtype=torch.long, device=y.device)
        taken = torch.zeros(b, candidates, dtype=torch.bool, device=y.device)
        rows = torch.arange(b, device=y.device)
        coef = torch.zeros(b, 0, device=y.device)
        for step in range(k):
            scores = torch.einsum("bcd,bd->bc", dictionary_n, residual).abs().masked_fill(taken, -1.0)
            pick = scores.argmax(dim=1)
            chosen[:, step] = pick
            taken[rows, pick] = True
            support = dictionary[rows[:, None], chosen[:, : step + 1]]  # (b, s, D)
            # least squares through the s x s normal equations: batched lstsq on (D, s) systems is far slower on CPU
            gram = support @ support.transpose(1, 2)
            gram.diagonal(dim1=1, dim2=2).add_(1e-6 * gram.diagonal(dim1=1, dim2=2).mean(1, keepdim=True))
            coef = torch.linalg.solve(gram, torch.einsum("bsd,bd->bs", support, y))
            residual = y - torch.einsum("bs,bsd->bd", coef, support)
        all_idx.append(cand.gather(1, chosen))
        all_coef.append(coef)
    return torch.cat(all_idx), torch.cat(all_coef)


@register("omp", "orthogonal matching pursuit over shared anchors (donor space if given, else subword means)", uses_donor=True)
def omp_rows(old: Any, plan: Any, *, donor: Any = None, k: int = 8, candidates: int = 64) -> Any:
    """old: (V_old, D), donor: (V_new, D2) or None -> (n_composed, D)"""
    import torch

    exact = torch.tensor([a == "exact" for a in plan.assignment], dtype=torch.bool, device=plan.copy_new.device)
    anchor_mask = exact[plan.copy_new]
    anchor_new, anchor_old = plan.copy_new[anchor_mask], plan.copy_old[anchor_mask]
    if len(plan.composed) == 0 or len(anchor_old) == 0:
        return piece_mean(old, plan)
    if donor is not None:
        targets, atoms = donor[plan.composed].float(), donor[anchor_new].float()
    else:
        targets, atoms = piece_mean(old, plan), old[anchor_old].float()
    idx, coef = batched_omp(targets, atoms, k=k, candidates=candidates)
    return torch.einsum("bk,bkd->bd", coef, old[anchor_old][idx].float())
