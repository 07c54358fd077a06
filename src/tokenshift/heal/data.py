"""Training sequences: documents cut into pieces, each piece tokenized by the student (and the teacher),
batched in a fixed order that depends only on the seed, so a resumed run sees the same batches.

Every piece is scored like a document (see :mod:`tokenshift.evaluate.windows`): it is conditioned on
one leading token (``C``, the tokenizer's BOS or document separator) and each of its tokens is a
target. Student and teacher each get their own ``C``, so both predict the piece's bytes from the same
(empty) history, which is what makes their chunk likelihoods comparable.

    student row:  inputs  C  x1 x2 ... x(n-1)        targets x1 x2 ... xn      (n <= seq_len)
    teacher row:  inputs  C' y1 y2 ... y(m-1)        targets y1 y2 ... ym
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..evaluate.scoring import length_batches  # noqa: F401  (re-exported for the heal recipes)
from ..tokenizer import Tokenizer
from ..tokenizer.encoders import StochasTok
from .align import align

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

_WORDS = re.compile(r"\S+\s*|\s+")


def cut_pieces(documents: list[str], *, target_bytes: int) -> list[str]:
    """Cut documents into pieces of at most ``target_bytes`` UTF-8 bytes, after whitespace where
    possible (a word longer than that is cut between characters). Pieces never span documents."""
    if target_bytes < 4:
        raise ValueError(f"target_bytes must be at least 4, got {target_bytes}")
    pieces: list[str] = []
    for document in documents:
        current: list[str] = []
        size = 0
        for word in _WORDS.findall(document):
            width = len(word.encode("utf-8"))
            if current and size + width > target_bytes:
                pieces.append("".join(current))
                current, size = [], 0
            while width > target_bytes:  # one word longer than a piece: cut it between characters
                head, cut = [], 0
                for char in word:
                    char_width = len(char.encode("utf-8"))
                    if cut + char_width > target_bytes:
                        break
                    head.append(char)
                    cut += char_width
                pieces.append("".join(head))
                word = word[len(head):]
                width -= cut
            if word:
                current.append(word)
                size += width
        if current:
            pieces.append("".join(current))
    return [p for p in pieces if p.strip()]


def bytes_per_token(tokenizer: Tokenizer, documents: list[str], *, sample_bytes: int = 200_000) -> float:
    """UTF-8 bytes per token of ``tokenizer`` over the leading documents (about ``sample_bytes``)."""
    sample, size = [], 0
    for document in documents:
        sample.append(document)
        size += len(document.encode("utf-8"))
        if size >= sample_bytes:
            break
    tokens = sum(len(ids) for ids in tokenizer.encode_batch(sample))
    return size / max(1, tokens)


PIECE_FILL = 0.9  # pieces aim at this fraction of seq_len tokens, so few are truncated


def training_pieces(documents: list[str], tokenizer: Tokenizer, *, seq_len: int) -> list[str]:
    """The documents cut into pieces of about ``PIECE_FILL`` x ``seq_len`` tokens of ``tokenizer``."""
    per_piece = max(4, int(seq_len * bytes_per_token(tokenizer, documents) * PIECE_FILL))
    return cut_pieces(documents, target_bytes=per_piece)


def batch_indices(step: int, *, n_pieces: int, batch_size: int, rank: int, world: int, seed: int) -> list[int]:
    """Piece indices of process ``rank``'s share of global batch ``step`` (0-based). The pieces are
    shuffled once per epoch by a generator seeded with (seed, epoch); the global batch is the next
    ``batch_size * world`` pieces of that endless sequence, so it does not depend on where a run stopped."""
    import torch

    per_step = batch_size * world
    first = step * per_step + rank * batch_size
    indices = []
    permutations: dict[int, list[int]] = {}
    for position in range(first, first + batch_size):
        epoch, offset = divmod(position, n_pieces)
        if epoch not in permutations:
            generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            permutations[epoch] = torch.randperm(n_pieces, generator=generator).tolist()
        indices.append(permutations[epoch][offset])
    return indices


@dataclass
class Rows:
    """Right-padded token rows: ``input_ids``/``targets``/``scored``: (B, L); ``chunk``: (B, L) global
    chunk index of each target (-1: none), or None when not distilling."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    targets: torch.Tensor
    scored: torch.Tensor
    chunk: torch.Tensor | None

    def to(self, device: torch.device | str) -> Rows:
        return Rows(*(t.to(device) if t is not None else None for t in (self.input_ids, self.attention_mask, self.targets, self.scored, self.chunk)))


