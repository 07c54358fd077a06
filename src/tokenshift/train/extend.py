"""Vocabulary extension: keep every token and id of an existing tokenizer, append merges learned on new text.

Merges are learned inside the base's own pretokens, so the extension never joins what the base keeps
apart (digits SmolLM2 reads one at a time, a word and its punctuation, two scripts):

- byte-level BPE (GPT-2, Llama-3, Qwen, SmolLM2): the base's pre-tokenizer cuts the text;
- SentencePiece-style BPE (Gemma): there is no pre-tokenizer, the merges see the whole normalised
  text, and what kept SentencePiece's merges apart were its training rules (split by whitespace, by
  script, digits alone). :func:`sentencepiece_chunks` cuts by those rules, at least as finely as
  they did, so no new merge can cross a boundary an old one could not.

Text the base already reads well is protected: each pretoken counts by how much more often it
occurs, per byte, in the new text than in the protected text (:func:`protected_counts`). A name or a
cognate shared with English then teaches no merge, and English keeps its tokenization.
"""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from collections.abc import Iterable
from typing import Any

from ..tokenizer import Tokenizer
from ..tokenizer.bytemap import METASPACE
from .merges import append_merges, continue_merges

# Normalised SentencePiece text (spaces spelled ▁) cut into pieces no SentencePiece merge crosses:
# newline runs, letter runs with their leading ▁s, single digits, punctuation runs with their
# leading ▁s, ▁ runs, other whitespace. Letter runs are then cut where the script changes.
_SENTENCEPIECE_PIECES = r"[\r\n]+|▁*[\p{L}\p{M}]+|\p{N}|▁*[^\s\p{L}\p{M}\p{N}▁]+|▁+|\s+"
# SentencePiece treats Hiragana and Katakana as Han (trainer_interface.cc), so Japanese stays whole.
_SAME_SCRIPT = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "HALFWIDTH": "CJK", "IDEOGRAPHIC": "CJK"}


def _script(char: str) -> str | None:
    """A script label from the character's Unicode name (LATIN, CYRILLIC, CJK, ...); None for marks
    and ▁, which belong to the letter they follow or precede."""
    if char == METASPACE or unicodedata.category(char).startswith("M"):
        return None
    word = unicodedata.name(char, "?").split(" ", 1)[0]
    return _SAME_SCRIPT.get(word, word)


def _split_scripts(piece: str) -> list[str]:
    parts: list[str] = []
    start, current = 0, None
    for index, char in enumerate(piece):
        script = _script(char)
        if script is None:
            continue
        if current is not None and script != current:
            parts.append(piece[start:index])
            start = index
        current = script
    parts.append(piece[start:])
    return parts


def sentencepiece_chunks(normalized: str) -> list[str]:
    """Cut normalised SentencePiece text (spaces already ``▁``) into chunks no merge may cross."""
    import regex

    chunks: list[str] = []
    for piece in regex.findall(_SENTENCEPIECE_PIECES, normalized):
        chunks.extend(_split_scripts(piece) if regex.match(r"▁*[\p{L}\p{M}]", piece) else [piece])
    return chunks


def _chunker(tokenizer: Tokenizer) -> Any:
    """A function document -> chunks under the tokenizer's own pre-tokenization (see the module docstring)."""
    backend = tokenizer.backend
    if tokenizer.kind == "byte-level":
        pre = backend.pre_tokenizer
        if pre is None:
            raise ValueError(f"tokenizer {tokenizer.name!r} has no pre-tokenizer, so every document would be one pretoken "
                             "and new merges could join words, digits and punctuation; give its tokenizer.json a "
                             "pre_tokenizer (e.g. ByteLevel) before extending it")
        return lambda doc: [doc[start:end] for _, (start, end) in pre.pre_tokenize_str(doc)]
    normalizer = backend.normalizer
    if normalizer is None or METASPACE not in normalizer.normalize_str(" "):
        raise ValueError(f"tokenizer {tokenizer.name!r} is neither byte-level BPE nor SentencePiece-style BPE with a "
                         "▁ normalizer (Gemma, Llama-2); tokenshift cannot tell where its merges may go")
    return lambda doc: sentencepiece_chunks(normalizer.normalize_str(doc))


def _digits_apart(chunks: list[str]) -> list[str]:
    """Every digit its own chunk (the rest of each chunk stays as it was)."""
    import regex

    return [part for chunk in chunks for part in regex.split(r"(\p{N})", chunk) if part]


