"""``tokenshift evaluate --dynamic-merges N | --dynamic-reduction R``: options, and the command's dynamic branch."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_evaluate_options(p: argparse.ArgumentParser) -> None:
    """The dynamic-tokenization options of ``tokenshift evaluate``."""
    from ..options import non_negative_int, positive_int, probability
    from ..transplant.methods import METHODS
    from .embed import DEFAULT_METHOD
    from .merges import BOUNDARIES

    g = p.add_argument_group("dynamic tokenization (each document's first half merged, its second half scored)")
    g.add_argument("--dynamic-merges", type=non_negative_int, metavar="N",
                   help="merge the contexts' most frequent token pairs, up to N merges (0: none, the base logits exactly)")
    g.add_argument("--dynamic-reduction", type=probability, metavar="R", help="merge until the contexts are R shorter (0.2: 20%%)")
    g.add_argument("--dynamic-method", default=DEFAULT_METHOD, choices=[n for n, m in METHODS.items() if not m.uses_donor],
                   help=f"embedding of a merged token from its pieces' rows (default {DEFAULT_METHOD}, x0.85 weighted by bytes^4: the "
                        "lowest bits per byte measured)")
    g.add_argument("--dynamic-boundary", default="pretoken", choices=list(BOUNDARIES),
                   help="merge within the tokenizer's pretokens (default), whitespace words, or anywhere")
    g.add_argument("--dynamic-min-count", type=positive_int, default=2, metavar="K", help="merge only pairs seen K times (default 2)")
    g.add_argument("--dynamic-distil", type=non_negative_int, default=0, metavar="STEPS",
                   help="distil the merged rows on the contexts for STEPS steps first (80 measured best; costs more than the "
                        "prefill it saves: for contexts read many times)")


def wants_dynamic(args: argparse.Namespace) -> bool:
    return getattr(args, "dynamic_merges", None) is not None or getattr(args, "dynamic_reduction", None) is not None


def cmd_evaluate_dynamic(args: argparse.Namespace) -> int:
    from .score import evaluate_dynamic

    if args.encoder != "canonical" or args.stride is not None or args.report:
        raise ValueError("--dynamic-merges/--dynamic-reduction score whole halves with canonical tokens; drop --encoder, --stride and --report")
    results = evaluate_dynamic(
        args.model, args.text, merges=args.dynamic_merges, reduction=args.dynamic_reduction, method=args.dynamic_method,
        boundary=args.dynamic_boundary,
        min_count=args.dynamic_min_count, tokenizer=args.tokenizer, max_bytes=args.max_bytes, context=args.context,
        batch_tokens=args.batch_tokens, conditioning_token=args.bos_token, dtype=args.dtype, device=args.device,
        trust_remote_code=args.trust_remote_code, distil_steps=args.dynamic_distil)
    if args.json:
        print(json.dumps([r.to_json() for r in results], indent=2, ensure_ascii=False))
    else:
        from rich.console import Console

        console = Console()
        (console if console.is_terminal else Console(width=160)).print(dynamic_table(results))
    return 0


def dynamic_table(results: list[Any]) -> Any:
    from rich.table import Table

    table = Table(title="dynamic tokenization: contexts merged, continuations scored with base tokens")
    for column in ("model", "text", "method", "merges", "context tokens base", "dynamic", "shorter", "bpb base", "bpb dynamic", "change"):
        table.add_column(column, justify="left" if column in ("model", "text", "method") else "right")
    for r in results:
        table.add_row(r.model, r.text, r.method, str(r.merges), str(r.context_tokens_base), str(r.context_tokens_dynamic),
                      f"{100 * r.context_reduction:.1f}%", f"{r.bits_per_byte_base:.4f}", f"{r.bits_per_byte_dynamic:.4f}",
                      f"{100 * r.bits_per_byte_change:+.2f}%")
    return table


def add_generate_options(p: argparse.ArgumentParser) -> None:
    """``--prompt-file`` and the dynamic-prefill options of ``tokenshift generate``."""
    from ..options import non_negative_int, positive_int, probability
    from ..transplant.methods import METHODS
    from .embed import DEFAULT_METHOD
    from .merges import BOUNDARIES

    p.add_argument("--prompt-file", metavar="FILE", help="read the prompt from this UTF-8 file")
    g = p.add_argument_group("dynamic prefill (the prompt's frequent token pairs merged; greedy decoding)")
    g.add_argument("--dynamic", action="store_true", help="prefill the prompt shorter and report the prefill seconds saved")
    g.add_argument("--max-new-tokens", type=non_negative_int, default=32, help="with --dynamic: tokens to generate at most")
    g.add_argument("--dynamic-merges", type=non_negative_int, default=256, metavar="N", help="merges at most (default 256)")
    g.add_argument("--dynamic-reduction", type=probability, metavar="R", help="stop once the prompt is R shorter")
    g.add_argument("--dynamic-method", default=DEFAULT_METHOD, choices=[n for n, m in METHODS.items() if not m.uses_donor])
    g.add_argument("--dynamic-boundary", default="pretoken", choices=list(BOUNDARIES))
    g.add_argument("--dynamic-min-count", type=positive_int, default=2, metavar="K")


def read_prompt(args: argparse.Namespace) -> str:
    """The prompt of ``--prompt`` or ``--prompt-file`` (exactly one)."""
    from pathlib import Path

    if (args.prompt is None) == (args.prompt_file is None):
        raise ValueError("give the text to continue with --prompt TEXT or --prompt-file FILE (one of them)")
    if args.prompt is not None:
        return str(args.prompt)
    path = Path(args.prompt_file)
    if not path.is_file():
        raise FileNotFoundError(f"--prompt-file {path}: not found; give a UTF-8 text file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"--prompt-file {path}: not UTF-8 text; convert it first (e.g. iconv -t UTF-8)") from None


def cmd_generate_dynamic(args: argparse.Namespace) -> int:
    import sys

    from ..modeling import load_model
    from .generate import generate_dynamic

    if args.byte_level or args.temperature > 0:
        raise ValueError("--dynamic decodes greedily in tokens; drop --byte-level and --temperature")
    loaded = load_model(args.model, dtype=args.dtype, device=args.device, trust_remote_code=args.trust_remote_code)
    result = generate_dynamic(loaded, args.prompt, max_new_tokens=args.max_new_tokens, merges=args.dynamic_merges,
                              reduction=args.dynamic_reduction, method=args.dynamic_method,
                              boundary=args.dynamic_boundary, min_count=args.dynamic_min_count)
    if args.json:
        print(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(result.text + "\n")
        print(f"[dynamic prefill: {result.prompt_tokens_base} -> {result.prompt_tokens_dynamic} prompt tokens ({result.merges} merges), "
              f"prefill {result.prefill_seconds_base:.3f} s -> {result.prefill_seconds_dynamic:.3f} s "
              f"(saved {result.prefill_seconds_saved:.3f} s); continuation "
              f"{'the same as' if result.same_text else 'differs from'} the base prefill's]", file=sys.stderr)
    return 0
