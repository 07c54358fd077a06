"""Per-token log-probabilities without full logits in memory, and the two healing objectives.

Both objectives start from the same vector: the log-probability (nats) the model gives each target
token. Next-token loss is its negated mean; the distillation loss sums it per aligned chunk (see
:mod:`.align`) and compares the sums with the teacher's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..registry import lookup

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

LossImpl = Literal["auto", "chunked", "cce"]
# fp32 logits held at once: below this the head runs in one piece (no recomputation); above it, in
# row chunks of this size, each recomputed in the backward pass, so batch size is bounded by the
# hidden states, never by batch x length x vocabulary.
LOGIT_BYTES = 1 << 28


def cce_available() -> bool:
    """Whether the optional ``cut-cross-entropy`` package imports (it needs CUDA and triton)."""
    try:
        import cut_cross_entropy  # noqa: F401
    except Exception:  # an install without triton fails with more than ImportError
        return False
    return True


def resolve_loss_impl(impl: LossImpl, device: str) -> Literal["chunked", "cce"]:
    """``auto``: cut-cross-entropy on CUDA where it is installed, the chunked loss everywhere else."""
    if impl == "chunked":
        return "chunked"
    if impl == "cce":
        if not cce_available():
            raise ValueError("loss 'cce' asked for but the cut-cross-entropy package does not import; "
                             "pip install cut-cross-entropy (CUDA only), or use --loss chunked")
        if not device.startswith("cuda"):
            raise ValueError("loss 'cce' runs on CUDA only; use --loss chunked (or auto) on the CPU")
        return "cce"
    if impl != "auto":
        raise ValueError(f"unknown loss implementation {impl!r}; choose auto, chunked or cce")
    return "cce" if device.startswith("cuda") and cce_available() else "chunked"


def head_logits(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                softcap: float | None = None) -> torch.Tensor:
    """hidden: (N, D), weight: (V, D) -> logits (N, V) in fp32 (fp64 stays fp64), soft-capped as Gemma-2 does."""
    import torch
    import torch.nn.functional as F

    logits = F.linear(hidden, weight, bias)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    if softcap:
        logits = softcap * (logits / softcap).tanh()
    return logits


def _target_logprobs_full(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                          bias: torch.Tensor | None, softcap: float | None) -> torch.Tensor:
    logits = head_logits(hidden, weight, bias, softcap)
    return logits.gather(-1, targets[:, None]).squeeze(-1) - logits.logsumexp(-1)


def target_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    softcap: float | None = None,
    impl: Literal["chunked", "cce"] = "chunked",
    logit_bytes: int = LOGIT_BYTES,
) -> torch.Tensor:
    """log p(target) in nats for each row: hidden (N, D), weight (V, D), targets (N,) -> (N,) fp32.

    Differentiable in ``hidden``, ``weight`` and ``bias``. ``chunked``: logits for at most
    ``logit_bytes`` of fp32 at a time; when the whole (N, V) fits, one piece without recomputation
    (the cost of a plain loop), else activation-checkpointed row chunks. ``cce``: the
    cut-cross-entropy kernel (logits never leave on-chip memory).
    """
    import torch
    from torch.utils.checkpoint import checkpoint

    if impl == "cce":
        return _cce_logprobs(hidden, weight, targets, bias=bias, softcap=softcap)
    vocab = weight.shape[0]
    rows = max(1, logit_bytes // (4 * vocab))
    if hidden.shape[0] <= rows:
        return _target_logprobs_full(hidden, weight, targets, bias, softcap)
    parts = [
        checkpoint(_target_logprobs_full, hidden[i : i + rows], weight, targets[i : i + rows], bias, softcap, use_reentrant=False)
        for i in range(0, hidden.shape[0], rows)
    ]
    return torch.cat(parts)


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


def next_token_loss(logprobs: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood in nats per token. logprobs: (N,)."""
    return -logprobs.mean() if logprobs.numel() else logprobs.sum()


def chunk_logprobs(logprobs: torch.Tensor, chunk: torch.Tensor, n_chunks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum token log-probabilities per chunk. logprobs: (N,), chunk: (N,) long (-1: in no chunk)
    -> (sums (n_chunks,) nats, token counts (n_chunks,))."""
    import torch

    keep = chunk >= 0
    index = chunk[keep]
    sums = torch.zeros(n_chunks, dtype=logprobs.dtype, device=logprobs.device).index_add(0, index, logprobs[keep])
    counts = torch.zeros(n_chunks, dtype=torch.long, device=logprobs.device).index_add(0, index, torch.ones_like(index))
    return sums, counts


# --- distances between the student's and the teacher's chunk log-likelihoods --------------------


@dataclass(frozen=True)
class Distance:
    name: str
    fn: Callable[..., torch.Tensor]
    summary: str


DISTANCES: dict[str, Distance] = {}


def register_distance(name: str, summary: str) -> Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]:
    def wrap(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        DISTANCES[name] = Distance(name, fn, summary)
        return fn

    return wrap


def get_distance(name: str) -> Distance:
    return lookup(DISTANCES, name, what="distillation distance")


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, stable at both ends (Mächler 2012)."""
    import torch

    return torch.where(x > -math.log(2), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


@register_distance("binary-kl", "KL between Bernoulli(p_teacher(chunk)) and Bernoulli(p_student(chunk)), the ALM choice")
def binary_kl(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Each chunk's likelihood as the probability of a yes/no event ("the text continues with this
    chunk"): KL(Bern(p_t) || Bern(p_s)) = p_t (log p_t - log p_s) + (1 - p_t)(log(1 - p_t) - log(1 - p_s)).
    Unlike a plain log ratio it does not push a chunk the teacher finds unlikely anywhere in
    particular, only away from certainty. student, teacher: (C,) log-likelihoods in nats -> (C,) nats."""
    import torch

    ceiling = -1e-6  # p = 1 exactly would make log(1 - p) infinite
    s, t = student.clamp(max=ceiling), teacher.clamp(max=ceiling)
    p_t = torch.exp(t)
    return p_t * (t - s) + (1 - p_t) * (log1mexp(t) - log1mexp(s))


@register_distance("abs-log", "|log p_student(chunk) - log p_teacher(chunk)|")
def abs_log(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """The absolute difference of the chunk log-likelihoods. (C,), (C,) -> (C,) nats."""
    return (student - teacher).abs()


def distillation_loss(
    student_logprobs: torch.Tensor,
    student_chunk: torch.Tensor,
    teacher_logprobs: torch.Tensor,
    teacher_chunk: torch.Tensor,
    n_chunks: int,
    *,
    distance: str = "binary-kl",
    temperature: float = 1.0,
) -> torch.Tensor:
    """Approximate likelihood matching: mean over aligned chunks of ``distance`` between the chunk
    log-likelihoods of student and teacher, both divided by ``temperature`` first (as tokenkit does:
    a temperature above 1 lifts the small probabilities of long chunks away from 0, where the binary
    KL has little gradient). Token vectors (N_s,), (N_t,) with chunk ids (-1: none); chunks with no
    token on either side are left out. Returns a scalar (nats per chunk at temperature 1)."""
    s, s_count = chunk_logprobs(student_logprobs, student_chunk, n_chunks)
    t, t_count = chunk_logprobs(teacher_logprobs.detach(), teacher_chunk, n_chunks)
    both = (s_count > 0) & (t_count > 0)
    if not bool(both.any()):
        return student_logprobs.sum() * 0.0
    return get_distance(distance).fn(s[both] / temperature, t[both] / temperature).mean()
