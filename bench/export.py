"""Benchmark: GGUF export of smollm2-135m, per dtype: export wall time (loading included), file size, and
bits per byte of the export read back through transformers' GGUF reader against the HF model.

The read-back model is dequantized to float32 by transformers; its tokenizer is the file's vocabulary
with llama.cpp's pre-tokenizer for ``tokenizer.ggml.pre`` (:func:`tokenshift.export.load_gguf`), so
the bits per byte agree with the HF model's only if both the weights and the tokenizer came through.
llama.cpp itself is not run.

    python bench/export.py [--model smollm2-135m] [--dtypes f32 f16 bf16 q8_0] [--bpb-dtypes f32]
                           [--text wiki-fr:test] [--max-bytes 8000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from tokenshift.data import load_texts
    from tokenshift.evaluate import evaluate_loaded
    from tokenshift.export import DTYPES, export_gguf, load_gguf
    from tokenshift.modeling import load_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--bpb-dtypes", nargs="*", default=["f32"], choices=list(DTYPES),
                        help="exports to read back and score (each is a dequantized fp32 model in memory)")
    parser.add_argument("--text", default="wiki-fr:test")
    parser.add_argument("--max-bytes", type=int, default=8000)
    parser.add_argument("--keep", type=Path, help="write the GGUF files into this new folder instead of a temporary one")
    args = parser.parse_args()

    texts = load_texts(args.text, max_bytes=args.max_bytes)
    reference = evaluate_loaded(load_model(args.model, dtype="float32", device="cpu"), texts)
    rows = [("HF model (safetensors)", "-", "-", "-", reference.tokens, reference.bits_per_byte)]
    with tempfile.TemporaryDirectory(prefix="tokenshift-bench-export-") as scratch:
        folder = args.keep or Path(scratch)
        for dtype in args.dtypes:
            report = export_gguf(args.model, folder / f"{args.model}-{dtype}.gguf", dtype=dtype)
            tokens, bpb = "-", None
            if dtype in args.bpb_dtypes:
                result = evaluate_loaded(load_gguf(report.out, name=f"{args.model}-{dtype}.gguf"), texts)
                tokens, bpb = result.tokens, result.bits_per_byte
            rows.append((f"GGUF {dtype}", report.pre, f"{report.seconds:.1f}", f"{report.bytes / 1e6:,.1f}", tokens, bpb))

    table = Table(title=f"{args.model} exported to GGUF; bits per byte on the leading {texts.n_bytes:,} bytes of {args.text} "
                        "(read back through transformers)")
    for column in ("model", "tokenizer.ggml.pre", "export s", "size MB", "tokens", "bits/byte", "Δ vs HF"):
        table.add_column(column, justify="left" if column in ("model", "tokenizer.ggml.pre") else "right")
    for name, pre, seconds, size, tokens, bpb in rows:
        delta = "-" if bpb is None or name.startswith("HF") else f"{bpb - reference.bits_per_byte:+.2e}"
        table.add_row(name, pre, seconds, size, f"{tokens:,}" if isinstance(tokens, int) else tokens,
                      "-" if bpb is None else f"{bpb:.4f}", delta)
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
