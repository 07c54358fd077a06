"""Benchmark: tokenshift's bits-per-byte evaluation against a plain transformers loop on the same text.

The plain loop is what one writes by hand: one document at a time, ``model(input_ids, labels=...)``,
loss times tokens, summed. Both compute the same number (the table shows their agreement); the
ratio is tokenshift's bytes/second over the loop's, measured in the same run on the same device.

    python bench/evaluate.py [--model smollm2-135m] [--text wiki-en:test wiki-fr:test] [--max-bytes 16000]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from rich.console import Console
from rich.table import Table

from tokenshift.data import load_texts
from tokenshift.evaluate import evaluate_loaded
from tokenshift.modeling import load_model


def plain_loop_bits(model, tokenizer, documents: list[str], device: str, context: int) -> float:
    conditioning = tokenizer.conditioning_token()
    nats = 0.0
    with torch.inference_mode():
        for doc in documents:
            sequence = [conditioning, *tokenizer.encode(doc)]
            for start in range(0, len(sequence) - 1, context):
                chunk = torch.tensor([sequence[start : start + context + 1]], device=device)
                loss = model(input_ids=chunk, labels=chunk).loss
                nats += float(loss) * (chunk.shape[1] - 1)
    return nats / math.log(2)


def bench_device(model_name: str, specs: list[str], max_bytes: int, device: str, dtype: str) -> list[dict]:
    loaded = load_model(model_name, device=device, dtype=dtype)
    rows = []
    for spec in specs:
        texts = load_texts(spec, max_bytes=max_bytes)
        evaluate_loaded(loaded, texts.limit_bytes(2000))  # warm-up (kernels, allocator)
        ours = evaluate_loaded(loaded, texts)
        started = time.perf_counter()
        # The loop feeds context+1 tokens per chunk, so it uses a context one shorter to stay in range.
        bits = plain_loop_bits(loaded.model, loaded.tokenizer, texts.documents, device, ours.context - 1)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        loop_seconds = time.perf_counter() - started
        rows.append({
            "device": device, "dtype": loaded.dtype, "text": spec, "bytes": texts.n_bytes, "tokens": ours.tokens,
            "ours_bpb": ours.bits_per_byte, "loop_bpb": bits / texts.n_bytes,
            "ours_bps": ours.bytes_per_second, "loop_bps": texts.n_bytes / loop_seconds,
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--text", nargs="+", default=["wiki-en:test", "wiki-fr:test"])
    parser.add_argument("--max-bytes", type=int, default=16_000)
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [("cpu", "float32")] + ([("cuda", "bfloat16")] if torch.cuda.is_available() else [])
    rows = [row for device, dtype in devices for row in bench_device(args.model, args.text, args.max_bytes, device, dtype)]
    table = Table(title=f"evaluate: tokenshift vs plain transformers loop ({args.model}, {torch.get_num_threads()} CPU threads)")
    for column in ("device", "dtype", "text", "bytes", "tokens", "bpb tokenshift", "bpb loop", "|diff|", "bytes/s tokenshift", "bytes/s loop", "speed-up"):
        table.add_column(column, justify="left" if column in ("device", "dtype", "text") else "right")
    for r in rows:
        table.add_row(r["device"], r["dtype"], r["text"], f"{r['bytes']:,}", f"{r['tokens']:,}", f"{r['ours_bpb']:.5f}", f"{r['loop_bpb']:.5f}",
                      f"{abs(r['ours_bpb'] - r['loop_bpb']):.1e}", f"{r['ours_bps']:,.0f}", f"{r['loop_bps']:,.0f}", f"{r['ours_bps'] / r['loop_bps']:.2f}x")
    Console(width=200).print(table)
    if not torch.cuda.is_available():
        print("no CUDA device here: GPU rows not measured")


if __name__ == "__main__":
    main()
