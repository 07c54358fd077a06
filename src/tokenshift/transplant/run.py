"""``tokenshift transplant``: give a pretrained causal LM a new tokenizer without training.

Two ways through, one computation (:func:`new_rows`, on the same float32 rows either way):

    transplant_folder(MODEL, TOKENIZER, OUT)   streams: reads only the embedding and head tensors (and
                                               the donor's), writes their new rows in the stored dtype,
                                               copies every other tensor byte for byte (a shard without
                                               either is copied whole, or hard-linked with ``link``)
    transplant(MODEL, TOKENIZER)               in memory: the model loaded in float32, resized, returned

Memory of the streaming path: the embedding matrix in float32, its new rows, and one copy buffer; a
Llama-3.1-8B checkpoint (16 GB) passes through in a few GB (``bench/scale.py``).
"""

from __future__ import annotations

import logging
import os
import platform
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..storage import check_output_folder, claim_output, write_folder, write_json
from ..signals import kill_point
from ..tokenizer import Tokenizer, load_tokenizer
from .methods import AUTO, Method, check_options, choose_method, get_method
from .plan import TransplantPlan, build_plan

logger = logging.getLogger(__name__)


# Embedding rows are rounded up to a multiple of this, as resize_token_embeddings does: GPU matrix
# units, llama.cpp and vLLM expect it.
PAD_TO_MULTIPLE_OF = 64


@dataclass(frozen=True)
class TransplantConfig:
    """``method``: a registered method, or ``auto`` (see :func:`choose_method`). ``options`` go to the
    method (e.g. ``{"k": 8}`` for omp). ``pad_to_multiple_of``: round the embedding rows up (the extra
    rows get the mean row and are never produced by the tokenizer); None or 1: no padding."""

    method: str = AUTO
    donor: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    pad_to_multiple_of: int | None = PAD_TO_MULTIPLE_OF
    device: str = "auto"
    trust_remote_code: bool = False
    link: bool = False  # hard-link the shards that hold no embedding instead of copying them


@dataclass(frozen=True)
class TransplantReport:
    """Written beside the weights as ``transplant.json``."""

    model: str
    tokenizer: str
    method: str
    options: dict[str, Any]
    method_reason: str
    donor: str | None
    old_vocab: int
    new_vocab: int
    embedding_rows: int
    tied: bool
    counts: dict[str, int]
    copied_ids: list[list[int]]  # [start, stop) runs of new ids whose rows were copied from the old model
    extension: bool
    digits_old: str
    digits_new: str
    warnings: list[str]
    seconds: float
    peak_rss_mb: float
    versions: dict[str, str]
    dtype: str = "float32"  # the written rows' dtype: the checkpoint's own
    output_bytes: int = 0
    rewritten_files: list[str] = field(default_factory=list)  # shards holding a new matrix
    copied_files: list[str] = field(default_factory=list)  # shards copied whole
    linked_files: list[str] = field(default_factory=list)  # shards hard-linked

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# Rows gathered at once when copying: a full gather of an extension's 128k copied rows would be a third
# float32 copy of the matrix (2.1 GB for Llama-3.1-8B).
COPY_CHUNK = 8192


def new_matrix(old: Any, plan: TransplantPlan, method: Method, *, donor: Any, options: dict[str, Any],
               rows: int | None = None, dtype: Any = None) -> Any:
    """Rows for every new id: exact/special copies, the method's composed rows, the mean elsewhere;
    then ``rows - new_size`` padding rows holding the mean of the new rows.
    old: (V_old, D) float32 -> (rows or V_new, D) in ``dtype`` (default old's). Every value is computed
    in float32 and cast once; the output is the only matrix-sized allocation besides ``old``."""
    import torch

    dtype = dtype or old.dtype
    total = rows or plan.new_size
    mean = old.float().mean(0)
    composed = method.fn(old, plan, donor=donor, **options).float() if len(plan.composed) else None
    if not torch.isfinite(mean).all() or (composed is not None and not torch.isfinite(composed).all()):
        raise ValueError(f"method {method.name!r} produced non-finite embeddings; try another method or options "
                         "(or the model's embedding holds NaN or inf values)")
    out = torch.empty(total, old.shape[1], dtype=dtype, device=old.device)
    out[: plan.new_size] = mean.to(dtype)
    # the new rows' float32 sum, for the padding rows: means of the fallback, composed and copied rows
    fallback = plan.new_size - len(plan.composed) - len(plan.copy_new)
    summed = mean * fallback
    if composed is not None:
        out[plan.composed] = composed.to(dtype)
        summed = summed + composed.sum(0)
    for start in range(0, len(plan.copy_new), COPY_CHUNK):
        copied = old[plan.copy_old[start: start + COPY_CHUNK]].float()
        out[plan.copy_new[start: start + COPY_CHUNK]] = copied.to(dtype)
        summed = summed + copied.sum(0)
    if total > plan.new_size:
        out[plan.new_size:] = (summed / plan.new_size).to(dtype)
    return out


