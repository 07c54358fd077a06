"""Benchmark: tokenizer training side by side on wiki en+fr+es train splits.

For each vocabulary size: bytes per token on each language's test split for tokenshift bpe,
tokenshift superbpe, the HF BpeTrainer used directly (the stock recipe: ByteLevel pretokenizer), and
the model tokenizers in the assets at their own sizes; training wall time and peak memory of each
trainer, each run in its own process so that peak memory is its own.

An extension section: SmolLM2's tokenizer + 8,192 merges learned on wiki-fr:train and on
wiki-es:train, with the default protection of English (wiki-en:train) and without it: tokens per
byte on the test split of the new language against SmolLM2's (whole split and its leading 32,000
bytes), whether every digit of 2,000 random strings stays one token, the share of wiki-en:test's
tokens that change, and training time.

A transfer section: tokenizers trained on wiki-en/fr/es:train, savings against tokenshift bpe on the
wiki test splits and on text of another domain, Linux manual pages (the man-* assets: Debian's
manpages in en, fr, es, and de and it, two languages the tokenizers were not trained on); SuperBPE
with the transition chosen on its held-out slice (the default) and at the fixed 0.8 it used before,
and training time against HF BPE in the same run.

A ceiling section: how much superwords can save on the manual pages when stage 1 is the Wikipedia
BPE (cut at 0.9 of the vocabulary, the default's choice) and stage 2 is learned on the manual pages
themselves (an oracle no user has: it reads the other domain's training split), then on the manual
pages cut at every space whose two stage-1 tokens (the last of one word, the first of the next)
Wikipedia's training text joins fewer than 2 (or 20) times: about the most that a choice among the
superwords Wikipedia can give could save there.

    python bench/train.py [--vocab 32768 49152] [--langs en fr es] [--sections main extension transfer ceiling]
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from targets import targets_table  # bench/targets.py, beside this script

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

        kind, _, fixed = trainer.removeprefix("tokenshift-").partition("@")  # superbpe@0.8: fixed transition, nothing held out
        options = {"transition": float(fixed), "held_out": 0.0} if fixed else {}
        train_tokenizer(texts, TrainConfig(vocab_size=vocab, kind=kind, special_tokens=("<|endoftext|>",), **options), out=out)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_worker(trainer: str, vocab: int, texts: list[str], out: Path) -> dict:
    result = subprocess.run([sys.executable, __file__, "--worker", trainer, "--vocab", str(vocab), "--out", str(out), "--texts", *texts],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def bytes_per_token(tokenizer, docs: list[str]) -> float:
    return sum(len(d.encode("utf-8")) for d in docs) / sum(len(ids) for ids in tokenizer.encode_batch(docs))


EXTENSION_MERGES = 8192


def digit_runs_stay_single(tokenizer, samples: int = 2000) -> float:
    """The share of random strings (digit runs among words, punctuation and spaces) in which every
    digit is a token of its own."""
    import random

    import regex

    rng = random.Random(0)
    words = ["le", "de", "année", "en", "the", "in", "€", ",", ".", "-", " ", "  ", "km", "n°"]
    kept = 0
    for _ in range(samples):
        text = "".join(rng.choice([rng.choice(words), str(rng.randint(0, 10 ** rng.randint(1, 12)))]) + rng.choice(["", " "])
                       for _ in range(rng.randint(1, 8)))
        encoded = tokenizer.encode_with_offsets(text)
        data = text.encode("utf-8")
        kept += all(not regex.search(r"\p{N}", piece) or len(piece) == 1
                    for piece in (data[a:b].decode("utf-8", "replace") for a, b in zip(encoded.starts, encoded.ends)))
    return kept / samples


def extension_section(console) -> None:
    from rich.table import Table

    from tokenshift.data import load_texts
    from tokenshift.measure import changed_token_share
    from tokenshift.tokenizer import load_tokenizer
    from tokenshift.train import TrainConfig, train_tokenizer

    base = load_tokenizer("smollm2")
    english = load_texts("wiki-en:test").documents
    table = Table(title=f"Extension: SmolLM2 + {EXTENSION_MERGES:,} merges (tokens per byte on each test split)")
    for column in ("text", "protect", "tok/B base", "tok/B ext", "fewer", "leading 32 KB fewer", "digits single",
                   "wiki-en:test changed", "train text changed", "train s"):
        table.add_column(column, justify="left" if column in ("text", "protect") else "right")
    checks = []
    for lang in ("fr", "es"):
        test = load_texts(f"wiki-{lang}:test").documents
        lead = load_texts(f"wiki-{lang}:test", max_bytes=32000).documents
        for protect in (None, ()):
            started = time.perf_counter()
            extended, report = train_tokenizer([f"wiki-{lang}:train"], TrainConfig(vocab_size=base.vocab_size + EXTENSION_MERGES,
                                                                                   extend="smollm2", protect=protect))
            seconds = time.perf_counter() - started
            per_byte = {name: [sum(map(len, t.encode_batch(docs))) / sum(len(d.encode("utf-8")) for d in docs) for t in (base, extended)]
                        for name, docs in (("test", test), ("lead", lead))}
            fewer = 1 - per_byte["test"][1] / per_byte["test"][0]
            fewer_lead = 1 - per_byte["lead"][1] / per_byte["lead"][0]
            single = digit_runs_stay_single(extended)
            changed = changed_token_share(base, extended, english)
            label = "wiki-en:train" if protect is None else "none"
            table.add_row(f"wiki-{lang}:train", label, f"{per_byte['test'][0]:.4f}", f"{per_byte['test'][1]:.4f}", f"{fewer:.1%}",
                          f"{fewer_lead:.1%}", f"{single:.1%}", f"{changed:.2%}", f"{report.token_changes[f'wiki-{lang}:train']:.1%}",
                          f"{seconds:.1f}")
            if protect is None:
                checks += [(f"wiki-{lang}:test tokens per byte below SmolLM2's", f"{fewer:.1%}", ">= 30%", fewer >= 0.30),
                           (f"digit runs single ({lang} extension)", f"{single:.1%}", "100%", single == 1.0),
                           (f"wiki-en:test tokens changed ({lang} extension)", f"{changed:.2%}", "<= 0.5%", changed <= 0.005)]
    console.print(table)
    console.print(targets_table("Extension targets (default protection)", checks))


TRANSFER_TRAINERS = ("hf-bpe", "tokenshift-bpe", "tokenshift-superbpe", "tokenshift-superbpe@0.8")
OTHER_DOMAIN = ("en", "fr", "es", "de", "it")  # man-*: Debian's Linux manual pages


def transfer_section(args, console) -> None:
    from rich.table import Table

    from tokenshift.data import load_texts
    from tokenshift.tokenizer import load_tokenizer

    train_texts = [f"wiki-{lang}:train" for lang in args.langs]
    split = args.transfer_split
    texts = {**{f"wiki-{lang}": load_texts(f"wiki-{lang}:{split}").documents for lang in args.langs},
             **{f"man-{lang}": load_texts(f"man-{lang}:{split}").documents for lang in OTHER_DOMAIN}}
    table = Table(title=f"Transfer (times: median of {args.repeats} runs): trained on {' + '.join(train_texts)}; fewer tokens than tokenshift bpe on each {split} split "
                        "(man-de and man-it: languages not trained on)")
    for column in ("vocab", "tokenizer", "transition", *texts, "train s", "× HF BPE"):
        table.add_column(column, justify="left" if column == "tokenizer" else "right")
    checks = []
    with tempfile.TemporaryDirectory() as scratch:
        for vocab in args.vocab:
            stats, tokenizers = {}, {}
            for trainer in TRANSFER_TRAINERS:
                out = Path(scratch) / f"{trainer}-{vocab}"
                runs = []
                for repeat in range(args.repeats):  # the median of a few runs: this VM's timings vary by 10-20%
                    shutil.rmtree(out, ignore_errors=True)
                    runs.append(run_worker(trainer, vocab, train_texts, out))
                stats[trainer] = {**runs[-1], "seconds": statistics.median(r["seconds"] for r in runs),
                                  "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}
                tokenizers[trainer] = load_tokenizer(out / "tokenizer.json")
                if trainer == "tokenshift-superbpe":
                    stats[trainer]["report"] = json.loads((out / "train.json").read_text())["superbpe"]
            counts = {name: {key: sum(map(len, tok.encode_batch(docs))) for key, docs in texts.items()} for name, tok in tokenizers.items()}
            anchor = stats["hf-bpe"]["seconds"]
            for name in ("tokenshift-superbpe", "tokenshift-superbpe@0.8"):
                fewer = {key: 1 - counts[name][key] / counts["tokenshift-bpe"][key] for key in texts}
                choice = stats[name].get("report")
                transition = "0.8 (fixed)" if choice is None else ("BPE (fallback)" if choice["fallback"] else f"{choice['transition'] / vocab:.2f} (auto)")
                ratio = stats[name]["seconds"] / anchor
                table.add_row(f"{vocab:,}", name, transition, *(f"{fewer[key]:+.1%}" for key in texts), f"{stats[name]['seconds']:.1f}", f"{ratio:.2f}x")
                if name == "tokenshift-superbpe":
                    for lang in args.langs:
                        checks.append((f"{vocab:,}: man-{lang} fewer tokens than bpe", f"{fewer[f'man-{lang}']:.1%}", ">= 8%", fewer[f"man-{lang}"] >= 0.08))
                        checks.append((f"{vocab:,}: wiki-{lang} fewer tokens than bpe", f"{fewer[f'wiki-{lang}']:.1%}", ">= 12%", fewer[f"wiki-{lang}"] >= 0.12))
                    worst = min(fewer, key=fewer.get)
                    checks.append((f"{vocab:,}: never worse than bpe (worst: {worst})", f"{fewer[worst]:+.1%}", ">= 0", fewer[worst] >= 0))
                    checks.append((f"{vocab:,}: superbpe time / HF BPE time", f"{ratio:.2f}x", "<= 3x", ratio <= 3))
            table.add_row(f"{vocab:,}", "tokenshift-bpe", "", *("" for _ in texts), f"{stats['tokenshift-bpe']['seconds']:.1f}",
                          f"{stats['tokenshift-bpe']['seconds'] / anchor:.2f}x")
            table.add_row(f"{vocab:,}", "hf-bpe (time anchor)", "", *("" for _ in texts), f"{anchor:.1f}", "1.00x")
    console.print(table)
    console.print(targets_table(f"Transfer targets ({split} splits)", checks))


def word_runs(specs: list[str]) -> Counter:
    """Every multi-word run (:func:`tokenshift.train.superbpe.count_word_runs`) of the texts, counted."""
    from tokenshift.data import iter_documents
    from tokenshift.train.superbpe import count_word_runs

    runs, documents = count_word_runs(iter_documents(specs), "group3-left")
    for _ in documents:  # the counter fills as the documents are read
        pass
    return runs


def run_words(run: str) -> list[str]:
    """A run's words with their leading spaces: " of the" -> [" of", " the"]."""
    return re.findall(r" ?[^ ]+", run)


