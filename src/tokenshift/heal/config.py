"""What a heal run does: the objective mix, the stages with their learning-rate schedules, the budget."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

Schedule = Literal["cosine", "linear", "constant"]
MixedPrecision = Literal["auto", "no", "bf16", "fp16"]
SCHEDULES = ("cosine", "linear", "constant")


@dataclass(frozen=True)
class Stage:
    """One training stage. ``train``: a registered stage kind (see :mod:`.stages`: new-rows,
    embeddings, all, lora). ``share``: its part of the step budget (shares are normalised).
    ``lr``: peak learning rate (None: the kind's default). ``warmup``: linear warm-up, a fraction
    of the stage's steps if below 1, else a number of steps. The rate then decays by ``schedule``
    to ``min_lr_ratio`` x peak at the stage's last step."""

    train: str
    share: float = 1.0
    lr: float | None = None
    warmup: float = 0.1
    schedule: Schedule = "cosine"
    min_lr_ratio: float = 0.1

    @classmethod
    def parse(cls, text: str) -> Stage:
        """``KIND[:KEY=VALUE]...``, e.g. ``embeddings:share=0.2:lr=1e-3`` or ``all:schedule=linear``."""
        kind, *options = text.strip().split(":")
        values: dict[str, Any] = {}
        names = {f.name for f in fields(cls)} - {"train"}
        for option in options:
            key, sep, value = option.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or key not in names:
                raise ValueError(f"stage option {option!r} in {text!r} must be KEY=VALUE with KEY one of "
                                 f"{', '.join(sorted(names))} (e.g. embeddings:share=0.2:lr=1e-3)")
            if key == "schedule":
                values[key] = value
                continue
            try:
                values[key] = float(value)
            except ValueError:
                raise ValueError(f"--stages {text!r}: stage {kind.strip()!r}, option {key}: must be a number, got {value!r}") from None
        stage = cls(train=kind.strip(), **values)
        stage.check()
        return stage

    def check(self) -> None:
        problems = []
        if not self.share > 0:
            problems.append(f"share must be positive, got {self.share}")
        if self.lr is not None and not self.lr > 0:
            problems.append(f"lr must be positive, got {self.lr}")
        if self.warmup < 0:
            problems.append(f"warmup must be >= 0, got {self.warmup}")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            problems.append(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if problems:
            raise ValueError(f"stage {self.train!r}: " + "; ".join(problems))

    def warmup_steps(self, steps: int) -> int:
        return min(steps, round(self.warmup * steps) if self.warmup < 1 else int(self.warmup))

    def lr_factor(self, step: int, steps: int) -> float:
        """Multiplier of the peak rate at ``step`` (0-based) of a stage of ``steps`` steps."""
        warm = self.warmup_steps(steps)
        if step < warm:
            return (step + 1) / warm
        if self.schedule == "constant":
            return 1.0
        progress = (step - warm + 1) / max(1, steps - warm)
        if self.schedule == "linear":
            return 1.0 - (1.0 - self.min_lr_ratio) * progress
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def parse_stages(text: str) -> tuple[Stage, ...]:
    """``embeddings:share=0.2,all`` -> stages, in order."""
    stages = tuple(Stage.parse(part) for part in text.split(",") if part.strip())
    if not stages:
        raise ValueError("--stages is empty; pass e.g. new-rows:share=0.2,all")
    return stages


DEFAULT_STAGES = (Stage("new-rows", share=0.2, lr=2e-3), Stage("all", share=0.8, lr=1e-4))


@dataclass(frozen=True)
class HealConfig:
    """A heal run. ``recipe``: a registered recipe (see :mod:`.recipes`), or ``auto``: when the model
    folder's ``transplant.json`` says which rows were copied and no ``steps`` are asked for, ``rows`` for
    an extension and ``rows-lora`` for a replacement tokenizer; else ``stages``.

    The budget: ``minutes`` (wall clock from the first evaluation to the last, a hard stop), and/or
    ``tokens`` (student tokens); the ``stages`` recipe also takes ``steps``. With ``minutes`` alone the
    stages recipe plans its steps from the time of one measured step.

    Never worse: the result is the best evaluated state worse than the start on no evaluation text
    (worse: by more than ``worse_tolerance``, relative), unless ``keep_last``.

    Phase recipes: ``distill_layer`` (decoder layers the token distillation runs through: a fraction
    of the depth, or a count), ``row_lr`` (its row-wise Adam rate), ``distill_batch``/``distill_piece_bytes``
    (pieces per step, bytes per piece); ``head_lr`` and ``head_piece_bytes`` for fit-head; ``lora_lr``
    (peak rate) for lora-distill, whose adapters take ``lora_rank``/``lora_alpha``.

    Objective: ``ntp_weight`` x next-token loss + ``distill_weight`` x distillation loss (nats per
    token and nats per chunk). Distillation needs a ``teacher`` (default: the model the transplant was
    made from, read from ``transplant.json``).

    ``batch_size``: sequences per step per process; ``seq_len``: student tokens per sequence.
    ``stochastok``: StochasTok (Sims et al. 2025) on the student's training tokens: a share p of each
    sequence's positions is drawn and split into vocabulary pairs that spell them (0: off), seeded by
    ``seed`` and the step, so a resumed run sees the same splits; evaluation stays canonical.
    ``eval_text``: held-out text specs for the bits-per-byte curve (default: the trailing training
    documents, up to ``eval_bytes``, are held out; ``eval_bytes`` 0 turns evaluation off). ``eval_every``/``checkpoint_every``: in steps
    (0: only at the start and end / never). ``checkpoint_dir``: default ``OUT.checkpoints`` beside the
    output folder; ``resume`` continues from its latest checkpoint.
    """

    text: tuple[str, ...]
    recipe: str = "auto"
    minutes: float | None = None
    keep_last: bool = False
    worse_tolerance: float = 0.001
    distill_layer: float = 0.47
    row_lr: float = 3e-3
    distill_batch: int = 16
    distill_piece_bytes: int = 200
    head_lr: float = 1e-3
    head_piece_bytes: int = 1000
    lora_lr: float = 5e-4
    teacher: str | None = None
    ntp_weight: float = 1.0
    distill_weight: float = 0.0
    distance: str = "binary-kl"
    distill_temperature: float = 1.0
    stages: tuple[Stage, ...] = DEFAULT_STAGES
    steps: int | None = None
    tokens: int | None = None
    batch_size: int = 8
    seq_len: int = 512
    max_bytes: int | None = None
    eval_text: tuple[str, ...] = ()
    eval_bytes: int = 32_000
    eval_every: int = 0
    log_every: int = 10
    checkpoint_every: int = 0
    checkpoint_dir: Path | None = None
    keep_checkpoints: int = 2
    resume: bool = False
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    lora: bool = False
    lora_rank: int = 16
    lora_alpha: float = 32.0
    gradient_checkpointing: bool = False
    loss: Literal["auto", "chunked", "cce"] = "auto"
    logit_bytes: int = 1 << 28
    mixed_precision: MixedPrecision = "auto"
    device: str = "auto"
    seed: int = 0
    trust_remote_code: bool = False
    stochastok: float = 0.0

    def check(self) -> None:
        """Raise one ValueError listing everything wrong."""
        problems = []
        if not self.text:
            problems.append("no training text: pass --text SPEC (e.g. wiki-fr:train)")
        from .recipes import RECIPES

        if self.recipe != "auto" and self.recipe not in RECIPES:
            problems.append(f"unknown recipe {self.recipe!r}; choose auto, {', '.join(RECIPES)}")
        if self.steps is None and self.tokens is None and self.minutes is None:
            problems.append("give a budget: --minutes M, --tokens N or --steps N")
        if self.steps is not None and self.tokens is not None:
            problems.append("give --steps or --tokens, not both (--minutes may cap either)")
        if self.steps is not None and self.recipe not in ("auto", "stages"):
            problems.append(f"recipe {self.recipe!r} takes --minutes or --tokens, not --steps")
        if self.resume and self.recipe not in ("auto", "stages"):
            problems.append(f"--resume continues the stages recipe only; recipe {self.recipe!r} runs for minutes and keeps no checkpoints")
        for name in ("steps", "tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(f"{name} must be at least 1, got {value}")
        if self.minutes is not None and not 0 < self.minutes <= 7 * 24 * 60:
            problems.append(f"minutes must be above 0 and at most 10,080 (a week), got {self.minutes}")
        # sizes that allocate: refused above what any machine holds (the CLI's types say the same)
        for name, high in (("batch_size", 65_536), ("seq_len", 1_048_576), ("distill_batch", 65_536), ("lora_rank", 4_096),
                           ("tokens", 10**13), ("steps", 10**9)):
            value = getattr(self, name)
            if value is not None and value > high:
                problems.append(f"{name} must be at most {high:,}, got {value:,}")
        if not self.distill_layer > 0:
            problems.append(f"distill_layer must be a fraction in (0, 1) or a layer count, got {self.distill_layer}")
        for name in ("row_lr", "head_lr", "lora_lr"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be positive, got {getattr(self, name)}")
        if self.distill_batch < 1 or self.distill_piece_bytes < 8 or self.head_piece_bytes < 8:
            problems.append(f"distill_batch must be >= 1 and piece bytes >= 8 (got {self.distill_batch}, "
                            f"{self.distill_piece_bytes}, {self.head_piece_bytes})")
        if not 0 <= self.worse_tolerance < 0.1:
            problems.append(f"worse_tolerance must be in [0, 0.1) (relative), got {self.worse_tolerance}")
        if self.eval_bytes < 0:
            problems.append(f"eval_bytes must be >= 0, got {self.eval_bytes}")
        if self.max_bytes is not None and self.max_bytes < 1:
            problems.append(f"max_bytes must be positive, got {self.max_bytes}")
        if self.lora and self.lora_rank < 1:
            problems.append(f"lora_rank must be at least 1, got {self.lora_rank}")
        if self.ntp_weight < 0 or self.distill_weight < 0 or self.ntp_weight + self.distill_weight <= 0:
            problems.append(f"objective weights must be >= 0 and not both 0 (ntp {self.ntp_weight}, distill {self.distill_weight})")
        if not self.distill_temperature > 0:
            problems.append(f"distill_temperature must be positive, got {self.distill_temperature}")
        if not 0 <= self.stochastok < 1:
            problems.append(f"stochastok must be a share in [0, 1) (e.g. 0.1), got {self.stochastok}")
        if self.stochastok and self.recipe != "stages":
            problems.append(f"--stochastok splits the training tokens of the stages recipe; recipe {self.recipe!r} does not use it "
                            "(pass --recipe stages, or recipe='stages' from Python)")
        if self.batch_size < 1 or self.seq_len < 2:
            problems.append(f"batch_size must be >= 1 and seq_len >= 2 (got {self.batch_size}, {self.seq_len})")
        if not self.stages:
            problems.append("no stages; pass e.g. --stages new-rows:share=0.2,all")
        from .losses import get_distance
        from .stages import get_stage_kind

        for stage in self.stages:
            try:
                stage.check()
                get_stage_kind(stage.train)
            except ValueError as exc:
                problems.append(str(exc))
        if self.distill_weight:
            try:
                get_distance(self.distance)
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError("invalid heal config: " + "; ".join(problems))

    def resolved(self) -> HealConfig:
        """The config with ``lora`` applied to the stages: stage 'all' becomes 'lora' (one is added if
        none trains the body)."""
        if not self.lora or any(s.train == "lora" for s in self.stages):
            return self
        stages = tuple(replace(s, train="lora") if s.train == "all" else s for s in self.stages)
        if not any(s.train == "lora" for s in stages):
            stages = (*stages, Stage("lora"))
        return replace(self, stages=stages)

    @property
    def objective(self) -> str:
        if self.distill_weight and self.ntp_weight:
            return "both"
        return "distill" if self.distill_weight else "ntp"

    def with_objective(self, objective: Literal["ntp", "distill", "both"], distill_weight: float = 1.0) -> HealConfig:
        """The weights for a named objective: ntp (1, 0), distill (0, 1), both (1, ``distill_weight``)."""
        weights = {"ntp": (1.0, 0.0), "distill": (0.0, 1.0), "both": (1.0, distill_weight)}
        if objective not in weights:
            raise ValueError(f"unknown objective {objective!r}; choose ntp, distill or both")
        ntp, distill = weights[objective]
        return replace(self, ntp_weight=ntp, distill_weight=distill)

    def to_json(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["checkpoint_dir"] = str(self.checkpoint_dir) if self.checkpoint_dir else None
        return payload

    # Fields that must match between a checkpoint and the run resuming from it (they decide the data
    # order, the stage plan and the shapes of the saved state).
    RESUME_KEYS = ("text", "teacher", "ntp_weight", "distill_weight", "distance", "distill_temperature", "stages", "steps", "tokens",
                   "batch_size", "seq_len", "max_bytes", "eval_text", "eval_bytes", "seed", "lora", "lora_rank", "lora_alpha", "minutes",
                   "stochastok")


def stage_steps(stages: tuple[Stage, ...], total: int) -> list[int]:
    """Split ``total`` steps over the stages by share (cumulative rounding; every stage >= 1 step
    when total allows)."""
    shares = [s.share for s in stages]
    bounds = [round(total * sum(shares[: i + 1]) / sum(shares)) for i in range(len(shares))]
    steps = [b - a for a, b in zip([0, *bounds[:-1]], bounds)]
    if total >= len(stages):
        for i, n in enumerate(steps):  # borrow a step from the largest stage for an empty one
            if n == 0:
                largest = max(range(len(steps)), key=steps.__getitem__)
                steps[largest] -= 1
                steps[i] = 1
    return steps
