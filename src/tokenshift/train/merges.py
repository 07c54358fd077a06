"""Continue BPE from an existing segmentation with the stock Rust trainer.

SuperBPE's stage 2 and vocabulary extension both need "keep these merges, learn more on top". The
HF trainer cannot resume, so each token of the existing segmentation is renamed to one private-use
character: a chunk of text becomes a short string of such characters, the stock ``BpeTrainer``
learns merges over them (memory proportional to the distinct chunks), and each learned merge is
spelled back in the base vocabulary's byte-level strings and appended after the base merges.

    chunk " of the"  --base-->  [" of", " the"]  --rename-->  "\U000F0007\U000F0002"
    learned merge ("\U000F0007", "\U000F0002")  --spell-->  ("Ġof", "Ġthe") -> new token "ĠofĠthe"
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from itertools import chain
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tokenizers

logger = logging.getLogger(__name__)

_PLANE_15, _PLANE_16, _PLANE_SIZE = 0xF0000, 0x100000, 65534
WORDS_PER_TEXT = 4096
ENCODE_BATCH = 8192
# The first try cuts at base pairs rarer than the (FLOOR_RANK * n_merges)-th most frequent one; on
# the wiki corpora that is 1/2 to 2/3 of the last merge's count, so the try holds with room to spare.
FLOOR_RANK = 4


@dataclass(frozen=True)
class Segmentation:
    """Distinct chunks as base-token ids. ``ids``: (N,) int64, the chunks' ids end to end;
    ``lengths``: (C,) int64, tokens per chunk, each at least 2; ``counts``: (C,) int64, occurrences."""

    ids: Any
    lengths: Any
    counts: Any


def _private_char(index: int) -> str:
    if index < _PLANE_SIZE:
        return chr(_PLANE_15 + index)
    if index < 2 * _PLANE_SIZE:
        return chr(_PLANE_16 + index - _PLANE_SIZE)
    raise ValueError("more than 131,068 distinct base tokens in the chunks; train on less varied text")


def _merge_pairs(model: dict[str, Any]) -> list[tuple[str, str]]:
    pairs = []
    for merge in model["merges"]:
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        pairs.append((left, right))
    return pairs


def _pieces_between(ids: list[int], split_at: frozenset[int]) -> list[list[int]]:
    """``ids`` cut at every id in ``split_at`` (those ids dropped)."""
    pieces, current = [], []
    for token_id in ids:
        if token_id in split_at:
            pieces.append(current)
            current = []
        else:
            current.append(token_id)
    pieces.append(current)
    return pieces


def encode_chunks(base: tokenizers.Tokenizer, chunks: Counter[str], *, split_at: frozenset[int] = frozenset()) -> Segmentation:
    """Segment each distinct chunk with ``base``, one encoding per chunk; chunks of fewer than 2
    tokens are dropped (nothing to merge in them). ``split_at``: ids no merge may touch (byte-fallback
    tokens): chunks are cut there and those ids left out."""
    import numpy as np

    texts = list(chunks)
    kept: list[list[int]] = []
    counts: list[int] = []
    # Encodings are heavy objects (ids, offsets, strings): keep one batch alive at a time.
    for start in range(0, len(texts), ENCODE_BATCH):
        batch = texts[start : start + ENCODE_BATCH]
        for text, encoding in zip(batch, base.encode_batch_fast(batch, add_special_tokens=False)):
            ids = encoding.ids
            for piece in _pieces_between(ids, split_at) if split_at and not split_at.isdisjoint(ids) else [ids]:
                if len(piece) >= 2:
                    kept.append(piece)
                    counts.append(chunks[text])
    lengths = np.fromiter(map(len, kept), dtype=np.int64, count=len(kept))
    ids = np.fromiter(chain.from_iterable(kept), dtype=np.int64, count=int(lengths.sum()))
    return Segmentation(ids, lengths, np.asarray(counts, dtype=np.int64))


def _compact(ids: Any) -> tuple[Any, Any]:
    """(used, compact): the sorted distinct ids and each id's index among them, i.e.
    ``np.unique(ids, return_inverse=True)`` in linear time (ids are small non-negative ints)."""
    import numpy as np

    used = np.flatnonzero(np.bincount(ids))
    index = np.zeros(int(used[-1]) + 1, dtype=np.int64)
    index[used] = np.arange(len(used))
    return used, index[ids]


def _pair_totals(ids: Any, lengths: Any, weight: Any) -> tuple[Any, Any]:
    """(totals, distinct): ``totals`` (N-1,): how often the pair (ids[i], ids[i+1]) occurs in the whole
    corpus, -1 where i is the last token of a chunk; ``distinct``: the count of each distinct pair.
    ``weight`` (N,): the count of the chunk each token lies in."""
    import numpy as np

    ends = np.cumsum(lengths)[:-1] - 1  # last token of each chunk but the final one
    inside = np.ones(len(ids) - 1, dtype=bool)
    inside[ends] = False
    keys = ids[:-1][inside] * (int(ids.max()) + 1) + ids[1:][inside]
    _, inverse = np.unique(keys, return_inverse=True)
    distinct = np.bincount(inverse, weights=weight[:-1][inside]).astype(np.int64)
    totals = np.full(len(ids) - 1, -1, dtype=np.int64)
    totals[inside] = distinct[inverse]
    return totals, distinct


def _cut(renamed: str, totals: Any, weight: Any, floor: int) -> list[tuple[str, int]]:
    """Cut the renamed chunks between any two tokens that occur side by side fewer than ``floor``
    times in the whole corpus, and merge identical pieces: (piece, count) pairs.

    The trainer learns the same merges from the pieces as from the whole chunks as long as each merge
    it makes is seen at least ``floor`` times: a pair across a cut joins tokens X...A and B...Y, and
    X,Y can be adjacent no more often than A,B are, fewer than ``floor`` times, so it never outranks
    the pair merged instead; nor can one of its occurrences be merged, so every cut stays a token
    boundary. With ``floor = min_frequency`` this always holds. Long, unique phrases fall apart into
    short, frequent pieces, which is what keeps the trainer's work small.
    """
    import numpy as np

    cuts = np.flatnonzero(np.concatenate([[True], totals < floor]))
    ends = np.append(cuts[1:], len(renamed))
    long_enough = (ends - cuts) >= 2
    merged: dict[str, int] = {}
    for start, end, count in zip(cuts[long_enough].tolist(), ends[long_enough].tolist(), weight[cuts[long_enough]].tolist()):
        piece = renamed[start:end]
        merged[piece] = merged.get(piece, 0) + count
    return list(merged.items())


def _guess_floor(distinct: Any, n_merges: int) -> int:
    """A guess at the count of the last merge: that of the (FLOOR_RANK * n_merges)-th most frequent pair."""
    import numpy as np

    rank = len(distinct) - 1 - FLOOR_RANK * n_merges
    return int(np.partition(distinct, rank)[rank]) if rank >= 0 else 0


def _train(pieces: list[tuple[str, int]], *, n_merges: int, max_token_pieces: int | None, min_frequency: int,
           show_progress: bool) -> tuple[tokenizers.Tokenizer, list[tuple[str, str]]]:
    """Learn up to ``n_merges`` merges over the renamed ``pieces`` with the stock trainer: the learner
    and its merges, in the renamed spelling."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    def repeated() -> Iterator[str]:
        """The pieces, each as often as it occurred, space-separated in texts of bounded size."""
        pending: list[str] = []
        for piece, count in pieces:
            pending.extend([piece] * count)
            if len(pending) >= WORDS_PER_TEXT:
                yield " ".join(pending)
                pending = []
        if pending:
            yield " ".join(pending)

    learner = Tokenizer(models.BPE())
    learner.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(
        # the trainer's alphabet is the set of characters the pieces hold
        vocab_size=len(set("".join(piece for piece, _ in pieces))) + n_merges,
        min_frequency=min_frequency, max_token_length=max_token_pieces,
        show_progress=show_progress, special_tokens=[],
    )
    from ..signals import interruptible

    interruptible(lambda: learner.train_from_iterator(repeated(), trainer=trainer))
    return learner, _merge_pairs(json.loads(learner.to_str())["model"])