def padded_rows(new_size: int, pad_to_multiple_of: int | None) -> int:
    """Embedding rows for ``new_size`` ids rounded up to ``pad_to_multiple_of`` (None or 1: no padding)."""
    pad = pad_to_multiple_of if pad_to_multiple_of and pad_to_multiple_of > 1 else 1
    return -(-new_size // pad) * pad


def _check_config(config: TransplantConfig) -> None:
    """Everything about the options that can be refused before anything loads."""
    if config.method != AUTO:
        check_options(config.method, config.options)
    if config.method != AUTO and config.donor and not get_method(config.method).uses_donor:
        raise ValueError(f"method {config.method!r} does not use a donor; drop --donor or use --method blend (or omp)")
    if config.pad_to_multiple_of is not None and not 1 <= config.pad_to_multiple_of <= 65_536:
        raise ValueError(f"--pad-to-multiple-of must be from 1 (no padding) to 65,536, got {config.pad_to_multiple_of}")


@dataclass
class _Rows:
    """What both paths decide before any weights: the plan, the method and why, the warnings."""

    old: Tokenizer
    new: Tokenizer
    plan: TransplantPlan
    method: Method
    options: dict[str, Any]
    reason: str
    extension: bool
    digits_old: str
    digits_new: str
    warnings: list[str]
    device: str

    def rows_for(self, old_rows: Any, donor_rows: Any, *, rows: int, dtype: Any) -> Any:
        """The new matrix (rows, D) in ``dtype`` from ``old_rows`` (V_old, D) (see :func:`new_matrix`),
        computed on the device in float32, returned on the CPU."""
        import torch

        on_device = self.plan.to(self.device)
        donor_rows = None if donor_rows is None else donor_rows.to(self.device, dtype=torch.float32)
        with torch.no_grad():
            return new_matrix(old_rows.to(self.device, dtype=torch.float32), on_device, self.method, donor=donor_rows,
                              options=self.options, rows=rows, dtype=dtype).cpu()


def _decide(old: Tokenizer, new: Tokenizer, old_rows: int, config: TransplantConfig) -> _Rows:
    from ..measure.digits import digit_scheme
    from ..modeling.load import resolve_device

    warnings = []
    digits_old, digits_new = digit_scheme(old), digit_scheme(new)
    if digits_old != digits_new:
        warnings.append(f"the tokenizers split digits differently ({digits_old} vs {digits_new}): expect arithmetic to suffer until healed")
        logger.warning(warnings[-1])
    plan = build_plan(old, new, old_rows=old_rows)
    extension = plan.extends_old()
    if config.method == AUTO:
        method_name, auto_options, reason = choose_method(donor=bool(config.donor), extension=extension)
        options = {**auto_options, **config.options}
        check_options(method_name, options)
    else:
        method_name, options, reason = config.method, dict(config.options), "asked for"
    if new.chat_template is None and old.chat_template is not None and all(m in new.special.chat for m in old.special.chat):
        # the markers it names exist in the new vocabulary; a copy, so the caller's tokenizer is untouched
        new = new.replaced(chat_template=old.chat_template)
    return _Rows(old=old, new=new, plan=plan, method=get_method(method_name), options=options, reason=reason, extension=extension,
                 digits_old=digits_old, digits_new=digits_new, warnings=warnings, device=resolve_device(config.device))


def _report(model: str, rows: _Rows, config: TransplantConfig, *, embedding_rows: int, tied: bool, started: float,
            **written: Any) -> TransplantReport:
    import tokenizers
    import torch
    import transformers

    from .. import __version__

    return TransplantReport(
        model=model, tokenizer=rows.new.name, method=rows.method.name, options=rows.options, method_reason=rows.reason,
        donor=config.donor, old_vocab=rows.old.vocab_size, new_vocab=rows.new.vocab_size, embedding_rows=embedding_rows, tied=tied,
        counts=rows.plan.counts(), copied_ids=rows.plan.copied_ranges(), extension=rows.extension, digits_old=rows.digits_old,
        digits_new=rows.digits_new, warnings=rows.warnings, seconds=round(time.perf_counter() - started, 3),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        versions={"tokenshift": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
                  "tokenizers": tokenizers.__version__, "python": platform.python_version()},
        **written,
    )


def _donor_matrices(spec: str, new: Tokenizer, trust_remote_code: bool) -> tuple[Any, Any]:
    """The donor's input and output matrices (the output None when tied), indexed by the new tokenizer's
    ids: only those two tensors are read from its checkpoint."""
    from ..modeling.load import local_model_folder
    from ..tokenizer import byte_vocabulary
    from ..weights import Checkpoint, load_layout

    folder = local_model_folder(spec)
    donor_tokenizer = load_tokenizer(str(folder), trust_remote_code=trust_remote_code)
    if byte_vocabulary(donor_tokenizer) != byte_vocabulary(new) or donor_tokenizer.vocab_size != new.vocab_size:
        raise ValueError(f"donor {spec!r} uses tokenizer {donor_tokenizer.name!r}, which is not the target tokenizer "
                         f"{new.name!r} (vocabularies differ); pass a donor trained with the new tokenizer, or no donor")
    layout = load_layout(folder, name=spec, trust_remote_code=trust_remote_code)
    checkpoint = Checkpoint.open(folder)
    for name in (layout.embed, layout.head):
        if name is not None and name not in checkpoint:
            raise ValueError(f"donor {spec!r}: its weights hold no {name!r}; pass a complete donor model")
    import torch

    embed = checkpoint.read(layout.embed, torch.float32)
    head = checkpoint.read(layout.head, torch.float32) if layout.head is not None else None
    return embed, head


def transplant_folder(
    model: str,
    tokenizer: str | Tokenizer,
    out: str | Path,
    *,
    config: TransplantConfig | None = None,
) -> tuple[Tokenizer, TransplantReport]:
    """Write ``model`` with ``tokenizer``'s embeddings to the new folder ``out``, streaming (see the module
    docstring); return (the new tokenizer, the report also written as ``out/transplant.json``).

    The folder is a normal Hugging Face one in the checkpoint's own dtype and shard layout: config,
    generation config, safetensors (+ index), tokenizer, transplant.json, README.md (a model card).
    """
    from ..modeling.load import check_tokenizer_fits, local_model_folder, model_location
    from ..weights import Checkpoint, check_weights, load_layout

    config = config or TransplantConfig()
    out = Path(out).expanduser()
    _check_config(config)
    location = model_location(model)
    inputs = [p for p in (location, tokenizer if isinstance(tokenizer, (str, Path)) else None) if p is not None]
    check_output_folder(out, inputs=inputs)
    with claim_output(out):
        return _transplant_folder(model, tokenizer, out, config, inputs)


def _transplant_folder(model: str, tokenizer: str | Tokenizer, out: Path, config: TransplantConfig,
                       inputs: list[Any]) -> tuple[Tokenizer, TransplantReport]:
    from ..modeling.load import check_tokenizer_fits, local_model_folder
    from ..weights import Checkpoint, check_weights, load_layout

    started = time.perf_counter()
    folder = local_model_folder(model)
    checkpoint = Checkpoint.open(folder)
    layout = load_layout(folder, name=model, trust_remote_code=config.trust_remote_code)
    check_weights(layout, checkpoint, name=model)
    new = tokenizer if isinstance(tokenizer, Tokenizer) else load_tokenizer(tokenizer, trust_remote_code=config.trust_remote_code)
    old = load_tokenizer(str(folder), trust_remote_code=config.trust_remote_code)
    embed_entry = checkpoint.entries[layout.embed]
    check_tokenizer_fits(old, embed_entry.shape[0], model)
    rows = _decide(old, new, embed_entry.shape[0], config)
    tied = layout.head is None
    total_rows = padded_rows(rows.new.vocab_size, config.pad_to_multiple_of)
    width = embed_entry.shape[1]
    replaced = {layout.embed: (total_rows, width)}
    if layout.head is not None:
        replaced[layout.head] = (total_rows, checkpoint.entries[layout.head].shape[1])
    dropped = {name for name in layout.tied if name in checkpoint}  # a tied copy some checkpoints store anyway
    shards = _output_shards(checkpoint, replaced, dropped)
    link_ok = config.link and all(os.stat(h.path).st_dev == os.stat(_existing(out.parent)).st_dev for h in checkpoint.files)
    need = sum(size for _, size, whole in shards if not (whole and link_ok))
    check_output_folder(out, inputs=inputs, need_bytes=need)

    import torch

    donor_in = donor_out = None
    if config.donor:
        donor_in, donor_out = _donor_matrices(config.donor, rows.new, config.trust_remote_code)
    new_tensors: dict[str, Any] = {}
    for name, donor_rows in ((layout.embed, donor_in), (layout.head, donor_out if donor_out is not None else donor_in)):
        if name is None:
            continue
        dtype = getattr(torch, checkpoint.entries[name].torch_dtype)
        old_rows = checkpoint.read(name, torch.float32)  # the in-memory path's rows exactly: float32 of the stored values
        new_tensors[name] = rows.rows_for(old_rows, donor_rows, rows=total_rows, dtype=dtype)
        del old_rows
    del donor_in, donor_out
    stored_dtype = str(new_tensors[layout.embed].dtype).removeprefix("torch.")
    written: dict[str, list[str]] = {"rewritten_files": [], "copied_files": [], "linked_files": []}

    def write(tmp: Path) -> None:
        from ..weights.write import OutTensor, copy_file, write_shard

        weight_map: dict[str, str] = {}
        total = 0
        for index, (header, _, whole) in enumerate(shards, start=1):
            name = header.path.name
            if whole:
                linked = copy_file(header.path, tmp / name, link=link_ok)
                written["linked_files" if linked else "copied_files"].append(name)
                tensors = [OutTensor.copied(e) for e in header.entries.values()]
            else:
                tensors = [OutTensor.of(e.name, new_tensors[e.name]) if e.name in new_tensors else OutTensor.copied(e)
                           for e in header.entries.values() if e.name not in dropped]
                write_shard(tmp / name, tensors, header.metadata or None)
                written["rewritten_files"].append(name)
            weight_map.update({t.name: name for t in tensors})
            total += sum(t.nbytes for t in tensors)
            kill_point(f"transplant:shard-{index}")
        if checkpoint.index is not None:
            index_json = {**checkpoint.index, "metadata": {**(checkpoint.index.get("metadata") or {}), "total_size": total},
                          "weight_map": dict(sorted(weight_map.items()))}
            write_json(tmp / INDEX_FILE, index_json)
        _write_configs(folder, tmp, rows.new, total_rows, stored_dtype)
        rows.new.save(tmp)
        report = _report(model, rows, config, embedding_rows=total_rows, tied=tied, started=started, dtype=stored_dtype,
                         output_bytes=sum(p.stat().st_size for p in tmp.iterdir() if p.is_file()), **written)
        write_json(tmp / "transplant.json", report.to_json())
        from ..cards import card_for_transplant, write_card

        write_card(tmp, card_for_transplant(report, name=out.name, tokenizer=str(tokenizer) if isinstance(tokenizer, (str, Path)) else None))
        reports.append(report)

    reports: list[TransplantReport] = []
    try:
        write_folder(out, write, rescue=False, point="transplant:written")
    except OSError as exc:
        raise OSError(f"could not write {out} ({exc.strerror or exc}); nothing was left behind: it needs {need / 1e9:,.2f} GB, "
                      "free some space or choose another disk") from exc
    return rows.new, reports[-1]


INDEX_FILE = "model.safetensors.index.json"


def _existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists():
        path = path.parent
    return path


def _output_shards(checkpoint: Any, replaced: dict[str, tuple[int, int]], dropped: set[str]) -> list[tuple[Any, int, bool]]:
    """(input file header, bytes it will take in the output, copied whole?) for every input file, in order."""
    from ..weights.write import OutTensor, shard_bytes

    shards = []
    for header in checkpoint.files:
        touched = [name for name in header.entries if name in replaced or name in dropped]
        if not touched:
            shards.append((header, header.size, True))
            continue
        tensors = [OutTensor(e.name, e.dtype, replaced.get(e.name, e.shape), e) for e in header.entries.values() if e.name not in dropped]
        shards.append((header, shard_bytes(tensors, header.metadata or None), False))
    return shards


def _write_configs(source: Path, tmp: Path, new: Tokenizer, rows: int, dtype: str) -> None:
    """config.json and generation_config.json of ``source`` with the new vocabulary size, special ids
    and the stored dtype; every other key as it was."""
    import json

    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    ids = {"bos_token_id": new.special.bos, "eos_token_id": new.special.eos, "pad_token_id": new.special.pad}
    nested = config.get("text_config") if isinstance(config.get("text_config"), dict) else None
    for target in (config, nested):
        if target is None:
            continue
        if "vocab_size" in target or target is config and (nested is None or "vocab_size" not in nested):
            target["vocab_size"] = rows
        for key in ("dtype", "torch_dtype"):
            if key in target:
                target[key] = dtype
    config.setdefault("dtype", dtype)
    config.update(ids)
    write_json(tmp / "config.json", config)
    generation_path = source / "generation_config.json"
    generation = json.loads(generation_path.read_text(encoding="utf-8")) if generation_path.is_file() else {"_from_model_config": True}
    generation.update(ids)
    write_json(tmp / "generation_config.json", generation)


def transplant(
    model: str,
    tokenizer: str | Tokenizer,
    *,
    out: Path | None = None,
    config: TransplantConfig | None = None,
) -> tuple[Any, Tokenizer, TransplantReport]:
    """Return (model with the new tokenizer's embeddings, new tokenizer, report).

    With ``out``, the folder is written by :func:`transplant_folder` (streaming, the checkpoint's dtype
    and shards) and the model returned is that folder loaded in float32. Without, the model is loaded in
    float32 and changed in memory; its rows are the folder's before the cast to the stored dtype."""
    from ..modeling import load_model

    config = config or TransplantConfig()
    if out is not None:
        new, report = transplant_folder(model, tokenizer, out, config=config)
        return load_model(str(out), dtype="float32", device="cpu").model, new, report
    _check_config(config)
    started = time.perf_counter()
    new = tokenizer if isinstance(tokenizer, Tokenizer) else load_tokenizer(tokenizer, trust_remote_code=config.trust_remote_code)
    loaded = load_model(model, dtype="float32", device="cpu", trust_remote_code=config.trust_remote_code)
    lm = loaded.model
    _check_architecture(lm, model)
    old_in = lm.get_input_embeddings().weight.detach()
    rows = _decide(loaded.tokenizer, new, old_in.shape[0], config)
    donor_in = donor_out = None
    if config.donor:
        donor_in, donor_out = _donor_matrices(config.donor, rows.new, config.trust_remote_code)
    tied = lm.get_output_embeddings().weight is lm.get_input_embeddings().weight or bool(getattr(lm.config, "tie_word_embeddings", False))
    import torch

    total = padded_rows(rows.plan.new_size, config.pad_to_multiple_of)
    embeddings = rows.rows_for(old_in, donor_in, rows=total, dtype=torch.float32)
    head = None if tied else rows.rows_for(lm.get_output_embeddings().weight.detach(), donor_out if donor_out is not None else donor_in,
                                           rows=total, dtype=torch.float32)
    with torch.no_grad():
        lm.resize_token_embeddings(total, mean_resizing=False)
        lm.get_input_embeddings().weight.copy_(embeddings)
        if head is not None:
            lm.get_output_embeddings().weight.copy_(head)
    for target in (lm.config, lm.generation_config):
        target.bos_token_id = rows.new.special.bos
        target.eos_token_id = rows.new.special.eos
        target.pad_token_id = rows.new.special.pad
    return lm, rows.new, _report(model, rows, config, embedding_rows=total, tied=tied, started=started)


def _check_architecture(model: Any, name: str) -> None:
    missing = [attr for attr in ("get_input_embeddings", "get_output_embeddings") if getattr(model, attr, lambda: None)() is None]
    if missing:
        raise ValueError(f"model {name!r} ({type(model).__name__}) exposes no {' / '.join(missing)}; "
                         "tokenshift transplants causal LMs with an input embedding and an output head")
