"""Heal recipes, registered like the transplant methods: one file per recipe.

A recipe is a sequence of phases, each given a share of the budget (minutes or tokens):

    rows          distill-rows, then fit-head (the default for an extension: measured best on 2 CPU cores, see docs/benchmarks/heal.md)
    distill-rows  token distillation of the new input rows through a truncated model; head stays tied
    distill-body  distill-rows with LoRA on the truncated layers too (measured on a replacement: docs/benchmarks/heal.md)
    fit-head      the new output rows fitted on cached final hidden states (the head is untied)
    lora-distill  LoRA on the body plus the new rows, distilled from the original model (chunk likelihoods)
    rows-lora     distill-rows, then lora-distill (the default for a replacement tokenizer, see docs/benchmarks/heal.md)
    lora-ntp      LoRA on the body plus the new rows, next-token loss on the training text
    domain        distill-rows, then lora-ntp (the default of `tokenshift adapt`)
    stages        the staged trainer (next-token loss and/or cross-tokenizer distillation; any rows,
                  the whole body, LoRA), built for GPUs and several processes; see ``--stages``

Phase recipes run in one process on one device; ``heal()`` evaluates after every phase and keeps the
best state that is worse than the start on no evaluated text (the never-worse rule).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...registry import Registry

if TYPE_CHECKING:
    import torch

    from ...tokenizer import Tokenizer
    from ..budget import Deadline
    from ..config import HealConfig


@dataclass
class PhaseContext:
    """What a phase works on. ``teacher``: the original model, or the student itself for an extension
    (whose copied rows equal the original's); ``new_ids``: the rows the transplant did not copy;
    ``original``: the original model's name or folder."""

    config: HealConfig
    model: Any
    tokenizer: Tokenizer
    teacher: Any
    teacher_tokenizer: Tokenizer
    documents: list[str]
    new_ids: torch.Tensor
    device: str
    mixed: str
    deadline: Deadline
    original: str = ""
    log: Callable[[str], None] = lambda message: None


@dataclass
class PhaseResult:
    """``objective_start``/``objective_end``: the phase's own loss on data it held out, before and after."""

    name: str
    seconds: float
    tokens: int
    objective: str
    objective_start: float
    objective_end: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class PhaseClock:
    """A phase's share of the deadline: ``more(seen_tokens)`` is false once the next step (its time a
    moving average of the last ones) would end past ``seconds``, or the token budget is spent."""

    deadline: Deadline
    seconds: float
    tokens: int | None = None
    step_seconds: float = 0.0
    steps: int = 0

    def __post_init__(self) -> None:
        self.seconds = min(self.seconds, self.deadline.remaining())
        self.started = self.deadline.elapsed()
        self.step_started = self.started

    def elapsed(self) -> float:
        return self.deadline.elapsed() - self.started

    def more(self, seen_tokens: int) -> bool:
        if self.elapsed() + self.step_seconds > self.seconds or (self.tokens is not None and seen_tokens >= self.tokens):
            return False
        self.step_started = self.deadline.elapsed()
        return True

    def stepped(self) -> None:
        took = self.deadline.elapsed() - self.step_started
        self.steps += 1
        self.step_seconds = 0.8 * self.step_seconds + 0.2 * took if self.steps > 1 else took


def original_teacher(ctx: PhaseContext) -> Any:
    """The original model, frozen, with a body of its own: the context's teacher, or, where that shares
    the student's body (an extension's teacher is the student itself; a replacement's may be the
    student's body read through the original embedding, :mod:`tokenshift.heal.teacher`), the original
    loaded afresh in its stored dtype, for phases that change the student's body or whose softmax must
    not include the new rows."""
    from ..teacher import shares_body

    if not shares_body(ctx.teacher, ctx.model):
        return ctx.teacher
    from ...modeling import load_model

    teacher = load_model(ctx.original, dtype="stored", device=ctx.device, trust_remote_code=ctx.config.trust_remote_code).model
    return teacher.eval().requires_grad_(False)


PhaseFn = Callable[..., PhaseResult]  # (ctx, *, seconds: float, tokens: int | None) -> PhaseResult


@dataclass(frozen=True)
class Recipe:
    name: str
    phases: tuple[tuple[str, float], ...]  # (phase name, share of the budget); empty for "stages"
    summary: str


PHASES: Registry[PhaseFn] = Registry("heal phase")
BODY_PHASES: set[str] = set()  # phases that change the body's weights, not only embedding rows
RECIPES: Registry[Recipe] = Registry("heal recipe")


def register_phase(name: str, *, trains_body: bool = False) -> Callable[[PhaseFn], PhaseFn]:
    def wrap(fn: PhaseFn) -> PhaseFn:
        PHASES.add(name, fn)
        if trains_body:
            BODY_PHASES.add(name)
        return fn

    return wrap


def register_recipe(recipe: Recipe) -> Recipe:
    RECIPES.add(recipe.name, recipe)
    return recipe


def get_recipe(name: str) -> Recipe:
    return RECIPES.find(name)


from . import distill_rows, domain, fit_head, lora_distill, rows, stages  # noqa: E402,F401  (registration)
