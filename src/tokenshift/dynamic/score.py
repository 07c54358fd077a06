"""Bits per byte of a continuation after a merged (shorter) context.

Each document is cut at the first whitespace from its middle into a context and a continuation,
encoded separately, so the continuation's tokens are the same whatever happens to the context::

    base:     C  c1 c2 c3 c4 c5 c6 | m1 m2 m3          scored: m1 m2 m3 (bits over the continuation's bytes)
    dynamic:  C  A     c3 B     c6 | m1 m2 m3          A = c1+c2, B = c4+c5 (merged ids, composed rows)

Merges are learned over the batch of all contexts of a text set (:func:`.merges.learn_merges`).
Predictions stay in the base vocabulary, so the two bits per byte are exact and comparable; positions
follow the shortened sequence. A document longer than the context (tokens) is cut to fit first (the
same text in both runs).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from ..data import TextSet, load_texts
from ..evaluate.bpb import BpbResult
from ..modeling.load import DType, LoadedModel, load_model
from ..tokenizer import Tokenizer
from .embed import DEFAULT_METHOD, byte_lengths, check_method, input_embeddings, merged_rows, resolve_options
from .merges import Boundary, MergedBatch, check_merge_options, learn_merges, merge_units

logger = logging.getLogger(__name__)


@dataclass
class Halves:
    """Contexts and continuations of a text set's documents, as text and base ids."""

    contexts: list[str]
    continuations: list[str]
    context_ids: list[list[int]]
    continuation_ids: list[list[int]]

    @property
    def continuation_bytes(self) -> int:
        return sum(len(text.encode("utf-8")) for text in self.continuations)


@dataclass(frozen=True, kw_only=True)
class DynamicResult(BpbResult):
    """One model on one text set, its contexts merged: evaluate's :class:`BpbResult` fields describe
    the dynamic run (bits: base-2 NLL of the continuations' tokens; ``bytes``/``tokens``: the
    continuations' UTF-8 bytes and tokens, the same in both runs), plus the merges and the base run."""

    method: str
    boundary: str
    merges: int
    context_bytes: int
    context_tokens_base: int
    context_tokens_dynamic: int
    context_reduction: float
    bits_base: float
    bits_per_byte_base: float
    bits_per_byte_dynamic: float
    bits_per_byte_change: float  # relative: 0.01 is 1% more bits per byte with merges
    seconds_base: float
    seconds_dynamic: float
    options: dict[str, Any] = field(default_factory=dict)
    distil: dict[str, Any] | None = None  # the merged rows' distillation on the contexts (:mod:`.distil`), if any


def split_document(text: str) -> tuple[str, str]:
    """``text`` cut at the first whitespace at or after its middle character (the continuation starts
    with it, as a word does inside a text); at the middle if there is none after it."""
    middle = len(text) // 2
    for at in range(middle, len(text)):
        if text[at].isspace():
            return text[:at], text[at:]
    return text[:middle], text[middle:]


def prepare_halves(tokenizer: Tokenizer, documents: list[str], *, max_tokens: int) -> Halves:
    """Split and encode every document; a document whose conditioning token + tokens exceed
    ``max_tokens`` is cut (at a token boundary) to fit; documents with an empty half are dropped."""
    halves = Halves([], [], [], [])
    cut = dropped = 0
    for document in documents:
        ids = tokenizer.encode(document)
        if len(ids) + 1 > max_tokens:
            cut += 1
            keep = max_tokens - 1
            while True:
                encoded = tokenizer.encode_with_offsets(document)
                keep = max(1, min(keep, len(encoded.starts) - 1))
                document = document.encode("utf-8")[: encoded.starts[keep]].decode("utf-8", errors="ignore")
                context, continuation = split_document(document)
                c, m = tokenizer.encode(context), tokenizer.encode(continuation)
                if 1 + len(c) + len(m) <= max_tokens:
                    break
                keep -= 1 + 1 + len(c) + len(m) - max_tokens
        else:
            context, continuation = split_document(document)
            c, m = tokenizer.encode(context), tokenizer.encode(continuation)
        if not c or not m:
            dropped += 1
            continue
        halves.contexts.append(context)
        halves.continuations.append(continuation)
        halves.context_ids.append(c)
        halves.continuation_ids.append(m)
    if cut:
        logger.info("cut %d documents to the %d-token context", cut, max_tokens)
    if dropped:
        logger.warning("dropped %d documents too short to split into a context and a continuation", dropped)
    if not halves.contexts:
        raise ValueError("no document is long enough to split into a context and a continuation; give longer text")
    return halves


