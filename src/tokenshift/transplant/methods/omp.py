"""``omp``: orthogonal matching pursuit over shared anchor tokens (Goddard & Fernandes Neto 2025, as in
mergekit's tokensurgeon).

Each composed token is written as a sparse combination of ``k`` anchors (tokens both vocabularies
share, copied exactly) in a space where the token itself has a representation, and the same
coefficients are applied to the anchors' old rows:

- with a donor (a model trained with the new tokenizer): that space is the donor's embedding matrix;
- without one: the base model's own embedding space, the token represented by its subword mean;
  OMP then re-expresses that mean with ``k`` real, frequent tokens.

The solver (:func:`batched_omp`) is vectorised over many tokens at once and never forms a residual
against every anchor more than once (tokensurgeon does so at each of the ``k`` steps):

1. one matrix product (bf16 where the hardware multiplies it fast) scores every anchor against every
   target; the ``candidates`` anchors with the highest absolute cosine are kept per target;
2. OMP runs inside those candidates on their Gram columns ("Batch-OMP", Rubinstein et al. 2008): the
   residual's correlations are ``α0 − G[:, S] γ_S``, so a step costs one (C, D) x (D,) product per
   target instead of a pass over all anchors;
3. the coefficients of the chosen support are solved once more in float32, exactly, against the raw
   (unnormalised) anchors.
"""

from __future__ import annotations

import functools
from typing import Any

from . import register
from .subword import piece_mean

CHUNK = 1024


@functools.cache
def _fast_bf16_matmul(device_type: str) -> bool:
    """Whether bf16 matrix products are fast here: on CUDA, and on CPUs with AVX-512 BF16 or AMX (elsewhere
    PyTorch emulates bf16 and a float32 product is faster)."""
    if device_type == "cuda":
        return True
    try:
        flags = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


GRAM_BYTES = 6 * 2**30  # above this the anchors' Gram matrix is not stored; columns are computed per step


def _gram_columns(atoms_n: Any, search: Any) -> Any:
    """A function (picked (b,), cand (b, C)) -> (b, C) giving <atom[cand], atom[picked]> for normalised atoms:
    read from the anchors' whole Gram matrix when it fits in ``GRAM_BYTES``, else computed from the rows."""
    import torch

    if len(search) ** 2 * search.element_size() <= GRAM_BYTES:
        gram = torch.empty(len(search), len(search), dtype=search.dtype, device=search.device)
        for start in range(0, len(search), 8192):
            gram[start : start + 8192] = search[start : start + 8192] @ search.T
        return lambda picked, cand: gram[picked[:, None], cand].float()
    return lambda picked, cand: torch.einsum("bcd,bd->bc", atoms_n[cand], atoms_n[picked])


def batched_omp(targets: Any, atoms: Any, *, k: int, candidates: int = 256, chunk: int = CHUNK) -> tuple[Any, Any]:
    """Sparse codes of ``targets`` (B, D) over ``atoms`` (A, D): indices (B, k) into atoms and float32
    coefficients (B, k) such that ``targets[b] ≈ Σ_j coef[b, j] * atoms[idx[b, j]]``.

    Atoms are picked by absolute cosine with the residual (scale-free, as textbook OMP; tokensurgeon
    picks by inner product, which gave the same fit on Gemma-3's rows); ``candidates`` bounds the
    anchors each target's pursuit can pick from (``len(atoms)`` for exact OMP)."""
    import torch

    atoms = atoms.float()
    k = min(k, len(atoms))
    candidates = min(max(candidates, k), len(atoms))
    atoms_n = torch.nn.functional.normalize(atoms, dim=1)
    search = atoms_n.to(torch.bfloat16) if _fast_bf16_matmul(atoms.device.type) else atoms_n
    gram_columns = _gram_columns(atoms_n, search)
    all_idx, all_coef = [], []
    for start in range(0, len(targets), chunk):
        y = targets[start : start + chunk].float()
        b = len(y)
        scores = torch.nn.functional.normalize(y, dim=1).to(search.dtype) @ search.T  # (b, A) cosines
        cand = scores.abs().topk(candidates, dim=1).indices  # (b, C)
        alpha0 = scores.gather(1, cand).float()
        alpha = alpha0.clone()
        chosen = torch.zeros(b, k, dtype=torch.long, device=y.device)
        cols = torch.zeros(b, candidates, k, device=y.device)  # Gram columns: candidates x chosen
        for step in range(k):
            strength = alpha.abs()
            if step:
                strength.scatter_(1, chosen[:, :step], -1.0)
            pick = strength.argmax(dim=1)
            chosen[:, step] = pick
            cols[:, :, step] = gram_columns(cand.gather(1, pick[:, None]).squeeze(1), cand)
            support = chosen[:, : step + 1]
            g_ss = cols[:, :, : step + 1].gather(1, support[:, :, None].expand(-1, -1, step + 1))  # (b, s, s)
            g_ss.diagonal(dim1=1, dim2=2).add_(1e-4 * g_ss.diagonal(dim1=1, dim2=2).mean(1, keepdim=True))
            gamma = torch.linalg.solve(g_ss, alpha0.gather(1, support))
            alpha = alpha0 - torch.einsum("bcs,bs->bc", cols[:, :, : step + 1], gamma)
        picked = cand.gather(1, chosen)  # (b, k) into atoms
        support_rows = atoms[picked]  # (b, k, D), raw rows: the exact float32 least-squares fit
        gram = support_rows @ support_rows.transpose(1, 2)
        gram.diagonal(dim1=1, dim2=2).add_(1e-6 * gram.diagonal(dim1=1, dim2=2).mean(1, keepdim=True))
        all_coef.append(torch.linalg.solve(gram, torch.einsum("bkd,bd->bk", support_rows, y)))
        all_idx.append(picked)
    return torch.cat(all_idx), torch.cat(all_coef)


def anchor_rows(plan: Any) -> tuple[Any, Any]:
    """(new ids, old ids) of the anchors: the tokens both vocabularies share byte for byte."""
    import torch

    exact = torch.tensor([a == "exact" for a in plan.assignment], dtype=torch.bool, device=plan.copy_new.device)
    mask = exact[plan.copy_new]
    return plan.copy_new[mask], plan.copy_old[mask]


def omp_codes(old: Any, plan: Any, *, donor: Any, k: int, candidates: int) -> tuple[Any, Any, Any] | None:
    """Sparse codes of the composed tokens: (anchor old ids (A,), indices (n_composed, k) into them,
    coefficients (n_composed, k)); None when there is nothing to code or no anchor."""
    anchor_new, anchor_old = anchor_rows(plan)
    if len(plan.composed) == 0 or len(anchor_old) == 0:
        return None
    if donor is not None:
        targets, atoms = donor[plan.composed].float(), donor[anchor_new].float()
    else:
        targets, atoms = piece_mean(old, plan), old[anchor_old].float()
    idx, coef = batched_omp(targets, atoms, k=k, candidates=candidates)
    return anchor_old, idx, coef


@register("omp", "orthogonal matching pursuit over shared anchors (donor space if given, else subword means)", uses_donor=True)
def omp_rows(old: Any, plan: Any, *, donor: Any = None, k: int = 8, candidates: int = 256) -> Any:
    """old: (V_old, D), donor: (V_new, D2) or None -> (n_composed, D)"""
    import torch

    codes = omp_codes(old, plan, donor=donor, k=k, candidates=candidates)
    if codes is None:
        return piece_mean(old, plan)
    anchor_old, idx, coef = codes
    return torch.einsum("bk,bkd->bd", coef, old[anchor_old][idx].float())
