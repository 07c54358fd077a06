"""Vocabulary extension: keep every token and id of an existing tokenizer, append merges learned on new text."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from ..tokenizer import Tokenizer
from .merges import append_merges, continue_merges


def count_pretokens(tokenizer: Tokenizer, documents: Iterable[str]) -> Counter[str]:
    """Distinct pretokens of ``documents`` under the tokenizer's own pretokenizer, as raw text."""
    pre = tokenizer.backend.pre_tokenizer
    counts: Counter[str] = Counter()
    for doc in documents:
        if pre is None:
            counts[doc] += 1
        else:
            counts.update(doc[start:end] for _, (start, end) in pre.pre_tokenize_str(doc))
    return counts


def extend_tokenizer(
    base: Tokenizer,
    documents: Iterable[str],
    *,
    vocab_size: int,
    min_frequency: int = 2,
    show_progress: bool = False,
) -> Tokenizer:
    """Append merges to ``base`` until it has ``vocab_size`` ids (fewer if the text runs out of pairs
    seen ``min_frequency`` times). Old ids, merges and special tokens are untouched."""
    if base.kind != "byte-level":
        raise ValueError(
            f"--extend needs a byte-level BPE tokenizer (GPT-2/Llama-3/Qwen style); {base.name!r} is {base.kind} "
            "(SentencePiece-style) and is not supported yet"
        )
    if vocab_size <= base.vocab_size:
        raise ValueError(f"--vocab-size {vocab_size} must exceed the extended tokenizer's {base.vocab_size} ids")
    counts = count_pretokens(base, documents)
    merges = continue_merges(base.backend, counts, n_merges=vocab_size - base.vocab_size, min_frequency=min_frequency,
                             show_progress=show_progress)
    return Tokenizer(append_merges(base.backend, merges), name=f"{base.name}+{len(merges)}", special=base.special,
                     source=base.source, chat_template=base.chat_template)
