"""Benchmark: training-free transplants of smollm2-135m onto other tokenizers, every method and peer side by side.

Pairs: (a) the Gemma-3 tokenizer, with gemma3-270m as donor; (b) the Qwen2.5 tokenizer; (c) a 32k
tokenizer trained on wiki fr+en (dressed like SmolLM2's); extensions: (x-fr) SmolLM2's tokenizer +
8,192 merges learned on wiki-fr:train, (x-es) the same on wiki-es:train (``auto`` is the default
method; a targets table checks it against the original and every other method). For each tokenshift method and each peer
that can run on the pair: bits per byte on the leading ``--max-bytes`` of wiki-en/fr/es:test,
transplant wall time, CPU time (all threads; less sensitive than wall time to a shared machine) and
peak memory (each transplant in its own process). The original model with
its own tokenizer is the first row.

Peers run under ``--peer-python`` (a separate environment, since their dependencies differ):
- mergekit-tokensurgeon (``pip install mergekit``): OMP at the same k, needs a donor, so pair (a) only;
- FOCUS (``pip install deepfocus fasttext-numpy2-wheel``): fastText auxiliary embeddings trained on
  wiki fr+en train tokenized with the new tokenizer; pairs (b) and (c).
Their outputs are kept in ``--peer-cache`` with the measured time, and reused on the next run
(tokensurgeon takes over an hour on 2 CPU cores for pair (a)).

    python bench/transplant.py [--pairs a b c x-fr x-es] [--methods auto mean subword hybrid omp scaled blend] [--max-bytes 8000]
                               [--peer-python /path/to/venv/bin/python] [--peer-cache DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from targets import targets_table  # bench/targets.py, beside this script

TEXTS = ("wiki-en:test", "wiki-fr:test", "wiki-es:test")
K = 8
EXTENSION_MERGES = 8192
PEERS = {"tokensurgeon": ("a",), "focus": ("b", "c")}
HERE = Path(__file__).resolve().parent

TOKENSURGEON = """
import json, resource, sys, time
from mergekit.scripts.tokensurgeon import main
started = time.perf_counter()
try:
    main(sys.argv[1:])
except SystemExit as exc:
    if exc.code:
        raise
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": time.perf_counter() - started, "cpu_seconds": usage.ru_utime + usage.ru_stime,
                  "peak_rss_mb": usage.ru_maxrss / 1024}))
"""


def pair_tokenizer(pair: str, scratch: Path) -> tuple[str, str | None]:
    """(tokenizer spec, donor) of a pair."""
    if pair == "a":
        return "gemma-3", "gemma3-270m"
    if pair == "b":
        return "qwen2.5", None
    if pair.startswith("x-"):
        folder = scratch / f"smollm2-ext-{pair[2:]}"
        if not folder.exists():
            from tokenshift.train import TrainConfig, train_tokenizer

            train_tokenizer([f"wiki-{pair[2:]}:train"], TrainConfig(vocab_size=49152 + EXTENSION_MERGES, extend="smollm2"), out=folder)
        return str(folder), None
    if pair == "c":
        folder = scratch / "wiki-fr-en-32k"
        if not folder.exists():
            from tokenshift.train import TrainConfig, train_tokenizer

            train_tokenizer(["wiki-fr:train", "wiki-en:train"], TrainConfig(vocab_size=32768, like="smollm2"), out=folder)
        return str(folder), None
    raise ValueError(f"unknown pair {pair!r}; choose a, b, c, x-fr or x-es")


def evaluate_all(loaded: object, max_bytes: int) -> dict[str, float]:
    from tokenshift.data import load_texts
    from tokenshift.evaluate import evaluate_loaded

    return {spec: evaluate_loaded(loaded, load_texts(spec, max_bytes=max_bytes)).bits_per_byte for spec in TEXTS}


def worker(tokenizer: str, method: str, donor: str | None, max_bytes: int) -> None:
    """Transplant in this process and evaluate; print one JSON line."""
    from tokenshift.modeling.load import LoadedModel
    from tokenshift.transplant import TransplantConfig, transplant

    started = time.perf_counter()
    options = {"k": K} if method in ("omp", "blend") else {}
    model, new, report = transplant("smollm2-135m", tokenizer, config=TransplantConfig(method=method, donor=donor, options=options))
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    loaded = LoadedModel(model=model, tokenizer=new, name=method, device="cpu", dtype="float32")
    print(json.dumps({"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,
                      "bpb": evaluate_all(loaded, max_bytes), "counts": report.counts}))


def peer_worker(peer: str, output: str, tokenizer: str, max_bytes: int) -> None:
    """Evaluate a peer's output (a model folder, or an input-embedding matrix for smollm2-135m); print one JSON line."""
    import torch
    from safetensors.torch import load_file

    from tokenshift.modeling import load_model
    from tokenshift.modeling.load import LoadedModel
    from tokenshift.tokenizer import load_tokenizer

    new = load_tokenizer(tokenizer)
    if peer == "tokensurgeon":
        loaded = load_model(output, tokenizer=new, dtype="float32", device="cpu")
    else:
        base = load_model("smollm2-135m", dtype="float32", device="cpu")
        rows = load_file(output)["embeddings"]
        if rows.shape[0] != new.vocab_size:
            raise ValueError(f"{peer} gave {rows.shape[0]} rows for a {new.vocab_size}-id tokenizer")
        base.model.resize_token_embeddings(rows.shape[0], mean_resizing=False)
        with torch.no_grad():
            base.model.get_input_embeddings().weight[:] = rows  # SmolLM2's head is tied to these rows
        loaded = LoadedModel(model=base.model, tokenizer=new, name=peer, device="cpu", dtype="float32")
    print(json.dumps({"bpb": evaluate_all(loaded, max_bytes)}))


