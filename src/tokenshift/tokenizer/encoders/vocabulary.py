"""What the merge-free encoders share: the vocabulary as byte strings, and the canonical pretokens.

An encoder that ignores the merges still has to respect everything else the tokenizer does: its
normalizer, its pre-tokenizer and its added tokens. So every encoder starts from the canonical
encoding, groups its tokens by pretoken (the backend's ``word_ids``), and re-segments each group's
bytes on its own; a group holding an added or special token is left as it is.

    text "le chat"  --canonical-->  [le][ chat]  word ids 0 1  --bytes per group-->  b"le", b" chat"
                                    each group re-segmented: b" chat" -> [ ch][at] or [ chat] ...

Segments use the *ordinary* vocabulary: every token that is neither added nor a byte-fallback token
(``<0xNN>``). A byte-fallback token is used only where no ordinary token starts (a character the
vocabulary lacks), which is where SentencePiece uses it. Two ids with the same bytes: the lower id.
Concatenated, a group's new tokens are exactly its old tokens' bytes, so the text decodes the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from ..core import EncodedText, Tokenizer

Segmenter = Callable[["VocabularyIndex", bytes], "list[int] | None"]


@dataclass(frozen=True)
class VocabularyIndex:
    """``ids``: bytes -> id of every ordinary token; ``prefixes``: every prefix of an ordinary token
    -> its id, or -1 where the prefix is no token (so a walk from a position stops at the first miss);
    ``fallback``: byte value -> id of its ``<0xNN>`` token; ``added``: ids of added tokens."""

    ids: dict[bytes, int]
    prefixes: dict[bytes, int]
    fallback: dict[int, int]
    added: frozenset[int]
    max_length: int

    def tokens_at(self, data: bytes, start: int) -> list[tuple[int, int]]:
        """(end, id) of every ordinary token that ``data[start:]`` begins with, shortest first."""
        found = []
        prefixes = self.prefixes
        end = start + 1
        limit = min(len(data), start + self.max_length)
        while end <= limit:
            token = prefixes.get(data[start:end])
            if token is None:
                break
            if token >= 0:
                found.append((end, token))
            end += 1
        return found


@lru_cache(maxsize=4)
def vocabulary_index(tokenizer: Tokenizer) -> VocabularyIndex:
    """The ordinary vocabulary of ``tokenizer`` (see the module docstring); built once per tokenizer."""
    added = frozenset(tokenizer.backend.get_added_tokens_decoder())
    ordinary = tokenizer.backend.get_vocab(with_added_tokens=False)
    ids: dict[bytes, int] = {}
    fallback: dict[int, int] = {}
    for token, idx in sorted(ordinary.items(), key=lambda item: item[1]):
        if idx in added:
            continue
        if len(token) == 6 and token.startswith("<0x") and token.endswith(">") and tokenizer.kind != "byte-level":
            fallback[int(token[3:5], 16)] = idx
            continue
        data = tokenizer.token_bytes(idx)
        if data and data not in ids:
            ids[data] = idx
    prefixes: dict[bytes, int] = {}
    for data in ids:
        for end in range(1, len(data)):
            prefixes.setdefault(data[:end], -1)
    prefixes.update(ids)
    return VocabularyIndex(ids, prefixes, fallback, added, max((len(d) for d in ids), default=1))


def pretoken_groups(tokenizer: Tokenizer, texts: list[str]) -> list[list[tuple[list[int], bool]]]:
    """Each text's canonical tokens cut into pretokens: (ids, may re-segment) per pretoken, in order."""
    index = vocabulary_index(tokenizer)
    out = []
    for encoding in tokenizer.backend.encode_batch(texts, add_special_tokens=False):
        groups: list[tuple[list[int], bool]] = []
        previous: object = object()
        for token, word in zip(encoding.ids, encoding.word_ids):
            if word is None or word != previous or not groups:
                groups.append(([token], token not in index.added))
            else:
                ids = groups[-1][0]
                ids.append(token)
                if token in index.added:
                    groups[-1] = (ids, False)
            previous = word if word is not None else object()
        out.append(groups)
    return out


def resegment(tokenizer: Tokenizer, texts: list[str], segment: Segmenter) -> list[list[int]]:
    """Ids of each text with every pretoken re-segmented by ``segment`` (index, bytes) -> ids; a
    pretoken ``segment`` cannot spell (returns None) keeps its canonical tokens."""
    index = vocabulary_index(tokenizer)
    result = []
    for groups in pretoken_groups(tokenizer, texts):
        ids: list[int] = []
        for group, free in groups:
            if not free:
                ids.extend(group)
                continue
            pieces = [tokenizer.token_bytes(i) for i in group]
            if any(p is None for p in pieces):
                ids.extend(group)
                continue
            new = segment(index, b"".join(pieces))  # type: ignore[arg-type]
            ids.extend(group if new is None else new)
        result.append(ids)
    return result


def spans_from_bytes(tokenizer: Tokenizer, text: str, ids: list[int]) -> EncodedText:
    """``ids`` with byte spans: exact where the tokens' bytes concatenate to the text's bytes (every
    encoder here, unless a normalizer rewrote the text), else cumulative token lengths (inexact)."""
    starts, ends, position = [], [], 0
    pieces = [tokenizer.token_bytes(i) or b"" for i in ids]
    for piece in pieces:
        starts.append(position)
        position += len(piece)
        ends.append(position)
    return EncodedText(ids, starts, ends, exact_offsets=b"".join(pieces) == text.encode("utf-8"))
