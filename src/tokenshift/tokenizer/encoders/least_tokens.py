"""Fewest tokens: an exact shortest segmentation of each pretoken over the vocabulary (no merges).

Dynamic programming over byte positions, from the end: ``best[i]`` is the fewest tokens that spell
``data[i:]``. Among the shortest segmentations the one taken is fixed: at each position the longest
token that still leads to a shortest one (so the result is the greedy-longest among the minimal).

    data   b" chat"      tokens at 0: " ", " c", " ch", " chat"     best[0] = 1 via " chat"

Byte-fallback tokens are edges only where no ordinary token starts, as in :mod:`.longest_prefix`.
"""

from __future__ import annotations

from ..core import EncodedText, Tokenizer
from .vocabulary import VocabularyIndex, resegment, spans_from_bytes

_UNREACHABLE = 1 << 30


def least_tokens(index: VocabularyIndex, data: bytes) -> list[int] | None:
    """Ids of a shortest segmentation of ``data``, or None if it has none."""
    n = len(data)
    edges: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for start in range(n):
        found = index.tokens_at(data, start)
        if not found:
            token = index.fallback.get(data[start], -1)
            found = [(start + 1, token)] if token >= 0 else []
        edges[start] = found
    best = [_UNREACHABLE] * (n + 1)
    best[n] = 0
    for start in range(n - 1, -1, -1):
        best[start] = min((best[end] for end, _ in edges[start]), default=_UNREACHABLE - 1) + 1
    if best[0] >= _UNREACHABLE:
        return None
    ids: list[int] = []
    position = 0
    while position < n:
        for end, token in reversed(edges[position]):  # longest first
            if best[end] == best[position] - 1:
                ids.append(token)
                position = end
                break
    return ids


class LeastTokens:
    name = "least-tokens"

    def encode_batch(self, tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
        return resegment(tokenizer, texts, least_tokens)

    def encode_with_offsets(self, tokenizer: Tokenizer, text: str) -> EncodedText:
        return spans_from_bytes(tokenizer, text, self.encode_batch(tokenizer, [text])[0])