def run_json(command: list[str]) -> dict | str:
    """The last stdout line of ``command`` as JSON, or the last stderr line if it failed."""
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["(no output)"]
        return lines[-1][:100]
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_peer(peer: str, pair: str, tokenizer: str, donor: str | None, peer_python: str, cache: Path, scratch: Path) -> dict | str:
    """Run (or reuse from ``cache``) one peer transplant; returns {"output", "seconds", "peak_rss_mb"} or an error line."""
    from tokenshift.assets.registry import asset_folder
    from tokenshift.tokenizer import load_tokenizer

    record = cache / f"{peer}-{pair}.json"
    if record.exists():
        return json.loads(record.read_text())
    cache.mkdir(parents=True, exist_ok=True)
    base = str(asset_folder("smollm2-135m"))
    if peer == "tokensurgeon":
        output = cache / f"{peer}-{pair}"
        timing = run_json([peer_python, "-c", TOKENSURGEON, base, str(asset_folder(donor)), str(output),
                           "-a", "omp", "-k", str(K), "--device", "cpu"])
    else:
        output = cache / f"{peer}-{pair}.safetensors"
        tokenizer_json = scratch / f"{pair}-tokenizer"
        load_tokenizer(tokenizer).save(tokenizer_json)
        train_text = scratch / "wiki-fr-en-train.txt"
        if not train_text.exists():
            from tokenshift.data import iter_documents

            with train_text.open("w", encoding="utf-8") as f:
                f.writelines(" ".join(doc.split()) + "\n" for doc in iter_documents(["wiki-fr:train", "wiki-en:train"]))
        timing = run_json([peer_python, str(HERE / "peers" / "focus_worker.py"), base, str(tokenizer_json / "tokenizer.json"),
                           str(train_text), str(output)])
    if isinstance(timing, str):
        return timing
    payload = {"output": str(output), **timing}
    record.write_text(json.dumps(payload))
    return payload


