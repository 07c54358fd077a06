"""SuperBPE's transition point, chosen on a slice held out from the training text.

Stage 1 is trained once to the full vocabulary ``V`` (as the SuperBPE authors do: their stage 2
inherits the first ``t`` merges of a full-size BPE). BPE merges are learned greedily, so the first
``t`` ids of that run are exactly what a run stopped at ``t`` learns (tested): every candidate
transition is a truncation, and the full run is the BPE the user would otherwise get, the
baseline every candidate is measured against and the fallback.

Candidates are tried from the latest transition to the earliest (:data:`AUTO_CANDIDATES`); an
earlier one costs subword room, so it is taken only if it saves at least :data:`MIN_GAIN` more of
the held-out tokens than the one before it, and the search stops at the first that does not. If the
kept candidate is not below the BPE on the held-out slice, the BPE is returned instead, and the
report says so.

    held-out tokens:   BPE(V)  ·  t=0.9: stage1[:0.9V] + superwords  ·  t=0.85: ...  (stop when gain < MIN_GAIN)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tokenizers

logger = logging.getLogger(__name__)

# Latest first. 0.9 is the SuperBPE authors' own choice (180k of 200k); on the wiki validation splits
# (32k and 49k, en/fr/es) and the man-page validation splits (en/fr/es/de/it), earlier transitions
# gained under a point in-domain for each 0.05 and lost more than that on the other domain.
AUTO_CANDIDATES: tuple[float, ...] = (0.9, 0.85, 0.8)
MIN_GAIN = 0.01  # of the held-out tokens, per step to an earlier transition


@dataclass(frozen=True)
class Candidate:
    """One transition tried: ``transition`` stage-1 ids, then superwords up to the vocabulary.
    ``savings``: 1 - tokens / BPE tokens on the held-out slice (positive: fewer tokens)."""

    transition: int
    share: float
    tokens: int
    savings: float
    seconds: float


@dataclass(frozen=True)
class TransitionReport:
    """How the transition was chosen, as written in ``train.json`` under ``superbpe``."""

    mode: str  # "auto" or "fixed"
    held_out_share: float
    held_out_blocks: int
    held_out_bytes: int
    bpe_tokens: int
    candidates: list[Candidate] = field(default_factory=list)
    transition: int | None = None  # the one kept; None when falling back to BPE
    savings: float = 0.0  # held-out savings of what was written, against the BPE
    fallback: bool = False
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def truncate_bpe(backend: tokenizers.Tokenizer, size: int) -> tokenizers.Tokenizer:
    """The first ``size`` ids of a trained BPE and the merges that make them, as the trainer would
    have stopped at ``size``: merges are kept in order until one makes an id >= ``size``."""
    from tokenizers import Tokenizer

    spec = json.loads(backend.to_str())
    model = spec["model"]
    vocab = {token: token_id for token, token_id in model["vocab"].items() if token_id < size}
    merges = []
    for merge in model["merges"]:
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        if left + right not in vocab:
            break
        merges.append(merge)
    model["vocab"], model["merges"] = vocab, merges
    return Tokenizer.from_str(json.dumps(spec, ensure_ascii=False))


def count_tokens(backend: tokenizers.Tokenizer, documents: list[str]) -> int:
    # encode_batch_fast skips the offsets: a third less time on a megabyte, the same ids
    return sum(len(encoding.ids) for encoding in backend.encode_batch_fast(documents, add_special_tokens=False))


def resolve(transition: float | int, vocab_size: int) -> int:
    """A transition given as a fraction of the vocabulary or as a count, as a count."""
    return int(round(transition * vocab_size)) if isinstance(transition, float) else int(transition)


def choose_transition(
    build: Callable[[int], tokenizers.Tokenizer],
    bpe: tokenizers.Tokenizer,
    held_out: list[str],
    *,
    vocab_size: int,
    transitions: list[int],
    mode: str,
    held_out_share: float,
    min_gain: float = MIN_GAIN,
    baseline: str = "BPE",
) -> tuple[tokenizers.Tokenizer, TransitionReport]:
    """Try ``transitions`` (latest first) with ``build(t)`` -> SuperBPE tokenizer and keep one, or
    ``bpe`` when none is below it on ``held_out`` (documents). Returns (tokenizer, report)."""
    import time

    held_bytes = sum(len(doc.encode("utf-8")) for doc in held_out)
    bpe_tokens = count_tokens(bpe, held_out)
    tried: list[Candidate] = []
    best: tuple[tokenizers.Tokenizer, Candidate] | None = None
    for t in transitions:
        started = time.perf_counter()
        tokenizer = build(t)
        tokens = count_tokens(tokenizer, held_out)
        candidate = Candidate(t, round(t / vocab_size, 4), tokens, round(1 - tokens / bpe_tokens, 6) if bpe_tokens else 0.0,
                              round(time.perf_counter() - started, 3))
        tried.append(candidate)
        logger.info("transition %d: %d held-out tokens (BPE %d, %+.2f%%)", t, tokens, bpe_tokens, 100 * candidate.savings)
        if best is not None and candidate.savings < best[1].savings + min_gain:
            if candidate.savings > best[1].savings:
                logger.info("transition %d saves only %.2f points more than %d; keeping %d", t,
                            100 * (candidate.savings - best[1].savings), best[1].transition, best[1].transition)
            break
        best = (tokenizer, candidate)
    assert best is not None, "at least one transition is tried"
    common = dict(mode=mode, held_out_share=held_out_share, held_out_blocks=len(held_out), held_out_bytes=held_bytes,
                  bpe_tokens=bpe_tokens, candidates=tried)
    tokenizer, kept = best
    if bpe_tokens == 0 or kept.tokens >= bpe_tokens:
        message = (f"SuperBPE is not better than {baseline} on the held-out slice ({kept.tokens:,} vs {bpe_tokens:,} tokens at "
                   f"transition {kept.transition:,}): wrote {'the BPE' if baseline == 'BPE' else baseline} instead (superwords do not pay on this text; "
                   "give more text, a larger vocabulary, or --kind bpe)")
        logger.warning(message)
        return bpe, TransitionReport(**common, transition=None, savings=0.0, fallback=True, message=message)
    message = (f"transition {kept.transition:,} ({kept.share:.0%} of the vocabulary, {mode}): {kept.savings:.2%} fewer tokens "
               f"than {baseline} on the held-out slice ({held_bytes:,} bytes)")
    return tokenizer, TransitionReport(**common, transition=kept.transition, savings=kept.savings, message=message)
