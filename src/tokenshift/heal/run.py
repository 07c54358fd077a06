"""``tokenshift heal``: recover a transplanted model's quality with short training, optionally distilling
from the original model across tokenizers. The output is a normal Hugging Face folder with ``heal.json``."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..data import TextSet, load_texts
from ..storage import check_output_folder, claim_folder, claim_output, write_folder, write_json
from ..tokenizer import Tokenizer
from .config import HealConfig, stage_steps
from .data import training_pieces
from .budget import Clock
from .loop import HealState, HealStatus, Progress, Session, train
from .stages import StageContext, get_stage_kind

logger = logging.getLogger(__name__)

# Memory a phase recipe needs besides the weights (activations of a 16-piece batch, the trained rows and
# their optimizer state, one matrix converted for a product): what the memory guard adds to the load.
RUN_BYTES = 10**9


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
    recipe: str = "stages"
    recipe_reason: str = ""
    minutes: float | None = None
    phases: list[dict[str, Any]] = field(default_factory=list)
    kept: dict[str, Any] = field(default_factory=dict)
    untied: bool = False
    added_parameters: int = 0
    dtype: str = "float32"  # the frozen body's (the stored dtype); trained rows are float32
    teacher_shares_body: bool = False  # the original was the student's body read through its own embedding
    evaluation_note: str = ""  # how the held-out evaluation was sized to the budget
    eval_bytes: int = 0  # held-out bytes per evaluation, over all sets

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def original_model(model_dir: str, teacher: str | None) -> str | None:
    """The model the transplant started from: ``teacher`` if given, else ``transplant.json``'s ``model``."""
    from .rows import transplant_record

    return teacher or transplant_record(model_dir).get("model")


def copied_rows(original: str | None, new: Tokenizer, *, trust_remote_code: bool, model_dir: str | None = None) -> Any:
    """New ids whose rows a transplant from ``original`` copied exactly (tensor of ids): read from
    ``MODEL_DIR/transplant.json`` (``copied_ids``) where it has them, else from the transplant plan."""
    from transformers import AutoConfig

    from .rows import copied_ids_from_report, ids_from_runs

    runs = copied_ids_from_report(model_dir) if model_dir is not None else None
    if runs is not None:
        return ids_from_runs(runs)
    if original is None:
        raise ValueError("which rows the transplant copied is unknown: the model folder has no transplant.json with copied_ids; pass --teacher ORIGINAL")

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
        if len(texts.documents) < 2:  # one big file (a manual exported whole): its paragraphs are the documents
            from ..data.documents import DOCUMENT_BYTES, as_documents

            texts = TextSet(texts.name, as_documents(texts.documents))
        if len(texts.documents) < 2:
            raise ValueError(f"text {texts.name!r} holds {texts.n_bytes:,} bytes, too little to hold some out for evaluation (at least "
                             f"{2 * DOCUMENT_BYTES:,} are needed); give more text or pass --eval-text")
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
    from ..modeling.compute import cpu_has_bf16

    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if device == "cpu" and cpu_has_bf16() else "no"


def _check_resume(saved: dict[str, Any], config: HealConfig, folder: Path) -> None:
    current = config.to_json()
    diffs = [f"{key}: checkpoint {saved.get(key)!r}, now {current[key]!r}" for key in HealConfig.RESUME_KEYS
             if json.loads(json.dumps(saved.get(key))) != json.loads(json.dumps(current[key]))]
    if diffs:
        raise ValueError(f"cannot resume from {folder}: the run's settings changed ({'; '.join(diffs)}); "
                         "resume with the same settings, or start over with a new --out")


