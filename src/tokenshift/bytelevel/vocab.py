"""The vocabulary sorted by bytes, so that the tokens sharing a byte prefix form one contiguous range.

Sorted lexicographically, the tokens whose bytes start with ``m`` are the rows ``[lo, hi)`` of
``table``; the one equal to ``m`` (if any) comes first, and within the range the byte at depth
``len(m)`` never decreases, so one ``searchsorted`` narrows the range by one byte::

    row  token   depth 0 1 2          range of prefix b" p"  = rows 2..5
     0   b" "          32 -1 -1       range of prefix b" pr" = rows 3..5 (row 3 is b" pr" itself)
     1   b" a"         32 97 -1
     2   b" p"         32 112 -1
     3   b" pr"        32 112 114
     4   b" pri"       32 112 114 ...
     5   b"a"          97 -1 -1
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..tokenizer import Tokenizer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ByteVocab:
    """Token ids sorted by their bytes.

    ``order``: (V',) token ids, sorted by bytes; ``lengths``: (V',) byte lengths; ``table``: (V', L)
    int16, the byte at each depth, -1 past the token's end (column-major, so a column slice is
    contiguous). ``end_ids``: the ids whose probability is the end of the text. ``excluded``: ids the
    model can emit that have no bytes (special tokens other than the end, unused ids, empty tokens):
    their probability is left out and the rest renormalised.
    """

    order: np.ndarray
    lengths: np.ndarray
    table: np.ndarray
    end_ids: np.ndarray
    excluded: int
    rows: int

    @classmethod
    def from_tokenizer(cls, tokenizer: Tokenizer, *, rows: int | None = None) -> ByteVocab:
        """Build from ``tokenizer``; ``rows`` is the model's logit width (default: the vocabulary size).

        The end of text is the EOS token and, for tokenizers without a BOS, the document separator
        every document is conditioned on (:meth:`Tokenizer.conditioning_token`).
        """
        rows = rows or tokenizer.vocab_size
        special = set(tokenizer.special.all_special)
        end = {tokenizer.special.eos} - {None}
        if not tokenizer.special.adds_bos:
            try:
                end.add(tokenizer.conditioning_token())
            except ValueError:
                pass
        pieces: list[tuple[bytes, int]] = []
        for idx, piece in enumerate(tokenizer.vocab_bytes()[:rows]):
            if piece and idx not in special and idx not in end:
                pieces.append((piece, idx))
        pieces.sort()
        excluded = rows - len(pieces) - len(end)
        if excluded:
            logger.info("%s: %d of %d ids have no bytes (special or unused); their probability is renormalised away",
                        tokenizer.name, excluded, rows)
        width = max(len(p) for p, _ in pieces)
        table = np.full((len(pieces), width), -1, dtype=np.int16, order="F")
        for row, (piece, _) in enumerate(pieces):
            table[row, : len(piece)] = np.frombuffer(piece, dtype=np.uint8)
        return cls(
            order=np.array([idx for _, idx in pieces], dtype=np.int64),
            lengths=np.array([len(p) for p, _ in pieces], dtype=np.int64),
            table=table,
            end_ids=np.array(sorted(end), dtype=np.int64),
            excluded=excluded,
            rows=rows,
        )

    @property
    def size(self) -> int:
        """Number of tokens with bytes (V')."""
        return len(self.order)

    def token_bytes(self, row: int) -> bytes:
        """Bytes of the token at sorted ``row``."""
        length = int(self.lengths[row])
        return bytes(self.table[row, :length].astype(np.uint8))

    def byte_masses(self, probs: np.ndarray, lo: int, hi: int, depth: int) -> np.ndarray:
        """(256,) summed ``probs`` (sorted order) of the tokens in ``[lo, hi)``, by their byte at ``depth``.

        Every token in the range must be longer than ``depth``.
        """
        column = self.table[lo:hi, depth]
        return np.bincount(column, weights=probs[lo:hi], minlength=256)

    def narrow(self, lo: int, hi: int, depth: int, byte: int) -> tuple[int, int]:
        """The sub-range of ``[lo, hi)`` whose byte at ``depth`` is ``byte``."""
        column = self.table[lo:hi, depth]
        return lo + int(np.searchsorted(column, byte, "left")), lo + int(np.searchsorted(column, byte, "right"))
