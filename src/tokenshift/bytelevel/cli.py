"""``tokenshift generate`` and ``tokenshift ensemble``: parse, build the byte-level model(s), call the library, print."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2, ensure_ascii=False))


def _byte_model(spec: str, args: argparse.Namespace) -> Any:
    from ..modeling import load_model
    from .model import ByteLevelModel

    loaded = load_model(spec, dtype=args.dtype, device=args.device, trust_remote_code=args.trust_remote_code)
    return ByteLevelModel(loaded, beam=args.beam, threshold=args.threshold, window=args.window)


def _stop(value: str | None) -> bytes | None:
    return value.encode("utf-8").decode("unicode_escape").encode("latin-1") if value else None


def cmd_generate(args: argparse.Namespace) -> int:
    from ..dynamic.cli import cmd_generate_dynamic, read_prompt
    from .run import generate_bytes, generate_tokens

    args.prompt = read_prompt(args)
    if args.dynamic:
        return cmd_generate_dynamic(args)
    if args.back_off is not None and not args.byte_level:
        raise ValueError("--back-off applies to byte-level decoding; add --byte-level")
    if args.byte_level:
        model = _byte_model(args.model, args)
        result = generate_bytes(model, args.prompt, max_bytes=args.max_bytes, temperature=args.temperature, seed=args.seed,
                                back_off=args.back_off, stop=_stop(args.stop))
    else:
        from ..modeling import load_model

        loaded = load_model(args.model, dtype=args.dtype, device=args.device, trust_remote_code=args.trust_remote_code)
        result = generate_tokens(loaded, args.prompt, max_bytes=args.max_bytes, temperature=args.temperature, seed=args.seed,
                                 stop=_stop(args.stop))
    if args.json:
        _print_json(result.to_json())
    else:
        sys.stdout.write(result.prompt + result.text + "\n")
        print(f"[{result.mode}: {result.bytes} bytes in {result.seconds:.1f} s, {result.bytes_per_second:.1f} bytes/s"
              f"{', end of text' if result.ended else ''}]", file=sys.stderr)
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    from ..data import load_texts
    from .ensemble import ByteEnsemble, check_mix, evaluate_ensemble, fit_ensemble_weights, normalise_weights
    from .run import generate_bytes

    if len(args.models) < 2:
        raise ValueError("an ensemble needs at least two models; name two or more (e.g. smollm2-135m gemma3-270m)")
    check_mix(args.mix)
    normalise_weights(args.weights, len(args.models))  # fail on bad weights before loading anything
    if args.text is None and args.prompt is None:
        raise ValueError("nothing to do: pass --text to score text, --prompt to generate, or both")
    text_sets = [load_texts(spec, max_bytes=args.max_bytes) for spec in args.text or []]
    fit_texts = load_texts(args.fit_weights, max_bytes=args.max_bytes) if args.fit_weights else None
    models = [_byte_model(spec, args) for spec in args.models]
    results = evaluate_ensemble(models, text_sets, weights=args.weights, mixes=[args.mix], fit_on=fit_texts) if text_sets else []
    weights, mix = args.weights, args.mix
    if fit_texts is not None:  # generation uses the fitted linear weights too
        weights, mix = (results[0].fitted_weights if results else fit_ensemble_weights(models, fit_texts)), "linear"
    generation = None
    if args.prompt is not None:
        generation = generate_bytes(ByteEnsemble(models, weights=weights, mix=mix), args.prompt, max_bytes=args.max_bytes_out,
                                    temperature=args.temperature, seed=args.seed, back_off=args.back_off)
    if args.json:
        _print_json({"results": [r.to_json() for r in results], "generation": generation.to_json() if generation else None,
                     "exactness": {m.name: m.exactness.to_json() for m in models}})
        return 0
    from rich.console import Console

    from ..report import ensemble_table

    console = Console(width=160)
    if results:
        console.print(ensemble_table(results, title=f"Byte-level bits per byte (lower is better; beam {args.beam}, "
                                                    f"threshold {args.threshold:g}; mix {args.mix})"))
    for model in models:
        console.print(f"{model.name}: {model.exactness.note}")
    if generation is not None:
        console.print(f"generated: {generation.prompt}[bold]{generation.text}[/bold]")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    from ..options import non_negative_float, non_negative_int, positive_int, probability
    from .model import BEAM, THRESHOLD, WINDOW

    p.add_argument("--beam", type=positive_int, default=BEAM, help="token-sequence prefixes kept per byte (each sums all its next tokens)")
    p.add_argument("--threshold", type=probability, default=THRESHOLD, help="drop prefixes under this share of a byte's probability mass")
    p.add_argument("--window", type=positive_int, default=WINDOW, help="tokenizations may differ from the heaviest one only in their last N tokens")
    p.add_argument("--temperature", type=non_negative_float, default=0.0, help="0: greedy; else sample the next byte at this temperature")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--back-off", type=non_negative_int, help="take the prompt's canonical tokens as given except the last N (faster, approximate)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--trust-remote-code", action="store_true", help="allow a model's own Python code to run (off by default)")
    p.add_argument("--json", action="store_true")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``generate`` and ``ensemble`` on the ``tokenshift`` subcommand parser."""
    from ..options import non_negative_float, positive_int

    p = sub.add_parser("generate", help="continue a prompt; --byte-level decodes in bytes, so the prompt may end mid-token")
    p.add_argument("model", help="model asset, folder or Hugging Face id")
    p.add_argument("--prompt", help="the text to continue (or --prompt-file)")
    p.add_argument("--byte-level", action="store_true", help="decode byte by byte from the exact byte-level model (token healing)")
    p.add_argument("--max-bytes", type=positive_int, default=64, help="bytes to generate at most")
    p.add_argument("--stop", help="stop once the continuation ends with this string (escapes such as \\n allowed)")
    _common(p)
    from ..dynamic.cli import add_generate_options

    add_generate_options(p)
    p.set_defaults(func=cmd_generate)

    from .ensemble import MIXES

    p = sub.add_parser("ensemble", help="bits per byte of a mixture of models with any tokenizers, and generation from it")
    p.add_argument("models", nargs="+", help="two or more model assets, folders or ids")
    p.add_argument("--text", nargs="+", help="text specs to score: ASSET:SPLIT (wiki-fr:test), file, folder or glob")
    p.add_argument("--max-bytes", type=positive_int, help="keep the leading whole documents up to this many bytes per text")
    p.add_argument("--weights", type=non_negative_float, nargs="+", help="one weight per model (default: equal)")
    p.add_argument("--mix", default="linear", choices=list(MIXES), help="linear: fixed weights; bayes: posterior weights")
    p.add_argument("--fit-weights", metavar="TEXT",
                   help="also fit linear weights that minimise bits on this held-out text (e.g. wiki-fr:validation); generation then uses them")
    p.add_argument("--prompt", help="also generate from the mixture after this prompt")
    p.add_argument("--max-bytes-out", type=positive_int, default=64, help="bytes to generate at most with --prompt")
    _common(p)
    p.set_defaults(func=cmd_ensemble)
