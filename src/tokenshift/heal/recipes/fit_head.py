"""The new output rows, fitted on cached final hidden states.

One no-grad forward pass over training text stores the final (normed) hidden state and the target of
every position. The rows the transplant copied stay fixed, so their part of each softmax
(``logsumexp`` over the fixed rows, and the target's logit when the target is an old token) is
computed once; after that a step over a batch of positions costs one (positions x new rows x width)
product, hundreds of times cheaper than a model step, and the phase can make many passes.

A tied model is untied first (HF folders have no partly tied head): the old output rows stay equal
to the input rows, the new output rows are free to differ from the new input rows. The size cost,
one more vocabulary x width matrix, is reported (``added_parameters``); the never-worse rule in
``heal()`` goes back to the tied state when the fit does not pay. Early stopping on a tenth of the
cached pieces guards against fitting the head to the training text.
"""

from __future__ import annotations

import logging
import math
import random
import time
from typing import TYPE_CHECKING, Any

from ...modeling.logprobs import logit_softcap
from ..data import cut_pieces, length_batches, make_batch
from . import PhaseContext, PhaseResult, Recipe, register_phase, register_recipe

if TYPE_CHECKING:  # torch is imported where the phase runs: listing the recipes (the CLI's --help) stays light
    import torch

logger = logging.getLogger(__name__)

CACHE_SHARE = 0.3  # of the phase's time spent on the forward pass that fills the cache (as much again goes to the fixed rows' softmax part)
LOGIT_ROWS = 2048  # positions per block when computing the fixed rows' part of the softmax
BATCH = 1024  # positions per step (256 overshot on wiki-fr validation: Adam normalises the noise of rare rows)
WARMUP = 50  # steps of linear warm-up: Adam's first steps move every new row by ~lr per coordinate at once
# Adam's epsilon, far above the default 1e-8: a rare row's gradient is mostly the softmax pushing it
# down by a tiny amount, which Adam would otherwise normalise into a full-size step. Chosen on wiki
# fr+en validation (3.9856 -> 3.8305 nats after 4 epochs; 3.8835 with 1e-8, 3.8626 with 1e-6).
ADAM_EPS = 1e-5
VALIDATION_EVERY = 10  # one document in this many gives fit-head's validation positions
CACHE_POOL = 256  # pieces tokenized and sorted by length together in the cache pass
CACHE_BATCH_TOKENS = 2048  # padded tokens per forward pass of the cache (1024 and 4096 were no faster)


def is_tied(model: Any) -> bool:
    head = model.get_output_embeddings()
    return head is not None and head.weight is model.get_input_embeddings().weight


def _set_tied_flag(model: Any, tied: bool) -> None:
    for config in (model.config, getattr(model.config, "text_config", None)):
        if config is not None and hasattr(config, "tie_word_embeddings"):
            config.tie_word_embeddings = tied


def untie_head(model: Any) -> int:
    """Give the output head its own copy of the embedding matrix; returns the parameters added."""
    import torch

    if not is_tied(model):
        return 0
    head = model.get_output_embeddings()
    head.weight = torch.nn.Parameter(model.get_input_embeddings().weight.detach().clone(), requires_grad=False)
    _set_tied_flag(model, False)
    return int(head.weight.numel())


def tie_head(model: Any) -> None:
    """Share the input embedding as the output head again (undoes :func:`untie_head`)."""
    model.get_output_embeddings().weight = model.get_input_embeddings().weight
    _set_tied_flag(model, True)


def _logits(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, softcap: float | None) -> torch.Tensor:
    import torch

    logits = hidden @ weight.T
    if bias is not None:
        logits = logits + bias
    if softcap:
        logits = softcap * torch.tanh(logits / softcap)
    return logits


def cache_hidden_states(ctx: PhaseContext, pieces: list[str], *, seconds: float, tokens: int | None
                        ) -> tuple[list[torch.Tensor], list[torch.Tensor], int, list[int]]:
    """(hidden states (n, D) bf16 per piece, targets (n,) per piece, tokens, the index in ``pieces`` of
    each) until time or tokens run out; pieces with no scored position are left out. Pieces are read
    in pools of ``CACHE_POOL``, each pool batched by length."""
    import torch

    with torch.no_grad():
        return _cache_hidden_states(ctx, pieces, seconds=seconds, tokens=tokens)


