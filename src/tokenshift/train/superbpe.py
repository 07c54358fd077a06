"""SuperBPE (Liu et al. 2025): subwords first, then superword tokens that may span single spaces.

Stage 1 trains ordinary byte-level BPE to the transition size ``t``. Stage 2 continues merging
(:mod:`.merges`) over runs of words joined by single spaces (:func:`.pretokenize.superword_pattern`),
so " of the" or " par exemple" can become one token; newlines, digit groups and punctuation runs are
never crossed. A new token spans at most ``max_words`` stage-1 tokens, and so at most ``max_words``
words (a stage-1 token never crosses a word boundary). The result is one standard tokenizer.json:
stage-1 merges, then stage-2 merges, applied over stage-2 pretokens; because every stage-2 pretoken
is a union of whole stage-1 pretokens and no stage-1 merge can join two of them, this reproduces the
training segmentation exactly.

Memory is proportional to the distinct word runs (counted in one pass), never to the corpus.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from .bpe import train_bpe
from .merges import append_merges, continue_merges
from .pretokenize import byte_level_pre_tokenizer_json, superword_pattern, word_pattern

if TYPE_CHECKING:
    import tokenizers

DEFAULT_TRANSITION = 0.8  # share of the vocabulary learned as subwords before superwords start


def count_word_runs(documents: Iterable[str], digits: str) -> tuple[Counter[str], Iterator[str]]:
    """Wrap ``documents`` so that iterating them also counts their multi-piece word runs."""
    import regex

    runs: Counter[str] = Counter()
    compiled = regex.compile(superword_pattern(digits))

    def passthrough() -> Iterator[str]:
        for doc in documents:
            runs.update(m.group("words") for m in compiled.finditer(doc) if m.group("words"))
            yield doc

    return runs, passthrough()


def train_superbpe(
    documents: Iterable[str],
    *,
    vocab_size: int,
    digits: str,
    special_tokens: list[str],
    transition: float | int = DEFAULT_TRANSITION,
    max_words: int = 4,
    min_frequency: int = 2,
    show_progress: bool = False,
    length: int | None = None,
) -> tokenizers.Tokenizer:
    """Train SuperBPE to ``vocab_size`` ids. ``transition``: stage-1 vocabulary size, as a count or a
    fraction of ``vocab_size``."""
    from tokenizers import Tokenizer

    t = int(round(transition * vocab_size)) if isinstance(transition, float) else int(transition)
    if not 256 + len(special_tokens) < t <= vocab_size:
        raise ValueError(f"transition point {t} must lie between the byte alphabet ({256 + len(special_tokens)}) and the vocabulary size ({vocab_size})")
    if max_words < 1:
        raise ValueError(f"max_words must be at least 1, got {max_words}")
    runs, counted = count_word_runs(documents, digits)
    stage1 = train_bpe(counted, vocab_size=t, pattern=word_pattern(digits), special_tokens=special_tokens,
                       min_frequency=min_frequency, show_progress=show_progress, length=length)
    merges = continue_merges(stage1, runs, n_merges=vocab_size - stage1.get_vocab_size(with_added_tokens=True),
                             max_token_pieces=max_words, min_frequency=min_frequency, show_progress=show_progress)
    spec = json.loads(append_merges(stage1, merges).to_str())
    spec["pre_tokenizer"] = byte_level_pre_tokenizer_json(superword_pattern(digits))
    return Tokenizer.from_str(json.dumps(spec, ensure_ascii=False))
