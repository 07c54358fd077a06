"""Bits per byte: the tokenizer-agnostic yardstick every tokenshift claim is measured with.

bits per byte = (sum over every scored token of -log2 p(token | history)) / (UTF-8 bytes of the text),
computed at corpus level (total bits over total bytes, not a mean of per-document ratios). Documents
are scored independently, each conditioned on one leading token; windows as in :mod:`.windows`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

from ..data import TextSet, load_texts
from ..modeling.load import DType, LoadedModel, load_model
from ..tokenizer import Tokenizer
from ..tokenizer.encoders import Encoder, get_encoder
from .scoring import score_windows
from .windows import Window, document_windows

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BitsPerByte:
    """What every bits-per-byte result states: one model (or mixture) on one text set, at corpus level.
    Bits are base-2 NLL; bytes are UTF-8 bytes of the documents.

    Two kinds extend it: :class:`BpbResult` (token level: the model's tokens, window, dtype) and
    ``tokenshift.bytelevel.ByteBpbResult`` (byte level: no tokens to count, the beam's statistics
    instead). They stay two types because each one's extra fields mean nothing for the other; tables
    and comparisons that need only bits per byte take this base.
    """

    model: str
    text: str
    documents: int
    bytes: int
    bits: float
    bits_per_byte: float
    seconds: float
    bytes_per_second: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BpbResult(BitsPerByte):
    """Token-level bits per byte: :class:`BitsPerByte` plus the tokens that carried it."""

    tokenizer: str
    tokens: int
    tokens_per_byte: float
    bits_per_token: float
    context: int
    stride: int
    conditioning_token: str
    device: str
    dtype: str
    encoder: str = "canonical"
    round_trip_loss: float = 0.0  # share of the text's bytes the tokenizer does not give back (its first MB)


# Bits per byte counts every byte of the text; a tokenizer that drops or replaces bytes ([UNK], a
# normalizer) is scored on less than it claims. Past this share the number is refused; below it, said.
LOSSY_LIMIT = 0.01


# The round trip is checked on pieces of the text's first megabyte: enough to measure a share to a
# tenth of a percent, and each piece short enough that aligning a changed one costs little.
ROUND_TRIP_SAMPLE_BYTES = 1_000_000
ROUND_TRIP_PIECE_CHARS = 2_000


def _pieces(documents: list[str]) -> list[str]:
    """The leading :data:`ROUND_TRIP_SAMPLE_BYTES` of ``documents``, cut after a space near every
    :data:`ROUND_TRIP_PIECE_CHARS` characters (a piece then starts as a document does)."""
    pieces: list[str] = []
    left = ROUND_TRIP_SAMPLE_BYTES
    for document in documents:
        start = 0
        while start < len(document) and left > 0:
            end = min(len(document), start + ROUND_TRIP_PIECE_CHARS)
            if end < len(document):
                space = document.rfind(" ", start + ROUND_TRIP_PIECE_CHARS // 2, end)
                end = space + 1 if space >= 0 else end
            pieces.append(document[start:end])
            left -= len(pieces[-1].encode("utf-8"))
            start = end
        if left <= 0:
            break
    return pieces


def round_trip_loss(tokenizer: Tokenizer, documents: list[str]) -> float:
    """The share of the text's bytes the tokenizer does not give back (decode of encode, on the
    pieces :func:`_pieces` takes), 0.0 for a tokenizer that is lossless on this text."""
    import difflib

    lost = total = 0
    pieces = _pieces(documents)
    for piece, ids in zip(pieces, tokenizer.encode_batch(pieces)):
        data = piece.encode("utf-8")
        total += len(data)
        decoded = tokenizer.decode(ids).encode("utf-8")
        if decoded != data:
            kept = sum(block.size for block in difflib.SequenceMatcher(None, data, decoded, autojunk=False).get_matching_blocks())
            lost += len(data) - kept
    return lost / total if total else 0.0


def check_round_trip(tokenizer: Tokenizer, texts: TextSet) -> float:
    """:func:`round_trip_loss`, refused above :data:`LOSSY_LIMIT` (one line with the share) and warned about above 0."""
    loss = round_trip_loss(tokenizer, texts.documents)
    if loss > LOSSY_LIMIT:
        raise ValueError(f"tokenizer {tokenizer.name!r} does not give back {loss:.1%} of the bytes of {texts.name} (decode of encode: "
                         "unknown tokens or normalization); bits per byte would count bytes the model never read: use a tokenizer "
                         "that round-trips this text")
    if loss:
        logger.warning("tokenizer %r does not give back %.3f%% of the bytes of %s; bits per byte counts them anyway",
                       tokenizer.name, 100 * loss, texts.name)
    return loss


def check_context(model: Any, context: int) -> None:
    """Refuse a window longer than the model's positions (it would score past what it was trained on)."""
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions and context > positions:
        raise ValueError(f"--context {context:,} is beyond the {positions:,} positions of this model; "
                         f"pass --context {positions} or less (default: min(positions, 2048))")


