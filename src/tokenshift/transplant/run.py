"""``tokenshift transplant``: give a pretrained causal LM a new tokenizer without training."""

from __future__ import annotations

import logging
import platform
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..storage import check_output_folder, write_folder, write_json
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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def new_matrix(old: Any, plan: TransplantPlan, method: Method, *, donor: Any, options: dict[str, Any]) -> Any:
    """Rows for every new id: exact/special copies, the method's composed rows, the mean elsewhere.
    old: (V_old, D) -> (V_new, D), in old's dtype."""
    import torch

    out = old.float().mean(0, keepdim=True).expand(plan.new_size, -1).clone()
    if len(plan.composed):
        out[plan.composed] = method.fn(old, plan, donor=donor, **options).float()
    out[plan.copy_new] = old[plan.copy_old].float()
    if not torch.isfinite(out).all():
        raise ValueError(f"method {method.name!r} produced non-finite embeddings; try another method or options")
    return out.to(old.dtype)


def _check_architecture(model: Any, name: str) -> None:
    missing = [attr for attr in ("get_input_embeddings", "get_output_embeddings") if getattr(model, attr, lambda: None)() is None]
    if missing:
        raise ValueError(f"model {name!r} ({type(model).__name__}) exposes no {' / '.join(missing)}; "
                         "tokenshift transplants causal LMs with an input embedding and an output head")


def _load_donor(spec: str, new: Tokenizer, device: str, trust_remote_code: bool) -> tuple[Any, Any]:
    """The donor's input and output matrices, indexed by the new tokenizer's ids."""
    from ..tokenizer import byte_vocabulary
    from ..modeling import load_model

    donor = load_model(spec, dtype="float32", device=device, trust_remote_code=trust_remote_code)
    if byte_vocabulary(donor.tokenizer) != byte_vocabulary(new) or donor.tokenizer.vocab_size != new.vocab_size:
        raise ValueError(f"donor {spec!r} uses tokenizer {donor.tokenizer.name!r}, which is not the target tokenizer "
                         f"{new.name!r} (vocabularies differ); pass a donor trained with the new tokenizer, or no donor")
    head = donor.model.get_output_embeddings()
    return donor.model.get_input_embeddings().weight.detach().cpu(), head.weight.detach().cpu() if head is not None else None


