"""SuperBPE (Liu et al. 2025): subwords first, then superword tokens that may span single spaces.

Stage 1 trains ordinary byte-level BPE to the transition size ``t``. Stage 2 continues merging
(:mod:`.merges`) over runs of words joined by single spaces (:func:`.pretokenize.superword_pattern`),
so " of the" or " par exemple" can become one token; newlines, digit groups and punctuation runs are
never crossed. A new token spans at most ``max_words`` stage-1 tokens, and so at most ``max_words``
words (a stage-1 token never crosses a word boundary). The result is one standard tokenizer.json:
stage-1 merges, then stage-2 merges, applied over stage-2 pretokens; because every stage-2 pretoken
is a union of whole stage-1 pretokens and no stage-1 merge can join two of them, this reproduces the
training segmentation exactly.

Memory is proportional to the distinct word runs (counted in one pass), never to the corpus.

:func:`train_superbpe_checked` (what ``tokenshift train --kind superbpe`` runs) holds out a slice of
the text (:mod:`.heldout`), trains stage 1 once to the full vocabulary, chooses the transition on
the slice (:mod:`.transition`) and returns the BPE instead when superwords do not pay there.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .bpe import train_bpe
from .heldout import DEFAULT_SHARE, hold_out
from .merges import Segmentation, append_merges_to_spec, encode_chunks, learn_merges
from .pretokenize import byte_level_pre_tokenizer_json, superword_pattern, word_pattern
from .transition import AUTO_CANDIDATES, TransitionReport, choose_transition, resolve, truncate_bpe

if TYPE_CHECKING:
    import tokenizers

DEFAULT_TRANSITION = 0.8  # share of the vocabulary learned as subwords before superwords start
WORDS_PER_BLOCK = 256  # words per pre-tokenized input when encoding distinct words


def count_word_runs(documents: Iterable[str], digits: str) -> tuple[Counter[str], Iterator[str]]:
    """Wrap ``documents`` so that iterating them also counts their multi-piece word runs."""
    import regex

    runs: Counter[str] = Counter()
    compiled = regex.compile(superword_pattern(digits))
    assert compiled.groups == 1, "findall must return the words group alone"

    def passthrough() -> Iterator[str]:
        for doc in documents:
            runs.update(compiled.findall(doc))  # "" for the pretokens that are not word runs
            yield doc
        runs.pop("", None)

    return runs, passthrough()


@dataclass(frozen=True)
class WordRuns:
    """The distinct word runs cut into their stage-1 pretokens once, whatever stage 1 then is.

    A run's stage-1 pretokens are its words, cut before each space: "(of the" -> "(of", " the".
    In the stage-1 rule (:func:`.pretokenize.word_pattern`) a match holds a space only as its first
    character, or holds nothing but whitespace, and a run's only whitespace is those spaces and maybe
    its first character; so each cut is a match boundary, no match reaches past the next cut, and
    encoding the words one by one gives exactly the run's ids (whatever Unicode version either regex
    engine uses for letters). ``words``: the distinct parts; ``sequence``: each run's parts end to end,
    as indices into ``words``; ``parts_per_run`` and ``counts``: per run.
    """

    words: list[str]
    sequence: Any
    parts_per_run: Any
    counts: Any

    @classmethod
    def cut(cls, runs: Counter[str]) -> WordRuns:
        import numpy as np

        texts = list(runs)
        index: dict[str, int] = {}
        # "\n" never occurs in a run, so it can mark where one ends. A run splits into its spaces + 1
        # parts: its words, after "" when it starts with a space.
        parts = "\n".join(texts).replace(" ", "\n ").split("\n")
        sequence = np.fromiter([index.setdefault(part, len(index)) for part in parts], dtype=np.int64, count=len(parts))
        del parts
        parts_per_run = np.fromiter((text.count(" ") + 1 for text in texts), dtype=np.int64, count=len(texts))
        return cls(list(index), sequence, parts_per_run, np.fromiter(runs.values(), dtype=np.int64, count=len(runs)))

    def segment(self, word_ids: Any, word_lengths: Any) -> Segmentation:
        """The runs' ids from each distinct word's ids (``word_ids`` end to end, ``word_lengths`` each)."""
        import numpy as np

        # The ids of part k are word_ids[firsts[k] : firsts[k] + part_lengths[k]]; laid end to end, id j
        # of the result comes from word_ids[j + firsts[k] - (parts' ids before part k)].
        part_lengths = word_lengths[self.sequence]
        firsts = (np.cumsum(word_lengths) - word_lengths)[self.sequence]
        gather = np.repeat(firsts - (np.cumsum(part_lengths) - part_lengths), part_lengths) + np.arange(int(part_lengths.sum()))
        run_lengths = np.add.reduceat(part_lengths, np.cumsum(self.parts_per_run) - self.parts_per_run)
        kept = run_lengths >= 2
        return Segmentation(word_ids[gather][np.repeat(kept, run_lengths)], run_lengths[kept], self.counts[kept])


def words_cut_exactly(stage1: tokenizers.Tokenizer) -> bool:
    """Whether encoding a run word by word equals encoding it whole (:class:`WordRuns`): not when an
    added token with a space in it could span a cut."""
    return not any(" " in token.content for token in stage1.get_added_tokens_decoder().values())


def encode_word_runs(stage1: tokenizers.Tokenizer, runs: Counter[str]) -> Segmentation:
    """Segment the word runs with ``stage1``, encoding each distinct word once instead of each run
    (:class:`WordRuns`); each run whole when :func:`words_cut_exactly` says no."""
    if not runs or not words_cut_exactly(stage1):
        return encode_chunks(stage1, runs)
    cut = WordRuns.cut(runs)
    return cut.segment(*_encode_words(stage1, cut.words))


class Spelling:
    """How a trained BPE's ids above any cut are spelled in the ids below it, for
    :func:`truncated_ids`: each id's merge parts, read once from the BPE."""

    def __init__(self, bpe: tokenizers.Tokenizer) -> None:
        model = json.loads(bpe.to_str())["model"]
        vocab = model["vocab"]
        self.size = max(vocab.values()) + 1
        self.parts: dict[int, tuple[int, int]] = {}
        for merge in model["merges"]:
            left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
            self.parts[vocab[left + right]] = (vocab[left], vocab[right])

    def below(self, size: int) -> tuple[Any, Any]:
        """(flat, offsets): id i spelled in ids below ``size`` is flat[offsets[i] : offsets[i + 1]]."""
        import numpy as np

        spelled: list[list[int]] = [[i] for i in range(min(size, self.size))]
        for token_id in range(size, self.size):  # parts have lower ids, so each is spelled before it is needed
            left, right = self.parts[token_id]
            spelled.append(spelled[left] + spelled[right])
        lengths = np.fromiter((len(x) for x in spelled), dtype=np.int64, count=len(spelled))
        flat = np.fromiter((i for x in spelled for i in x), dtype=np.int64, count=int(lengths.sum()))
        return flat, np.concatenate([[0], np.cumsum(lengths)])