def resolve_recipe(config: HealConfig, model: str) -> tuple[str, str]:
    """(recipe name, why): ``auto``, when the transplant's copied rows are known (its ``transplant.json``)
    and no step budget is asked for, is ``rows`` for an extension and ``rows-lora`` for a replacement
    tokenizer; else ``stages``."""
    from .rows import copied_ids_from_report, transplant_record

    if config.recipe != "auto":
        return config.recipe, "asked for"
    if config.steps is not None:
        return "stages", "auto: a step budget is a stages budget"
    if copied_ids_from_report(model) is None:
        return "stages", f"auto: {model} has no transplant.json with copied_ids, so the new rows are unknown"
    if transplant_record(model).get("extension"):
        return "rows", "auto: an extension (every old row copied, new rows known); rows is the recipe measured best for one on a CPU (docs/benchmarks/heal.md)"
    return "rows-lora", ("auto: a replacement tokenizer re-splits words the model knew into old tokens, which only the body can learn; "
                         "rows-lora is the recipe measured best for one on a CPU (docs/benchmarks/heal.md)")


def heal(
    model: str,
    *,
    config: HealConfig,
    out: Path | None = None,
    progress: Progress | None = None,
    clock: Clock = time.monotonic,
) -> tuple[Any, Tokenizer, HealReport]:
    """Heal ``model`` (a transplanted model folder, or any causal LM) on ``config.text``.

    check -> session -> train -> report -> write. Returns (trained model, its tokenizer, report);
    with ``out``, also writes a Hugging Face folder there when the run ends (config, safetensors,
    tokenizer, heal.json, and the transplant.json it came with), through a temporary folder. The
    result is never worse than the start on an evaluated text unless ``config.keep_last``.
    ``clock``: seconds, for the ``minutes`` budget (injectable for tests).
    """
    from ..modeling.load import model_location

    location = model_location(model)  # first: a mistyped model is the likeliest mistake
    config = config.resolved()
    config.check()
    recipe, reason = resolve_recipe(config, model)
    out = Path(out).expanduser() if out is not None else None
    if out is not None:
        check_output_folder(out, inputs=[location], need_bytes=_weights_bytes(Path(location)))
    if config.checkpoint_dir is not None:
        _check_checkpoint_dir(Path(config.checkpoint_dir), location)
    main = os.environ.get("RANK", "0") in ("", "0")  # under accelerate launch, the first process writes
    with claim_output(out) if out is not None and main else contextlib.nullcontext():
        if recipe == "stages":
            return _heal_stages(model, config, out=out, progress=progress, clock=clock, reason=reason)
        return _heal_phases(model, config, recipe, out=out, progress=progress, clock=clock, reason=reason)


def _check_checkpoint_dir(folder: Path, model_location: str) -> None:
    """``--checkpoint-dir``, before any work: a folder (an existing one holds an earlier run's
    checkpoints, for --resume) outside the model folder, where this process can write."""
    if not folder.exists():
        check_output_folder(folder, inputs=[model_location], option="--checkpoint-dir")
        return
    if not folder.is_dir():
        raise ValueError(f"--checkpoint-dir {folder} is a file, not a folder; choose a folder for the checkpoints")
    inside = Path(os.path.realpath(model_location))
    if Path(model_location).is_dir() and (Path(os.path.realpath(folder)) == inside or inside in Path(os.path.realpath(folder)).parents):
        raise ValueError(f"--checkpoint-dir {folder} lies inside the model folder {model_location}; keep checkpoints beside it")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"--checkpoint-dir {folder}: cannot write there; choose a folder you can write to")


def _weights_bytes(folder: Path) -> int:
    """The size of a model folder's weights (0 when it is not a local folder): about what its healed copy needs,
    plus an untied head."""
    return sum(path.stat().st_size for path in folder.glob("*.safetensors")) if folder.is_dir() else 0


def _versions() -> dict[str, str]:
    import tokenizers
    import torch
    import transformers

    from .. import __version__

    return {"tokenshift": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__, "accelerate": _accelerate_version(), "python": platform.python_version()}