def peer_missing(peer: str, peer_python: str | None) -> str | None:
    """Why ``peer`` cannot run, or None."""
    module = {"tokensurgeon": "mergekit.scripts.tokensurgeon", "focus": "deepfocus"}[peer]
    install = {"tokensurgeon": "pip install mergekit", "focus": "pip install deepfocus fasttext-numpy2-wheel"}[peer]
    if not peer_python:
        return f"not run: pass --peer-python (a venv with `{install}`)"
    check = subprocess.run([peer_python, "-c", f"import {module}"], capture_output=True)
    return None if check.returncode == 0 else f"not run: {peer_python} lacks {module} ({install})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", nargs="+", default=["a", "b", "c"])
    parser.add_argument("--methods", nargs="*", default=["auto", "mean", "subword", "hybrid", "omp", "scaled", "blend"])
    parser.add_argument("--peers", nargs="*", default=list(PEERS), choices=list(PEERS))
    parser.add_argument("--max-bytes", type=int, default=8000)
    parser.add_argument("--peer-python", default=os.environ.get("TOKENSHIFT_PEER_PYTHON"), help="Python of a venv with the peers installed")
    parser.add_argument("--peer-cache", type=Path, help="where peer outputs and timings are kept (default: $TOKENSHIFT_HOME/bench-peers)")
    parser.add_argument("--worker", nargs=3, metavar=("TOKENIZER", "METHOD", "DONOR"), help=argparse.SUPPRESS)
    parser.add_argument("--peer-worker", nargs=3, metavar=("PEER", "OUTPUT", "TOKENIZER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        tokenizer, method, donor = args.worker
        worker(tokenizer, method, None if donor == "-" else donor, args.max_bytes)
        return
    if args.peer_worker:
        peer_worker(*args.peer_worker, args.max_bytes)
        return

    from rich.console import Console
    from rich.table import Table

    from tokenshift.modeling import load_model
    from tokenshift.storage import tokenshift_home
    from tokenshift.transplant import METHODS

    cache = args.peer_cache or tokenshift_home() / "bench-peers"
    table = Table(title=f"smollm2-135m transplants, bits per byte on the leading {args.max_bytes:,} bytes of each test split (lower is better)")
    for column in ("pair", "method", *TEXTS, "seconds", "CPU s", "peak MB", "notes"):
        table.add_column(column, justify="left" if column in ("pair", "method", "notes") else "right")
    original = evaluate_all(load_model("smollm2-135m", device="cpu"), args.max_bytes)
    table.add_row("-", "original tokenizer", *(f"{original[t]:.4f}" for t in TEXTS), "-", "-", "-", "")
    me = [sys.executable, __file__, "--max-bytes", str(args.max_bytes)]
    checks: list[tuple[str, str, str, bool]] = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for pair in args.pairs:
            tokenizer, donor = pair_tokenizer(pair, scratch)
            label = f"{pair}: {Path(tokenizer).name}"
            scored: dict[str, dict[str, float]] = {}
            for method in args.methods:
                use_donor = donor if method == "auto" or METHODS[method].uses_donor else None
                row = run_json([*me, "--worker", tokenizer, method, use_donor or "-"])
                name = f"{method} (k={K}, donor {use_donor})" if use_donor else method
                if isinstance(row, str):
                    table.add_row(label, name, *("failed" for _ in TEXTS), "-", "-", "-", row)
                    continue
                scored[method] = row["bpb"]
                table.add_row(label, name, *(f"{row['bpb'][t]:.4f}" for t in TEXTS), f"{row['seconds']:.1f}", f"{row['cpu_seconds']:.1f}",
                              f"{row['peak_rss_mb']:,.0f}", " ".join(f"{k}={v}" for k, v in sorted(row["counts"].items())))
            if pair.startswith("x-") and "auto" in scored:
                language = f"wiki-{pair[2:]}:test"
                auto = scored["auto"]
                best = min(bpb[language] for bpb in scored.values())
                english = auto["wiki-en:test"] / original["wiki-en:test"] - 1
                checks.append((f"{pair}: auto, wiki-en:test vs original", f"{english:+.2%}", "<= +1%", english <= 0.01))
                checks.append((f"{pair}: auto, {language} vs the best method", f"{auto[language]:.4f} vs {best:.4f}", "lowest", auto[language] <= best))
            for peer in args.peers:
                if pair not in PEERS[peer]:
                    continue
                name = f"{peer} (omp, k={K}, donor {donor})" if peer == "tokensurgeon" else peer
                missing = peer_missing(peer, args.peer_python)
                made = missing or run_peer(peer, pair, tokenizer, donor, args.peer_python, cache, scratch)
                scored = made if isinstance(made, str) else run_json([*me, "--peer-worker", peer, made["output"], tokenizer])
                if isinstance(scored, str):
                    table.add_row(label, name, *("-" for _ in TEXTS), "-", "-", "-", scored)
                    continue
                cpu = f"{made['cpu_seconds']:.1f}" if "cpu_seconds" in made else "-"
                table.add_row(label, name, *(f"{scored['bpb'][t]:.4f}" for t in TEXTS), f"{made['seconds']:.1f}", cpu,
                              f"{made['peak_rss_mb']:,.0f}", "peer")
    console = Console(width=240)
    console.print(table)
    if checks:
        console.print(targets_table("Extension targets", checks))


if __name__ == "__main__":
    main()
