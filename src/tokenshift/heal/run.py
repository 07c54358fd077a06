"""``tokenshift heal``: recover a transplanted model's quality with short training, optionally distilling
from the original model across tokenizers. The output is a normal Hugging Face folder with ``heal.json``."""

from __future__ import annotations

import json
import logging
import math
import platform
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..data import TextSet, load_texts
from ..storage import atomic_folder, write_json
from ..tokenizer import Tokenizer
from .config import HealConfig, stage_steps
from .data import bytes_per_token, cut_pieces
from .loop import HealState, Progress, Session, train
from .stages import StageContext, get_stage_kind

logger = logging.getLogger(__name__)

PIECE_FILL = 0.9  # pieces aim at this fraction of seq_len tokens, so few are truncated


@dataclass(frozen=True)
class HealReport:
    """Written beside the weights as ``heal.json``. Tokens are student tokens; ``curve`` holds the
    bits per byte of every evaluation set at each evaluation step (step 0: before any training)."""

    model: str
    teacher: str | None
    tokenizer: str
    objective: dict[str, Any]
    stages: list[dict[str, Any]]
    steps: int
    tokens: int
    teacher_tokens: int
    bytes: int
    truncated_tokens: int
    train_seconds: float
    eval_seconds: float
    seconds: float
    tokens_per_second: float
    flops_per_token: float
    batch_size: int
    seq_len: int
    processes: int
    device: str
    mixed_precision: str
    loss_impl: str
    frozen_rows: int
    seed: int
    resumed_at: list[int]
    curve: list[dict[str, Any]]
    losses: list[dict[str, Any]]
    config: dict[str, Any]
    versions: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def original_model(model_dir: str, teacher: str | None) -> str | None:
    """The model the transplant started from: ``teacher`` if given, else ``transplant.json``'s ``model``."""
    if teacher:
        return teacher
    report = Path(model_dir) / "transplant.json"
    if report.is_file():
        return json.loads(report.read_text(encoding="utf-8")).get("model")
    return None


def copied_rows(original: str, new: Tokenizer, *, trust_remote_code: bool) -> Any:
    """New ids whose rows a transplant from ``original`` copied exactly (tensor of ids)."""
    from transformers import AutoConfig

    from ..modeling.load import model_location
    from ..tokenizer import load_tokenizer
    from ..transplant import build_plan

    location = model_location(original)
    old = load_tokenizer(location, trust_remote_code=trust_remote_code)
    config = AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code)
    rows = getattr(config, "vocab_size", None) or getattr(getattr(config, "text_config", None), "vocab_size", None) or old.vocab_size
    return build_plan(old, new, old_rows=int(rows)).copy_new


