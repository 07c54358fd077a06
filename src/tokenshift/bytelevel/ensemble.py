"""Ensembles of byte-level models: their next-byte distributions mixed, whatever their tokenizers.

    P(x | b) = sum_k w_k(b) P_k(x | b)

``linear`` keeps the weights fixed; ``bayes`` updates them to each model's posterior given the bytes
read so far (w_k(b + x) proportional to w_k(b) P_k(x | b)), i.e. the mixture of whole-text
probabilities; ``switch`` is the fixed-share mixture (Herbster & Warmuth 1998): the posterior, then a
share ``SWITCH_RATE`` spread back evenly, so the weights follow whichever model is better lately. Both are proper byte-level models, so their bits per byte compare with any other.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..data import TextSet
from ..registry import Registry
from .model import ByteLevelModel, ByteScore, ByteState, read_bits
from .run import ByteBpbResult, bpb_from_scores, evaluate_bytes


def _fixed(weights: np.ndarray, probs: np.ndarray) -> np.ndarray:
    return weights


def _posterior(weights: np.ndarray, probs: np.ndarray) -> np.ndarray:
    joint = weights * probs
    return joint / joint.sum()


SWITCH_RATE = 0.02  # share of weight redistributed after each byte by the ``switch`` mixture


def _fixed_share(weights: np.ndarray, probs: np.ndarray) -> np.ndarray:
    return (1.0 - SWITCH_RATE) * _posterior(weights, probs) + SWITCH_RATE / len(weights)


# How the weights change after a byte: (weights (K,), each model's probability of that byte (K,)) -> weights.
MIXES: Registry[Callable[[np.ndarray, np.ndarray], np.ndarray]] = Registry("mix", {"linear": _fixed, "bayes": _posterior, "switch": _fixed_share})


def check_mix(mix: str) -> None:
    MIXES.find(mix)


def normalise_weights(weights: Sequence[float] | None, count: int) -> np.ndarray:
    """Weights as a (count,) array summing to 1 (default: uniform)."""
    if weights is None:
        return np.full(count, 1.0 / count)
    if len(weights) != count:
        raise ValueError(f"{len(weights)} weights for {count} models; give one weight per model (e.g. --weights 0.5 0.5)")
    array = np.asarray(weights, dtype=float)
    if (array < 0).any() or array.sum() <= 0:
        raise ValueError(f"weights must be non-negative and not all zero, got {list(weights)}")
    return array / array.sum()


def mixture_name(members: Sequence[str], weights: Sequence[float], mix: str) -> str:
    """``linear(0.5·smollm2-135m + 0.5·gemma3-270m)``: the mix and each member's prior weight."""
    return f"{mix}(" + " + ".join(f"{w:.2g}·{name}" for name, w in zip(members, weights)) + ")"


class ByteEnsemble:
    """Several :class:`ByteLevelModel` as one byte-level model (same ``start``/``log_prob`` verbs)."""

    def __init__(self, models: Sequence[ByteLevelModel], *, weights: Sequence[float] | None = None, mix: str = "linear") -> None:
        if len(models) < 2:
            raise ValueError("an ensemble needs at least two models")
        check_mix(mix)
        self.models = list(models)
        self.weights = normalise_weights(weights, len(self.models))
        self.mix = mix

    @property
    def name(self) -> str:
        return mixture_name([m.name for m in self.models], self.weights, self.mix)

    def start(self, prompt: bytes = b"", *, back_off: int | None = None) -> EnsembleState:
        """All members read ``prompt``; with ``bayes`` the weights start from their posterior after it."""
        if back_off is not None:  # members back off on their own tokenizations; the weights stay at their priors
            return EnsembleState(self, [model.start(prompt, back_off=back_off) for model in self.models])
        state = EnsembleState(self, [model.start(b"") for model in self.models])
        state.feed(prompt)
        return state

    def next_byte_distribution(self, prefix: bytes) -> np.ndarray:
        """(257,) mixture probabilities of the next byte after ``prefix`` (index 256: end of text)."""
        return self.start(prefix).distribution()

    def log_prob(self, text: str | bytes, *, end: bool = False) -> ByteScore:
        """Bits of ``text`` under the mixture; ``stats`` are the first member's (see each member for its own)."""
        data = text.encode("utf-8") if isinstance(text, str) else text
        state = self.start(b"")
        byte_bits = read_bits(state, data, end=end)
        return ByteScore(bits=float(sum(byte_bits)), bytes=len(data), byte_bits=byte_bits, stats=state.members[0].stats())


