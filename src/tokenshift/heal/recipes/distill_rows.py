"""Token distillation of the new input rows (after Dobler et al. 2025, "AweDist").

For a piece of training text that the new tokenizer spells with at least one new token, the frozen
model reads it twice: with the new tokenization (student, new rows trainable) and with the original
one (teacher). At every byte offset where both tokenizations end a token, from the end of the first
new token on, the two final hidden states describe the same history and should agree; the loss is
their mean squared difference. Only the new rows get a gradient, and only the rows in the batch move
(:class:`~tokenshift.heal.rows.RowAdam`).

What makes it pay on a CPU (measured, wiki-fr validation, docs/benchmarks/heal.md): the model is truncated to its
first ~47% of decoder layers (then the final norm), so a step costs under half a full forward and
backward; bf16 autocast where the CPU has it; short pieces (~200 bytes) and a high row learning rate
(3e-3) because each row is seen a handful of times in a few minutes.
"""

from __future__ import annotations

import random
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..data import cut_pieces
from . import PhaseClock, PhaseContext, PhaseResult, Recipe, original_teacher, register_phase, register_recipe
from .lora_distill import lr_factor

if TYPE_CHECKING:  # torch is imported where a phase runs: listing the recipes (the CLI's --help) stays light
    import torch

    from ..rows import NewRowEmbedding

HELD_OUT = 32  # pieces kept back to measure the phase's own objective
HELD_SHARE = 0.05  # of the phase's time, at most (about) for measuring it at the start, and as much at the end
POOL_BATCHES = 8  # batches' worth of examples sorted by length together


@dataclass(frozen=True)
class DistillExample:
    """Inputs start with each side's conditioning token; ``*_positions`` index the hidden states
    (input positions) compared, pairwise."""

    student_ids: list[int]
    teacher_ids: list[int]
    student_positions: list[int]
    teacher_positions: list[int]


def distill_example(piece: str, ctx: PhaseContext, is_new: torch.Tensor) -> DistillExample | None:
    """The example of one piece, or None when the new tokenizer uses no new token in it."""
    s = ctx.tokenizer.encode_with_offsets(piece)
    first = next((i for i, token in enumerate(s.ids) if is_new[token]), None)
    if first is None:
        return None
    t = ctx.teacher_tokenizer.encode_with_offsets(piece)
    floor = s.ends[first]
    teacher_at = {end: j for j, end in enumerate(t.ends)}
    student_at = {end: i for i, end in enumerate(s.ends) if end >= floor}
    pairs = [(i + 1, teacher_at[end] + 1) for end, i in student_at.items() if end in teacher_at]
    if not pairs:
        return None
    return DistillExample([ctx.tokenizer.conditioning_token(), *s.ids], [ctx.teacher_tokenizer.conditioning_token(), *t.ids],
                          [p for p, _ in pairs], [q for _, q in pairs])


def distill_loss(ctx: PhaseContext, embedding: NewRowEmbedding, batch: list[DistillExample], teacher: Any = None,
                 positions: int | None = None) -> torch.Tensor:
    """Mean squared difference of the compared hidden states of one batch (fp32). ``teacher``: the
    model that reads the original tokenization (default: the context's). ``positions``: the compared
    positions of the whole batch when ``batch`` is one micro-batch of it (its share of the mean)."""
    import torch

    from ..rows import autocast, hidden_state_mse, padded_ids

    teacher_model = ctx.teacher if teacher is None else teacher
    device = ctx.device
    s_ids, s_mask = padded_ids([e.student_ids for e in batch], ctx.tokenizer.padding_token())
    t_ids, t_mask = padded_ids([e.teacher_ids for e in batch], ctx.teacher_tokenizer.padding_token())
    rows_s = torch.tensor([r for r, e in enumerate(batch) for _ in e.student_positions], device=device)
    rows_t = torch.tensor([r for r, e in enumerate(batch) for _ in e.teacher_positions], device=device)
    pos_s = torch.tensor([p for e in batch for p in e.student_positions], device=device)
    pos_t = torch.tensor([p for e in batch for p in e.teacher_positions], device=device)
    with torch.no_grad(), autocast(device, ctx.mixed):
        hidden_t = teacher_model.get_decoder()(input_ids=t_ids.to(device), attention_mask=t_mask.to(device), use_cache=False).last_hidden_state
        target = hidden_t[rows_t, pos_t].float()
    with autocast(device, ctx.mixed):
        hidden = ctx.model.get_decoder()(inputs_embeds=embedding(s_ids.to(device)), attention_mask=s_mask.to(device),
                                         use_cache=False).last_hidden_state
    return hidden_state_mse(hidden[rows_s, pos_s], target, positions)


