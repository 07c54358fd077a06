"""A short heal of merged tokens' input rows on the batch itself: token distillation (after Dobler et
al. 2025, "AweDist", as heal's distill-rows) at inference time.

The batch's contexts are read twice through the model cut to its first layers (heal's
:func:`~tokenshift.heal.rows.truncated`): with base ids (teacher, once, no gradient) and with merged
ids (student). A merged sequence is a coarsening of the base one, so after every merged-sequence token
the history is the same bytes as after the last base piece it spells; from the first merged token on,
the student's hidden state there is pulled towards the teacher's (mean squared difference). Only the
merged rows move (Adam). Nothing the model predicts is involved: the continuation is never read.

    base:    C  Ġun  belie  vable  Ġthe      hidden states compared after: vable ~ A', Ġthe ~ Ġthe
    merged:  C  A'          Ġthe             (A' = Ġun+belie+vable, a merged id)

The contexts are read in buckets of similar length (one Adam step sums the gradient of every
bucket: the same objective as one padded batch, without the padding). It costs ``steps`` forward and
backward passes over the contexts through the cut model, which is more
than the prefill it shortens: it pays where the same merged context is read many times (a long
document asked many questions), or to learn what better rows are worth (``bench/dynamic.py``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .embed import input_embeddings
from .merges import DynamicVocabulary

if TYPE_CHECKING:
    import torch

    from ..modeling.load import LoadedModel

DISTIL_LAYER = 0.47  # share of the decoder layers the contexts are read through (heal's distill-rows)
DISTIL_LR = 3e-3  # Adam's rate for the merged rows (heal's distill-rows)
BUCKET_TOKENS = 4096  # padded tokens per forward pass; a step is one Adam update over all of them


@dataclass(frozen=True)
class DistilReport:
    """What the distillation did: ``loss_start``/``loss_end``: the objective before and after."""

    steps: int
    layers: int
    lr: float
    positions: int
    loss_start: float
    loss_end: float
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def aligned_positions(base: list[int], merged: list[int], vocabulary: DynamicVocabulary) -> tuple[list[int], list[int]]:
    """(merged positions, base positions) of the same history, from the first merged token on; both
    sequences start with the conditioning token (position 0), which is never merged."""
    merged_at, base_at = [], []
    covered = 0
    started = False
    for i, token in enumerate(merged[1:], start=1):
        covered += len(vocabulary.spell(token))
        started = started or token >= vocabulary.base_size
        if started:
            merged_at.append(i)
            base_at.append(covered)
    if covered != len(base) - 1:
        raise ValueError("the merged sequence does not spell the base sequence; merge the same contexts")
    return merged_at, base_at


def distil_merged_rows(
    loaded: LoadedModel,
    base_sequences: list[list[int]],
    merged_sequences: list[list[int]],
    vocabulary: DynamicVocabulary,
    rows: torch.Tensor,
    *,
    conditioning: int,
    steps: int,
    lr: float = DISTIL_LR,
    layer: float = DISTIL_LAYER,
    bucket_tokens: int = BUCKET_TOKENS,
) -> tuple[torch.Tensor, DistilReport]:
    """``rows`` (merged ids' input rows) after ``steps`` full-batch steps of token distillation on the
    contexts themselves (module docstring); the model is left as it was."""
    import torch

    from ..evaluate.scoring import length_batches
    from ..heal.rows import autocast, hidden_state_mse, padded_ids, target_layer, truncated
    from ..modeling.compute import cpu_has_bf16

    if steps < 0:
        raise ValueError(f"distillation steps must be 0 or more, got {steps}")
    started = time.perf_counter()
    model, device = loaded.model, loaded.device
    mixed = "bf16" if device.startswith("cuda") or cpu_has_bf16() else "no"
    layers = target_layer(model, layer)
    pad = loaded.tokenizer.padding_token()
    examples = []
    for base, merged in zip(base_sequences, merged_sequences):
        teacher_ids, student_ids = [conditioning, *base], [conditioning, *merged]
        student_at, teacher_at = aligned_positions(teacher_ids, student_ids, vocabulary)
        if student_at:
            examples.append((teacher_ids, student_ids, student_at, teacher_at))
    if not examples or not len(vocabulary) or steps == 0:
        return rows, DistilReport(0, layers, lr, 0, 0.0, 0.0, round(time.perf_counter() - started, 3))
    trained = torch.nn.Parameter(rows.detach().float().clone())
    positions = sum(len(e[2]) for e in examples)
    was_training = model.training
    model.eval()
    requires = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    optimizer = torch.optim.Adam([trained], lr=lr)
    try:
        with truncated(model, layers):
            buckets = []
            # longest first, each padded bucket at most bucket_tokens (a longer context alone): contexts of
            # 20 and 240 tokens padded together would spend most of a pass on padding
            lengths = [len(e[1]) for e in examples]
            for group in ([examples[i] for i in batch] for batch in length_batches(lengths, token_budget=bucket_tokens, longest_first=True)):
                batch_rows = torch.tensor([r for r, e in enumerate(group) for _ in e[2]], device=device)
                student_pos = torch.tensor([p for e in group for p in e[2]], device=device)
                teacher_pos = torch.tensor([p for e in group for p in e[3]], device=device)
                student_ids, student_mask = (t.to(device) for t in padded_ids([e[1] for e in group], pad))
                teacher_ids, teacher_mask = (t.to(device) for t in padded_ids([e[0] for e in group], pad))
                with torch.no_grad(), autocast(device, mixed):
                    target = model.get_decoder()(input_ids=teacher_ids, attention_mask=teacher_mask, use_cache=False).last_hidden_state
                    target = target[batch_rows, teacher_pos].float()
                buckets.append((student_ids, student_mask, batch_rows, student_pos, target))

            def bucket_loss(bucket: tuple) -> torch.Tensor:
                # this bucket's share of the mean over every position of the batch (so the buckets' sum is that mean)
                ids, mask, batch_rows, student_pos, target = bucket
                with autocast(device, mixed):
                    embeds = input_embeddings(model, ids, trained)
                    hidden = model.get_decoder()(inputs_embeds=embeds, attention_mask=mask, use_cache=False).last_hidden_state
                return hidden_state_mse(hidden[batch_rows, student_pos], target, positions)

            losses = []
            for _ in range(steps):
                optimizer.zero_grad(set_to_none=True)
                total = 0.0
                for bucket in buckets:
                    value = bucket_loss(bucket)
                    value.backward()
                    total += float(value.detach())
                losses.append(total)
                optimizer.step()
            with torch.no_grad():
                losses.append(sum(float(bucket_loss(bucket)) for bucket in buckets))
    finally:
        for parameter, flag in zip(model.parameters(), requires):
            parameter.requires_grad_(flag)
        model.train(was_training)
    report = DistilReport(steps, layers, lr, positions, losses[0], losses[-1], round(time.perf_counter() - started, 3))
    return trained.detach().to(rows.dtype), report
