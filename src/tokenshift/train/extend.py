"""Vocabulary extension: keep every token and id of an existing tokenizer, append merges learned on new text.

Merges are learned inside the base's own pretokens, so the extension never joins what the base keeps
apart (digits SmolLM2 reads one at a time, a word and its punctuation, two scripts):

- byte-level BPE (GPT-2, Llama-3, Qwen, SmolLM2): the base's pre-tokenizer cuts the text;
- SentencePiece-style BPE (Gemma): there is no pre-tokenizer, the merges see the whole normalised
  text, and what kept SentencePiece's merges apart were its training rules (split by whitespace, by
  script, digits alone). :func:`sentencepiece_chunks` cuts by those rules, at least as finely as
  they did, so no new merge can cross a boundary an old one could not.

Text the base already reads well is protected twice:

- each pretoken counts by how much more often it occurs, per byte, in the new text than in the
  protected text (:func:`protected_counts`): a name or a cognate shared with English teaches no merge;
- a learned merge whose token the protected text would use, per byte, more than
  :data:`PROTECTED_USE_SHARE` times as often as the new text is dropped with every merge built on it,
  and the next learned merges take its places (:func:`drop_protected_merges`). The first rule only sees
  whole pretokens; this one also catches a French stem such as "Ġcondens" that would re-cut English
  words the protected sample never held ("Ġcondensate"), which is where an extension's English loss
  comes from (each re-cut token costs the model ~10 bits, docs/benchmarks/transplant.md).
"""

from __future__ import annotations

import json
import logging
import unicodedata
from collections import Counter
from collections.abc import Iterable
from typing import Any

from ..tokenizer import Tokenizer
from ..tokenizer.bytemap import METASPACE
from .merges import append_merges, continue_merges

# See the module docstring. Chosen on wiki-en/fr:validation (SmolLM2 + 8,192 French merges), see
# drop_protected_merges.
PROTECTED_USE_SHARE = 0.5
# Merges learned beyond the ones asked for, to take the places of dropped ones: a share of those asked
# for, at least SPARE_MERGES_MIN (323 of 10,240 were dropped for SmolLM2 + 8,192 French merges, 371 for Spanish).
SPARE_MERGES = 0.25
SPARE_MERGES_MIN = 64

logger = logging.getLogger(__name__)

# Normalised SentencePiece text (spaces spelled ▁) cut into pieces no SentencePiece merge crosses:
# newline runs, letter runs with their leading ▁s, single digits, punctuation runs with their
# leading ▁s, ▁ runs, other whitespace. Letter runs are then cut where the script changes.
_SENTENCEPIECE_PIECES = r"[\r\n]+|▁*[\p{L}\p{M}]+|\p{N}|▁*[^\s\p{L}\p{M}\p{N}▁]+|▁+|\s+"
# SentencePiece treats Hiragana and Katakana as Han (trainer_interface.cc), so Japanese stays whole.
_SAME_SCRIPT = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "HALFWIDTH": "CJK", "IDEOGRAPHIC": "CJK"}


def _script(char: str) -> str | None:
    """A script label from the character's Unicode name (LATIN, CYRILLIC, CJK, ...); None for marks
    and ▁, which belong to the letter they follow or precede."""
    if char == METASPACE or unicodedata.category(char).startswith("M"):
        return None
    word = unicodedata.name(char, "?").split(" ", 1)[0]
    return _SAME_SCRIPT.get(word, word)


def _split_scripts(piece: str) -> list[str]:
    parts: list[str] = []
    start, current = 0, None
    for index, char in enumerate(piece):
        script = _script(char)
        if script is None:
            continue
        if current is not None and script != current:
            parts.append(piece[start:index])
            start = index
        current = script
    parts.append(piece[start:])
    return parts


def sentencepiece_chunks(normalized: str) -> list[str]:
    """Cut normalised SentencePiece text (spaces already ``▁``) into chunks no merge may cross."""
    import regex

    chunks: list[str] = []
    for piece in regex.findall(_SENTENCEPIECE_PIECES, normalized):
        chunks.extend(_split_scripts(piece) if regex.match(r"▁*[\p{L}\p{M}]", piece) else [piece])
    return chunks


