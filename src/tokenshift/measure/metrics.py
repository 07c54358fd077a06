"""Intrinsic tokenizer measurements on a text set: compression, fertility, Rényi efficiency, speed."""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..data import TextSet
from ..tokenizer import Tokenizer
from ..tokenizer.encoders import Encoder, get_encoder


@dataclass(frozen=True)
class TokenizerMeasurement:
    """One tokenizer on one text set. Bytes are UTF-8 bytes; words are maximal runs of non-whitespace."""

    tokenizer: str
    text: str
    documents: int
    bytes: int
    tokens: int
    words: int
    bytes_per_token: float
    tokens_per_byte: float
    fertility: float
    split_word_share: float
    renyi_alpha: float
    renyi_efficiency: float
    vocab_used: int
    vocab_used_share: float
    vocab_size: int
    round_trip_share: float
    round_trip_failures: int
    encode_mb_per_second: float
    encoder: str = "canonical"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def renyi_efficiency(counts: np.ndarray, vocab_size: int, alpha: float) -> float:
    """Rényi entropy of order ``alpha`` of the unigram distribution over log |V| (Zouhar et al. 2023).
    ``alpha`` 1 is the Shannon limit."""
    if alpha < 0:
        raise ValueError(f"Rényi alpha must be >= 0, got {alpha}")
    p = counts[counts > 0] / counts.sum()
    if math.isclose(alpha, 1.0):
        entropy = float(-(p * np.log(p)).sum())
    else:
        entropy = float(np.log((p**alpha).sum()) / (1 - alpha))
    return entropy / math.log(vocab_size)


def _word_spans(data: bytes) -> list[tuple[int, int]]:
    """Byte spans of whitespace-separated words (ASCII whitespace, as str.split would on ASCII)."""
    return [m.span() for m in re.finditer(rb"\S+", data)]


def _split_words(tokenizer: Tokenizer, doc: str, encoder: Encoder | None = None) -> tuple[int, int]:
    """(words, words overlapped by more than one token) of one document."""
    encoded = tokenizer.encode_with_offsets(doc) if encoder is None else encoder.encode_with_offsets(tokenizer, doc)
    spans = _word_spans(doc.encode("utf-8"))
    if not spans:
        return 0, 0
    starts = np.asarray(encoded.starts)
    ends = np.asarray(encoded.ends)
    word_starts = np.asarray([s for s, _ in spans])
    word_ends = np.asarray([e for _, e in spans])
    # tokens overlapping word w: start < word_end and end > word_start; starts/ends are sorted
    first = np.searchsorted(ends, word_starts, side="right")
    last = np.searchsorted(starts, word_ends, side="left")
    return len(spans), int(((last - first) > 1).sum())


def measure_tokenizer(tokenizer: Tokenizer, texts: TextSet, *, renyi_alpha: float = 2.5,
                      encoder: str | Encoder | None = None) -> TokenizerMeasurement:
    """``encoder``: how text becomes ids (default canonical; see :mod:`tokenshift.tokenizer.encoders`):
    compression, round trip and speed of a merge-free or stochastic encoding of the same vocabulary."""
    chosen = get_encoder(encoder)
    documents = texts.documents
    n_bytes = texts.n_bytes
    repeats = max(1, min(5, int(2_000_000 // max(n_bytes, 1))))
    if chosen.name != "canonical":  # Python encoders: build their tables outside the timing, and time them once
        chosen.encode_batch(tokenizer, documents[:1])
        repeats = 1
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        encoded = chosen.encode_batch(tokenizer, documents)
        best = min(best, time.perf_counter() - started)
    lengths = np.fromiter((len(ids) for ids in encoded), dtype=np.int64, count=len(encoded))
    all_ids = np.concatenate([np.asarray(ids, dtype=np.int64) for ids in encoded]) if len(encoded) else np.zeros(0, np.int64)
    tokens = int(lengths.sum())
    counts = np.bincount(all_ids, minlength=tokenizer.vocab_size)
    words = split = 0
    for doc in documents:
        w, s = _split_words(tokenizer, doc, chosen)
        words += w
        split += s
    failures = sum(1 for doc, ids in zip(documents, encoded) if tokenizer.decode(ids) != doc)
    used = int((counts > 0).sum())
    return TokenizerMeasurement(
        tokenizer=tokenizer.name, text=texts.name, documents=len(documents), bytes=n_bytes, tokens=tokens, words=words,
        bytes_per_token=n_bytes / tokens if tokens else math.nan, tokens_per_byte=tokens / n_bytes if n_bytes else math.nan,
        fertility=tokens / words if words else math.nan, split_word_share=split / words if words else math.nan,
        renyi_alpha=renyi_alpha, renyi_efficiency=renyi_efficiency(counts, tokenizer.vocab_size, renyi_alpha) if tokens else math.nan,
        vocab_used=used, vocab_used_share=used / tokenizer.vocab_size, vocab_size=tokenizer.vocab_size,
        round_trip_share=1 - failures / len(documents) if documents else math.nan, round_trip_failures=failures,
        encode_mb_per_second=n_bytes / 1e6 / best if best > 0 else math.inf, encoder=chosen.name,
    )


@dataclass(frozen=True)
class TokenPremium:
    """Tokens for ``text`` over tokens for the parallel ``reference`` (1.0: same cost)."""

    tokenizer: str
    text: str
    reference: str
    documents: int
    tokens: int
    reference_tokens: int
    premium: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def token_premium(tokenizer: Tokenizer, texts: TextSet, reference: TextSet) -> TokenPremium:
    if len(texts.documents) != len(reference.documents):
        raise ValueError(
            f"token premium needs parallel text: {texts.name} has {len(texts.documents)} documents, {reference.name} has "
            f"{len(reference.documents)}; pass files with one translation per line/document in the same order"
        )
    tokens = sum(len(ids) for ids in tokenizer.encode_batch(texts.documents))
    reference_tokens = sum(len(ids) for ids in tokenizer.encode_batch(reference.documents))
    return TokenPremium(tokenizer.name, texts.name, reference.name, len(texts.documents), tokens, reference_tokens,
                        tokens / reference_tokens if reference_tokens else math.nan)
