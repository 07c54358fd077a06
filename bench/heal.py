"""Benchmark: heal smollm2-135m after a transplant, on 2 CPU cores (or one GPU), recipes side by side.

Pairs: (x) SmolLM2's tokenizer + 8,192 merges learned on wiki-fr:train (the extension), (c) a 32k
tokenizer trained on wiki fr+en (dressed like SmolLM2's). Each is transplanted zero-shot with the
default method (``auto``), then healed on wiki-fr:train + wiki-en:train by each recipe at each budget
in minutes. Rows: the original model, the zero-shot transplant, each recipe at each budget, and the
plain baseline (``stages`` recipe: next-token loss on every embedding row, the same minutes). For each:
tokens per byte and bits per byte on the leading ``--max-bytes`` of wiki-en/fr/es:test (held out from
everything the heal saw), tokens trained on, wall and CPU seconds (all threads). A targets table
checks the issue's goals against the numbers of this run.

    python bench/heal.py --preset cpu [--pairs x c] [--recipes rows baseline] [--minutes 5 15]
    python bench/heal.py --preset gpu   # one H100-class card: 285 s in all on an H200 (docs/benchmarks/heal.md)

Artifacts (tokenizers, transplants, healed models) go to ``--scratch``; ``--json FILE`` saves every number.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

MODEL = "smollm2-135m"
TRAIN = ("wiki-fr:train", "wiki-en:train")
TEXTS = ("wiki-en:test", "wiki-fr:test", "wiki-es:test")
EXTENSION_MERGES = 8192
REPLACEMENT_VOCAB = 32_768
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {"device": "cpu", "pairs": ["x", "c"], "recipes": ["rows", "baseline"], "minutes": [5.0, 15.0]},
    "gpu": {"device": "cuda", "pairs": ["x", "c"], "recipes": ["rows", "baseline"], "minutes": [1.0]},
}
BASELINE = {"recipe": "stages", "objective": "ntp", "stages": "embeddings:lr=1e-3"}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def prepare(pair: str, scratch: Path) -> tuple[Path, Any]:
    """(zero-shot transplant folder, its tokenizer) for a pair, cached in ``scratch``."""
    from tokenshift.tokenizer import load_tokenizer
    from tokenshift.train import TrainConfig, train_tokenizer
    from tokenshift.transplant import TransplantConfig, transplant

    if pair == "x":
        tokenizer_dir = scratch / "smollm2-ext-fr"
        if not tokenizer_dir.exists():
            train_tokenizer(["wiki-fr:train"], TrainConfig(vocab_size=49152 + EXTENSION_MERGES, extend="smollm2"), out=tokenizer_dir)
    elif pair == "c":
        tokenizer_dir = scratch / "wiki-fr-en-32k"
        if not tokenizer_dir.exists():
            train_tokenizer(list(TRAIN), TrainConfig(vocab_size=REPLACEMENT_VOCAB, like="smollm2"), out=tokenizer_dir)
    else:
        raise ValueError(f"unknown pair {pair!r}; choose x or c")
    transplant_dir = scratch / f"transplant-{pair}"
    if not transplant_dir.exists():
        transplant(MODEL, str(tokenizer_dir), out=transplant_dir, config=TransplantConfig(method="auto"))
    return transplant_dir, load_tokenizer(str(transplant_dir))


def measure(model: str, max_bytes: int, device: str) -> dict[str, dict[str, float]]:
    """Bits per byte and tokens per byte of ``model`` on every test text."""
    from tokenshift.data import load_texts
    from tokenshift.evaluate import evaluate_loaded
    from tokenshift.modeling import load_model

    loaded = load_model(model, dtype="float32", device=device)
    out = {}
    for spec in TEXTS:
        result = evaluate_loaded(loaded, load_texts(spec, max_bytes=max_bytes))
        out[spec] = {"bpb": result.bits_per_byte, "tpb": result.tokens_per_byte}
    return out


def heal_once(transplant_dir: Path, out: Path, recipe: str, minutes: float, device: str) -> dict[str, Any]:
    from tokenshift.heal import HealConfig, heal
    from tokenshift.heal.config import parse_stages

    if out.exists():
        shutil.rmtree(out)
    options: dict[str, Any] = {"recipe": recipe}
    if recipe == "baseline":
        options = {"recipe": BASELINE["recipe"], "stages": parse_stages(BASELINE["stages"]), "ntp_weight": 1.0, "distill_weight": 0.0,
                   "batch_size": 8, "seq_len": 256}
    config = HealConfig(text=TRAIN, minutes=minutes, device=device, **options)
    wall, cpu = time.perf_counter(), cpu_seconds()
    _, _, report = heal(str(transplant_dir), config=config, out=out)
    return {"wall_s": time.perf_counter() - wall, "cpu_s": cpu_seconds() - cpu, "tokens": report.tokens, "kept": report.kept,
            "untied": report.untied, "added_parameters": report.added_parameters, "curve": report.curve, "phases": report.phases}


def run(args: argparse.Namespace) -> dict[str, Any]:
    scratch = Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"original": measure(MODEL, args.max_bytes, args.device), "pairs": {}}
    for pair in args.pairs:
        transplant_dir, _ = prepare(pair, scratch)
        rows: dict[str, Any] = {"zero-shot": measure(str(transplant_dir), args.max_bytes, args.device)}
        for recipe in args.recipes:
            for minutes in args.minutes:
                name = f"{recipe} {minutes:g} min"
                out = scratch / f"healed-{pair}-{recipe}-{minutes:g}"
                print(f"[{pair}] {name} ...", file=sys.stderr, flush=True)
                run_info = heal_once(transplant_dir, out, recipe, minutes, args.device)
                rows[name] = {**measure(str(out), args.max_bytes, args.device), **run_info}
        result["pairs"][pair] = rows
    return result


def _row(name: str, values: dict[str, Any]) -> str:
    cells = [f"{values[t]['tpb']:.4f}" for t in TEXTS] + [f"{values[t]['bpb']:.4f}" for t in TEXTS]
    extra = [f"{values.get('tokens', 0):,}" if "tokens" in values else "", f"{values['wall_s']:.0f}" if "wall_s" in values else "",
             f"{values['cpu_s']:.0f}" if "cpu_s" in values else "", values.get("kept", {}).get("state", "") if "kept" in values else ""]
    return f"| {name} | " + " | ".join(cells + extra) + " |"


def print_tables(result: dict[str, Any]) -> None:
    original = result["original"]
    head = "| model | " + " | ".join(f"tok/B {t.split(':')[0][5:]}" for t in TEXTS) + " | " + \
        " | ".join(f"bpb {t.split(':')[0][5:]}" for t in TEXTS) + " | tokens trained | wall s | CPU s | kept |"
    for pair, rows in result["pairs"].items():
        print(f"\n### pair ({pair})\n")
        print(head)
        print("|" + "---|" * (head.count("|") - 1))
        print(_row("original", original))
        for name, values in rows.items():
            print(_row(name, values))
    print("\n### targets\n")
    print("| target | measured | met |")
    print("|---|---|---|")
    en, fr = "wiki-en:test", "wiki-fr:test"
    for pair, rows in result["pairs"].items():
        zero = rows["zero-shot"]
        for name, values in rows.items():
            if name == "zero-shot":
                continue
            worse = [t.split(":")[0] for t in TEXTS if values[t]["bpb"] > zero[t]["bpb"]]
            print(f"| ({pair}) {name}: never worse than zero-shot | {', '.join(worse) or 'none worse'} | {'yes' if not worse else 'NO'} |")
            en_rise = values[en]["bpb"] / original[en]["bpb"] - 1
            recovered = {t: (zero[t]["bpb"] - values[t]["bpb"]) / (zero[t]["bpb"] - original[t]["bpb"])
                         if zero[t]["bpb"] > original[t]["bpb"] else float("nan") for t in TEXTS}
            fewer = 1 - values[fr]["tpb"] / original[fr]["tpb"]
            if pair == "x" and name.startswith("rows"):
                print(f"| (x) {name}: English within +1% of the original | {en_rise:+.2%} | {'yes' if en_rise <= 0.01 else 'NO'} |")
                if "15" in name:
                    ok = values[fr]["bpb"] <= original[fr]["bpb"] and fewer >= 0.25
                    print(f"| (x) {name}: French <= original ({original[fr]['bpb']:.4f}) with >= 25% fewer tokens | "
                          f"{values[fr]['bpb']:.4f}, {fewer:.1%} fewer | {'yes' if ok else 'NO'} |")
                else:
                    print(f"| (x) {name}: >= half the French gap recovered | {recovered[fr]:.1%} | {'yes' if recovered[fr] >= 0.5 else 'NO'} |")
            if pair == "c" and name.startswith("rows"):
                worst = min(recovered.values())
                print(f"| (c) {name}: >= half the gap recovered on every language | "
                      + ", ".join(f"{t.split(':')[0][5:]} {v:.1%}" for t, v in recovered.items()) + f" | {'yes' if worst >= 0.5 else 'NO'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=list(PRESETS), default="cpu")
    parser.add_argument("--pairs", nargs="+", choices=["x", "c"])
    parser.add_argument("--recipes", nargs="+", help="heal recipes (rows, distill-rows, fit-head, stages) and 'baseline'")
    parser.add_argument("--minutes", nargs="+", type=float)
    parser.add_argument("--max-bytes", type=int, default=32_000)
    parser.add_argument("--scratch", default="/tmp/tokenshift-bench-heal")
    parser.add_argument("--json", help="write every number to this file")
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    args.pairs = args.pairs or preset["pairs"]
    args.recipes = args.recipes or preset["recipes"]
    args.minutes = args.minutes or preset["minutes"]
    args.device = preset["device"]
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            sys.exit("--preset gpu needs a CUDA device; this machine has none (use --preset cpu)")
    result = run(args)
    print_tables(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
