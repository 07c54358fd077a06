"""Savings of a trained SuperBPE tokenizer against its stage-1 BPE, on any text.

``tokenshift train --kind superbpe`` writes the stage-1 BPE taken to the same vocabulary size, trained
on the same text, beside the tokenizer as ``bpe/``; :func:`stage1_baseline` finds it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..data import TextSet
from ..tokenizer import Tokenizer

BASELINE_FOLDER = "bpe"


@dataclass(frozen=True)
class BaselineSavings:
    """``savings``: 1 - tokens / baseline tokens on ``text`` (positive: the tokenizer needs fewer)."""

    tokenizer: str
    baseline: str
    text: str
    tokens: int
    baseline_tokens: int
    savings: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def stage1_baseline(spec: str) -> Tokenizer | None:
    """The stage-1 BPE saved beside a tokenizer trained by ``tokenshift train`` (folder or its
    ``tokenizer.json``), or None when ``spec`` is not such a folder."""
    from ..tokenizer import load_tokenizer

    path = Path(spec).expanduser()
    folder = path.parent if path.name == "tokenizer.json" else path
    if not (folder / "train.json").is_file() or not (folder / BASELINE_FOLDER / "tokenizer.json").is_file():
        return None
    return load_tokenizer(str(folder / BASELINE_FOLDER))


def savings_against(tokenizer: Tokenizer, baseline: Tokenizer, texts: TextSet) -> BaselineSavings:
    tokens = sum(len(ids) for ids in tokenizer.encode_batch(texts.documents))
    baseline_tokens = sum(len(ids) for ids in baseline.encode_batch(texts.documents))
    return BaselineSavings(tokenizer.name, baseline.name, texts.name, tokens, baseline_tokens,
                           1 - tokens / baseline_tokens if baseline_tokens else math.nan)