def _cache_hidden_states(ctx: PhaseContext, pieces: list[str], *, seconds: float, tokens: int | None
                         ) -> tuple[list[torch.Tensor], list[torch.Tensor], int, list[int]]:
    import torch

    from ..rows import autocast

    model, tokenizer, device = ctx.model, ctx.tokenizer, ctx.device
    started = ctx.deadline.elapsed()
    hidden_out: list[torch.Tensor] = []
    target_out: list[torch.Tensor] = []
    index_out: list[int] = []
    seen = 0

    def out_of_budget() -> bool:
        return ctx.deadline.elapsed() - started > seconds or (tokens is not None and seen >= tokens) or ctx.deadline.expired()

    for pool_start in range(0, len(pieces), CACHE_POOL):
        pool = list(range(pool_start, min(len(pieces), pool_start + CACHE_POOL)))
        lengths = [min(len(tokenizer.encode(pieces[i])), ctx.config.seq_len) for i in pool]
        for batch in length_batches(lengths, token_budget=CACHE_BATCH_TOKENS):
            if out_of_budget():
                return hidden_out, target_out, seen, index_out
            chosen = [pool[i] for i in batch]
            rows = make_batch([pieces[i] for i in chosen], tokenizer, None, seq_len=ctx.config.seq_len).student
            with autocast(device, ctx.mixed):
                hidden = model.get_decoder()(input_ids=rows.input_ids.to(device), attention_mask=rows.attention_mask.to(device),
                                             use_cache=False).last_hidden_state
            for r, index in enumerate(chosen):
                scored = rows.scored[r]
                if scored.any():
                    hidden_out.append(hidden[r][scored.to(hidden.device)].to(torch.bfloat16).cpu())
                    target_out.append(rows.targets[r][scored])
                    index_out.append(index)
                    seen += int(scored.sum())
    return hidden_out, target_out, seen, index_out


