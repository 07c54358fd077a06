"""Superwords on a model's own tokenizer: a vocabulary extension that adds subwords, then tokens that
span words ("Ġof Ġthe", "▁mise▁en▁œuvre"), learned on a domain's text.

Every old token, id and merge is kept; the new merges come after them, so the base's merges all apply
first. That gives the guarantee published for domain vocabularies (Vocabulary Customization, NeurIPS
2025): **no text is ever split into more tokens than the base splits it**. Where the base cuts text
into pretokens, superwords need larger pretokens, so the reasoning takes two steps:

- byte-level bases (GPT-2, SmolLM2, Llama-3, Qwen): the word rule of the base's pretokenization regex
  (`` ?\\p{L}+`` or ``[^\\r\\n\\p{L}\\p{N}]?\\p{L}+``) is widened to a run of words joined by single spaces
  (:func:`widen_word_rule`); a run is then a union of whole base pretokens. No base merge joins a
  letter to a following space + letter (:func:`merges_crossing_words`, checked, and true of every
  shipped base), so inside a run the base merges give exactly the base's tokens of its words, and
  the new merges can only join them;
- SentencePiece-style bases (Gemma) have no pretokenization: their merges run over the whole
  normalised text, and appended merges can only join what the base's merges leave.

Subwords come first (:func:`.extend.extend_tokenizer`, with its protection of general text), then
superwords over the domain's multi-word runs, up to ``vocab_size``. How many of the new ids go to
subwords is chosen on documents held out of the training text (:mod:`.transition`: the subword
extension taken to the full size is the baseline and the fallback), and the result is checked
against the base on the held-out documents and the protected text: never a document longer.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..tokenizer import Tokenizer
from ..tokenizer.bytemap import METASPACE, byte_level_to_bytes
from .extend import (SPARE_MERGES, SPARE_MERGES_MIN, _byte_fallback_ids, _chunk_encoder, drop_protected_merges, extend_tokenizer,
                     protected_counts, sentencepiece_chunks)
from .merges import append_merges_to_spec, encode_chunks, learn_merges
from .transition import MIN_GAIN, TransitionReport, choose_transition, truncate_bpe

logger = logging.getLogger(__name__)

# Shares of the new ids that go to subwords, latest transition first (1.0, all subwords, is the
# baseline). Not tuned yet: a first guess, spread as the fresh SuperBPE's candidates are (issue 33).
SUBWORD_SHARES: tuple[float, ...] = (0.75, 0.5, 0.25)
# The word rules of the byte-level regexes tokenshift knows, and the run each widens to.
WORD_RULES: tuple[str, ...] = (r"[^\r\n\p{L}\p{N}]?+\p{L}+", r"[^\r\n\p{L}\p{N}]?\p{L}+", r" ?\p{L}+")
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
RUN_TAIL = r"(?: \p{L}+)*"
# Superwords general English uses as much as the domain does (" of the") are dropped as protected
# subwords are. A probe on man-en:train (1 MB) against man-en:test and wiki-en:test pages (test splits,
# so to be redone on validation): with it, 13.4% fewer domain tokens and 0.8% of English tokens
# changed; without, 15.2% and 6.6%.
PROTECT_SUPERWORDS = True
# A superword is dropped when general text uses it per byte more than this times as often as the
# domain does (subwords: extend.PROTECTED_USE_SHARE, 0.5).
SUPERWORD_USE_SHARE = 0.5


def widen_word_rule(pattern: str) -> str | None:
    """``pattern`` with its word rule (one whole alternative) allowed to continue over `` word``; None
    when no known word rule is an alternative of it."""
    alternatives = _alternatives(pattern)
    for rule in WORD_RULES:
        if rule in alternatives:
            index = alternatives.index(rule)
            return "|".join([*alternatives[:index], f"(?:{rule}){RUN_TAIL}", *alternatives[index + 1 :]])
    return None


def _alternatives(pattern: str) -> list[str]:
    """The top-level alternatives of a regex (``|`` outside brackets and groups)."""
    parts, depth, start, escaped, in_class = [], 0, 0, False, False
    for index, char in enumerate(pattern):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(pattern[start:index])
            start = index + 1
    parts.append(pattern[start:])
    return parts


def run_pre_tokenizer(spec: dict[str, Any], name: str) -> dict[str, Any]:
    """The base's ``pre_tokenizer`` with its word rule widened to runs of words (byte-level bases)."""
    pre = spec.get("pre_tokenizer")
    steps = pre.get("pretokenizers", []) if isinstance(pre, dict) and pre.get("type") == "Sequence" else [pre]
    widened, changed = [], 0
    for step in steps:
        if isinstance(step, dict) and step.get("type") == "ByteLevel" and step.get("use_regex", True):
            # GPT-2's regex lives inside ByteLevel: spell it out as a Split, then map bytes without it
            widened.append({"type": "Split", "pattern": {"Regex": widen_word_rule(GPT2_PATTERN)}, "behavior": "Isolated", "invert": False})
            widened.append({**step, "use_regex": False})
            changed += 1
            continue
        regex = step.get("pattern", {}).get("Regex") if isinstance(step, dict) and step.get("type") == "Split" else None
        wider = widen_word_rule(regex) if regex else None
        if wider is not None:
            widened.append({**step, "pattern": {"Regex": wider}})
            changed += 1
        else:
            widened.append(step)
    if changed != 1:
        raise ValueError(f"tokenizer {name!r}: its pre-tokenizer has {'no' if not changed else 'more than one'} word rule tokenshift "
                         "knows (` ?\\p{L}+` or `[^\\r\\n\\p{L}\\p{N}]?\\p{L}+`), so superwords cannot be added without re-cutting "
                         "its words; use --kind bpe")
    return widened[0] if len(widened) == 1 else {"type": "Sequence", "pretokenizers": widened}


