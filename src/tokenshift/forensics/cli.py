"""``tokenshift infer-mixture``: parse the categories, call :func:`infer_mixture`, print the shares."""

from __future__ import annotations

import argparse
import json
import sys


def category(value: str) -> tuple[str, str]:
    """``NAME=TEXT``: a category name and a text spec, checked where it is parsed."""
    name, sep, text = value.partition("=")
    if not sep or not name.strip() or not text.strip():
        raise argparse.ArgumentTypeError(f"must look like NAME=TEXT (e.g. fr=wiki-fr:validation), got {value!r}")
    return name.strip(), text.strip()


def cmd_infer_mixture(args: argparse.Namespace) -> int:
    from .mixture import infer_mixture

    categories: dict[str, str] = {}
    for name, text in args.category:
        if name in categories:
            raise ValueError(f"--category {name} is given twice; give each category one NAME=TEXT (one text spec per category)")
        categories[name] = text
    verbose = getattr(args, "verbose", False) and not args.json  # -v: one line per round of constraint generation
    log = (lambda line: print(line, file=sys.stderr)) if verbose else None
    result = infer_mixture(args.tokenizer, categories, merges=args.merges, max_bytes=args.max_bytes, log=log)
    if args.json:
        print(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result.tokenizer}: training mixture")
    table.add_column("category")
    table.add_column("text")
    table.add_column("share", justify="right")
    for name, share in sorted(result.shares.items(), key=lambda item: -item[1]):
        table.add_row(name, result.texts.get(name, ""), f"{share:.1%}")
    Console(width=160).print(table)
    print(f"from the first {result.merges:,} merges: {result.constraints:,} constraints over {result.rounds} rounds, {result.unseen_merges:,} merges unseen in the samples, "
          f"objective {result.objective:.4g}; {result.seconds:.1f} s ({result.solver_seconds:.1f} s in {result.solver})")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``infer-mixture`` on the main parser's subcommands."""
    from ..options import positive_int

    p = sub.add_parser("infer-mixture", help="infer the shares of text categories (languages, code, domains) a BPE tokenizer was trained on")
    p.add_argument("tokenizer", help="a BPE tokenizer: asset, tokenizer.json, folder, .tiktoken, .gguf or id")
    p.add_argument("--category", nargs="+", required=True, type=category, metavar="NAME=TEXT",
                   help="a category and a sample of it (text spec: ASSET:SPLIT, file, folder, glob), e.g. en=wiki-en:validation")
    p.add_argument("--merges", type=positive_int, default=1000, help="how many of the first merges to read (default 1000)")
    p.add_argument("--max-bytes", type=positive_int, help="use the leading documents of each sample, up to this many bytes")
    p.add_argument("--json", action="store_true", help='print {"shares": {NAME: share}, ...} with the solver\'s diagnostics')
    p.set_defaults(func=cmd_infer_mixture)