def _chunker(tokenizer: Tokenizer) -> Any:
    """A function document -> chunks under the tokenizer's own pre-tokenization (see the module docstring)."""
    backend = tokenizer.backend
    if tokenizer.kind == "byte-level":
        pre = backend.pre_tokenizer
        if pre is None:
            raise ValueError(f"tokenizer {tokenizer.name!r} has no pre-tokenizer, so every document would be one pretoken "
                             "and new merges could join words, digits and punctuation; give its tokenizer.json a "
                             "pre_tokenizer (e.g. ByteLevel) before extending it")
        return lambda doc: [doc[start:end] for _, (start, end) in pre.pre_tokenize_str(doc)]
    normalizer = backend.normalizer
    if normalizer is None or METASPACE not in normalizer.normalize_str(" "):
        raise ValueError(f"tokenizer {tokenizer.name!r} is neither byte-level BPE nor SentencePiece-style BPE with a "
                         "▁ normalizer (Gemma, Llama-2); tokenshift cannot tell where its merges may go")
    return lambda doc: sentencepiece_chunks(normalizer.normalize_str(doc))


def _digits_apart(chunks: list[str]) -> list[str]:
    """Every digit its own chunk (the rest of each chunk stays as it was)."""
    import regex

    return [part for chunk in chunks for part in regex.split(r"(\p{N})", chunk) if part]


def count_pretokens(tokenizer: Tokenizer, documents: Iterable[str]) -> Counter[str]:
    """Distinct chunks of ``documents`` under the tokenizer's own pretokenization, with their counts:
    raw text for byte-level tokenizers, normalised text (``▁`` for spaces) for SentencePiece-style ones.

    A tokenizer that reads every digit alone keeps doing so even where only its vocabulary, not its
    pre-tokenizer, holds digits apart (GPT-2's regex over a vocabulary without multi-digit tokens):
    digits are then cut apart here too, so no new merge joins them."""
    from ..measure.digits import digit_scheme

    chunker = _chunker(tokenizer)
    if digit_scheme(tokenizer) == "single":
        plain = chunker
        chunker = lambda doc: _digits_apart(plain(doc))  # noqa: E731
    counts: Counter[str] = Counter()
    for doc in documents:
        counts.update(chunker(doc))
    return counts


def protected_counts(counts: Counter[str], protected: Counter[str]) -> Counter[str]:
    """Each chunk's count less its count in the protected text scaled to the same number of bytes;
    chunks left with less than one occurrence are dropped.

    Chosen on wiki-fr/en:validation (SmolLM2 + 8,192 French merges): English tokens changed 0.56% ->
    0.36% with this weight (scale 1), 0.34% at scale 3, while French used as few tokens as without it
    (29.0% fewer than SmolLM2 either way)."""
    size = sum(len(chunk.encode("utf-8")) * n for chunk, n in counts.items())
    protected_size = sum(len(chunk.encode("utf-8")) * n for chunk, n in protected.items())
    if not protected_size:
        return counts
    ratio = size / protected_size
    kept: Counter[str] = Counter()
    for chunk, n in counts.items():
        weight = round(n - protected.get(chunk, 0) * ratio)
        if weight >= 1:
            kept[chunk] = weight
    return kept


def _new_token_uses(extended: Any, chunks: Counter[str], first_new_id: int) -> Counter[int]:
    """How often each new token (ids from ``first_new_id`` on) occurs when the ``extended`` tokenizer
    encodes ``chunks`` (text -> count)."""
    from .merges import ENCODE_BATCH

    texts = list(chunks)
    uses: Counter[int] = Counter()
    for start in range(0, len(texts), ENCODE_BATCH):
        batch = texts[start : start + ENCODE_BATCH]
        for text, encoding in zip(batch, extended.encode_batch(batch, add_special_tokens=False)):
            count = chunks[text]
            for token_id in encoding.ids:
                if token_id >= first_new_id:
                    uses[token_id] += count
    return uses


