"""Greedy longest prefix (WordPiece-style maximal munch) over the vocabulary, without the merges.

Within each pretoken: take the longest ordinary token the rest begins with, repeat. Where none
begins (a character the vocabulary lacks) one byte-fallback token is taken; if there is none either,
the pretoken keeps its canonical tokens.
"""

from __future__ import annotations

from ..core import EncodedText, Tokenizer
from .vocabulary import VocabularyIndex, resegment, spans_from_bytes


def longest_prefix(index: VocabularyIndex, data: bytes) -> list[int] | None:
    """Ids of ``data`` by greedy longest match."""
    ids: list[int] = []
    position = 0
    while position < len(data):
        found = index.tokens_at(data, position)
        if found:
            position, token = found[-1]
        else:
            token = index.fallback.get(data[position], -1)
            if token < 0:
                return None
            position += 1
        ids.append(token)
    return ids


class LongestPrefix:
    name = "longest-prefix"

    def encode_batch(self, tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
        return resegment(tokenizer, texts, longest_prefix)

    def encode_with_offsets(self, tokenizer: Tokenizer, text: str) -> EncodedText:
        return spans_from_bytes(tokenizer, text, self.encode_batch(tokenizer, [text])[0])
