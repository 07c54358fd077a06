"""``tokenshift heal``: parse options into a :class:`HealConfig`, call :func:`heal`, print the result.

Wired into the main parser with ``heal.cli.add_parsers(sub)``. Several GPUs: run the same command
under ``accelerate launch -m tokenshift.cli heal ...`` (DDP or FSDP, as ``accelerate config`` says).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


def config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`HealConfig` the command line describes."""
    from .config import DEFAULT_STAGES, HealConfig, parse_stages

    stages = parse_stages(args.stages) if args.stages is not None else DEFAULT_STAGES
    recipe = args.recipe
    if recipe == "auto" and (args.stages is not None or args.lora or args.objective != "both" or args.resume or args.stochastok):
        recipe = "stages"  # options only the stages trainer has
    config = HealConfig(
        text=tuple(args.text), recipe=recipe, minutes=args.minutes, keep_last=args.keep_last, worse_tolerance=args.worse_tolerance, distill_layer=args.distill_layer,
        row_lr=args.row_lr, head_lr=args.head_lr, lora_lr=args.lora_lr, lora=args.lora, teacher=args.teacher, distance=args.distance, distill_temperature=args.distill_temperature,
        stages=stages, steps=args.steps, tokens=args.tokens, batch_size=args.batch_size, seq_len=args.seq_len,
        max_bytes=args.max_bytes, eval_text=tuple(args.eval_text or ()), eval_bytes=args.eval_bytes, eval_every=args.eval_every,
        log_every=args.log_every, checkpoint_every=args.checkpoint_every,
        checkpoint_dir=Path(args.checkpoint_dir) if args.checkpoint_dir else None, resume=args.resume,
        weight_decay=args.weight_decay, grad_clip=args.grad_clip or None, lora_rank=args.lora_rank,
        gradient_checkpointing=args.gradient_checkpointing, loss=args.loss, mixed_precision=args.mixed_precision,
        device=args.device, seed=args.seed, trust_remote_code=args.trust_remote_code, stochastok=args.stochastok,
    )
    return config.with_objective(args.objective, args.distill_weight)


class _Bar:
    """Progress callback: a rich bar with tokens/s and ETA, plus a line per logged loss and evaluation."""

    def __init__(self, progress: Any, console: Any) -> None:
        self.progress = progress
        self.console = console
        self.task: Any = None

    def __call__(self, status: Any) -> None:
        minutes = f"{status.minutes:.1f} min · " if status.minutes is not None else ""
        if status.message:
            self.console.print(f"{minutes}{status.message}")
            return
        if self.task is None:
            self.task = self.progress.add_task("healing", total=status.steps)
        self.progress.update(self.task, completed=status.step,
                             description=f"{status.stage} · {status.tokens:,} tokens · {status.tokens_per_second:,.0f} tok/s")
        if status.loss is not None:
            distill = f" distill {status.distill:.4f}" if status.distill is not None else ""
            self.console.print(f"step {status.step}/{status.steps} [{status.stage}] loss {status.loss:.4f} (ntp {status.ntp:.4f}{distill}) "
                               f"lr {status.lr:.2e} {status.tokens_per_second:,.0f} tok/s eta {status.eta_seconds:,.0f} s")
        if status.evaluation:
            self.console.print(f"{minutes}{status.tokens:,} tokens · {status.stage or f'step {status.step}'}: "
                               + ", ".join(f"{k} {v:.4f} bpb" for k, v in status.evaluation.items()))
        if status.checkpoint:
            self.console.print(f"step {status.step}: checkpoint {status.checkpoint}")


