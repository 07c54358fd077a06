"""Model cards: a Hugging Face ``README.md`` in every folder ``train``, ``transplant`` and ``heal`` write.

The front matter is what the hub reads (``library_name``, ``base_model``, ``license``, ``language``,
``tags``); the body says what was made, how and why, the command that made it, and the numbers its
report (``train.json`` / ``transplant.json`` / ``heal.json``) holds, and no others. Facts about the
base model come only from sources that state them: the asset registry, the base folder's own card, or
the base's card in the local Hugging Face cache; what none of them states is left out, not guessed.

    card = card_for_train(report, name="my-tokenizer")
    write_card(folder, card)        # folder/README.md
"""

from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from huggingface_hub import ModelCard

    from .domain.run import AdaptReport
    from .heal.run import HealReport
    from .train.run import TrainReport
    from .transplant.run import TransplantReport

logger = logging.getLogger(__name__)

CARD = "README.md"


@dataclass(frozen=True)
class BaseFacts:
    """What is known about a base model or tokenizer: its hub id, license and languages (None / empty:
    not known)."""

    hub_id: str | None = None
    license: str | None = None
    languages: tuple[str, ...] = ()


def base_facts(spec: str | None) -> BaseFacts:
    """Facts about ``spec`` (an asset name, a local folder or a hub id), offline.

    asset: the registry's ``hf_id`` and ``license``; local folder: its own card's front matter
    (a folder tokenshift wrote names the hub id it came from); hub id: the id itself, and the license
    of its card if the local Hugging Face cache holds it."""
    if not spec:
        return BaseFacts()
    from .assets.registry import ASSETS
    from .names import looks_like_hub_id

    asset = ASSETS.get(spec)
    if asset is not None:
        return BaseFacts(hub_id=asset.hf_id, license=asset.license)
    path = Path(spec).expanduser()
    if path.is_dir():
        meta = _front_matter(path / CARD)
        base = meta.get("base_model")
        own = BaseFacts(hub_id=base if isinstance(base, str) else None, license=_text(meta.get("license")),
                        languages=_languages(meta.get("language")))
        # A transplant written before cards existed still names the model it came from.
        original = _transplanted_from(path)
        if own.hub_id is None and original and original != spec:
            up = base_facts(original)
            return BaseFacts(hub_id=up.hub_id, license=own.license or up.license, languages=own.languages or up.languages)
        return own
    if looks_like_hub_id(spec):
        return BaseFacts(hub_id=spec, license=_text(_front_matter(_cached_card(spec)).get("license")))
    return BaseFacts()


def text_languages(specs: Iterable[str]) -> tuple[str, ...]:
    """Languages of text specs where the text is a language's asset (``wiki-fr:train`` -> ``fr``)."""
    from .data.wiki import SOURCE_FILES

    found = [spec.split(":")[0].removeprefix("wiki-") for spec in specs if spec.split(":")[0].startswith("wiki-")]
    return tuple(dict.fromkeys(lang for lang in found if lang in SOURCE_FILES))


def command_line() -> str | None:
    """The shell command that started this process when it is the tokenshift CLI (``tokenshift ...``, or
    ``python -m tokenshift.cli ...`` as ``accelerate launch`` runs it); None when tokenshift was called
    from Python."""
    main = sys.modules.get("__main__")
    module = getattr(getattr(main, "__spec__", None), "name", "") or ""
    if module.startswith("tokenshift"):
        return shlex.join(["python", "-m", module.removesuffix(".__main__"), *sys.argv[1:]])
    if Path(sys.argv[0]).name in ("tokenshift", "tokenshift.exe"):
        return shlex.join(["tokenshift", *sys.argv[1:]])
    return None


