"""Batch-level BPE over token ids (Feher, Vulić & Minixhofer 2024): shorten a batch's sequences by
merging its most frequent adjacent pairs, without touching the tokenizer.

Every base token carries the index of the unit it may merge within (``boundary``): a pretoken of the
tokenizer's own pre-tokenizer, a whitespace-delimited word, or the whole document. Pairs are counted
across the batch inside units only; the most frequent becomes a new id (``base_size``, then + 1, ...)
and replaces its occurrences left to right; repeat::

    units (pretoken):  [Ġun][belie][vable]   [Ġun][belie][ved]   [Ġthe]
    merge 1 (Ġun,belie) x2 -> A:  [A][vable]   [A][ved]   [Ġthe]          5 -> 3 + 2 + 1 ... tokens
    merge 2 (A,vable)   x1 -> B   (only with min_count 1)

A merged id stands for the base ids it spells (:attr:`DynamicVocabulary.pieces`, always base ids, in
order), so its embedding can be composed from theirs and any sequence expands back exactly.
Units are deduplicated (as in BPE training), so a merge costs time in the unique units that hold it.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

from ..tokenizer import Tokenizer

logger = logging.getLogger(__name__)

Boundary = Literal["pretoken", "word", "none"]
BOUNDARIES: tuple[str, ...] = ("pretoken", "word", "none")
NO_MERGE = -1  # the unit index of a token that never merges (special tokens, ids without bytes)


@dataclass
class DynamicVocabulary:
    """New ids ``base_size + k`` for k in range(len(pieces)); ``pieces[k]`` are the base ids id k spells;
    ``merges[k]`` the pair (base or earlier new ids) it was made from, ``counts[k]`` how often it applied."""

    base_size: int
    pieces: list[tuple[int, ...]] = field(default_factory=list)
    merges: list[tuple[int, int]] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.pieces)

    def spell(self, token: int) -> tuple[int, ...]:
        """The base ids of ``token`` (itself if it is a base id)."""
        return (token,) if token < self.base_size else self.pieces[token - self.base_size]

    def expand(self, ids: list[int]) -> list[int]:
        """Base ids of a merged sequence: ``expand(merged) == base`` for every sequence merged."""
        return [piece for token in ids for piece in self.spell(token)]


@dataclass
class MergedBatch:
    """The merged sequences of a batch, the vocabulary they use, and token counts before and after."""

    sequences: list[list[int]]
    vocabulary: DynamicVocabulary
    base_tokens: int
    dynamic_tokens: int

    @property
    def reduction(self) -> float:
        """Share of tokens the merges removed (0.2: 20% shorter)."""
        return 1 - self.dynamic_tokens / self.base_tokens if self.base_tokens else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"merges": len(self.vocabulary), "base_tokens": self.base_tokens, "dynamic_tokens": self.dynamic_tokens,
                "reduction": self.reduction}


def check_merge_options(*, max_merges: int | None, reduction: float | None, min_count: int, boundary: str) -> None:
    """One ValueError listing every bad option."""
    problems = []
    if max_merges is None and reduction is None:
        problems.append("give a number of merges or a target reduction (or both: whichever comes first)")
    if max_merges is not None and max_merges < 0:
        problems.append(f"merges must be 0 or more, got {max_merges}")
    if reduction is not None and not 0 <= reduction < 1:
        problems.append(f"reduction must be in [0, 1) (0.2: 20% fewer context tokens), got {reduction}")
    if min_count < 1:
        problems.append(f"min_count must be at least 1, got {min_count}")
    if boundary not in BOUNDARIES:
        problems.append(f"unknown boundary {boundary!r}; choose {', '.join(BOUNDARIES)}")
    if problems:
        raise ValueError("; ".join(problems))


def _is_space(data: bytes, at: int) -> bool:
    return data[at : at + 1] in (b" ", b"\t", b"\n", b"\r")


def _word_units(tokenizer: Tokenizer, ids: list[int], *, isolate_digits: bool) -> list[int]:
    """Whitespace words, from the tokens' bytes: a unit starts at a token that starts with whitespace
    after a token that does not end with it; a token holding a newline is a unit of its own; with
    ``isolate_digits``, so is every token holding a digit (SentencePiece's split_digits)."""
    units: list[int] = []
    unit = -1
    previous: bytes | None = None
    alone_before = False
    specials = set(tokenizer.special.all_special)
    for token in ids:
        data = tokenizer.token_bytes(token)
        if token in specials or not data:
            units.append(NO_MERGE)
            previous, alone_before = None, True
            continue
        alone = b"\n" in data or (isolate_digits and any(48 <= b <= 57 for b in data))
        if previous is None or alone or alone_before or (_is_space(data, 0) and not _is_space(previous, len(previous) - 1)):
            unit += 1
        units.append(unit)
        previous, alone_before = data, alone
    return units


def _pretoken_units(tokenizer: Tokenizer, text: str, ids: list[int]) -> list[int]:
    """The tokenizer's own pre-tokenizer: each token gets the index of the pretoken its first byte is in.
    SentencePiece-style tokenizers (Gemma's pre-tokenizer splits nothing after ▁ replaces spaces) cut
    at whitespace words with digits alone, as SentencePiece itself does."""
    backend = tokenizer.backend
    if tokenizer.kind != "byte-level" or backend.pre_tokenizer is None:
        return _word_units(tokenizer, ids, isolate_digits=True)
    normalized = backend.normalizer.normalize_str(text) if backend.normalizer is not None else text
    if normalized != text:  # offsets would be in the normalized text; words are then the safe choice
        return _word_units(tokenizer, ids, isolate_digits=False)
    char_to_byte = [0]
    for char in text:
        char_to_byte.append(char_to_byte[-1] + len(char.encode("utf-8")))
    starts = [char_to_byte[start] for _, (start, _) in backend.pre_tokenizer.pre_tokenize_str(text)]
    encoded = tokenizer.encode_with_offsets(text)
    assert encoded.ids == ids, "units are computed for the text's own encoding"
    specials = set(tokenizer.special.all_special)
    return [NO_MERGE if token in specials else bisect_right(starts, start) - 1 for token, start in zip(ids, encoded.starts)]


def merge_units(tokenizer: Tokenizer, text: str, ids: list[int], *, boundary: Boundary = "pretoken") -> list[int]:
    """For each token of ``ids`` (the tokenizer's encoding of ``text``), the unit it may merge within:
    adjacent tokens merge only if their units are equal and not :data:`NO_MERGE`."""
    if boundary == "pretoken":
        return _pretoken_units(tokenizer, text, ids)
    if boundary == "word":  # digits stay alone: both model families read numbers digit by digit
        return _word_units(tokenizer, ids, isolate_digits=True)
    if boundary == "none":
        specials = set(tokenizer.special.all_special)
        return [NO_MERGE if token in specials or not tokenizer.token_bytes(token) else 0 for token in ids]
    raise ValueError(f"unknown boundary {boundary!r}; choose {', '.join(BOUNDARIES)}")


def _runs(ids: list[int], units: list[int]) -> list[tuple[int, ...]]:
    """``ids`` cut where the unit changes; NO_MERGE tokens are runs of one."""
    runs: list[tuple[int, ...]] = []
    current: list[int] = []
    last = None
    for token, unit in zip(ids, units):
        if current and (unit != last or unit == NO_MERGE):
            runs.append(tuple(current))
            current = []
        current.append(token)
        last = unit
    if current:
        runs.append(tuple(current))
    return runs


def _merge_pair(word: list[int], pair: tuple[int, int], new_id: int) -> tuple[list[int], int]:
    """``word`` with non-overlapping occurrences of ``pair`` replaced left to right; and how many."""
    out: list[int] = []
    i = 0
    done = 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == pair[0] and word[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
            done += 1
        else:
            out.append(word[i])
            i += 1
    return out, done


def learn_merges(
    sequences: list[list[int]],
    units: list[list[int]],
    *,
    base_size: int,
    max_merges: int | None = None,
    reduction: float | None = None,
    min_count: int = 2,
) -> MergedBatch:
    """Batch BPE (see the module docstring): merge the most frequent pair (ties: the smaller pair) until
    ``max_merges`` merges, until the batch is ``reduction`` shorter, or until no pair occurs
    ``min_count`` times, whichever comes first. ``units[i][j]``: the unit of token j of sequence i
    (:func:`merge_units`)."""
    check_merge_options(max_merges=max_merges, reduction=reduction, min_count=min_count, boundary="none")
    if len(sequences) != len(units) or any(len(s) != len(u) for s, u in zip(sequences, units)):
        raise ValueError("every sequence needs one unit index per token (see merge_units)")
    doc_runs = [_runs(ids, unit) for ids, unit in zip(sequences, units)]
    frequency = Counter(run for runs in doc_runs for run in runs)
    keys = list(frequency)
    words = [list(k) for k in keys]
    freq = [frequency[k] for k in keys]
    pair_counts: Counter[tuple[int, int]] = Counter()
    where: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
    for index, word in enumerate(words):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += freq[index]
            where[pair].add(index)
    base_tokens = sum(len(w) * f for w, f in zip(words, freq))
    total = base_tokens
    goal = None if reduction is None else base_tokens * (1 - reduction)
    vocabulary = DynamicVocabulary(base_size=base_size)
    while pair_counts and (max_merges is None or len(vocabulary) < max_merges) and (goal is None or total > goal):
        pair, count = max(pair_counts.items(), key=lambda item: (item[1], -item[0][0], -item[0][1]))
        if count < min_count:
            break
        new_id = base_size + len(vocabulary)
        applied = 0
        for index in where.pop(pair):
            word, f = words[index], freq[index]
            for old in zip(word, word[1:]):
                pair_counts[old] -= f
                if pair_counts[old] <= 0:
                    del pair_counts[old]
            merged, done = _merge_pair(word, pair, new_id)
            words[index] = merged
            applied += done * f
            for new in zip(merged, merged[1:]):
                pair_counts[new] += f
                where[new].add(index)
        pair_counts.pop(pair, None)
        total -= applied
        vocabulary.pieces.append(vocabulary.spell(pair[0]) + vocabulary.spell(pair[1]))
        vocabulary.merges.append(pair)
        vocabulary.counts.append(applied)
    merged_of = {key: words[index] for index, key in enumerate(keys)}
    merged = [[token for run in runs for token in merged_of[run]] for runs in doc_runs]
    dynamic_tokens = sum(map(len, merged))
    assert dynamic_tokens == total
    logger.info("%d merges: %d -> %d tokens (%.1f%% shorter)", len(vocabulary), base_tokens, total,
                100 * (1 - total / base_tokens) if base_tokens else 0.0)
    return MergedBatch(merged, vocabulary, base_tokens, dynamic_tokens)


def merge_texts(
    tokenizer: Tokenizer,
    texts: list[str],
    *,
    max_merges: int | None = None,
    reduction: float | None = None,
    boundary: Boundary = "pretoken",
    min_count: int = 2,
    base_size: int | None = None,
) -> MergedBatch:
    """Encode ``texts`` (a batch of documents, or one long prompt) and merge them with :func:`learn_merges`;
    new ids start at ``base_size`` (default: the vocabulary size; pass a model's embedding rows where it has more)."""
    check_merge_options(max_merges=max_merges, reduction=reduction, min_count=min_count, boundary=boundary)
    sequences = tokenizer.encode_batch(texts)
    units = [merge_units(tokenizer, text, ids, boundary=boundary) for text, ids in zip(texts, sequences)]
    return learn_merges(sequences, units, base_size=tokenizer.vocab_size if base_size is None else base_size, max_merges=max_merges, reduction=reduction,
                        min_count=min_count)