def truncated_ids(bpe: tokenizers.Tokenizer | Spelling, ids: Any, lengths: Any, size: int) -> tuple[Any, Any]:
    """(ids, lengths) of words encoded by ``bpe``, as :func:`.transition.truncate_bpe` (``bpe`` cut to
    its first ``size`` ids) would encode them: every id >= ``size`` spelled out as the ids its merge
    joined, recursively.

    Exact: merges apply lowest rank first, and a merge's id grows with its rank, so ``bpe`` encodes a
    word by taking every merge the cut tokenizer takes, in the same order, before its first merge of
    an id >= ``size``; after that no merge below ``size`` can apply again (its parts are ids below
    ``size``, and merges only ever join tokens already adjacent). Encoding once with the full BPE
    serves every candidate transition.
    """
    import numpy as np

    flat, offsets = (bpe if isinstance(bpe, Spelling) else Spelling(bpe)).below(size)
    spell_lengths = np.diff(offsets)
    out_lengths = spell_lengths[ids]
    out = flat[np.repeat(offsets[:-1][ids] - (np.cumsum(out_lengths) - out_lengths), out_lengths) + np.arange(int(out_lengths.sum()))]
    ends = np.concatenate([[0], np.cumsum(out_lengths)])
    word_ends = np.cumsum(lengths)
    return out, ends[word_ends] - ends[word_ends - lengths]