def card_for_train(report: TrainReport, *, name: str, command: str | None = None) -> ModelCard:
    """The card of a tokenizer folder written by :func:`tokenshift.train.train_tokenizer`. ``command``:
    the shell command that made it; None: this process's, when it is the CLI (:func:`command_line`)."""
    config = report.config
    extend = config.get("extend")
    base = base_facts(extend) if extend else BaseFacts()
    like = config.get("like")
    languages = tuple(dict.fromkeys([*text_languages(report.texts), *base.languages]))
    texts = ", ".join(f"`{t}`" for t in report.texts)
    if extend:
        from .train.run import DEFAULT_PROTECT

        protected = DEFAULT_PROTECT if config.get("protect") is None else tuple(config["protect"])
        made = (f"An extension of the tokenizer `{extend}` ({report.base_vocab_size:,} ids) to {report.vocab_size:,} ids, "
                f"trained by tokenshift on {report.documents:,} documents ({report.corpus_bytes:,} bytes) of {texts}. "
                "Every id of the base keeps its token; the new ids are merges learned on the text, chosen to change the "
                + (f"tokenization of {', '.join(f'`{t}`' for t in protected)} as little as possible." if protected else
                   "the text's tokenization; no text was protected."))
    else:
        made = (f"A {config.get('kind', 'bpe')} tokenizer of {report.vocab_size:,} ids trained by tokenshift on "
                f"{report.documents:,} documents ({report.corpus_bytes:,} bytes) of {texts}"
                + (f", dressed like `{like}` (its special tokens, roles and chat template)" if like else "") + ".")
    details = [f"digits split as `{report.digits}`"]
    if report.pre_tokenizer:
        details.append(f"pre-tokenization equal to llama.cpp's {', '.join(f'`{p}`' for p in report.pre_tokenizer)}")
    details.append(f"trained in {report.seconds:,.1f} s, peak memory {report.peak_rss_mb:,.0f} MB")
    measured = ""
    if report.token_changes:
        rows = "\n".join(f"| `{spec}` | {share:.2%} |" for spec, share in report.token_changes.items())
        from .train.run import CHANGE_SAMPLE_BYTES

        measured = ("## Measured\n\nShare of the base tokenizer's tokens the extension changes, on the leading "
                    f"{CHANGE_SAMPLE_BYTES:,} bytes of each text:\n\n| text | tokens changed |\n|---|---:|\n" + rows + "\n")
    body = _body(
        name=name, made=made, details=details, measured=measured,
        command=command, function="train.train_tokenizer", report_file="train.json", versions=report.versions,
        use=f'from transformers import AutoTokenizer\ntokenizer = AutoTokenizer.from_pretrained("{name}")',
    )
    tags = ["tokenshift", "tokenizer", "vocabulary-extension" if extend else "tokenizer-training"]
    return _card(library="tokenizers", base=base, relation=None, languages=languages, tags=tags, body=body)


def card_for_transplant(report: TransplantReport, *, name: str, tokenizer: str | None = None,
                        command: str | None = None) -> ModelCard:
    """The card of a model folder written by :func:`tokenshift.transplant.transplant`. ``tokenizer``:
    the spec the new tokenizer was loaded from, if any (its card's languages are carried)."""
    base = base_facts(report.model)
    languages = tuple(dict.fromkeys([*base_facts(tokenizer).languages, *base.languages])) if tokenizer else base.languages
    counts = ", ".join(f"{n:,} {kind}" for kind, n in report.counts.items())
    made = (f"`{report.model}` with the tokenizer `{report.tokenizer}` ({report.new_vocab:,} ids; the model had "
            f"{report.old_vocab:,}), made by tokenshift without training. "
            + ("The new tokenizer extends the old one: every old id keeps its row. " if report.extension else "")
            + f"Rows of ids the old tokenizer also has are copied; the others are built by the method "
            f"`{report.method}` ({report.method_reason})"
            + (f" with the donor `{report.donor}`" if report.donor else "")
            + f". How each of the new tokenizer's ids got its row: {counts}.")
    details = [f"{report.embedding_rows:,} embedding rows (padded past the vocabulary with the mean row)",
               "input and output embeddings tied" if report.tied else "untied output head, rebuilt the same way",
               f"digits split as `{report.digits_old}` before, `{report.digits_new}` after"]
    if report.options:
        details.append("method options: " + ", ".join(f"`{k}={v}`" for k, v in report.options.items()))
    details.extend(f"warning: {w}" for w in report.warnings)
    details.append(f"made in {report.seconds:,.1f} s, peak memory {report.peak_rss_mb:,.0f} MB")
    body = _body(
        name=name, made=made, details=details,
        measured="## Measured\n\nNothing was measured when this folder was written: a transplant is not trained, and its quality "
                 "is best known after `tokenshift evaluate` (bits per byte) and recovered with `tokenshift heal`.\n",
        command=command, function="transplant.transplant", report_file="transplant.json", versions=report.versions, use=_model_use(name),
    )
    tags = ["tokenshift", "tokenizer-transplant", *(["vocabulary-extension"] if report.extension else [])]
    # No base_model_relation: the hub's four (adapter, merge, quantized, finetune) do not name a
    # training-free change of vocabulary; the hub infers one from the files.
    return _card(library="transformers", base=base, relation=None, languages=languages, tags=tags, body=body)


