"""``tokenshift adapt``: the same model, reading the user's own domain in fewer tokens.

One command for the whole path, judged on documents it never saw:

1. the user's text is split by document, by a hash of each: **held out** (:data:`HELD_OUT_SHARE`,
   only ever evaluated), **validation** (:data:`VALIDATION_SHARE`, for the heal's never-worse guard)
   and **adaptation** (the rest); long documents are cut into parts only after the split, and a text
   of too few documents (one big file) is split by its parts (:mod:`..data.documents`);
2. the model's own tokenizer is extended with subwords and superwords learned on the adaptation part
   (:mod:`..train.superwords`: old ids and merges kept, never a text split into more tokens);
3. the model is transplanted onto it training-free (``auto``), then healed for ``minutes`` on the
   adaptation part plus a share of general text (:data:`GENERAL_SHARE` of the bytes), so that general
   ability is kept, with the ``domain`` recipe (new rows, then LoRA on the body with the next-token
   loss); the heal keeps the best state evaluated on the validation documents and on general
   validation text, never one worse than the zero-shot start;
4. original, zero-shot and adapted models are evaluated on a sample spread over every held-out
   document and on general text's test split: tokens per byte and bits per byte, in one table.

The folder written is a normal Hugging Face model folder with ``adapt.json``, a card and ``adapt.html``
(and with ``gguf``, the GGUF beside the weights).
"""

from __future__ import annotations

import json
import logging
import resource
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..data import TextSet, load_texts
from ..data.documents import spread_sample
from ..storage import check_output_folder, write_folder, write_json

logger = logging.getLogger(__name__)

HELD_OUT_SHARE = 0.10  # of the documents, never trained or chosen on: the report's "unseen documents"
VALIDATION_SHARE = 0.05  # of the documents: the heal's never-worse guard
GENERAL_SHARE = 0.25  # of the heal's training bytes: general text, so that general ability is kept
DEFAULT_NEW_TOKENS = 8192
GENERAL_TEXT = "wiki-en"  # its :train split joins the heal, :validation guards it, :test is reported
EVAL_BYTES = 32_000  # per evaluated text: held-out blocks spread over every document, general text's leading documents (~30 s for a 135M model on a CPU)
# Words per superword at most: 8, not train's default of 4. Chosen on adapt's validation pages (SmolLM2,
# 1 MB of man-fr:train: 35.3% fewer tokens than the base with 8, 34.8% with 4; man-en, on a split that
# cut pages before splitting them: 14.7% with either):
# a domain repeats longer phrases than general text does ("voir la section", "the file descriptor is").
MAX_WORDS = 8
MIN_BYTES = 50_000  # less text than this cannot give held-out documents and new tokens worth training


@dataclass(frozen=True)
class AdaptConfig:
    """What :func:`adapt` does. ``text``: text specs of the domain (files, folders, globs, assets);
    ``new_tokens`` or ``vocab_size`` (default: :data:`DEFAULT_NEW_TOKENS` new ids); ``minutes``: the
    heal's wall-clock budget; ``general``: the general text asset kept in view (``wiki-en``);
    ``gguf``: also write ``model.gguf``."""

    text: tuple[str, ...]
    minutes: float = 5.0
    max_bytes: int | None = None  # of the domain text read, leading documents first (None: all of it)
    new_tokens: int | None = None
    vocab_size: int | None = None
    general: str = GENERAL_TEXT
    held_out: float = HELD_OUT_SHARE
    validation: float = VALIDATION_SHARE
    general_share: float = GENERAL_SHARE
    eval_bytes: int = EVAL_BYTES
    gguf: bool = False
    device: str = "cpu"
    seed: int = 0
    kind: str = "superbpe"  # "bpe": subwords only (the plain extension)
    recipe: str = "domain"  # the heal's recipe: new rows, then LoRA on the domain's next tokens (heal/recipes/domain.py)

    def check(self) -> None:
        if not self.text:
            raise ValueError("no domain text: pass --text FILE (your manuals, tickets, notes...)")
        if self.new_tokens is not None and self.vocab_size is not None:
            raise ValueError("pass --new-tokens or --vocab-size, not both")
        if not 0 < self.held_out < 0.5 or not 0 < self.validation < 0.5 or self.held_out + self.validation >= 0.5:
            raise ValueError(f"held-out {self.held_out} and validation {self.validation} shares must be above 0 and together below 0.5")
        if self.kind not in ("superbpe", "bpe"):
            raise ValueError(f"kind {self.kind!r}: choose superbpe (subwords and superwords) or bpe (subwords only)")
        if self.gguf and self.kind == "superbpe":
            # Refused before any work: llama.cpp's pre-tokenizers cut text at every word, so none reproduces a
            # superword tokenizer, and the export at the end would refuse it after the whole heal.
            raise ValueError("--gguf: llama.cpp's pre-tokenizers cut text at every word, so it cannot use superwords; "
                             "add --kind bpe (subwords only) for a GGUF, or export later with tokenshift export DIR --gguf F --pre NAME "
                             "(llama.cpp then never produces the superwords)")
        if self.max_bytes is not None and self.max_bytes < MIN_BYTES:
            raise ValueError(f"--max-bytes {self.max_bytes:,} reads less than adapt needs ({MIN_BYTES:,} bytes); raise it or leave it out")
        if not 0 <= self.general_share < 1:
            raise ValueError(f"general share {self.general_share} must be in [0, 1)")