class EnsembleState:
    """The members' states and the current weights."""

    def __init__(self, ensemble: ByteEnsemble, members: list[ByteState]) -> None:
        self.ensemble = ensemble
        self.members = members
        self.weights = ensemble.weights.copy()

    def distribution(self) -> np.ndarray:
        return sum(w * s.distribution() for w, s in zip(self.weights, self.members))  # type: ignore[return-value]

    def advance(self, byte: int) -> float:
        """Read ``byte``; return its natural log probability under the mixture."""
        probs = np.array([s.distribution()[byte] for s in self.members])
        prob = float(self.weights @ probs)
        for member in self.members:
            member.advance(byte)
        self.weights = MIXES[self.ensemble.mix](self.weights, probs)
        return math.log(prob)

    def feed(self, data: bytes) -> float:
        return sum(self.advance(b) for b in data)


def fit_weights(member_bits: Sequence[Sequence[float]], *, iterations: int = 500, tolerance: float = 1e-10) -> np.ndarray:
    """The fixed linear weights (K,) that minimise the mixture's bits on held-out bytes.

    ``member_bits``: (K, bytes) each model's per-byte bits on the same bytes (e.g. the concatenated
    ``ByteScore.byte_bits`` of a validation text). EM for mixture weights: the objective is convex in
    the weights, so this converges to the optimum. Fit on text the mixture is not then scored on.
    """
    probs = np.exp2(-np.asarray(member_bits, dtype=float))  # (K, bytes)
    if probs.ndim != 2 or probs.shape[1] == 0:
        raise ValueError("fit_weights needs each member's per-byte bits on the same, non-empty bytes")
    weights = np.full(len(probs), 1.0 / len(probs))
    for _ in range(iterations):
        responsibilities = weights[:, None] * probs
        responsibilities /= responsibilities.sum(0, keepdims=True)
        updated = responsibilities.mean(1)
        if np.abs(updated - weights).max() < tolerance:
            return updated
        weights = updated
    return weights


def mix_byte_bits(member_bits: Sequence[Sequence[float]], *, weights: Sequence[float] | None = None, mix: str = "linear") -> list[float]:
    """Per-byte bits of the mixture, from each member's per-byte bits on the same bytes.

    The same numbers as :meth:`ByteEnsemble.log_prob` (the mixture only needs each member's
    probability of the byte that came), without running the models again.
    """
    check_mix(mix)
    w = normalise_weights(weights, len(member_bits))
    probs = np.exp2(-np.asarray(member_bits, dtype=float))  # (K, bytes)
    out = []
    for column in probs.T:
        out.append(-math.log2(float(w @ column)))
        w = MIXES[mix](w, column)
    return out


def mix_scores(member_scores: Sequence[Sequence[ByteScore]], *, weights: Sequence[float] | None = None,
               mix: str = "linear") -> list[ByteScore]:
    """Each document's score under the mixture, from the members' scores of the same documents
    (``member_scores[k][d]``: member k on document d); no model runs again. ``stats``: the first member's."""
    mixed = []
    for doc_scores in zip(*member_scores, strict=True):
        if len({s.bytes for s in doc_scores}) != 1:
            raise ValueError("the members' scores cover different bytes; score every member on the same documents")
        bits = mix_byte_bits([s.byte_bits for s in doc_scores], weights=weights, mix=mix)
        mixed.append(ByteScore(bits=float(sum(bits)), bytes=doc_scores[0].bytes, byte_bits=bits, stats=doc_scores[0].stats))
    return mixed


FITTED = "fitted"  # the mixture key of the linear mixture whose weights ``fit_on`` chose