def cmd_heal(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .run import heal

    config = config_from_args(args)
    console = Console(stderr=True)
    if args.json:
        _, _, report = heal(args.model, config=config, out=Path(args.out))
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
        _write_report(report, args.report, to_stderr=True)
        return 0
    from ..cli import is_main_process

    if not is_main_process():  # another process of a distributed launch: the first one shows the progress
        _, _, report = heal(args.model, config=config, out=Path(args.out))
        return 0
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"), TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        _, _, report = heal(args.model, config=config, out=Path(args.out), progress=_Bar(bar, console))
    first = report.curve[0]["bits_per_byte"] if report.curve else {}
    last = report.kept.get("bits_per_byte") or (report.curve[-1]["bits_per_byte"] if report.curve else {})
    curve = "; ".join(f"{name}: {first.get(name, float('nan')):.4f} -> {value:.4f} bpb" for name, value in last.items())
    how = " + ".join(s["train"] for s in report.stages) if report.recipe == "stages" else " + ".join(p["name"] for p in report.phases)
    size = f"; head untied (+{report.added_parameters:,} parameters)" if report.untied else ""
    print(f"healed {report.model} ({report.recipe}: {how}): {report.tokens:,} tokens in {report.train_seconds:,.1f} s; {curve}; "
          f"kept {report.kept.get('state')}: {report.kept.get('reason')}{size} -> {args.out}", file=sys.stdout)
    _write_report(report, args.report, to_stderr=False)
    return 0


def _write_report(report: Any, path: str | None, *, to_stderr: bool) -> None:
    """The ``--report`` page of the heal curve, written once: by the main process under ``accelerate launch``."""
    if path is None or int(os.environ.get("RANK", "0")) != 0:
        return
    from ..report import heal_page, write_page

    written = write_page(heal_page(report), path)
    print(f"report: {written}", file=sys.stderr if to_stderr else sys.stdout)


def cmd_launch_config(args: argparse.Namespace) -> int:
    from .launch import launch_config

    print(launch_config(args.name))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``heal`` and ``launch-config`` on the main parser's subcommands."""
    from .launch import CONFIGS

    p = sub.add_parser("launch-config", help="print the path of a shipped accelerate config, for `accelerate launch --config_file`")
    p.add_argument("name", choices=list(CONFIGS), help="ddp, fsdp2 (GPUs); ddp-cpu (CPU processes, gloo)")
    p.set_defaults(func=cmd_launch_config)

    from ..options import (at_least_two, batch_size, minutes_budget, non_negative_float, non_negative_int, output_path, positive_float,
                           positive_int, probability, rank, report_path, sequence_length, step_budget, token_budget)
    from .losses import DISTANCES
    from .recipes import RECIPES
    from .stages import STAGE_KINDS

    p = sub.add_parser("heal", help="recover a transplanted model's quality with short training (next-token loss and/or distillation)")
    p.add_argument("model", help="the transplanted model folder (or any causal LM)")
    p.add_argument("--text", nargs="+", required=True, help="training text specs: ASSET:SPLIT (wiki-fr:train), files, folders, globs")
    p.add_argument("--recipe", default="auto", choices=["auto", *RECIPES],
                   help="auto (default), for a transplant folder on a --minutes/--tokens budget: rows for an extension, rows-lora "
                        "for a replacement tokenizer; else stages; "
                        + "; ".join(f"{r.name}: {r.summary}" for r in RECIPES.values()))
    p.add_argument("--minutes", type=minutes_budget, help="wall-clock budget: the run stops at it and writes the best state it found")
    p.add_argument("--worse-tolerance", type=non_negative_float, default=0.001,
                   help="never worse: a state counts as worse than the start when it is this much higher (relative) on a text")
    p.add_argument("--keep-last", action="store_true", help="write the final state even where it is worse than the start on an evaluated text")
    p.add_argument("--distill-layer", type=positive_float, default=0.47, help="distill-rows: decoder layers to run (fraction of depth, or a count)")
    p.add_argument("--row-lr", type=positive_float, default=3e-3, help="distill-rows: learning rate of the row-wise Adam")
    p.add_argument("--head-lr", type=positive_float, default=1e-3, help="fit-head: learning rate")
    p.add_argument("--lora-lr", type=positive_float, default=5e-4, help="lora-distill: peak learning rate (cosine over its time)")
    p.add_argument("--teacher", help="the original model to distil from (default: the model named in MODEL/transplant.json)")
    p.add_argument("--objective", default="both", choices=["ntp", "distill", "both"],
                   help="next-token loss, cross-tokenizer distillation, or both (default)")
    p.add_argument("--distill-weight", type=non_negative_float, default=1.0, help="weight of the distillation loss with --objective both")
    p.add_argument("--distance", default="binary-kl", choices=list(DISTANCES), help="how chunk likelihoods are compared")
    p.add_argument("--distill-temperature", type=positive_float, default=1.0, help="divide chunk log-likelihoods by this before comparing")
    p.add_argument("--stages", help="(recipe stages) default new-rows:share=0.2:lr=2e-3,all:share=0.8:lr=1e-4; "
                   f"comma-separated KIND[:share=F][:lr=F][:warmup=F][:schedule=cosine|linear|constant][:min_lr_ratio=F]; "
                        f"kinds: {', '.join(STAGE_KINDS)}")
    p.add_argument("--lora", action="store_true", help="train LoRA adapters instead of the whole body (stage 'all' becomes 'lora'); merged at the end")
    p.add_argument("--lora-rank", type=rank, default=16)
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--tokens", type=token_budget, help="training budget in (student) tokens, e.g. 5e7")
    budget.add_argument("--steps", type=step_budget, help="training budget in optimizer steps")
    p.add_argument("--batch-size", type=batch_size, default=8, help="sequences per step per process")
    p.add_argument("--seq-len", type=sequence_length, default=512, help="tokens per sequence")
    p.add_argument("--max-bytes", type=positive_int, help="use only the leading documents of each text, up to this many bytes")
    p.add_argument("--eval-text", nargs="*", help="held-out text specs for the bits-per-byte curve (default: hold out the end of --text)")
    p.add_argument("--eval-bytes", type=non_negative_int, default=32_000, help="bytes held out for evaluation over all texts (0: no evaluation)")
    p.add_argument("--eval-every", type=non_negative_int, default=0, help="evaluate every N steps (0: at the start and the end only)")
    p.add_argument("--log-every", type=positive_int, default=10, help="print the loss every N steps")
    p.add_argument("--checkpoint-every", type=non_negative_int, default=0, help="write a checkpoint every N steps (0: none)")
    p.add_argument("--checkpoint-dir", type=output_path, help="where checkpoints go (default: OUT.checkpoints, removed once OUT is written)")
    p.add_argument("--resume", action="store_true", help="continue a killed run from its last checkpoint (same options)")
    p.add_argument("--weight-decay", type=non_negative_float, default=0.0)
    p.add_argument("--grad-clip", type=non_negative_float, default=1.0, help="clip the gradient norm (0: off)")
    p.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations in the backward pass (less memory)")
    p.add_argument("--loss", default="auto", choices=["auto", "chunked", "cce"],
                   help="auto: cut-cross-entropy on CUDA where installed, else the chunked loss")
    p.add_argument("--mixed-precision", default="auto", choices=["auto", "no", "bf16", "fp16"])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (several GPUs: accelerate launch)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stochastok", type=probability, default=0.0, metavar="P",
                   help="StochasTok (stages recipe): split a share P of the student's training tokens into vocabulary pairs "
                        "that spell them, seeded by --seed (e.g. 0.1; evaluation stays canonical)")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--out", required=True, type=output_path, help="new folder for the healed model (written when the run ends)")
    p.add_argument("--report", type=report_path, metavar="FILE.html",
                   help="also write a page with the heal curve: bits per byte of each held-out text against minutes (self-contained HTML)")
    p.add_argument("--json", action="store_true", help="print heal.json instead of progress and a summary")
    p.set_defaults(func=cmd_heal)
