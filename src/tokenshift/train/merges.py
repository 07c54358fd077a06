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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tokenizers

logger = logging.getLogger(__name__)

_PLANE_15, _PLANE_16, _PLANE_SIZE = 0xF0000, 0x100000, 65534
WORDS_PER_TEXT = 4096
ENCODE_BATCH = 8192


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


def _split_at_rare_pairs(ids: Any, lengths: Any, counts: Any, renamed: str, min_frequency: int) -> list[tuple[str, int]]:
    """Cut the chunks wherever two adjacent tokens occur side by side fewer than ``min_frequency``
    times in the whole corpus, and merge identical pieces.

    This changes no learned merge: a later merge across that boundary would join tokens X...A and
    B...Y, and X,Y can be adjacent no more often than A,B are, so it could never reach
    ``min_frequency``. Long, unique phrases fall apart into short, frequent pieces, which is what
    keeps the trainer's work small.
    """
    import numpy as np

    total = len(ids)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    weight = np.repeat(counts, lengths)
    inside = np.ones(total - 1, dtype=bool)
    inside[starts[1:] - 1] = False  # the pair (last of one chunk, first of the next) is no pair
    keys = ids[:-1].astype(np.int64) * (int(ids.max()) + 1) + ids[1:]
    _, inverse = np.unique(keys[inside], return_inverse=True)
    pair_counts = np.bincount(inverse, weights=weight[:-1][inside])
    rare = np.zeros(total - 1, dtype=bool)
    rare[np.flatnonzero(inside)] = pair_counts[inverse] < min_frequency
    cuts = np.union1d(starts, np.flatnonzero(rare) + 1)
    ends = np.append(cuts[1:], total)
    long_enough = (ends - cuts) >= 2
    merged: dict[str, int] = {}
    for start, end, count in zip(cuts[long_enough].tolist(), ends[long_enough].tolist(), weight[cuts[long_enough]].tolist()):
        piece = renamed[start:end]
        merged[piece] = merged.get(piece, 0) + count
    return list(merged.items())


def continue_merges(
    base: tokenizers.Tokenizer,
    chunks: Counter[str],
    *,
    n_merges: int,
    max_token_pieces: int | None = None,
    min_frequency: int = 2,
    show_progress: bool = False,
) -> list[tuple[str, str]]:
    """Learn up to ``n_merges`` merges over ``chunks`` (text -> count) segmented by ``base``.

    ``max_token_pieces``: a new token spans at most this many base tokens. Returns the merges in the
    base vocabulary's spelling, in learning order.
    """
    import numpy as np
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    if n_merges <= 0:
        return []
    texts = [text for text in chunks]
    id_arrays: list[np.ndarray] = []
    kept: list[int] = []
    # Encodings are heavy objects (ids, offsets, strings): keep one batch alive at a time.
    for start in range(0, len(texts), ENCODE_BATCH):
        batch = base.encode_batch(texts[start : start + ENCODE_BATCH], add_special_tokens=False)
        for offset, encoding in enumerate(batch):
            if len(encoding.ids) >= 2:
                kept.append(start + offset)
                id_arrays.append(np.asarray(encoding.ids, dtype=np.int64))
    if not kept:
        return []
    lengths = np.fromiter((len(a) for a in id_arrays), dtype=np.int64, count=len(id_arrays))
    used, compact = np.unique(np.concatenate(id_arrays), return_inverse=True)
    if len(used) > 2 * _PLANE_SIZE:
        raise ValueError("more than 131,068 distinct base tokens in the chunks; train on less varied text")
    codepoints = np.where(compact < _PLANE_SIZE, _PLANE_15 + compact, _PLANE_16 + compact - _PLANE_SIZE).astype("<u4")
    renamed = codepoints.tobytes().decode("utf-32-le")
    run_counts = np.asarray([chunks[texts[index]] for index in kept], dtype=np.int64)
    words = _split_at_rare_pairs(compact, lengths, run_counts, renamed, min_frequency)
    if not words:
        return []
    spelling = {_private_char(i): base.id_to_token(int(token_id)) for i, token_id in enumerate(used)}

    def repeated() -> Iterator[str]:
        """The renamed chunks, each as often as it occurred, space-separated in texts of bounded size."""
        pending: list[str] = []
        for word, count in words:
            pending.extend([word] * count)
            if len(pending) >= WORDS_PER_TEXT:
                yield " ".join(pending)
                pending = []
        if pending:
            yield " ".join(pending)

    learner = Tokenizer(models.BPE())
    learner.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(
        # the trainer's alphabet is the set of characters the pieces hold
        vocab_size=len(set().union(*(word for word, _ in words))) + n_merges,
        min_frequency=min_frequency, max_token_length=max_token_pieces,
        show_progress=show_progress, special_tokens=[],
    )
    learner.train_from_iterator(repeated(), trainer=trainer)
    learned = _merge_pairs(json.loads(learner.to_str())["model"])
    return [("".join(spelling[c] for c in left), "".join(spelling[c] for c in right)) for left, right in learned]


def append_merges(base: tokenizers.Tokenizer, merges: list[tuple[str, str]]) -> tokenizers.Tokenizer:
    """A copy of ``base`` with ``merges`` appended: every old token keeps its id, new tokens get the
    ids after the highest existing one (added tokens included)."""
    from tokenizers import Tokenizer

    spec = json.loads(base.to_str())
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
    return Tokenizer.from_str(json.dumps(spec, ensure_ascii=False))
