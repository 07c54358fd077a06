"""Input embeddings for merged ids, from a registered transplant method, and the model's inputs with them.

A merged id is a composed token whose pieces are the base ids it spells, so any transplant method that
needs no donor builds its row from the base rows (``transplant/methods``). Rows are input-side only:
predictions stay in the base vocabulary, so bits per byte stay exact.

Models that scale their embeddings inside the embedding module (Gemma: ``x * sqrt(D)``) get the merged
rows scaled the same way; base ids go through the model's own embedding module, so a sequence without
merged ids gives exactly the inputs the model builds from ``input_ids``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .merges import DynamicVocabulary

if TYPE_CHECKING:
    import torch

# Chosen on wiki-fr/en:validation (smollm2-135m, leading 6,000 bytes, contexts merged within pretokens,
# min count 2: 50 merges, French contexts 12.1% shorter), change in the continuation's bits per byte:
#   subword (plain piece mean) +1.68%;  scaled x0.85 by bytes (length_power 1) +1.76% (8 KB, 64 merges: subword +2.84%);
#   x0.7 +1.74%;  x0.92 plain mean +1.64%;  hybrid +1.49%;  by bytes^2: x1 +1.17%, x0.85 +1.14%, x0.7 +1.47%;
#   by bytes^4 x0.85 +0.99%.  (English: 5 merges, 1.9% shorter, every method within +-0.5%: too few to choose by.)
# A merged token inside a word reads best as its longest piece (the stem), lightly shrunk. 16 KB of wiki-fr:validation,
# 64 merges (11.4% shorter): bytes^4 +1.27%, subword +1.73%. (On the test splits the mean is mostly ahead: see docs/benchmarks/dynamic.md.)
DEFAULT_METHOD = "scaled"
DEFAULT_OPTIONS: dict[str, Any] = {"scale": 0.85, "length_power": 4.0}


def resolve_options(method: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """``options``, or for None the chosen defaults when ``method`` is the default method (else none)."""
    if options is not None:
        return dict(options)
    return dict(DEFAULT_OPTIONS) if method == DEFAULT_METHOD else {}


def check_method(method: str, options: dict[str, Any] | None = None) -> None:
    """Fail in one line on an unknown method, a method that needs a donor model, or a bad option."""
    from ..transplant.methods import METHODS, check_options, get_method

    if get_method(method).uses_donor:
        usable = ", ".join(n for n, m in METHODS.items() if not m.uses_donor)
        raise ValueError(f"method {method!r} needs a donor model, which merged tokens do not have; choose {usable}")
    check_options(method, options or {})


def merge_plan(vocabulary: DynamicVocabulary, *, piece_bytes: list[int]) -> Any:
    """A :class:`TransplantPlan` whose composed tokens are the merged ids, their pieces the base ids they
    spell. ``piece_bytes``: byte length of every base id (at least 1)."""
    import torch

    from ..transplant.plan import TransplantPlan

    k = len(vocabulary)
    pieces = [piece for spelled in vocabulary.pieces for piece in spelled]
    offsets = [0]
    for spelled in vocabulary.pieces:
        offsets.append(offsets[-1] + len(spelled))
    empty = torch.zeros(0, dtype=torch.long)
    return TransplantPlan(
        new_size=vocabulary.base_size + k, old_size=vocabulary.base_size, assignment=["composed"] * k, copy_new=empty,
        copy_old=empty, composed=torch.arange(vocabulary.base_size, vocabulary.base_size + k), piece_ids=torch.tensor(pieces, dtype=torch.long),
        piece_offsets=torch.tensor(offsets, dtype=torch.long),
        piece_bytes=torch.tensor([max(1, piece_bytes[p]) for p in pieces], dtype=torch.float32), fallback=empty,
        superword=torch.zeros(k, dtype=torch.bool),  # merges are spelled by ids here, not bytes: every one is built as a subword
    )


def merged_rows(
    embedding: torch.Tensor,
    vocabulary: DynamicVocabulary,
    *,
    piece_bytes: list[int],
    method: str = DEFAULT_METHOD,
    options: dict[str, Any] | None = None,
) -> torch.Tensor:
    """Rows of the merged ids: embedding (V, D) base rows (unscaled weights) -> (len(vocabulary), D), in
    the embedding's dtype and device. ``options`` None: :data:`DEFAULT_OPTIONS` for the default method."""
    import torch

    from ..transplant.methods import get_method

    options = resolve_options(method, options)
    check_method(method, options)
    if not len(vocabulary):
        return embedding.new_zeros((0, embedding.shape[1]))
    plan = merge_plan(vocabulary, piece_bytes=piece_bytes).to(str(embedding.device))
    with torch.no_grad():
        rows = get_method(method).fn(embedding.detach(), plan, donor=None, **options)
    return rows.to(embedding.dtype)


def byte_lengths(tokenizer: Any, size: int) -> list[int]:
    """Byte length of every id below ``size`` (0 for ids without bytes)."""
    return [len(tokenizer.token_bytes(i) or b"") for i in range(size)]


def input_embeddings(model: Any, ids: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    """The inputs the model reads: ids (B, L), base ids below the embedding's rows, merged ids from there
    on -> (B, L, D). Base ids go through the model's embedding module (so zero merges are exact)."""
    import torch

    embed = model.get_input_embeddings()
    base = embed.weight.shape[0]
    merged = ids >= base
    inputs = embed(torch.where(merged, torch.zeros_like(ids), ids))
    if rows is not None and bool(merged.any()):
        scale = getattr(embed, "embed_scale", None)
        extra = rows[ids[merged] - base].to(inputs.dtype)
        if scale is not None:  # Gemma's scaled embedding module multiplies its rows the same way
            extra = extra * torch.as_tensor(scale).to(inputs.dtype)
        inputs[merged] = extra
    return inputs
