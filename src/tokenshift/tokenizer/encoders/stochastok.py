"""StochasTok (Sims et al. 2025): split tokens at random into pairs of vocabulary tokens that spell them.

``int(p * n)`` times, a position of the current sequence (n tokens at the start) is drawn uniformly;
if its token can be split, it is replaced by one of its splits, drawn uniformly: a pair (a, b) of
ordinary tokens whose bytes concatenate to the token's. Pieces can be drawn again and split further,
and the sequence grows by one token per split, so by about ``p * n`` when most tokens can be split.
The same seed gives the same result.

The current sequence is kept as slots, one per original token, each holding its pieces; a Fenwick
tree over the slots' sizes finds the slot of a drawn position in O(log n), so a split costs that
rather than the O(n) of rebuilding a list.

    ids      [ the][ cat]            draw position 1 -> " cat" -> (" c", "at")
    slots    [[ the], [ c, at]]      sizes 1, 2 (the tree holds their prefix sums)
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from ..core import EncodedText, Tokenizer
from .vocabulary import vocabulary_index


@lru_cache(maxsize=4)
def splits_of(tokenizer: Tokenizer) -> dict[int, tuple[tuple[int, int], ...]]:
    """token id -> every (left, right) pair of ordinary tokens that spells it, in order of the cut."""
    index = vocabulary_index(tokenizer)
    table: dict[int, tuple[tuple[int, int], ...]] = {}
    for data, token in index.ids.items():
        pairs = tuple((index.ids[data[:cut]], index.ids[data[cut:]]) for cut in range(1, len(data))
                      if data[:cut] in index.ids and data[cut:] in index.ids)
        if pairs:
            table[token] = pairs
    return table


def stochastok(ids: Sequence[int], splits: dict[int, tuple[tuple[int, int], ...]], p: float, rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """(new ids, for each new id the index of the original token it comes from). ``p`` in [0, 1)."""
    n = len(ids)
    draws = int(p * n)
    slots: list[list[int] | None] = [None] * n  # None: the slot still holds just its original token
    tree = [0] * (n + 1)  # Fenwick tree of slot sizes minus 1 (the extra pieces); slot i at i + 1
    total = n
    top = 1 << max(0, n.bit_length() - 1) if n else 0
    uniform = rng.random((draws, 2))
    for k in range(draws):
        target = int(uniform[k, 0] * total)  # 0-based position in the current sequence
        # Fenwick descent: the most slots whose pieces all lie before the target (cum(j) = j + extra(1..j))
        slot, extra, step = 0, 0, top
        while step:
            nxt = slot + step
            if nxt <= n and nxt + extra + tree[nxt] <= target:
                slot = nxt
                extra += tree[nxt]
            step >>= 1
        remaining = target - slot - extra  # the target's offset inside slot ``slot`` (0-based)
        pieces = slots[slot]
        if pieces is None:
            pieces = [ids[slot]]
        choices = splits.get(pieces[remaining])
        if not choices:
            continue
        left, right = choices[int(uniform[k, 1] * len(choices))]
        pieces[remaining : remaining + 1] = [left, right]
        slots[slot] = pieces
        i = slot + 1
        while i <= n:
            tree[i] += 1
            i += i & -i
        total += 1
    out: list[int] = []
    origin: list[int] = []
    for position, pieces in enumerate(slots):
        if pieces is None:
            out.append(ids[position])
            origin.append(position)
        else:
            out.extend(pieces)
            origin.extend([position] * len(pieces))
    return out, origin


class StochasTok:
    """The transform bound to a tokenizer, a share ``p`` and a ``seed``: :meth:`split` for ids,
    :meth:`split_encoded` for ids with byte spans (heal's distillation aligns on them)."""

    def __init__(self, tokenizer: Tokenizer, p: float, *, seed: int = 0) -> None:
        if not 0 <= p < 1:
            raise ValueError(f"StochasTok's share p must be in [0, 1), got {p}; e.g. 0.1 splits about one token in ten")
        self.tokenizer = tokenizer
        self.p = p
        self.seed = seed
        self.splits = splits_of(tokenizer)

    def rng(self, *stream: int) -> np.random.Generator:
        """The generator of one sequence: the seed and the sequence's own numbers (document index, step ...)."""
        return np.random.default_rng([self.seed, *stream])

    def split(self, ids: Sequence[int], rng: np.random.Generator) -> list[int]:
        return stochastok(ids, self.splits, self.p, rng)[0]

    def split_encoded(self, encoded: EncodedText, rng: np.random.Generator) -> EncodedText:
        """Split ``encoded``; each piece gets its own bytes' span inside its token's (exact offsets),
        or its token's span (inexact offsets, as :class:`EncodedText` shares a split character's)."""
        ids, origin = stochastok(encoded.ids, self.splits, self.p, rng)
        starts, ends = [], []
        previous, position = -1, 0
        for token, source in zip(ids, origin):
            if not encoded.exact_offsets:
                starts.append(encoded.starts[source])
                ends.append(encoded.ends[source])
                continue
            if source != previous:
                position, previous = encoded.starts[source], source
            starts.append(position)
            position += len(self.tokenizer.token_bytes(token) or b"")
            ends.append(position)
        return EncodedText(ids, starts, ends, exact_offsets=encoded.exact_offsets)


class StochasTokEncoder:
    """``stochastok:P[:SEED]``: the canonical encoding, then StochasTok; document i uses stream (i,)."""

    def __init__(self, p: float, seed: int = 0) -> None:
        if not 0 <= p < 1:
            raise ValueError(f"stochastok:P needs P in [0, 1), got {p}")
        self.p = p
        self.seed = seed
        self.name = f"stochastok:{p:g}:{seed}"

    def encode_batch(self, tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
        transform = StochasTok(tokenizer, self.p, seed=self.seed)
        return [transform.split(ids, transform.rng(i)) for i, ids in enumerate(tokenizer.encode_batch(texts))]

    def encode_with_offsets(self, tokenizer: Tokenizer, text: str) -> EncodedText:
        transform = StochasTok(tokenizer, self.p, seed=self.seed)
        return transform.split_encoded(tokenizer.encode_with_offsets(text), transform.rng(0))