def card_for_heal(report: HealReport, *, name: str, command: str | None = None) -> ModelCard:
    """The card of a model folder written by :func:`tokenshift.heal.heal`."""
    healed = base_facts(report.model)
    original = base_facts(report.teacher) if report.teacher else BaseFacts()
    base = BaseFacts(hub_id=healed.hub_id or original.hub_id, license=healed.license or original.license,
                     languages=tuple(dict.fromkeys([*text_languages(report.config.get("text") or ()), *healed.languages])))
    texts = ", ".join(f"`{t}`" for t in report.config.get("text") or ())
    if report.recipe == "stages":
        how = "stages " + ", ".join(f"`{s['train']}` ({s['steps']:,} steps, lr {s['lr']:g})" for s in report.stages)
        amount = f"{report.steps:,} steps, {report.tokens:,} tokens ({report.bytes:,} bytes)"
    else:
        how = "phases " + ", ".join(f"`{p}`" for p in report.objective.get("phases", []))
        amount = f"{report.tokens:,} tokens"
    made = (f"`{report.model}` healed by tokenshift: trained with the recipe `{report.recipe}` ({report.recipe_reason or 'asked for'}), "
            f"objective `{report.objective.get('name')}`, {how}, on {texts}: {amount}"
            + (f", distilling from `{report.teacher}`" if report.teacher else "") + ".")
    details = [f"{report.frozen_rows:,} embedding rows copied by the transplant, frozen where a stage or phase trains only the new rows"
               if report.frozen_rows else "no rows held frozen",
               f"device `{report.device}` x {report.processes}, mixed precision `{report.mixed_precision}`, seed {report.seed}",
               f"trained {report.train_seconds:,.0f} s, evaluated {report.eval_seconds:,.0f} s, {report.seconds:,.0f} s in all"]
    if report.untied:
        details.append(f"output head untied from the input embedding ({report.added_parameters:,} parameters added)")
    if report.resumed_at:
        details.append("resumed at step " + ", ".join(str(s) for s in report.resumed_at))
    body = _body(name=name, made=made, details=details, measured=_heal_measured(report),
                 command=command, function="heal.heal", report_file="heal.json", versions=report.versions, use=_model_use(name))
    return _card(library="transformers", base=base, relation="finetune", languages=base.languages,
                 tags=["tokenshift", "tokenizer-transplant", "heal"], body=body)


def card_for_adapt(report: AdaptReport, *, name: str) -> ModelCard:
    """A model card: what was adapted to what, the table, how it was made."""
    base = base_facts(report.model)
    rows = "\n".join(f"| {text} | {tpb} | {tpb_change} | {bpb} | {bpb_change} |" for text, tpb, tpb_change, bpb, bpb_change in report.summary())
    measured = ("## Measured\n\n| text | tokens per byte | change | bits per byte | change |\n|---|---|---|---|---|\n" + rows + "\n\n"
                + "\n".join(f"- {note}" for note in report.notes) + "\n")
    made = (f"`{report.model}` adapted by tokenshift to the text of {', '.join(f'`{t}`' for t in report.texts)}: its own tokenizer "
            f"extended by {report.new_tokens:,} tokens ({report.superwords:,} superwords), the model transplanted onto it and healed "
            f"for {report.minutes:g} minutes.")
    details = ["split by document: " + ", ".join(f"{k.replace('_', ' ')} {v['documents']:,} ({v['bytes']:,} bytes)" for k, v in report.split.items()),
               "no text is split into more tokens than the original tokenizer splits it"]
    body = _body(name=name, made=made, details=details, measured=measured, command=None, function="adapt", report_file="adapt.json",
                 versions=report.heal.get("versions", {}), use=f'from transformers import AutoModelForCausalLM, AutoTokenizer\n'
                 f'model = AutoModelForCausalLM.from_pretrained("{name}")\ntokenizer = AutoTokenizer.from_pretrained("{name}")')
    return _card(library="transformers", base=base, relation="finetune", languages=base.languages or text_languages(report.texts),
                 tags=["tokenshift", "domain-adaptation", "tokenizer-transplant"], body=body)


