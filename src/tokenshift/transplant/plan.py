"""Which old rows each new token's embedding is built from.

Every new id gets one assignment:
- ``exact``: its byte string is an old token (Ġ / ▁ / <0xNN> spellings normalised): the row is copied,
  from the old token of the same name when there is one (else the lowest id spelling those bytes);
- ``special``: a special token, matched in this order: the token each document starts with takes the
  old tokenizer's (BOS for Gemma or Llama-3, ``<|endoftext|>`` for SmolLM2 or Qwen, see
  :meth:`Tokenizer.conditioning_token`), then a special token of the same name (chat markers,
  ``<|endoftext|>``), then one of the same role (bos, eos, pad, unk). Document start comes first
  because roles disagree between families: SmolLM2-Instruct's BOS is the chat marker
  ``<|im_start|>``, so Gemma's ``<bos>`` by role would start every document as a chat turn;
- ``composed``: built by the method from the old tokens that spell it (its "pieces");
- ``fallback``: nothing to build from (an unmatched special token, an unused id): the mean row.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..tokenizer import byte_vocabulary
from ..tokenizer import Tokenizer
from ..tokenizer.bytemap import bytes_to_byte_level

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)


@dataclass
class TransplantPlan:
    """``copy_new[i]`` takes old row ``copy_old[i]``; ``composed`` new ids are built from their pieces:
    old ids ``piece_ids[piece_offsets[j]:piece_offsets[j+1]]`` for the j-th composed token, whose piece
    byte lengths are ``piece_bytes`` (same layout); ``superword[j]`` is whether the j-th composed token
    spans more than one word (a superword: whitespace between its first and last word)."""

    new_size: int
    old_size: int
    assignment: list[str]
    copy_new: torch.Tensor
    copy_old: torch.Tensor
    composed: torch.Tensor
    piece_ids: torch.Tensor
    piece_offsets: torch.Tensor
    piece_bytes: torch.Tensor
    fallback: torch.Tensor
    superword: torch.Tensor

    def piece_positions(self) -> torch.Tensor:
        """For each entry of ``piece_ids``, its position (1, 2, ...) within its token's pieces."""
        import torch

        starts = self.piece_offsets[:-1][self.piece_segments()]
        return torch.arange(len(self.piece_ids), device=self.piece_ids.device) - starts + 1

    def counts(self) -> dict[str, int]:
        return dict(Counter(self.assignment))

    def extends_old(self) -> bool:
        """Whether the new tokenizer keeps every old row at its old id (an extension)."""
        same = {int(n) for n, o in zip(self.copy_new.tolist(), self.copy_old.tolist()) if n == o}
        return self.new_size > self.old_size and all(i in same for i in range(self.old_size))

    def copied_ranges(self) -> list[list[int]]:
        """The new ids whose rows are exact or special copies, as sorted ``[start, stop)`` runs."""
        ids = sorted(set(self.copy_new.tolist()))
        runs: list[list[int]] = []
        for i in ids:
            if runs and runs[-1][1] == i:
                runs[-1][1] = i + 1
            else:
                runs.append([i, i + 1])
        return runs

    def piece_segments(self) -> torch.Tensor:
        """For each entry of ``piece_ids``, the index (0..len(composed)-1) of the token it belongs to."""
        import torch

        lengths = self.piece_offsets[1:] - self.piece_offsets[:-1]
        return torch.repeat_interleave(torch.arange(len(lengths), device=lengths.device), lengths)

    def to(self, device: str) -> TransplantPlan:
        """The same plan with its tensors on ``device`` (where the methods then compute)."""
        import dataclasses

        import torch

        return dataclasses.replace(self, **{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)
                                            if isinstance(getattr(self, f.name), torch.Tensor)})


def spans_words(data: bytes) -> bool:
    """Whether a token's bytes hold whitespace between two non-whitespace bytes ("▁the▁file", " is a")."""
    return any(c in data.strip() for c in b" \t\n\r")


