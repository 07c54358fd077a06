"""Byte-level BPE over regex pretokens, trained by the stock (Rust, multi-threaded) HF trainer."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .pretokenize import byte_level_pre_tokenizer_json

if TYPE_CHECKING:
    import tokenizers


def empty_byte_level_bpe(pattern: str) -> tokenizers.Tokenizer:
    """An untrained BPE with regex split + byte-level pretokenization and a byte-level decoder."""
    from tokenizers import Tokenizer, decoders, models

    backend = Tokenizer(models.BPE())
    spec = json.loads(backend.to_str())
    spec["pre_tokenizer"] = byte_level_pre_tokenizer_json(pattern)
    backend = Tokenizer.from_str(json.dumps(spec))
    backend.decoder = decoders.ByteLevel()
    return backend


def train_bpe(
    documents: Iterable[str],
    *,
    vocab_size: int,
    pattern: str,
    special_tokens: list[str],
    min_frequency: int = 2,
    show_progress: bool = False,
    length: int | None = None,
) -> tokenizers.Tokenizer:
    """Train byte-level BPE to ``vocab_size`` ids (256 byte tokens and ``special_tokens`` included).

    Special tokens take the first ids, in the order given. ``length``: the number of documents, if
    known, so that the progress bar can show an ETA.
    """
    from tokenizers import pre_tokenizers, trainers

    from ..signals import interruptible

    backend = empty_byte_level_bpe(pattern)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=show_progress,
    )
    interruptible(lambda: backend.train_from_iterator(documents, trainer=trainer, length=length))
    return backend