def _write(out: Path, lm: Any, tokenizer: Tokenizer, model: str, report: HealReport, *, weights: Path | None = None) -> None:
    """Write the healed folder; a run that cannot write it keeps it in a rescue folder and says where.
    ``weights``: a safetensors file holding the model's full state (merged from FSDP shards) to write
    instead of ``lm``'s own tensors, which are then shards of it."""
    from ..cards import card_for_heal, write_card

    def write(tmp: Path) -> None:
        if weights is None:
            lm.save_pretrained(str(tmp), safe_serialization=True)
        else:
            _write_merged(lm, weights, tmp)
        tokenizer.save(tmp)
        if (Path(model) / "transplant.json").is_file():
            shutil.copy2(Path(model) / "transplant.json", tmp / "transplant.json")
        write_json(tmp / "heal.json", report.to_json())
        write_card(tmp, card_for_heal(report, name=out.name))

    write_folder(out, write, point="heal:written")


def _write_merged(lm: Any, weights: Path, tmp: Path) -> None:
    """``lm``'s config and generation config, and the tensors of ``weights`` (a merged FSDP state dict,
    keys as ``lm``'s ``state_dict``) copied byte for byte into ``model.safetensors`` as ``save_pretrained``
    names them (a tied head left out)."""
    from ..weights import Checkpoint
    from ..weights.write import OutTensor, write_shard

    merged = Checkpoint.open(weights.parent)
    tied = set(getattr(lm, "all_tied_weights_keys", None) or {}) if getattr(lm.config, "tie_word_embeddings", False) else set()
    tensors = [OutTensor.copied(entry) for name, entry in merged.entries.items() if name not in tied]
    write_shard(tmp / "model.safetensors", tensors, {"format": "pt"})
    lm.config.save_pretrained(str(tmp))
    if getattr(lm, "generation_config", None) is not None:
        lm.generation_config.save_pretrained(str(tmp))


def _fsdp_weights(accelerator: Any, lm: Any, folder: Path) -> Path:
    """Every process saves its shard of ``lm`` (FSDP's sharded state dict, ``torch.distributed.checkpoint``)
    under ``folder``; the main process merges them into normal safetensors with accelerate's
    ``merge_fsdp_weights``. Returns the merged ``model.safetensors`` (written on the main process)."""
    from accelerate.utils import merge_fsdp_weights, save_fsdp_model

    shards = folder / "fsdp-shards"
    merged = folder / "fsdp-merged"
    save_fsdp_model(accelerator.state.fsdp_plugin, accelerator, lm, str(shards))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        merge_fsdp_weights(str(shards / "pytorch_model_fsdp_0"), str(merged), safe_serialization=True)
    accelerator.wait_for_everyone()
    return merged / "model.safetensors"