@dataclass(frozen=True)
class EnsembleResult:
    """One text set: each member alone and each mixture of them, byte-level bits per byte on the same bytes.

    ``mixtures``: by mix name (prior ``weights``), plus ``"fitted"`` (linear, ``fitted_weights`` chosen
    on ``fitted_on``) when the weights were fitted. A mixture's ``seconds`` are its members' scoring time.
    """

    text: str
    members: list[ByteBpbResult]
    mixtures: dict[str, ByteBpbResult]
    weights: list[float]
    fitted_weights: list[float] | None = None
    fitted_on: str | None = None

    @property
    def best_member(self) -> ByteBpbResult:
        return min(self.members, key=lambda r: r.bits_per_byte)

    def gain(self, mix: str) -> float:
        """Bits per byte of mixture ``mix`` minus the best member's (negative: the mixture is better)."""
        return self.mixtures[mix].bits_per_byte - self.best_member.bits_per_byte

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def fit_ensemble_weights(models: Sequence[ByteLevelModel], texts: TextSet, *, progress: Any = None) -> list[float]:
    """The linear weights that minimise the mixture's bits on ``texts`` (held-out text, e.g. a
    validation split): every member scores it once, then :func:`fit_weights`."""
    member_bits = [[bit for score in evaluate_bytes(model, texts, progress=progress)[1] for bit in score.byte_bits]
                   for model in models]
    return [float(w) for w in fit_weights(member_bits)]


def evaluate_ensemble(
    models: Sequence[ByteLevelModel],
    texts: TextSet | Sequence[TextSet],
    *,
    weights: Sequence[float] | None = None,
    mixes: Sequence[str] = ("linear",),
    fit_on: TextSet | None = None,
    progress: Any = None,
) -> list[EnsembleResult]:
    """Bits per byte of each member and of each mixture of them, on each text set.

    Every member scores every document once; each mix in ``mixes`` (with prior ``weights``, default
    equal) is then computed from those per-byte scores (:func:`mix_scores`), so asking for every mix
    costs no more forwards than asking for one. ``fit_on``: held-out text to fit linear weights on
    (:func:`fit_ensemble_weights`), added as the ``"fitted"`` mixture; never the text scored.
    ``progress``: as in :func:`evaluate_bytes`.
    """
    if len(models) < 2:
        raise ValueError("an ensemble needs at least two models; name two or more (e.g. smollm2-135m gemma3-270m)")
    for mix in mixes:
        check_mix(mix)
    if not mixes and fit_on is None:
        raise ValueError("nothing to mix: name at least one mix, or held-out text to fit linear weights on")
    prior = normalise_weights(weights, len(models))
    text_sets = [texts] if isinstance(texts, TextSet) else list(texts)
    if fit_on is not None and any(t.name == fit_on.name for t in text_sets):
        raise ValueError(f"fit the weights on held-out text, not on {fit_on.name}, which is also scored (e.g. a validation split)")
    fitted = fit_ensemble_weights(models, fit_on, progress=progress) if fit_on is not None else None
    names = [m.name for m in models]
    results = []
    for text_set in text_sets:
        members, member_scores = [], []
        for model in models:
            result, scores = evaluate_bytes(model, text_set, progress=progress)
            members.append(result)
            member_scores.append(scores)
        started = time.perf_counter()
        chosen = [(mix, mix, list(prior)) for mix in mixes]
        if fitted is not None:
            chosen.append((FITTED, "linear", fitted))
        mixtures = {}
        for key, mix, mix_weights in chosen:
            mixed = mix_scores(member_scores, weights=mix_weights, mix=mix)
            label = mixture_name(names, mix_weights, mix)
            mixtures[key] = bpb_from_scores(f"fitted {label}" if key == FITTED else label, text_set, mixed,
                                            sum(r.seconds for r in members) + time.perf_counter() - started)
        results.append(EnsembleResult(text=text_set.name, members=members, mixtures=mixtures, weights=[float(w) for w in prior],
                                      fitted_weights=fitted, fitted_on=fit_on.name if fit_on is not None else None))
    return results
