"""Benchmark: training-free transplants of smollm2-135m onto other tokenizers, every method side by side.

Pairs: (a) the Gemma-3 tokenizer, with gemma3-270m as OMP donor; (b) the Qwen2.5 tokenizer; (c) a
32k tokenizer trained on wiki fr+en (dressed like SmolLM2's). For each method: bits per byte on the
leading ``--max-bytes`` of wiki-en/fr/es:test, transplant wall time and peak memory (each transplant
in its own process). The original model with its own tokenizer is the first row.

Peers (mergekit-tokensurgeon, FOCUS) are not wired in yet: see the project notes.

    python bench/transplant.py [--pairs a b c] [--methods mean subword hybrid omp] [--max-bytes 8000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEXTS = ("wiki-en:test", "wiki-fr:test", "wiki-es:test")


def pair_tokenizer(pair: str, scratch: Path) -> tuple[str, str | None]:
    """(tokenizer spec, donor) of a pair."""
    if pair == "a":
        return "gemma-3", "gemma3-270m"
    if pair == "b":
        return "qwen2.5", None
    if pair == "c":
        folder = scratch / "wiki-fr-en-32k"
        if not folder.exists():
            from tokenshift.train import TrainConfig, train_tokenizer

            train_tokenizer(["wiki-fr:train", "wiki-en:train"], TrainConfig(vocab_size=32768, like="smollm2"), out=folder)
        return str(folder), None
    raise ValueError(f"unknown pair {pair!r}; choose a, b or c")


def worker(tokenizer: str, method: str, donor: str | None, max_bytes: int) -> None:
    """Transplant in this process and evaluate; print one JSON line."""
    from tokenshift.data import load_texts
    from tokenshift.evaluate import evaluate_loaded
    from tokenshift.modeling.load import LoadedModel
    from tokenshift.transplant import TransplantConfig, transplant

    started = time.perf_counter()
    model, new, report = transplant("smollm2-135m", tokenizer, config=TransplantConfig(method=method, donor=donor))
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    loaded = LoadedModel(model=model, tokenizer=new, name=method, device="cpu", dtype="float32")
    bpb = {spec: evaluate_loaded(loaded, load_texts(spec, max_bytes=max_bytes)).bits_per_byte for spec in TEXTS}
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak, "bpb": bpb, "counts": report.counts}))


def original_row(max_bytes: int) -> dict:
    from tokenshift.data import load_texts
    from tokenshift.evaluate import evaluate_loaded
    from tokenshift.modeling import load_model

    loaded = load_model("smollm2-135m", device="cpu")
    return {spec: evaluate_loaded(loaded, load_texts(spec, max_bytes=max_bytes)).bits_per_byte for spec in TEXTS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", nargs="+", default=["a", "b", "c"])
    parser.add_argument("--methods", nargs="+", default=["mean", "subword", "hybrid", "omp"])
    parser.add_argument("--max-bytes", type=int, default=8000)
    parser.add_argument("--worker", nargs=3, metavar=("TOKENIZER", "METHOD", "DONOR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        tokenizer, method, donor = args.worker
        worker(tokenizer, method, None if donor == "-" else donor, args.max_bytes)
        return

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"smollm2-135m transplants, bits per byte on the leading {args.max_bytes:,} bytes of each test split")
    for column in ("pair", "method", *TEXTS, "seconds", "peak MB", "assignments"):
        table.add_column(column, justify="left" if column in ("pair", "method", "assignments") else "right")
    original = original_row(args.max_bytes)
    table.add_row("-", "original tokenizer", *(f"{original[t]:.4f}" for t in TEXTS), "-", "-", "")
    with tempfile.TemporaryDirectory() as scratch:
        for pair in args.pairs:
            tokenizer, donor = pair_tokenizer(pair, Path(scratch))
            for method in args.methods:
                use_donor = donor if method == "omp" else None
                result = subprocess.run([sys.executable, __file__, "--max-bytes", str(args.max_bytes), "--worker", tokenizer, method, use_donor or "-"],
                                        capture_output=True, text=True)
                if result.returncode != 0:
                    table.add_row(pair, method, *("failed" for _ in TEXTS), "-", "-", result.stderr.strip().splitlines()[-1][:80])
                    continue
                row = json.loads(result.stdout.strip().splitlines()[-1])
                label = f"{method} (donor {use_donor})" if use_donor else method
                table.add_row(f"{pair}: {Path(tokenizer).name}", label, *(f"{row['bpb'][t]:.4f}" for t in TEXTS), f"{row['seconds']:.1f}",
                              f"{row['peak_rss_mb']:,.0f}", " ".join(f"{k}={v}" for k, v in sorted(row["counts"].items())))
    Console(width=220).print(table)


if __name__ == "__main__":
    main()