def _heal_phases(model: str, config: HealConfig, recipe_name: str, *, out: Path | None, progress: Progress | None,
                 clock: Clock, reason: str) -> tuple[Any, Tokenizer, HealReport]:
    """A phase recipe (rows, distill-rows, fit-head): one process, one device."""
    import torch

    from ..modeling import load_model
    from ..modeling.load import LoadedModel, model_location, resolve_device
    from ..tokenizer import load_tokenizer
    from .budget import Deadline
    from .forward import check_head
    from .guard import NeverWorse, held_out_bits
    from .recipes import BODY_PHASES, PHASES, PhaseContext, get_recipe
    from .recipes.fit_head import is_tied, tie_head, untie_head
    from .rows import autocast, new_row_ids, transplant_record
    from .teacher import shares_body

    recipe = get_recipe(recipe_name)
    record = transplant_record(model)
    original = config.teacher or record.get("model")
    if record.get("copied_ids") is None or original is None:
        raise ValueError(f"recipe {recipe_name!r} trains the rows a transplant did not copy, and {model} has no transplant.json "
                         "naming its model and copied_ids: heal a folder written by tokenshift transplant, or use --recipe stages")
    started = time.perf_counter()
    device = resolve_device(config.device)
    mixed = _mixed_precision(config, device)
    documents, eval_sets = training_texts(config)
    # The body stays frozen in its stored dtype (float32 stays float32); the trained rows are float32.
    student = load_model(model, dtype="stored", device=device, trust_remote_code=config.trust_remote_code, extra_bytes=RUN_BYTES)
    check_head(student.model, model)
    lm = student.model
    lm.eval()  # no dropout: the phases fit rows to a deterministic model
    tied_at_start = is_tied(lm)
    copied = copied_rows(original, student.tokenizer, trust_remote_code=config.trust_remote_code, model_dir=model)
    new_ids = new_row_ids(copied, student.tokenizer.vocab_size)
    if not len(new_ids):
        raise ValueError(f"every token of {model}'s tokenizer had its row copied from {original}; there are no new rows to heal "
                         "(use --recipe stages to train other parameters)")
    extension = bool(record.get("extension"))
    original_dir = model_location(original)
    teacher_tokenizer = load_tokenizer(original_dir, trust_remote_code=config.trust_remote_code)
    if extension:  # an extension keeps every old id and row: the student with the old ids is the original model
        teacher = lm
    else:  # the original is the student's body read through its own embedding, where the bodies are the same
        from .teacher import shared_teacher

        teacher = None
        if Path(original_dir).is_dir() and Path(model).is_dir():
            teacher = shared_teacher(lm, model, original_dir, name=original, trust_remote_code=config.trust_remote_code)
        if teacher is None:
            teacher = load_model(original, dtype="stored", device=device, trust_remote_code=config.trust_remote_code).model.eval()
    deadline = Deadline(config.minutes * 60 if config.minutes else None, clock)
    eval_note = None
    if eval_sets and config.minutes:
        from .budget import fit_evaluation

        eval_sets, eval_note = fit_evaluation(LoadedModel(model=lm, tokenizer=student.tokenizer, name=model, device=device,
                                                          dtype=student.dtype), eval_sets, seconds=config.minutes * 60,
                                              evaluations=1 + len(recipe.phases))
        if eval_note:
            logger.warning(eval_note)
    curve: list[dict[str, Any]] = []
    phases: list[dict[str, Any]] = []
    eval_seconds = 0.0
    tokens_seen = 0

    def evaluate(label: str) -> dict[str, float]:
        nonlocal eval_seconds
        began = time.perf_counter()
        loaded = LoadedModel(model=lm, tokenizer=student.tokenizer, name=model, device=device, dtype=student.dtype)
        with torch.no_grad(), autocast(device, mixed):
            results = held_out_bits(loaded, eval_sets, when=label)
        eval_seconds += time.perf_counter() - began
        curve.append({"phase": label, "minutes": round(deadline.elapsed() / 60, 3), "tokens": tokens_seen, "bits_per_byte": results})
        logger.info("%s: %s", label, ", ".join(f"{k} {v:.4f} bpb" for k, v in results.items()))
        if progress is not None:
            progress(HealStatus(step=len(phases), steps=len(recipe.phases), stage=label, tokens=tokens_seen,
                                tokens_per_second=0.0, eta_seconds=max(0.0, deadline.remaining()), lr=0.0, evaluation=results,
                                minutes=deadline.elapsed() / 60))
        return results

    trains_body = any(name in BODY_PHASES for name, _ in recipe.phases)

    def body_parameters() -> dict[str, Any]:
        embedding = lm.get_input_embeddings().weight
        return {name: p for name, p in lm.get_decoder().named_parameters() if p is not embedding}

    def snapshot() -> dict[str, Any]:
        head = None if is_tied(lm) else lm.get_output_embeddings().weight.detach().clone()
        body = {name: p.detach().clone() for name, p in body_parameters().items()} if trains_body else None
        return {"embed": lm.get_input_embeddings().weight.detach().clone(), "head": head, "body": body}

    @torch.no_grad()
    def restore(state: dict[str, Any]) -> None:
        lm.get_input_embeddings().weight.copy_(state["embed"])
        if state["body"] is not None:
            for name, p in body_parameters().items():
                p.copy_(state["body"][name])
        if state["head"] is None:
            if not is_tied(lm):
                tie_head(lm)
        else:
            if is_tied(lm):
                untie_head(lm)
            lm.get_output_embeddings().weight.copy_(state["head"])

    def message(text: str) -> None:
        logger.info(text)
        if progress is not None:
            progress(HealStatus(step=len(phases), steps=len(recipe.phases), stage="", tokens=tokens_seen, tokens_per_second=0.0,
                                eta_seconds=max(0.0, deadline.remaining()), lr=0.0, message=text, minutes=deadline.elapsed() / 60))

    guard = NeverWorse(snapshot, restore, tolerance=config.worse_tolerance)
    context = PhaseContext(config=config, model=lm, tokenizer=student.tokenizer, teacher=teacher, teacher_tokenizer=teacher_tokenizer,
                           documents=documents, new_ids=new_ids, device=device, mixed=mixed, deadline=deadline, original=original,
                           log=message)
    if eval_sets:
        guard.offer("start", evaluate("start"))
    per_eval = eval_seconds
    shares = [share for _, share in recipe.phases]
    for index, (name, share) in enumerate(recipe.phases):
        left = deadline.remaining() - per_eval * (len(shares) - index)
        seconds = max(0.0, left) * share / sum(shares[index:]) if left != float("inf") else float("inf")
        tokens = int(config.tokens * share) if config.tokens else None
        message(f"{name}: {seconds / 60:.1f} min" if seconds != float("inf") else f"{name}: {tokens:,} tokens")
        result = PHASES[name](context, seconds=seconds, tokens=tokens)
        tokens_seen += result.tokens
        phases.append(asdict(result))
        message(f"{name}: {result.objective} {result.objective_start:.4f} -> {result.objective_end:.4f} in {result.seconds:.0f} s")
        if eval_sets:
            guard.offer(name, evaluate(name))
            # A phase that did not pay is undone before the next one starts (not with --keep-last, which
            # asks for the final state): measured on Gemma-3-270M adapted to man-fr, distill-rows raised the
            # validation pages' bits per byte 1.313 -> 1.364 and lora-ntp then trained from there.
            if index < len(recipe.phases) - 1 and not config.keep_last and (back_to := guard.rewind()) is not None:
                phases[-1]["undone"] = f"did not improve on {back_to}; the next phase started from {back_to}"
                message(f"{name} did not improve on {back_to} on the evaluated texts; the next phase starts from {back_to}")
    if tokens_seen == 0:
        spent = ", ".join(f"{p['name']} {p['seconds']:.0f} s" for p in phases)
        raise ValueError(f"heal trained nothing within --minutes {config.minutes:g}: the held-out evaluations took {eval_seconds:.0f} s "
                         f"and left the phases too little for one step ({spent}); ask for more minutes, or fewer held-out bytes "
                         "(--eval-bytes); nothing was written")
    kept = guard.finish(keep_last=config.keep_last)
    untied = tied_at_start and not is_tied(lm)
    added = int(lm.get_output_embeddings().weight.numel()) if untied else 0
    report = HealReport(
        model=model, teacher=original, tokenizer=student.tokenizer.name,
        objective={"name": recipe_name, "phases": [name for name, _ in recipe.phases]}, stages=[], steps=0, tokens=tokens_seen,
        teacher_tokens=0, bytes=0, truncated_tokens=0, train_seconds=round(sum(p["seconds"] for p in phases), 3),
        eval_seconds=round(eval_seconds, 3), seconds=round(time.perf_counter() - started, 3),
        tokens_per_second=tokens_seen / max(1e-9, sum(p["seconds"] for p in phases)) if phases else 0.0, flops_per_token=0.0,
        batch_size=config.distill_batch, seq_len=config.seq_len, processes=1, device=device,
        mixed_precision=mixed, loss_impl="", frozen_rows=int(student.tokenizer.vocab_size - len(new_ids)), seed=config.seed, resumed_at=[],
        curve=curve, losses=[], config=config.to_json(), versions=_versions(), recipe=recipe_name, recipe_reason=reason,
        minutes=config.minutes, phases=phases, kept=kept, untied=untied, added_parameters=added, dtype=student.dtype,
        teacher_shares_body=teacher is not lm and shares_body(teacher, lm), evaluation_note=eval_note or "",
        eval_bytes=sum(t.n_bytes for t in eval_sets),
    )
    if out is not None:
        _write(out, lm, student.tokenizer, model, report)
    return lm, student.tokenizer, report


