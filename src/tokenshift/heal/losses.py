"""The two healing objectives, from per-token log-probabilities.

Both objectives start from the same vector: the log-probability (nats) the model gives each target
token (:func:`tokenshift.modeling.logprobs.target_logprobs`, chunked or cut-cross-entropy, chosen by
:func:`resolve_loss_impl`). Next-token loss is its negated mean; the distillation loss sums it per
aligned chunk (see :mod:`.align`) and compares the sums with the teacher's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

# re-exported: heal's loss implementations are the shared ones
from ..modeling.logprobs import cce_available as cce_available
from ..modeling.logprobs import target_logprobs as target_logprobs
from ..registry import Registry

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

LossImpl = Literal["auto", "chunked", "cce"]


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


DISTANCES: Registry[Distance] = Registry("distillation distance")


def register_distance(name: str, summary: str) -> Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]:
    def wrap(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        DISTANCES.add(name, Distance(name, fn, summary))
        return fn

    return wrap


def get_distance(name: str) -> Distance:
    return DISTANCES.find(name)


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
