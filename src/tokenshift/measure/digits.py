"""How a tokenizer splits numbers: single digits, groups of three from the left or right, or free merges."""

from __future__ import annotations

from typing import Literal

from ..tokenizer import Tokenizer

DigitScheme = Literal["single", "group3-left", "group3-right", "free"]
PROBE_NUMBERS = ("7", "42", "305", "1234", "98765", "123456", "1234567", "20250101", "987654321", "1029384756", "55512345678", "314159265358")
CONTEXTS = ("{}", " {}", "abc {}", "x{}y")


def digit_split(tokenizer: Tokenizer, number: str, template: str = "{}") -> list[str]:
    """The pieces into which ``number`` is cut when it appears as ``template.format(number)``; a token
    that mixes digits with other characters counts as its digit part."""
    text = template.format(number)
    start = text.index(number)
    begin, end = len(text[:start].encode()), len(text[:start].encode()) + len(number)
    encoded = tokenizer.encode_with_offsets(text)
    pieces = []
    for s, e in zip(encoded.starts, encoded.ends):
        lo, hi = max(s, begin), min(e, end)
        if lo < hi:
            piece = text.encode()[lo:hi].decode("utf-8", "replace")
            if pieces and encoded.starts.count(s) > 1:
                continue
            pieces.append(piece)
    return pieces


def _group3(number: str, *, from_left: bool) -> list[str]:
    if from_left:
        return [number[i : i + 3] for i in range(0, len(number), 3)]
    head = len(number) % 3
    return ([number[:head]] if head else []) + [number[i : i + 3] for i in range(head, len(number), 3)]


def digit_scheme(tokenizer: Tokenizer) -> DigitScheme:
    """Classify by probing numbers of 1-12 digits alone and in context."""
    splits = [digit_split(tokenizer, n, template) for n in PROBE_NUMBERS for template in CONTEXTS]
    numbers = [n for n in PROBE_NUMBERS for _ in CONTEXTS]
    if all(split == list(n) for split, n in zip(splits, numbers)):
        return "single"
    if all(split == _group3(n, from_left=True) for split, n in zip(splits, numbers)):
        return "group3-left"
    if all(split == _group3(n, from_left=False) for split, n in zip(splits, numbers)):
        return "group3-right"
    return "free"
