"""Benchmark: heal smollm2-135m after a transplant onto a tokenizer trained on wiki fr+en.

From the same transplant, three objectives side by side: (i) next-token loss, (ii) cross-tokenizer
distillation from the original model, (iii) both. For each: bits per byte on ``wiki-en:test`` and
``wiki-fr:test`` (leading ``--eval-bytes`` of each) against training tokens; the original model's
bits per byte is the line to reach. Then throughput: heal's training step against a plain
transformers loop (``model(input_ids, labels=...)``, ``loss.backward()``, AdamW) on the same batches,
in tokens/s and model FLOPs utilisation (FLOPs/s over the GPU's bf16 dense peak; not defined on CPU).

    python bench/heal.py --preset cpu      # a tiny configuration, a few minutes on 2 CPU cores
    python bench/heal.py --preset h100     # the issue's setting: about 10 minutes of one H100 per objective

Artifacts (tokenizer, transplant) are cached in ``--scratch``; ``--json FILE`` saves every number.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

MODEL = "smollm2-135m"
TRAIN = ("wiki-fr:train", "wiki-en:train")
TEXTS = ("wiki-en:test", "wiki-fr:test")
VOCAB = 32_768
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 FLOP/s (SXM parts)

PRESETS: dict[str, dict[str, Any]] = {
    # 2 shared CPU cores: a few steps, short sequences, short evaluation texts.
    "cpu": {"steps": 6, "tokens": None, "batch_size": 4, "seq_len": 64, "eval_every": 3, "eval_bytes": 2_000, "throughput_steps": 4,
            "device": "cpu"},
    # One H100: 64 x 1024 tokens per step; the budget in tokens (about 10 minutes at ~150k tokens/s is the aim, not measured).
    "h100": {"steps": None, "tokens": 60_000_000, "batch_size": 64, "seq_len": 1024, "eval_every": 100, "eval_bytes": 100_000,
             "throughput_steps": 20, "device": "cuda"},
}


def prepare(scratch: Path) -> tuple[Path, Any]:
    """The wiki fr+en tokenizer and the transplant onto it (cached); returns (transplant folder, new tokenizer)."""
    from tokenshift.tokenizer import load_tokenizer
    from tokenshift.train import TrainConfig, train_tokenizer
    from tokenshift.transplant import TransplantConfig, transplant

    tokenizer_dir = scratch / "wiki-fr-en-32k"
    if not tokenizer_dir.exists():
        train_tokenizer(list(TRAIN), TrainConfig(vocab_size=VOCAB, like="smollm2"), out=tokenizer_dir)
    transplant_dir = scratch / "transplant"
    if not transplant_dir.exists():
        transplant(MODEL, str(tokenizer_dir), out=transplant_dir, config=TransplantConfig(method="subword"))
    return transplant_dir, load_tokenizer(str(tokenizer_dir))


def tokens_per_byte(tokenizer: Any, spec: str) -> float:
    from tokenshift.data import load_texts

    texts = load_texts(spec)
    return sum(len(ids) for ids in tokenizer.encode_batch(texts.documents)) / texts.n_bytes


def original_bpb(eval_bytes: int, device: str) -> dict[str, float]:
    from tokenshift.evaluate import evaluate

    return {r.text: r.bits_per_byte for r in evaluate(MODEL, list(TEXTS), max_bytes=eval_bytes, device=device)}


def heal_run(transplant_dir: Path, scratch: Path, objective: str, preset: dict[str, Any]) -> dict[str, Any]:
    from tokenshift.heal import HealConfig, heal

    out = scratch / f"healed-{objective}"
    shutil.rmtree(out, ignore_errors=True)
    config = HealConfig(text=TRAIN, steps=preset["steps"], tokens=preset["tokens"], batch_size=preset["batch_size"],
                        seq_len=preset["seq_len"], eval_text=TEXTS, eval_bytes=preset["eval_bytes"], eval_every=preset["eval_every"],
                        log_every=max(1, (preset["steps"] or 1000) // 10), device=preset["device"], distance=preset["distance"],
                        distill_temperature=preset["temperature"]).with_objective(objective)  # type: ignore[arg-type]
    started = time.perf_counter()
    _, _, report = heal(str(transplant_dir), config=config, out=out)
    print(f"  {objective}: {report.steps} steps, {report.tokens:,} tokens, {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return report.to_json()


def throughput(transplant_dir: Path, preset: dict[str, Any]) -> dict[str, Any]:
    """tokens/s (real tokens, padding excluded) of heal's step and of a plain transformers loop, over
    the same batches (the first step of each is a warm-up and not timed); next-token loss, all weights."""
    import torch
    from transformers import AutoModelForCausalLM

    from tokenshift.data import load_texts
    from tokenshift.heal import HealConfig, Stage, heal
    from tokenshift.heal.data import batch_indices, bytes_per_token, cut_pieces, make_batch
    from tokenshift.heal.run import PIECE_FILL, training_flops_per_token
    from tokenshift.tokenizer import load_tokenizer

    steps, batch_size, seq_len, device = preset["throughput_steps"], preset["batch_size"], preset["seq_len"], preset["device"]
    config = HealConfig(text=TRAIN, steps=steps, batch_size=batch_size, seq_len=seq_len, eval_bytes=0, log_every=1, device=device,
                        stages=(Stage("all", lr=1e-5, warmup=0, schedule="constant"),))
    marks: list[tuple[float, int]] = []
    heal(str(transplant_dir), config=config, progress=lambda s: marks.append((time.perf_counter(), s.tokens)))
    heal_rate = (marks[-1][1] - marks[0][1]) / (marks[-1][0] - marks[0][0])

    # The plain loop, on the very batches heal's data order gives for these steps.
    tokenizer = load_tokenizer(str(transplant_dir))
    documents = [d for spec in TRAIN for d in load_texts(spec).documents]
    pieces = cut_pieces(documents, target_bytes=max(4, int(seq_len * bytes_per_token(tokenizer, documents) * PIECE_FILL)))
    model = AutoModelForCausalLM.from_pretrained(str(transplant_dir), dtype=torch.float32).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.95))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))
    plain: list[tuple[float, int]] = []
    for step in range(steps):
        indices = batch_indices(step, n_pieces=len(pieces), batch_size=batch_size, rank=0, world=1, seed=config.seed)
        rows = make_batch([pieces[i] for i in indices], tokenizer, None, seq_len=seq_len).student
        input_ids = torch.cat([rows.input_ids[:, :1], rows.targets], 1).to(device)  # C x1 .. xn
        mask = torch.cat([torch.ones_like(rows.attention_mask[:, :1]), rows.attention_mask], 1).to(device)
        labels = input_ids.masked_fill(mask == 0, -100)
        with autocast:
            loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()  # as heal logs every step here: both synchronise once per step
        plain.append((time.perf_counter(), int(rows.attention_mask.sum())))
    plain_rate = sum(n for _, n in plain[1:]) / (plain[-1][0] - plain[0][0])
    flops = training_flops_per_token(model, seq_len)
    peak = None
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    return {"device": device if not device.startswith("cuda") else torch.cuda.get_device_name(), "steps_timed": steps - 1,
            "batch_size": batch_size, "seq_len": seq_len, "heal_tokens_per_second": heal_rate, "plain_tokens_per_second": plain_rate,
            "flops_per_token": flops, "heal_mfu": heal_rate * flops / peak if peak else None,
            "plain_mfu": plain_rate * flops / peak if peak else None}


def print_tables(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    fert = result["tokens_per_french_byte"]
    console.print(f"tokens per French byte (wiki-fr:test): original {fert['original']:.4f}, new {fert['new']:.4f} "
                  f"({100 * (1 - fert['new'] / fert['original']):.1f}% fewer)")
    original = result["original"]
    table = Table(title=f"Bits per byte against training tokens ({result['preset']} preset; lower is better)")
    for column in ("objective", "step", "tokens", *(f"{t} bpb" for t in TEXTS), *(f"{t} vs original" for t in TEXTS)):
        table.add_column(column, justify="right" if column not in ("objective",) else "left")
    table.add_row("original (target)", "", "", *(f"{original[t]:.4f}" for t in TEXTS), "", "")
    for objective, report in result["runs"].items():
        for point in report["curve"]:
            bpb = point["bits_per_byte"]
            table.add_row(objective, str(point["step"]), f"{point['tokens']:,}", *(f"{bpb[t]:.4f}" for t in TEXTS),
                          *(f"{100 * (bpb[t] / original[t] - 1):+.1f}%" for t in TEXTS))
    console.print(table)
    runs = Table(title="Runs")
    for column in ("objective", "steps", "tokens", "train s", "tokens/s", "loss first", "loss last"):
        runs.add_column(column, justify="left" if column == "objective" else "right")
    for objective, report in result["runs"].items():
        losses = report["losses"]
        runs.add_row(objective, str(report["steps"]), f"{report['tokens']:,}", f"{report['train_seconds']:.1f}",
                     f"{report['tokens_per_second']:,.0f}", f"{losses[0]['loss']:.3f}" if losses else "", f"{losses[-1]['loss']:.3f}" if losses else "")
    console.print(runs)
    tp = result["throughput"]
    speed = Table(title=f"Throughput on {tp['device']}: batch {tp['batch_size']} x {tp['seq_len']} tokens, {tp['steps_timed']} timed steps, all weights, next-token loss")
    for column in ("loop", "tokens/s", "model TFLOP/s", "MFU"):
        speed.add_column(column, justify="left" if column == "loop" else "right")
    for name, key in (("plain transformers loop", "plain"), ("tokenshift heal", "heal")):
        rate = tp[f"{key}_tokens_per_second"]
        mfu = tp[f"{key}_mfu"]
        speed.add_row(name, f"{rate:,.0f}", f"{rate * tp['flops_per_token'] / 1e12:.3f}", f"{100 * mfu:.1f}%" if mfu is not None else "n/a (no peak for a CPU)")
    console.print(speed)
    console.print(f"heal / plain throughput: {tp['heal_tokens_per_second'] / tp['plain_tokens_per_second']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=list(PRESETS), default="cpu")
    parser.add_argument("--steps", type=int, help="override the preset's budget in steps")
    parser.add_argument("--objectives", nargs="+", default=["ntp", "distill", "both"], choices=["ntp", "distill", "both"])
    parser.add_argument("--distance", default="binary-kl")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--scratch", default="/tmp/tokenshift-bench-heal")
    parser.add_argument("--json", help="write every number to this file")
    args = parser.parse_args()
    preset = dict(PRESETS[args.preset], distance=args.distance, temperature=args.temperature)
    if args.steps:
        preset.update(steps=args.steps, tokens=None)
    scratch = Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    transplant_dir, new_tokenizer = prepare(scratch)
    from tokenshift.modeling.load import model_location
    from tokenshift.tokenizer import load_tokenizer

    result: dict[str, Any] = {"preset": args.preset, "settings": preset, "model": MODEL}
    result["tokens_per_french_byte"] = {"original": tokens_per_byte(load_tokenizer(model_location(MODEL)), "wiki-fr:test"),
                                        "new": tokens_per_byte(new_tokenizer, "wiki-fr:test")}
    result["original"] = original_bpb(preset["eval_bytes"], preset["device"])
    result["runs"] = {objective: heal_run(transplant_dir, scratch, objective, preset) for objective in args.objectives}
    result["throughput"] = throughput(transplant_dir, preset)
    result["seconds"] = time.perf_counter() - started
    print_tables(result)
    print(f"total {result['seconds']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
