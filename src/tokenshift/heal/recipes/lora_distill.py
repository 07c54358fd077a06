"""LoRA on the whole body, distilled from the original model, in minutes on a CPU.

Training only rows cannot reach what a replacement tokenizer breaks most: words it spells with old
tokens in splits the model never saw (" optional" -> " option" + "al") sit in rows that are exact
copies (measured on pair (c), wiki-en validation: half the English loss). This phase puts LoRA
adapters (PEFT) on every linear layer of the body, trains the new rows as PEFT trainable tokens, and
distils the original model on the training text: the student's log-likelihood of each aligned chunk
(see :mod:`..align`) is matched to the original's with the binary KL of ``config.distance``. The
objective is the original's behaviour, not the text's next tokens, so it transfers to languages
the heal never saw instead of specialising on the training language (measured: wiki-es improved
with it and got worse with the row recipes). The adapters are merged at the end: the result is a
plain Hugging Face folder.

Sequences of at most 256 tokens, batched by length up to 1,024 tokens a step, a peak rate of ``lora_lr`` (5e-4) with a cosine over the phase's time: the
settings of the CPU probe on pair (c) (docs/benchmarks/heal.md). An extension's teacher is the original model loaded
afresh, since the student's softmax includes the new rows.

``lora-ntp`` is the same loop with the next-token loss on the training text instead of the original
as the target: what domain adaptation needs, where the text is the goal and the original model is the
bar to pass (a teacher caps the student at the teacher's loss; the plain fine-tuned original beats it on
the domain, ``bench/adapt.py``'s finetuned arm). No teacher is run: one forward pass fewer per step.
Its softmax runs over the training text's own tokens where they are a small part of the vocabulary
(:func:`seen_shortlist`).
"""

from __future__ import annotations

import math
import random
import time
from typing import TYPE_CHECKING

from ...modeling.logprobs import Shortlist
from ..data import length_batches, make_batch, training_pieces
from ..losses import distillation_loss, next_token_loss
from . import PhaseClock, PhaseContext, PhaseResult, Recipe, original_teacher, register_phase, register_recipe

if TYPE_CHECKING:
    import torch

SEQ_LEN = 256
BATCH = 4
STEP_TOKENS = BATCH * SEQ_LEN  # padded student tokens a step: short pieces (document ends) share a step
POOL = 64  # pieces sorted by length together before they are cut into steps
WARMUP_STEPS = 4
HELD_OUT = 8  # pieces kept back to measure the phase's own objective
# lora-ntp's softmax runs over the training text's own tokens when they are under this share of the
# vocabulary (see seen_shortlist).
SHORTLIST_SHARE = 0.5


def lr_factor(step: int, elapsed: float, seconds: float) -> float:
    """Linear warm-up over the first steps, then a cosine over the phase's time down to a tenth."""
    warm = min(1.0, (step + 1) / WARMUP_STEPS)
    done = min(1.0, elapsed / seconds) if math.isfinite(seconds) and seconds > 0 else 0.0
    return warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done)))


def seen_shortlist(ctx: PhaseContext, encoded: list[list[int]]) -> Shortlist | None:
    """The next-token loss's softmax over the tokens that occur in the training text (plus the new
    rows), where they are under ``SHORTLIST_SHARE`` of the vocabulary; else None (the full softmax).

    Why: on a CPU the output head is most of a step's cost for a large vocabulary (Gemma-3: 262k rows,
    each logit chunk computed twice under checkpointing), while the text uses a small part of it. The
    tokens left out get no gradient pushing them down; the phase's evaluation on held-out text with
    the full softmax, and the never-worse guard after it, judge the result. Measured on Gemma-3-270M
    adapted to French manual pages (15 minutes, docs/benchmarks/adapt.md): lora-ntp trained 57.8k
    tokens instead of 12.8k in its share of the budget, and took the validation pages from 1.3157 to 1.0165
    bits per byte instead of 1.1791 (full softmax), from the same start."""
    seen = {ctx.tokenizer.conditioning_token()}
    for ids in encoded:
        seen.update(ids)
    seen.update(int(i) for i in ctx.new_ids)
    vocab = int(ctx.model.get_output_embeddings().weight.shape[0])
    if len(seen) > SHORTLIST_SHARE * vocab:
        return None
    return Shortlist.of(sorted(seen), vocab).to(ctx.device)


@register_phase("lora-distill", trains_body=True)
def lora_distill(ctx: PhaseContext, *, seconds: float, tokens: int | None) -> PhaseResult:
    return _lora_phase(ctx, seconds=seconds, tokens=tokens, distill=True)


@register_phase("lora-ntp", trains_body=True)
def lora_ntp(ctx: PhaseContext, *, seconds: float, tokens: int | None) -> PhaseResult:
    return _lora_phase(ctx, seconds=seconds, tokens=tokens, distill=False)


