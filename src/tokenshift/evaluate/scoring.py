"""Summed negative log-likelihood of scoring windows, batched, without full-vocabulary logits in memory."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from .windows import Window

logger = logging.getLogger(__name__)

LOGIT_BYTES_PER_CHUNK = 1 << 28  # 256 MiB of fp32 logits at a time, whatever the vocabulary size


class WindowScorer:
    """Scores windows with a causal LM: runs the body, then the output head on scored positions only,
    in row chunks, so a 262k vocabulary never materialises ``batch x length x vocab`` logits.

    Before trusting the chunked head it checks once against the model's own logits; a model whose
    head does something the check does not reproduce falls back to plain full forwards.
    """

    def __init__(self, model: Any, *, device: str) -> None:
        self.model = model
        self.device = device
        self.head = model.get_output_embeddings()
        self.body = model.get_decoder() if hasattr(model, "get_decoder") else None
        self.softcap = getattr(model.config, "final_logit_softcapping", None) or getattr(
            getattr(model.config, "text_config", None), "final_logit_softcapping", None
        )
        self.use_chunked_head = self.head is not None and self.body is not None
        self.checked = False

    def _logits(self, hidden: Any) -> Any:
        logits = self.head(hidden).float()
        if self.softcap:
            logits = self.softcap * (logits / self.softcap).tanh()
        return logits

    def _nll_from_logits(self, logits: Any, targets: Any) -> Any:
        import torch

        return torch.logsumexp(logits, dim=-1) - logits.gather(-1, targets[:, None]).squeeze(-1)

    def _chunked_nll(self, hidden: Any, targets: Any) -> Any:
        import torch

        vocab = self.head.weight.shape[0]
        rows = max(1, LOGIT_BYTES_PER_CHUNK // (4 * vocab))
        parts = [self._nll_from_logits(self._logits(hidden[i : i + rows]), targets[i : i + rows]) for i in range(0, hidden.shape[0], rows)]
        return torch.cat(parts) if parts else hidden.new_zeros(0, dtype=torch.float32)

    def _check_head(self, input_ids: Any, attention_mask: Any, hidden: Any) -> None:
        import torch

        length = min(int(attention_mask[0].sum()), 64)  # a short slice is enough to catch a different head
        full = self.model(input_ids=input_ids[:1, :length], attention_mask=attention_mask[:1, :length]).logits[0].float()
        mine = self._logits(hidden[0, :length])
        # In bf16/fp16 (autocast, or half weights) the two matmuls round differently by up to ~1% of a
        # logit; a head that is really another function differs by whole logits.
        half = self.head.weight.dtype in (torch.bfloat16, torch.float16) or any(
            torch.is_autocast_enabled(kind) for kind in ("cpu", "cuda") if kind == "cpu" or torch.cuda.is_available())
        tolerance = 3e-2 if half else 1e-3
        if not torch.allclose(full, mine, atol=tolerance * max(1.0, float(full.abs().max())), rtol=tolerance):
            logger.warning("chunked output head disagrees with %s's own logits; scoring with full forwards (more memory)", type(self.model).__name__)
            self.use_chunked_head = False
        self.checked = True

    def nll_nats(self, batch: list[Window], pad_id: int) -> float:
        """Sum of NLL in nats over the scored positions of ``batch`` (right-padded into one tensor)."""
        import torch

        length = max(len(w.inputs) for w in batch)
        input_ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
        targets = torch.zeros((len(batch), length), dtype=torch.long)
        attention_mask = torch.zeros((len(batch), length), dtype=torch.long)
        scored = torch.zeros((len(batch), length), dtype=torch.bool)
        for row, window in enumerate(batch):
            size = len(window.inputs)
            input_ids[row, :size] = torch.tensor(window.inputs)
            targets[row, :size] = torch.tensor(window.targets)
            attention_mask[row, :size] = 1
            scored[row, size - window.scored : size] = True
        input_ids, targets = input_ids.to(self.device), targets.to(self.device)
        attention_mask, scored = attention_mask.to(self.device), scored.to(self.device)
        with torch.inference_mode():
            if self.use_chunked_head:
                hidden = self.body(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
                if not self.checked:
                    self._check_head(input_ids, attention_mask, hidden)
            if self.use_chunked_head:
                nll = self._chunked_nll(hidden[scored], targets[scored])
            else:
                logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
                nll = self._nll_from_logits(logits[scored].float(), targets[scored])
        return float(nll.double().sum())


def make_batches(windows: list[Window], *, batch_tokens: int, max_batch: int = 256) -> list[list[Window]]:
    """Group windows of similar length (longest first) so a padded batch holds at most ``batch_tokens``."""
    ordered = sorted(windows, key=lambda w: len(w.inputs), reverse=True)
    batches: list[list[Window]] = []
    current: list[Window] = []
    for window in ordered:
        width = len(current[0].inputs) if current else len(window.inputs)
        if current and ((len(current) + 1) * width > batch_tokens or len(current) >= max_batch):
            batches.append(current)
            current = []
        current.append(window)
    if current:
        batches.append(current)
    return batches


def score_windows(
    model: Any,
    windows: list[Window],
    *,
    device: str,
    pad_id: int,
    batch_tokens: int,
    on_batch: Callable[[int], None] | None = None,
) -> float:
    """Total NLL in nats of all scored positions; ``on_batch(n_tokens)`` reports progress."""
    scorer = WindowScorer(model, device=device)
    total = 0.0
    for batch in make_batches(windows, batch_tokens=batch_tokens):
        total += scorer.nll_nats(batch, pad_id)
        if on_batch is not None:
            on_batch(sum(w.scored for w in batch))
    if not math.isfinite(total):
        raise ValueError("the model gave a non-finite log-likelihood (NaN or inf); try --dtype float32")
    return total