def default_context(model: Any, cap: int = 2048) -> int:
    """The model's maximum positions, capped (long windows cost quadratic attention on a CPU)."""
    limit = getattr(model.config, "max_position_embeddings", None) or cap
    return int(min(limit, cap))


def text_windows(tokenizer: Tokenizer, documents: list[str], *, conditioning: int, context: int, stride: int | None,
                 encoder: Encoder | None = None) -> tuple[list[Window], int]:
    """All windows of all documents, and the number of tokens they score. ``encoder``: how text
    becomes ids (default: the tokenizer's own encoding; see :mod:`tokenshift.tokenizer.encoders`)."""
    windows: list[Window] = []
    tokens = 0
    for ids in tokenizer.encode_batch(documents) if encoder is None else encoder.encode_batch(tokenizer, documents):
        tokens += len(ids)
        windows.extend(document_windows(conditioning, ids, context=context, stride=stride))
    return windows, tokens


def evaluate_loaded(
    loaded: LoadedModel,
    texts: TextSet,
    *,
    context: int | None = None,
    stride: int | None = None,
    batch_tokens: int | None = None,
    conditioning_token: str | None = None,
    progress: Any = None,
    encoder: str | Encoder | None = None,
) -> BpbResult:
    """Bits per byte of an already-loaded model on one text set.

    ``conditioning_token``: the token each document is conditioned on (default: the tokenizer's BOS if
    it adds one, else its document separator, see :meth:`Tokenizer.conditioning_token`).
    ``batch_tokens``: padded tokens per forward (default 16384 on a GPU, 512 on a CPU, where padding costs more than batching gains).
    ``progress``: an object with ``advance(n_tokens)``, e.g. a rich progress task wrapper.
    ``encoder``: how the text becomes ids: ``canonical`` (default), ``longest-prefix``, ``least-tokens``,
    ``stochastok:P[:SEED]`` or an encoder object. Every encoder spells the same bytes, so bits per byte
    stay comparable: how much worse a model reads a non-canonical tokenization of the same text.
    """
    tokenizer = loaded.tokenizer
    if context is not None and context < 2:
        raise ValueError(f"context must be at least 2 tokens, got {context}")
    if batch_tokens is not None and batch_tokens < 1:
        raise ValueError(f"batch_tokens must be positive, got {batch_tokens}")
    if context is not None:
        check_context(loaded.model, context)
    context = default_context(loaded.model) if context is None else context
    lossy = check_round_trip(tokenizer, texts)
    conditioning = tokenizer.token_id(conditioning_token) if conditioning_token else tokenizer.conditioning_token()
    batch_tokens = batch_tokens if batch_tokens is not None else (16384 if loaded.device.startswith("cuda") else 512)
    started = time.perf_counter()
    chosen = get_encoder(encoder)
    windows, tokens = text_windows(tokenizer, texts.documents, conditioning=conditioning, context=context, stride=stride, encoder=chosen)
    if progress is not None:
        progress.start(texts.name, tokens)
    pad_id = tokenizer.special.pad if tokenizer.special.pad is not None else conditioning
    nats = score_windows(
        loaded.model, windows, device=loaded.device, pad_id=pad_id, batch_tokens=batch_tokens,
        on_batch=progress.advance if progress is not None else None,
    )
    if loaded.device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    n_bytes = texts.n_bytes
    bits = nats / math.log(2)
    return BpbResult(
        model=loaded.name, tokenizer=tokenizer.name, text=texts.name, documents=len(texts.documents), bytes=n_bytes,
        tokens=tokens, bits=bits, bits_per_byte=bits / n_bytes, tokens_per_byte=tokens / n_bytes,
        bits_per_token=bits / tokens if tokens else float("nan"), seconds=seconds, bytes_per_second=n_bytes / seconds,
        context=context, stride=stride or context, conditioning_token=tokenizer.id_to_token(conditioning) or str(conditioning),
        device=loaded.device, dtype=loaded.dtype, encoder=chosen.name, round_trip_loss=round(lossy, 6),
    )


def evaluate(
    model: str,
    texts: list[str],
    *,
    tokenizer: str | None = None,
    max_bytes: int | None = None,
    context: int | None = None,
    stride: int | None = None,
    batch_tokens: int | None = None,
    conditioning_token: str | None = None,
    dtype: DType = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
    progress: Any = None,
    encoder: str | Encoder | None = None,
) -> list[BpbResult]:
    """Load ``model`` (asset name, folder or model id) and return its bits per byte on each text spec."""
    chosen = get_encoder(encoder)  # fail on a bad encoder before loading
    text_sets = [load_texts(spec, max_bytes=max_bytes) for spec in texts]  # fail on bad text before loading
    loaded = load_model(model, tokenizer=tokenizer, dtype=dtype, device=device, trust_remote_code=trust_remote_code)
    return [
        evaluate_loaded(loaded, text_set, context=context, stride=stride, batch_tokens=batch_tokens,
                        conditioning_token=conditioning_token, progress=progress, encoder=chosen)
        for text_set in text_sets
    ]
