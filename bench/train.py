"""Benchmark: tokenizer training side by side on wiki en+fr+es train splits.

For each vocabulary size: bytes per token on each language's test split for tokenshift bpe,
tokenshift superbpe, the HF BpeTrainer used directly (the stock recipe: ByteLevel pretokenizer), and
the model tokenizers in the assets at their own sizes; training wall time and peak memory of each
trainer, each run in its own process so that peak memory is its own.

    python bench/train.py [--vocab 32768 49152] [--langs en fr es]
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

TRAINERS = ("hf-bpe", "hf-bpe-gpt4-regex", "tokenshift-bpe", "tokenshift-superbpe")
MODEL_TOKENIZERS = ("smollm2", "llama-3", "gemma-3")


def worker(trainer: str, vocab: int, texts: list[str], out: Path) -> None:
    """Train one tokenizer in this process; print seconds and peak RSS as JSON."""
    started = time.perf_counter()
    if trainer.startswith("hf-bpe"):
        from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

        from tokenshift.data import iter_documents
        from tokenshift.train.pretokenize import word_pattern

        backend = Tokenizer(models.BPE())
        if trainer == "hf-bpe":  # the stock recipe: GPT-2's regex inside ByteLevel
            backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        else:  # the same pretokenization as tokenshift's default, to isolate the trainer
            backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(word_pattern("group3-left")), "isolated"),
                                                             pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        backend.decoder = decoders.ByteLevel()
        trainer_obj = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|endoftext|>"],
                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        backend.train_from_iterator(iter_documents(texts), trainer=trainer_obj)
        out.mkdir(parents=True)
        backend.save(str(out / "tokenizer.json"))
    else:
        from tokenshift.train import TrainConfig, train_tokenizer

        kind = trainer.removeprefix("tokenshift-")
        train_tokenizer(texts, TrainConfig(vocab_size=vocab, kind=kind, special_tokens=("<|endoftext|>",)), out=out)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_worker(trainer: str, vocab: int, texts: list[str], out: Path) -> dict:
    result = subprocess.run([sys.executable, __file__, "--worker", trainer, "--vocab", str(vocab), "--out", str(out), "--texts", *texts],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def bytes_per_token(tokenizer, docs: list[str]) -> float:
    return sum(len(d.encode("utf-8")) for d in docs) / sum(len(ids) for ids in tokenizer.encode_batch(docs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", nargs="+", type=int, default=[32768, 49152])
    parser.add_argument("--langs", nargs="+", default=["en", "fr", "es"])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--texts", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.vocab[0], args.texts, Path(args.out))
        return

    from rich.console import Console
    from rich.table import Table

    from tokenshift.data import load_texts
    from tokenshift.tokenizer import load_tokenizer

    train_texts = [f"wiki-{lang}:train" for lang in args.langs]
    tests = {lang: load_texts(f"wiki-{lang}:test").documents for lang in args.langs}
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for vocab in args.vocab:
            for trainer in TRAINERS:
                out = Path(scratch) / f"{trainer}-{vocab}"
                stats = run_worker(trainer, vocab, train_texts, out)
                tokenizer = load_tokenizer(out / "tokenizer.json")
                rows.append({"tokenizer": trainer, "vocab": tokenizer.vocab_size, **stats,
                             **{lang: bytes_per_token(tokenizer, docs) for lang, docs in tests.items()}})
    for name in MODEL_TOKENIZERS:
        try:
            tokenizer = load_tokenizer(name)
        except (FileNotFoundError, ValueError) as exc:
            print(f"skipping {name}: {exc}")
            continue
        rows.append({"tokenizer": name, "vocab": tokenizer.vocab_size, "seconds": None, "peak_rss_mb": None,
                     **{lang: bytes_per_token(tokenizer, docs) for lang, docs in tests.items()}})

    corpus_mb = sum(load_texts(t).n_bytes for t in train_texts) / 1e6
    table = Table(title=f"Tokenizer training on {' + '.join(train_texts)} ({corpus_mb:.1f} MB); bytes/token on each test split")
    for column in ("tokenizer", "vocab", *(f"{lang} B/tok" for lang in args.langs), "train s", "peak MB"):
        table.add_column(column, justify="left" if column == "tokenizer" else "right")
    for r in rows:
        table.add_row(r["tokenizer"], f"{r['vocab']:,}", *(f"{r[lang]:.3f}" for lang in args.langs),
                      "-" if r["seconds"] is None else f"{r['seconds']:.1f}", "-" if r["peak_rss_mb"] is None else f"{r['peak_rss_mb']:,.0f}")
    console = Console(width=200)
    console.print(table)

    checks = Table(title="Targets")
    for column in ("vocab", "check", "measured", "target", "met"):
        checks.add_column(column)
    for vocab in args.vocab:
        by = {r["tokenizer"]: r for r in rows if r["tokenizer"] in TRAINERS and r["vocab"] <= vocab}
        hf, same, bpe, sup = by["hf-bpe"], by["hf-bpe-gpt4-regex"], by["tokenshift-bpe"], by["tokenshift-superbpe"]
        for lang in args.langs:
            fewer = 1 - bpe[lang] / sup[lang]  # tokens ∝ 1 / (bytes per token)
            checks.add_row(str(vocab), f"superbpe fewer tokens than bpe ({lang})", f"{fewer:.1%}", ">= 10%", "yes" if fewer >= 0.10 else "NO")
            gap = bpe[lang] / same[lang] - 1
            checks.add_row(str(vocab), f"bpe vs HF BpeTrainer, same regex ({lang})", f"{gap:+.2%}", "within 0.5%", "yes" if abs(gap) <= 0.005 else "NO")
            stock = bpe[lang] / hf[lang] - 1
            checks.add_row(str(vocab), f"bpe vs HF stock ByteLevel recipe ({lang})", f"{stock:+.2%}", "(info: digit rule differs)", "")
        ratio = sup["seconds"] / hf["seconds"]
        checks.add_row(str(vocab), "superbpe time / HF BPE time", f"{ratio:.2f}x", "<= 3x", "yes" if ratio <= 3 else "NO")
    console.print(checks)


if __name__ == "__main__":
    main()
