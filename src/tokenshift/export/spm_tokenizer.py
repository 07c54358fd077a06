"""A SentencePiece-style BPE (Gemma: spaces spelled ``▁``, bytes as ``<0xNN>``) as a GGUF vocabulary
``tokenizer.ggml.model = llama``, the way llama.cpp's converter writes a SentencePiece model::

    an added token, special (or <unused..>)   its text            CONTROL        -1000
    an added token, not special               its text            USER_DEFINED   -1000
    a run of 2+ ▁ ranked above every other    that many spaces    USER_DEFINED   -1000   (Gemma's whitespace pieces)
    <0xNN>, with byte fallback                <0xNN>              BYTE           0
    the model's unk token                     <unk>               UNKNOWN        0
    any other token, k-th in id order         itself              NORMAL         -k
    a hole, or a padded row                   [PAD{id}]           UNUSED         -1000

No merges are written. llama.cpp's SentencePiece tokenizer splits the text (spaces as ``▁``) into
characters and keeps joining the adjacent pair that spells the token of highest score; the BPE joins
the pair of its earliest merge. The two agree when (checked by :func:`score_problems`, else the export
is refused): (1) scores fall in merge order (a token's first merge comes after those of every
lower id) and (2) every way of spelling a token as two tokens is one of its merges, since llama.cpp
joins any such pair and the BPE only listed ones. A BPE converted from a SentencePiece model
(transformers lists every split as a merge) has both; merges appended by ``train --extend`` in
general break (2). transformers' GGUF reader rebuilds the merges the same way (every split, in
file order), so (2) is also what makes the file read back as the same BPE.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..tokenizer import Tokenizer
from ..tokenizer.bytemap import METASPACE
from .pre import PreChoice
from .vocabulary import Vocabulary, looks_special

CONTROL_SCORE = -1000.0  # the converter's score for added, control and unused tokens
_BYTE_TOKEN = re.compile(r"^<0x[0-9A-F]{2}>$")
_SPACE = {"String": " "}


def _describe(part: Any) -> str:
    return "none" if not part else json.dumps(part, ensure_ascii=False)[:120]


def space_prefix(spec: dict[str, Any]) -> bool | None:
    """Whether the tokenizer puts ``▁`` before the text (llama.cpp's ``add_space_prefix``), or None when
    its normalizer and pre-tokenizer do more than spell spaces ``▁`` (which llama.cpp cannot follow)."""
    normalizer, pre = spec.get("normalizer"), spec.get("pre_tokenizer")
    replace = {"type": "Replace", "pattern": _SPACE, "content": METASPACE}
    # Gemma's pre-tokenizer splits on " ", which the normalizer has already replaced: a no-op
    if pre is not None and not (pre.get("type") == "Split" and pre.get("pattern") == _SPACE):
        if normalizer is None and pre.get("type") == "Metaspace" and not pre.get("split", True):
            return pre.get("prepend_scheme", "always") != "never"
        return None
    if normalizer == replace:
        return False
    steps = (normalizer or {}).get("normalizers") if (normalizer or {}).get("type") == "Sequence" else None
    if steps == [{"type": "Prepend", "prepend": METASPACE}, replace]:
        return True
    return None


def check_spm(tokenizer: Tokenizer) -> bool:
    """``add_space_prefix`` of a SentencePiece-style BPE with byte fallback; a one-line ValueError for anything else."""
    spec = json.loads(tokenizer.backend.to_str())
    model = spec["model"]
    if model.get("type") != "BPE" or not model.get("byte_fallback"):
        raise ValueError(f"tokenizer {tokenizer.name!r} is a {model.get('type')} tokenizer"
                         f"{'' if model.get('byte_fallback') else ' without byte fallback'}; GGUF export writes byte-level BPE "
                         "(tokenizer.ggml.model = gpt2) and SentencePiece-style BPE with <0xNN> byte tokens (llama) only")
    prefix = space_prefix(spec)
    if prefix is None:
        raise ValueError(f"tokenizer {tokenizer.name!r} normalizes text with {_describe(spec.get('normalizer'))} and "
                         f"pre-tokenizes with {_describe(spec.get('pre_tokenizer'))}; llama.cpp's SentencePiece tokenizer only "
                         "spells spaces ▁ (and may put one first), so this tokenizer is not exported to GGUF")
    return prefix


def spm_pre(tokenizer: Tokenizer, declared: str | None, forced: str | None) -> PreChoice:
    """``default``: llama.cpp runs no pre-tokenizer on a SentencePiece vocabulary."""
    del tokenizer, declared
    if forced is not None:
        raise ValueError(f"--pre {forced}: this tokenizer is SentencePiece-style (tokenizer.ggml.model = llama), for which "
                         "llama.cpp runs no pre-tokenizer; leave --pre out")
    return PreChoice("default", "SentencePiece-style: llama.cpp runs no pre-tokenizer", ("default",))


def _merges(model: dict[str, Any]) -> list[tuple[str, str]]:
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else (m[0], m[1]) for m in model.get("merges", [])]


def space_runs(vocab: dict[str, int], merges: list[tuple[str, str]]) -> set[str]:
    """The ``▁▁``, ``▁▁▁``... tokens to write as spaces (USER_DEFINED, matched whole by llama.cpp, as
    Gemma's SentencePiece model declares them): only when their merges come before every other merge
    (of a token in ``vocab``) that touches ``▁``, so that the BPE also joins a run before anything else."""
    runs = {token for token in vocab if len(token) > 1 and set(token) == {METASPACE}}
    if not runs:
        return set()
    last_run = max((rank for rank, (a, b) in enumerate(merges) if a + b in runs), default=-1)
    first_other = next((rank for rank, (a, b) in enumerate(merges)
                        if a + b not in runs and a + b in vocab and METASPACE in a + b), len(merges))
    return runs if last_run < first_other else set()


def build_spm_vocabulary(tokenizer: Tokenizer, rows: int) -> Vocabulary:
    """Tokens, scores and token types (see the module docstring) for a model with ``rows`` embedding rows;
    a one-line ValueError when llama.cpp would tokenize differently (:func:`score_problems`)."""
    import gguf

    prefix = check_spm(tokenizer)
    model = json.loads(tokenizer.backend.to_str())["model"]
    vocab: dict[str, int] = model["vocab"]
    merges = _merges(model)
    by_id = {idx: token for token, idx in vocab.items()}
    added = dict(tokenizer.backend.get_added_tokens_decoder())
    runs = space_runs(vocab, merges)
    tokens: list[str] = []
    scores: list[float] = []
    types: list[int] = []
    normal = 0
    for idx in range(rows):
        token = by_id.get(idx)
        if idx in added:
            special = added[idx].special or looks_special(added[idx].content)
            entry = (added[idx].content, CONTROL_SCORE, gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        elif token is None:
            entry = (f"[PAD{idx}]", CONTROL_SCORE, gguf.TokenType.UNUSED)
        elif token in runs:
            entry = (" " * len(token), CONTROL_SCORE, gguf.TokenType.USER_DEFINED)
        elif _BYTE_TOKEN.match(token):
            entry = (token, 0.0, gguf.TokenType.BYTE)
        elif token == model.get("unk_token"):
            entry = (token, 0.0, gguf.TokenType.UNKNOWN)
        else:
            entry = (token, -float(normal), gguf.TokenType.NORMAL)
            normal += 1
        tokens.append(entry[0])
        scores.append(entry[1])
        types.append(int(entry[2]))
    vocabulary = Vocabulary(model="llama", tokens=tokens, types=types, merges=[], scores=scores, add_space_prefix=prefix)
    problems = score_problems(vocabulary, merges)
    if problems:
        raise ValueError(f"tokenizer {tokenizer.name!r} cannot be written as a SentencePiece vocabulary that llama.cpp tokenizes "
                         f"as the BPE does: {problems}; export a model whose tokenizer was converted from SentencePiece "
                         "as it is (e.g. the gemma-3 base), or extend a byte-level BPE base (smollm2, llama-3, qwen2.5) instead")
    return vocabulary


def score_problems(vocabulary: Vocabulary, merges: list[tuple[str, str]]) -> str:
    """Where llama.cpp's score-based joining would differ from the BPE's merges (see the module
    docstring), in one clause with a count and an example each; empty when nowhere."""
    import gguf

    normal_type = int(gguf.TokenType.NORMAL)
    normal = [token for token, kind in zip(vocabulary.tokens, vocabulary.types) if kind == normal_type]
    first: dict[str, int] = {}
    for rank, (a, b) in enumerate(merges):
        first.setdefault(a + b, rank)
    ranks = [first[token] for token in normal if token in first]
    disorder = [(i, r) for i, (r, after) in enumerate(zip(ranks, ranks[1:])) if after < r]
    texts = set(vocabulary.tokens)  # what llama.cpp can join into (▁ runs written as spaces are no longer spelled ▁)
    listed = set(merges)
    unlisted: list[tuple[str, str, str]] = []  # (token, left, right): llama.cpp joins it, the BPE has no such merge
    unreachable: list[tuple[str, str, str]] = []  # a merge llama.cpp cannot make: a side is no token there
    for token in normal:
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in texts and right in texts and (left, right) not in listed:
                unlisted.append((token, left, right))
    for a, b in merges:
        if a + b in texts and (a not in texts or b not in texts):
            unreachable.append((a + b, a, b))
    clauses = []
    if disorder:
        clauses.append(f"{len(disorder)} tokens come after a token whose first merge is later (token ids not in merge order)")
    if unlisted:
        token, left, right = unlisted[0]
        clauses.append(f"{len(unlisted)} pairs of tokens spell a token but are no merge of the BPE (e.g. {left!r} + {right!r} "
                       f"= {token!r}), and llama.cpp joins any such pair")
    if unreachable:
        token, left, right = unreachable[0]
        clauses.append(f"{len(unreachable)} merges join a piece that is no token for llama.cpp (e.g. {left!r} + {right!r})")
    return "; ".join(clauses)
