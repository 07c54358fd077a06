"""Benchmark: tokenshift's batched OMP against mergekit-tokensurgeon's ``batch_omp``, same targets, same k.

Pair (a) of bench/transplant.py: the new tokens are Gemma-3 tokens missing from SmolLM2, the atoms
the donor (gemma3-270m) rows of the tokens both vocabularies share. Both solvers run in this process,
one after the other, on the same ``--tokens`` targets (a random sample), so the ratio is fair even on
a loaded machine; it also reports each solution's relative residual ||y - Dc|| / ||y|| (lower is a
closer sparse code). Needs a Python with mergekit installed and tokenshift importable:

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
    from tokenshift.transplant.methods.omp import batched_omp
    from tokenshift.transplant.plan import build_plan

    base, donor = load_model("smollm2-135m", device="cpu"), load_model("gemma3-270m", device="cpu")
    plan = build_plan(base.tokenizer, donor.tokenizer, old_rows=base.model.get_input_embeddings().weight.shape[0])
    exact = torch.tensor([a == "exact" for a in plan.assignment])
    anchors_new = plan.copy_new[exact[plan.copy_new]]
    table_ = donor.model.get_input_embeddings().weight.detach().float()
    atoms = table_[anchors_new]
    sample = plan.composed[torch.randperm(len(plan.composed), generator=torch.Generator().manual_seed(0))[: args.tokens]]
    targets = table_[sample]

    def residual(idx: torch.Tensor, coef: torch.Tensor) -> float:
        approx = torch.einsum("bk,bkd->bd", coef.float(), atoms[idx])
        return float(((targets - approx).norm(dim=1) / targets.norm(dim=1)).mean())

    started = time.perf_counter()
    parts = [batch_omp(targets[i : i + args.batch], atoms, args.k) for i in range(0, len(targets), args.batch)]
    theirs = time.perf_counter() - started
    their_res = residual(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
    started = time.perf_counter()
    idx, coef = batched_omp(targets, atoms, k=args.k)
    ours = time.perf_counter() - started
    our_res = residual(idx, coef)

    table = Table(title=f"OMP, k={args.k}, {len(targets):,} Gemma-3 tokens over {len(atoms):,} shared anchors in gemma3-270m's "
                        f"space ({torch.get_num_threads()} threads); the whole pair has {len(plan.composed):,} tokens")
    for column in ("solver", "seconds", "tokens/s", "mean relative residual", "projected for the whole pair (s)"):
        table.add_column(column, justify="left" if column == "solver" else "right")
    for name, seconds, res in (("mergekit-tokensurgeon batch_omp", theirs, their_res), ("tokenshift batched_omp", ours, our_res)):
        table.add_row(name, f"{seconds:.2f}", f"{len(targets) / seconds:,.0f}", f"{res:.4f}", f"{seconds * len(plan.composed) / len(targets):,.0f}")
    Console(width=200).print(table)
    print(f"tokenshift is {theirs / ours:.1f}x faster on the same targets")


if __name__ == "__main__":
    main()