def _encode_words(stage1: tokenizers.Tokenizer, words: list[str]) -> tuple[Any, Any]:
    """(ids, lengths): every word's stage-1 ids end to end, and how many each has. The words go in
    blocks as pre-tokenized input, one encoding per block: much cheaper than one per word."""
    import numpy as np

    blocks = [words[start : start + WORDS_PER_BLOCK] for start in range(0, len(words), WORDS_PER_BLOCK)]
    encodings = stage1.encode_batch(blocks, is_pretokenized=True, add_special_tokens=False)
    ids = np.concatenate([np.asarray(encoding.ids, dtype=np.int64) for encoding in encodings])
    owners = np.concatenate([np.asarray(encoding.word_ids, dtype=np.int64) + block * WORDS_PER_BLOCK
                             for block, encoding in enumerate(encodings)])
    return ids, np.bincount(owners, minlength=len(words))


def train_superbpe(
    documents: Iterable[str],
    *,
    vocab_size: int,
    digits: str,
    special_tokens: list[str],
    transition: float | int = DEFAULT_TRANSITION,
    max_words: int = 4,
    min_frequency: int = 2,
    show_progress: bool = False,
    length: int | None = None,
) -> tokenizers.Tokenizer:
    """Train SuperBPE to ``vocab_size`` ids on all of ``documents``, at a fixed ``transition``: stage-1
    vocabulary size, as a count or a fraction of ``vocab_size``. :func:`train_superbpe_checked`
    chooses the transition on held-out text and never returns worse than BPE."""
    t = _check(vocab_size, special_tokens, transition, max_words)
    runs, counted = count_word_runs(documents, digits)
    stage1 = train_bpe(counted, vocab_size=t, pattern=word_pattern(digits), special_tokens=special_tokens,
                       min_frequency=min_frequency, show_progress=show_progress, length=length)
    return add_superwords(stage1, runs, vocab_size=vocab_size, digits=digits, max_words=max_words,
                          min_frequency=min_frequency, show_progress=show_progress)


def _check(vocab_size: int, special_tokens: list[str], transition: float | int, max_words: int) -> int:
    t = resolve(transition, vocab_size)
    if not 256 + len(special_tokens) < t <= vocab_size:
        raise ValueError(f"transition point {t} must lie between the byte alphabet ({256 + len(special_tokens)}) and the vocabulary size ({vocab_size})")
    if max_words < 1:
        raise ValueError(f"max_words must be at least 1, got {max_words}")
    return t


def add_superwords(stage1: tokenizers.Tokenizer, runs: Counter[str] | Segmentation, *, vocab_size: int, digits: str, max_words: int,
                   min_frequency: int, show_progress: bool = False) -> tokenizers.Tokenizer:
    """Stage 2: ``stage1`` plus superword merges learned over the word ``runs`` (or their stage-1
    segmentation) up to ``vocab_size`` ids."""
    from tokenizers import Tokenizer

    segmentation = runs if isinstance(runs, Segmentation) else encode_word_runs(stage1, runs)
    merges = learn_merges(stage1, segmentation, n_merges=vocab_size - stage1.get_vocab_size(with_added_tokens=True),
                          max_token_pieces=max_words, min_frequency=min_frequency, show_progress=show_progress)
    spec = append_merges_to_spec(json.loads(stage1.to_str()), merges)
    spec["pre_tokenizer"] = byte_level_pre_tokenizer_json(superword_pattern(digits))
    return Tokenizer.from_str(json.dumps(spec, ensure_ascii=False))