# Activations a micro-batch may keep for the backward pass (float32): a batch of 16 pieces through half
# of a Llama-3.2-1B keeps ~1.9 GB; SmolLM2-135M's batches stay whole (~0.65 GB).
ACTIVATION_BYTES = 10**9


def activation_bytes_per_position(model: Any, layers: int) -> int:
    """About what one position keeps for the backward pass through ``layers`` decoder layers (float32):
    the norms' and projections' inputs and outputs of attention and the gated MLP."""
    config = model.config
    width = int(config.hidden_size)
    inner = int(getattr(config, "intermediate_size", 4 * width))
    return 4 * layers * (6 * width + 4 * inner)


def micro_batches(batch: list[DistillExample], max_positions: int) -> list[list[DistillExample]]:
    """``batch`` (sorted by length) cut so each part pads to at most ``max_positions`` student positions
    (a part holds one example at least)."""
    parts: list[list[DistillExample]] = [[]]
    for example in batch:
        longest = max([len(e.student_ids) for e in parts[-1]] + [len(example.student_ids)])
        if parts[-1] and longest * (len(parts[-1]) + 1) > max_positions:
            parts.append([])
        parts[-1].append(example)
    return parts


def distill_backward(ctx: PhaseContext, embedding: NewRowEmbedding, batch: list[DistillExample], teacher: Any, *,
                     max_positions: int) -> float:
    """The gradient of :func:`distill_loss` over ``batch``, accumulated micro-batch by micro-batch (the
    same gradient, less memory); returns the loss."""
    total = sum(len(e.student_positions) for e in batch)
    value = 0.0
    for part in micro_batches(batch, max_positions):
        loss = distill_loss(ctx, embedding, part, teacher, positions=total)
        loss.backward()
        value += float(loss.detach())
    return value


@register_phase("distill-rows")
def distill_rows(ctx: PhaseContext, *, seconds: float, tokens: int | None) -> PhaseResult:
    return _distill(ctx, seconds=seconds, tokens=tokens, body=False)


@register_phase("distill-body", trains_body=True)
def distill_body(ctx: PhaseContext, *, seconds: float, tokens: int | None) -> PhaseResult:
    """distill-rows with LoRA adapters on the truncated layers too: the layers below the target learn
    to read the new splits of old words (" option" + "al"), which no row can fix, at the cost of a
    truncated forward and backward (the backward reaches the first layer anyway, for the rows)."""
    return _distill(ctx, seconds=seconds, tokens=tokens, body=True)


