"""``tokenshift export``: parse, call :func:`export_gguf`, print its report."""

from __future__ import annotations

import argparse
import json


def cmd_export(args: argparse.Namespace) -> int:
    from .gguf_writer import export_gguf

    report = export_gguf(args.model, args.gguf, dtype=args.dtype, pre=args.pre, trust_remote_code=args.trust_remote_code)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
        return 0
    padded = report.embedding_rows - report.tokenizer_ids
    rows = f"{report.embedding_rows:,} rows" + (f" ({padded:,} padded, unused)" if padded else "")
    print(f"exported {report.model} as {report.architecture} GGUF ({report.dtype}, tokenizer.ggml.pre {report.pre}: "
          f"{report.pre_reason}): {report.tensors} tensors, {report.parameters:,} parameters, {rows}, "
          f"{report.bytes / 1e6:,.1f} MB in {report.seconds:.1f} s -> {report.out}")
    for warning in report.warnings:
        print(f"warning: {warning}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``export`` on the main parser's subcommands."""
    from ..options import output_path
    from .architectures import supported
    from .dtypes import DTYPES

    p = sub.add_parser("export", help="write a model and its tokenizer as one GGUF file for llama.cpp")
    p.add_argument("model", help=f"model asset, folder (e.g. from transplant) or Hugging Face id; architectures: {supported()}")
    p.add_argument("--gguf", required=True, type=output_path, metavar="OUT.gguf", help="the new GGUF file")
    p.add_argument("--dtype", default="f32", choices=list(DTYPES),
                   help="format of the weight matrices (norms and biases stay f32): "
                        + "; ".join(f"{name}: {spec.description}" for name, spec in DTYPES.items()))
    p.add_argument("--pre", metavar="NAME", help="write this tokenizer.ggml.pre instead of the name checked to match "
                                                 "the tokenizer's pre-tokenization (warns where they differ)")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_export)