@dataclass
class Batch:
    """One batch: student rows, teacher rows (when distilling), and counts for the report."""

    student: Rows
    teacher: Rows | None
    n_chunks: int
    tokens: int
    teacher_tokens: int
    bytes: int
    truncated: int

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.student.to(device), self.teacher.to(device) if self.teacher is not None else None,
                     self.n_chunks, self.tokens, self.teacher_tokens, self.bytes, self.truncated)


def _rows(sequences: list[list[int]], chunks: list[list[int]] | None, *, conditioning: int, pad_id: int) -> Rows:
    import torch

    width = max(1, max(len(s) for s in sequences))
    shape = (len(sequences), width)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    targets = torch.zeros(shape, dtype=torch.long)
    mask = torch.zeros(shape, dtype=torch.long)
    chunk = torch.full(shape, -1, dtype=torch.long) if chunks is not None else None
    for row, ids in enumerate(sequences):
        n = len(ids)
        if n == 0:
            continue
        input_ids[row, :n] = torch.tensor([conditioning, *ids[:-1]])
        targets[row, :n] = torch.tensor(ids)
        mask[row, :n] = 1
        if chunk is not None:
            chunk[row, :n] = torch.tensor(chunks[row])  # type: ignore[index]
    return Rows(input_ids, mask, targets, mask.bool(), chunk)


def make_batch(
    pieces: list[str],
    student: Tokenizer,
    teacher: Tokenizer | None,
    *,
    seq_len: int,
    teacher_len: int | None = None,
    stochastok: StochasTok | None = None,
    stream: tuple[int, ...] = (),
) -> Batch:
    """Tokenize ``pieces`` for the student (at most ``seq_len`` tokens each; longer ones are truncated
    and counted) and, with a teacher, for the teacher too, with their aligned chunks. ``stochastok``:
    split the student's tokens (StochasTok) before truncation, piece i with the generator of
    ``(*stream, i)``; the bytes and the alignment follow the split tokens."""
    student_cond = student.conditioning_token()
    student_pad = student.padding_token()
    student_ids: list[list[int]] = []
    student_chunks: list[list[int]] = []
    teacher_ids: list[list[int]] = []
    teacher_chunks: list[list[int]] = []
    truncated = n_bytes = n_chunks = 0
    for index, piece in enumerate(pieces):
        data_len = len(piece.encode("utf-8"))
        if teacher is None:
            ids = student.encode(piece)
            if stochastok is not None:
                ids = stochastok.split(ids, stochastok.rng(*stream, index))
            student_ids.append(ids[:seq_len])
            if len(ids) > seq_len:
                truncated += len(ids) - seq_len
                data_len = sum(len(student.token_bytes(i) or b"") for i in ids[:seq_len])
            n_bytes += data_len
            continue
        s = student.encode_with_offsets(piece)
        if stochastok is not None:
            s = stochastok.split_encoded(s, stochastok.rng(*stream, index))
        t = teacher.encode_with_offsets(piece)
        keep_s = min(len(s.ids), seq_len)
        keep_t = len(t.ids) if teacher_len is None else min(len(t.ids), teacher_len)
        truncated += len(s.ids) - keep_s
        alignment = align(s.starts[:keep_s], s.ends[:keep_s], t.starts[:keep_t], t.ends[:keep_t])
        student_ids.append(s.ids[:keep_s])
        teacher_ids.append(t.ids[:keep_t])
        # Chunk ids are global over the batch: each piece's chunks follow the previous piece's.
        student_chunks.append([c + n_chunks if c >= 0 else -1 for c in alignment.student_chunk])
        teacher_chunks.append([c + n_chunks if c >= 0 else -1 for c in alignment.teacher_chunk])
        n_chunks += alignment.n_chunks
        n_bytes += s.ends[keep_s - 1] if keep_s else 0
    if teacher is None:
        return Batch(_rows(student_ids, None, conditioning=student_cond, pad_id=student_pad), None, 0,
                     sum(map(len, student_ids)), 0, n_bytes, truncated)
    teacher_cond = teacher.conditioning_token()
    teacher_pad = teacher.padding_token()
    return Batch(
        _rows(student_ids, student_chunks, conditioning=student_cond, pad_id=student_pad),
        _rows(teacher_ids, teacher_chunks, conditioning=teacher_cond, pad_id=teacher_pad),
        n_chunks, sum(map(len, student_ids)), sum(map(len, teacher_ids)), n_bytes, truncated,
    )
