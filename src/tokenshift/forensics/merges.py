"""A tokenizer's merge history and the words its trainer would have counted.

Mixture inference reads a BPE merge list as the record of a training run: merge t joined the pair
that was most frequent after merges 1..t-1. Two things must match that run for the counts to mean
anything: the merges themselves (one per new token, in order) and the pretokens the trainer counted.

- Merge lists recovered from a ranks file or a GGUF vocabulary (Llama-3, Gemma) hold every pair that
  spells a token, several per token. The one a trainer merged is the one BPE over the earlier merges
  produces from the token's spelling (tiktoken's rule: encode the token with the lower ranks); where
  that gives no single pair, the first listed pair whose two parts already exist.
- Words are the tokenizer's own pretokens (:func:`tokenshift.train.extend.count_pretokens`): its
  pre-tokenizer for byte-level BPE (after its normalizer), SentencePiece's training rules for a ▁
  tokenizer without one. They are spelled in the vocabulary's alphabet (Ġ for a space, ▁ for
  SentencePiece), one symbol per character, which is what the merges are written in.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable

from ..tokenizer import Tokenizer
from ..tokenizer.bytemap import bytes_to_byte_level

logger = logging.getLogger(__name__)

Merge = tuple[str, str]


def _listed_merges(tokenizer: Tokenizer) -> list[Merge]:
    model = json.loads(tokenizer.backend.to_str())["model"]
    if model.get("type") != "BPE" or not model.get("merges"):
        raise ValueError(f"tokenizer {tokenizer.name!r} is a {model.get('type')} model without a merge list; mixture inference "
                         "reads the order of BPE merges, so it needs a BPE tokenizer (tokenizer.json with \"merges\")")
    pairs = []
    for merge in model["merges"]:
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        pairs.append((left, right))
    return pairs


def _bpe_pair(token: str, ranks: dict[Merge, int]) -> Merge | None:
    """BPE over ``token``'s characters with the merges in ``ranks`` (lowest rank first); the two
    pieces it ends with, or None if it ends with another number of pieces."""
    parts = list(token)
    while len(parts) > 2:
        best = min(range(len(parts) - 1), key=lambda i: ranks.get((parts[i], parts[i + 1]), 1 << 62))
        if (parts[best], parts[best + 1]) not in ranks:
            return None
        parts[best : best + 2] = [parts[best] + parts[best + 1]]
    return (parts[0], parts[1]) if len(parts) == 2 else None


def merge_history(tokenizer: Tokenizer, n_merges: int | None = None) -> list[Merge]:
    """The tokenizer's merges in training order, one per new token (see the module docstring).
    ``n_merges``: only the first ones (all when None)."""
    listed = _listed_merges(tokenizer)
    by_result: dict[str, list[Merge]] = {}
    order: list[str] = []
    for left, right in listed:
        result = left + right
        if result not in by_result:
            by_result[result] = []
            order.append(result)
        by_result[result].append((left, right))  # read to the end: a later line may spell an earlier token
    history: list[Merge] = []
    ranks: dict[Merge, int] = {}
    made: set[str] = set()
    for result in order if n_merges is None else order[:n_merges]:
        candidates = by_result[result]
        pair = candidates[0]
        if len(candidates) > 1:
            pair = _bpe_pair(result, ranks) or next(
                (c for c in candidates if all(len(p) == 1 or p in made for p in c)), candidates[0])
        ranks[pair] = len(history)
        made.add(result)
        history.append(pair)
    return history


def category_words(tokenizer: Tokenizer, documents: Iterable[str]) -> Counter[str]:
    """Distinct pretokens of ``documents`` spelled in the vocabulary's alphabet, with their counts."""
    from ..train.extend import count_pretokens

    docs: Iterable[str] = documents
    normalizer = tokenizer.backend.normalizer
    byte_level = tokenizer.kind == "byte-level"
    if byte_level and normalizer is not None:  # count_pretokens normalises only SentencePiece-style text
        docs = (normalizer.normalize_str(doc) for doc in documents)
    counts = count_pretokens(tokenizer, docs)
    if not byte_level:
        return counts
    spelled: Counter[str] = Counter()
    for chunk, n in counts.items():
        spelled[bytes_to_byte_level(chunk.encode("utf-8"))] += n
    return spelled
