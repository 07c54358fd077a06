"""A token-level causal LM turned into a byte-level one by summing over the token sequences that cover a prefix.

Which sequences count. A token sequence ``t1..tk`` (after the conditioning token) *covers* the byte
prefix ``b`` when ``bytes(t1..t(k-1))`` is a proper prefix of ``b`` and ``bytes(t1..tk)`` starts with
``b``: ``tk`` is the token that reaches or crosses the end of ``b``. The events "the model's output
starts with t1..tk" are disjoint over covers, and together they are the event "the text starts with
b", so::

    P(b) = sum over every cover T of b of  P(T) = prod_i p(t_i | t_<i)
    P(x | b) = P(b + x) / P(b)           P(end | b) = sum over T whose bytes are exactly b of P(T) p(end | T)

This is every tokenization, canonical or not (Phan et al. 2024 keep only the ones a BPE encoder can
produce; a trained model gives the others almost no mass, so the two sums agree in practice, and
this one needs no knowledge of the pretokenizer). It is exact for any tokenizer whose tokens spell
the text's bytes unchanged (byte-level BPE with its pretokenizer, SentencePiece-style ▁ with byte
fallback); see :func:`exactness` for tokenizers that rewrite text.

How it is computed. The covers are kept as a beam of token-sequence prefixes ``T``. An item is either
*open* (``bytes(T)`` ends exactly at the current byte; the model's distribution after ``T`` is still
to be computed) or a *fan*: ``T`` plus the range of next tokens whose bytes continue the prefix so
far (a range of :class:`ByteVocab`), which stands for all those covers at once with their summed
probability. Reading one byte narrows every fan by one byte; a token that ends exactly there turns
into a new open item. Items below ``threshold`` of the step's mass are dropped, then all but the
``beam`` heaviest, and those that disagree with the heaviest item before its last ``window``
tokens, except that the heaviest open item is always kept (so at most ``beam + 1`` items,
and every byte keeps a non-zero probability); with nothing dropped the sum is exact. Every open item of a step is run in one
packed forward over a shared KV cache (:class:`PrefixForward`).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..tokenizer import Tokenizer
from .forward import PrefixForward
from .vocab import ByteVocab

if TYPE_CHECKING:
    from ..modeling.load import LoadedModel

logger = logging.getLogger(__name__)

END = 256  # index of the end of text in a next-byte distribution of 257 entries
PROBE = "Hello  world, naïve café 12345\n\tend. 北京 😀 x"


@dataclass(frozen=True)
class Exactness:
    """Whether the byte-level model is the token model's exact distribution over the text's bytes."""

    exact: bool
    note: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def exactness(tokenizer: Tokenizer) -> Exactness:
    """Check that the tokens of a probe text spell its bytes unchanged (no normaliser rewrite, no prefix space).

    Where they do not, the byte-level model is over the bytes the tokens spell, which differ from the
    input text wherever the tokenizer rewrites it; that is the approximation.
    """
    encoded = tokenizer.encode_with_offsets(PROBE)
    normalizer = (json.loads(tokenizer.backend.to_str()).get("normalizer") or {}).get("type")
    if encoded.exact_offsets:
        note = "exact up to the beam: the sum runs over every tokenization, and the tokens spell the text's bytes unchanged"
        if normalizer:
            note += f" (the {normalizer} normaliser leaves the probe text unchanged; text it rewrites is modelled as the tokens spell it)"
        return Exactness(True, note)
    return Exactness(False, f"approximate: tokenizer {tokenizer.name!r} rewrites text (normaliser {normalizer or 'none'}, "
                            "or a prefix space), so byte probabilities are of the bytes its tokens spell, not of the input text")


@dataclass(frozen=True)
class BeamStats:
    """How much of the exact sum a run kept. ``dropped_*``: share of a step's probability mass removed
    by the threshold and the beam (0 means that step was exact)."""

    beam: int
    threshold: float
    window: int
    steps: int
    forwards: int
    tokens_forwarded: int
    max_items: int
    mean_items: float
    dropped_mass_max: float
    dropped_mass_mean: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Dist:
    """The model's next-token distribution after one token sequence, in :class:`ByteVocab` order."""

    __slots__ = ("probs", "cumsum", "end")

    def __init__(self, probs: np.ndarray, end: float) -> None:
        self.probs = probs
        self.cumsum = np.concatenate([[0.0], np.cumsum(probs)])
        self.end = end