@dataclass(frozen=True)
class AdaptRow:
    """One model on one text: ``tokens_per_byte`` and ``bits_per_byte`` (lower is better for both)."""

    text: str
    model: str
    tokens_per_byte: float
    bits_per_byte: float
    bytes: int


@dataclass
class AdaptReport:
    """Written as ``adapt.json``. ``split``: documents and bytes on each side; ``rows``: original,
    zero-shot and adapted models on the held-out documents and on general text."""

    model: str
    texts: list[str]
    split: dict[str, dict[str, int]]
    vocab_size: int
    new_tokens: int
    superwords: int
    rows: list[AdaptRow]
    train: dict[str, Any]
    transplant: dict[str, Any]
    heal: dict[str, Any]
    minutes: float
    seconds: float
    peak_rss_mb: float
    held_out_tokens_per_byte: dict[str, float] = field(default_factory=dict)  # over every held-out byte, not only the evaluated sample
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def row(self, text: str, model: str) -> AdaptRow:
        return next(r for r in self.rows if r.text == text and r.model == model)

    def summary(self) -> list[tuple[str, str, str, str, str]]:
        """(text, tokens/byte before → after, change, bits/byte before → after, change) per evaluated text."""
        lines = []
        for text in dict.fromkeys(r.text for r in self.rows):
            before, after = self.row(text, "original"), self.row(text, "adapted")
            lines.append((text, f"{before.tokens_per_byte:.4f} → {after.tokens_per_byte:.4f}",
                          f"{after.tokens_per_byte / before.tokens_per_byte - 1:+.1%}",
                          f"{before.bits_per_byte:.4f} → {after.bits_per_byte:.4f}", f"{after.bits_per_byte / before.bits_per_byte - 1:+.1%}"))
        return lines


def split_domain(texts: list[TextSet], config: AdaptConfig) -> tuple[list[str], list[str], list[str]]:
    """(adaptation, validation, held-out) documents, by a hash of each: no document on two sides.

    Whole documents are split when the text has enough of them to fill every side; long ones are cut
    (:func:`..data.documents.as_documents`) only afterwards, so two parts of one page never sit on
    two sides. A text of a few long documents (one manual exported as one file) is split by its parts."""
    from ..data.documents import as_documents

    documents = [doc for text in texts for doc in text.documents]
    size = sum(len(doc.encode("utf-8")) for doc in documents)
    if size < MIN_BYTES:
        raise ValueError(f"the domain text holds {size:,} bytes; adapt needs at least {MIN_BYTES:,} (about 15 pages) to learn new "
                         "tokens and keep some documents unseen; give more text")
    sides = _three_ways(documents, config)
    if sides is None:
        sides = _three_ways(as_documents(documents), config)
    if sides is None:
        raise ValueError(f"the domain text gives {len(as_documents(documents))} document(s), too few to hold {config.held_out:.0%} and "
                         f"{config.validation:.0%} of them out; give more documents (or one file with more paragraphs)")
    adaptation, validation, held = sides
    return as_documents(adaptation), as_documents(validation), as_documents(held)


def _three_ways(documents: list[str], config: AdaptConfig) -> tuple[list[str], list[str], list[str]] | None:
    """(adaptation, validation, held-out) by hash; None when a side would be empty."""
    from ..data.documents import split_documents

    kept, held = split_documents(documents, config.held_out, salt="adapt-held-out")
    adaptation, validation = split_documents(kept, config.validation / (1 - config.held_out), salt="adapt-validation")
    return (adaptation, validation, held) if held and validation and adaptation else None


