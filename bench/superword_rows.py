"""Benchmark: how to initialise the rows of superwords (multi-word tokens) in a domain extension.

``adapt`` extends the model's tokenizer with subwords and superwords learned on the domain text and
transplants the model onto it training-free. This bench asks which rows the *superwords* should start
from. Every arm changes only the superwords' rows (input and, for tied models, output: one row); the
subwords keep ``auto``'s rows (the plain piece mean x 0.92). Each superword's pieces are the old tokens
that spell it. Arms:

    mean xS        the plain mean of the pieces, shrunk by S (S = 0.92 is what auto gives every new token)
    later xS       pieces weighted by their position (1, 2, ..., n): the later words weigh more (input role:
                   what comes next depends most on the last words read); later2: by position squared
    last xS        the last piece's row
    first          the first piece's row (output role: a superword is predicted where its first piece would be)
    first+last     the mean of the first and the last piece's rows, x 0.92

Split, tokenizer and evaluation as ``adapt`` does them: the leading ``--max-bytes`` of ``DOMAIN:train``
split by document; the tokenizer extended on the adaptation documents; bits per byte (zero-shot, no
heal) on a sample spread over the **validation** documents (where a default may be chosen) and over the
held-out documents (reported only).

    python bench/superword_rows.py --model smollm2-135m --domains man-fr man-en [--max-bytes 1000000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ARMS = ("mean x0.92", "mean x0.8", "mean x0.7", "mean x0.6", "mean x1.0", "mean x1.1", "mean x1.25", "later x0.85", "later x0.92",
        "later x1.1", "later2 x0.92", "last x0.92", "first", "first+last x0.92")


def arm_rows(arm: str, old, pieces: list[int]):
    import torch

    rows = old[pieces].float()
    n = len(pieces)
    name, _, scale = arm.partition(" x")
    s = float(scale) if scale else 1.0
    if name == "mean":
        return rows.mean(0) * s
    if name.startswith("later"):  # later: position ** 1, later2: position ** 2
        w = torch.arange(1, n + 1, dtype=torch.float32) ** float(name.removeprefix("later") or 1)
        return (rows * w[:, None]).sum(0) / w.sum() * s
    if name == "last":
        return rows[-1] * s
    if name == "first":
        return rows[0] * s
    if name == "first+last":
        return (rows[0] + rows[-1]) / 2 * s
    raise ValueError(arm)


def run_domain(model: str, domain: str, max_bytes: int, arms: tuple[str, ...]) -> list[dict]:
    import torch

    from tokenshift.data import TextSet, load_texts
    from tokenshift.data.documents import spread_sample
    from tokenshift.domain import AdaptConfig
    from tokenshift.domain.run import DEFAULT_NEW_TOKENS, EVAL_BYTES, MAX_WORDS, _write_jsonl, split_domain
    from tokenshift.evaluate import evaluate_loaded
    from tokenshift.modeling import load_model
    from tokenshift.modeling.load import LoadedModel, model_location
    from tokenshift.tokenizer import load_tokenizer
    from tokenshift.train import TrainConfig, train_tokenizer
    from tokenshift.transplant import TransplantConfig, transplant
    from tokenshift.transplant.plan import build_plan

    location = model_location(model)
    config = AdaptConfig(text=(f"{domain}:train",), max_bytes=max_bytes)
    adaptation, validation, held = split_domain([load_texts(f"{domain}:train", max_bytes=max_bytes)], config)
    sets = {"validation": TextSet("validation documents", spread_sample(validation, EVAL_BYTES)),
            "held-out": TextSet("held-out documents", spread_sample(held, EVAL_BYTES))}
    base = load_tokenizer(location)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-superword-rows-") as scratch_name:
        scratch = Path(scratch_name)
        started = time.perf_counter()
        tokenizer, _ = train_tokenizer([_write_jsonl(scratch / "adaptation.jsonl", adaptation)],
                                       TrainConfig(vocab_size=base.vocab_size + DEFAULT_NEW_TOKENS, extend=location, kind="superbpe",
                                                   max_words=MAX_WORDS), out=scratch / "tokenizer")
        print(f"{domain}: tokenizer trained in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        original = load_model(location, device="cpu")
        old_in = original.model.get_input_embeddings().weight.detach().float().clone()
        tied = original.model.config.tie_word_embeddings
        old_out = old_in if tied else original.model.get_output_embeddings().weight.detach().float().clone()
        del original
        moved_model, moved_tokenizer, _ = transplant(location, str(scratch / "tokenizer"), config=TransplantConfig(method="auto"))
        plan = build_plan(base, moved_tokenizer, old_rows=old_in.shape[0])
        supers = plan.superword.nonzero().flatten().tolist()  # the plan marks tokens that span words
        offsets = plan.piece_offsets.tolist()
        print(f"{domain}: {len(plan.composed)} composed new tokens, {len(supers)} of them superwords", file=sys.stderr)
        emb_in = moved_model.get_input_embeddings().weight
        emb_out = moved_model.get_output_embeddings().weight
        for arm in arms:
            with torch.no_grad():
                for j in supers:
                    new_id = int(plan.composed[j])
                    pieces = plan.piece_ids[offsets[j]:offsets[j + 1]].tolist()
                    emb_in[new_id] = arm_rows(arm, old_in, pieces)
                    if not tied:
                        emb_out[new_id] = arm_rows(arm, old_out, pieces)
            loaded = LoadedModel(model=moved_model, tokenizer=moved_tokenizer, name=arm, device="cpu", dtype="float32")
            row = {"model": model, "domain": domain, "arm": arm, "superwords": len(supers), "composed": len(plan.composed)}
            for split, text_set in sets.items():
                row[split] = round(evaluate_loaded(loaded, text_set).bits_per_byte, 5)
            print(json.dumps(row), file=sys.stderr)
            results.append(row)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--domains", nargs="+", default=["man-fr", "man-en"])
    parser.add_argument("--max-bytes", type=int, default=1_000_000)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--json", type=Path, help="append each row here (JSON lines)")
    args = parser.parse_args()
    rows = []
    for domain in args.domains:
        rows += run_domain(args.model, domain, args.max_bytes, tuple(args.arms))
        if args.json:
            with args.json.open("a") as handle:
                handle.writelines(json.dumps(r) + "\n" for r in rows if r["domain"] == domain)
    print(f"\nzero-shot bits per byte, {args.model}, superword rows only changed (validation: choose here; held-out: report)")
    print("| domain | superwords | arm | validation | held-out |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['domain']} | {r['superwords']} / {r['composed']} | {r['arm']} | {r['validation']:.4f} | {r['held-out']:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