def merges_crossing_words(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """Base merges that join text ending in a letter to a space + letter: they could reach across the
    words of a run, so superwords would change the base's tokens (none in any shipped base)."""
    import regex

    crossing = []
    for merge in spec["model"]["merges"]:
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        left_bytes, right_bytes = byte_level_to_bytes(left), byte_level_to_bytes(right)
        if left_bytes is None or right_bytes is None:
            continue
        text_left, text_right = left_bytes.decode("utf-8", "replace"), right_bytes.decode("utf-8", "replace")
        if regex.match(r" \p{L}", text_right) and regex.search(r"\p{L}$", text_left):
            crossing.append((left, right))
    return crossing


def count_runs(tokenizer: Tokenizer, documents: Iterable[str], pre_tokenizer: dict[str, Any] | None) -> Counter[str]:
    """Multi-word runs of ``documents`` with their counts, as the extended tokenizer will cut them: raw
    text under the widened rule (byte-level), or ``▁``-joined letter chunks (SentencePiece-style)."""
    import regex

    runs: Counter[str] = Counter()
    if tokenizer.kind == "byte-level":
        assert pre_tokenizer is not None
        cut = _split_steps(pre_tokenizer)
        normalizer = tokenizer.backend.normalizer
        word_then_space = regex.compile(r"\p{L} \p{L}")
        for doc in documents:
            text = normalizer.normalize_str(doc) if normalizer is not None else doc
            runs.update(piece for piece, _ in cut.pre_tokenize_str(text) if word_then_space.search(piece))
        return runs
    normalizer = tokenizer.backend.normalizer
    continuing = regex.compile(rf"{METASPACE}[\p{{L}}\p{{M}}]+")
    letters = regex.compile(rf"{METASPACE}*[\p{{L}}\p{{M}}]+")
    for doc in documents:
        run: list[str] = []
        for chunk in sentencepiece_chunks(normalizer.normalize_str(doc)):
            if run and continuing.fullmatch(chunk):
                run.append(chunk)
                continue
            if len(run) > 1:
                runs["".join(run)] += 1
            run = [chunk] if letters.fullmatch(chunk) else []
        if len(run) > 1:
            runs["".join(run)] += 1
    return runs


def _split_steps(pre_tokenizer: dict[str, Any]) -> Any:
    """The ``Split`` steps of a pre-tokenizer as one, without the byte-level mapping: pieces of raw text."""
    import re

    from tokenizers import Regex, pre_tokenizers

    steps = []
    for step in pre_tokenizer.get("pretokenizers", [pre_tokenizer]):
        if step.get("type") != "Split":
            continue
        pattern = step["pattern"]
        behavior = re.sub(r"(?<!^)([A-Z])", r"_\1", step["behavior"]).lower()  # "MergedWithPrevious" -> "merged_with_previous"
        steps.append(pre_tokenizers.Split(Regex(pattern["Regex"]) if "Regex" in pattern else pattern["String"], behavior=behavior,
                                          invert=step.get("invert", False)))
    return pre_tokenizers.Sequence(steps)


@dataclass(frozen=True)
class SuperwordExtension:
    """What :func:`extend_with_superwords` returns. ``tokenizer``: the base plus subwords and superwords
    (or the subword extension alone when superwords do not pay on the held-out documents:
    ``report.fallback``); ``subwords``: the subword extension to the same size, the baseline;
    ``held_out``: the documents the choice was made on; ``never_longer_bytes``: how much text the
    guarantee was checked on."""

    tokenizer: Tokenizer
    subwords: Tokenizer
    report: TransitionReport
    held_out: list[str]
    training_bytes: int
    never_longer_bytes: int
    superword_count: int = 0
    examples: list[str] = field(default_factory=list)


def extend_with_superwords(
    base: Tokenizer,
    documents: Iterable[str],
    *,
    vocab_size: int,
    protect: list[str] | None = None,
    held_out_share: float = 0.05,
    subword_shares: tuple[float, ...] = SUBWORD_SHARES,
    max_words: int = 4,
    min_frequency: int = 2,
    show_progress: bool = False,
) -> SuperwordExtension:
    """Extend ``base`` to ``vocab_size`` ids with subwords and superwords learned on ``documents`` (see
    the module docstring); ``protect``: documents whose tokenization should change as little as
    possible (general text)."""
    from tokenizers import Tokenizer as Backend

    if vocab_size <= base.vocab_size:
        raise ValueError(f"--vocab-size {vocab_size} must exceed the extended tokenizer's {base.vocab_size} ids")
    spec = json.loads(base.backend.to_str())
    pre_tokenizer = None
    if base.kind == "byte-level":
        crossing = merges_crossing_words(spec)
        if crossing:
            raise ValueError(f"tokenizer {base.name!r} has {len(crossing)} merge(s) joining a word to the next ({crossing[0]}), so "
                             "superwords could re-cut its text; use --kind bpe")
        pre_tokenizer = run_pre_tokenizer(spec, base.name)
    from ..data.documents import split_documents

    training, held = split_documents([d for d in documents if d], held_out_share, salt="superwords")
    if not held or not training:
        raise ValueError(f"the text has {len(training) + len(held)} document(s); superwords are chosen on documents held out of it "
                         f"({held_out_share:.0%} by hash), so give more documents (a single file is split at blank lines)")
    subwords = extend_tokenizer(base, training, vocab_size=vocab_size, protect=protect, min_frequency=min_frequency,
                                show_progress=show_progress)
    runs = count_runs(base, training, pre_tokenizer)
    protected_runs = count_runs(base, protect, pre_tokenizer) if protect else Counter()
    if protected_runs:
        runs = protected_counts(runs, protected_runs)
    added = subwords.vocab_size - base.vocab_size
    transitions = [t for t in dict.fromkeys(base.vocab_size + round(share * added) for share in subword_shares)
                   if base.vocab_size <= t < subwords.vocab_size]
    split_at = _byte_fallback_ids(base)

    def build(t: int) -> Any:
        stage1 = truncate_bpe(subwords.backend, t)
        if pre_tokenizer is not None:  # runs are pretokens now (their words get the base's tokens, see the docstring)
            widened = json.loads(stage1.to_str())
            widened["pre_tokenizer"] = pre_tokenizer
            stage1 = Backend.from_str(json.dumps(widened, ensure_ascii=False))
        encoder = _chunk_encoder(Tokenizer(stage1, name="stage1", special=base.special))
        wanted = subwords.vocab_size - t
        spare = max(round(wanted * SPARE_MERGES), SPARE_MERGES_MIN) if protected_runs and PROTECT_SUPERWORDS else 0
        merges = learn_merges(stage1, encode_chunks(encoder, runs, split_at=split_at), n_merges=wanted + spare,
                              max_token_pieces=max_words, min_frequency=min_frequency, show_progress=show_progress)
        if spare:
            merges = drop_protected_merges(encoder, merges, runs, protected_runs, share=SUPERWORD_USE_SHARE)
        merges = merges[:wanted]
        return Backend.from_str(json.dumps(append_merges_to_spec(json.loads(stage1.to_str()), merges), ensure_ascii=False))

    if not transitions or not runs:
        raise ValueError("the training text has no repeated multi-word runs to learn superwords from; give more text, or use --kind bpe")
    backend, report = choose_transition(build, subwords.backend, held, vocab_size=subwords.vocab_size, transitions=transitions,
                                        mode="auto", held_out_share=held_out_share, min_gain=MIN_GAIN,
                                        baseline="the subword extension")
    tokenizer = Tokenizer(backend, name=f"{base.name}+{added}", special=base.special, source=base.source, chat_template=base.chat_template)
    checked = check_never_longer(base, tokenizer, [*held, *(protect or [])])
    new_tokens = [tokenizer.backend.id_to_token(i) for i in range(base.vocab_size, tokenizer.vocab_size)]
    superwords = [t for t in new_tokens if t is not None and _spans_words(t)]
    return SuperwordExtension(tokenizer, subwords, report, held, sum(len(d.encode("utf-8")) for d in training), checked,
                              len(superwords), [_readable(t) for t in superwords[:12]])


def _spans_words(token: str) -> bool:
    raw = byte_level_to_bytes(token)
    text = raw.decode("utf-8", "replace") if raw is not None else token.replace(METASPACE, " ")
    return " " in text.strip(" ")


def _readable(token: str) -> str:
    raw = byte_level_to_bytes(token)
    return raw.decode("utf-8", "replace") if raw is not None else token.replace(METASPACE, " ")


def check_never_longer(base: Tokenizer, extended: Tokenizer, documents: list[str]) -> int:
    """Raise if ``extended`` splits any of ``documents`` into more tokens than ``base``; returns the bytes checked."""
    checked = 0
    for doc, before, after in zip(documents, base.backend.encode_batch_fast(documents, add_special_tokens=False),
                                  extended.backend.encode_batch_fast(documents, add_special_tokens=False)):
        if len(after.ids) > len(before.ids):
            raise AssertionError(f"the extension splits a document into {len(after.ids)} tokens where its base takes "
                                 f"{len(before.ids)} ({doc[:60]!r}...): please report it")
        checked += len(doc.encode("utf-8"))
    return checked