def merge_contexts(tokenizer: Tokenizer, halves: Halves, *, base_size: int, max_merges: int | None = None,
                   reduction: float | None = None, boundary: Boundary = "pretoken", min_count: int = 2) -> MergedBatch:
    """Batch BPE over the contexts of ``halves`` (the batch), new ids from ``base_size`` on."""
    check_merge_options(max_merges=max_merges, reduction=reduction, min_count=min_count, boundary=boundary)
    units = [merge_units(tokenizer, text, ids, boundary=boundary) for text, ids in zip(halves.contexts, halves.context_ids)]
    return learn_merges(halves.context_ids, units, base_size=base_size, max_merges=max_merges, reduction=reduction,
                        min_count=min_count)


def continuation_nats(
    loaded: LoadedModel,
    contexts: list[list[int]],
    continuations: list[list[int]],
    *,
    rows: Any = None,
    conditioning: int,
    batch_tokens: int = 2048,
) -> tuple[float, float]:
    """Summed NLL (nats) of every continuation token given the conditioning token and its context (ids
    below the embedding's rows are base ids, the rest index ``rows``), and the forward seconds: each
    document one window for evaluate's :class:`~tokenshift.evaluate.scoring.WindowScorer`."""
    from ..evaluate.scoring import NonFiniteLikelihood, WindowScorer, make_batches
    from ..evaluate.windows import Window

    model = loaded.model
    windows = []
    for context, continuation in zip(contexts, continuations):
        sequence = [conditioning, *context, *continuation]
        windows.append(Window(inputs=sequence[:-1], targets=sequence[1:], scored=len(continuation)))
    scorer = WindowScorer(model, device=loaded.device, embed=lambda ids: input_embeddings(model, ids, rows))
    pad = loaded.tokenizer.padding_token()
    total = 0.0
    seconds = 0.0
    for batch in make_batches(windows, batch_tokens=batch_tokens):
        began = time.perf_counter()
        total += scorer.nll_nats(batch, pad)
        if loaded.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
        seconds += time.perf_counter() - began
    if not math.isfinite(total):
        from ..evaluate.scoring import non_finite_reason

        raise NonFiniteLikelihood(non_finite_reason(loaded.model))
    return total, seconds


def evaluate_dynamic_loaded(
    loaded: LoadedModel,
    texts: TextSet,
    *,
    merges: int | None = None,
    reduction: float | None = None,
    method: str = DEFAULT_METHOD,
    options: dict[str, Any] | None = None,
    boundary: Boundary = "pretoken",
    min_count: int = 2,
    context: int | None = None,
    batch_tokens: int | None = None,
    conditioning_token: str | None = None,
    distil_steps: int = 0,
) -> DynamicResult:
    """Bits per byte of each document's second half after its first half, with and without the first
    halves merged (see the module docstring): up to ``merges`` merges or ``reduction`` fewer context tokens.
    ``distil_steps``: steps of token distillation of the merged rows on the contexts (:mod:`.distil`)."""
    from ..evaluate.bpb import default_context

    check_merge_options(max_merges=merges, reduction=reduction, min_count=min_count, boundary=boundary)
    options = resolve_options(method, options)
    check_method(method, options)
    tokenizer = loaded.tokenizer
    context = default_context(loaded.model) if context is None else context
    if context < 4:
        raise ValueError(f"context must be at least 4 tokens, got {context}")
    batch_tokens = batch_tokens or (16384 if loaded.device.startswith("cuda") else 2048)
    conditioning = tokenizer.token_id(conditioning_token) if conditioning_token else tokenizer.conditioning_token()
    halves = prepare_halves(tokenizer, texts.documents, max_tokens=context)
    embedding = loaded.model.get_input_embeddings().weight
    merged = merge_contexts(tokenizer, halves, base_size=embedding.shape[0], max_merges=merges, reduction=reduction,
                            boundary=boundary, min_count=min_count)
    rows = merged_rows(embedding, merged.vocabulary, piece_bytes=byte_lengths(tokenizer, embedding.shape[0]), method=method,
                       options=options)
    distil = None
    if distil_steps:
        from .distil import distil_merged_rows

        rows, report = distil_merged_rows(loaded, halves.context_ids, merged.sequences, merged.vocabulary, rows,
                                          conditioning=conditioning, steps=distil_steps)
        distil = report.to_json()
    nats_base, seconds_base = continuation_nats(loaded, halves.context_ids, halves.continuation_ids, conditioning=conditioning,
                                                batch_tokens=batch_tokens)
    nats_dynamic, seconds_dynamic = continuation_nats(loaded, merged.sequences, halves.continuation_ids, rows=rows,
                                                      conditioning=conditioning, batch_tokens=batch_tokens)
    return build_result(loaded, texts.name, halves, merged, nats_base=nats_base, nats_dynamic=nats_dynamic, seconds_base=seconds_base,
                        seconds_dynamic=seconds_dynamic, method=method, options=options, boundary=boundary, context=context,
                        conditioning=conditioning, distil=distil)


