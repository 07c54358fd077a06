"""Ensembles of byte-level models: their next-byte distributions mixed, whatever their tokenizers.

    P(x | b) = sum_k w_k(b) P_k(x | b)

``linear`` keeps the weights fixed; ``bayes`` updates them to each model's posterior given the bytes
read so far (w_k(b + x) proportional to w_k(b) P_k(x | b)), i.e. the mixture of whole-text
probabilities; ``switch`` is the fixed-share mixture (Herbster & Warmuth 1998): the posterior, then a
share ``SWITCH_RATE`` spread back evenly, so the weights follow whichever model is better lately. Both are proper byte-level models, so their bits per byte compare with any other.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from ..registry import Registry
from .model import ByteLevelModel, ByteScore, ByteState, read_bits


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
        return f"{self.mix}(" + " + ".join(f"{w:.2g}·{m.name}" for m, w in zip(self.models, self.weights)) + ")"

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