def _heal_stages(model: str, config: HealConfig, *, out: Path | None, progress: Progress | None, clock: Clock,
                 reason: str) -> tuple[Any, Tokenizer, HealReport]:
    """The staged trainer: runs on whatever ``accelerate launch`` (or the plain process) provides: one
    GPU, several (DDP/FSDP), or the CPU. Checkpoints go to ``config.checkpoint_dir`` (default
    ``OUT.checkpoints``) and are removed once the output is written."""
    from ..modeling import load_model
    from ..modeling.load import resolve_device
    from .budget import Deadline
    from .checkpoint import latest_checkpoint
    from .forward import TokenLogprobs, check_head
    from .losses import resolve_loss_impl

    checkpoint_dir = config.checkpoint_dir or (out.parent / f"{out.name}.checkpoints" if out is not None else None)
    if checkpoint_dir is None and (config.checkpoint_every or config.resume):
        raise ValueError("checkpoints need a folder: pass out=... or config.checkpoint_dir")
    resume_from = latest_checkpoint(checkpoint_dir) if config.resume and checkpoint_dir is not None else None
    if config.resume and resume_from is None:
        logger.warning("--resume: no checkpoint in %s; starting from the beginning", checkpoint_dir)
    if resume_from is None and checkpoint_dir is not None and any(checkpoint_dir.glob("step-*")):
        raise FileExistsError(f"{checkpoint_dir} holds checkpoints of an earlier run; pass --resume to continue it, or remove the folder")
    original = original_model(model, config.teacher)
    if config.distill_weight and original is None:
        raise ValueError(f"distillation needs a teacher: pass --teacher ORIGINAL (no transplant.json in {model} names one)")
    identity = run_identity(model, original if config.distill_weight else None, trust_remote_code=config.trust_remote_code)
    if resume_from is not None:
        saved = json.loads((resume_from / "state.json").read_text(encoding="utf-8"))
        _check_resume(saved["config"], config, resume_from)
        _check_identity(saved.get("identity"), identity, resume_from)
    main = os.environ.get("RANK", "0") in ("", "0")
    with claim_folder(checkpoint_dir) if checkpoint_dir is not None and main and (config.checkpoint_every or config.resume) \
            else contextlib.nullcontext():
        return _run_stages(model, config, out=out, progress=progress, clock=clock, reason=reason, checkpoint_dir=checkpoint_dir,
                           resume_from=resume_from, original=original, identity=identity)


