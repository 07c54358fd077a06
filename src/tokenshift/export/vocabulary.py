"""What goes into a GGUF's ``tokenizer.*`` keys, whichever vocabulary format wrote it, and the writing.

Two formats (see :mod:`.gguf_tokenizer`): ``gpt2`` (byte-level BPE: tokens and merges) and ``llama``
(SentencePiece-style: tokens with scores, no merges; llama.cpp joins adjacent pieces by score).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..tokenizer import Tokenizer


@dataclass(frozen=True)
class Vocabulary:
    """One token, one ``gguf.TokenType`` value (and for ``llama`` one score) per embedding row.

    ``model``: ``tokenizer.ggml.model``. ``merges``: ``"a b"`` best first (``gpt2`` only).
    ``scores``: higher joins first (``llama`` only). ``add_space_prefix``: whether llama.cpp puts a
    space before the text (``llama`` only)."""

    model: str
    tokens: list[str]
    types: list[int]
    merges: list[str]
    scores: list[float] | None = None
    add_space_prefix: bool | None = None

    def type_counts(self) -> dict[str, int]:
        """How many rows of each token type (``normal``, ``control``, ``user_defined``, ``byte``, ``unused``...)."""
        import gguf

        return {gguf.TokenType(t).name.lower(): n for t, n in sorted(Counter(self.types).items())}


def looks_special(token: str) -> bool:
    """The converter's ``does_token_look_special``: added tokens it marks CONTROL even when not flagged special."""
    return (token in ("<pad>", "<mask>", "<2mass>", "[@BOS@]") or (token.startswith("<|") and token.endswith("|>"))
            or (token.startswith("<｜") and token.endswith("｜>")) or (token.startswith("<unused") and token.endswith(">")))


def adds_eos(tokenizer: Tokenizer) -> bool:
    """Whether the tokenizer's post-processor appends EOS by default."""
    eos = tokenizer.special.eos
    if eos is None:
        return False
    plain = tokenizer.backend.encode("a", add_special_tokens=False).ids
    full = tokenizer.backend.encode("a", add_special_tokens=True).ids
    return len(full) > len(plain) and full[-1] == eos


def write_tokenizer(writer: Any, tokenizer: Tokenizer, vocabulary: Vocabulary, *, pre: str) -> None:
    """Add the ``tokenizer.*`` keys to a ``gguf.GGUFWriter``, in the order llama.cpp's converter writes them."""
    writer.add_tokenizer_model(vocabulary.model)
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(vocabulary.tokens)
    if vocabulary.scores is not None:
        writer.add_token_scores(vocabulary.scores)
    writer.add_token_types(vocabulary.types)
    if vocabulary.merges:
        writer.add_token_merges(vocabulary.merges)
    special = tokenizer.special
    for role, add in (("bos", writer.add_bos_token_id), ("eos", writer.add_eos_token_id),
                      ("unk", writer.add_unk_token_id), ("pad", writer.add_pad_token_id)):
        idx = getattr(special, role)
        if idx is not None:
            add(int(idx))
    writer.add_add_bos_token(bool(special.adds_bos))
    if vocabulary.model == "llama":
        writer.add_add_sep_token(False)
    writer.add_add_eos_token(adds_eos(tokenizer))
    if vocabulary.add_space_prefix is not None:
        writer.add_add_space_prefix(vocabulary.add_space_prefix)
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)
