"""The ``tokenizer.ggml.*`` metadata of a byte-level BPE vocabulary, as llama.cpp's converter writes it.

One entry per embedding row (``rows`` may exceed the tokenizer's ids: transplant pads the matrix to a
multiple of 64)::

    id < tokenizer ids, a BPE token       its byte-level spelling (Ġ for a space)      NORMAL
    id < tokenizer ids, an added token     its text as written                          CONTROL (special, or <|...|>) / USER_DEFINED
    a hole, or a padded row (>= ids)       [PAD{id}]                                    UNUSED (never produced)

plus the merges (``"a b"``, best first), the BOS/EOS/PAD/UNK ids, ``add_bos_token`` /
``add_eos_token`` and the chat template. ``tokenizer.ggml.model`` is ``gpt2`` (byte-level BPE) and
``tokenizer.ggml.pre`` the name chosen by :mod:`.pre`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..tokenizer import Tokenizer


@dataclass(frozen=True)
class Vocabulary:
    """What goes into the GGUF: one token and one ``gguf.TokenType`` value per row, and the merges."""

    tokens: list[str]
    types: list[int]
    merges: list[str]

    def type_counts(self) -> dict[str, int]:
        """How many rows of each token type (``normal``, ``control``, ``user_defined``, ``unused``)."""
        import gguf

        return {gguf.TokenType(t).name.lower(): n for t, n in sorted(Counter(self.types).items())}


def _looks_special(token: str) -> bool:
    """The converter's ``does_token_look_special``: added tokens it marks CONTROL even when not flagged special."""
    return (token in ("<pad>", "<mask>", "<2mass>", "[@BOS@]") or (token.startswith("<|") and token.endswith("|>"))
            or (token.startswith("<｜") and token.endswith("｜>")) or (token.startswith("<unused") and token.endswith(">")))


def check_exportable(tokenizer: Tokenizer) -> dict[str, Any]:
    """The tokenizer's ``model`` table (a byte-level BPE); a one-line ValueError for anything else."""
    spec = json.loads(tokenizer.backend.to_str())["model"]
    if spec.get("type") != "BPE" or tokenizer.kind != "byte-level":
        raise ValueError(f"tokenizer {tokenizer.name!r} is a {tokenizer.kind} {spec.get('type')} tokenizer; GGUF export "
                         "writes byte-level BPE vocabularies (tokenizer.ggml.model = gpt2) only")
    return spec


def build_vocabulary(tokenizer: Tokenizer, rows: int) -> Vocabulary:
    """Tokens, token types and merges for a model with ``rows`` embedding rows (>= the tokenizer's ids)."""
    import gguf

    if rows < tokenizer.vocab_size:
        raise ValueError(f"tokenizer {tokenizer.name!r} has {tokenizer.vocab_size} ids but the model only {rows} embedding rows")
    model = check_exportable(tokenizer)
    vocab = tokenizer.backend.get_vocab(with_added_tokens=True)
    by_id = {idx: token for token, idx in vocab.items()}
    added = {idx: tok for idx, tok in tokenizer.backend.get_added_tokens_decoder().items()}
    tokens: list[str] = []
    types: list[int] = []
    for idx in range(rows):
        token = by_id.get(idx)
        if token is None:
            tokens.append(f"[PAD{idx}]")
            types.append(gguf.TokenType.UNUSED)
        elif idx in added:
            tokens.append(added[idx].content)
            special = added[idx].special or _looks_special(added[idx].content)
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]  # tokenizers >= 0.20 writes pairs
    return Vocabulary(tokens=tokens, types=[int(t) for t in types], merges=merges)


def adds_eos(tokenizer: Tokenizer) -> bool:
    """Whether the tokenizer's post-processor appends EOS by default."""
    eos = tokenizer.special.eos
    if eos is None:
        return False
    plain = tokenizer.backend.encode("a", add_special_tokens=False).ids
    full = tokenizer.backend.encode("a", add_special_tokens=True).ids
    return len(full) > len(plain) and full[-1] == eos


def write_tokenizer(writer: Any, tokenizer: Tokenizer, vocabulary: Vocabulary, *, pre: str) -> None:
    """Add the ``tokenizer.*`` keys to a ``gguf.GGUFWriter``."""
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(vocabulary.tokens)
    writer.add_token_types(vocabulary.types)
    writer.add_token_merges(vocabulary.merges)
    special = tokenizer.special
    for role, add in (("bos", writer.add_bos_token_id), ("eos", writer.add_eos_token_id),
                      ("pad", writer.add_pad_token_id), ("unk", writer.add_unk_token_id)):
        idx = getattr(special, role)
        if idx is not None:
            add(int(idx))
    writer.add_add_bos_token(bool(special.adds_bos))
    writer.add_add_eos_token(adds_eos(tokenizer))
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)
