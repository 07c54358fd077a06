"""Pair counts of each category's sample along a merge history, stored as per-merge changes.

The linear program of :mod:`.mixture` compares, at every merge step t, the count of the pair merged
at t with the count of every other pair, all taken after merges 1..t-1 are applied to each sample.
Storing every count at every step would take steps x pairs x categories numbers; a merge changes
only the pairs around its occurrences, so the counts are kept as a start and a list of changes:

    counts before merge 0      initial           (P, K)
    merge t applied            delta_ids[t]      (n_t,)   which pairs changed
                               delta_values[t]   (n_t, K) by how much, per category

    e.g. merging ("t", "h") in "the" (count 3 in category k): ("t","h") -3, ("h","e") -3, ("th","e") +3

Counts are occurrences of adjacent symbol pairs inside pretokens (overlapping pairs counted twice,
as the Hugging Face trainer counts them); a merge joins its pair left to right, as the trainer does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .merges import Merge


@dataclass(frozen=True)
class PairTrajectory:
    """Counts of every pair in every category's sample along ``merges``. ``pairs[i]``: the pair with
    id i; ``merge_ids[t]``: id of the pair merge t joins; ``initial``: (P, K) counts before merge 0;
    ``delta_ids``/``delta_values``: what merge t changes (applied after step t's comparison).
    ``sample_bytes``: (K,) UTF-8 bytes each category's words stand for (the normalising denominators)."""

    categories: tuple[str, ...]
    merges: tuple[Merge, ...]
    pairs: list[Merge]
    merge_ids: np.ndarray
    initial: np.ndarray
    delta_ids: list[np.ndarray]
    delta_values: list[np.ndarray]
    sample_bytes: np.ndarray
    words: np.ndarray

    @property
    def n_pairs(self) -> int:
        return len(self.pairs)

    def counts_at(self, step: int) -> np.ndarray:
        """(P, K) counts after merges 0..step-1 (replayed; for checks, not for the solver)."""
        counts = self.initial.copy()
        for t in range(step):
            counts[self.delta_ids[t]] += self.delta_values[t]
        return counts


def _merge_word(word: list[int], a: int, b: int, c: int) -> list[int]:
    out: list[int] = []
    i, n = 0, len(word)
    while i < n:
        if i + 1 < n and word[i] == a and word[i + 1] == b:
            out.append(c)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def pair_trajectory(
    category_words: dict[str, Counter[str]],
    merges: Sequence[Merge],
    *,
    sample_bytes: dict[str, int] | None = None,
) -> PairTrajectory:
    """Apply ``merges`` in order to the words of every category and record the pair counts.

    ``category_words``: category -> {word spelled in the merges' alphabet: occurrences}.
    ``sample_bytes``: category -> UTF-8 bytes of its sample (default: the characters of its words).
    All categories share one pass: a word's counts form a (K,) vector, so each merge rewrites each
    distinct word once, whichever categories it occurs in.
    """
    categories = tuple(category_words)
    k = len(categories)
    symbol_ids: dict[str, int] = {}

    def symbol(text: str) -> int:
        found = symbol_ids.get(text)
        if found is None:
            found = symbol_ids[text] = len(symbol_ids)
        return found

    word_index: dict[str, int] = {}
    rows: list[tuple[int, int, int]] = []  # (word, category, count)
    for c, name in enumerate(categories):
        for word, n in category_words[name].items():
            if n <= 0:
                continue
            w = word_index.setdefault(word, len(word_index))
            rows.append((w, c, n))
    weights = np.zeros((len(word_index), k), dtype=np.float64)
    if rows:
        r = np.asarray(rows, dtype=np.int64)
        np.add.at(weights, (r[:, 0], r[:, 1]), r[:, 2].astype(np.float64))
    words = [[symbol(ch) for ch in word] for word in word_index]

    pair_ids: dict[tuple[int, int], int] = {}
    pairs: list[tuple[int, int]] = []

    def pair_id(a: int, b: int) -> int:
        found = pair_ids.get((a, b))
        if found is None:
            found = pair_ids[(a, b)] = len(pairs)
            pairs.append((a, b))  # symbol ids; spelled at the end
        return found

    where: dict[int, set[int]] = {}
    first_pids: list[int] = []
    first_words: list[int] = []
    for w, word in enumerate(words):
        for x, y in zip(word, word[1:]):
            pid = pair_id(x, y)
            first_pids.append(pid)
            first_words.append(w)
            where.setdefault(pid, set()).add(w)

    merge_ids = np.empty(len(merges), dtype=np.int64)
    changes: list[tuple[list[int], list[int], list[int]]] = []
    for t, (left, right) in enumerate(merges):
        a, b, new = symbol(left), symbol(right), symbol(left + right)
        m = pair_id(a, b)
        merge_ids[t] = m
        d_pairs: list[int] = []
        d_words: list[int] = []
        d_diffs: list[int] = []
        for w in sorted(where.pop(m, ())):
            old = words[w]
            merged = _merge_word(old, a, b, new)
            if len(merged) == len(old):
                continue
            words[w] = merged
            diff = Counter(zip(merged, merged[1:]))
            diff.subtract(Counter(zip(old, old[1:])))
            for (x, y), n in diff.items():
                if n:
                    pid = pair_id(x, y)
                    d_pairs.append(pid)
                    d_words.append(w)
                    d_diffs.append(n)
                    if n > 0:
                        where.setdefault(pid, set()).add(w)
        changes.append((d_pairs, d_words, d_diffs))

    n_pairs = len(pairs)
    initial = np.zeros((n_pairs, k), dtype=np.float64)
    if first_pids:
        fp = np.asarray(first_pids, dtype=np.int64)
        fw = np.asarray(first_words, dtype=np.int64)
        for c in range(k):
            initial[:, c] = np.bincount(fp, weights=weights[fw, c], minlength=n_pairs)
    delta_ids: list[np.ndarray] = []
    delta_values: list[np.ndarray] = []
    for d_pairs, d_words, d_diffs in changes:
        if not d_pairs:
            delta_ids.append(np.zeros(0, dtype=np.int64))
            delta_values.append(np.zeros((0, k)))
            continue
        ids, inverse = np.unique(np.asarray(d_pairs, dtype=np.int64), return_inverse=True)
        contribution = np.asarray(d_diffs, dtype=np.float64)[:, None] * weights[np.asarray(d_words, dtype=np.int64)]
        values = np.zeros((len(ids), k))
        np.add.at(values, inverse, contribution)
        delta_ids.append(ids)
        delta_values.append(values)

    spelled = [""] * len(symbol_ids)
    for text, idx in symbol_ids.items():
        spelled[idx] = text
    named_pairs = [(spelled[a], spelled[b]) for a, b in pairs]
    if sample_bytes is None:
        sizes = np.asarray([sum(len(w) * n for w, n in category_words[c].items()) for c in categories], dtype=np.float64)
    else:
        sizes = np.asarray([sample_bytes[c] for c in categories], dtype=np.float64)
    n_words = np.asarray([sum(category_words[c].values()) for c in categories], dtype=np.int64)
    return PairTrajectory(categories, tuple(merges), named_pairs, merge_ids, initial, delta_ids, delta_values, sizes, n_words)
