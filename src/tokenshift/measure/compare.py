"""Two tokenizers side by side: shared vocabulary by byte string, and how each splits numbers."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..tokenizer import Tokenizer, byte_vocabulary
from .digits import digit_scheme, digit_split

EXAMPLE_NUMBERS = ("2025", "1234567", "3.14159")


@dataclass(frozen=True)
class VocabularyComparison:
    tokenizer_a: str
    tokenizer_b: str
    vocab_a: int
    vocab_b: int
    shared: int
    shared_share_a: float
    shared_share_b: float
    digits_a: str
    digits_b: str
    digit_examples: dict[str, dict[str, list[str]]]
    digits_differ: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def shared_byte_tokens(a: Tokenizer, b: Tokenizer) -> dict[bytes, tuple[int, int]]:
    """Byte strings in both vocabularies -> (id in a, id in b)."""
    vocab_a, vocab_b = byte_vocabulary(a), byte_vocabulary(b)
    return {data: (vocab_a[data], vocab_b[data]) for data in vocab_a.keys() & vocab_b.keys()}


def compare_tokenizers(a: Tokenizer, b: Tokenizer) -> VocabularyComparison:
    vocab_a, vocab_b = byte_vocabulary(a), byte_vocabulary(b)
    shared = len(vocab_a.keys() & vocab_b.keys())
    digits_a, digits_b = digit_scheme(a), digit_scheme(b)
    names = (a.name, b.name) if a.name != b.name else (f"{a.name} (a)", f"{b.name} (b)")
    examples = {n: {names[0]: digit_split(a, n), names[1]: digit_split(b, n)} for n in EXAMPLE_NUMBERS}
    return VocabularyComparison(
        tokenizer_a=names[0], tokenizer_b=names[1], vocab_a=len(vocab_a), vocab_b=len(vocab_b), shared=shared,
        shared_share_a=shared / len(vocab_a) if vocab_a else 0.0, shared_share_b=shared / len(vocab_b) if vocab_b else 0.0,
        digits_a=digits_a, digits_b=digits_b, digit_examples=examples, digits_differ=digits_a != digits_b,
    )


def changed_token_share(before: Tokenizer, after: Tokenizer, documents: list[str]) -> float:
    """The share of ``before``'s tokens on ``documents`` that ``after`` does not produce: tokens whose
    span in the text is not a token span of ``after`` (0 when the two tokenize identically)."""
    total = changed = 0
    for a, b in zip(before.backend.encode_batch(documents, add_special_tokens=False),
                    after.backend.encode_batch(documents, add_special_tokens=False)):
        spans = set(b.offsets)
        total += len(a.offsets)
        changed += sum(1 for span in a.offsets if span not in spans)
    return changed / total if total else 0.0
