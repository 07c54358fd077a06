"""Log-probabilities of target tokens from a causal LM's body and output head, in row chunks.

Evaluation and healing both need log p(target) at chosen positions of models with vocabularies of up
to 262k tokens, without ``batch x length x vocab`` logits in memory. So they run the decoder body,
then the output head on the chosen positions only, a bounded number of rows at a time. That is right
only for models whose logits are a linear head (and Gemma-2 soft-capping) over the body's last hidden
state: :func:`head_reproduces_logits` tells, and each caller decides what to do when it does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

HeadImpl = Literal["chunked", "cce"]
# fp32 logits held at once: below this the head runs in one piece; above it, in row chunks of this
# size, each recomputed in the backward pass, so batch size is bounded by the hidden states, never
# by batch x length x vocabulary.
LOGIT_BYTES = 1 << 28


def logit_softcap(model: Any) -> float | None:
    """The model's final-logit soft cap ``c`` (logits become ``c * tanh(logits / c)``, as in Gemma-2), or None."""
    config = model.config
    return getattr(config, "final_logit_softcapping", None) or getattr(getattr(config, "text_config", None), "final_logit_softcapping", None)


def has_body_and_head(model: Any) -> bool:
    """Whether the model exposes its decoder body (``get_decoder()``) and, apart from it, an output head."""
    return hasattr(model, "get_decoder") and model.get_output_embeddings() is not None


def head_logits(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                softcap: float | None = None) -> torch.Tensor:
    """hidden: (N, D), weight: (V, D) -> logits (N, V) in fp32 (fp64 stays fp64), soft-capped as Gemma-2 does."""
    import torch
    import torch.nn.functional as F

    if weight.dtype != hidden.dtype:  # half-precision weights computed in float32 (modeling.compute)
        common = torch.promote_types(weight.dtype, hidden.dtype)
        hidden, weight = hidden.to(common), weight.to(common)
        bias = None if bias is None else bias.to(common)
    logits = F.linear(hidden, weight, bias)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    if softcap:
        logits = softcap * (logits / softcap).tanh()
    return logits


def logprobs_from_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) in nats for each row: logits (N, V), targets (N,) -> (N,)."""
    return logits.gather(-1, targets[:, None]).squeeze(-1) - logits.logsumexp(-1)


def _head_logprobs(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                   bias: torch.Tensor | None, softcap: float | None) -> torch.Tensor:
    return logprobs_from_logits(head_logits(hidden, weight, bias, softcap), targets)


def target_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    softcap: float | None = None,
    impl: HeadImpl = "chunked",
    logit_bytes: int = LOGIT_BYTES,
) -> torch.Tensor:
    """log p(target) in nats for each row: hidden (N, D), weight (V, D), targets (N,) -> (N,) fp32.

    Differentiable in ``hidden``, ``weight`` and ``bias``. ``chunked``: logits for at most
    ``logit_bytes`` of fp32 at a time; when the whole (N, V) fits, one piece without recomputation
    (the cost of a plain loop), else activation-checkpointed row chunks.
    ``cce``: the cut-cross-entropy kernel (logits never leave on-chip memory; CUDA only).
    """
    import torch
    from torch.utils.checkpoint import checkpoint

    if impl == "cce":
        return _cce_logprobs(hidden, weight, targets, bias=bias, softcap=softcap)
    rows = max(1, logit_bytes // (4 * weight.shape[0]))
    if hidden.shape[0] <= rows:
        return _head_logprobs(hidden, weight, targets, bias, softcap)
    parts = [
        checkpoint(_head_logprobs, hidden[i : i + rows], weight, targets[i : i + rows], bias, softcap, use_reentrant=False)
        for i in range(0, hidden.shape[0], rows)
    ]
    return torch.cat(parts)


def cce_available() -> bool:
    """Whether the optional ``cut-cross-entropy`` package imports (it needs CUDA and triton)."""
    try:
        import cut_cross_entropy  # noqa: F401
    except Exception:  # an install without triton fails with more than ImportError
        return False
    return True


def _cce_logprobs(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, *,
                  bias: torch.Tensor | None, softcap: float | None) -> torch.Tensor:
    import torch
    from cut_cross_entropy import linear_cross_entropy

    # The kernels take half-precision inputs; under autocast use its dtype, else bfloat16.
    dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else torch.bfloat16
    extra = {"bias": bias.to(dtype)} if bias is not None else {}
    with torch.autocast("cuda", enabled=False):
        loss = linear_cross_entropy(hidden.to(dtype), weight.to(dtype), targets, softcap=softcap, reduction="none", **extra)
    return -loss.float()


@dataclass(frozen=True)
class Shortlist:
    """A subset of the vocabulary that the softmax runs over instead of all of it: ``ids`` (K,) sorted,
    and ``position`` (V,): each id's index in ``ids``, -1 for ids left out. Every target must be in it."""

    ids: torch.Tensor
    position: torch.Tensor

    @classmethod
    def of(cls, ids: Any, vocab_size: int) -> Shortlist:
        import torch

        kept = torch.unique(torch.as_tensor(list(ids), dtype=torch.long))
        if len(kept) and (int(kept[0]) < 0 or int(kept[-1]) >= vocab_size):
            raise ValueError(f"shortlist ids must lie in [0, {vocab_size}), got {int(kept[0])}..{int(kept[-1])}")
        position = torch.full((vocab_size,), -1, dtype=torch.long)
        position[kept] = torch.arange(len(kept))
        return cls(kept, position)

    def to(self, device: torch.device | str) -> Shortlist:
        return Shortlist(self.ids.to(device), self.position.to(device))