class _Item:
    """``suffix``: tokens after the shared prefix; ``weight``: P(prefix + suffix), renormalised each step.
    ``dist`` None: open. Else a fan over sorted rows ``[lo, hi)`` of which ``depth`` bytes are read."""

    __slots__ = ("suffix", "weight", "dist", "lo", "hi", "depth")

    def __init__(self, suffix: tuple[int, ...], weight: float, dist: _Dist | None = None, lo: int = 0, hi: int = 0, depth: int = 0) -> None:
        self.suffix = suffix
        self.weight = weight
        self.dist = dist
        self.lo, self.hi, self.depth = lo, hi, depth

    def mass(self) -> float:
        if self.dist is None:
            return self.weight
        return self.weight * float(self.dist.cumsum[self.hi] - self.dist.cumsum[self.lo])


# The defaults every entry point shares (library, CLI, benchmark): measured in bench/bytelevel.py, where
# beam 8 and threshold 1e-4 keep byte-level bits at or below token-level ones at ~4 tokens forwarded per byte.
BEAM = 8  # token-sequence prefixes kept per byte
THRESHOLD = 1e-4  # prefixes under this share of a byte's probability mass are dropped first
WINDOW = 4  # tokenizations may differ from the heaviest one only in its last WINDOW tokens


class ByteLevelModel:
    """A causal LM and its tokenizer as a model over bytes: :meth:`next_byte_distribution`, :meth:`log_prob`.

    ``beam``: most token-sequence prefixes kept per byte (each stands for all its one-token
    continuations, summed exactly), plus the heaviest one ending exactly at the byte. ``window``:
    tokenizations may differ from the heaviest one only in its last ``window`` tokens. ``threshold``:
    items under this share of a step's mass are dropped first. Set ``beam`` and ``window`` large and
    ``threshold`` 0 for the exact sum (cost grows with the number of tokenizations). Documents are conditioned on :meth:`Tokenizer.conditioning_token`, as in
    :func:`tokenshift.evaluate.evaluate_loaded`, so bits per byte compare with the token-level ones.
    """

    def __init__(self, loaded: LoadedModel, *, beam: int = BEAM, threshold: float = THRESHOLD, window: int = WINDOW) -> None:
        if beam < 1 or window < 1:
            raise ValueError(f"beam and window must be at least 1, got beam {beam}, window {window}")
        if not 0 <= threshold < 1:
            raise ValueError(f"threshold is a share of probability mass in [0, 1), got {threshold}")
        self.loaded = loaded
        self.beam = beam
        self.threshold = threshold
        self.window = window
        head = loaded.model.get_output_embeddings()
        rows = int(head.weight.shape[0]) if head is not None else int(loaded.model.config.vocab_size)
        self.vocab = ByteVocab.from_tokenizer(loaded.tokenizer, rows=rows)
        self.conditioning = loaded.tokenizer.conditioning_token()
        self.exactness = exactness(loaded.tokenizer)

    @property
    def name(self) -> str:
        return self.loaded.name

    def start(self, prompt: bytes = b"", *, back_off: int | None = None) -> ByteState:
        """A state after ``prompt``. ``back_off`` None: every prompt byte is read byte by byte (exact).
        ``back_off`` k: the prompt's canonical tokens except the last k are taken as given (one forward,
        the token-healing approximation) and only the bytes of the last k tokens are read byte by byte."""
        head: list[int] = []
        tail = prompt
        if back_off is not None and prompt:
            text, _ = _decodable_prefix(prompt)
            encoded = self.loaded.tokenizer.encode_with_offsets(text)
            if encoded.exact_offsets and len(encoded.ids) > back_off:
                keep = len(encoded.ids) - back_off
                head = encoded.ids[:keep]
                tail = prompt[encoded.ends[keep - 1]:]
        state = ByteState(self, head)
        state.feed(tail)
        return state

    def next_byte_distribution(self, prefix: bytes) -> np.ndarray:
        """(257,) probabilities of each next byte after ``prefix``, and of the end of text at index 256."""
        return self.start(prefix).distribution()

    def log_prob(self, text: str | bytes, *, end: bool = False) -> ByteScore:
        """Bits of ``text`` as the start of a document (``end``: as a whole document, end of text included)."""
        data = text.encode("utf-8") if isinstance(text, str) else text
        state = ByteState(self, [])
        byte_bits = read_bits(state, data, end=end)
        return ByteScore(bits=float(sum(byte_bits)), bytes=len(data), byte_bits=byte_bits, stats=state.stats())


