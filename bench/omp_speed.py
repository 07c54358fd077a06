"""Benchmark: tokenshift's batched OMP against mergekit-tokensurgeon's ``batch_omp``, same targets, same k.

Pair (a) of bench/transplant.py: the new tokens are Gemma-3 tokens missing from SmolLM2, the atoms
the donor (gemma3-270m) rows of the tokens both vocabularies share. tokenshift's solver runs on every
token of the pair (its Gram matrix is a fixed cost, so a sample would misstate it); tokensurgeon's,
whose cost is linear in the tokens (k passes over all anchors per token, in batches of 512), runs on
a random sample of ``--tokens`` and is projected to the whole pair. Both run in this process, one
after the other. The relative residual ||y - Dc|| / ||y|| (lower is a closer sparse code) is compared
on the sample. Needs a Python with mergekit installed and tokenshift importable:

    PYTHONPATH=src .venv-peers/bin/python bench/omp_speed.py [--tokens 2048] [--k 8]
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--batch", type=int, default=512, help="tokensurgeon's batch size (its default)")
    args = parser.parse_args()

    from mergekit.tokensurgeon.omp import batch_omp
    from rich.console import Console
    from rich.table import Table

    from tokenshift.modeling import load_model
    from tokenshift.transplant.methods.omp import anchor_rows, batched_omp
    from tokenshift.transplant.plan import build_plan

    base, donor = load_model("smollm2-135m", device="cpu"), load_model("gemma3-270m", device="cpu")
    plan = build_plan(base.tokenizer, donor.tokenizer, old_rows=base.model.get_input_embeddings().weight.shape[0])
    anchors_new, _ = anchor_rows(plan)
    table_ = donor.model.get_input_embeddings().weight.detach().float()
    atoms, targets = table_[anchors_new], table_[plan.composed]
    sample = torch.randperm(len(targets), generator=torch.Generator().manual_seed(0))[: args.tokens]

    def residual(idx: torch.Tensor, coef: torch.Tensor) -> float:
        approx = torch.einsum("bk,bkd->bd", coef.float(), atoms[idx])
        return float(((targets[sample] - approx).norm(dim=1) / targets[sample].norm(dim=1)).mean())

    started = time.perf_counter()
    parts = [batch_omp(targets[sample[i : i + args.batch]], atoms, args.k) for i in range(0, len(sample), args.batch)]
    theirs = time.perf_counter() - started
    their_res = residual(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
    started = time.perf_counter()
    idx, coef = batched_omp(targets, atoms, k=args.k)
    ours = time.perf_counter() - started
    our_res = residual(idx[sample], coef[sample])
    their_whole = theirs * len(targets) / len(sample)

    table = Table(title=f"OMP, k={args.k}, Gemma-3 tokens over {len(atoms):,} shared anchors in gemma3-270m's space "
                        f"({torch.get_num_threads()} threads); the whole pair has {len(targets):,} tokens")
    for column in ("solver", "tokens timed", "seconds", "whole pair (s)", f"mean relative residual ({len(sample):,} sampled)"):
        table.add_column(column, justify="left" if column == "solver" else "right")
    table.add_row("mergekit-tokensurgeon batch_omp", f"{len(sample):,}", f"{theirs:.1f}", f"{their_whole:,.0f} (projected)", f"{their_res:.4f}")
    table.add_row("tokenshift batched_omp", f"{len(targets):,}", f"{ours:.1f}", f"{ours:,.0f} (measured)", f"{our_res:.4f}")
    Console(width=200).print(table)
    print(f"tokenshift solves the whole pair {their_whole / ours:.1f}x faster than tokensurgeon's projected time")


if __name__ == "__main__":
    main()