def _floor_held(learner: tokenizers.Tokenizer, learned: list[tuple[str, str]], pieces: list[tuple[str, int]],
                n_merges: int, floor: int) -> bool:
    """Whether every merge the trainer made over ``pieces`` was seen at least ``floor`` times, so that
    cutting at pairs rarer than ``floor`` changed nothing (see :func:`_cut`).

    When each merge makes a new token, the counts the trainer merges at never rise (a pair that a
    merge creates occurs at most as often as the merged pair, and other pairs only lose occurrences),
    so the last merge is the rarest; its count is at least the number of tokens it made, which no
    later merge consumed, so encoding the pieces counts them. The trainer must also have learned all
    ``n_merges``: had it run out of pairs, the whole chunks could hold more, seen fewer times.
    """
    tokens = [left + right for left, right in learned]
    if len(tokens) < n_merges or len(set(tokens)) < len(tokens):
        return False
    last, last_id = tokens[-1], learner.token_to_id(tokens[-1])
    holders = [(piece, count) for piece, count in pieces if last in piece]
    encodings = learner.encode_batch_fast([piece for piece, _ in holders], add_special_tokens=False)
    return sum(count * encoding.ids.count(last_id) for (_, count), encoding in zip(holders, encodings)) >= floor


def learn_merges(
    base: tokenizers.Tokenizer,
    segmentation: Segmentation,
    *,
    n_merges: int,
    max_token_pieces: int | None = None,
    min_frequency: int = 2,
    show_progress: bool = False,
) -> list[tuple[str, str]]:
    """Learn up to ``n_merges`` merges over chunks already segmented by ``base``.

    The trainer's work grows with the distinct pieces it sees, so it first sees the chunks cut at
    pairs rarer than a guessed floor (:func:`_guess_floor`), which most often is well below the last
    merge's count; if :func:`_floor_held` cannot show that this changed nothing, it learns again from
    the chunks cut only at pairs rarer than ``min_frequency``. Returns the merges in the base
    vocabulary's spelling, in learning order.
    """
    import numpy as np

    if n_merges <= 0 or not len(segmentation.lengths):
        return []
    used, compact = _compact(segmentation.ids)
    if len(used) > 2 * _PLANE_SIZE:
        raise ValueError("more than 131,068 distinct base tokens in the chunks; train on less varied text")
    codepoints = np.where(compact < _PLANE_SIZE, _PLANE_15 + compact, _PLANE_16 + compact - _PLANE_SIZE).astype("<u4")
    renamed = codepoints.tobytes().decode("utf-32-le")
    weight = np.repeat(segmentation.counts, segmentation.lengths)
    totals, distinct = _pair_totals(compact, segmentation.lengths, weight)
    train = partial(_train, n_merges=n_merges, max_token_pieces=max_token_pieces, min_frequency=min_frequency,
                    show_progress=show_progress)
    floor = _guess_floor(distinct, n_merges)
    if floor > min_frequency:
        pieces = _cut(renamed, totals, weight, floor)
        if pieces:
            learner, learned = train(pieces)
            if _floor_held(learner, learned, pieces, n_merges, floor):
                return _spell(learned, base, used)
        logger.debug("cannot show that cutting at pairs seen < %d times loses no merge; learning again", floor)
    pieces = _cut(renamed, totals, weight, min_frequency)
    if not pieces:
        return []
    return _spell(train(pieces)[1], base, used)