def training_texts(config: HealConfig) -> tuple[list[str], list[TextSet]]:
    """(training documents, evaluation sets). Without ``eval_text``, the trailing documents of each
    training text (up to ``eval_bytes`` over all, at most a tenth of each) are held out for evaluation;
    ``eval_bytes`` 0: no evaluation at all."""
    sets = [load_texts(spec, max_bytes=config.max_bytes) for spec in config.text]
    if not config.eval_bytes:
        return [d for s in sets for d in s.documents], []
    if config.eval_text:
        return [d for s in sets for d in s.documents], [load_texts(spec, max_bytes=config.eval_bytes) for spec in config.eval_text]
    documents: list[str] = []
    held: list[TextSet] = []
    budget = config.eval_bytes // len(sets)
    for texts in sets:
        if len(texts.documents) < 2:
            raise ValueError(f"text {texts.name!r} has a single document, so none can be held out for evaluation; pass --eval-text")
        limit = min(budget, texts.n_bytes // 10)
        cut, size = len(texts.documents), 0
        while cut > 1 and (cut == len(texts.documents) or size + len(texts.documents[cut - 1].encode("utf-8")) <= limit):
            cut -= 1
            size += len(texts.documents[cut].encode("utf-8"))
        documents.extend(texts.documents[:cut])
        held.append(TextSet(f"{texts.name} (held out)", texts.documents[cut:]))
    return documents, held


def training_flops_per_token(model: Any, seq_len: int) -> float:
    """Model FLOPs of one training token (forward + backward = 3 x forward): 2 per weight of every
    matrix multiply (body and output head; the input embedding is a lookup), plus attention scores
    and values, 2 x 2 x layers x seq_len x attention width (full, not halved for causality, as in the
    PaLM MFU convention)."""
    embed = model.get_input_embeddings().weight
    matmul = sum(p.numel() for p in model.parameters() if p.ndim >= 2 and p is not embed)
    head = model.get_output_embeddings()
    if head is not None and head.weight is embed:
        matmul += embed.numel()
    config = model.config
    layers = getattr(config, "num_hidden_layers", 0)
    width = getattr(config, "num_attention_heads", 0) * (getattr(config, "head_dim", None) or config.hidden_size // max(1, config.num_attention_heads))
    return 3.0 * (2.0 * matmul + 4.0 * layers * seq_len * width)


def _mixed_precision(config: HealConfig, device: str) -> str:
    import torch

    if config.mixed_precision != "auto":
        return config.mixed_precision
    return "bf16" if device.startswith("cuda") and torch.cuda.is_bf16_supported() else "no"


def _check_resume(saved: dict[str, Any], config: HealConfig, folder: Path) -> None:
    current = config.to_json()
    diffs = [f"{key}: checkpoint {saved.get(key)!r}, now {current[key]!r}" for key in HealConfig.RESUME_KEYS
             if json.loads(json.dumps(saved.get(key))) != json.loads(json.dumps(current[key]))]
    if diffs:
        raise ValueError(f"cannot resume from {folder}: the run's settings changed ({'; '.join(diffs)}); "
                         "resume with the same settings, or start over with a new --out")


def heal(
    model: str,
    *,
    config: HealConfig,
    out: Path | None = None,
    progress: Progress | None = None,
) -> tuple[Any, Tokenizer, HealReport]:
    """Heal ``model`` (a transplanted model folder, or any causal LM) on ``config.text``.

    Returns (trained model, its tokenizer, report); with ``out``, also writes a Hugging Face folder
    there when the run ends (config, safetensors, tokenizer, heal.json, and the transplant.json it
    came with). Checkpoints go to ``config.checkpoint_dir`` (default ``OUT.checkpoints``) and are
    removed once the output is written. Runs on whatever ``accelerate launch`` (or the plain process)
    provides: one GPU, several (DDP/FSDP), or the CPU.
    """
    import tokenizers
    import torch
    import transformers
    from accelerate import Accelerator

    from .. import __version__
    from ..modeling import load_model
    from ..modeling.load import resolve_device
    from .checkpoint import latest_checkpoint
    from .forward import TokenLogprobs, check_head
    from .losses import get_distance, resolve_loss_impl

    config.check()
    for stage in config.stages:
        get_stage_kind(stage.train)
    if config.distill_weight:
        get_distance(config.distance)
    out = Path(out) if out is not None else None
    if out is not None and out.exists():
        raise FileExistsError(f"{out} already exists; choose a new --out folder or remove it")
    checkpoint_dir = config.checkpoint_dir or (out.parent / f"{out.name}.checkpoints" if out is not None else None)
    if checkpoint_dir is None and (config.checkpoint_every or config.resume):
        raise ValueError("checkpoints need a folder: pass out=... or config.checkpoint_dir")
    resume_from = latest_checkpoint(checkpoint_dir) if config.resume and checkpoint_dir is not None else None
    if config.resume and resume_from is None:
        logger.warning("--resume: no checkpoint in %s; starting from the beginning", checkpoint_dir)
    if resume_from is None and checkpoint_dir is not None and any(checkpoint_dir.glob("step-*")):
        raise FileExistsError(f"{checkpoint_dir} holds checkpoints of an earlier run; pass --resume to continue it, or remove the folder")
    if resume_from is not None:
        _check_resume(json.loads((resume_from / "state.json").read_text(encoding="utf-8"))["config"], config, resume_from)

    original = original_model(model, config.teacher)
    if config.distill_weight and original is None:
        raise ValueError(f"distillation needs a teacher: pass --teacher ORIGINAL (no transplant.json in {model} names one)")
    needs_rows = any(stage.train == "new-rows" for stage in config.stages)
    if needs_rows and original is None:
        raise ValueError(f"stage 'new-rows' needs the original model to know which rows the transplant copied, and no "
                         f"transplant.json in {model} names one: pass --teacher ORIGINAL, or use the stage 'embeddings'")

    started = time.perf_counter()
    device = resolve_device(config.device)
    mixed = _mixed_precision(config, device)
    accelerator = Accelerator(cpu=device == "cpu", mixed_precision=mixed)
    documents, eval_sets = training_texts(config)
    student = load_model(model, dtype="float32", device="cpu", trust_remote_code=config.trust_remote_code)
    check_head(student.model, model)
    student.model.to(accelerator.device)
    student.model.train()
    if config.gradient_checkpointing:
        student.model.gradient_checkpointing_enable()

    teacher = teacher_tokenizer = teacher_len = None
    if config.distill_weight:
        loaded = load_model(original, dtype="bfloat16" if mixed == "bf16" else "float32", device=str(accelerator.device),
                            trust_remote_code=config.trust_remote_code)
        check_head(loaded.model, original)
        loaded.model.requires_grad_(False)
        teacher = TokenLogprobs(loaded.model, impl="chunked", logit_bytes=config.logit_bytes).eval()
        teacher_tokenizer = loaded.tokenizer
        positions = getattr(loaded.model.config, "max_position_embeddings", None) or 4 * config.seq_len
        teacher_len = int(min(positions, 4 * config.seq_len))
    rows = copied_rows(original, student.tokenizer, trust_remote_code=config.trust_remote_code) if needs_rows and original else None

    per_piece = max(4, int(config.seq_len * bytes_per_token(student.tokenizer, documents) * PIECE_FILL))
    pieces = cut_pieces(documents, target_bytes=per_piece)
    if not pieces:
        raise ValueError("the training text has no non-blank piece to train on")
    if config.steps is not None:
        total_steps = config.steps
    else:
        sample = pieces[:: max(1, len(pieces) // 256)][:256]
        per_sequence = sum(min(len(ids), config.seq_len) for ids in student.tokenizer.encode_batch(sample)) / len(sample)
        total_steps = max(1, math.ceil(config.tokens / (per_sequence * config.batch_size * accelerator.num_processes)))  # type: ignore[operator]
    session = Session(
        config=config, accelerator=accelerator, model=student.model, tokenizer=student.tokenizer, teacher=teacher,
        teacher_tokenizer=teacher_tokenizer, teacher_len=teacher_len, pieces=pieces, eval_sets=eval_sets, total_steps=total_steps,
        context=StageContext(copied_rows=rows, lora_rank=config.lora_rank, lora_alpha=config.lora_alpha, weight_decay=config.weight_decay),
        checkpoint_dir=checkpoint_dir or Path("."), loss_impl=resolve_loss_impl(config.loss, str(accelerator.device)), name=model,
    )
    logger.info("healing %s: %d pieces of <= %d bytes, %d steps of %d x %d sequences, objective %s", model, len(pieces), per_piece,
                total_steps, config.batch_size, accelerator.num_processes, config.objective)
    state: HealState = train(session, resume_from=resume_from, progress=progress)

    lm = student.model
    if config.gradient_checkpointing:
        lm.gradient_checkpointing_disable()
    lm.eval()
    steps = stage_steps(config.stages, total_steps)
    stages = [{**asdict(s), "lr": s.lr if s.lr is not None else get_stage_kind(s.train).default_lr, "steps": n} for s, n in zip(config.stages, steps)]
    report = HealReport(
        model=model, teacher=original if config.distill_weight else None, tokenizer=student.tokenizer.name,
        objective={"name": config.objective, "ntp_weight": config.ntp_weight, "distill_weight": config.distill_weight,
                   "distance": config.distance if config.distill_weight else None,
                   "temperature": config.distill_temperature if config.distill_weight else None},
        stages=stages, steps=state.step, tokens=state.tokens, teacher_tokens=state.teacher_tokens, bytes=state.bytes,
        truncated_tokens=state.truncated, train_seconds=round(state.train_seconds, 3), eval_seconds=round(state.eval_seconds, 3),
        seconds=round(time.perf_counter() - started, 3),
        tokens_per_second=state.tokens / state.train_seconds if state.train_seconds else 0.0,
        flops_per_token=training_flops_per_token(lm, config.seq_len), batch_size=config.batch_size, seq_len=config.seq_len,
        processes=accelerator.num_processes, device=str(accelerator.device), mixed_precision=mixed, loss_impl=session.loss_impl,
        frozen_rows=int(len(rows)) if rows is not None else 0, seed=config.seed, resumed_at=state.resumed_at,
        curve=state.curve, losses=state.losses, config=config.to_json(),
        versions={"tokenshift": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
                  "tokenizers": tokenizers.__version__, "accelerate": _accelerate_version(), "python": platform.python_version()},
    )
    if out is not None and accelerator.is_main_process:
        with atomic_folder(out) as tmp:
            lm.save_pretrained(str(tmp), safe_serialization=True)
            student.tokenizer.save(tmp)
            if (Path(model) / "transplant.json").is_file():
                shutil.copy2(Path(model) / "transplant.json", tmp / "transplant.json")
            write_json(tmp / "heal.json", report.to_json())
        if config.checkpoint_dir is None and checkpoint_dir is not None and checkpoint_dir.is_dir():
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
    accelerator.wait_for_everyone()
    return lm, student.tokenizer, report


def _accelerate_version() -> str:
    import accelerate

    return accelerate.__version__