def drop_protected_merges(encoder: Any, merges: list[tuple[str, str]], new: Counter[str], protected: Counter[str], *,
                          share: float = PROTECTED_USE_SHARE, max_rounds: int = 5) -> list[tuple[str, str]]:
    """``merges`` (in learning order) less each one whose token occurs in the ``protected`` chunks, per
    byte, more than ``share`` times as often as in the ``new`` chunks, and less every merge built on a
    dropped token (its parts would never exist). Counts are taken with the kept merges appended, again
    after each round of drops (a dropped merge can let a later one apply where it did not), for at
    most ``max_rounds`` rounds.

    Chosen on wiki-en/fr:validation, 32,000 bytes each (SmolLM2 + 8,192 French merges, zero-shot
    transplant with the default method), bits per byte en / fr, French tokens saved, share of new
    tokens in wiki-en:test: no drop 0.9044 / 2.3297, 29.02%, 0.19%; share 0.5 0.9029 / 2.3261,
    28.88%, 0.13%. A probe with one round of drops put share 0.25 at 28.65% of French saved
    (0.11% new in English) and 0.1 at 28.16% (0.09%): English gains little more for the French lost.
    """
    if not merges or not protected:
        return merges
    size = sum(len(chunk.encode("utf-8")) * n for chunk, n in new.items())
    protected_size = sum(len(chunk.encode("utf-8")) * n for chunk, n in protected.items())
    first_new_id = max(encoder.get_vocab(with_added_tokens=True).values()) + 1
    kept = list(merges)
    for _ in range(max_rounds):
        extended = append_merges(encoder, kept)  # built once a round: the spec is serialised to JSON and back
        extended_vocab = extended.get_vocab(with_added_tokens=False)
        new_uses = _new_token_uses(extended, new, first_new_id)
        protected_uses = _new_token_uses(extended, protected, first_new_id)
        dropped: set[str] = set()
        for left, right in kept:
            token = left + right
            if left in dropped or right in dropped:
                dropped.add(token)
                continue
            token_id = extended_vocab[token]
            if protected_uses[token_id] / protected_size > share * new_uses[token_id] / size:
                dropped.add(token)
        if not dropped:
            break
        kept = [(left, right) for left, right in kept if left + right not in dropped]
    logger.info("dropped %d of %d learned merges that would re-cut the protected text", len(merges) - len(kept), len(merges))
    return kept


def _chunk_encoder(tokenizer: Tokenizer) -> Any:
    """The backend that segments one chunk: the base itself for byte-level tokenizers (re-cutting a
    pretoken changes nothing); for SentencePiece-style ones the bare model, since chunks are already
    normalised (a Prepend("▁") normalizer would otherwise add a second ▁)."""
    from tokenizers import Tokenizer as Backend

    if tokenizer.kind == "byte-level":
        return tokenizer.backend
    spec = json.loads(tokenizer.backend.to_str())
    spec["normalizer"] = None
    spec["pre_tokenizer"] = None
    return Backend.from_str(json.dumps(spec, ensure_ascii=False))


def _byte_fallback_ids(tokenizer: Tokenizer) -> frozenset[int]:
    """Ids of ``<0xNN>`` tokens: a merge of two of them would be spelled "<0xE4><0xB8>", not bytes."""
    vocab = tokenizer.backend.get_vocab(with_added_tokens=False)
    return frozenset(idx for token, idx in vocab.items() if len(token) == 6 and token.startswith("<0x") and token.endswith(">"))


def extend_tokenizer(
    base: Tokenizer,
    documents: Iterable[str],
    *,
    vocab_size: int,
    protect: Iterable[str] | None = None,
    min_frequency: int = 2,
    show_progress: bool = False,
) -> Tokenizer:
    """Append merges to ``base`` until it has ``vocab_size`` ids (fewer if the text runs out of pairs
    seen ``min_frequency`` times). Old ids, merges, special tokens, pre-tokenizer and normalizer are
    untouched. ``protect``: documents whose tokenization should change as little as possible
    (see :func:`protected_counts`)."""
    if vocab_size <= base.vocab_size:
        raise ValueError(f"--vocab-size {vocab_size} must exceed the extended tokenizer's {base.vocab_size} ids")
    model = json.loads(base.backend.to_str())["model"]
    if model.get("type") != "BPE":
        raise ValueError(f"--extend needs a BPE tokenizer; {base.name!r} is a {model.get('type')} model, which has no merges to append to")
    counts = count_pretokens(base, documents)
    protected = count_pretokens(base, protect) if protect is not None else Counter()
    if protected:
        counts = protected_counts(counts, protected)
    encoder = _chunk_encoder(base)
    wanted = vocab_size - base.vocab_size
    spare = max(round(wanted * SPARE_MERGES), SPARE_MERGES_MIN) if protected else 0
    merges = continue_merges(encoder, counts, n_merges=wanted + spare, min_frequency=min_frequency,
                             show_progress=show_progress, split_at=_byte_fallback_ids(base))
    if protected:
        merges = drop_protected_merges(encoder, merges, counts, protected)
    merges = merges[:wanted]
    return Tokenizer(append_merges(base.backend, merges), name=f"{base.name}+{len(merges)}", special=base.special,
                     source=base.source, chat_template=base.chat_template)
