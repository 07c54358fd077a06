"""Encoders: ways to turn text into ids of one vocabulary, the tokenizer's own (``canonical``) and
others that ignore its merges, for measuring how a model copes with non-canonical tokenizations.

    canonical        the tokenizer's merges (the Rust backend)
    longest-prefix   greedy longest match per pretoken (Sawada & Goyal 2025; Uzan et al. 2024)
    least-tokens     fewest tokens per pretoken, exact dynamic programming, fixed tie-break
    stochastok:P[:SEED]  canonical, then StochasTok splits (Sims et al. 2025)

Every encoder spells the same bytes as the canonical encoding, so a model's bits per byte on the same
text stay comparable. ``get_encoder("least-tokens")`` or ``get_encoder("stochastok:0.1:7")``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Protocol

from ...registry import lookup
from ..core import EncodedText, Tokenizer
from .canonical import Canonical
from .least_tokens import LeastTokens
from .longest_prefix import LongestPrefix
from .stochastok import StochasTok as StochasTok
from .stochastok import StochasTokEncoder


class Encoder(Protocol):
    """``encode_batch(tokenizer, texts)``: ids per text, no special tokens added;
    ``encode_with_offsets(tokenizer, text)``: ids with each token's byte span."""

    name: str

    def encode_batch(self, tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]: ...

    def encode_with_offsets(self, tokenizer: Tokenizer, text: str) -> EncodedText: ...


def _no_arguments(cls: type) -> Callable[[list[str]], Encoder]:
    def make(arguments: list[str]) -> Encoder:
        if arguments:
            raise ValueError(f"encoder {cls.name!r} takes no parameters, got {':'.join(arguments)!r}")  # type: ignore[attr-defined]
        return cls()

    return make


def _stochastok(arguments: list[str]) -> Encoder:
    if not 1 <= len(arguments) <= 2:
        raise ValueError("encoder stochastok needs a share: stochastok:P or stochastok:P:SEED (e.g. stochastok:0.1)")
    try:
        p = float(arguments[0])
        seed = int(arguments[1]) if len(arguments) > 1 else 0
    except ValueError:
        raise ValueError(f"stochastok:{':'.join(arguments)}: P must be a number in [0, 1) and SEED an integer "
                         "(e.g. stochastok:0.1:7)") from None
    return StochasTokEncoder(p, seed)


ENCODERS: dict[str, Callable[[list[str]], Encoder]] = {
    "canonical": _no_arguments(Canonical),
    "longest-prefix": _no_arguments(LongestPrefix),
    "least-tokens": _no_arguments(LeastTokens),
    "stochastok": _stochastok,
}


def get_encoder(spec: str | Encoder | None) -> Encoder:
    """The encoder ``NAME[:PARAMETERS]`` names (None: canonical); an encoder object is returned as is."""
    if spec is None:
        return Canonical()
    if not isinstance(spec, str):
        return spec
    name, *arguments = spec.strip().split(":")
    return lookup(ENCODERS, name, what="encoder")(arguments)


ENCODER_HELP = ("how text becomes ids: canonical (the tokenizer's merges, default), longest-prefix or least-tokens "
                "(the vocabulary without its merges), stochastok:P[:SEED] (canonical, then StochasTok splits a share P)")


def encoder_option(value: str) -> str:
    """argparse ``type`` for ``--encoder``: checked where it is parsed, kept as the spec string."""
    try:
        get_encoder(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value
