"""Benchmark: domain adaptation (``tokenshift adapt``), judged on documents it never saw.

The domain text is the leading ``--max-bytes`` of a text asset's train split: the manual pages
(``man-en``, ``man-fr``: whole pages, Debian's manpages rendered by groff) or The Debian
Administrator's Handbook (``handbook-en``, ``handbook-fr``: one page of the book a document, a domain
of running prose); ``adapt`` splits it by document into adaptation, validation and held-out pages. Arms, each with the same heal budget, text and split:

    adapt        subwords + superwords on the model's own tokenizer, transplant, heal (the product)
    adapt-rows   the same, healed with the rows recipe (new rows only: the body is the original's)
    adapt-stages the same, healed with the stages recipe: new rows, then every parameter (next-token loss)
    subwords     the plain subword extension of the same size, transplant, heal          (peer a)
    finetuned    the original model and tokenizer, healed on the same text (stages: all) (peer b:
                 what fine-tuning alone gains, told apart from what the tokenizer gains)

Each row: tokens per byte and bits per byte on the held-out pages and on general English
(wiki-en:test, leading 32 KB), for the original model (measured in the same run) and the arm.

    python bench/adapt.py --model smollm2-135m --domains man-fr man-en --minutes 5 15 \\
        --arms adapt subwords finetuned [--max-bytes 1000000] [--json results.jsonl]

Every finished run appends its row to ``--json`` at once, so a long bench keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def run_arm(model: str, domain: str, arm: str, minutes: float, max_bytes: int) -> dict:
    from tokenshift.data import TextSet, load_texts
    from tokenshift.domain import AdaptConfig, adapt
    from tokenshift.domain.run import EVAL_BYTES, heal_plan, split_domain

    spec = f"{domain}:train"
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-adapt-") as scratch:
        text = Path(scratch) / f"{domain}.jsonl"
        documents = load_texts(spec, max_bytes=max_bytes).documents
        text.write_text("".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in documents), encoding="utf-8")
        config = AdaptConfig(text=(str(text),), minutes=minutes, kind="bpe" if arm == "subwords" else "superbpe",
                             **({"recipe": arm.removeprefix("adapt-")} if arm.startswith("adapt-") else {}))
        if arm in ("adapt", "subwords", "adapt-stages", "adapt-rows"):
            report = adapt(model, config)
            result = {"rows": [r.__dict__ for r in report.rows], "new_tokens": report.new_tokens, "superwords": report.superwords,
                      "held_out_tokens_per_byte": report.held_out_tokens_per_byte, "recipe": report.heal.get("recipe"),
                      "split": report.split, "heal_tokens": report.heal.get("tokens"), "kept": report.heal.get("kept"),
                      "curve": report.heal.get("curve")}  # validation bits per byte after each phase: the recipe's evidence
        else:
            from tokenshift.evaluate import evaluate_loaded
            from tokenshift.heal import heal
            from tokenshift.modeling import load_model

            adaptation, validation, held = split_domain([TextSet(spec, documents)], config)
            from tokenshift.heal.config import parse_stages

            # no new rows to train: the stages recipe, next-token loss on every parameter (plain fine-tuning)
            heal_config, _ = heal_plan(config, adaptation, validation, Path(scratch), recipe="stages", stages=parse_stages("all"))
            from tokenshift.data.documents import spread_sample

            held_set = TextSet("held-out documents", spread_sample(held, EVAL_BYTES))  # the sample adapt evaluates
            general = load_texts("wiki-en:test", max_bytes=EVAL_BYTES)
            original = load_model(model, device="cpu")
            rows = [("original", evaluate_loaded(original, t)) for t in (held_set, general)]
            del original
            healed_model, tokenizer, heal_report = heal(model, config=heal_config)
            from tokenshift.modeling.load import LoadedModel

            healed = LoadedModel(model=healed_model, tokenizer=tokenizer, name="finetuned", device="cpu", dtype="float32")
            rows += [("adapted", evaluate_loaded(healed, t)) for t in (held_set, general)]
            result = {"rows": [{"text": r.text, "model": label, "tokens_per_byte": round(r.tokens_per_byte, 6),
                                "bits_per_byte": round(r.bits_per_byte, 6), "bytes": r.bytes} for label, r in rows],
                      "heal_tokens": heal_report.tokens, "kept": heal_report.kept}
    return {"model": model, "domain": domain, "arm": arm, "minutes": minutes, "max_bytes": max_bytes,
            "seconds": round(time.perf_counter() - started, 1), **result}


def table(results: list[dict]) -> str:
    lines = ["| model | domain | arm | minutes | text | tokens/byte orig → arm | change | bits/byte orig → arm | change |",
             "|---|---|---|---|---|---|---|---|---|"]
    for result in results:
        rows = result["rows"]
        for text in dict.fromkeys(r["text"] for r in rows):
            before = next(r for r in rows if r["text"] == text and r["model"] == "original")
            after = next(r for r in rows if r["text"] == text and r["model"] == "adapted")
            lines.append(f"| {result['model']} | {result['domain']} | {result['arm']} | {result['minutes']:g} | {text} | "
                         f"{before['tokens_per_byte']:.4f} → {after['tokens_per_byte']:.4f} | "
                         f"{after['tokens_per_byte'] / before['tokens_per_byte'] - 1:+.1%} | "
                         f"{before['bits_per_byte']:.4f} → {after['bits_per_byte']:.4f} | "
                         f"{after['bits_per_byte'] / before['bits_per_byte'] - 1:+.1%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--domains", nargs="+", default=["man-fr", "man-en"])
    parser.add_argument("--minutes", nargs="+", type=float, default=[5.0])
    parser.add_argument("--arms", nargs="+", default=["adapt", "subwords", "finetuned"], choices=["adapt", "subwords", "finetuned", "adapt-rows", "adapt-stages"])
    parser.add_argument("--max-bytes", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, help="append each finished run here (JSON lines)")
    args = parser.parse_args(argv)
    results = []
    for domain in args.domains:
        for minutes in args.minutes:
            for arm in args.arms:
                result = run_arm(args.model, domain, arm, minutes, args.max_bytes)
                results.append(result)
                if args.json:
                    with args.json.open("a", encoding="utf-8") as handle:
                        handle.write(json.dumps(result, ensure_ascii=False) + "\n")
                print("\n".join(table([result]).splitlines()[2:]), flush=True)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
