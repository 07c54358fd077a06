"""What the CLI and the benchmark call: byte-level bits per byte of text sets, and generation in bytes or tokens."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..data import TextSet
from ..evaluate.bpb import BitsPerByte
from .model import END, BeamStats, ByteScore

if TYPE_CHECKING:
    from ..modeling.load import LoadedModel


class ByteSource(Protocol):
    """A :class:`ByteLevelModel` or a :class:`ByteEnsemble`."""

    @property
    def name(self) -> str: ...

    def start(self, prompt: bytes = b"", *, back_off: int | None = None) -> Any: ...

    def log_prob(self, text: str | bytes, *, end: bool = False) -> ByteScore: ...


@dataclass(frozen=True)
class ByteBpbResult(BitsPerByte):
    """Byte-level bits per byte of one model (or mixture) on one text set: :class:`BitsPerByte` plus
    each document's beam statistics.

    ``bits``: sum over documents of -log2 P(document's bytes | conditioning token) (end of text not
    scored, as in token-level :class:`BpbResult`); ``bytes``: UTF-8 bytes.
    """

    stats: list[BeamStats] = field(default_factory=list)


def bpb_from_scores(model: str, texts: TextSet, scores: list[ByteScore], seconds: float) -> ByteBpbResult:
    bits = float(sum(s.bits for s in scores))
    n_bytes = sum(s.bytes for s in scores)
    return ByteBpbResult(model=model, text=texts.name, documents=len(scores), bytes=n_bytes, bits=bits,
                         bits_per_byte=bits / n_bytes, seconds=seconds, bytes_per_second=n_bytes / seconds if seconds else math.inf,
                         stats=[s.stats for s in scores])


def evaluate_bytes(source: ByteSource, texts: TextSet, *, progress: Any = None) -> tuple[ByteBpbResult, list[ByteScore]]:
    """Byte-level bits per byte of ``source`` on every document of ``texts``, and each document's score.

    ``progress``: an object with ``start(name, total)`` and ``advance(n)``, counted in bytes.
    """
    if progress is not None:
        progress.start(texts.name, texts.n_bytes)
    started = time.perf_counter()
    scores = []
    for document in texts.documents:
        scores.append(source.log_prob(document))
        if progress is not None:
            progress.advance(scores[-1].bytes)
    return bpb_from_scores(source.name, texts, scores, time.perf_counter() - started), scores


@dataclass(frozen=True)
class Generation:
    """A continuation of ``prompt``. ``mode``: ``bytes`` (byte-level) or ``tokens`` (plain decoding of the
    prompt's canonical tokens). ``text``: the continuation's bytes decoded (invalid UTF-8 replaced).
    ``steps``: decoding steps taken (bytes or tokens)."""

    model: str
    mode: str
    prompt: str
    text: str
    bytes: int
    ended: bool
    seconds: float
    bytes_per_second: float
    greedy: bool
    steps: int
    back_off: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _pick(probs: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    if temperature <= 0:
        return int(np.argmax(probs))
    logits = np.log(np.maximum(probs, 1e-300)) / temperature
    weights = np.exp(logits - logits.max())
    return int(rng.choice(len(weights), p=weights / weights.sum()))


def _check_decoding(max_bytes: int, temperature: float) -> None:
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0 (0: greedy), got {temperature}")


def generate_bytes(
    source: ByteSource,
    prompt: str | bytes,
    *,
    max_bytes: int = 64,
    temperature: float = 0.0,
    seed: int = 0,
    back_off: int | None = None,
    stop: bytes | None = None,
) -> Generation:
    """Continue ``prompt`` byte by byte (greedy when ``temperature`` is 0), so a prompt may end mid-token.

    Stops at the end of text, after ``max_bytes`` bytes, or once the continuation ends with ``stop``.
    ``back_off``: see :meth:`ByteLevelModel.start`.
    """
    _check_decoding(max_bytes, temperature)
    data = prompt.encode("utf-8") if isinstance(prompt, str) else prompt
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    state = source.start(data, back_off=back_off)
    out = bytearray()
    ended = False
    while len(out) < max_bytes:
        byte = _pick(state.distribution(), temperature, rng)
        if byte == END:
            ended = True
            break
        out.append(byte)
        if stop and out.endswith(stop):
            break
        state.advance(byte)
    seconds = time.perf_counter() - started
    return Generation(model=source.name, mode="bytes", prompt=data.decode("utf-8", errors="replace"),
                      text=out.decode("utf-8", errors="replace"), bytes=len(out), ended=ended, seconds=seconds,
                      bytes_per_second=len(out) / seconds if seconds else math.inf, greedy=temperature <= 0,
                      steps=len(out) + ended, back_off=back_off)


def generate_tokens(
    loaded: LoadedModel,
    prompt: str,
    *,
    max_bytes: int = 64,
    temperature: float = 0.0,
    seed: int = 0,
    stop: bytes | None = None,
) -> Generation:
    """Plain token-level decoding of ``prompt``'s canonical tokens (the baseline token healing fixes),
    with a KV cache, until ``max_bytes`` bytes, the end of text, or ``stop``."""
    import torch
    from transformers import DynamicCache

    _check_decoding(max_bytes, temperature)
    tokenizer = loaded.tokenizer
    conditioning = tokenizer.conditioning_token()
    end_ids = {tokenizer.special.eos, None if tokenizer.special.adds_bos else conditioning} - {None}
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    cache = DynamicCache()
    ids = [conditioning, *tokenizer.encode(prompt)]
    out = bytearray()
    ended = False
    steps = 0
    with torch.inference_mode():
        inputs = torch.tensor([ids], device=loaded.device)
        while len(out) < max_bytes:
            logits = loaded.model(input_ids=inputs, past_key_values=cache, use_cache=True, logits_to_keep=1).logits[0, -1]
            probs = torch.softmax(logits.double(), -1).cpu().numpy()
            token = _pick(probs, temperature, rng)
            steps += 1
            if token in end_ids:
                ended = True
                break
            out.extend(tokenizer.token_bytes(token) or b"")
            if stop and stop in out:
                break
            inputs = torch.tensor([[token]], device=loaded.device)
    out = out[:max_bytes]
    seconds = time.perf_counter() - started
    return Generation(model=loaded.name, mode="tokens", prompt=prompt, text=out.decode("utf-8", errors="replace"),
                      bytes=len(out), ended=ended, seconds=seconds, bytes_per_second=len(out) / seconds if seconds else math.inf,
                      greedy=temperature <= 0, steps=steps)