def transplant(
    model: str,
    tokenizer: str | Tokenizer,
    *,
    out: Path | None = None,
    config: TransplantConfig | None = None,
) -> tuple[Any, Tokenizer, TransplantReport]:
    """Return (model with the new tokenizer's embeddings, new tokenizer, report); with ``out`` also
    write a normal Hugging Face folder there (config, safetensors, tokenizer, transplant.json)."""
    import tokenizers
    import torch
    import transformers

    from .. import __version__
    from ..measure.digits import digit_scheme
    from ..modeling import load_model
    from ..modeling.load import model_location, resolve_device

    config = config or TransplantConfig()
    out = Path(out).expanduser() if out is not None else None
    if config.method != AUTO:
        check_options(config.method, config.options)
    if config.method != AUTO and config.donor and not get_method(config.method).uses_donor:
        raise ValueError(f"method {config.method!r} does not use a donor; drop --donor or use --method blend (or omp)")
    if config.pad_to_multiple_of is not None and config.pad_to_multiple_of < 1:
        raise ValueError(f"--pad-to-multiple-of must be at least 1 (1: no padding), got {config.pad_to_multiple_of}")
    if out is not None:
        location = Path(model_location(model))
        weights = sum(p.stat().st_size for p in location.glob("*.safetensors")) if location.is_dir() else 0
        inputs = [location, *([tokenizer] if isinstance(tokenizer, (str, Path)) else [])]
        check_output_folder(Path(out), inputs=inputs, need_bytes=weights)
    started = time.perf_counter()
    new = tokenizer if isinstance(tokenizer, Tokenizer) else load_tokenizer(tokenizer, trust_remote_code=config.trust_remote_code)
    loaded = load_model(model, dtype="float32", device="cpu", trust_remote_code=config.trust_remote_code)
    lm, old = loaded.model, loaded.tokenizer
    _check_architecture(lm, model)
    donor_in = donor_out = None
    if config.donor:
        donor_in, donor_out = _load_donor(config.donor, new, "cpu", config.trust_remote_code)

    warnings = []
    digits_old, digits_new = digit_scheme(old), digit_scheme(new)
    if digits_old != digits_new:
        warnings.append(f"the tokenizers split digits differently ({digits_old} vs {digits_new}): expect arithmetic to suffer until healed")
        logger.warning(warnings[-1])
    old_in = lm.get_input_embeddings().weight.detach()
    plan = build_plan(old, new, old_rows=old_in.shape[0])
    extension = plan.extends_old()
    if config.method == AUTO:
        method_name, auto_options, reason = choose_method(donor=bool(config.donor), extension=extension)
        options = {**auto_options, **config.options}
        check_options(method_name, options)
    else:
        method_name, options, reason = config.method, dict(config.options), "asked for"
    method = get_method(method_name)  # looked up once; every matrix below uses this entry
    tied = lm.get_output_embeddings().weight is lm.get_input_embeddings().weight or bool(getattr(lm.config, "tie_word_embeddings", False))
    device = resolve_device(config.device)  # the methods compute there (a GPU when present); the model stays on the CPU
    on_device = plan.to(device)

    def rows_for(old_rows: Any, donor_rows: Any) -> Any:
        donor_rows = None if donor_rows is None else donor_rows.to(device)
        return new_matrix(old_rows.to(device), on_device, method, donor=donor_rows, options=options).cpu()

    with torch.no_grad():
        embeddings = rows_for(old_in, donor_in)
        head = None if tied else rows_for(lm.get_output_embeddings().weight.detach(), donor_out if donor_out is not None else donor_in)
        pad = config.pad_to_multiple_of if config.pad_to_multiple_of and config.pad_to_multiple_of > 1 else None
        lm.resize_token_embeddings(plan.new_size, pad_to_multiple_of=pad, mean_resizing=False)
        rows = lm.get_input_embeddings().weight.shape[0]
        lm.get_input_embeddings().weight[: plan.new_size] = embeddings
        lm.get_input_embeddings().weight[plan.new_size :] = embeddings.mean(0)
        if head is not None:
            lm.get_output_embeddings().weight[: plan.new_size] = head
            lm.get_output_embeddings().weight[plan.new_size :] = head.mean(0)
    for target in (lm.config, lm.generation_config):
        target.bos_token_id = new.special.bos
        target.eos_token_id = new.special.eos
        target.pad_token_id = new.special.pad
    if new.chat_template is None and old.chat_template is not None and all(m in new.special.chat for m in old.special.chat):
        # the markers it names exist in the new vocabulary; a copy, so the caller's tokenizer is untouched
        new = new.replaced(chat_template=old.chat_template)
    report = TransplantReport(
        model=model, tokenizer=new.name, method=method_name, options=options, method_reason=reason, donor=config.donor,
        old_vocab=old.vocab_size, new_vocab=new.vocab_size, embedding_rows=rows, tied=tied, counts=plan.counts(),
        copied_ids=plan.copied_ranges(), extension=extension,
        digits_old=digits_old, digits_new=digits_new, warnings=warnings, seconds=round(time.perf_counter() - started, 3),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        versions={"tokenshift": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
                  "tokenizers": tokenizers.__version__, "python": platform.python_version()},
    )
    if out is not None:
        from ..cards import card_for_transplant, write_card

        source = str(tokenizer) if isinstance(tokenizer, (str, Path)) else None

        def write(tmp: Path) -> None:
            lm.save_pretrained(str(tmp), safe_serialization=True)
            new.save(tmp)
            write_json(tmp / "transplant.json", report.to_json())
            write_card(tmp, card_for_transplant(report, name=Path(out).name, tokenizer=source))

        write_folder(Path(out), write, point="transplant:written")
    return lm, new, report