class Boundaries:
    """The stage-1 tokens on either side of each space inside word runs: a superword merge across a
    space joins the last token of one word ("tion" of " description") and the first of the next
    (" of"), so a merge Wikipedia's text never makes across a space can come from no Wikipedia run."""

    def __init__(self, stage1) -> None:
        self.stage1 = stage1
        self.ends: dict[str, tuple[int, int]] = {}

    def of(self, words: list[str]) -> list[tuple[int, int]]:
        missing = [w for w in dict.fromkeys(words) if w not in self.ends]
        for word, encoding in zip(missing, self.stage1.encode_batch_fast(missing, add_special_tokens=False)):
            self.ends[word] = (encoding.ids[0], encoding.ids[-1])
        return [self.ends[w] for w in words]

    def count(self, runs: Counter) -> Counter:
        joined: Counter = Counter()
        for run, n in runs.items():
            ends = self.of(run_words(run))
            for (_, left), (right, _) in zip(ends, ends[1:]):
                joined[left, right] += n
        return joined

    def cut(self, runs: Counter, joined: Counter, at_least: int) -> Counter:
        """``runs`` cut at every space whose two tokens ``joined`` holds fewer than ``at_least`` times;
        the pieces of two words or more, with their runs' counts."""
        out: Counter = Counter()
        for run, n in runs.items():
            words = run_words(run)
            ends = self.of(words)
            piece = words[:1]
            for (_, left), (right, _), word in zip(ends, ends[1:], words[1:]):
                if joined[left, right] < at_least:
                    if len(piece) >= 2:
                        out["".join(piece)] += n
                    piece = []
                piece.append(word)
            if len(piece) >= 2:
                out["".join(piece)] += n
        return out


