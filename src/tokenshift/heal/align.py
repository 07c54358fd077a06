"""Align two tokenizations of the same text into chunks that both tokenizers spell with whole tokens.

The student (new tokenizer) and the teacher (original tokenizer) cut the same UTF-8 bytes differently.
A chunk boundary is a byte offset where *both* put a token boundary; the chunks are the spans between
consecutive common boundaries. Inside a chunk each side has one or more whole tokens, so the
probability that a model gives the chunk (given the same text before it) is the product of its
tokens' probabilities, and the two models' chunk probabilities can be compared directly (approximate
likelihood matching, Minixhofer et al. 2025).

    bytes     l  e  ␣  c  h  a  t  ␣  m  a  n  g  e
    offset   0  1  2  3  4  5  6  7  8  9  10 11 12 13
    student  |le   |␣chat         |␣mange           |     token ends {2, 7, 13}
    teacher  |l |e |␣ch     |at   |␣m   |ange       |     token ends {1, 2, 5, 7, 9, 13}
    chunks   |0    |1             |2                |     common ends {2, 7, 13}

    chunk 1, student:  log p(␣chat | le)
    chunk 1, teacher:  log p(␣ch | l e) + log p(at | l e ␣ch)

Tokens that straddle the other side's boundaries (teacher ``␣ch`` ends inside student ``_chat``)
simply fall in the same chunk. A multi-byte character split over byte-level tokens has no common
boundary inside it unless both split it at the same byte. Where offsets are not exact (a character
shared by several byte-fallback tokens), those tokens share one span and therefore one chunk.
Bytes after the last common boundary (a side was truncated) belong to no chunk: their tokens get
chunk -1 and are left out of the distillation loss.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Alignment:
    """``student_chunk[i]`` / ``teacher_chunk[j]``: the chunk index of each token, -1 if in none.
    ``boundaries``: the common byte offsets, ``0 = boundaries[0] < ... < boundaries[-1]``; chunk ``c``
    spans bytes ``[boundaries[c], boundaries[c+1])``."""

    student_chunk: list[int]
    teacher_chunk: list[int]
    boundaries: list[int]

    @property
    def n_chunks(self) -> int:
        return max(0, len(self.boundaries) - 1)


def _chunk_of(ends: Sequence[int], starts: Sequence[int], boundaries: list[int]) -> list[int]:
    """Chunk index of each token ``[start, end)``: the chunk whose span contains it, -1 if none does."""
    chunks = []
    last = boundaries[-1] if boundaries else 0
    for start, end in zip(starts, ends):
        if end > last or end <= 0:
            chunks.append(-1)
            continue
        c = bisect_left(boundaries, end) - 1  # boundaries[c] < end <= boundaries[c + 1]
        # A token reaching back before its chunk's start (only possible with inexact, shared spans)
        # cannot be attributed to one chunk.
        chunks.append(c if start >= boundaries[c] else -1)
    return chunks


def align(
    student_starts: Sequence[int],
    student_ends: Sequence[int],
    teacher_starts: Sequence[int],
    teacher_ends: Sequence[int],
) -> Alignment:
    """Chunks of two tokenizations of the same bytes (byte spans ``[start, end)`` per token, in order).

    Only bytes covered by both sides count: the common boundaries stop at the shorter coverage.
    """
    covered = min(student_ends[-1] if len(student_ends) else 0, teacher_ends[-1] if len(teacher_ends) else 0)
    common = set(student_ends) & set(teacher_ends)
    boundaries = [0, *sorted(b for b in common if 0 < b <= covered)]
    if len(boundaries) == 1:
        return Alignment([-1] * len(student_ends), [-1] * len(teacher_ends), [])
    student = _chunk_of(student_ends, student_starts, boundaries)
    teacher = _chunk_of(teacher_ends, teacher_starts, boundaries)
    # A chunk with no token on one side (possible only with inexact spans) cannot be compared; drop it.
    bad = set(range(len(boundaries) - 1)) - (set(student) & set(teacher))
    if bad:
        student = [-1 if c in bad else c for c in student]
        teacher = [-1 if c in bad else c for c in teacher]
    return Alignment(student, teacher, boundaries)
