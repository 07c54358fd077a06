"""Benchmark: how much worse models read the same text under non-canonical tokenizations.

For each model and text: bits per byte and tokens per byte under the tokenizer's own encoding
(canonical), the two merge-free encoders (longest-prefix, least-tokens) and StochasTok at p = 0.1
(seed 0). Bits per byte are exact (total NLL over the text's UTF-8 bytes, the same bytes under every
encoder); "Δ" is the change against canonical.

    python bench/encoders.py [--models smollm2-135m gemma3-270m] [--text wiki-en:test wiki-fr:test]
                             [--max-bytes 16000] [--encoders canonical longest-prefix least-tokens stochastok:0.1]
"""

from __future__ import annotations

import argparse
import time

import torch
from rich.console import Console
from rich.table import Table

from tokenshift.data import load_texts
from tokenshift.evaluate import evaluate_loaded
from tokenshift.modeling import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    parser.add_argument("--text", nargs="+", default=["wiki-en:test", "wiki-fr:test"])
    parser.add_argument("--max-bytes", type=int, default=16_000)
    parser.add_argument("--encoders", nargs="+", default=["canonical", "longest-prefix", "least-tokens", "stochastok:0.1"])
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    table = Table(title=f"Bits per byte under each encoder (leading {args.max_bytes:,} bytes, whole documents; "
                        f"{torch.get_num_threads()} CPU threads)")
    for column in ("model", "text", "encoder", "tokens/byte", "Δ tokens", "bits/byte", "Δ bits/byte", "encode+score s"):
        table.add_column(column, justify="left" if column in ("model", "text", "encoder") else "right")
    for model in args.models:
        loaded = load_model(model, device="cpu", dtype="float32")
        for spec in args.text:
            texts = load_texts(spec, max_bytes=args.max_bytes)
            base = None
            for encoder in args.encoders:
                began = time.perf_counter()
                result = evaluate_loaded(loaded, texts, encoder=encoder)
                seconds = time.perf_counter() - began
                base = base or result
                table.add_row(model, spec, result.encoder, f"{result.tokens_per_byte:.4f}",
                              f"{result.tokens / base.tokens - 1:+.1%}", f"{result.bits_per_byte:.4f}",
                              f"{result.bits_per_byte / base.bits_per_byte - 1:+.1%}", f"{seconds:.1f}")
        del loaded
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
