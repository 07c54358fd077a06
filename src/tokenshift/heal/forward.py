"""The forward pass used for training: the model's body, then its output head on real targets only.

Wrapped as one ``nn.Module`` so that the engine (accelerate: DDP, FSDP) wraps the whole computation,
the head included; calling the body directly on an unwrapped model would bypass gradient syncing.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..modeling.logprobs import LOGIT_BYTES, HeadImpl, Shortlist, has_body_and_head, head_reproduces_logits, scored_logprobs

HEAD_CHECK_TOKENS = 16


class TokenLogprobs(nn.Module):
    """``forward(input_ids, attention_mask, targets, scored) -> (N,)``: log p(target) in nats of every
    scored position, row-major. input_ids/attention_mask/targets/scored: (B, L). ``shortlist``: the
    softmax over those ids only (see :class:`~tokenshift.modeling.logprobs.Shortlist`)."""

    def __init__(self, model: Any, *, impl: HeadImpl = "chunked", logit_bytes: int = LOGIT_BYTES,
                 shortlist: Shortlist | None = None) -> None:
        super().__init__()
        self.model = model
        self.impl = impl
        self.logit_bytes = logit_bytes
        self.shortlist = shortlist

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, targets: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
        return scored_logprobs(self.model, input_ids, attention_mask, targets, scored, impl=self.impl, logit_bytes=self.logit_bytes,
                               shortlist=self.shortlist)


def check_head(model: Any, name: str) -> None:
    """Raise unless body + head (+ soft cap) reproduces the model's own logits. Unlike evaluation,
    which falls back to full forwards, heal cannot do without the split: it computes its loss from
    the body's output, so a model whose head does more (a scale, a projection elsewhere) would
    otherwise train against the wrong logits."""
    if not has_body_and_head(model):
        raise ValueError(f"model {name!r} ({type(model).__name__}) exposes no get_decoder()/output head; heal trains causal LMs "
                         "whose logits are a linear head over the decoder's last hidden state")
    embeddings = model.get_input_embeddings().weight
    probe = torch.arange(min(HEAD_CHECK_TOKENS, embeddings.shape[0]), device=embeddings.device)[None]
    if not head_reproduces_logits(model, probe):
        raise ValueError(f"model {name!r} ({type(model).__name__}): its output head does something besides a linear layer "
                         "(and Gemma-2 soft-capping) over the decoder output; heal cannot compute its loss in chunks")