def scored_logprobs(model: Any, input_ids: torch.Tensor | None, attention_mask: torch.Tensor, targets: torch.Tensor,
                    scored: torch.Tensor, *, impl: HeadImpl = "chunked", logit_bytes: int = LOGIT_BYTES,
                    inputs_embeds: torch.Tensor | None = None, shortlist: Shortlist | None = None) -> torch.Tensor:
    """log p(target) in nats of every scored position, row-major: the body over the whole batch, the
    head over scored positions only. input_ids (or inputs_embeds (B, L, D)), attention_mask, targets,
    scored: (B, L) -> (N,). ``shortlist``: normalise over those ids only (a training approximation
    for large vocabularies: the head's cost falls with the shortlist's size)."""
    hidden = model.get_decoder()(input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                 use_cache=False).last_hidden_state
    head = model.get_output_embeddings()
    # getattr: a head wrapped by PEFT's trainable tokens (heal's stage lora) exposes its weight only (heal/lora.py refuses biased heads)
    weight, bias, wanted = head.weight, getattr(head, "bias", None), targets[scored]
    if shortlist is not None:
        weight = weight.index_select(0, shortlist.ids)
        bias = None if bias is None else bias.index_select(0, shortlist.ids)
        wanted = shortlist.position[wanted]
        if bool((wanted < 0).any()):
            raise ValueError("a target token is not in the softmax shortlist; build the shortlist from every text trained on")
    return target_logprobs(hidden[scored], weight, wanted, bias=bias, softcap=logit_softcap(model), impl=impl, logit_bytes=logit_bytes)


def _head_tolerance(weight: torch.Tensor) -> float:
    """Relative tolerance of :func:`head_reproduces_logits` for a head with this weight, under the current autocast."""
    import torch

    # In bf16/fp16 (half weights, or autocast) the model's head and ours round differently by up to
    # ~1% of a logit; a head that is really another function differs by whole logits.
    devices = ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)
    half = weight.dtype in (torch.bfloat16, torch.float16) or any(torch.is_autocast_enabled(device) for device in devices)
    return 3e-2 if half else 1e-3


def head_reproduces_logits(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> bool:
    """Whether body + head (+ soft cap), as :func:`scored_logprobs` computes them, give the model's own
    logits on one sequence: input_ids and attention_mask (1, L). A model exposing no body and head
    (:func:`has_body_and_head`) cannot be asked. The model runs in eval mode (no dropout), then gets
    its mode back."""
    import torch

    # The answer is a property of the model's structure, not of its weights: asked again (every
    # evaluation of a heal run asks), it is not recomputed — a full forward of a 1B model costs 13 s here.
    # The structure: the head and decoder objects, the hooks on the head and the model, a replaced forward.
    head = model.get_output_embeddings()
    cache = model.__dict__.setdefault("_tokenshift_head_checks", {})
    key = (id(head), id(model.get_decoder()), tuple(head._forward_hooks), tuple(head._forward_pre_hooks),
           tuple(model._forward_hooks), tuple(model._forward_pre_hooks), id(model.__dict__.get("forward")))
    if key in cache:
        return cache[key][-1]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            full = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[0].float()
            hidden = model.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state[0]
            head = model.get_output_embeddings()
            mine = head_logits(hidden, head.weight, getattr(head, "bias", None), logit_softcap(model)).float()
    finally:
        model.train(was_training)
    tolerance = _head_tolerance(head.weight)
    # NaN where the model's own logits are NaN (damaged weights) agrees: scoring then says what is wrong.
    scale = max(1.0, float(torch.nan_to_num(full.abs(), nan=0.0, posinf=0.0).max()))
    answer = torch.allclose(full, mine, atol=tolerance * scale, rtol=tolerance, equal_nan=True)
    cache[key] = (head, model.get_decoder(), answer)  # the objects kept, so their ids cannot be reused
    return answer