def _distill(ctx: PhaseContext, *, seconds: float, tokens: int | None, body: bool) -> PhaseResult:
    import torch

    from ..rows import NewRowEmbedding, RowAdam, target_layer, truncated

    config = ctx.config
    name = "distill-body" if body else "distill-rows"
    started = time.perf_counter()
    clock = PhaseClock(ctx.deadline, seconds, tokens)
    layers = target_layer(ctx.model, config.distill_layer)
    pieces = cut_pieces(ctx.documents, target_bytes=config.distill_piece_bytes)
    random.Random(config.seed).shuffle(pieces)
    is_new = torch.zeros(max(ctx.model.get_input_embeddings().weight.shape[0], ctx.tokenizer.vocab_size), dtype=torch.bool)
    is_new[ctx.new_ids] = True
    ctx.model.requires_grad_(False)
    ctx.teacher.requires_grad_(False)
    teacher = original_teacher(ctx) if body else ctx.teacher  # the adapters go into the student's body
    embedding = NewRowEmbedding(ctx.model, ctx.new_ids)
    max_positions = max(1, ACTIVATION_BYTES // activation_bytes_per_position(ctx.model, layers))
    optimizer = RowAdam(embedding.rows, lr=config.row_lr)
    adapters = body_optimizer = None
    if body:
        from ..lora import add_lora

        adapters = add_lora(ctx.model, rank=config.lora_rank, alpha=config.lora_alpha, layers=layers, seed=config.seed)
        body_optimizer = torch.optim.AdamW(adapters.lora, lr=config.lora_lr, betas=(0.9, 0.95), weight_decay=config.weight_decay)

    # Tokenize lazily, in order, so a short run does not pay for the whole text; later passes skip
    # the held-out pieces at the front.
    cursor = 0
    first_train = 0

    def next_examples(n: int) -> list[DistillExample]:
        nonlocal cursor
        found: list[DistillExample] = []
        scanned = 0
        while len(found) < n and scanned < len(pieces):
            index = cursor % len(pieces)
            cursor += 1
            scanned += 1
            if cursor > len(pieces) and index < first_train:
                continue
            example = distill_example(pieces[index], ctx, is_new)
            if example is not None:
                found.append(example)
        return found

    held = next_examples(HELD_OUT)
    if not held:
        raise ValueError(f"{name}: the new tokenizer uses none of its new tokens on the training text; "
                         "there is nothing to distil (heal on text in the new tokenizer's language)")
    first_train = cursor

    def held_loss(limit: float = float("inf")) -> float:
        """The mean loss over the held-out batches; past ``limit`` seconds the rest are dropped for good
        (the end is measured on the same ones): on a large model one batch costs seconds."""
        began = time.perf_counter()
        losses = []
        with torch.no_grad():
            for i in range(0, len(held), config.distill_batch):
                losses.append(distill_loss(ctx, embedding, held[i: i + config.distill_batch], teacher).item())
                if time.perf_counter() - began > limit:
                    del held[i + config.distill_batch:]
                    break
        return sum(losses) / len(losses)

    from ..teacher import shares_body

    with truncated(ctx.model, layers), truncated(teacher, layers) if not shares_body(teacher, ctx.model) else nullcontext():
        began = time.perf_counter()
        start_loss = held_loss(limit=HELD_SHARE * clock.seconds)
        clock.seconds -= time.perf_counter() - began  # the end's held-out loss costs as much: reserve it
        seen_tokens = 0
        ready: list[list[DistillExample]] = []
        order = random.Random(config.seed + 2)
        while clock.more(seen_tokens):
            if cursor >= first_train + len(pieces) * 8:  # eight passes at most
                break
            if not ready:
                # A pool of examples sorted by length and cut into batches: little padding in either
                # model's forward pass (shuffled pieces end at document ends and vary in length).
                pool = sorted(next_examples(config.distill_batch * POOL_BATCHES), key=lambda e: len(e.student_ids))
                ready = [pool[i: i + config.distill_batch] for i in range(0, len(pool), config.distill_batch)]
                order.shuffle(ready)
            if not ready:
                break
            batch = ready.pop()
            loss = distill_backward(ctx, embedding, batch, teacher, max_positions=max_positions)
            optimizer.step()
            if body_optimizer is not None:
                for group in body_optimizer.param_groups:
                    group["lr"] = config.lora_lr * lr_factor(clock.steps, clock.elapsed(), clock.seconds)
                body_optimizer.step()
                body_optimizer.zero_grad(set_to_none=True)
            seen_tokens += sum(len(e.student_ids) - 1 for e in batch)
            clock.stepped()
            if clock.steps % 20 == 0:
                ctx.log(f"{name} step {clock.steps}: loss {loss:.4f}, {seen_tokens:,} tokens, {ctx.deadline.elapsed() / 60:.1f} min")
        end_loss = held_loss()
    embedding.write_back()
    details = {}
    if adapters is not None:
        from ..lora import merge_lora

        details = {"rank": config.lora_rank, "alpha": config.lora_alpha, "lora_lr": config.lora_lr, "lora_layers": merge_lora(adapters)}
        ctx.model.requires_grad_(False)
    trained_rows = int((optimizer.count > 0).sum())
    return PhaseResult(name, round(time.perf_counter() - started, 3), seen_tokens, "mse of hidden states", start_loss, end_loss,
                       {"layers": layers, "of_layers": len(ctx.model.get_decoder().layers), "steps": clock.steps, "lr": config.row_lr,
                        "batch": config.distill_batch, "piece_bytes": config.distill_piece_bytes, "new_rows": int(len(ctx.new_ids)),
                        "rows_trained": trained_rows, "micro_batch_positions": max_positions, **details})



register_recipe(Recipe("distill-rows", (("distill-rows", 1.0),),
                       "token distillation of the new input rows through a truncated model; the head stays tied"))
register_recipe(Recipe("distill-body", (("distill-body", 1.0),),
                       "token distillation of the new input rows and LoRA on the layers below the target; merged at the end"))
