"""Generation after a long prompt prefilled shorter: the prompt's own frequent pairs merged (batch BPE
over one sequence), merged rows from a transplant method, then plain greedy decoding in the base
vocabulary from the KV cache. The base prefill runs too, so the seconds saved and whether the
continuation changed are measured, not assumed."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..modeling.load import LoadedModel
from .embed import DEFAULT_METHOD, byte_lengths, check_method, input_embeddings, merged_rows, resolve_options
from .merges import Boundary, check_merge_options, merge_texts


@dataclass(frozen=True)
class DynamicGeneration:
    """Greedy continuations of ``prompt`` after a base and a merged prefill; seconds are wall time of
    the prefill forward alone (best of ``repeats``)."""

    model: str
    prompt_bytes: int
    prompt_tokens_base: int
    prompt_tokens_dynamic: int
    merges: int
    method: str
    boundary: str
    prefill_seconds_base: float
    prefill_seconds_dynamic: float
    prefill_seconds_saved: float
    text_base: str
    text: str
    same_text: bool
    new_tokens: int
    device: str
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _prefill_and_decode(loaded: LoadedModel, ids: list[int], rows: Any, *, max_new_tokens: int, repeats: int) -> tuple[float, list[int]]:
    import torch
    from transformers import DynamicCache

    model = loaded.model
    tokenizer = loaded.tokenizer
    end_ids = {tokenizer.special.eos} - {None}
    inputs = torch.tensor([ids], device=loaded.device)
    best = math.inf
    with torch.inference_mode():
        for _ in range(repeats):
            cache = DynamicCache()
            began = time.perf_counter()
            embeds = input_embeddings(model, inputs, rows)
            logits = model(inputs_embeds=embeds, past_key_values=cache, use_cache=True, logits_to_keep=1).logits[0, -1]
            if loaded.device.startswith("cuda"):
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - began)
        out: list[int] = []
        while len(out) < max_new_tokens:
            token = int(logits.argmax())
            if token in end_ids:
                break
            out.append(token)
            logits = model(input_ids=torch.tensor([[token]], device=loaded.device), past_key_values=cache, use_cache=True).logits[0, -1]
    return best, out


def generate_dynamic(
    loaded: LoadedModel,
    prompt: str,
    *,
    max_new_tokens: int = 32,
    merges: int | None = 256,
    reduction: float | None = None,
    method: str = DEFAULT_METHOD,
    options: dict[str, Any] | None = None,
    boundary: Boundary = "pretoken",
    min_count: int = 2,
    repeats: int = 2,
) -> DynamicGeneration:
    """Prefill ``prompt`` with base tokens and with its merged tokens, then decode greedily from each."""
    if max_new_tokens < 0 or repeats < 1:
        raise ValueError(f"max_new_tokens must be >= 0 and repeats >= 1, got {max_new_tokens} and {repeats}")
    check_merge_options(max_merges=merges, reduction=reduction, min_count=min_count, boundary=boundary)
    options = resolve_options(method, options)
    check_method(method, options)
    if not prompt:
        raise ValueError("the prompt is empty; give the text to continue")
    tokenizer = loaded.tokenizer
    embedding = loaded.model.get_input_embeddings().weight
    batch = merge_texts(tokenizer, [prompt], max_merges=merges, reduction=reduction, boundary=boundary, min_count=min_count,
                        base_size=embedding.shape[0])
    rows = merged_rows(embedding, batch.vocabulary, piece_bytes=byte_lengths(tokenizer, embedding.shape[0]), method=method, options=options)
    start = tokenizer.conditioning_token()
    base_ids = [start, *tokenizer.encode(prompt)]
    dynamic_ids = [start, *batch.sequences[0]]
    _prefill_and_decode(loaded, base_ids[:8], None, max_new_tokens=0, repeats=1)  # warm-up: first-call costs out of the timings
    base_seconds, base_out = _prefill_and_decode(loaded, base_ids, None, max_new_tokens=max_new_tokens, repeats=repeats)
    dynamic_seconds, dynamic_out = _prefill_and_decode(loaded, dynamic_ids, rows, max_new_tokens=max_new_tokens, repeats=repeats)
    text_base, text = tokenizer.decode(base_out), tokenizer.decode(dynamic_out)
    return DynamicGeneration(
        model=loaded.name, prompt_bytes=len(prompt.encode("utf-8")), prompt_tokens_base=len(base_ids) - 1,
        prompt_tokens_dynamic=len(dynamic_ids) - 1, merges=len(batch.vocabulary), method=method, boundary=boundary,
        prefill_seconds_base=base_seconds, prefill_seconds_dynamic=dynamic_seconds, prefill_seconds_saved=base_seconds - dynamic_seconds,
        text_base=text_base, text=text, same_text=text_base == text, new_tokens=len(dynamic_out), device=loaded.device,
        options=options,
    )