def _lora_phase(ctx: PhaseContext, *, seconds: float, tokens: int | None, distill: bool) -> PhaseResult:
    """LoRA on the body plus the new rows; the loss: the original's chunk likelihoods (``distill``) or
    the training text's next tokens."""
    import torch

    from ..forward import TokenLogprobs
    from ..lora import add_lora, merge_lora
    from ..rows import autocast

    config = ctx.config
    started = time.perf_counter()
    clock = PhaseClock(ctx.deadline, seconds, tokens)
    name = "lora-distill" if distill else "lora-ntp"
    teacher = original_teacher(ctx) if distill else None
    pieces = training_pieces(ctx.documents, ctx.tokenizer, seq_len=SEQ_LEN)
    random.Random(config.seed).shuffle(pieces)
    held, train = pieces[:HELD_OUT], pieces[HELD_OUT:]
    if not train:
        raise ValueError(f"{name}: the training text is too short to train on; give more text")

    ctx.model.requires_grad_(False)
    adapters = add_lora(ctx.model, rank=config.lora_rank, alpha=config.lora_alpha, rows=ctx.new_ids.tolist(), seed=config.seed)
    groups = [{"params": adapters.lora, "weight_decay": config.weight_decay}, {"params": adapters.rows, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lora_lr, betas=(0.9, 0.95), eps=1e-8)
    params = adapters.lora + adapters.rows
    # Each piece's token count, for batching by length; lora-ntp encodes every piece once here for its shortlist.
    lengths_of: dict[str, int] = {}
    shortlist = None
    if not distill:
        encoded = [ctx.tokenizer.encode(piece) for piece in pieces]
        lengths_of = {piece: len(ids) for piece, ids in zip(pieces, encoded)}
        shortlist = seen_shortlist(ctx, encoded)
    student_lp = TokenLogprobs(ctx.model, impl="chunked", shortlist=shortlist)
    teacher_lp = TokenLogprobs(teacher, impl="chunked") if teacher is not None else None

    def batch_loss(batch_pieces: list[str]) -> tuple[torch.Tensor, int]:
        if teacher_lp is None:
            rows = make_batch(batch_pieces, ctx.tokenizer, None, seq_len=SEQ_LEN).to(ctx.device)
            with autocast(ctx.device, ctx.mixed):
                logprobs = student_lp(rows.student.input_ids, rows.student.attention_mask, rows.student.targets, rows.student.scored)
            return next_token_loss(logprobs.float()), rows.tokens
        batch = make_batch(batch_pieces, ctx.tokenizer, ctx.teacher_tokenizer, seq_len=SEQ_LEN, teacher_len=4 * SEQ_LEN).to(ctx.device)
        s, t = batch.student, batch.teacher
        with torch.no_grad(), autocast(ctx.device, ctx.mixed):
            teacher_logprobs = teacher_lp(t.input_ids, t.attention_mask, t.targets, t.scored)
        with autocast(ctx.device, ctx.mixed):
            logprobs = student_lp(s.input_ids, s.attention_mask, s.targets, s.scored)
        loss = distillation_loss(logprobs.float(), s.chunk[s.scored], teacher_logprobs.float(), t.chunk[t.scored], batch.n_chunks,
                                 distance=config.distance, temperature=config.distill_temperature)
        return loss, batch.tokens

    def held_loss() -> float:
        with torch.no_grad():
            losses = [batch_loss(held[i: i + BATCH])[0].item() for i in range(0, len(held), BATCH)]
        return sum(losses) / max(1, len(losses))

    held_started = ctx.deadline.elapsed()
    start_loss = held_loss()
    clock.seconds -= ctx.deadline.elapsed() - held_started  # the same measurement again at the end comes out of the phase's time
    seen_tokens = 0
    ready: list[list[str]] = []
    next_piece = 0
    order = random.Random(config.seed + 3)
    while clock.more(seen_tokens):
        for group in optimizer.param_groups:
            group["lr"] = config.lora_lr * lr_factor(clock.steps, clock.elapsed(), clock.seconds)
        if not ready:
            # Batches of similar length up to STEP_TOKENS: Wikipedia leads are short, and four pieces
            # padded to the longest spent half of each step on padding.
            pool = [train[(next_piece + i) % len(train)] for i in range(min(POOL, len(train)))]
            next_piece += len(pool)
            for piece in pool:
                if piece not in lengths_of:
                    lengths_of[piece] = len(ctx.tokenizer.encode(piece))
            lengths = [min(lengths_of[piece], SEQ_LEN) for piece in pool]
            ready = [[pool[i] for i in batch] for batch in length_batches(lengths, token_budget=STEP_TOKENS)]
            order.shuffle(ready)
        chosen = ready.pop()
        loss, n_tokens = batch_loss(chosen)
        loss.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seen_tokens += n_tokens
        clock.stepped()
        if clock.steps % 10 == 0:
            ctx.log(f"{name} step {clock.steps}: loss {loss.item():.4f}, {seen_tokens:,} tokens, {ctx.deadline.elapsed() / 60:.1f} min")
    end_loss = held_loss()
    merged = merge_lora(adapters)
    ctx.model.requires_grad_(False)
    objective = f"{config.distance} of chunk likelihoods" if distill else "next-token loss (nats per token)" + (
        f", softmax over the text's {len(shortlist.ids):,} tokens" if shortlist is not None else "")
    return PhaseResult(name, round(time.perf_counter() - started, 3), seen_tokens, objective,
                       start_loss, end_loss, {"steps": clock.steps, "lr": config.lora_lr, "batch": BATCH, "seq_len": SEQ_LEN, "rank": config.lora_rank,
                                              "alpha": config.lora_alpha, "lora_layers": merged, "new_rows": int(len(ctx.new_ids)),
                                              "softmax_rows": int(len(shortlist.ids)) if shortlist is not None else
                                              int(ctx.model.get_output_embeddings().weight.shape[0])})


register_recipe(Recipe("lora-distill", (("lora-distill", 1.0),),
                       "LoRA on the body plus the new rows, distilled from the original model; merged at the end"))
register_recipe(Recipe("rows-lora", (("distill-rows", 0.3), ("lora-distill", 0.7)),
                       "distill-rows, then lora-distill: new input rows first, then the body learns the new splits from the original"))
register_recipe(Recipe("lora-ntp", (("lora-ntp", 1.0),),
                       "LoRA on the body plus the new rows, next-token loss on the training text; merged at the end"))