def count_pretokens(tokenizer: Tokenizer, documents: Iterable[str]) -> Counter[str]:
    """Distinct chunks of ``documents`` under the tokenizer's own pretokenization, with their counts:
    raw text for byte-level tokenizers, normalised text (``▁`` for spaces) for SentencePiece-style ones.

    A tokenizer that reads every digit alone keeps doing so even where only its vocabulary, not its
    pre-tokenizer, holds digits apart (GPT-2's regex over a vocabulary without multi-digit tokens):
    digits are then cut apart here too, so no new merge joins them."""
    from ..measure.digits import digit_scheme

    chunker = _chunker(tokenizer)
    if digit_scheme(tokenizer) == "single":
        plain = chunker
        chunker = lambda doc: _digits_apart(plain(doc))  # noqa: E731
    counts: Counter[str] = Counter()
    for doc in documents:
        counts.update(chunker(doc))
    return counts


def protected_counts(counts: Counter[str], protected: Counter[str]) -> Counter[str]:
    """Each chunk's count less its count in the protected text scaled to the same number of bytes;
    chunks left with less than one occurrence are dropped.

    Chosen on wiki-fr/en:validation (SmolLM2 + 8,192 French merges): English tokens changed 0.56% ->
    0.36% with this weight (scale 1), 0.34% at scale 3, while French used as few tokens as without it
    (29.0% fewer than SmolLM2 either way)."""
    size = sum(len(chunk.encode("utf-8")) * n for chunk, n in counts.items())
    protected_size = sum(len(chunk.encode("utf-8")) * n for chunk, n in protected.items())
    if not protected_size:
        return counts
    ratio = size / protected_size
    kept: Counter[str] = Counter()
    for chunk, n in counts.items():
        weight = round(n - protected.get(chunk, 0) * ratio)
        if weight >= 1:
            kept[chunk] = weight
    return kept


def _chunk_encoder(tokenizer: Tokenizer) -> Any:
    """The backend that segments one chunk: the base itself for byte-level tokenizers (re-cutting a
    pretoken changes nothing); for SentencePiece-style ones the bare model, since chunks are already
    normalised (a Prepend("▁") normalizer would otherwise add a second ▁)."""
    from tokenizers import Tokenizer as Backend

    if tokenizer.kind == "byte-level":
        return tokenizer.backend
    spec = json.loads(tokenizer.backend.to_str())
    spec["normalizer"] = None
    spec["pre_tokenizer"] = None
    return Backend.from_str(json.dumps(spec, ensure_ascii=False))


def _byte_fallback_ids(tokenizer: Tokenizer) -> frozenset[int]:
    """Ids of ``<0xNN>`` tokens: a merge of two of them would be spelled "<0xE4><0xB8>", not bytes."""
    vocab = tokenizer.backend.get_vocab(with_added_tokens=False)
    return frozenset(idx for token, idx in vocab.items() if len(token) == 6 and token.startswith("<0x") and token.endswith(">"))


def extend_tokenizer(
    base: Tokenizer,
    documents: Iterable[str],
    *,
    vocab_size: int,
    protect: Iterable[str] | None = None,
    min_frequency: int = 2,
    show_progress: bool = False,
) -> Tokenizer:
    """Append merges to ``base`` until it has ``vocab_size`` ids (fewer if the text runs out of pairs
    seen ``min_frequency`` times). Old ids, merges, special tokens, pre-tokenizer and normalizer are
    untouched. ``protect``: documents whose tokenization should change as little as possible
    (see :func:`protected_counts`)."""
    if vocab_size <= base.vocab_size:
        raise ValueError(f"--vocab-size {vocab_size} must exceed the extended tokenizer's {base.vocab_size} ids")
    model = json.loads(base.backend.to_str())["model"]
    if model.get("type") != "BPE":
        raise ValueError(f"--extend needs a BPE tokenizer; {base.name!r} is a {model.get('type')} model, which has no merges to append to")
    counts = count_pretokens(base, documents)
    if protect is not None:
        counts = protected_counts(counts, count_pretokens(base, protect))
    encoder = _chunk_encoder(base)
    merges = continue_merges(encoder, counts, n_merges=vocab_size - base.vocab_size, min_frequency=min_frequency,
                             show_progress=show_progress, split_at=_byte_fallback_ids(base))
    return Tokenizer(append_merges(base.backend, merges), name=f"{base.name}+{len(merges)}", special=base.special,
                     source=base.source, chat_template=base.chat_template)
