"""The never-worse rule: of the states a run evaluated, keep the best one that is worse than the start
on no evaluated text (lowest mean bits per byte); the start itself always qualifies.

"Worse" means more than ``tolerance`` (relative, default 0.1%) above the start: a held-out slice of
16 KB does not resolve smaller differences, and a rule that strict would throw away a phase that
gains 2% on French for a 0.01% move on English (measured: fit-head after distill-rows, wiki-fr
1.8405 -> 1.8001, wiki-en 0.76491 -> 0.76503)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..data import TextSet
    from ..modeling.load import LoadedModel

logger = logging.getLogger(__name__)


def held_out_bits(loaded: LoadedModel, eval_sets: Sequence[TextSet], *, when: str) -> dict[str, float]:
    """Bits per byte of ``loaded`` on each evaluation set; a non-finite likelihood (training diverged:
    weights went NaN or inf) counts as infinitely worse, so the guard drops that state."""
    from ..evaluate import evaluate_loaded
    from ..evaluate.scoring import NonFiniteLikelihood

    results: dict[str, float] = {}
    for texts in eval_sets:
        try:
            results[texts.name] = evaluate_loaded(loaded, texts).bits_per_byte
        except NonFiniteLikelihood:
            logger.warning("%s: the model's likelihood of %s is not finite (training diverged)", when, texts.name)
            results[texts.name] = float("inf")
    return results


@dataclass
class _Offer:
    label: str
    results: dict[str, float]
    state: Any = None


class NeverWorse:
    """``offer(label, results)`` after every evaluation of the current model; ``finish()`` restores the
    kept state (with the ``restore`` callable) and says what it kept and why. ``snapshot()`` copies
    the current trainable state; it is taken only for the start and for a new best."""

    def __init__(self, snapshot: Callable[[], Any], restore: Callable[[Any], None], *, tolerance: float = 0.001) -> None:
        self.tolerance = tolerance
        self.snapshot = snapshot
        self.restore = restore
        self.start: _Offer | None = None
        self.best: _Offer | None = None
        self.last: _Offer | None = None

    @staticmethod
    def _mean(results: dict[str, float]) -> float:
        return sum(results.values()) / max(1, len(results))

    def worse_than_start(self, results: dict[str, float]) -> list[str]:
        assert self.start is not None
        return [name for name, value in results.items() if value > self.start.results.get(name, float("inf")) * (1 + self.tolerance)]

    def offer(self, label: str, results: dict[str, float]) -> None:
        offer = _Offer(label, dict(results))
        if self.start is None:
            offer.state = self.snapshot()
            self.start = self.best = offer
        elif not self.worse_than_start(results) and self._mean(results) < self._mean(self.best.results):  # type: ignore[union-attr]
            if self.best is not self.start:
                self.best.state = None  # type: ignore[union-attr]  (free the old best's copy)
            offer.state = self.snapshot()
            self.best = offer
        self.last = offer

    def rewind(self) -> str | None:
        """Go back to the best state when the last offer is not it, so that the next phase trains from
        the best state rather than from one a phase made worse; return the label gone back to (None:
        the model already holds the best state)."""
        if self.best is None or self.last is None or self.last is self.best:
            return None
        self.restore(self.best.state)
        self.last = self.best
        return self.best.label

    def finish(self, *, keep_last: bool) -> dict[str, Any]:
        """``{"state": label, "reason": ..., "bits_per_byte": {...}}`` of the state the model now holds."""
        if self.start is None or self.last is None:
            return {"state": "last", "reason": "nothing was evaluated (no evaluation text), so the final state is kept", "bits_per_byte": {}}
        last, best = self.last, self.best
        assert best is not None
        worse = self.worse_than_start(last.results)
        detail = ", ".join(f"{n} {last.results[n]:.4f} > {self.start.results[n]:.4f}" for n in worse)
        if keep_last:
            reason = "--keep-last" + (f" (worse than the start on {detail})" if worse else "")
            return {"state": last.label, "reason": reason, "bits_per_byte": last.results}
        if best is last:
            return {"state": last.label, "reason": "the final state is the best evaluated state and worse than the start on no text",
                    "bits_per_byte": last.results}
        self.restore(best.state)
        why = f"the final state ({last.label}) is worse than the start on {detail}" if worse else \
            f"the final state ({last.label}) has a higher mean bits per byte than {best.label}"
        what = "the start (training did not help on every evaluated text)" if best is self.start else best.label
        return {"state": best.label, "reason": f"{why}; kept {what}", "bits_per_byte": best.results}