def run_identity(model: str, teacher: str | None, *, trust_remote_code: bool = False) -> dict[str, str | None]:
    """What a heal's checkpoints belong to, by content: the student's weights and tokenizer, the
    teacher's weights (:meth:`tokenshift.weights.Checkpoint.fingerprint`)."""
    import hashlib

    from ..modeling.load import model_location
    from ..tokenizer import load_tokenizer
    from ..weights import Checkpoint

    def weights(spec: str | None) -> str | None:
        if spec is None:
            return None
        location = Path(model_location(spec))
        return Checkpoint.open(location).fingerprint() if location.is_dir() else spec

    tokenizer = load_tokenizer(model_location(model), trust_remote_code=trust_remote_code)
    return {"student": weights(model), "tokenizer": hashlib.sha256(tokenizer.backend.to_str().encode()).hexdigest()[:32],
            "teacher": weights(teacher)}


def _check_identity(saved: dict[str, Any] | None, current: dict[str, Any], folder: Path) -> None:
    """Refuse to resume from checkpoints written by a heal of another model, tokenizer or teacher."""
    if saved is None:
        raise ValueError(f"cannot resume from {folder}: its checkpoint does not say which model it belongs to (written by an older "
                         "tokenshift); start over with a new --checkpoint-dir")
    differ = [what for what in ("student", "tokenizer", "teacher") if saved.get(what) != current.get(what)]
    if differ:
        raise ValueError(f"cannot resume from {folder}: its checkpoints belong to a heal of another {' and '.join(differ)} "
                         "(content hashes differ); resume with the run that wrote them, or start over with a new --checkpoint-dir")


