"""``tokenshift train``: one entry point for every kind of tokenizer training, with a report."""

from __future__ import annotations

import logging
import platform
import resource
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..registry import Registry
from ..storage import check_output_folder, write_folder, write_json
from ..tokenizer import Tokenizer
from ..tokenizer.core import roles_from_names
from .heldout import DEFAULT_SHARE
from .pretokenize import DIGIT_SCHEMES, word_pattern

logger = logging.getLogger(__name__)

Kind = Literal["bpe", "superbpe"]


# What an extension protects by default: the text most bases already read well.
DEFAULT_PROTECT = ("wiki-en:train",)
# How much of each text the report's token-change shares are measured on (leading documents).
CHANGE_SAMPLE_BYTES = 1_000_000
# Per-text SuperBPE savings come from the text's own held-out blocks when they hold this much (a
# 0.1-point difference in token counts needs ~100 KB); smaller shares fall back to the leading bytes.
SAVINGS_MIN_HELD_BYTES = 100_000


@dataclass(frozen=True)
class TrainConfig:
    """What to train. ``digits`` None: the ``like`` tokenizer's scheme if given, else group3-left.
    ``protect`` (extension only): text specs whose tokenization should change as little as possible;
    None: :data:`DEFAULT_PROTECT`, ``()``: nothing. SuperBPE: ``transition`` "auto" (chosen on the
    held-out slice), a fraction of the vocabulary or a size; ``held_out``: the share of the training
    text held out to choose and check it (0: train on everything, fixed transition, unchecked)."""

    vocab_size: int
    kind: Kind = "bpe"
    digits: str | None = None
    like: str | None = None
    extend: str | None = None
    protect: tuple[str, ...] | None = None
    special_tokens: tuple[str, ...] = ()
    transition: float | int | str = "auto"
    max_words: int = 4
    min_frequency: int = 2
    held_out: float = DEFAULT_SHARE

    @property
    def protected_texts(self) -> tuple[str, ...]:
        if self.extend is None:
            return ()
        return DEFAULT_PROTECT if self.protect is None else self.protect


@dataclass(frozen=True)
class TrainReport:
    """Written beside the tokenizer as ``train.json``. ``digits`` and ``pre_tokenizer`` are measured on
    the trained tokenizer (``pre_tokenizer``: the llama.cpp names whose pre-tokenization it equals).
    Extensions also report ``base_vocab_size`` and ``token_changes``: per training and protected
    text, the share of the base's tokens the extension changes (on the leading
    :data:`CHANGE_SAMPLE_BYTES` of each). SuperBPE reports ``superbpe`` (how the transition was
    chosen: :class:`.transition.TransitionReport`) and ``savings_vs_bpe``: per training text and on
    the whole held-out slice, 1 - tokens / tokens of the stage-1 BPE taken to the same size on the same
    text (written beside it as ``bpe/``). A text is measured on its own held-out blocks, text neither
    tokenizer was trained on, where they hold at least :data:`SAVINGS_MIN_HELD_BYTES`; else on its
    leading :data:`CHANGE_SAMPLE_BYTES` (trained on). ``savings_sample`` says which, per text."""

    config: dict[str, Any]
    texts: list[str]
    documents: int
    corpus_bytes: int
    vocab_size: int
    digits: str
    seconds: float
    peak_rss_mb: float
    pre_tokenizer: list[str] = field(default_factory=list)
    base_vocab_size: int | None = None
    token_changes: dict[str, float] = field(default_factory=dict)
    superbpe: dict[str, Any] | None = None
    savings_vs_bpe: dict[str, float] = field(default_factory=dict)
    savings_sample: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _CorpusCounter:
    documents: int = 0
    bytes: int = 0
    text: int = 0  # index of the training text being read

    def enter(self, index: int) -> None:
        self.text = index

    def wrap(self, documents: Iterable[str], on_document: Callable[[int], None] | None) -> Iterable[str]:
        for doc in documents:
            size = len(doc.encode("utf-8"))
            self.documents += 1
            self.bytes += size
            if on_document is not None:
                on_document(size)
            yield doc