def write_card(folder: Path, card: ModelCard) -> Path:
    """Write ``card`` as ``folder/README.md`` (inside a writer's temporary folder, so it lands with the rest)."""
    path = Path(folder) / CARD
    card.save(str(path))
    return path


def _heal_measured(report: HealReport) -> str:
    """Bits per byte of every evaluated text at the first and last evaluation, and of the state kept."""
    if not report.curve:
        return "## Measured\n\nNothing was evaluated (no evaluation text).\n"
    first, last = report.curve[0], report.curve[-1]
    kept = report.kept.get("bits_per_byte") or {}
    label = _point_label
    rows = "\n".join(f"| {text} | {first['bits_per_byte'][text]:.4f} | {last['bits_per_byte'].get(text, float('nan')):.4f} | "
                     + (f"{kept[text]:.4f} |" if text in kept else "- |") for text in first["bits_per_byte"])
    return ("## Measured\n\nBits per byte (lower is better; tokenizer-independent) on the held-out evaluation text, at "
            f"{label(first)} and at {label(last)}, and of the state this folder holds (`{report.kept.get('state', 'last')}`: "
            f"{report.kept.get('reason', '')}):\n\n| text | {label(first)} | {label(last)} | kept |\n|---|---:|---:|---:|\n{rows}\n")


def _point_label(point: Mapping[str, Any]) -> str:
    return f"`{point['phase']}`" if "phase" in point else f"step {point.get('step', 0):,}"


def _model_use(name: str) -> str:
    return ("from transformers import AutoModelForCausalLM, AutoTokenizer\n"
            f'model = AutoModelForCausalLM.from_pretrained("{name}")\ntokenizer = AutoTokenizer.from_pretrained("{name}")')


def _body(*, name: str, made: str, details: list[str], measured: str, command: str | None, function: str, report_file: str,
          versions: Mapping[str, str], use: str) -> str:
    listed = "\n".join(f"- {d}" for d in details)
    made_with = ", ".join(f"{k} {v}" for k, v in versions.items())
    command = command or command_line()
    if command is not None:
        how = f"```sh\n{command}\n```"
    else:
        how = f"Made with `tokenshift.{function}(...)` from Python (the process ran `{shlex.join(sys.argv)}`)."
    return (f"# {name}\n\n{made}\n\n{listed}\n\n{measured}\n## How it was made\n\n{how}\n\n"
            f"The counts and measurements above come from `{report_file}` beside this card, which holds them all ({made_with}).\n\n"
            f"## Use\n\n```python\n{use}\n```\n")


def _card(*, library: str, base: BaseFacts, relation: str | None, languages: tuple[str, ...], tags: list[str], body: str) -> ModelCard:
    from huggingface_hub import ModelCard, ModelCardData

    extra = {"base_model_relation": relation} if relation and base.hub_id else {}
    data = ModelCardData(library_name=library, base_model=base.hub_id, license=base.license,
                         language=list(languages) or None, tags=tags, **extra)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def _front_matter(path: Path | None) -> dict[str, Any]:
    if path is None or not path.is_file():
        return {}
    from huggingface_hub import metadata_load

    try:
        return metadata_load(path) or {}
    except Exception as exc:  # a malformed card of someone else's is no reason to fail the write
        logger.warning("ignored the front matter of %s: %s", path, exc)
        return {}


def _transplanted_from(folder: Path) -> str | None:
    import json

    record = folder / "transplant.json"
    if not record.is_file():
        return None
    try:
        model = json.loads(record.read_text(encoding="utf-8")).get("model")
    except (ValueError, OSError, AttributeError):
        return None
    return model if isinstance(model, str) else None


def _cached_card(repo_id: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, CARD)
    except ValueError:
        return None
    return Path(found) if isinstance(found, str) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _languages(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()
