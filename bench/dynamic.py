"""Benchmark: dynamic tokenization at inference (batch-level BPE of the context, merged-token embeddings
from a transplant method), against the base tokenization.

For each model and text (the leading documents up to --max-bytes): every document's first half is the
context, its second half is scored with base tokens. Merges are learned over the batch of contexts;
for each number of merges N and each embedding method, the table gives the context's token reduction,
the continuation's bits per byte and its change against the unmerged context, and the forward seconds
(the whole sequence: a prefill) of both runs. The base run and each N's merges are shared by the methods.

    python bench/dynamic.py [--models smollm2-135m gemma3-270m] [--text wiki-en:test wiki-fr:test]
                            [--max-bytes 6000] [--sweep pretoken:16 pretoken:64 pretoken:256 word:256]
                            [--methods subword scaled scaled:scale=0.92,length_power=0] [--distil 0 80] [--threads 2]
                            [--distil-layer 0.47] [--distil-lr 3e-3]

A sweep entry ``word:r0.2`` merges until the contexts are 20% shorter instead of up to N merges;
``none:r0.2:1`` does so with pairs seen once allowed (after every pair seen more often).
``--distil S``: also with the merged rows distilled on the contexts for S steps (``dynamic/distil.py``);
the ``distil s`` column is that distillation's time, which the prefill saving does not cover.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from rich.console import Console
from rich.table import Table

from tokenshift.data import load_texts
from tokenshift.dynamic.distil import DISTIL_LAYER, DISTIL_LR, distil_merged_rows
from tokenshift.dynamic.embed import byte_lengths, merged_rows
from tokenshift.dynamic.score import build_result, continuation_nats, merge_contexts, prepare_halves
from tokenshift.evaluate.bpb import default_context
from tokenshift.modeling import load_model


def method_spec(spec: str) -> tuple[str, dict[str, float]]:
    """``scaled:scale=0.92,length_power=0`` -> ("scaled", {"scale": 0.92, "length_power": 0.0})."""
    name, _, rest = spec.partition(":")
    options = {key: float(value) for key, value in (item.split("=") for item in rest.split(",") if item)}
    return name, options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    parser.add_argument("--text", nargs="+", default=["wiki-en:test", "wiki-fr:test"])
    parser.add_argument("--max-bytes", type=int, default=6000)
    parser.add_argument("--sweep", nargs="+", default=["pretoken:16", "pretoken:64", "pretoken:256", "word:256"],
                        help="BOUNDARY:N[:MIN_COUNT] entries: up to N merges within pretokens, whitespace words or anywhere")
    parser.add_argument("--min-count", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=["subword", "scaled", "scaled:scale=0.92,length_power=0"])
    parser.add_argument("--distil", nargs="+", type=int, default=[0], help="distillation steps of the merged rows (0: none)")
    parser.add_argument("--distil-layer", type=float, default=DISTIL_LAYER, help=f"share of the layers distilled through (default {DISTIL_LAYER})")
    parser.add_argument("--distil-lr", type=float, default=DISTIL_LR, help=f"Adam's rate for the merged rows (default {DISTIL_LR})")
    parser.add_argument("--context", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write every result here (JSON lines)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    table = Table(title=f"dynamic tokenization of the context (min count {args.min_count}, leading {args.max_bytes} bytes per text)")
    for column in ("model", "text", "method", "boundary", "N", "context tokens", "shorter", "bpb base", "bpb dynamic", "change", "min",
                   "distil", "distil s", "s base", "s dyn"):
        table.add_column(column, justify="left" if column in ("model", "text", "method") else "right")
    out = open(args.json, "w") if args.json else None
    for model in args.models:
        loaded = load_model(model, device="cpu", dtype="float32")
        tokenizer = loaded.tokenizer
        embedding = loaded.model.get_input_embeddings().weight
        sizes = byte_lengths(tokenizer, embedding.shape[0])
        conditioning = tokenizer.conditioning_token()
        context = min(args.context, default_context(loaded.model))
        for spec in args.text:
            texts = load_texts(spec, max_bytes=args.max_bytes)
            halves = prepare_halves(tokenizer, texts.documents, max_tokens=context)
            scored: dict[tuple, tuple[float, float]] = {}
            nats_base, seconds_base = continuation_nats(loaded, halves.context_ids, halves.continuation_ids, conditioning=conditioning)
            for entry in args.sweep:
                boundary, n, *count = entry.split(":")
                min_count = int(count[0]) if count else args.min_count
                limit = {"reduction": float(n[1:])} if n.startswith("r") else {"max_merges": int(n)}
                merged = merge_contexts(tokenizer, halves, base_size=embedding.shape[0], boundary=boundary, min_count=min_count, **limit)
                for method_text in args.methods:
                    method, options = method_spec(method_text)
                    initial = merged_rows(embedding, merged.vocabulary, piece_bytes=sizes, method=method, options=options)
                    for steps in args.distil:
                        began = time.perf_counter()
                        rows, report = distil_merged_rows(loaded, halves.context_ids, merged.sequences, merged.vocabulary, initial,
                                                          conditioning=conditioning, steps=steps, layer=args.distil_layer, lr=args.distil_lr)
                        key = (tuple(merged.vocabulary.merges), method_text, steps)  # a saturated sweep repeats its merges: score them once
                        if key not in scored:
                            scored[key] = continuation_nats(loaded, merged.sequences, halves.continuation_ids, rows=rows, conditioning=conditioning)
                        nats, seconds = scored[key]
                        result = build_result(loaded, spec, halves, merged, nats_base=nats_base, nats_dynamic=nats, seconds_base=seconds_base,
                                              seconds_dynamic=seconds, method=method, options=options, boundary=boundary,
                                              context=context, conditioning=conditioning, distil=report.to_json() if steps else None)
                        if out:
                            out.write(json.dumps(result.to_json()) + "\n")
                            out.flush()
                        table.add_row(model, spec, method_text, boundary, str(result.merges),
                                      f"{result.context_tokens_base} → {result.context_tokens_dynamic}", f"{100 * result.context_reduction:.1f}%",
                                      f"{result.bits_per_byte_base:.4f}", f"{result.bits_per_byte_dynamic:.4f}",
                                      f"{100 * result.bits_per_byte_change:+.2f}%", str(min_count), str(steps) if steps else "",
                                      f"{report.seconds:.0f}" if steps else "", f"{seconds_base:.1f}", f"{seconds:.1f}")
                        print(f"{model} {spec} {method_text} {boundary} N={result.merges} min {min_count} distil {steps}: "
                              f"{100 * result.context_reduction:.1f}% shorter, {100 * result.bits_per_byte_change:+.2f}% bpb "
                              f"({time.perf_counter() - began:.0f} s)", flush=True)
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