def _write_jsonl(path: Path, documents: list[str]) -> str:
    path.write_text("".join(json.dumps({"text": doc}, ensure_ascii=False) + "\n" for doc in documents), encoding="utf-8")
    return str(path)


def _general_documents(spec: str, n_bytes: int) -> list[str]:
    return load_texts(spec, max_bytes=max(1, n_bytes)).documents if n_bytes > 0 else []


def _tokens_per_byte(tokenizer: Any, documents: list[str]) -> float:
    from ..train.transition import count_tokens

    return count_tokens(tokenizer.backend, documents) / max(1, sum(len(doc.encode("utf-8")) for doc in documents))


def _evaluate(loaded: Any, text_sets: list[TextSet], label: str, progress: Any) -> list[AdaptRow]:
    from ..evaluate import evaluate_loaded

    rows = []
    for text_set in text_sets:
        result = evaluate_loaded(loaded, text_set, progress=progress)
        rows.append(AdaptRow(text_set.name, label, round(result.tokens_per_byte, 6), round(result.bits_per_byte, 6), result.bytes))
    return rows


def heal_plan(config: AdaptConfig, adaptation: list[str], validation: list[str], scratch: Path, **overrides: Any) -> tuple[Any, int]:
    """The heal of an adaptation: the adaptation documents plus general text (``general_share`` of the
    bytes), guarded by the validation documents and general validation text; (HealConfig, general bytes)."""
    from ..heal import HealConfig

    adapted_bytes = sum(len(d.encode("utf-8")) for d in adaptation)
    general_bytes = round(adapted_bytes * config.general_share / (1 - config.general_share))
    heal_file = _write_jsonl(scratch / "heal.jsonl", adaptation + _general_documents(f"{config.general}:train", general_bytes))
    validation_file = _write_jsonl(scratch / "validation.jsonl", validation)
    settings = dict(text=(heal_file,), eval_text=(validation_file, f"{config.general}:validation"), minutes=config.minutes,
                    device=config.device, seed=config.seed, recipe=config.recipe)
    return HealConfig(**{**settings, **overrides}), general_bytes