@dataclass(frozen=True)
class CheckedSuperBPE:
    """What :func:`train_superbpe_checked` returns. ``tokenizer``: SuperBPE, or ``bpe`` when superwords
    did not pay on the held-out slice (``report.fallback``); ``bpe``: the stage-1 run taken to the full
    vocabulary, trained on the same text."""

    tokenizer: tokenizers.Tokenizer
    bpe: tokenizers.Tokenizer
    report: TransitionReport
    held_out: list[str]
    held_out_sources: list[int]


def train_superbpe_checked(
    documents: Iterable[str],
    *,
    vocab_size: int,
    digits: str,
    special_tokens: list[str],
    transition: float | int | str = "auto",
    held_out_share: float = DEFAULT_SHARE,
    max_words: int = 4,
    min_frequency: int = 2,
    show_progress: bool = False,
    length: int | None = None,
    source: Callable[[], int] | None = None,
) -> CheckedSuperBPE:
    """SuperBPE trained on ``documents`` less a held-out slice (:func:`.heldout.hold_out`), with the
    transition chosen on that slice (``"auto"``, :func:`.transition.choose_transition`) or fixed, and
    checked against the BPE of the same size trained on the same text: never worse on the slice.
    ``source()``: which text the reader is in (recorded per held-out block, for per-text savings)."""
    if transition == "auto":
        transitions = [resolve(share, vocab_size) for share in AUTO_CANDIDATES]
        transitions = [t for t in dict.fromkeys(transitions) if 256 + len(special_tokens) < t < vocab_size]
        if not transitions:
            raise ValueError(f"--vocab-size {vocab_size} leaves no room for superwords after the byte alphabet; ask for more")
        for t in transitions:
            _check(vocab_size, special_tokens, t, max_words)
    elif isinstance(transition, str):
        raise ValueError(f"transition must be 'auto', a fraction of the vocabulary or a size, got {transition!r}")
    else:
        transitions = [_check(vocab_size, special_tokens, transition, max_words)]
    training, held = hold_out(documents, share=held_out_share, source=source)
    runs, counted = count_word_runs(training, digits)
    bpe = train_bpe(counted, vocab_size=vocab_size, pattern=word_pattern(digits), special_tokens=special_tokens,
                    min_frequency=min_frequency, show_progress=show_progress, length=length)
    if not held.documents:
        raise ValueError(f"no text was held out ({held_out_share:.0%} of too few blocks); give more text, or pass --held-out 0 "
                         "with a fixed --transition to train on everything unchecked")

    # Every candidate's stage 1 is a cut of ``bpe``: the runs are cut into words and the words encoded
    # once, and each candidate spells the ids above its cut out (:func:`truncated_ids`).
    cut = WordRuns.cut(runs) if runs and words_cut_exactly(bpe) else None
    full = _encode_words(bpe, cut.words) if cut is not None else None
    spelling = Spelling(bpe) if cut is not None else None

    def build(t: int) -> tokenizers.Tokenizer:
        stage1 = truncate_bpe(bpe, t)
        segmentation = (cut.segment(*truncated_ids(spelling, *full, t)) if cut is not None and full is not None and spelling is not None
                        else runs)
        return add_superwords(stage1, segmentation, vocab_size=vocab_size, digits=digits, max_words=max_words,
                              min_frequency=min_frequency, show_progress=show_progress)

    tokenizer, report = choose_transition(build, bpe, held.documents, vocab_size=vocab_size, transitions=transitions,
                                          mode="auto" if transition == "auto" else "fixed", held_out_share=held_out_share)
    return CheckedSuperBPE(tokenizer, bpe, report, held.documents, held.sources)