def _run_stages(model: str, config: HealConfig, *, out: Path | None, progress: Progress | None, clock: Clock, reason: str,
                checkpoint_dir: Path | None, resume_from: Path | None, original: str | None,
                identity: dict[str, Any]) -> tuple[Any, Tokenizer, HealReport]:
    from ..modeling import load_model
    from ..modeling.load import resolve_device
    from .budget import Deadline
    from .forward import TokenLogprobs, check_head
    from .losses import resolve_loss_impl

    needs_rows = any(stage.train == "new-rows" for stage in config.stages)
    wants_rows = needs_rows or any(stage.train == "lora" for stage in config.stages)  # lora trains the new rows where known

    started = time.perf_counter()
    device = resolve_device(config.device)
    mixed = _mixed_precision(config, device)
    accelerator = _accelerator(device, mixed)
    logger.info("accelerate: %s, %d process(es), device %s", accelerator.distributed_type, accelerator.num_processes, accelerator.device)
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
    rows = None
    if wants_rows:
        try:
            rows = copied_rows(original, student.tokenizer, trust_remote_code=config.trust_remote_code, model_dir=model)
        except ValueError:
            if needs_rows:
                raise ValueError(f"stage 'new-rows' needs to know which rows the transplant copied, and {model} has no transplant.json "
                                 "with copied_ids or a model name: pass --teacher ORIGINAL, or use the stage 'embeddings'") from None

    pieces = training_pieces(documents, student.tokenizer, seq_len=config.seq_len)
    if not pieces:
        raise ValueError("the training text has no non-blank piece to train on")
    deadline = Deadline(config.minutes * 60 if config.minutes else None, clock)
    loss_impl = resolve_loss_impl(config.loss, str(accelerator.device))
    if config.steps is not None:
        total_steps = config.steps
    elif config.tokens is not None:
        sample = pieces[:: max(1, len(pieces) // 256)][:256]
        per_sequence = sum(min(len(ids), config.seq_len) for ids in student.tokenizer.encode_batch(sample)) / len(sample)
        total_steps = max(1, math.ceil(config.tokens / (per_sequence * config.batch_size * accelerator.num_processes)))  # type: ignore[operator]
    else:  # minutes only: plan the schedule from one timed step (the deadline still stops the run)
        step_seconds = _time_one_step(student.model, pieces, student.tokenizer, config, accelerator, loss_impl,
                                      teacher=teacher, teacher_tokenizer=teacher_tokenizer, teacher_len=teacher_len)
        total_steps = max(1, int(0.85 * config.minutes * 60 / step_seconds))  # type: ignore[operator]
    session = Session(
        config=config, accelerator=accelerator, model=student.model, tokenizer=student.tokenizer, teacher=teacher,
        teacher_tokenizer=teacher_tokenizer, teacher_len=teacher_len, pieces=pieces, eval_sets=eval_sets, total_steps=total_steps,
        context=StageContext(copied_rows=rows, lora_rank=config.lora_rank, lora_alpha=config.lora_alpha, weight_decay=config.weight_decay),
        checkpoint_dir=checkpoint_dir or Path("."), loss_impl=loss_impl, name=model, deadline=deadline, identity=identity,
    )
    logger.info("healing %s: %d pieces of <= %d bytes, %d steps of %d x %d sequences, objective %s", model, len(pieces),
                max(len(p.encode("utf-8")) for p in pieces),
                total_steps, config.batch_size, accelerator.num_processes, config.objective)
    state: HealState = train(session, resume_from=resume_from, progress=progress)
    if state.tokens == 0:
        raise ValueError(f"heal trained nothing{f' within --minutes {config.minutes:g}' if config.minutes else ''}: one step did not fit "
                         "the budget after the first evaluation; ask for more minutes or steps; nothing was written")

    lm = student.model
    if config.gradient_checkpointing:
        lm.gradient_checkpointing_disable()
    lm.eval()
    kept = _never_worse_stages(state, config)
    if kept["state"] == "start" and accelerator.is_main_process:  # the start is the model on disk: load it again
        lm = load_model(model, dtype="float32", device=str(accelerator.device), trust_remote_code=config.trust_remote_code).model.eval()
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
        curve=state.curve, losses=state.losses, config=config.to_json(), versions=_versions(), recipe="stages", recipe_reason=reason,
        minutes=config.minutes, kept=kept,
    )
    weights = None
    if out is not None and kept["state"] != "start" and _is_fsdp(accelerator):
        weights = _fsdp_weights(accelerator, lm, checkpoint_dir or out.parent / f"{out.name}.checkpoints")
    if out is not None and accelerator.is_main_process:
        _write(out, lm, student.tokenizer, model, report, weights=weights)
        if config.checkpoint_dir is None and checkpoint_dir is not None and checkpoint_dir.is_dir():
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
        elif weights is not None:
            shutil.rmtree(weights.parent.parent / "fsdp-shards", ignore_errors=True)
            shutil.rmtree(weights.parent, ignore_errors=True)
    accelerator.wait_for_everyone()
    return lm, student.tokenizer, report


def _is_fsdp(accelerator: Any) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.FSDP


def _accelerator(device: str, mixed: str) -> Any:
    """An Accelerator; a second run in the same process with another precision resets accelerate's
    process-wide state instead of failing (accelerate keeps one state per process)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    try:
        return Accelerator(cpu=device == "cpu", mixed_precision=mixed)
    except ValueError as exc:
        if "already been initialized" not in str(exc):
            raise
        AcceleratorState._reset_state(reset_partial_state=True)
        return Accelerator(cpu=device == "cpu", mixed_precision=mixed)


def _never_worse_stages(state: HealState, config: HealConfig) -> dict[str, Any]:
    """The never-worse rule over the stages trainer's first and last evaluation. The start is the
    model on disk, so nothing is copied: a kept ``start`` means the caller loads it again."""
    from .guard import NeverWorse

    guard = NeverWorse(lambda: None, lambda state: None, tolerance=config.worse_tolerance)
    if len(state.curve) >= 2:
        guard.offer("start", state.curve[0]["bits_per_byte"])
        guard.offer("end", state.curve[-1]["bits_per_byte"])
    return guard.finish(keep_last=config.keep_last)


def _time_one_step(model: Any, pieces: list[str], tokenizer: Tokenizer, config: HealConfig, accelerator: Any, loss_impl: str, *,
                   teacher: Any = None, teacher_tokenizer: Tokenizer | None = None, teacher_len: int | None = None) -> float:
    """Seconds of one step on a batch like the run's: the student's forward and backward pass, plus the
    teacher's forward pass when distilling (gradients dropped after). Timed on the second of two passes:
    the first pays one-off costs (allocations, thread pools), and timing it planned a 10-minute LoRA
    run here at 22 steps that ended after 4.3 minutes."""
    import torch

    from .data import make_batch
    from .forward import TokenLogprobs
    from .losses import next_token_loss

    wrapper = TokenLogprobs(model, impl=loss_impl, logit_bytes=config.logit_bytes)
    distilling = bool(config.distill_weight) and teacher is not None
    batch = make_batch(pieces[: config.batch_size], tokenizer, teacher_tokenizer if distilling else None, seq_len=config.seq_len,
                       teacher_len=teacher_len).to(accelerator.device)
    seconds = 0.0
    for _ in range(2):
        began = time.perf_counter()
        with accelerator.autocast():
            s = batch.student
            loss = next_token_loss(wrapper(s.input_ids, s.attention_mask, s.targets, s.scored))
            if distilling:
                t = batch.teacher
                with torch.no_grad():
                    teacher(t.input_ids, t.attention_mask, t.targets, t.scored)
        loss.backward()
        if accelerator.device.type == "cuda":  # CUDA runs asynchronously: without this only the kernel launches are timed
            torch.cuda.synchronize(accelerator.device)
        seconds = time.perf_counter() - began
        model.zero_grad(set_to_none=True)
    return max(seconds * 1.15, 1e-3)  # the optimizer step and batching on top


def _accelerate_version() -> str:
    import accelerate

    return accelerate.__version__

