"""A wall-clock budget with an injectable clock, so that tests can drive time instead of waiting for it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Clock = Callable[[], float]


@dataclass
class Deadline:
    """``seconds`` from the moment the deadline is made (None: no limit). ``clock`` returns seconds
    (default :func:`time.monotonic`)."""

    seconds: float | None
    clock: Clock = time.monotonic
    started: float = field(default=-1.0)

    def __post_init__(self) -> None:
        if self.started < 0:
            self.started = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def remaining(self) -> float:
        return float("inf") if self.seconds is None else self.seconds - self.elapsed()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def until(self, share_end: float) -> float:
        """Seconds left until ``share_end`` (a fraction of the budget) has passed; inf without a limit."""
        if self.seconds is None:
            return float("inf")
        return self.seconds * share_end - self.elapsed()


# The held-out evaluations of a phase recipe take at most this share of a --minutes budget together:
# the start, and one after each phase. A probe of PROBE_BYTES measures how fast the model reads.
EVAL_SHARE = 0.25
PROBE_BYTES = 800
WARM_UP_BYTES = 100  # read first, untimed: the one-off costs of a first evaluation are not its speed
MIN_EVAL_BYTES = 256  # per text: fewer cannot tell a better state from a worse one


def _cut(texts: Any, max_bytes: int) -> Any:
    """``texts``' leading documents up to ``max_bytes``; a first document longer than that is cut."""
    kept = texts.limit_bytes(max_bytes)
    if kept.n_bytes <= max_bytes:
        return kept
    head = kept.documents[0].encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")
    return type(texts)(texts.name, [head])


def evaluation_bytes(rate: float, total: int, texts: int, *, seconds: float, evaluations: int) -> int | None:
    """Held-out bytes per text such that ``evaluations`` evaluations at ``rate`` bytes/s take about
    :data:`EVAL_SHARE` of ``seconds``; None when all ``total`` bytes fit. A one-line ValueError when
    even :data:`MIN_EVAL_BYTES` per text would not."""
    allowed = int(rate * EVAL_SHARE * seconds / evaluations)
    if allowed >= total:
        return None
    if allowed < MIN_EVAL_BYTES * texts:
        at_least = MIN_EVAL_BYTES * texts * evaluations / rate / EVAL_SHARE / 60
        raise ValueError(f"--minutes {seconds / 60:g} leaves {EVAL_SHARE * seconds / evaluations:.0f} s for each of {evaluations} held-out "
                         f"evaluations, in which this model reads {allowed:,} bytes ({rate:,.0f} bytes/s here), too few to tell a better "
                         f"state from a worse one; ask for at least {at_least:.1f} minutes, or pass --eval-bytes 0 to train without "
                         "evaluation (and without the never-worse rule)")
    return allowed // texts


def fit_evaluation(loaded: Any, eval_sets: list[Any], *, seconds: float, evaluations: int) -> tuple[list[Any], str | None]:
    """The held-out sets cut by :func:`evaluation_bytes` at the speed a probe of :data:`PROBE_BYTES`
    measures (after an untimed one of :data:`WARM_UP_BYTES`), and a note saying so (None when nothing
    was cut)."""
    import torch

    from ..evaluate import evaluate_loaded

    total = sum(t.n_bytes for t in eval_sets)
    probe = _cut(eval_sets[0], PROBE_BYTES)
    with torch.no_grad():
        evaluate_loaded(loaded, _cut(eval_sets[0], WARM_UP_BYTES))  # one-off costs: the head check, first allocations
        began = time.perf_counter()
        evaluate_loaded(loaded, probe)
    rate = probe.n_bytes / max(1e-6, time.perf_counter() - began)
    per_text = evaluation_bytes(rate, total, len(eval_sets), seconds=seconds, evaluations=evaluations)
    if per_text is None:
        return eval_sets, None
    cut = [_cut(t, per_text) for t in eval_sets]
    note = (f"held-out evaluation cut to {sum(t.n_bytes for t in cut):,} bytes (of {total:,}) so that its {evaluations} evaluations "
            f"take about {EVAL_SHARE:.0%} of the {seconds / 60:g}-minute budget at this model's {rate:,.0f} bytes/s; a smaller slice "
            "resolves only larger changes (--eval-bytes sets it, --minutes gives it room)")
    return cut, note
