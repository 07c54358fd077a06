"""The ``tokenizer.ggml.*`` metadata of a tokenizer, as llama.cpp's converter writes it; one format
per kind of vocabulary (:data:`FORMATS`): byte-level BPE here, SentencePiece-style BPE in
:mod:`.spm_tokenizer`.

A byte-level BPE becomes ``tokenizer.ggml.model = gpt2``, one entry per embedding row (``rows`` may
exceed the tokenizer's ids: transplant pads the matrix to a multiple of 64)::

    id < tokenizer ids, a BPE token       its byte-level spelling (Ġ for a space)      NORMAL
    id < tokenizer ids, an added token     its text as written                          CONTROL (special, or <|...|>) / USER_DEFINED
    a hole, or a padded row (>= ids)       [PAD{id}]                                    UNUSED (never produced)

plus the merges (``"a b"``, best first), the BOS/EOS/PAD/UNK ids, ``add_bos_token`` /
``add_eos_token`` and the chat template; ``tokenizer.ggml.pre`` is the name chosen by :mod:`.pre`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..tokenizer import Tokenizer
from .pre import PreChoice, choose_pre
from .spm_tokenizer import build_spm_vocabulary, check_spm, spm_pre
from .vocabulary import Vocabulary as Vocabulary
from .vocabulary import adds_eos as adds_eos
from .vocabulary import looks_special
from .vocabulary import write_tokenizer as write_tokenizer


def check_byte_level(tokenizer: Tokenizer) -> None:
    """A one-line ValueError unless the tokenizer is a byte-level BPE."""
    spec = json.loads(tokenizer.backend.to_str())["model"]
    if spec.get("type") != "BPE":
        raise ValueError(f"tokenizer {tokenizer.name!r} is a {tokenizer.kind} {spec.get('type')} tokenizer; GGUF export "
                         "writes BPE vocabularies only (byte-level: tokenizer.ggml.model = gpt2; SentencePiece-style: llama)")


def build_byte_level_vocabulary(tokenizer: Tokenizer, rows: int) -> Vocabulary:
    """Tokens, token types and merges of a byte-level BPE for a model with ``rows`` embedding rows."""
    import gguf

    model = json.loads(tokenizer.backend.to_str())["model"]
    vocab = tokenizer.backend.get_vocab(with_added_tokens=True)
    by_id = {idx: token for token, idx in vocab.items()}
    added = dict(tokenizer.backend.get_added_tokens_decoder())
    tokens: list[str] = []
    types: list[int] = []
    for idx in range(rows):
        token = by_id.get(idx)
        if token is None:
            tokens.append(f"[PAD{idx}]")
            types.append(gguf.TokenType.UNUSED)
        elif idx in added:
            tokens.append(added[idx].content)
            special = added[idx].special or looks_special(added[idx].content)
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]  # tokenizers >= 0.20 writes pairs
    return Vocabulary(model="gpt2", tokens=tokens, types=[int(t) for t in types], merges=merges)


def _byte_level_pre(tokenizer: Tokenizer, declared: str | None, forced: str | None) -> PreChoice:
    return choose_pre(tokenizer, declared=declared, forced=forced)


@dataclass(frozen=True)
class TokenizerFormat:
    """One way of writing a vocabulary: ``check`` refuses what it cannot write (one line), ``build``
    makes the :class:`Vocabulary` for ``rows`` embedding rows, ``pre`` picks ``tokenizer.ggml.pre``
    (``declared``: the source's name; ``forced``: ``--pre``)."""

    kind: str  # Tokenizer.kind
    ggml_model: str
    check: Callable[[Tokenizer], Any]
    build: Callable[[Tokenizer, int], Vocabulary]
    pre: Callable[[Tokenizer, str | None, str | None], PreChoice]


FORMATS: dict[str, TokenizerFormat] = {
    fmt.kind: fmt
    for fmt in [
        TokenizerFormat("byte-level", "gpt2", check_byte_level, build_byte_level_vocabulary, _byte_level_pre),
        TokenizerFormat("metaspace", "llama", check_spm, build_spm_vocabulary, spm_pre),
    ]
}


def check_exportable(tokenizer: Tokenizer) -> TokenizerFormat:
    """The format that writes ``tokenizer``; a one-line ValueError when none can."""
    fmt = FORMATS[tokenizer.kind]
    fmt.check(tokenizer)
    return fmt


def build_vocabulary(tokenizer: Tokenizer, rows: int) -> Vocabulary:
    """The GGUF vocabulary of ``tokenizer`` for a model with ``rows`` embedding rows (>= the tokenizer's ids)."""
    if rows < tokenizer.vocab_size:
        raise ValueError(f"tokenizer {tokenizer.name!r} has {tokenizer.vocab_size} ids but the model only {rows} embedding rows")
    return check_exportable(tokenizer).build(tokenizer, rows)
