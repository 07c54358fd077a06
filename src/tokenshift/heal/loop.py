"""The training loop: stages in order, each with its own optimizer and learning-rate schedule, run
through Hugging Face ``accelerate`` (one GPU, DDP/FSDP over several, or the CPU), with periodic
bits-per-byte evaluation and atomic checkpoints that a killed run resumes from exactly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..data import TextSet
from ..tokenizer import Tokenizer
from ..tokenizer.encoders import StochasTok
from .budget import Deadline
from .config import HealConfig, stage_steps
from .data import batch_indices, make_batch
from .stages import StageContext, finish_stage, get_stage_kind

logger = logging.getLogger(__name__)


@dataclass
class HealState:
    """Everything a run has done so far; saved in every checkpoint. Tokens are student tokens."""

    step: int = 0
    stage: int = 0
    tokens: int = 0
    teacher_tokens: int = 0
    bytes: int = 0
    truncated: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    curve: list[dict[str, Any]] = field(default_factory=list)
    losses: list[dict[str, Any]] = field(default_factory=list)
    resumed_at: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> HealState:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in payload.items() if k in names})


@dataclass(frozen=True)
class HealStatus:
    """What the progress callback receives after every step. ``loss``/``ntp``/``distill`` (nats) are
    set on logging steps only; ``evaluation`` (text -> bits per byte) on evaluation steps."""

    step: int
    steps: int
    stage: str
    tokens: int
    tokens_per_second: float
    eta_seconds: float
    lr: float
    loss: float | None = None
    ntp: float | None = None
    distill: float | None = None
    evaluation: dict[str, float] | None = None
    checkpoint: str | None = None
    message: str | None = None
    minutes: float | None = None


Progress = Callable[[HealStatus], None]


@dataclass
class Session:
    """What the loop works on, built by :func:`tokenshift.heal.run.heal`."""

    config: HealConfig
    accelerator: Any
    model: Any  # the student, a transformers PreTrainedModel (never wrapped)
    tokenizer: Tokenizer
    teacher: Any  # forward.TokenLogprobs over the teacher, or None
    teacher_tokenizer: Tokenizer | None
    teacher_len: int | None
    pieces: list[str]
    eval_sets: list[TextSet]
    total_steps: int
    context: StageContext
    checkpoint_dir: Path
    loss_impl: str
    name: str
    deadline: Deadline = field(default_factory=lambda: Deadline(None))
    identity: dict[str, Any] = field(default_factory=dict)  # what the checkpoints belong to (content hashes)

    @property
    def steps_per_stage(self) -> list[int]:
        return stage_steps(self.config.stages, self.total_steps)


def evaluate_now(session: Session, state: HealState) -> dict[str, float]:
    """Bits per byte of the student on every evaluation set, appended to the curve (main process)."""
    from ..modeling.load import LoadedModel
    from .guard import held_out_bits

    from accelerate.utils import DistributedType, broadcast_object_list

    acc = session.accelerator
    started = time.perf_counter()
    results: dict[str, float] = {}
    # FSDP's forward pass gathers each layer from every process: all of them evaluate (the same text);
    # otherwise the main process evaluates and tells the others, so every process keeps the same state.
    everyone = acc.distributed_type == DistributedType.FSDP
    if acc.is_main_process or everyone:
        model = session.model
        was_training = model.training
        model.eval()
        loaded = LoadedModel(model=model, tokenizer=session.tokenizer, name=session.name, device=str(acc.device),
                             dtype=str(next(model.parameters()).dtype).removeprefix("torch."))
        with acc.autocast():
            results = held_out_bits(loaded, session.eval_sets, when=f"step {state.step}")
        model.train(was_training)
    if acc.num_processes > 1 and not everyone:
        results = broadcast_object_list([results], from_process=0)[0]
    acc.wait_for_everyone()
    state.eval_seconds += time.perf_counter() - started
    point = {"step": state.step, "minutes": round(session.deadline.elapsed() / 60, 3), "tokens": state.tokens, "bytes": state.bytes, "train_seconds": round(state.train_seconds, 3),
             "stage": session.config.stages[min(state.stage, len(session.config.stages) - 1)].train, "bits_per_byte": results}
    state.curve.append(point)
    logger.info("step %d: %s", state.step, ", ".join(f"{k} {v:.4f} bpb" for k, v in results.items()))
    return results


def _rng_state() -> dict[str, Any]:
    import torch

    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    return rng


def _set_rng_state(rng: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])


def _checkpoint(session: Session, state: HealState, wrapper: Any, optimizer: Any, rng: dict[str, Any] | None = None) -> str:
    from .checkpoint import save_checkpoint

    acc = session.accelerator
    path = session.checkpoint_dir / f"step-{state.step:08d}"
    model_state = acc.get_state_dict(wrapper)
    model_state = {k.removeprefix("model."): v for k, v in model_state.items()}
    if acc.is_main_process:
        save_checkpoint(session.checkpoint_dir, state.step, model_state=model_state, optimizer_state_dict=optimizer.state_dict(),
                        state={"heal": state.to_json(), "config": session.config.to_json(), "identity": session.identity},
                        rng=rng or _rng_state(),
                        keep=session.config.keep_checkpoints)
    acc.wait_for_everyone()
    return str(path)


def _checkpoint_on_interrupt(session: Session, state: HealState, wrapper: Any, optimizer: Any, rng: dict[str, Any] | None = None) -> None:
    """On Ctrl-C with checkpoints on: write one of ``state`` (whose step the weights are at) and say so."""
    from ..signals import Interrupted

    if not session.config.checkpoint_every or state.step == 0:
        return
    path = _checkpoint(session, state, wrapper, optimizer, rng=rng)
    raise Interrupted(f"checkpoint of step {state.step} written to {path}; continue with the same command and --resume") from None


def _step_loss(session: Session, wrapper: Any, batch: Any) -> tuple[Any, Any, Any]:
    """(total loss, next-token loss, distillation loss) of one batch; the teacher runs without grad."""
    import torch

    from .losses import distillation_loss, next_token_loss

    config = session.config
    s = batch.student
    logprobs = wrapper(s.input_ids, s.attention_mask, s.targets, s.scored)
    ntp = next_token_loss(logprobs)
    loss = config.ntp_weight * ntp
    distill = None
    if config.distill_weight:
        t = batch.teacher
        with torch.no_grad(), session.accelerator.autocast():
            teacher_logprobs = session.teacher(t.input_ids, t.attention_mask, t.targets, t.scored)
        distill = distillation_loss(logprobs, s.chunk[s.scored], teacher_logprobs, t.chunk[t.scored], batch.n_chunks,
                                    distance=config.distance, temperature=config.distill_temperature)
        loss = loss + config.distill_weight * distill
    return loss, ntp, distill


def train(session: Session, *, resume_from: Path | None = None, progress: Progress | None = None) -> HealState:
    """Run every stage to the end of the budget; returns the final state. With ``resume_from`` (a
    checkpoint folder), continue exactly where it stopped: same weights, optimizer moments, random
    state and batch sequence."""
    import torch
    from accelerate.utils import set_seed

    from ..signals import kill_point
    from .checkpoint import read_checkpoint
    from .forward import TokenLogprobs

    config, acc = session.config, session.accelerator
    state = HealState()
    saved_model = saved_opt = saved_rng = None
    if resume_from is not None:
        saved_model, saved_opt, payload, saved_rng = read_checkpoint(resume_from)
        state = HealState.from_json(payload["heal"])
        state.resumed_at.append(state.step)
        logger.info("resuming from %s at step %d", resume_from, state.step)
        if progress is not None:
            progress(HealStatus(step=state.step, steps=session.total_steps, stage="", tokens=state.tokens, tokens_per_second=0.0,
                                eta_seconds=0.0, lr=0.0, message=f"resuming from {resume_from}: step {state.step} of {session.total_steps}, "
                                                                 f"{state.tokens:,} tokens done"))
    elif session.eval_sets:
        evaluate_now(session, state)
    steps = session.steps_per_stage
    world, rank = acc.num_processes, acc.process_index
    splitter = StochasTok(session.tokenizer, config.stochastok, seed=config.seed) if config.stochastok else None
    run_started = time.perf_counter()
    for index, (stage, n_steps) in enumerate(zip(config.stages, steps)):
        first, last = sum(steps[:index]), sum(steps[: index + 1])
        if index < state.stage:
            continue
        state.stage = index
        kind = get_stage_kind(stage.train)
        set_seed(config.seed + index)  # the stage's own random draws (LoRA init) do not depend on where a run resumed
        trainable = kind.apply(session.model, session.context)
        peak = stage.lr if stage.lr is not None else kind.default_lr
        optimizer = torch.optim.AdamW(trainable.groups, lr=peak, betas=(0.9, 0.95), eps=1e-8)
        if saved_model is not None:
            session.model.load_state_dict(saved_model)
            optimizer.load_state_dict(saved_opt)
            _set_rng_state(saved_rng)
            saved_model = saved_opt = saved_rng = None
        wrapper = TokenLogprobs(session.model, impl=session.loss_impl, logit_bytes=config.logit_bytes)
        wrapper, optimizer = acc.prepare(wrapper, optimizer)
        wrapper.train()
        logger.info("stage %d (%s): steps %d-%d, %s trainable parameters, peak lr %g", index, stage.train, first + 1, last,
                    f"{trainable.n_params:,}", peak)
        params = [p for g in trainable.groups for p in g["params"]]
        while state.step < last:
            if session.deadline.expired():
                logger.info("the --minutes budget is spent at step %d of %d; stopping", state.step, session.total_steps)
                break
            started = time.perf_counter()
            factor = stage.lr_factor(state.step - first, n_steps)
            step_rng = _rng_state() if config.checkpoint_every else None  # what a checkpoint of this step's start holds
            try:
                for group in optimizer.param_groups:
                    group["lr"] = peak * factor
                indices = batch_indices(state.step, n_pieces=len(session.pieces), batch_size=config.batch_size, rank=rank,
                                        world=world, seed=config.seed)
                batch = make_batch([session.pieces[i] for i in indices], session.tokenizer, session.teacher_tokenizer,
                                   seq_len=config.seq_len, teacher_len=session.teacher_len, stochastok=splitter,
                                   stream=(state.step, rank)).to(acc.device)
                counts = torch.tensor([batch.tokens, batch.teacher_tokens, batch.bytes, batch.truncated], device=acc.device)
                counts = acc.reduce(counts, reduction="sum") if world > 1 else counts
                tokens, teacher_tokens, n_bytes, truncated = (int(x) for x in counts.tolist())
                kill_point(f"heal:step-{state.step + 1}")
                loss, ntp, distill = _step_loss(session, wrapper, batch)
                acc.backward(loss)
                if config.grad_clip:
                    acc.clip_grad_norm_(params, config.grad_clip)
            except KeyboardInterrupt:
                # Ctrl-C before the update: the weights are those of state.step, so a checkpoint of them is exact.
                optimizer.zero_grad(set_to_none=True)
                _checkpoint_on_interrupt(session, state, wrapper, optimizer, rng=step_rng)
                raise
            optimizer.step()
            state.step += 1  # right after the update, so that an interrupt never separates the two
            state.tokens += tokens
            state.teacher_tokens += teacher_tokens
            state.bytes += n_bytes
            state.truncated += truncated
            optimizer.zero_grad(set_to_none=True)
            state.train_seconds += time.perf_counter() - started
            try:
                rate = state.tokens / state.train_seconds if state.train_seconds else 0.0
                elapsed_steps = max(1, state.step - (state.resumed_at[-1] if state.resumed_at else 0))
                eta = (time.perf_counter() - run_started) / elapsed_steps * (session.total_steps - state.step)
                status: dict[str, Any] = {}
                if config.log_every and (state.step % config.log_every == 0 or state.step == session.total_steps):
                    status = {"loss": loss.detach().item(), "ntp": ntp.detach().item(), "distill": distill.detach().item() if distill is not None else None}
                    state.losses.append({"step": state.step, "tokens": state.tokens, "stage": stage.train, "lr": peak * factor, **status})
                if session.eval_sets and config.eval_every and state.step % config.eval_every == 0 and state.step < session.total_steps:
                    status["evaluation"] = evaluate_now(session, state)
                if config.checkpoint_every and state.step % config.checkpoint_every == 0 and state.step < session.total_steps:
                    status["checkpoint"] = _checkpoint(session, state, wrapper, optimizer)
                if progress is not None:
                    progress(HealStatus(step=state.step, steps=session.total_steps, stage=stage.train, tokens=state.tokens,
                                        tokens_per_second=rate, eta_seconds=eta, lr=peak * factor,
                                        minutes=session.deadline.elapsed() / 60, **status))
            except KeyboardInterrupt:
                # Ctrl-C while logging, evaluating or checkpointing: the weights are those of state.step.
                _checkpoint_on_interrupt(session, state, wrapper, optimizer)
                raise
        finish_stage(session.model, trainable)
        acc.free_memory()
        del wrapper, optimizer
        if session.deadline.expired():
            break
    state.stage = len(config.stages)
    if session.eval_sets:
        evaluate_now(session, state)
    return state
