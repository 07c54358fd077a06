"""The forward pass used for training: the model's body, then its output head on real targets only.

Wrapped as one ``nn.Module`` so that the engine (accelerate: DDP, FSDP) wraps the whole computation,
the head included; calling the body directly on an unwrapped model would bypass gradient syncing.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from .losses import head_logits, target_logprobs

logger = logging.getLogger(__name__)


def logit_softcap(model: Any) -> float | None:
    config = model.config
    return getattr(config, "final_logit_softcapping", None) or getattr(getattr(config, "text_config", None), "final_logit_softcapping", None)


class TokenLogprobs(nn.Module):
    """``forward(input_ids, attention_mask, targets, scored) -> (N,)``: log p(target) in nats of every
    scored position, row-major. input_ids/attention_mask/targets/scored: (B, L)."""

    def __init__(self, model: Any, *, impl: str = "chunked", logit_bytes: int = 1 << 28) -> None:
        super().__init__()
        self.model = model
        self.impl = impl
        self.logit_bytes = logit_bytes
        self.softcap = logit_softcap(model)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, targets: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
        hidden = self.model.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        head = self.model.get_output_embeddings()
        return target_logprobs(hidden[scored], head.weight, targets[scored], bias=head.bias, softcap=self.softcap,
                               impl=self.impl, logit_bytes=self.logit_bytes)  # type: ignore[arg-type]


@torch.no_grad()
def check_head(model: Any, name: str) -> None:
    """Raise unless body + head (+ soft cap) reproduces the model's own logits: heal computes the loss
    from the body's output, so a model whose head does more (a scale, a bias-free projection elsewhere)
    would otherwise train against the wrong logits."""
    if not (hasattr(model, "get_decoder") and model.get_output_embeddings() is not None):
        raise ValueError(f"model {name!r} ({type(model).__name__}) exposes no get_decoder()/output head; heal trains causal LMs "
                         "whose logits are a linear head over the decoder's last hidden state")
    device = model.get_input_embeddings().weight.device
    vocab = model.get_input_embeddings().weight.shape[0]
    input_ids = torch.arange(min(16, vocab), device=device)[None]
    was_training = model.training
    model.eval()
    full = model(input_ids=input_ids, use_cache=False).logits[0].float()
    hidden = model.get_decoder()(input_ids=input_ids, use_cache=False).last_hidden_state[0]
    head = model.get_output_embeddings()
    mine = head_logits(hidden, head.weight, head.bias, logit_softcap(model))
    model.train(was_training)
    if not torch.allclose(full, mine, atol=1e-3 * max(1.0, float(full.abs().max())), rtol=1e-3):
        raise ValueError(f"model {name!r} ({type(model).__name__}): its output head does something besides a linear layer "
                         "(and Gemma-2 soft-capping) over the decoder output; heal cannot compute its loss in chunks")