def build_result(loaded: LoadedModel, text: str, halves: Halves, merged: MergedBatch, *, nats_base: float, nats_dynamic: float,
                 seconds_base: float, seconds_dynamic: float, method: str, options: dict[str, Any], boundary: str, context: int,
                 conditioning: int, distil: dict[str, Any] | None = None) -> DynamicResult:
    """The result object from the two runs' totals."""
    n_bytes = halves.continuation_bytes
    tokens = sum(map(len, halves.continuation_ids))
    bits_base, bits = nats_base / math.log(2), nats_dynamic / math.log(2)
    tokenizer = loaded.tokenizer
    return DynamicResult(
        model=loaded.name, tokenizer=tokenizer.name, text=text, documents=len(halves.contexts), bytes=n_bytes, tokens=tokens,
        bits=bits, bits_per_byte=bits / n_bytes, tokens_per_byte=tokens / n_bytes, bits_per_token=bits / tokens,
        seconds=seconds_dynamic, bytes_per_second=n_bytes / seconds_dynamic if seconds_dynamic else math.inf,
        context=context, stride=context, conditioning_token=tokenizer.id_to_token(conditioning) or str(conditioning),
        device=loaded.device, dtype=loaded.dtype, method=method, boundary=boundary, merges=len(merged.vocabulary),
        context_bytes=sum(len(t.encode("utf-8")) for t in halves.contexts), context_tokens_base=merged.base_tokens,
        context_tokens_dynamic=merged.dynamic_tokens, context_reduction=merged.reduction, bits_base=bits_base,
        bits_per_byte_base=bits_base / n_bytes, bits_per_byte_dynamic=bits / n_bytes, bits_per_byte_change=bits / bits_base - 1,
        seconds_base=seconds_base, seconds_dynamic=seconds_dynamic, options=dict(options), distil=distil,
    )


def evaluate_dynamic(
    model: str,
    texts: list[str],
    *,
    merges: int | None = None,
    reduction: float | None = None,
    method: str = DEFAULT_METHOD,
    options: dict[str, Any] | None = None,
    boundary: Boundary = "pretoken",
    min_count: int = 2,
    tokenizer: str | None = None,
    max_bytes: int | None = None,
    context: int | None = None,
    batch_tokens: int | None = None,
    conditioning_token: str | None = None,
    dtype: DType = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
    distil_steps: int = 0,
) -> list[DynamicResult]:
    """Load ``model`` and return :func:`evaluate_dynamic_loaded` on each text spec."""
    check_merge_options(max_merges=merges, reduction=reduction, min_count=min_count, boundary=boundary)
    check_method(method, resolve_options(method, options))
    text_sets = [load_texts(spec, max_bytes=max_bytes) for spec in texts]  # fail on bad text before loading
    loaded = load_model(model, tokenizer=tokenizer, dtype=dtype, device=device, trust_remote_code=trust_remote_code)
    return [
        evaluate_dynamic_loaded(loaded, text_set, merges=merges, reduction=reduction, method=method, options=options,
                                boundary=boundary, min_count=min_count, context=context, batch_tokens=batch_tokens,
                                conditioning_token=conditioning_token, distil_steps=distil_steps)
        for text_set in text_sets
    ]