def old_pieces(old: Tokenizer, data: bytes) -> list[int]:
    """Old ids spelling ``data``: BPE of the old model on the whole byte string for byte-level
    vocabularies (so bytes that are not valid UTF-8 work too); the old encoding of the text, or its
    byte-fallback tokens, for SentencePiece-style ones."""
    if old.kind == "byte-level":
        return [token.id for token in old.backend.model.tokenize(bytes_to_byte_level(data))]
    try:
        return old.encode(data.decode("utf-8"))
    except UnicodeDecodeError:
        ids = [old.backend.token_to_id(f"<0x{byte:02X}>") for byte in data]
        return [i for i in ids if i is not None]


def _document_start(tokenizer: Tokenizer) -> int | None:
    """The token a document is conditioned on, or None if the tokenizer has none."""
    try:
        return tokenizer.conditioning_token()
    except ValueError:
        return None


def build_plan(old: Tokenizer, new: Tokenizer, *, old_rows: int) -> TransplantPlan:
    """Match every new id to old rows (see the module docstring). ``old_rows``: the old model's
    embedding rows; old ids at or beyond it are never used."""
    import torch

    old_by_bytes = {data: idx for data, idx in byte_vocabulary(old).items() if idx < old_rows}
    old_vocab = old.backend.get_vocab(with_added_tokens=True)
    old_specials = set(old.special.all_special)
    new_specials = set(new.special.all_special)
    role_of_new = {getattr(new.special, role): role for role in ("bos", "eos", "pad", "unk") if getattr(new.special, role) is not None}
    new_start = _document_start(new)
    document_start = {} if new_start is None else {new_start: _document_start(old)}
    assignment: list[str] = []
    copy_new: list[int] = []
    copy_old: list[int] = []
    composed: list[int] = []
    pieces: list[int] = []
    piece_bytes: list[int] = []
    offsets = [0]
    fallback: list[int] = []
    superword: list[bool] = []
    new_bytes = new.vocab_bytes()
    for new_id in range(new.vocab_size):
        data = new_bytes[new_id]
        name = new.id_to_token(new_id)
        if new_id in new_specials or new_id in role_of_new or new_id in document_start:
            role = role_of_new.get(new_id)
            old_id = document_start.get(new_id)
            if old_id is None and name is not None and old_vocab.get(name) in old_specials:
                old_id = old_vocab[name]
            if old_id is None and role is not None:
                old_id = getattr(old.special, role)
            if old_id is not None and old_id < old_rows:
                assignment.append("special")
                copy_new.append(new_id)
                copy_old.append(old_id)
            else:
                assignment.append("fallback")
                fallback.append(new_id)
            continue
        if data is None or not data:
            assignment.append("fallback")
            fallback.append(new_id)
            continue
        # The old token of the same name and bytes first: a SentencePiece vocabulary spells "e" both as
        # the piece e and as the byte-fallback <0x65>, and the lowest id by bytes is the rarely trained
        # byte row (Gemma-3: 110 of the most frequent characters, and "\n", took their byte rows, which
        # doubled an extension's bits per byte on English).
        old_id = old_vocab.get(name) if name is not None else None
        if old_id is None or old_id >= old_rows or old_id in old_specials or old.token_bytes(old_id) != data:
            old_id = old_by_bytes.get(data)
        if old_id is not None:
            assignment.append("exact")
            copy_new.append(new_id)
            copy_old.append(old_id)
            continue
        ids = [i for i in old_pieces(old, data) if i < old_rows]
        if not ids:
            assignment.append("fallback")
            fallback.append(new_id)
            continue
        assignment.append("composed")
        composed.append(new_id)
        superword.append(spans_words(data))
        pieces.extend(ids)
        piece_bytes.extend(max(1, len(old.token_bytes(i) or b"")) for i in ids)
        offsets.append(len(pieces))
    as_long = lambda values: torch.tensor(values, dtype=torch.long)  # noqa: E731
    return TransplantPlan(
        new_size=new.vocab_size, old_size=old_rows, assignment=assignment, copy_new=as_long(copy_new), copy_old=as_long(copy_old),
        composed=as_long(composed), piece_ids=as_long(pieces), piece_offsets=as_long(offsets),
        piece_bytes=torch.tensor(piece_bytes, dtype=torch.float32), fallback=as_long(fallback),
        superword=torch.tensor(superword, dtype=torch.bool),
    )
