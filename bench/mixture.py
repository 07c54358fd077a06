"""Benchmark: data mixture inference (Hayase, Liu et al. 2024) on planted and on real tokenizers.

1. Planted mixtures: random shares of wiki en/fr/es (Dirichlet(1,1,1), seeded), a corpus of
   ``--corpus-bytes`` drawn by those byte shares from one half of each language's train split, a
   byte-level BPE trained on it by the stock Hugging Face trainer (GPT-2 pre-tokenizer) with 1,000 and
   3,000 merges; then ``infer_mixture`` on samples from the other half (never the training text).
   Reports the mean absolute error of the shares (percentage points), the time of one inference
   (pretokens, pair counts, solver) and its peak memory (each inference runs in a fresh process).
2. Real tokenizers: the shares of en/fr/es that the first ``--real-merges`` merges of gpt2, llama-3,
   qwen2.5, smollm2 and gemma-3 imply (they were trained on far more than these three languages, so
   the shares say which of the three each leans to, not its whole mixture).

    python bench/mixture.py [--mixtures 4] [--merges 1000 3000] [--corpus-bytes 1200000]
                            [--sample-bytes 1000000] [--real-merges 3000] [--real gpt2 llama-3 ...]
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import resource
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from tokenshift.data import load_texts

LANGUAGES = ("en", "fr", "es")


def halves(seed: int = 0) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Each language's train split shuffled once and cut in two: (training pools, inference samples)."""
    pools, samples = {}, {}
    for lang in LANGUAGES:
        docs = list(load_texts(f"wiki-{lang}:train").documents)
        random.Random(seed).shuffle(docs)
        pools[lang], samples[lang] = docs[: len(docs) // 2], docs[len(docs) // 2 :]
    return pools, samples


def planted_corpus(pools: dict[str, list[str]], shares: dict[str, float], total: int, seed: int) -> list[str]:
    """Leading documents of each pool until its share of ``total`` bytes, shuffled together."""
    corpus = []
    for lang, share in shares.items():
        size = 0
        for doc in pools[lang]:
            if size >= share * total:
                break
            corpus.append(doc)
            size += len(doc.encode("utf-8"))
        if size < share * total:
            raise SystemExit(f"the {lang} pool holds {size:,} bytes, short of {share * total:,.0f}; lower --corpus-bytes")
    random.Random(seed).shuffle(corpus)
    return corpus


def train_bpe(corpus: list[str], merges: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from tokenshift.tokenizer.core import Tokenizer as Wrapper, roles_from_names

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=256 + merges, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(corpus, trainer=trainer)
    return Wrapper(backend, name=f"planted-{merges}", special=roles_from_names(backend, adds_bos=False))


def _infer(job: tuple) -> tuple[dict, float]:
    """In a fresh process: one inference, and that process's peak resident memory (MB)."""
    from tokenizers import Tokenizer as Backend

    from tokenshift.forensics import infer_mixture
    from tokenshift.tokenizer import load_tokenizer
    from tokenshift.tokenizer.core import Tokenizer, roles_from_names

    tokenizer_json, name, samples, merges = job
    if tokenizer_json is not None:
        backend = Backend.from_str(tokenizer_json)
        tokenizer = Tokenizer(backend, name=name, special=roles_from_names(backend, adds_bos=False))
    else:
        tokenizer = load_tokenizer(name)
    result = infer_mixture(tokenizer, samples, merges=merges)
    return result.to_json(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_isolated(pool_context, job: tuple) -> tuple[dict, float]:
    with pool_context.Pool(1) as pool:
        return pool.apply(_infer, (job,))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mixtures", type=int, default=4, help="planted mixtures per merge count")
    parser.add_argument("--merges", type=int, nargs="+", default=[1000, 3000])
    parser.add_argument("--corpus-bytes", type=int, default=1_200_000, help="bytes of each planted training corpus")
    parser.add_argument("--sample-bytes", type=int, default=1_000_000, help="bytes of each category's inference sample")
    parser.add_argument("--real", nargs="*", default=["gpt2", "llama-3", "qwen2.5", "smollm2", "gemma-3"])
    parser.add_argument("--real-merges", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    console = Console(width=200)
    pools, sample_docs = halves(args.seed)
    samples = {}
    for lang in LANGUAGES:
        kept, size = [], 0
        for doc in sample_docs[lang]:
            if size >= args.sample_bytes:
                break
            kept.append(doc)
            size += len(doc.encode("utf-8"))
        samples[lang] = kept

    rng = np.random.default_rng(args.seed)
    mixtures = [dict(zip(LANGUAGES, (float(x) for x in rng.dirichlet(np.ones(len(LANGUAGES)))))) for _ in range(args.mixtures)]
    table = Table(title=f"Planted mixtures: byte-level BPE trained on {args.corpus_bytes / 1e6:.1f} MB by the HF trainer, "
                        f"inferred from {args.sample_bytes / 1e6:.1f} MB samples per language")
    for column in ("merges", "mixture", "true en/fr/es %", "inferred en/fr/es %", "MAE pp", "train s", "infer s", "solver s",
                   "constraints", "rounds", "peak MB"):
        table.add_column(column, justify="left" if column in ("mixture", "true en/fr/es %", "inferred en/fr/es %") else "right")
    summary = {}
    for merges in args.merges:
        errors, seconds, memory = [], [], []
        for index, shares in enumerate(mixtures):
            corpus = planted_corpus(pools, shares, args.corpus_bytes, seed=index)
            began = time.perf_counter()
            tokenizer = train_bpe(corpus, merges)
            train_seconds = time.perf_counter() - began
            result, peak = run_isolated(context, (tokenizer.backend.to_str(), tokenizer.name, samples, merges))
            error = 100 * float(np.mean([abs(result["shares"][lang] - shares[lang]) for lang in LANGUAGES]))
            errors.append(error)
            seconds.append(result["seconds"])
            memory.append(peak)
            table.add_row(f"{merges:,}", str(index), " / ".join(f"{100 * shares[lang]:.1f}" for lang in LANGUAGES),
                          " / ".join(f"{100 * result['shares'][lang]:.1f}" for lang in LANGUAGES), f"{error:.2f}",
                          f"{train_seconds:.1f}", f"{result['seconds']:.1f}", f"{result['solver_seconds']:.1f}",
                          f"{result['constraints']:,}", str(result["rounds"]), f"{peak:,.0f}")
        summary[merges] = (float(np.mean(errors)), float(np.max(errors)), float(np.max(seconds)), float(np.max(memory)))
    console.print(table)
    for merges, (mean_error, worst, slowest, peak) in summary.items():
        console.print(f"{merges:,} merges: mean absolute error {mean_error:.2f} pp over {args.mixtures} mixtures (worst mixture {worst:.2f} pp); "
                      f"slowest inference {slowest:.1f} s, peak memory {peak:,.0f} MB")

    if args.real:
        real = Table(title=f"Real tokenizers: shares of en/fr/es implied by their first {args.real_merges:,} merges "
                           f"({args.sample_bytes / 1e6:.1f} MB samples)")
        for column in ("tokenizer", "en %", "fr %", "es %", "unseen merges", "constraints", "infer s", "peak MB"):
            real.add_column(column, justify="left" if column == "tokenizer" else "right")
        for name in args.real:
            result, peak = run_isolated(context, (None, name, samples, args.real_merges))
            real.add_row(name, *(f"{100 * result['shares'][lang]:.1f}" for lang in LANGUAGES), f"{result['unseen_merges']:,}",
                         f"{result['constraints']:,}", f"{result['seconds']:.1f}", f"{peak:,.0f}")
        console.print(real)


if __name__ == "__main__":
    main()