def ceiling_section(args, console) -> None:
    from rich.table import Table
    from tokenizers import Tokenizer

    from tokenshift.data import load_texts
    from tokenshift.train import TrainConfig, train_tokenizer
    from tokenshift.train.superbpe import add_superwords
    from tokenshift.train.transition import count_tokens, truncate_bpe

    train_texts = [f"wiki-{lang}:train" for lang in args.langs]
    split = args.transfer_split
    texts = {**{f"wiki-{lang}": load_texts(f"wiki-{lang}:{split}").documents for lang in args.langs},
             **{f"man-{lang}": load_texts(f"man-{lang}:{split}").documents for lang in OTHER_DOMAIN}}
    wiki_runs = word_runs(train_texts)
    man_runs = word_runs([f"man-{lang}:train" for lang in args.langs])
    table = Table(title=f"Ceiling: stage 1 = tokenshift bpe on {' + '.join(train_texts)} cut at 0.9; stage 2 learned on ...; "
                        f"fewer tokens than that bpe on each {split} split")
    for column in ("vocab", "stage 2 learned on", *texts):
        table.add_column(column, justify="left" if column == "stage 2 learned on" else "right")
    with tempfile.TemporaryDirectory() as scratch:
        for vocab in args.vocab:
            out = Path(scratch) / f"bpe-{vocab}"
            train_tokenizer(train_texts, TrainConfig(vocab_size=vocab, kind="bpe", special_tokens=("<|endoftext|>",)), out=out)
            bpe = Tokenizer.from_file(str(out / "tokenizer.json"))
            base = {key: count_tokens(bpe, docs) for key, docs in texts.items()}
            stage1 = truncate_bpe(bpe, round(0.9 * vocab))
            boundaries = Boundaries(stage1)
            joined = boundaries.count(wiki_runs)
            stage2 = {"wiki (the default's superwords)": wiki_runs,
                      "man pages (oracle: the other domain's train split)": man_runs,
                      **{f"man pages, cut where wiki joins the 2 tokens < {k} times": boundaries.cut(man_runs, joined, k) for k in (2, 20)}}
            for name, runs in stage2.items():
                tokenizer = add_superwords(stage1, runs, vocab_size=vocab, digits="group3-left", max_words=4, min_frequency=2)
                fewer = {key: 1 - count_tokens(tokenizer, docs) / base[key] for key, docs in texts.items()}
                table.add_row(f"{vocab:,}", name, *(f"{fewer[key]:+.1%}" for key in texts))
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", nargs="+", type=int, default=[32768, 49152])
    parser.add_argument("--langs", nargs="+", default=["en", "fr", "es"])
    parser.add_argument("--sections", nargs="+", default=["main", "extension"], choices=["main", "extension", "transfer", "ceiling"])
    parser.add_argument("--transfer-split", default="test", choices=["validation", "test"],
                        help="transfer, ceiling: the split measured (validation to choose constants, test to report)")
    parser.add_argument("--repeats", type=int, default=3, help="transfer: train each tokenizer this many times; times are medians")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--texts", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.vocab[0], args.texts, Path(args.out))
        return

    from rich.console import Console

    console = Console(width=200)
    if "main" in args.sections:
        main_section(args, console)
    if "extension" in args.sections:
        extension_section(console)
    if "transfer" in args.sections:
        transfer_section(args, console)
    if "ceiling" in args.sections:
        ceiling_section(args, console)


def main_section(args, console) -> None:
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