def adapt(model: str, config: AdaptConfig, *, out: str | Path | None = None, progress: Any = None,
          heal_progress: Any = None) -> AdaptReport:
    """Adapt ``model`` to the domain of ``config.text`` (see the module docstring); with ``out``, write
    the adapted model folder there.

        >>> from tokenshift import AdaptConfig, adapt
        >>> report = adapt("smollm2-135m", AdaptConfig(text=("manuals/",), minutes=5), out="smollm2-manuals")  # doctest: +SKIP
        >>> text, tokens, tokens_change, bits, bits_change = report.summary()[0]  # the held-out documents  # doctest: +SKIP
    """
    from ..heal import heal
    from ..modeling import load_model
    from ..modeling.load import LoadedModel, model_location
    from ..tokenizer import load_tokenizer
    from ..train import TrainConfig, train_tokenizer
    from ..transplant import TransplantConfig, transplant

    config.check()
    started = time.perf_counter()
    location = model_location(model)
    if out is not None:
        out = Path(out).expanduser()
        check_output_folder(out, inputs=[location])
    domain = [load_texts(spec, max_bytes=config.max_bytes) for spec in config.text]
    adaptation, validation, held = split_domain(domain, config)
    base = load_tokenizer(location)
    vocab_size = config.vocab_size or base.vocab_size + (config.new_tokens or DEFAULT_NEW_TOKENS)
    held_set = TextSet("held-out documents", held)
    general_set = load_texts(f"{config.general}:test", max_bytes=config.eval_bytes)
    held_eval = TextSet("held-out documents", spread_sample(held, config.eval_bytes))
    eval_sets = [held_eval, general_set]
    with tempfile.TemporaryDirectory(prefix="tokenshift-adapt-") as scratch_name:
        scratch = Path(scratch_name)
        adaptation_file = _write_jsonl(scratch / "adaptation.jsonl", adaptation)
        tokenizer, train_report = train_tokenizer([adaptation_file], TrainConfig(vocab_size=vocab_size, extend=location, kind=config.kind,
                                                                                         max_words=MAX_WORDS),
                                                  out=scratch / "tokenizer")
        original = load_model(location, device=config.device)
        rows = _evaluate(original, eval_sets, "original", progress)
        del original
        moved_dir = scratch / "transplant"
        moved_model, moved_tokenizer, transplant_report = transplant(location, str(scratch / "tokenizer"), out=moved_dir,
                                                                     config=TransplantConfig(method="auto"))
        moved = LoadedModel(model=moved_model, tokenizer=moved_tokenizer, name="zero-shot", device=config.device, dtype="float32")
        rows += _evaluate(moved, eval_sets, "zero-shot", progress)
        del moved, moved_model
        heal_config, general_bytes = heal_plan(config, adaptation, validation, scratch)
        healed_dir = scratch / "healed"
        healed_model, healed_tokenizer, heal_report = heal(str(moved_dir), config=heal_config, out=healed_dir, progress=heal_progress)
        healed = LoadedModel(model=healed_model, tokenizer=healed_tokenizer, name="adapted", device=config.device, dtype="float32")
        rows += _evaluate(healed, eval_sets, "adapted", progress)
        del healed, healed_model
        facts = train_report.superbpe or {}
        whole_held = {"original": _tokens_per_byte(base, held), "adapted": _tokens_per_byte(tokenizer, held)}
        report = AdaptReport(
            model=model, texts=list(config.text),
            split={name: {"documents": len(docs), "bytes": sum(len(d.encode("utf-8")) for d in docs)}
                   for name, docs in (("adaptation", adaptation), ("validation", validation), ("held_out", held))},
            vocab_size=tokenizer.vocab_size, new_tokens=tokenizer.vocab_size - base.vocab_size, superwords=int(facts.get("superwords", 0)),
            rows=rows, train=train_report.to_json(), transplant=transplant_report.to_json(), heal=heal_report.to_json(),
            minutes=config.minutes, seconds=round(time.perf_counter() - started, 1),
            peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            held_out_tokens_per_byte={k: round(v, 6) for k, v in whole_held.items()},
            notes=[f"held-out documents: {len(held)} of the domain text's documents ({held_set.n_bytes:,} bytes), chosen by a hash of "
                   f"each, never trained on or chosen on; evaluated on {held_eval.n_bytes:,} bytes drawn evenly from all of them "
                   f"(blocks of about 2 KB, one in every {max(1, round(held_set.n_bytes / max(1, held_eval.n_bytes)))}); over every held-out byte, "
                   f"tokens per byte {whole_held['original']:.4f} → {whole_held['adapted']:.4f} "
                   f"({whole_held['adapted'] / whole_held['original'] - 1:+.1%})",
                   f"general text: {general_set.name}, leading {general_set.n_bytes:,} bytes; the heal trained on the adaptation "
                   f"documents plus {general_bytes:,} bytes of {config.general}:train",
                   f"the heal kept '{heal_report.kept.get('state')}': {heal_report.kept.get('reason')}"])
        for warning in worse_than_original(report):
            logger.warning(warning)
            report.notes.append(warning)
        if out is not None:
            _write_adapted(out, healed_dir, report, heal_report, gguf=config.gguf)
    return report


def worse_than_original(report: AdaptReport, tolerance: float = 0.01) -> list[str]:
    """One line per evaluated text where the adapted model's bits per byte are more than ``tolerance``
    above the original's: the heal never returns a state worse than the zero-shot start, but that
    start can itself be far worse than the original."""
    lines = []
    for text in dict.fromkeys(r.text for r in report.rows):
        before, after = report.row(text, "original").bits_per_byte, report.row(text, "adapted").bits_per_byte
        if after > before * (1 + tolerance):
            lines.append(f"on {text} the adapted model is {after / before - 1:+.1%} in bits per byte against the original "
                         f"({before:.4f} → {after:.4f}); give the heal more --minutes or more text, or keep the original")
    return lines


def _write_adapted(out: Path, healed_dir: Path, report: AdaptReport, heal_report: Any, *, gguf: bool) -> None:
    import shutil

    from ..report.document import write_page
    from ..cards import card_for_adapt, write_card
    from .page import adapt_page

    def write(tmp: Path) -> None:
        for item in healed_dir.iterdir():
            if item.is_file() and item.name not in ("README.md", "heal.html"):
                shutil.copy2(item, tmp / item.name)
        write_json(tmp / "adapt.json", report.to_json())
        write_card(tmp, card_for_adapt(report, name=out.name))
        write_page(adapt_page(report, heal_report), tmp / "adapt.html", option=None)
        if gguf:
            from ..export import export_gguf

            export_gguf(str(tmp), tmp / "model.gguf")

    write_folder(out, write, point="adapt:written")