def _spell(learned: list[tuple[str, str]], base: tokenizers.Tokenizer, used: Any) -> list[tuple[str, str]]:
    """Merges over renamed characters, spelled in ``base``'s tokens (``used``: base id of each character)."""
    spelling = {_private_char(i): base.id_to_token(int(token_id)) for i, token_id in enumerate(used)}
    return [("".join(spelling[c] for c in left), "".join(spelling[c] for c in right)) for left, right in learned]


def continue_merges(
    base: tokenizers.Tokenizer,
    chunks: Counter[str],
    *,
    n_merges: int,
    max_token_pieces: int | None = None,
    min_frequency: int = 2,
    show_progress: bool = False,
    split_at: frozenset[int] = frozenset(),
) -> list[tuple[str, str]]:
    """Learn up to ``n_merges`` merges over ``chunks`` (text -> count) segmented by ``base``.

    ``max_token_pieces``: a new token spans at most this many base tokens; ``split_at``: base ids no
    merge may touch. Returns the merges in the base vocabulary's spelling, in learning order.
    """
    if n_merges <= 0:
        return []
    return learn_merges(base, encode_chunks(base, chunks, split_at=split_at), n_merges=n_merges,
                        max_token_pieces=max_token_pieces, min_frequency=min_frequency, show_progress=show_progress)


def append_merges(base: tokenizers.Tokenizer, merges: list[tuple[str, str]]) -> tokenizers.Tokenizer:
    """A copy of ``base`` with ``merges`` appended: every old token keeps its id, new tokens get the
    ids after the highest existing one (added tokens included)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_str(json.dumps(append_merges_to_spec(json.loads(base.to_str()), merges), ensure_ascii=False))


def append_merges_to_spec(spec: dict[str, Any], merges: list[tuple[str, str]]) -> dict[str, Any]:
    """:func:`append_merges` on a tokenizer.json dict, in place; returns ``spec``."""
    model = spec["model"]
    if model.get("type") != "BPE":
        raise ValueError(f"can only extend BPE tokenizers, not {model.get('type')}")
    vocab: dict[str, int] = model["vocab"]
    next_id = max([*vocab.values(), *(t["id"] for t in spec.get("added_tokens", []))]) + 1
    as_strings = bool(model["merges"]) and isinstance(model["merges"][0], str)
    for left, right in merges:
        token = left + right
        if token not in vocab:
            vocab[token] = next_id
            next_id += 1
        model["merges"].append(f"{left} {right}" if as_strings else [left, right])
    return spec