def fixed_parts(hidden: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor, fixed: torch.Tensor, bias: torch.Tensor | None,
                softcap: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per position: logsumexp of the fixed rows' logits, and the target's logit (meaningful where the
    target is a fixed row)."""
    import torch

    lse, target_logit = [], []
    with torch.no_grad():
        for first in range(0, len(hidden), LOGIT_ROWS):
            h = hidden[first: first + LOGIT_ROWS].float()
            logits = _logits(h, weight.float(), bias.float() if bias is not None else None, softcap)
            target_logit.append(logits.gather(1, targets[first: first + LOGIT_ROWS, None]).squeeze(1))
            lse.append(logits.masked_fill(~fixed, float("-inf")).logsumexp(1))
    return torch.cat(lse), torch.cat(target_logit)


def head_loss(rows: torch.Tensor, hidden: torch.Tensor, slot: torch.Tensor, lse_fixed: torch.Tensor, target_fixed: torch.Tensor,
              bias: torch.Tensor | None, softcap: float | None) -> torch.Tensor:
    """Mean next-token loss (nats) of positions whose softmax is (fixed rows) + ``rows``; ``slot``: the
    target's index in ``rows``, -1 where the target is a fixed row."""
    import torch

    logits = _logits(hidden.float(), rows, bias, softcap)
    lse = torch.logaddexp(lse_fixed, logits.logsumexp(1))
    target = torch.where(slot >= 0, logits.gather(1, slot.clamp(min=0)[:, None]).squeeze(1), target_fixed)
    return (lse - target).mean()


@register_phase("fit-head")
def fit_head(ctx: PhaseContext, *, seconds: float, tokens: int | None) -> PhaseResult:
    import torch

    config = ctx.config
    wall = time.perf_counter()
    started = ctx.deadline.elapsed()  # the phase's own time runs on the deadline's clock (injectable)
    seconds = min(seconds, ctx.deadline.remaining())

    def spent() -> float:
        return ctx.deadline.elapsed() - started

    model = ctx.model
    model.requires_grad_(False)
    cut = [(number, piece) for number, document in enumerate(ctx.documents)
           for piece in cut_pieces([document], target_bytes=config.head_piece_bytes)]
    random.Random(config.seed + 1).shuffle(cut)
    pieces = [piece for _, piece in cut]
    hidden_list, target_list, seen, cached = cache_hidden_states(ctx, pieces, seconds=seconds * CACHE_SHARE, tokens=tokens)
    if len(hidden_list) < 2:
        if len(pieces) < 2:
            raise ValueError("fit-head: too little training text to cache two pieces; give more text")
        # The budget ran out before two pieces were cached (a short --minutes on a slow or busy machine):
        # the phase does nothing rather than stopping the run, and what the earlier phases did is kept.
        logger.warning("fit-head: no time left to cache two pieces of text; the head is left as it was")
        return PhaseResult("fit-head", round(time.perf_counter() - wall, 3), seen, "next-token loss on cached positions (nats)",
                           math.nan, math.nan, details={"skipped": "no time left to cache two pieces of text"})
    cache_seconds = spent()
    # Validation positions come from documents no training position comes from (every VALIDATION_EVERY-th
    # document), so early stopping sees what fitting one article's names does to another article; with
    # too few documents for that, the last tenth of the cached pieces.
    held = [cut[i][0] % VALIDATION_EVERY == VALIDATION_EVERY - 1 for i in cached]
    if not any(held) or all(held):
        held = [i < max(1, len(cached) // 10) for i in range(len(cached))]
    val_pieces = [i for i, h in enumerate(held) if h]
    train_pieces = [i for i, h in enumerate(held) if not h]
    added = untie_head(model)
    head = model.get_output_embeddings()
    weight = head.weight
    new_ids = ctx.new_ids.to(weight.device)
    fixed = torch.ones(weight.shape[0], dtype=torch.bool, device=weight.device)
    fixed[new_ids] = False
    slot_of = torch.full((weight.shape[0],), -1, dtype=torch.long)
    slot_of[new_ids.cpu()] = torch.arange(len(new_ids))
    bias = head.bias
    softcap = logit_softcap(model)
    new_bias = bias.detach()[new_ids].float() if bias is not None else None

    def prepare(hs: list[torch.Tensor], ts: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        hidden = torch.cat(hs).to(weight.device)
        targets = torch.cat(ts).to(weight.device)
        lse, target_logit = fixed_parts(hidden, targets, weight, fixed, bias, softcap)
        return hidden, slot_of.to(weight.device)[targets], lse, target_logit

    train = prepare([hidden_list[i] for i in train_pieces], [target_list[i] for i in train_pieces])
    val = prepare([hidden_list[i] for i in val_pieces], [target_list[i] for i in val_pieces])
    rows = torch.nn.Parameter(weight.detach()[new_ids].clone().float())
    optimizer = torch.optim.Adam([rows], lr=config.head_lr, eps=ADAM_EPS)

    def val_loss() -> float:
        with torch.no_grad():
            return sum(head_loss(rows, *(t[i: i + 4096] for t in val), new_bias, softcap).item() * len(val[0][i: i + 4096])
                       for i in range(0, len(val[0]), 4096)) / len(val[0])

    start_loss = best_loss = val_loss()
    best = rows.detach().clone()
    generator = torch.Generator().manual_seed(config.seed)
    n = len(train[0])
    batch = BATCH
    epochs = bad = steps = 0
    while spent() < seconds and epochs < 50:
        order = torch.randperm(n, generator=generator).to(weight.device)
        for first in range(0, n, batch):
            index = order[first: first + batch]
            loss = head_loss(rows, *(t[index] for t in train), new_bias, softcap)
            steps += 1
            for group in optimizer.param_groups:
                group["lr"] = config.head_lr * min(1.0, steps / WARMUP)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if spent() >= seconds:
                break
        epochs += 1
        current = val_loss()
        ctx.log(f"fit-head epoch {epochs}: validation loss {current:.4f} (start {start_loss:.4f})")
        if current < best_loss:
            best_loss, best, bad = current, rows.detach().clone(), 0
        else:
            bad += 1
            if bad >= 2:
                break
    with torch.no_grad():
        weight[new_ids] = best.to(weight.dtype)
    return PhaseResult("fit-head", round(time.perf_counter() - wall, 3), seen, "next-token loss on cached positions (nats)",
                       start_loss, best_loss,
                       {"cached_positions": int(n + len(val[0])), "validation_positions": int(len(val[0])), "cache_seconds": round(cache_seconds, 3),
                        "epochs": epochs, "steps": steps, "lr": config.head_lr, "untied": bool(added), "added_parameters": added})


register_recipe(Recipe("fit-head", (("fit-head", 1.0),), "the new output rows fitted on cached final hidden states (head untied)"))