def read_bits(state: Any, data: bytes, *, end: bool) -> list[float]:
    """Advance ``state`` (anything with ``advance(byte) -> nats`` and ``distribution()``) through ``data``;
    each byte's bits, then the end of text's if ``end``."""
    byte_bits = [-state.advance(b) / math.log(2) for b in data]
    if end:
        byte_bits.append(-math.log2(float(state.distribution()[END])))
    return byte_bits


@dataclass(frozen=True)
class ByteScore:
    """``bits``: -log2 P(text) in bits; ``byte_bits``: -log2 P(byte | bytes before), one per byte (plus the end)."""

    bits: float
    bytes: int
    byte_bits: list[float]
    stats: BeamStats

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _decodable_prefix(data: bytes) -> tuple[str, int]:
    """The longest prefix of ``data`` that is whole UTF-8 characters, decoded, and its length in bytes."""
    for cut in range(len(data), max(-1, len(data) - 4), -1):
        try:
            return data[:cut].decode("utf-8"), cut
        except UnicodeDecodeError:
            continue
    raise ValueError("prompt is not UTF-8 text; pass UTF-8 bytes or use no --back-off")


class ByteState:
    """The beam after some bytes: :meth:`distribution` of the next byte, :meth:`advance` by one byte."""

    def __init__(self, model: ByteLevelModel, head: list[int]) -> None:
        self.model = model
        self.vocab = model.vocab
        self.forward = PrefixForward(model.loaded.model, device=model.loaded.device, first_token=model.conditioning)
        self.forward.commit(head)
        self.items: list[_Item] = [_Item((), 1.0)]
        self.consumed = bytearray()
        self._dist: np.ndarray | None = None
        self._steps = 0
        self._items_total = 0
        self._items_max = 1
        self._dropped_max = 0.0
        self._dropped_total = 0.0

    def _expand(self) -> None:
        """Run the model on every open item (one packed forward) and turn each into a fan at depth 0."""
        import torch

        opens = [item for item in self.items if item.dist is None]
        if not opens:
            return
        logits = self.forward.next_logits([item.suffix for item in opens])
        probs = torch.softmax(logits.double(), dim=-1).cpu().numpy()
        for item, row in zip(opens, probs):
            item.dist = _Dist(row[self.vocab.order], float(row[self.vocab.end_ids].sum()))
            item.lo, item.hi, item.depth = 0, self.vocab.size, 0

    def distribution(self) -> np.ndarray:
        """(257,) probabilities of the next byte (index 256: end of text), normalised over the kept mass."""
        if self._dist is None:
            self._expand()
            masses = np.zeros(257)
            for item in self.items:
                assert item.dist is not None
                if item.hi > item.lo:
                    masses[:256] += item.weight * self.vocab.byte_masses(item.dist.probs, item.lo, item.hi, item.depth)
                if item.depth == 0:
                    masses[END] += item.weight * item.dist.end
            total = masses.sum()
            if total <= 0:
                raise RuntimeError(f"no hypothesis left after {len(self.consumed)} bytes; raise the beam or lower the threshold")
            self._dist = masses / total
        return self._dist

    def advance(self, byte: int) -> float:
        """Read ``byte`` (0..255); return its natural log probability given the bytes before."""
        if not 0 <= byte < 256:
            raise ValueError(f"a byte is 0..255, got {byte} (the end of text cannot be read)")
        prob = float(self.distribution()[byte])
        if prob <= 0:
            raise ValueError(f"byte {byte} at offset {len(self.consumed)} has probability 0 under the kept hypotheses; "
                             "raise the beam or lower the threshold")
        vocab = self.vocab
        grown: list[_Item] = []
        for item in self.items:
            dist = item.dist
            assert dist is not None
            lo, hi = vocab.narrow(item.lo, item.hi, item.depth, byte)
            depth = item.depth + 1
            while lo < hi and vocab.lengths[lo] == depth:  # tokens ending exactly here: new open items
                grown.append(_Item(item.suffix + (int(vocab.order[lo]),), item.weight * float(dist.probs[lo])))
                lo += 1
            if lo < hi:
                grown.append(_Item(item.suffix, item.weight, dist, lo, hi, depth))
        self._prune(grown)
        self.consumed.append(byte)
        self._dist = None
        return math.log(prob)

    def feed(self, data: bytes) -> float:
        """Read every byte of ``data``; return the summed natural log probability."""
        return sum(self.advance(b) for b in data)

    def _prune(self, grown: list[_Item]) -> None:
        masses = np.array([item.mass() for item in grown])
        total = float(masses.sum())
        order = np.argsort(-masses, kind="stable")
        keep = self._within_window(grown, order)
        keep = keep[masses[keep] >= self.model.threshold * total][: self.model.beam]
        if all(grown[i].dist is not None for i in keep):
            # Keep the heaviest item ending exactly here as well: its next token may be any single byte,
            # so no byte ever gets probability 0 (the fans kept may all disagree with the next byte).
            opens = [i for i in self._within_window(grown, order) if grown[i].dist is None] or [
                i for i in order if grown[i].dist is None]
            if opens:
                keep = np.append(keep, opens[0])
        kept = float(masses[keep].sum())
        if kept <= 0:
            raise RuntimeError(f"no hypothesis left after {len(self.consumed) + 1} bytes; raise the beam or lower the threshold")
        dropped = max(0.0, 1.0 - kept / total)
        self._steps += 1
        self._dropped_total += dropped
        self._dropped_max = max(self._dropped_max, dropped)
        self.items = [grown[i] for i in keep]
        for item in self.items:
            item.weight /= kept
        self._items_total += len(self.items)
        self._items_max = max(self._items_max, len(self.items))
        self._commit()

    def _within_window(self, grown: list[_Item], keep: np.ndarray) -> np.ndarray:
        """Keep only the items that agree with the heaviest one on all but its last ``window`` tokens.

        Tokenizations that differ further back (say ``A|c|robat`` against ``Ac|robat`` ten words ago)
        keep a steady share of the mass forever and would stop the shared prefix from growing, so
        every forward would re-run ever longer suffixes. They are dropped (and counted as dropped).
        """
        window = self.model.window
        best = grown[int(keep[0])].suffix  # ``keep`` comes heaviest first
        fixed = best[: max(0, len(best) - window)]
        if not fixed:
            return keep
        return np.array([i for i in keep if grown[i].suffix[: len(fixed)] == fixed], dtype=np.int64)

    def _commit(self) -> None:
        """Move the tokens every item shares into the KV cache prefix."""
        first = self.items[0].suffix
        common = min(len(item.suffix) for item in self.items)
        shared = 0
        while shared < common and all(item.suffix[shared] == first[shared] for item in self.items):
            shared += 1
        if shared:
            self.forward.commit(first[:shared])
            for item in self.items:
                item.suffix = item.suffix[shared:]

    def stats(self) -> BeamStats:
        return BeamStats(
            beam=self.model.beam, threshold=self.model.threshold, window=self.model.window, steps=self._steps, forwards=self.forward.forwards,
            tokens_forwarded=self.forward.tokens_forwarded, max_items=self._items_max,
            mean_items=self._items_total / self._steps if self._steps else 1.0,
            dropped_mass_max=self._dropped_max, dropped_mass_mean=self._dropped_total / self._steps if self._steps else 0.0,
        )