@dataclass(frozen=True)
class Trained:
    """A trainer's output: the backend, and for a checked SuperBPE the baseline BPE, the choice report
    and the held-out documents it was measured on."""

    backend: Any
    bpe: Any = None
    transition: Any = None
    held_out: list[str] = field(default_factory=list)
    held_out_sources: list[int] = field(default_factory=list)  # index into the training texts, per held-out block


TRAINERS: Registry[Callable[..., Trained]] = Registry("kind")


def _register(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        TRAINERS.add(kind, fn)
        return fn

    return wrap


@_register("bpe")
def _train_bpe(documents: Iterable[str], config: TrainConfig, digits: str, specials: list[str], show_progress: bool,
               length: int | None, source: Callable[[], int] | None = None) -> Trained:
    from .bpe import train_bpe

    return Trained(train_bpe(documents, vocab_size=config.vocab_size, pattern=word_pattern(digits), special_tokens=specials,
                             min_frequency=config.min_frequency, show_progress=show_progress, length=length))


@_register("superbpe")
def _train_superbpe(documents: Iterable[str], config: TrainConfig, digits: str, specials: list[str], show_progress: bool,
                    length: int | None, source: Callable[[], int] | None = None) -> Trained:
    from .superbpe import train_superbpe, train_superbpe_checked

    if config.held_out == 0:
        return Trained(train_superbpe(documents, vocab_size=config.vocab_size, digits=digits, special_tokens=specials,
                                      transition=config.transition, max_words=config.max_words,  # type: ignore[arg-type]
                                      min_frequency=config.min_frequency, show_progress=show_progress, length=length))
    checked = train_superbpe_checked(documents, vocab_size=config.vocab_size, digits=digits, special_tokens=specials,
                                     transition=config.transition, held_out_share=config.held_out, max_words=config.max_words,
                                     min_frequency=config.min_frequency, show_progress=show_progress, length=length,
                                     source=source)
    return Trained(checked.tokenizer, checked.bpe, checked.report, checked.held_out, checked.held_out_sources)


# The Rust trainer allocates per id up front; beyond this it can abort the process instead of raising.
MAX_VOCAB_SIZE = 1 << 21


def _validate(config: TrainConfig) -> None:
    TRAINERS.find(config.kind)
    if config.digits is not None and config.digits not in DIGIT_SCHEMES:
        raise ValueError(f"unknown digit scheme {config.digits!r}; choose one of {', '.join(DIGIT_SCHEMES)}")
    if config.vocab_size > MAX_VOCAB_SIZE:
        raise ValueError(f"--vocab-size {config.vocab_size:,} is larger than tokenshift trains ({MAX_VOCAB_SIZE:,}; the largest "
                         "tokenizers in use have about 262k ids); ask for fewer")
    floor = 256 + len(config.special_tokens)
    if config.extend is None and config.vocab_size <= floor:
        raise ValueError(f"--vocab-size {config.vocab_size} is too small: the 256 byte tokens and {len(config.special_tokens)} "
                         f"special tokens alone take {floor}; ask for more")
    if config.extend is not None and (config.like is not None or config.digits is not None):
        raise ValueError("--extend keeps the extended tokenizer's pretokenizer, specials and digit rule; "
                         "do not combine it with --like or --digits")
    if config.extend is not None and config.kind == "superbpe" and config.held_out == 0:
        raise ValueError("--extend with --kind superbpe chooses how many superwords to add on held-out documents; pass a --held-out share")
    if config.extend is None and config.protect:
        raise ValueError("--protect only applies to --extend (it keeps the base's tokenization of that text)")
    if not 0 <= config.held_out < 0.5:
        raise ValueError(f"--held-out {config.held_out} must be a share between 0 and 0.5 (0.05 holds out 5% of the text; "
                         "0 trains on everything, with a fixed --transition)")
    if config.kind == "superbpe" and config.held_out == 0 and config.transition == "auto":
        raise ValueError("--transition auto chooses the transition on held-out text, and --held-out 0 holds none out; "
                         "pass a --held-out share or a fixed --transition")
    if isinstance(config.transition, str) and config.transition != "auto":
        raise ValueError(f"--transition {config.transition!r} is not 'auto', a fraction of the vocabulary or a size")


def train_tokenizer(
    texts: list[str],
    config: TrainConfig,
    *,
    out: Path | None = None,
    show_progress: bool = False,
    on_document: Callable[[int], None] | None = None,
) -> tuple[Tokenizer, TrainReport]:
    """Train per ``config`` on the text specs ``texts`` (streamed). With ``out``, write
    ``tokenizer.json``, ``tokenizer_config.json`` and ``train.json`` there atomically.

    ``show_progress``: the Rust trainer's progress bars (documents read, with an ETA; merges).
    ``on_document(n_bytes)`` is called for each document read."""
    import tokenizers

    from ..data import count_documents, iter_documents
    from ..tokenizer import load_tokenizer

    _validate(config)
    out = Path(out).expanduser() if out is not None else None
    if out is not None:
        check_output_folder(Path(out), inputs=[t for t in texts if Path(t).is_dir()])
    started = time.perf_counter()
    corpus = _CorpusCounter()
    documents = corpus.wrap(iter_documents(texts, on_spec=corpus.enter), on_document)
    like = load_tokenizer(config.like) if config.like else None
    base = None
    trained: Trained | None = None
    extension = None
    if config.extend is not None:
        from .extend import extend_tokenizer

        base = load_tokenizer(config.extend)
        protected = list(iter_documents(list(config.protected_texts))) if config.protected_texts else None
        if config.kind == "superbpe":
            from ..data.documents import as_documents
            from .superwords import extend_with_superwords

            extension = extend_with_superwords(base, as_documents(documents), vocab_size=config.vocab_size, protect=protected,
                                               held_out_share=config.held_out, max_words=config.max_words,
                                               min_frequency=config.min_frequency, show_progress=show_progress)
            tokenizer = extension.tokenizer
        else:
            tokenizer = extend_tokenizer(base, documents, vocab_size=config.vocab_size, protect=protected,
                                         min_frequency=config.min_frequency, show_progress=show_progress)
        digits = _digit_scheme(tokenizer)
        if digits != _digit_scheme(base):
            raise AssertionError(f"the extension splits digits {digits}, its base {_digit_scheme(base)}: a merge crossed the base's pretokens")
    else:
        wanted = config.digits or (_digit_scheme(like) if like is not None else "group3-left")
        specials = list(dict.fromkeys([*(_like_specials(like) if like else []), *config.special_tokens]))
        length = count_documents(texts) if show_progress else None
        trained = TRAINERS[config.kind](documents, config, wanted, specials, show_progress, length, source=lambda: corpus.text)
        backend = trained.backend
        if like is not None:
            from .like import dress_like

            tokenizer = dress_like(backend, like, name=f"{config.kind}-{config.vocab_size}")
        else:
            tokenizer = Tokenizer(backend, name=f"{config.kind}-{config.vocab_size}", special=roles_from_names(backend, adds_bos=False))
        digits = _digit_scheme(tokenizer)
    if corpus.documents == 0:
        raise ValueError(f"the training text {' '.join(texts)} has no non-empty document; give it some text")
    if tokenizer.vocab_size < config.vocab_size:
        logger.warning("reached %d of the %d ids asked for: the text has too few distinct pairs seen %d times; "
                       "give more text or lower --min-frequency", tokenizer.vocab_size, config.vocab_size, config.min_frequency)
    from ..tokenizer.pretokenizers import matching_names

    report = TrainReport(
        config=asdict(config), texts=list(texts), documents=corpus.documents, corpus_bytes=corpus.bytes,
        vocab_size=tokenizer.vocab_size, digits=digits, seconds=round(time.perf_counter() - started, 3),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        pre_tokenizer=matching_names(tokenizer.backend) if tokenizer.kind == "byte-level" else [],
        base_vocab_size=base.vocab_size if base is not None else None,
        token_changes=_token_changes(base, tokenizer, [*texts, *config.protected_texts]) if base is not None else {},
        superbpe=(trained.transition.to_json() if trained is not None and trained.transition is not None
                  else _extension_facts(base, extension) if extension is not None else None),
        **(_savings_vs_bpe(trained, texts) if extension is None else
           {"savings_vs_bpe": {"held-out": round(extension.report.savings, 6)},
            "savings_sample": {"held-out": f"{extension.report.held_out_blocks} documents held out, {extension.report.held_out_bytes:,} bytes"}}),
        versions={"tokenshift": _version(), "tokenizers": tokenizers.__version__, "python": platform.python_version()},
    )
    if out is not None:
        from ..cards import card_for_train, write_card

        def write(tmp: Path) -> None:
            tokenizer.save(tmp)
            if trained is not None and trained.bpe is not None:
                Tokenizer(trained.bpe, name=f"bpe-{config.vocab_size}", special=roles_from_names(trained.bpe, adds_bos=False)).save(tmp / "bpe")
            write_json(tmp / "train.json", report.to_json())
            write_card(tmp, card_for_train(report, name=Path(out).name))

        write_folder(Path(out), write, point="train:written")
    return tokenizer, report


def _extension_facts(base: Tokenizer, extension: Any) -> dict[str, Any]:
    """What train.json says of a superword extension: the choice (against the subword extension of the
    same size), the superwords kept, and the savings against the base on the held-out documents."""
    from .transition import count_tokens

    before = count_tokens(base.backend, extension.held_out)
    after = count_tokens(extension.tokenizer.backend, extension.held_out)
    return {**extension.report.to_json(), "baseline": "the subword extension of the same size", "superwords": extension.superword_count,
            "superword_examples": extension.examples, "held_out_savings_vs_base": round(1 - after / before, 6) if before else 0.0,
            "training_bytes": extension.training_bytes, "never_longer_than_base_checked_bytes": extension.never_longer_bytes}


def _savings_vs_bpe(trained: Trained | None, specs: list[str]) -> dict[str, Any]:
    """``savings_vs_bpe`` and ``savings_sample`` of the report (see :class:`TrainReport`): 1 - tokens /
    BPE tokens per training text and on the whole held-out slice; empty without a stage-1 BPE."""
    from ..data import load_texts
    from .transition import count_tokens

    if trained is None or trained.bpe is None:
        return {"savings_vs_bpe": {}, "savings_sample": {}}
    savings: dict[str, float] = {}
    sample: dict[str, str] = {}
    for index, spec in enumerate(specs):
        if spec in savings:
            continue
        held = [block for block, source in zip(trained.held_out, trained.held_out_sources) if source == index]
        size = sum(len(block.encode("utf-8")) for block in held)
        if size >= SAVINGS_MIN_HELD_BYTES:
            documents, sample[spec] = held, f"held out: {size:,} bytes"
        else:
            documents = load_texts(spec, max_bytes=CHANGE_SAMPLE_BYTES).documents
            sample[spec] = f"leading {sum(len(d.encode('utf-8')) for d in documents):,} bytes (trained on)"
        baseline = count_tokens(trained.bpe, documents)
        savings[spec] = round(1 - count_tokens(trained.backend, documents) / baseline, 6) if baseline else 0.0
    # The held-out slice was counted when the transition was chosen: the kept tokenizer's savings
    # there (0 when it fell back to the BPE).
    savings["held-out"] = round(trained.transition.savings, 6)
    return {"savings_vs_bpe": savings, "savings_sample": sample}


def _token_changes(base: Tokenizer, tokenizer: Tokenizer, specs: list[str]) -> dict[str, float]:
    """Per text spec, the share of ``base``'s tokens ``tokenizer`` changes (leading documents)."""
    from ..data import load_texts
    from ..measure import changed_token_share

    return {spec: round(changed_token_share(base, tokenizer, load_texts(spec, max_bytes=CHANGE_SAMPLE_BYTES).documents), 6)
            for spec in dict.fromkeys(specs)}


def _like_specials(like: Tokenizer) -> list[str]:
    from .like import special_tokens_of

    return special_tokens_of(like)


def _digit_scheme(tokenizer: Tokenizer) -> str:
    from ..measure.digits import digit_scheme

    return digit_scheme(tokenizer)


def _version() -> str:
    from .. import __version__

    return __version__
