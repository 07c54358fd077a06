"""The tokenizer's own encoding (its merges, in Rust): the reference every other encoder is compared with."""

from __future__ import annotations

from ..core import EncodedText, Tokenizer


class Canonical:
    name = "canonical"

    def encode_batch(self, tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
        return tokenizer.encode_batch(texts)

    def encode_with_offsets(self, tokenizer: Tokenizer, text: str) -> EncodedText:
        return tokenizer.encode_with_offsets(text)
